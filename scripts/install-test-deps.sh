#!/usr/bin/env bash
# Installs what the project needs beyond Rust, from Debian's packages (and crates.io):
#
#   scripts/install-test-deps.sh            the test suite: sip-tester (SIPp 3.6, the
#                                           black-box tests' SIP peer, with its RTP pcaps
#                                           under /usr/share/sip-tester/), kamailio (a
#                                           record-routing proxy in front of the engine),
#                                           a PostgreSQL
#                                           server on 127.0.0.1:5432 trusting user
#                                           postgres (the store tests), prometheus
#                                           (promtool, for the rules tests), chromium,
#                                           node and playwright-core (the wallboard
#                                           and agent desk page tests; the desk's
#                                           fake microphone is checked once installed)
#   scripts/install-test-deps.sh --bench    also the load scripts and fuzzing: sox (soxi
#                                           checks WAV lengths), curl, jq, time,
#                                           kamailio (benches/load/cpu-per-call.sh's
#                                           tm-stateful proxy; the tests want it too),
#                                           and cargo-fuzz; for scripts/chaos.sh sqlite3
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
# Kamailio: the record-routing proxy of tests/sip_features.rs (a trunk behind an SBC).
[ -x /usr/sbin/kamailio ] || need+=(kamailio)

# --- supervisors (deploy/) ---------------------------------------------------------
# promtool (Debian package prometheus) checks and unit-tests deploy/prometheus/ rules
# in tests/deploy_rules.rs. The package also ships the Prometheus server; its service
# is not needed by the tests.
want promtool prometheus
# systemd-analyze verifies the unit and rates its sandbox (tests/deploy_service.rs).
want systemd-analyze systemd
# tests/wallboard_browser.rs renders the wallboard in headless Chromium, driven by node
# and playwright-core (installed into tests/browser/node_modules below); a CJK font so
# its screenshot shows the Chinese labels.
want chromium chromium
want node nodejs
want npm npm
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || need+=(fonts-wqy-zenhei)
# --- end supervisors ---------------------------------------------------------------
if [ "$bench" = 1 ]; then
  want soxi sox
  want curl curl
  want jq jq
  want taskset util-linux
  [ -x /usr/bin/time ] || need+=(time)
  # The per-call CPU yardstick of benches/load/cpu-per-call.sh. Also wanted above for
  # the tests; named here so --bench stands on its own. Listed once (sort -u below).
  [ -x /usr/sbin/kamailio ] || need+=(kamailio)
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
  # A package wanted twice (sip-tester for the binary and the pcaps, kamailio for the
  # tests and --bench, sox for --bench and --prompts) is listed once.
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "install-test-deps: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
else
  echo "install-test-deps: every package is installed"
fi

# --- supervisors: playwright-core for tests/wallboard_browser.rs and desk_browser.rs -
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
  echo "install-test-deps: installing playwright-core into tests/browser"
  npm ci --prefix "$browser_dir" --no-audit --no-fund
fi
# tests/desk_browser.rs takes calls in Chromium with a WAV as its microphone, launched
# (by tests/browser/desk.mjs) with these flags:
#   --use-fake-device-for-media-stream --use-fake-ui-for-media-stream
#   --use-file-for-fake-audio-capture=<wav> --allow-loopback-in-peer-connection
#   --autoplay-policy=no-user-gesture-required
# Check once that this Chromium takes them: getUserMedia must give an audio track.
desk_wav="$(cd "$browser_dir/../.." && pwd)/dialplans/prompts/menu.wav"
mic_page="$(mktemp --suffix=.html)"
echo '<!doctype html><title>microphone</title>' >"$mic_page"
if (cd "$browser_dir" && MIC_PAGE="$mic_page" MIC_WAV="$desk_wav" node --input-type=module -e '
import { chromium } from "playwright-core";
const browser = await chromium.launch({
  executablePath: process.env.HOTLINE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${process.env.MIC_WAV}`, "--allow-loopback-in-peer-connection"],
});
const page = await browser.newPage();
await page.goto(`file://${process.env.MIC_PAGE}`);
const tracks = await page.evaluate(async () =>
  (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks().length);
await browser.close();
process.exit(tracks === 1 ? 0 : 1);
'); then
  echo "install-test-deps: chromium takes a WAV as its microphone (the desk test's flags)"
else
  echo "install-test-deps: chromium refused the fake microphone flags; tests/desk_browser.rs will fail" >&2
  rm -f "$mic_page"
  exit 1
fi
rm -f "$mic_page"
# --- end supervisors ---------------------------------------------------------------

if [ "$bench" = 1 ] && ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "install-test-deps: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# ---- PostgreSQL for the work order store's conformance tests (issue 8) ---------------
# The tests create a fresh database per test on 127.0.0.1:5432 as user postgres with
# trust auth, and fail (saying how to start one) when none answers. On a fresh CI
# machine this installs Debian's postgresql, lets user postgres in from 127.0.0.1
# without a password (test machines only: never do this on a server that matters),
# and starts the cluster. Left alone when a server already answers that way.
pg_answers() {
  command -v psql >/dev/null 2>&1 &&
    psql "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3" \
      -Atqc 'SELECT 1' >/dev/null 2>&1
}
if pg_answers; then
  echo "install-test-deps: PostgreSQL answers on 127.0.0.1:5432"
else
  pg_sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    pg_sudo="sudo"
  fi
  if ! command -v pg_lsclusters >/dev/null 2>&1; then
    echo "install-test-deps: installing postgresql"
    $pg_sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $pg_sudo apt-get install -y -qq --no-install-recommends postgresql
  fi
  pg_version=$(pg_lsclusters -h | awk 'NR == 1 { print $1 }')
  pg_cluster=$(pg_lsclusters -h | awk 'NR == 1 { print $2 }')
  if [ -z "$pg_version" ]; then
    pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    pg_cluster=main
    $pg_sudo pg_createcluster "$pg_version" "$pg_cluster"
  fi
  pg_hba="/etc/postgresql/$pg_version/$pg_cluster/pg_hba.conf"
  trust_line="host all postgres 127.0.0.1/32 trust"
  if ! $pg_sudo grep -qxF "$trust_line" "$pg_hba"; then
    echo "install-test-deps: trust auth for user postgres from 127.0.0.1 (test machines only)"
    $pg_sudo sed -i "1i $trust_line" "$pg_hba"
  fi
  $pg_sudo pg_ctlcluster "$pg_version" "$pg_cluster" start 2>/dev/null ||
    $pg_sudo pg_ctlcluster "$pg_version" "$pg_cluster" reload
  for _ in $(seq 1 30); do
    pg_answers && break
    sleep 1
  done
  if pg_answers; then
    echo "install-test-deps: PostgreSQL $pg_version answers on 127.0.0.1:5432"
  else
    echo "install-test-deps: PostgreSQL $pg_version did not come up on 127.0.0.1:5432" >&2
    exit 1
  fi
fi
