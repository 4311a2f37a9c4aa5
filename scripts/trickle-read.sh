#!/usr/bin/env bash
# Reads a trickle channel segment by segment from seq 0 (waiting for the
# channel to appear) and appends every segment's bytes to OUT, until the
# channel closes (Lp-Trickle-Closed or 404 after data) or TIMEOUT seconds pass.
# One kept-alive connection, so no segment is missed between two requests
# when the publisher DELETEs the channel right after its last segment.
# MODE "lines" writes each segment as one line (events, data channels).
# TRICKLE_READ_READY=PATH: create PATH once reading starts (tests wait on it).
# Usage: scripts/trickle-read.sh CHANNEL_URL OUT [TIMEOUT] [bytes|lines]
set -u
url=${1:?usage: trickle-read.sh CHANNEL_URL OUT [TIMEOUT] [bytes|lines]}
out=${2:?}
limit=${3:-120}
mode=${4:-bytes}
exec python3 - "$url" "$out" "$limit" "$mode" "${TRICKLE_READ_READY:-}" <<'PY'
import http.client, sys, time, urllib.parse
url, out, limit, mode, ready = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
u = urllib.parse.urlparse(url)
end = time.time() + limit
seq, seen, conn = 0, False, None
f = open(out, "wb")
while time.time() < end:
    try:
        if ready:
            open(ready, "w").close()
            ready = None
        if conn is None:
            cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
            conn = cls(u.hostname, u.port, timeout=max(1, end - time.time()))
        conn.request("GET", "%s/%d" % (u.path, seq))
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
    if body:
        f.write(body + (b"\n" if mode == "lines" else b""))
        f.flush()
    if r.getheader("Lp-Trickle-Closed"):
        break
    seq += 1
sys.exit(0 if seen else 1)
PY
