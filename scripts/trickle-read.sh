#!/usr/bin/env bash
# Reads a trickle channel segment by segment from seq 0 (waiting for the
# channel to appear) and appends every segment's bytes to OUT, until the
# channel closes (Lp-Trickle-Closed or 404 after data) or TIMEOUT seconds pass.
# Usage: scripts/trickle-read.sh CHANNEL_URL OUT [TIMEOUT]
set -u
url=${1:?usage: trickle-read.sh CHANNEL_URL OUT [TIMEOUT]}
out=${2:?}
limit=${3:-120}
: > "$out"
end=$((SECONDS + limit))
until curl -sf -o /dev/null "$url/next"; do
	[ $SECONDS -ge $end ] && exit 1
	sleep 0.1
done
seq=0
hdr=$(mktemp)
body=$(mktemp)
trap 'rm -f "$hdr" "$body"' EXIT
while [ $SECONDS -lt $end ]; do
	code=$(curl -s -m 40 -D "$hdr" -o "$body" -w '%{http_code}' "$url/$seq")
	if grep -qi '^Lp-Trickle-Closed' "$hdr" || [ "$code" = 404 ]; then
		break
	fi
	if [ "$code" = 470 ]; then
		seq=$(grep -i '^Lp-Trickle-Latest' "$hdr" | tr -dc '0-9')
		continue
	fi
	[ "$code" = 200 ] || { sleep 0.2; continue; }
	cat "$body" >> "$out"
	seq=$((seq + 1))
done
