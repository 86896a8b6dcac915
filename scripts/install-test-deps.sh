#!/usr/bin/env bash
# Installs what the project needs beyond Rust, from Debian's packages (and crates.io):
#
#   scripts/install-test-deps.sh            the test suite: sip-tester (SIPp 3.6, the
#                                           black-box tests' SIP peer, with its RTP pcaps
#                                           under /usr/share/sip-tester/), and a
#                                           PostgreSQL server on 127.0.0.1:5432 trusting
#                                           user postgres (the PostgreSQL store tests)
#   scripts/install-test-deps.sh --bench    also the load scripts and fuzzing: sox (soxi
#                                           checks WAV lengths), curl, jq, time, and
#                                           cargo-fuzz
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
# --- callbacks: PostgreSQL for tests/callbacks_postgres.rs ---------------------------
want pg_ctlcluster postgresql
want psql postgresql-client
# --- end callbacks -------------------------------------------------------------------
if [ "$bench" = 1 ]; then
  want soxi sox
  want curl curl
  want jq jq
  want taskset util-linux
  [ -x /usr/bin/time ] || need+=(time)
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

# --- callbacks: a PostgreSQL server on 127.0.0.1:5432 that trusts user postgres -------
# The tests create a uniquely named database each and drop it afterwards. Trust for
# local TCP connections of user postgres only, on a test machine.
if ! psql -h 127.0.0.1 -p 5432 -U postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! $sudo grep -q '# hotline tests' "$hba"; then
    # pg_hba.conf is read top down: the first matching line decides.
    $sudo sed -i '1i host all postgres 127.0.0.1/32 trust # hotline tests' "$hba"
  fi
  echo "install-test-deps: starting PostgreSQL $version on 127.0.0.1:5432"
  $sudo pg_ctlcluster "$version" main start 2>/dev/null || $sudo pg_ctlcluster "$version" main reload
  for _ in $(seq 1 30); do
    psql -h 127.0.0.1 -p 5432 -U postgres -Atqc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 1
  done
fi
# --- end callbacks -------------------------------------------------------------------

if [ "$bench" = 1 ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "install-test-deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
