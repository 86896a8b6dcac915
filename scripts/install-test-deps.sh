#!/usr/bin/env bash
# Installs what the project needs beyond Rust, from Debian's packages (and crates.io):
#
#   scripts/install-test-deps.sh            the test suite: sip-tester (SIPp 3.6, the
#                                           black-box tests' SIP peer, with its RTP pcaps
#                                           under /usr/share/sip-tester/)
#   scripts/install-test-deps.sh --bench    also the load scripts and fuzzing: sox (soxi
#                                           checks WAV lengths), curl, jq, time, and
#                                           cargo-fuzz; for scripts/chaos.sh sqlite3
#                                           (locks the store) and python3 (slow
#                                           connections, WAV checks)
#   scripts/install-test-deps.sh --prompts  also espeak-ng and sox, to regenerate the
#                                           prompts (scripts/make-prompts.sh); the WAVs
#                                           are committed, so nothing else needs them
#
# Safe to run again: it installs only what is missing. Needs root (or sudo).
set -euo pipefail

bench=0
prompts=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --prompts) prompts=1 ;;
    *) echo "usage: $0 [--bench] [--prompts]" >&2; exit 64 ;;
  esac
done

need=()
want() { # want COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want sipp sip-tester
[ -f /usr/share/sip-tester/g711a.pcap ] || need+=(sip-tester)
if [ "$bench" = 1 ]; then
  want soxi sox
  want curl curl
  want jq jq
  want taskset util-linux
  [ -x /usr/bin/time ] || need+=(time)
  want sqlite3 sqlite3
  want python3 python3
fi
if [ "$prompts" = 1 ]; then
  want espeak-ng espeak-ng
  want sox sox
fi

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  # A package wanted twice (sip-tester for the binary and the pcaps) is listed once.
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "install-test-deps: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "install-test-deps: every package is installed"
fi

if [ "$bench" = 1 ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "install-test-deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
