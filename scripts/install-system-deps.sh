#!/usr/bin/env bash
# Debian packages svc-host and its tests use: audio I/O, the synthetic voices the training recipes
# and tests speak with, JACK and OSC tools for the live server's tests.
# Run as root (or with sudo). Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v apt-get >/dev/null; then
  echo "install-system-deps: apt-get not found; install the packages listed in $0 with your system's package manager" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  libsndfile1
  flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng
  festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita
  festvox-czech-ph festvox-ca-ona-hts
  jackd2 libjack-jackd2-0 liblo-tools sox
  chromium
)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
