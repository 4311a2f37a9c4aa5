# Latency histogram (bench/run-all.sh): per-frame latency of bench/latency.
# Variables: data (rows "frame e2e_ms baseline_ms"), out (PNG), p50, p99
# (end to end, ms), base50, base99 (the demux+decode+encode baseline), title.
set terminal pngcairo size 760,420 font "sans,10"
set output out
set title title
set xlabel "latency per frame (ms): bytes published -> bytes read back"
set ylabel "frames"
set datafile missing "?"
set style fill transparent solid 0.55 border -1
set grid ytics
set key top right
set yrange [0:*]
set offsets 0, 0, graph 0.3, 0
binw = 2.0
bin(x) = binw * floor(x / binw) + binw / 2
set boxwidth binw * 0.9
set arrow 1 from p50, graph 0 to p50, graph 1 nohead lc rgb "#0550ae" dt 2
set arrow 2 from p99, graph 0 to p99, graph 1 nohead lc rgb "#cf222e" dt 2
set label 1 sprintf("p50 %.1f", p50) at p50, graph 0.70 offset 0.5,0 tc rgb "#0550ae"
set label 2 sprintf("p99 %.1f", p99) at p99, graph 0.62 offset 0.5,0 tc rgb "#cf222e"
plot data using (bin($3)):(1.0) smooth frequency with boxes lc rgb "#999999" \
       title sprintf("baseline: demux+decode+encode in process (p50 %.1f, p99 %.1f)", base50, base99), \
     data using (bin($2)):(1.0) smooth frequency with boxes lc rgb "#0969da" \
       title "end to end through trickle server + gateway + passthrough worker"
