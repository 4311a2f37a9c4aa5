# Output gap per worker kill (bench/run-all.sh), from bench/soak's CSV
# (columns kill,...,gap_ms at column gapcol). Variables: data, out, title, gapcol.
set terminal pngcairo size 720,400 font "sans,10"
set output out
set title title
set datafile separator ","
set xlabel "kill #"
set ylabel "output gap (ms): last processed frame before -> first after"
set grid
set key top right
set offsets 0.5, 0.5, 0, 0
set autoscale xfixmax
set yrange [0:*]
plot data every ::1 using 1:gapcol with impulses lw 3 lc rgb "#0969da" title "gap per SIGKILL of the serving worker", \
     100 with lines dt 2 lc rgb "#cf222e" title "goal 100 ms"
