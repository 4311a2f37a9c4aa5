# Streams vs latency (bench/run-all.sh), from bench/load's ramp: one row per
# step "n p50_ms p99_ms drop_pct". Variables: data, out, title.
set terminal pngcairo size 760,420 font "sans,10"
set output out
set title title
set xlabel "concurrent 512x512 30 fps passthrough streams"
set ylabel "added latency (ms): decoded frame -> processed result"
set y2label "dropped (%)"
set ytics nomirror
set y2tics
set y2range [0:*]
set yrange [0:*]
set grid
set key top left
set xtics 1
set offsets 0.5, 0.5, 0, 0
set style fill solid 0.4 noborder
set boxwidth 0.3
plot data using 1:4 axes x1y2 with boxes lc rgb "#bbbbbb" title "dropped (%, right axis)", \
     data using 1:2 with linespoints lw 2 pt 7 lc rgb "#0969da" title "p50", \
     data using 1:3 with linespoints lw 2 pt 5 lc rgb "#cf222e" title "p99", \
     33.3 with lines dt 2 lc rgb "#cf222e" title "goal: one frame period (33 ms)"
