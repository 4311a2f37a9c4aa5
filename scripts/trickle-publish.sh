#!/usr/bin/env bash
# Publishes a live test stream into a trickle channel in real time:
# testsrc2 video (H.264, keyframe every second) + a sine tone (AAC) as
# MPEG-TS, sent by ffmpeg as it encodes through one chunked POST (segment 0),
# so readers get the bytes live, as from a real trickle publisher. The
# channel is DELETEd at the end so readers see a clean end of stream.
# TRICKLE_PUBLISH_GATE=PATH: wait until PATH exists (at most 120 s) before
# sending, so a test can start the consumer first and the stream's timing
# does not depend on how long that took.
# Usage: scripts/trickle-publish.sh CHANNEL_URL [SECONDS] [WxH] [FPS] [noaudio]
set -euo pipefail
url=${1:?usage: trickle-publish.sh CHANNEL_URL [SECONDS] [WxH] [FPS] [noaudio]}
secs=${2:-20}
size=${3:-512x512}
fps=${4:-30}
audio=${5:-audio}
ain=(-f lavfi -i "sine=frequency=440:sample_rate=48000")
acodec=(-c:a aac -b:a 64k)
if [ "$audio" = noaudio ]; then ain=(); acodec=(-an); fi
if [ -n "${TRICKLE_PUBLISH_GATE:-}" ]; then
	for _ in $(seq 1 1200); do [ -e "$TRICKLE_PUBLISH_GATE" ] && break; sleep 0.1; done
fi
ffmpeg -hide_banner -loglevel error -nostdin -re \
	-f lavfi -i "testsrc2=size=${size}:rate=${fps}" "${ain[@]}" -t "$secs" \
	-c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g "$fps" -pix_fmt yuv420p \
	"${acodec[@]}" -flush_packets 1 -f mpegts -method POST -chunked_post 1 \
	-headers $'Content-Type: video/mp2t\r\n' "$url/0"
curl -s -o /dev/null -X DELETE "$url" || true
