#!/usr/bin/env bash
# Publishes a live test stream into a trickle channel in real time:
# testsrc2 video (H.264) + a sine tone (AAC), cut into ~1 s MPEG-TS segments,
# each POSTed as one trickle segment as soon as ffmpeg finishes it; the
# channel is DELETEd at the end so readers see a clean end of stream.
# Usage: scripts/trickle-publish.sh CHANNEL_URL [SECONDS] [WxH] [FPS] [noaudio]
set -euo pipefail
url=${1:?usage: trickle-publish.sh CHANNEL_URL [SECONDS] [WxH] [FPS] [noaudio]}
secs=${2:-20}
size=${3:-512x512}
fps=${4:-30}
audio=${5:-audio}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ain=(-f lavfi -i "sine=frequency=440:sample_rate=48000")
acodec=(-c:a aac -b:a 64k)
if [ "$audio" = noaudio ]; then ain=(); acodec=(-an); fi
ffmpeg -hide_banner -loglevel error -nostdin -re \
	-f lavfi -i "testsrc2=size=${size}:rate=${fps}" "${ain[@]}" -t "$secs" \
	-c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g "$fps" -pix_fmt yuv420p \
	"${acodec[@]}" -f segment -segment_time 1 -segment_format mpegts \
	-segment_list pipe:1 -segment_list_type flat "$dir/%d.ts" |
while read -r f; do
	curl -s -o /dev/null -X POST -H 'Content-Type: video/mp2t' \
		--data-binary "@$dir/$f" "$url/${f%.ts}" || echo "trickle-publish: POST $f failed" >&2
	rm -f "$dir/$f"
done
curl -s -o /dev/null -X DELETE "$url" || true
