#!/usr/bin/env bash
# make bench / make bench-gpu: runs every benchmark that exists (ring,
# transcode, trickle-load, latency, cpu, soak, load, python), each under a
# time limit, logs in out/bench/, then writes bench/results.md (one row per
# metric: ours, the reference measured in the same run, ratio, goal) and the
# plots bench/img/*.png (gnuplot). A failing benchmark is a row, never a
# failure of this script. Flags: --quick (short runs, ~5 min), --gpu (results
# in bench/results-gpu.md; records "no GPU" when nvidia-smi finds none),
# --only a,b (run these only), --report-only (rewrite the report from the
# logs of the last run). BUILD= picks the build dir (default build).
set -u
cd "$(dirname "$0")/.." || exit 1
export BUILD=${BUILD:-build}
QUICK=0
GPU=0
ONLY=
REPORT_ONLY=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--gpu) GPU=1 ;;
	--only) ONLY=,$2,; shift ;;
	--report-only) REPORT_ONLY=1 ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-all: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done
LOGS=out/bench
RESULTS=bench/results.md
IMG=bench/img
SUFFIX=
if [ $GPU = 1 ]; then
	RESULTS=bench/results-gpu.md
	SUFFIX=-gpu
	LOGS=out/bench-gpu
fi
mkdir -p "$LOGS" "$IMG"
[ $REPORT_ONLY = 1 ] && [ -f "$LOGS/machine" ] && [ -f "$LOGS/status" ] && goto_report=1 || goto_report=0
if [ $goto_report = 0 ]; then
if [ -z "$ONLY" ]; then
	rm -f "$LOGS"/*.log "$LOGS"/*.csv "$LOGS"/*.dat "$LOGS"/status
elif [ -f "$LOGS/status" ]; then # keep the other benchmarks' results
	grep -v -E "^(${ONLY//,/|}) " "$LOGS/status" | grep -v '^ ' >"$LOGS/status.new"
	mv "$LOGS/status.new" "$LOGS/status"
fi
T_START=$(date +%s)
say() { printf 'run-all: %s\n' "$*" >&2; }

# ---- machine ---------------------------------------------------------------
machine_file="$LOGS/machine"
if [ -n "$ONLY" ] && [ -f "$LOGS/machine" ]; then # a partial re-run: keep the first run's
	machine_file="$LOGS/machine.only"
fi
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores=$(nproc)"
	echo "mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "kernel=$(uname -r)"
	echo "ffmpeg=$(ffmpeg -version 2>/dev/null | head -n1 | awk '{print $3}')"
	echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
		echo "gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n1)"
	else
		echo "gpu=no GPU (nvidia-smi not found or no device)"
	fi
	echo "quick=$QUICK"
	echo "build=$BUILD"
} >"$machine_file"
HAVE_GPU=1
grep -q '^gpu=no GPU' "$machine_file" && HAVE_GPU=0

# ---- build -------------------------------------------------------------------
build_all() {
	say "building into $BUILD"
	if ! make -s -j2 BUILD="$BUILD" "$BUILD/gateway" "$BUILD/worker" "$BUILD/trickle-server" \
		"$BUILD/plugins/passthrough.so" "$BUILD/plugins/grayscale.so" \
		$(ls bench/*.c 2>/dev/null | sed "s|^bench/\(.*\)\.c$|$BUILD/bench/\1|") \
		>"$LOGS/build.log" 2>&1; then
		say "build failed (see $LOGS/build.log); benchmarks that need it will fail"
	fi
}

# ---- run ---------------------------------------------------------------------
# reap TAG: ends what a benchmark left running (after a time-out, say): every
# process whose environment carries CT_BENCH_TAG=TAG, i.e. started by it.
tag="run-all-$$-$(date +%s)"
reap() {
	local p left=()
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = $$ ] && continue
		if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "CT_BENCH_TAG=$1"; then
			left+=("${p#/proc/}")
		fi
	done
	[ ${#left[@]} -eq 0 ] && return 0
	say "$1: ending ${#left[@]} leftover processes"
	kill -TERM "${left[@]}" 2>/dev/null
	sleep 1
	kill -KILL "${left[@]}" 2>/dev/null
	return 0
}

# run NAME LIMIT_S CMD...: runs CMD with a time limit, logs to $LOGS/NAME.log,
# appends "NAME rc seconds" to $LOGS/status. Never fails.
run() {
	local name=$1 limit=$2 t0 rc
	shift 2
	if [ -n "$ONLY" ] && [[ $ONLY != *",$name,"* ]]; then
		return 0
	fi
	say "$name: $* (limit ${limit}s)"
	t0=$(date +%s)
	CT_BUILD=$BUILD CT_BENCH_TAG="$tag-$name" \
		timeout -k 10 "$limit" setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null
	rc=$?
	reap "$tag-$name"
	echo "$name $rc $(($(date +%s) - t0))" >>"$LOGS/status"
	say "$name: rc $rc in $(($(date +%s) - t0)) s: $(grep -v '^\s*$' "$LOGS/$name.log" | tail -n1 | cut -c1-150)"
}
absent() { [ -n "$ONLY" ] && [[ $ONLY != *",$1,"* ]] && return 0; echo "$1 absent 0" >>"$LOGS/status"; }

if [ $GPU = 1 ] && [ $HAVE_GPU = 0 ]; then
	say "--gpu: no GPU on this machine; recording that and nothing else"
else
	build_all
	if [ $GPU = 1 ]; then
		export BENCH_GPUS=auto
	fi
	if [ $QUICK = 1 ]; then
		q_ring=(--frames 1000); q_tc=(1); q_tl=(--seconds 10); q_lat=(--seconds 8)
		q_cpu=(--quick); q_soak=(--quick); q_load=(--quick); q_py=(10)
	else
		q_ring=(); q_tc=(); q_tl=(--seconds 20); q_lat=(--seconds 15)
		q_cpu=(--seconds 20); q_soak=(--kills 30); q_load=(); q_py=()
	fi
	[ -x bench/ring ] && run ring 180 bench/ring "${q_ring[@]}" || absent ring
	[ -x bench/transcode ] && run transcode 300 bench/transcode "${q_tc[@]}" || absent transcode
	[ -x bench/trickle-load ] && run trickle-load 120 bench/trickle-load "${q_tl[@]}" || absent trickle-load
	[ -x bench/latency ] && run latency 120 bench/latency "${q_lat[@]}" --csv "$PWD/$LOGS/latency.csv" || absent latency
	[ -x bench/cpu ] && run cpu 240 bench/cpu "${q_cpu[@]}" || absent cpu
	[ -x bench/soak ] && run soak 360 bench/soak "${q_soak[@]}" --csv "$PWD/$LOGS/soak.csv" || absent soak
	[ -x bench/load ] && run load 240 bench/load "${q_load[@]}" || absent load
	if [ -x bench/python ]; then # usage: bench/python [SECONDS]
		run python 300 bench/python "${q_py[@]}"
	elif [ -x "$BUILD/bench/python" ]; then
		run python 240 "$BUILD/bench/python" --build "$BUILD"
	else
		absent python
	fi
	if [ $GPU = 1 ]; then
		[ -x "$BUILD/bench/gpu_ring" ] && run gpu_ring 180 "$BUILD/bench/gpu_ring" || absent gpu_ring
	fi
fi
if [ "$machine_file" = "$LOGS/machine" ]; then
	echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOGS/machine"
	echo "total_s=$(($(date +%s) - T_START))" >>"$LOGS/machine"
else
	echo "rerun=$(echo ${ONLY//,/ }) at $(date -u '+%H:%M UTC')$([ $QUICK = 1 ] && echo ' (quick)'), load average $(cut -d' ' -f1 /proc/loadavg)" \
		>>"$LOGS/machine"
	rm -f "$machine_file"
fi
fi # goto_report

# ---- report ------------------------------------------------------------------
LOGS=$LOGS RESULTS=$RESULTS IMG=$IMG SUFFIX=$SUFFIX GPU=$GPU python3 - <<'PY'
import csv, math, os, re, subprocess

LOGS, RESULTS, IMG, SUFFIX = (os.environ[k] for k in ("LOGS", "RESULTS", "IMG", "SUFFIX"))
GPU = os.environ["GPU"] == "1"
machine, reruns = {}, []
for l in open(os.path.join(LOGS, "machine")):
    if "=" in l:
        k, v = l.rstrip("\n").split("=", 1)
        if k == "rerun":
            reruns.append(v.strip())
        else:
            machine[k] = v
status = {}
order = []
if os.path.exists(os.path.join(LOGS, "status")):
    for l in open(os.path.join(LOGS, "status")):
        n, rc, s = l.split()
        status[n] = (rc, int(s))
        order.append(n)


def log(name):
    p = os.path.join(LOGS, name + ".log")
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def last_line(name):
    ls = [l for l in log(name).splitlines() if l.strip() and not l.startswith("ts=")]
    return ls[-1].strip() if ls else ""


def f(x, nd=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return ("%." + str(nd) + "f") % x


rows = []  # (bench, metric, ours, reference, ratio, goal, verdict)


def row(bench, metric, ours, ref="-", ratio="-", goal="-", verdict=""):
    rows.append((bench, metric, ours, ref, ratio, goal, verdict))


def verdict_le(v, g):
    return "" if v is None else ("met" if v <= g else "missed")


def failed(name):
    rc, s = status.get(name, ("absent", 0))
    if rc == "absent":
        row(name, "(not present in this tree)", "-", verdict="not run")
        return True
    if rc == "1" and re.match(r"^%s: .*goal" % re.escape(name), last_line(name)):
        return False  # it ran and printed its figures; exit 1 = a goal missed
    if rc != "0":
        why = "timed out" if rc in ("124", "137") else "exit %s" % rc
        row(name, "FAILED (%s after %d s)" % (why, s), last_line(name)[:120] or "-",
            verdict="failed")
        return True
    return False


def num(pat, text, group=1, conv=float):
    m = re.search(pat, text, re.M)
    return conv(m.group(group)) if m else None


# ring
if "ring" in status and not failed("ring"):
    t = log("ring")
    for m in re.finditer(r"^ring: (\S+ \S+)\s+\d+ bytes: ring p50\s+([\d.]+) us p99\s+([\d.]+) us"
                         r".*?floor p50\s+([\d.]+) us p99\s+([\d.]+) us; p50 ratio ([\d.]+)", t, re.M):
        row("ring", "frame hand-off %s, p50 (us)" % m.group(1), m.group(2),
            "%s (memcpy + socketpair floor)" % m.group(4), m.group(6), "<= 2.0",
            verdict_le(float(m.group(6)), 2.0))
        row("ring", "frame hand-off %s, p99 (us)" % m.group(1), m.group(3), m.group(5),
            f(float(m.group(3)) / float(m.group(5)), 2), "-")
    if not re.search(r"^ring: \S+ \S+\s+\d+ bytes", t, re.M):
        row("ring", "overhead ratio", last_line("ring"))
# transcode
if "transcode" in status and not failed("transcode"):
    t = log("transcode")
    for m in re.finditer(r"^\s*(\d+x\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", t, re.M):
        sz, o, c, r, ocpu, ccpu = m.groups()
        row("transcode", "decode+encode %s, frames/s (wall)" % sz, o, "%s (ffmpeg CLI)" % c, r,
            ">= 0.9", "met" if float(r) >= 0.9 else "missed")
        row("transcode", "decode+encode %s, frames per CPU-second" % sz, ocpu,
            "%s (ffmpeg CLI)" % ccpu, f(float(ocpu) / float(ccpu), 2), "-")
    if not re.search(r"^\s*\d+x\d+\s+[\d.]+", t, re.M):
        row("transcode", "ratio vs ffmpeg CLI", last_line("transcode"))
# trickle-load
if "trickle-load" in status and not failed("trickle-load"):
    t = log("trickle-load")
    pairs = num(r"pairs=(\d+)", t, conv=int)
    p50, p99, mx = (num(r"delay p50=([\d.]+) ms p99=([\d.]+) ms max=([\d.]+)", t, g) for g in (1, 2, 3))
    lost = num(r"([\d]+) bytes lost", t, conv=int)
    cpu = num(r"server cpu=([\d.]+)%", t)
    row("trickle-load", "relay delay with %s publisher/subscriber pairs, p50 / p99 (ms)" % pairs,
        "%s / %s" % (f(p50, 2), f(p99, 2)), goal="report")
    row("trickle-load", "bytes lost", str(lost), goal="0",
        verdict="" if lost is None else ("met" if lost == 0 else "missed"))
    if cpu is not None:
        row("trickle-load", "server CPU (% of one core)", f(cpu))
# latency
lat = {}
if "latency" in status and not failed("latency"):
    t = log("latency")
    lat["e50"], lat["e99"] = num(r"end-to-end\s+p50 ([\d.]+) ms\s+p99 ([\d.]+)", t), \
        num(r"end-to-end\s+p50 [\d.]+ ms\s+p99 ([\d.]+)", t)
    lat["b50"], lat["b99"] = num(r"baseline.*?p50 ([\d.]+) ms\s+p99", t), \
        num(r"baseline.*?p50 [\d.]+ ms\s+p99 ([\d.]+)", t)
    stages = re.search(r"stages p50: demuxed ([\d.]+) ms, decoded ([\d.]+) ms", t)
    n = num(r"(\d+) measured", t, conv=int)
    if None in lat.values():
        row("latency", "end-to-end", last_line("latency"))
    else:
        a50, a99 = lat["e50"] - lat["b50"], lat["e99"] - lat["b99"]
        row("latency", "end-to-end, passthrough, 512x512 30 fps + audio, p50 (ms)", f(lat["e50"]),
            "%s (demux+decode+encode)" % f(lat["b50"]), "-", "-")
        row("latency", "end-to-end, p99 (ms)", f(lat["e99"]),
            "%s (demux+decode+encode)" % f(lat["b99"]), "-", "-")
        row("latency", "**added by the gateway, p50 (ms)**", f(a50), "0", "-", "-")
        row("latency", "**added by the gateway, p99 (ms)** (%d frames)" % (n or 0), f(a99), "0",
            "-", "<= 33", verdict_le(a99, 33.4))
        if stages:
            row("latency", "in the baseline: demuxed / decoded at p50 (ms)",
                "%s / %s" % stages.groups(), "-")
# cpu
if "cpu" in status and not failed("cpu"):
    t = log("cpu")
    cli = num(r"ffmpeg CLI\s+([\d.]+) ms CPU/frame", t)
    for lab, key in (("C passthrough", "C passthrough"), ("Python passthrough", "Python passthrough")):
        m = re.search(r"gateway %s\s+([\d.]+) ms CPU/frame \((\d+) frames in ([\d.]+) s window, "
                      r"([\d.]+) fps, ([\d.]+) cores\).*?dropped (\d+)" % key, t)
        if m and cli:
            v = float(m.group(1))
            row("cpu", "CPU per frame, gateway + workers, %s (ms; %s fps, %s dropped)"
                % (lab, m.group(4), m.group(6)), f(v, 2), "%s (ffmpeg CLI)" % f(cli, 2),
                f(v / cli, 2), "<= 1.3", verdict_le(round(v / cli, 2), 1.3))
        elif re.search(r"%s\s+skipped" % key, t):
            row("cpu", "CPU per frame, %s" % lab, "skipped", verdict="not run")
        elif re.search(r"%s\s+FAILED" % key, t):
            row("cpu", "CPU per frame, %s" % lab, "FAILED", verdict="failed")
    m = re.search(r"gateway C passthrough\s+([\d.]+) ms CPU/frame", t)
    if m:
        row("cpu", "CPU per frame, C passthrough vs PyTrickle's passthrough example (ms)",
            m.group(1), "12.8 (PyTrickle, measured earlier on this machine kind, not in this run)",
            f(float(m.group(1)) / 12.8, 2), "-")
# soak / load / python: their last lines, plus parsed figures
if "soak" in status and not failed("soak"):
    t = log("soak")
    m = re.search(r"soak: (?:\d+ kills, )?gap p99 (\S+) ms, detection p99 (\S+) ms, lost max (\S+), "
                  r"growth (.*?)(?: \(goal (.*)\))?$", t, re.M)
    kills = len(re.findall(r"^\d+,", open(os.path.join(LOGS, "soak.csv")).read(), re.M)) \
        if os.path.exists(os.path.join(LOGS, "soak.csv")) else None
    goals = {}
    if m and m.group(5):
        for g in m.group(5).split(","):
            g = g.strip().split(" ", 1)
            if len(g) == 2:
                goals[g[0]] = g[1]

    def sv(v, key):
        g = re.search(r"<= ([\d.]+)", goals.get(key, ""))
        try:
            return verdict_le(float(v), float(g.group(1))) if g else ""
        except ValueError:
            return ""
    if m:
        row("soak", "output gap per SIGKILL of the serving worker, p99 (ms; %s kills)" % kills,
            m.group(1), goal=goals.get("gap", "-"), verdict=sv(m.group(1), "gap"))
        row("soak", "crash detection, p99 (ms)", m.group(2), goal=goals.get("detection", "-"),
            verdict=sv(m.group(2), "detection"))
        row("soak", "frames lost per kill, max", m.group(3), goal=goals.get("lost", "-"),
            verdict=sv(m.group(3), "lost"))
        row("soak", "growth over the run (rss, fds, children)", m.group(4)[:80],
            goal="no growth", verdict="met" if m.group(4).strip() == "none" else "missed")
    else:
        row("soak", "summary", last_line("soak")[:150])
if "load" in status and not failed("load"):
    t = log("load")
    m = re.search(r"^load: ([\d.]+) streams per core \((\d+) streams on (\d+)", t, re.M)
    if m:
        row("load", "passthrough streams carried with p99 <= 33 ms and drops <= 1%",
            "%s (%s per core)" % (m.group(2), m.group(1)), goal="report")
    m = re.search(r"^# ramp stopped (.*?);", t, re.M)
    if m:
        row("load", "ramp stopped", m.group(1), goal="-")
    m = re.search(r"latency \(decoded -> result\) p50 ([\d.]+) ms, p99 ([\d.]+) ms", t)
    if m:
        row("load", "processor 2x slower than input: latency p50 / p99 (ms)",
            "%s / %s" % m.groups(), goal="queueing <= 33 ms")
    m = re.search(r"slow processor queueing p99 ([\d.]+) ms, (\d+) drops counted", t)
    if m:
        row("load", "processor 2x slower than input: queueing delay p99 (ms; %s drops counted)"
            % m.group(2), m.group(1), goal="<= 33", verdict=verdict_le(float(m.group(1)), 33.4))
    if re.search(r"^load: FAIL", t, re.M):
        row("load", "note", re.search(r"^(load: FAIL.*)$", t, re.M).group(1)[:150])
    if not re.search(r"^load: [\d.]+ streams per core", t, re.M):
        row("load", "summary line", last_line("load")[:200])
if "python" in status and not failed("python"):
    t = log("python")
    cases = re.findall(r"^(\S.{0,27}?)\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+mean", t, re.M)
    for name, p50, p99 in cases:
        row("python", "process_video call, %s, p50 / p99 (ms)" % name.strip(), "%s / %s" % (p50, p99))
    c = num(r"^C passthrough.so: ([\d.]+) ms CPU per frame", t)
    py = num(r"^python: ([\d.]+) ms CPU per frame", t)
    tc = num(r"^python, tensor read and written back: ([\d.]+) ms", t)
    if py is not None:
        row("python", "whole server CPU per frame, Python passthrough.py (ms)", f(py, 2),
            "%s (C passthrough.so, same bench)" % f(c, 2), f(py / c, 2) if c else "-", "-")
        row("python", "whole server CPU per frame, Python passthrough.py vs PyTrickle (ms)",
            f(py, 2), "12.8 (PyTrickle passthrough example, earlier)", f(py / 12.8, 2), "-")
    if tc is not None:
        row("python", "whole server CPU per frame, Python reading + writing frame.tensor (ms)",
            f(tc, 2), "%s (C passthrough.so)" % f(c, 2), f(tc / c, 2) if c else "-", "-")
    if py is None:
        row("python", "summary line", last_line("python")[:200])
if "gpu_ring" in status and not failed("gpu_ring"):
    t = log("gpu_ring")
    for m in re.finditer(r"^(\S+ \S+)\s+([\d.]+) MB\s+ring p50\s+([\d.]+) us p99\s+([\d.]+) us"
                         r"[^|]*\|\s*cudaMemcpy p50\s+([\d.]+) us", t, re.M):
        row("gpu_ring", "frame into the CUDA ring, %s, p50 (us)" % m.group(1), m.group(3),
            "%s (cudaMemcpy from pinned)" % m.group(5),
            f(float(m.group(3)) / float(m.group(5)), 2), "<= 1.5",
            verdict_le(float(m.group(3)) / float(m.group(5)), 1.5))
    row("gpu_ring", "summary line", last_line("gpu_ring")[:200])

# ---- plots -------------------------------------------------------------------
plots = []


def gnuplot(script, png, **v):
    args = []
    for k, val in v.items():
        args += ["-e", "%s=%s" % (k, ('"%s"' % val) if isinstance(val, str) else repr(val))]
    r = subprocess.run(["gnuplot"] + args + [script], capture_output=True, text=True)
    if r.returncode == 0 and os.path.exists(png):
        return True
    print("run-all: gnuplot %s: %s" % (script, r.stderr.strip()[:300]))
    return False


lcsv = os.path.join(LOGS, "latency.csv")
if lat.get("e99") is not None and os.path.exists(lcsv):
    out = os.path.join(IMG, "latency%s.png" % SUFFIX)
    if gnuplot("bench/plot/latency.gp", out, data=lcsv, out=out, p50=lat["e50"], p99=lat["e99"],
               base50=lat["b50"], base99=lat["b99"],
               title="End-to-end latency per frame, passthrough (baseline p50 = demux+decode+encode)"):
        plots.append(("Latency histogram (bench/latency)", out))
steps = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+", log("load"), re.M)
if steps:
    dat = os.path.join(LOGS, "load.dat")
    with open(dat, "w") as fo:
        for s in steps:
            fo.write("%s %s %s %s\n" % (s[0], s[4], s[5], s[3]))
    out = os.path.join(IMG, "load%s.png" % SUFFIX)
    if gnuplot("bench/plot/load.gp", out, data=dat, out=out,
               title="Streams vs added latency (bench/load ramp)"):
        plots.append(("Streams vs latency (bench/load)", out))
scsv = os.path.join(LOGS, "soak.csv")
if os.path.exists(scsv):
    hdr = open(scsv).readline().strip().split(",")
    if "gap_ms" in hdr and sum(1 for _ in open(scsv)) > 1:
        out = os.path.join(IMG, "soak%s.png" % SUFFIX)
        if gnuplot("bench/plot/soak.gp", out, data=scsv, out=out, gapcol=hdr.index("gap_ms") + 1,
                   title="Output gap per SIGKILL of the serving worker (bench/soak)"):
            plots.append(("Output gap per kill (bench/soak)", out))

# ---- write -------------------------------------------------------------------
L = []
L.append("# Benchmark results%s" % (" (GPU)" if GPU else ""))
L.append("")
L.append("Generated by `bench/run-all.sh%s` (`make bench%s`)%s on %s; %d s in all. "
         "Every reference figure was measured in the same run on the same machine."
         % (" --gpu" if GPU else "", "-gpu" if GPU else "",
            " in quick mode" if machine.get("quick") == "1" else "", machine.get("date", "?"),
            int(machine.get("total_s", 0))))
L.append("")
L.append("## Machine")
L.append("")
L.append("| | |")
L.append("|---|---|")
L.append("| CPU | %s |" % machine.get("cpu", "?"))
L.append("| cores | %s |" % machine.get("cores", "?"))
L.append("| memory | %s |" % machine.get("mem", "?"))
L.append("| GPU | %s |" % machine.get("gpu", "?"))
L.append("| kernel / ffmpeg | %s / %s |" % (machine.get("kernel", "?"), machine.get("ffmpeg", "?")))
L.append("| load average (1, 5, 15 min) at start / end | %s / %s |"
         % (machine.get("load_start", "?"), machine.get("load_end", "?")))
L.append("")
if GPU and machine.get("gpu", "").startswith("no GPU"):
    L.append("**No GPU on this machine: nothing was run.** Run `make bench-gpu` on a machine "
             "where `nvidia-smi -L` lists a device.")
    L.append("")
else:
    if float(machine.get("load_start", "0 0 0").split()[0]) > float(machine.get("cores", 1)):
        L.append("The load average was above the core count: the machine was shared with other "
                 "work, so wall-clock figures are pessimistic; CPU-time figures are steadier.")
        L.append("")
    L.append("## Results")
    L.append("")
    L.append("| benchmark | metric | ours | reference (same run) | ratio | goal | |")
    L.append("|---|---|---|---|---|---|---|")
    for r in rows:
        L.append("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
    L.append("")
    for r in reruns:
        L.append("Re-run later with `--only`: %s." % r)
        L.append("")
    L.append("Run time per benchmark: " + ", ".join(
        "%s %s" % (n, ("%d s" % status[n][1]) if status[n][0] != "absent" else "absent")
        for n in order) + ". Logs: `%s/`." % LOGS)
    L.append("")
    if plots:
        L.append("## Plots")
        L.append("")
        for title, p in plots:
            L.append("![%s](%s)" % (title, os.path.relpath(p, os.path.dirname(RESULTS))))
            L.append("")
    L.append("## Method")
    L.append("")
    L.append("See [docs/benchmarks.md](../docs/benchmarks.md) for what each row measures.")
open(RESULTS, "w").write("\n".join(L) + "\n")
print("run-all: wrote %s (%d rows, %d plots)" % (RESULTS, len(rows), len(plots)))
PY
exit 0
