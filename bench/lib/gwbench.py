# Shared helpers of bench/soak and bench/load: a private trickle-server and
# gateway on ports picked at bind time, live test streams, the gateway's
# /metrics and /workers, its log, an events-channel reader, /proc figures of
# a process. Every process started here runs in its own process group and is
# killed by Procs.close().
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wall_ms():
    return time.time() * 1000.0


def request(method, url, body=None, timeout=10):
    """(status, text) of one request; (0, error) when it could not be made."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except Exception as e:  # refused, reset, timeout
        return 0, str(e)


def wait_for(secs, fn, step=0.05):
    end = time.time() + secs
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


class Procs:
    """The processes a benchmark started, each in its own process group."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.list = []

    def start(self, argv, log=None, **kw):
        out = open(log, "wb") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             cwd=ROOT, **kw)
        self.list.append(p)
        return p

    def close(self):
        for p in self.list:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.time() + 3
        for p in self.list:
            try:
                p.wait(max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()


def on_term():
    """SIGTERM and SIGHUP (a runner's timeout) unwind like Ctrl-C, so the
    finally blocks stop every process started here."""
    def raise_interrupt(sig, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)


def start_tserver(procs, build):
    """A trickle server on a free port; its base URL. Long runs publish one
    chunked segment for minutes: the server's idle sweep (which looks only
    at the start of a segment) and its segment cap are raised."""
    pf = os.path.join(procs.tmp, "ts.port")
    if os.path.exists(pf):
        os.unlink(pf)  # a previous server's
    procs.start([os.path.join(build, "trickle-server"), "--host", "127.0.0.1",
                 "--port", "0", "--port-file", pf, "--log-level", "warn",
                 "--idle-timeout-ms", "86400000", "--max-segment-mb", "2048"],
                log=os.path.join(procs.tmp, "trickle-server.log"))
    if not wait_for(10, lambda: os.path.exists(pf) and open(pf).read().strip()):
        raise RuntimeError("trickle-server did not start")
    return "http://127.0.0.1:%s" % open(pf).read().strip()


class Gateway:
    """build/gateway on a free loopback port, logging to a file."""

    def __init__(self, procs, build, args, log):
        self.log = log
        self.proc = procs.start([os.path.join(build, "gateway"), "--host", "127.0.0.1",
                                 "--port", "0", "--gpus", "none"] + args, log=log)
        self.pid = self.proc.pid
        port = wait_for(15, self._port)
        if not port:
            raise RuntimeError("gateway did not start: " + self.tail())
        self.api = "http://127.0.0.1:%s" % port
        if not wait_for(30, lambda: self.health() == "IDLE"):
            raise RuntimeError("gateway not IDLE: " + self.tail())

    def _port(self):
        m = re.search(r'msg="serving" port=(\d+)', self.text())
        return m.group(1) if m else None

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, n=10):
        return "\n".join(self.text().splitlines()[-n:])

    def health(self):
        st, body = request("GET", self.api + "/health", timeout=5)
        try:
            return json.loads(body).get("status") if st == 200 else None
        except ValueError:
            return None

    def workers(self):
        st, body = request("GET", self.api + "/workers", timeout=5)
        try:
            return json.loads(body)["workers"] if st == 200 else []
        except (ValueError, KeyError):
            return []

    def metrics(self):
        st, body = request("GET", self.api + "/metrics", timeout=5)
        return parse_metrics(body) if st == 200 else {}

    def start_stream(self, t, name, params, out=True, events=True):
        body = {"subscribe_url": "%s/%s" % (t, name),
                "gateway_request_id": name, "params": params}
        if out:
            body["publish_url"] = "%s/%s-out" % (t, name)
        if events:
            body["events_url"] = "%s/%s-events" % (t, name)
        return request("POST", self.api + "/stream/start", json.dumps(body))


def parse_metrics(text):
    """{'name{labels}': value} of a Prometheus text page."""
    m = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, val = line.rpartition(" ")
        try:
            m[name] = float(val)
        except ValueError:
            pass
    return m


def histogram(m, fam):
    """[(le, cumulative count)] of a histogram family, sorted, +Inf last."""
    out = []
    pre = fam + "_bucket{le=\""
    for k, v in m.items():
        if k.startswith(pre):
            le = k[len(pre):].split('"')[0]
            out.append((float("inf") if le == "+Inf" else float(le), v))
    return sorted(out)


def hist_delta(a, b):
    """Bucket counts of b minus a (a histogram taken later minus earlier)."""
    da = dict(a)
    return [(le, c - da.get(le, 0)) for le, c in b]


def hist_quantile(h, q):
    """(estimate, upper bound) of quantile q of a cumulative histogram: linear
    inside the bucket, as Prometheus' histogram_quantile does."""
    if not h or h[-1][1] <= 0:
        return float("nan"), float("nan")
    total = h[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in h:
        if c >= rank:
            if le == float("inf"):
                return prev_le, le
            frac = (rank - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return prev_le + (le - prev_le) * frac, le
        prev_le, prev_c = le, c
    return float("nan"), float("nan")


def hist_frac_le(h, bound):
    """Fraction of observations <= bound (bound must be a bucket edge)."""
    if not h or h[-1][1] <= 0:
        return float("nan")
    for le, c in h:
        if le >= bound:
            return c / h[-1][1]
    return 1.0


def publish_live(procs, url, secs, size="512x512", fps=30, audio="noaudio", log=None):
    """scripts/trickle-publish.sh: ffmpeg -re encoding testsrc2 live."""
    return procs.start(["scripts/trickle-publish.sh", url, str(secs), size, str(fps), audio],
                       log=log)


def publish_file(procs, url, path, secs, log=None):
    """ffmpeg -re -stream_loop of an encoded file, stream-copied (cheap)."""
    return procs.start(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                        "-stream_loop", "-1", "-i", path, "-t", str(secs), "-c", "copy",
                        "-flush_packets", "1", "-f", "mpegts", "-method", "POST",
                        "-chunked_post", "1", url + "/0"], log=log)


def channel_exists(url):
    return request("GET", url + "/next", timeout=2)[0] == 200


class EventsReader(threading.Thread):
    """Reads a trickle events channel from seq 0, one JSON message per
    segment, until stop() or the channel closes."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = urllib.parse.urlparse(url)
        self.events = []
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def run(self):
        seq, seen, conn = 0, False, None
        while not self._halt.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.url.hostname, self.url.port,
                                                      timeout=2)
                conn.request("GET", "%s/%d" % (self.url.path, seq))
                r = conn.getresponse()
                body = r.read()
            except Exception:
                conn = None
                time.sleep(0.05)
                continue
            if r.status == 404:
                if seen:
                    break
                time.sleep(0.05)
                continue
            if r.status == 470:
                seq = int(r.getheader("Lp-Trickle-Latest", seq + 1))
                continue
            if r.status != 200:
                time.sleep(0.05)
                continue
            seen = True
            try:
                self.events.append(json.loads(body)["event"])
            except (ValueError, KeyError, TypeError):
                pass
            if r.getheader("Lp-Trickle-Closed"):
                break
            seq += 1

    def of(self, typ):
        return [e for e in list(self.events) if e.get("type") == typ]


def proc_figures(pid):
    """RSS (KiB), open fds, memfd mappings, threads, child pids of a process."""
    f = {"rss_kb": -1, "fds": -1, "memfd_maps": -1, "threads": -1, "children": []}
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                f["rss_kb"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                f["threads"] = int(line.split()[1])
        f["fds"] = len(os.listdir("/proc/%d/fd" % pid))
        f["memfd_maps"] = sum(1 for l in open("/proc/%d/maps" % pid) if "memfd:" in l)
        f["children"] = children(pid)
    except OSError:
        pass
    return f


def children(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                out += [int(x) for x in open("/proc/%d/task/%s/children" % (pid, t)).read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return sorted(set(out))


def proc_state(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pct(vals, q):
    """Nearest-rank percentile (q in 0..1) of a list; nan when empty."""
    v = sorted(x for x in vals if x is not None)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 1)) - 1))
    return v[k]


LOG_TS = re.compile(r"^ts=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z ")


def log_ms(line):
    """The wall-clock ms of a logfmt line's ts=, or None."""
    m = LOG_TS.match(line)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000.0 + ms


def logfmt(line):
    """The key=value pairs of a logfmt line (quoted values unquoted)."""
    return {k: (v[1:-1] if v.startswith('"') else v)
            for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)}
