#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, from Debian's packages:
#   sip-tester  SIPp 3.6, the SIP peer of the black-box tests, with its RTP pcaps
#               under /usr/share/sip-tester/
# and, for regenerating prompts (scripts/make-prompts.sh; the WAVs are committed, so
# the engine and the tests do not need them):
#   espeak-ng, sox
# Safe to run again: it installs only what is missing. Needs root (or sudo).
set -euo pipefail

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
[ -f /usr/share/sip-tester/g711a.pcap ] || need+=(sip-tester)
if [ "${HOTLINE_PROMPT_TOOLS:-0}" = 1 ]; then
  command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
  command -v sox >/dev/null 2>&1 || need+=(sox)
fi

if [ ${#need[@]} -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-test-deps: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
sipp -v 2>&1 | head -2 || true
