#!/usr/bin/env bash
# Installs every Debian package ctrickle needs to build, run, test and benchmark.
# Idempotent: when everything is present it only checks and exits (well under a second).
# Usage: scripts/install-deps.sh [--check]   (--check: print what is missing, exit 1 if any)
set -euo pipefail

PKGS=(
	build-essential pkg-config clang llvm libclang-rt-14-dev
	libnng-dev libmsgpack-dev libevent-dev libcurl4-openssl-dev
	libjansson-dev libmicrohttpd-dev
	libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
	ffmpeg curl procps python3 gnuplot-nox openssl
	python3-dev python3-numpy python3-torch
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi

if [ "${1:-}" = "--check" ]; then
	echo "install-deps: missing: ${missing[*]}"
	echo "install-deps: run: sudo scripts/install-deps.sh"
	exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-deps: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi

echo "install-deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
echo "install-deps: done"
