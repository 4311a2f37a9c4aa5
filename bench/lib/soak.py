# bench/soak: hot restart under load. A live 512x512 30 fps stream through
# the gateway (2 workers, 1 warm spare, grayscale plugin); the serving worker
# is SIGKILLed N times. Per kill: detection (kill -> the gateway's "worker
# died" log line), the gateway's output gap (worker_restarted gap_ms) and
# frames lost; at the end the gateway's RSS, fds, memfd mappings and children
# against a baseline taken after warm-up. See docs/reliability.md.
import argparse
import csv
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwbench as gb  # noqa: E402


def args_parse():
    p = argparse.ArgumentParser(prog="bench/soak", description=__doc__)
    p.add_argument("--kills", type=int, default=100, help="SIGKILLs (100)")
    p.add_argument("--interval", type=float, default=1.5, help="seconds between kills (1.5)")
    p.add_argument("--quick", action="store_true", help="10 kills (development)")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds before the baseline (4)")
    p.add_argument("--plugin", default="grayscale.so", help="plugin in BUILD/plugins (grayscale.so)")
    p.add_argument("--max-seconds", type=float, default=330.0,
                   help="stop killing after this long, and report (330)")
    p.add_argument("--spare-wait", type=float, default=15.0,
                   help="longest wait for a warm spare before a kill, s (15)")
    p.add_argument("--csv", default=os.path.join(gb.ROOT, "out", "soak.csv"))
    p.add_argument("--keep", action="store_true", help="keep the logs (temp dir)")
    p.add_argument("--build", default=os.environ.get("BUILD", "build"))
    a = p.parse_args()
    if a.quick:
        a.kills = min(a.kills, 10)
    return a


def serving_worker(gw, stream_name):
    """(worker id, pid) of the busy worker, and the number of idle ones."""
    busy, idle = None, 0
    for w in gw.workers():
        if w.get("state") == "busy" and w.get("pid"):
            busy = (w["id"], w["pid"])
        elif w.get("state") == "idle":
            idle += 1
    return busy, idle


def log_lines(gw, since):
    """Gateway log lines from byte offset since; (lines, new offset)."""
    try:
        with open(gw.log, "rb") as f:
            f.seek(since)
            data = f.read()
    except OSError:
        return [], since
    end = data.rfind(b"\n") + 1
    return data[:end].decode("utf-8", "replace").splitlines(), since + end


def main():
    gb.on_term()
    a = args_parse()
    build = a.build if os.path.isabs(a.build) else os.path.join(gb.ROOT, a.build)
    tmp = tempfile.mkdtemp(prefix="soak.")
    procs = gb.Procs(tmp)
    rows, ok = [], False
    try:
        ok = run(a, build, procs, tmp, rows)
    except KeyboardInterrupt:
        print("soak: interrupted")
    finally:
        procs.close()
        if a.keep:
            print("# logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def run(a, build, procs, tmp, rows):
    # The publisher outlives the kills: the supervisor's restart backoff
    # (up to 10 s) can stretch the cadence; it is stopped at the end.
    secs = int(a.warmup + a.kills * (a.interval + a.spare_wait) + 60)
    t = gb.start_tserver(procs, build)
    gw = gb.Gateway(procs, build, [
        "--processor", os.path.join(build, "plugins", a.plugin),
        "--workers-per-gpu", "2", "--spare-workers", "1",
        "--max-resolution", "512x512",
        "--crash-budget", "1000/1", "--log-level", "info"],
        os.path.join(tmp, "gateway.log"))
    print("# gateway pid %d at %s, trickle server %s, build %s" % (gw.pid, gw.api, t, build))
    name = "soak"
    pub = gb.publish_live(procs, "%s/%s" % (t, name), secs, "512x512", 30, "noaudio",
                          log=os.path.join(tmp, "publish.log"))
    if not gb.wait_for(15, lambda: gb.channel_exists("%s/%s" % (t, name))):
        print("soak: FAIL: the publisher did not start")
        return False
    gb.request("POST", "%s/%s-events" % (t, name))
    ev = gb.EventsReader("%s/%s-events" % (t, name))
    ev.start()
    st, body = gw.start_stream(t, name, {"width": 512, "height": 512, "max_framerate": 30})
    if st != 200:
        print("soak: FAIL: stream start: %d %s" % (st, body[:200]))
        return False
    # Warm-up: frames flowing out, both workers ready.
    if not gb.wait_for(20, lambda: gw.metrics().get('ctrickle_frames_total{kind="out"}', 0) > 30):
        print("soak: FAIL: no processed frames: " + gw.tail())
        return False
    time.sleep(a.warmup)
    m0 = gw.metrics()
    base = gb.proc_figures(gw.pid)
    print("# baseline: rss %d KiB, fds %d, memfd mappings %d, threads %d, children %d"
          % (base["rss_kb"], base["fds"], base["memfd_maps"], base["threads"],
             len(base["children"])))
    print("# %d kills, one about every %.1f s (a warm spare is waited for)" % (a.kills, a.interval))

    off = os.path.getsize(gw.log)
    died, recovered = {}, []  # pid -> (log ms, fields); [(log ms, fields)]
    kills = []
    last_kill = 0.0
    t_start = time.time()
    stopped = None
    for i in range(a.kills):
        if time.time() - t_start > a.max_seconds:
            stopped = "time limit (--max-seconds %.0f)" % a.max_seconds
            break
        if pub.poll() is not None:
            print("soak: FAIL: the publisher ended early (kill %d)" % i)
            break
        # Wait for the interval, the previous recovery, and a warm spare.
        wait_end = time.time() + a.spare_wait + a.interval
        busy, idle = None, 0
        spare_wait0 = None
        cpu_hist = []
        while time.time() < wait_end:
            cpu_hist.append((time.time(), cpu_ticks()))
            lines, off = log_lines(gw, off)
            for ln in lines:
                collect(ln, died, recovered)
            busy, idle = serving_worker(gw, name)
            since = time.time() - last_kill
            if since >= a.interval and busy and len(recovered) >= len(kills):
                if idle >= 1:
                    break
                if spare_wait0 is None:
                    spare_wait0 = time.time()
            time.sleep(0.05)
        if not busy:
            print("soak: FAIL: no serving worker before kill %d" % (i + 1))
            break
        spare_wait = (time.time() - spare_wait0) * 1000 if spare_wait0 else 0.0
        busy_share = machine_busy(cpu_hist)
        pf = gb.proc_figures(gw.pid)
        kt = gb.wall_ms()
        try:
            os.kill(busy[1], signal.SIGKILL)
        except ProcessLookupError:
            continue
        last_kill = time.time()
        kills.append({"kill": i + 1, "worker": busy[0], "pid": busy[1], "kill_ms": kt,
                      "spare_ready": idle >= 1, "spare_wait_ms": spare_wait,
                      "cpu_busy_pct": busy_share,
                      "loadavg": float(open("/proc/loadavg").read().split()[0]),
                      "rss_kb": pf["rss_kb"], "fds": pf["fds"]})
    # Let the last recovery land.
    settle = time.time() + 5
    while time.time() < settle and len(recovered) < len(kills):
        lines, off = log_lines(gw, off)
        for ln in lines:
            collect(ln, died, recovered)
        time.sleep(0.05)
    time.sleep(1.0)
    lines, off = log_lines(gw, off)
    for ln in lines:
        collect(ln, died, recovered)
    # The end figures are taken with the pool whole again (the last killed
    # worker may still wait out its restart backoff), like the baseline.
    gb.wait_for(a.spare_wait + 2, lambda: serving_worker(gw, name)[1] >= 1 and
                len(gb.children(gw.pid)) == len(base["children"]), step=0.1)
    time.sleep(1.0)
    m1 = gw.metrics()
    end = gb.proc_figures(gw.pid)
    elapsed = time.time() - t_start
    ev.stop()

    # Match each kill to its "worker died" line (by pid) and to the first
    # recovery after it.
    restarted = ev.of("worker_restarted")
    rec = sorted(recovered, key=lambda x: x[0])
    for k in kills:
        d = died.get(k["pid"])
        # A precise wall-clock detection time (us) when the supervisor logs
        # one (detected_us=); else the line's own ms timestamp.
        k["detect_ms"] = None
        if d:
            at = float(d[1]["detected_us"]) / 1000.0 if d[1].get("detected_us") else d[0]
            k["detect_ms"] = at - k["kill_ms"]
        k["in_flight"] = int(d[1].get("in_flight", -1)) if d else None
        k["respawn_ms"] = int(d[1].get("respawn_ms", -1)) if d else None
        k["gap_ms"] = k["lost"] = k["recovered_ms"] = None
        if d:
            after = [r for r in rec if r[0] >= d[0]]
            if after:
                r = after[0]
                rec.remove(r)
                k["gap_ms"] = int(r[1].get("gap_ms", -1))
                k["lost"] = int(r[1].get("frames_lost", -1))
                k["recovered_ms"] = r[0] - k["kill_ms"]
        rows.append(k)

    os.makedirs(os.path.dirname(a.csv), exist_ok=True)
    cols = ["kill", "worker", "pid", "kill_ms", "detect_ms", "gap_ms", "lost", "in_flight",
            "recovered_ms", "respawn_ms", "spare_ready", "spare_wait_ms", "cpu_busy_pct",
            "loadavg", "rss_kb", "fds"]
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for k in rows:
            w.writerow([fmt(k[c]) for c in cols])

    det = [k["detect_ms"] for k in rows if k["detect_ms"] is not None]
    gap = [k["gap_ms"] for k in rows if k["gap_ms"] is not None]
    lost = [k["lost"] for k in rows if k["lost"] is not None]
    nd, ng = len(rows) - len(det), len(rows) - len(gap)
    print("# per kill: %s" % a.csv)
    if stopped:
        print("# stopped after %d of %d kills: %s; the supervisor's restart backoff "
              "stretched the cadence" % (len(rows), a.kills, stopped))
    print("# kills %d in %.0f s; 'worker died' seen for %d, recoveries seen for %d, "
          "worker_restarted events %d" % (len(rows), elapsed, len(det), len(gap), len(restarted)))
    print("# spare warm at the kill: %d of %d; waited for a spare: max %.0f ms"
          % (sum(1 for k in rows if k["spare_ready"]), len(rows),
             max([k["spare_wait_ms"] for k in rows] or [0])))
    print("# detection (kill -> gateway log 'worker died', ms; log has 1 ms resolution): "
          "p50 %s p99 %s max %s" % (f1(gb.pct(det, .5)), f1(gb.pct(det, .99)), f1(max(det or [float("nan")]))))
    print("# output gap (gateway gap_ms, last processed frame before -> first after): "
          "p50 %s p99 %s max %s" % (f1(gb.pct(gap, .5)), f1(gb.pct(gap, .99)), f1(max(gap or [float("nan")]))))
    rcv = [k["recovered_ms"] for k in rows if k["recovered_ms"] is not None]
    print("# kill -> first processed frame after it (log ms): p50 %s p99 %s max %s"
          % (f1(gb.pct(rcv, .5)), f1(gb.pct(rcv, .99)), f1(max(rcv or [float("nan")]))))
    eg = [e.get("gap_ms") for e in restarted if e.get("gap_ms") is not None]
    if eg:
        print("# worker_restarted events: %d, gap_ms p50 %s p99 %s, frames_lost max %s"
              % (len(eg), f1(gb.pct(eg, .5)), f1(gb.pct(eg, .99)),
                 max(e.get("frames_lost", 0) for e in restarted)))
    print("# frames lost per kill: max %s, total %d; in flight at the kill: max %s"
          % (max(lost or [0]), sum(lost), max([k["in_flight"] or 0 for k in rows] or [0])))

    def dm(key):
        return m1.get(key, 0) - m0.get(key, 0)
    print("# frames during the kills: in %d, out %d, resent %d, lost %d; dropped: queue %d, ring %d, "
          "worker %d, rate_limit %d; worker deaths (metrics) %d"
          % (dm('ctrickle_frames_total{kind="in"}'), dm('ctrickle_frames_total{kind="out"}'),
             dm('ctrickle_frames_total{kind="resent"}'), dm('ctrickle_frames_total{kind="lost"}'),
             dm('ctrickle_dropped_frames_total{cause="queue"}'),
             dm('ctrickle_dropped_frames_total{cause="ring"}'),
             dm('ctrickle_dropped_frames_total{cause="worker"}'),
             dm('ctrickle_dropped_frames_total{cause="rate_limit"}'),
             sum(v for k, v in m1.items() if k.startswith("ctrickle_worker_deaths_total"))
             - sum(v for k, v in m0.items() if k.startswith("ctrickle_worker_deaths_total"))))
    growth = []
    # RSS: a leak per kill shows as a steady climb over the second half of
    # the kills; allocator warm-up does not.
    half = [(k["kill"], k["rss_kb"]) for k in rows[len(rows) // 2:] if k["rss_kb"] > 0]
    slope = lsq_slope(half)
    print("# gateway rss before each kill: first %d KiB, last %d KiB; trend over the second "
          "half %+.1f KiB per kill" % (rows[0]["rss_kb"] if rows else -1,
                                       rows[-1]["rss_kb"] if rows else -1, slope))
    if len(rows) >= 40 and slope > 16:  # the first ~20 kills warm the allocator up
        growth.append("rss %+.0f KiB per kill" % slope)
    for key, label, allow in (("rss_kb", "rss KiB", 1 << 30), ("fds", "fds", 0),
                              ("memfd_maps", "memfd mappings", 0), ("threads", "threads", 0)):
        g = end[key] - base[key]
        print("# gateway %s: baseline %d, end %d (%+d)" % (label, base[key], end[key], g))
        if g > allow:
            growth.append("%s %+d" % (label, g))
    nch = len(end["children"])
    zomb = [c for c in end["children"] if gb.proc_state(c) == "Z"]
    print("# gateway children: baseline %d %s, end %d %s, zombies %d"
          % (len(base["children"]), base["children"], nch, end["children"], len(zomb)))
    if nch != len(base["children"]) or zomb:
        growth.append("children %d -> %d" % (len(base["children"]), nch))
    alive = gw.proc.poll() is None
    health = gw.health()
    print("# gateway alive at the end: %s; health %s (OK: the stream still runs)" % (alive, health))
    if health != "OK":
        growth.append("stream not running at the end (figures not comparable)")
    quiet = [k for k in rows if k["cpu_busy_pct"] < 80 and k["detect_ms"] is not None]
    if quiet:
        qd = [k["detect_ms"] for k in quiet]
        qg = [k["gap_ms"] for k in quiet if k["gap_ms"] is not None]
        print("# kills while the machine was < 80%% busy (1 s before): %d; detection p99 %s, "
              "gap p99 %s" % (len(quiet), f1(gb.pct(qd, .99)), f1(gb.pct(qg, .99))))
    print("# machine busy in the 1 s before a kill: p50 %.0f%%, max %.0f%%; loadavg p50 %.1f max %.1f "
          "(%d cores, shared)" % (gb.pct([k["cpu_busy_pct"] for k in rows], .5),
                                  max([k["cpu_busy_pct"] for k in rows
                                       if k["cpu_busy_pct"] == k["cpu_busy_pct"]] or [0]),
                                  gb.pct([k["loadavg"] for k in rows], .5),
                                  max([k["loadavg"] for k in rows] or [0]), os.cpu_count()))
    fast = sum(1 for k in rows if k["spare_wait_ms"] < 1)
    print("# kills at the %.1f s cadence: %d; kills that waited for the respawned spare "
          "(restart backoff): %d" % (a.interval, fast, len(rows) - fast))
    if nd or ng:
        print("# WARNING: %d kills without a 'worker died' line, %d without a recovery" % (nd, ng))
    if growth:
        print("# GROWTH: " + ", ".join(growth))
    print("soak: %d kills, gap p99 %s ms, detection p99 %s ms, lost max %s, growth %s "
          "(goal gap <= 100 ms, detection <= 33 ms, lost <= 2, no growth)"
          % (len(rows), f0(gb.pct(gap, .99)), f0(gb.pct(det, .99)), max(lost or [0]),
             "none" if not growth else "; ".join(growth)))
    return alive and not growth and not nd and not ng


def lsq_slope(pts):
    """Least-squares slope of [(x, y)]; 0 when fewer than 3 points."""
    if len(pts) < 3:
        return 0.0
    n = float(len(pts))
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else 0.0


def cpu_ticks():
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def machine_busy(hist):
    """Busy share (%) of all cores over the last ~1 s of (time, ticks) samples."""
    if len(hist) < 2:
        return float("nan")
    t1, c1 = hist[-1]
    t0, c0 = next(((t, c) for t, c in hist if t1 - t <= 1.0), hist[0])
    return 100.0 * (c1[0] - c0[0]) / max(1, c1[1] - c0[1])


def collect(line, died, recovered):
    if 'msg="worker died"' in line:
        f = gb.logfmt(line)
        ms = gb.log_ms(line)
        if ms is not None and "pid" in f:
            died[int(f["pid"])] = (ms, f)
    elif 'msg="stream recovered on a new worker"' in line:
        ms = gb.log_ms(line)
        if ms is not None:
            recovered.append((ms, gb.logfmt(line)))


def fmt(v):
    if isinstance(v, float):
        return "%.1f" % v
    return "" if v is None else v


def f1(v):
    return "%.1f" % v


def f0(v):
    return "%.0f" % v if v == v else "nan"


if __name__ == "__main__":
    sys.exit(main())
