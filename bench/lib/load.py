# bench/load: how many 512x512 30 fps passthrough streams one gateway carries.
# Part 1 ramps concurrent streams (one worker each, no spare) until the added
# latency at p99 (ctrickle_frame_latency_ms: decoded frame -> processed
# result) exceeds one frame period (33 ms) or drops exceed 1% of the frames.
# Part 2: one stream through a processor 2x slower than the input
# (fixture_slow, 66 ms per frame at 30 fps): the queueing delay on top of the
# processor's own time at p99, and where the drops are counted.
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwbench as gb  # noqa: E402

FRAME_MS = 1000.0 / 30


def args_parse():
    p = argparse.ArgumentParser(prog="bench/load")
    p.add_argument("--max-streams", type=int, default=12, help="ramp up to this many (12)")
    p.add_argument("--window", type=float, default=6.0, help="seconds measured per step (6)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds after a start (3)")
    p.add_argument("--slow-seconds", type=float, default=10.0, help="part 2 measured (10)")
    p.add_argument("--slow-ms", type=int, default=66, help="part 2 processor ms per frame (66)")
    p.add_argument("--quick", action="store_true", help="3 streams, short windows")
    p.add_argument("--part", choices=["all", "ramp", "slow"], default="all")
    p.add_argument("--keep", action="store_true", help="keep the logs (temp dir)")
    p.add_argument("--build", default=os.environ.get("BUILD", "build"))
    a = p.parse_args()
    if a.quick:
        a.max_streams = min(a.max_streams, 3)
        a.window = min(a.window, 3.0)
        a.slow_seconds = min(a.slow_seconds, 5.0)
    return a


def cpu_ticks():
    """(busy, total) jiffies of the whole machine."""
    v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def proc_ticks(pids):
    t = 0
    for p in pids:
        try:
            f = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return t


def snapshot(gw):
    pids = [gw.pid] + gb.children(gw.pid)
    return {"m": gw.metrics(), "cpu": cpu_ticks(), "own": proc_ticks(pids),
            "gw": proc_ticks([gw.pid]), "t": time.time()}


def window(s0, s1):
    """Figures between two snapshots."""
    m0, m1 = s0["m"], s1["m"]

    def d(k):
        return m1.get(k, 0) - m0.get(k, 0)
    h = gb.hist_delta(gb.histogram(m0, "ctrickle_frame_latency_ms"),
                      gb.histogram(m1, "ctrickle_frame_latency_ms"))
    drops = {c: d('ctrickle_dropped_frames_total{cause="%s"}' % c)
             for c in ("rate_limit", "queue", "ring", "worker")}
    hz = os.sysconf("SC_CLK_TCK")
    dt = s1["t"] - s0["t"]
    busy = (s1["cpu"][0] - s0["cpu"][0]) / max(1, s1["cpu"][1] - s0["cpu"][1])
    return {"in": d('ctrickle_frames_total{kind="in"}'),
            "out": d('ctrickle_frames_total{kind="out"}'),
            "lost": d('ctrickle_frames_total{kind="lost"}'),
            "drops": drops, "ndrops": sum(drops.values()),
            "p50": gb.hist_quantile(h, .5), "p99": gb.hist_quantile(h, .99),
            "le33": gb.hist_frac_le(h, 33), "hist": h,
            "machine_busy": busy,
            "ours_cores": (s1["own"] - s0["own"]) / hz / dt,
            "gw_cores": (s1["gw"] - s0["gw"]) / hz / dt, "dt": dt}


def encode_input(path, secs=10):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=512x512:rate=30", "-t", str(secs),
                    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
                    "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-an",
                    "-f", "mpegts", path], check=True)


def ramp(a, build, procs, tmp, clip):
    n_max = a.max_streams
    secs = int(n_max * (a.settle + a.window + 2) + 30)
    t = gb.start_tserver(procs, build)
    gw = gb.Gateway(procs, build, [
        "--processor", os.path.join(build, "plugins", "passthrough.so"),
        "--workers-per-gpu", str(n_max), "--spare-workers", "0",
        "--max-resolution", "512x512", "--log-level", "info"],
        os.path.join(tmp, "gateway-ramp.log"))
    ncpu = os.cpu_count()
    print("# part 1: passthrough streams, 512x512 30 fps H.264 in (stream-copied from a "
          "pre-encoded clip, no audio), H.264 out; gateway with %d workers, no spare; "
          "%d s per step" % (n_max, a.window))
    print("# %-3s %7s %7s %6s %9s %9s %8s %9s %9s %9s" % (
        "n", "in/s", "out/s", "drop%", "p50 ms", "p99 ms", "<=33ms", "gw cores", "all ours",
        "machine"))
    best, why = 0, "reached --max-streams"
    costs = []
    for n in range(1, n_max + 1):
        name = "load%d" % n
        gb.publish_file(procs, "%s/%s" % (t, name), clip, secs)
        if not gb.wait_for(10, lambda: gb.channel_exists("%s/%s" % (t, name))):
            why = "publisher %d did not start" % n
            break
        st, body = gw.start_stream(t, name, {"width": 512, "height": 512, "max_framerate": 30}, events=False)
        if st != 200:
            why = "stream %d refused: %d %s" % (n, st, body[:120])
            break
        time.sleep(a.settle)
        # A failing window is measured once more: on a shared machine one
        # stall of another job can cost a few frames.
        for attempt in (1, 2):
            s0 = snapshot(gw)
            time.sleep(a.window)
            s1 = snapshot(gw)
            w = window(s0, s1)
            exp = n * 30 * w["dt"]
            dpct = 100.0 * w["ndrops"] / max(1, w["in"])
            print("  %-3s %7.1f %7.1f %6.2f %9.1f %9.1f %7.1f%% %9.2f %9.2f %8.0f%%" % (
                str(n) if attempt == 1 else "(2)", w["in"] / w["dt"], w["out"] / w["dt"],
                dpct, w["p50"][0], w["p99"][0], 100 * w["le33"], w["gw_cores"],
                w["ours_cores"], 100 * w["machine_busy"]))
            if w["ndrops"]:
                print("      drops by cause: %s" % ", ".join(
                    "%s %d" % (c, v) for c, v in w["drops"].items() if v))
            starved = w["in"] < 0.9 * exp
            bad = w["le33"] < 0.99 or dpct > 1.0 or starved
            if not bad:
                break
        costs.append(w["ours_cores"] / n)
        if bad:
            why = ("at %d streams: %s" % (n, "p99 latency > 33 ms" if w["le33"] < 0.99 else
                                          "drops %.1f%% > 1%%" % dpct if dpct > 1.0 else
                                          "input decoded at %.0f of %.0f frames/s"
                                          % (w["in"] / w["dt"], n * 30)))
            break
        best = n
    print("# ramp stopped %s; %d streams met the goal" % (why, best))
    print("# machine: %d cores, shared with other engineers' builds and tests ('machine' "
          "column: busy share of all cores, ours included); 'all ours' = gateway + "
          "workers, the publishers and trickle server not counted" % ncpu)
    if costs:
        c = costs[-1]
        print("# CPU per stream at the last step (gateway + its worker: decode, encode, ring): "
              "%.3f cores; a core would carry about %.1f such streams if nothing else ran "
              "(publishers and trickle server excluded)" % (c, 1.0 / c if c else float("nan")))
    return best, ncpu


def slow(a, build, procs, tmp, clip):
    t = gb.start_tserver(procs, build)
    cfg = json.dumps({"ms_per_frame": a.slow_ms})
    gw = gb.Gateway(procs, build, [
        "--processor", os.path.join(build, "plugins", "fixture_slow.so"),
        "--processor-config", cfg, "--workers-per-gpu", "1", "--spare-workers", "0",
        "--max-resolution", "512x512", "--log-level", "info"],
        os.path.join(tmp, "gateway-slow.log"))
    name = "slow"
    gb.publish_file(procs, "%s/%s" % (t, name), clip, int(a.slow_seconds + 20))
    if not gb.wait_for(10, lambda: gb.channel_exists("%s/%s" % (t, name))):
        print("load: FAIL: slow publisher did not start")
        return None
    gb.request("POST", "%s/%s-events" % (t, name))
    ev = gb.EventsReader("%s/%s-events" % (t, name))
    ev.start()
    st, body = gw.start_stream(t, name, {"width": 512, "height": 512, "max_framerate": 30})
    if st != 200:
        print("load: FAIL: slow stream start: %d %s" % (st, body[:120]))
        return None
    gb.wait_for(10, lambda: gw.metrics().get('ctrickle_frames_total{kind="out"}', 0) > 5)
    time.sleep(1.0)
    s0 = snapshot(gw)
    time.sleep(a.slow_seconds)
    s1 = snapshot(gw)
    time.sleep(1.2)  # one more heartbeat
    w = window(s0, s1)
    ev.stop()
    st, status = gw_status(gw)
    p99, ub = w["p99"]
    queue = p99 - a.slow_ms
    print("# part 2: processor %d ms per frame (fixture_slow), 30 fps in, one worker" % a.slow_ms)
    print("#   frames in %d (%.1f/s), out %d (%.1f/s), dropped %d (queue %d, ring %d, worker %d), "
          "lost %d" % (w["in"], w["in"] / w["dt"], w["out"], w["out"] / w["dt"], w["ndrops"],
                       w["drops"]["queue"], w["drops"]["ring"], w["drops"]["worker"], w["lost"]))
    print("#   latency (decoded -> result) p50 %.1f ms, p99 %.1f ms (bucket <= %g); "
          "queueing on top of %d ms: p99 %.1f ms (goal <= %.0f)"
          % (w["p50"][0], p99, ub, a.slow_ms, queue, FRAME_MS))
    print("#   latency histogram in the window: %s" % " ".join(
        "<=%g:%d" % (le, c) for le, c in w["hist"] if c))
    hb = ev.of("heartbeat")
    drop_keys = sorted({k for e in ev.events for k in e if "drop" in k})
    last_fps = hb[-1].get("fps", {}) if hb else {}
    print("#   /stream/status dropped: %s; events: %d heartbeats, last fps in %s out %s; "
          "event fields naming drops: %s" % (
              status, len(hb), last_fps.get("ingress_video_fps"),
              last_fps.get("egress_video_fps"), ", ".join(drop_keys) or "none"))
    return {"queue": queue, "drops": w["ndrops"], "status": status, "ev_drop": bool(drop_keys),
            "in": w["in"]}


def gw_status(gw):
    st, body = gb.request("GET", gw.api + "/stream/status")
    try:
        s = json.loads(body)["streams"][0]
        return st, s.get("dropped")
    except (ValueError, KeyError, IndexError):
        return st, None


def main():
    gb.on_term()
    a = args_parse()
    build = a.build if os.path.isabs(a.build) else os.path.join(gb.ROOT, a.build)
    tmp = tempfile.mkdtemp(prefix="load.")
    clip = os.path.join(tmp, "in.ts")
    best = ncpu = res = None
    try:
        encode_input(clip)
        if a.part in ("all", "ramp"):
            procs = gb.Procs(tmp)
            try:
                best, ncpu = ramp(a, build, procs, tmp, clip)
            finally:
                procs.close()
        if a.part in ("all", "slow"):
            procs = gb.Procs(tmp)
            try:
                res = slow(a, build, procs, tmp, clip)
            finally:
                procs.close()
    except KeyboardInterrupt:
        print("load: interrupted")
        return 1
    finally:
        if a.keep:
            print("# logs kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    parts = []
    if best is not None:
        parts.append("%.1f streams per core (%d streams on %d shared cores)" % (best / ncpu, best, ncpu))
    if res:
        parts.append("slow processor queueing p99 %.0f ms, %d drops counted" % (res["queue"], res["drops"]))
    print("load: %s (goal: report; queueing <= 33 ms)" % ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
