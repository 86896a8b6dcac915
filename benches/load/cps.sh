#!/usr/bin/env bash
# Calls per second (issue 4): ramps the rate of short IVR-answered calls
# (INVITE -> 200 -> ACK -> hold -> BYE, benches/load/uac_short.xml) until more than
# 0.1 % fail or the achieved rate falls below 95 % of the target (someone saturated),
# first against the engine, then against SIPp's built-in `uas` (the baseline: no state,
# no media). Reports per step the achieved rate, INVITE->200 latency p50/p99/p99.9
# (SIPp -trace_rtt, 1 ms resolution), the engine's CPU and SIPp's; then the highest
# clean rate of each, their ratio, and the engine's latency at 80 % of its clean rate.
#
# SIPp runs on LOAD_CPUS, the engine (or the baseline uas) on ENGINE_CPUS (taskset).
# Every SIPp side uses -buff_size 4194304 (default socket buffers drop packets from
# about 4,000 calls/s). Bounded: each step lasts STEP_SECONDS plus the hold and a drain.
#
#   benches/load/cps.sh                                   # full ramp, ~10 min
#   RATES="20 50 100" STEP_SECONDS=3 NOTE="validation run" benches/load/cps.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"

RATES=${RATES:-"100 200 400 800 1200 1600 2400 3200 4800 6400 9600 12800 16000 20000"}
STEP_SECONDS=${STEP_SECONDS:-10}
HOLD_MS=${HOLD_MS:-500}
BUFF_SIZE=4194304
MAX_FAIL_PERMILLE=1   # 0.1 %
MIN_ACHIEVED_PCT=95
BASELINE_PORT=${BASELINE_PORT:-25070}
UAC_PORT=${UAC_PORT:-25080}
NOTE=${NOTE:-}
SCENARIO="$REPO/benches/load/uac_short.xml"

need sipp taskset curl awk /usr/bin/time
WORK=$(mktemp -d /tmp/hotline-cps.XXXXXX)
BASELINE_PID=
cleanup() {
    stop_engine
    [ -n "$BASELINE_PID" ] && kill "$BASELINE_PID" 2>/dev/null && wait "$BASELINE_PID" 2>/dev/null
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# step TARGET_PORT RATE SERVER_PID -> one table row; sets STEP_CLEAN=1/0
step() {
    local port=$1 rate=$2 server_pid=$3
    local calls=$((rate * STEP_SECONDS))
    local dir="$WORK/step-$port-$rate"
    mkdir -p "$dir"
    local ticks0 t0 ticks1 t1
    ticks0=$(cpu_ticks "$server_pid")
    t0=$(now)
    # -l: never let SIPp's concurrency cap be what limits the rate. -rtt_freq: SIPp dumps
    # response times only every that many calls; the rate divides the call count.
    (cd "$dir" && timeout $((STEP_SECONDS * 4 + 60)) taskset -c "$LOAD_CPUS" \
        /usr/bin/time -f "%U %S %e" -o "$dir/sipp.time" \
        sipp "127.0.0.1:$port" -sf "$SCENARIO" -i 127.0.0.1 -p "$UAC_PORT" -mp 26000 \
        -r "$rate" -m "$calls" -l $((rate * 20 + 100)) -d "$HOLD_MS" \
        -buff_size "$BUFF_SIZE" -recv_timeout 10000 -nostdin \
        -trace_rtt -rtt_freq "$rate" -trace_stat -stf "$dir/stat.csv" -fd 1 \
        >"$dir/sipp.out" 2>&1) || true
    ticks1=$(cpu_ticks "$server_pid")
    t1=$(now)
    local ok failed created
    read -r created ok failed < <(sipp_totals "$dir/stat.csv")
    # Calls SIPp never got to start count as failed too: the target was not met.
    failed=$((failed + calls - created))
    local rtt
    rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)
    local achieved="n/a" p50="n/a" p99="n/a" p999="n/a"
    if [ -n "$rtt" ]; then
        awk -F';' 'NR > 1 { print $2 }' "$rtt" | sort -n >"$dir/latency"
        p50=$(percentile "$dir/latency" 0.50)
        p99=$(percentile "$dir/latency" 0.99)
        p999=$(percentile "$dir/latency" 0.999)
        achieved=$(awk -F';' 'NR > 1 { n++; if (n == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
            END { if (n > 1 && hi > lo) printf "%.0f", (n - 1) / ((hi - lo) / 1000); else print "n/a" }' "$rtt")
    fi
    local fail_permille_x10
    fail_permille_x10=$(awk -v f="$failed" -v c="$calls" 'BEGIN { printf "%d", f * 10000 / c }')
    local fail_pct
    fail_pct=$(awk -v f="$failed" -v c="$calls" 'BEGIN { printf "%.2f", f * 100 / c }')
    local server_cpu sipp_cpu
    server_cpu=$(cpu_percent "$ticks0" "$ticks1" "$(elapsed "$t0" "$t1")")
    sipp_cpu=$(awk '{ if ($3 > 0) printf "%.1f", ($1 + $2) / $3 * 100; else print "n/a" }' "$dir/sipp.time" 2>/dev/null || echo n/a)
    STEP_CLEAN=1
    if [ "$fail_permille_x10" -gt $((MAX_FAIL_PERMILLE * 10)) ]; then STEP_CLEAN=0; fi
    if [ "$achieved" = "n/a" ] || [ $((achieved * 100)) -lt $((rate * MIN_ACHIEVED_PCT)) ]; then STEP_CLEAN=0; fi
    STEP_ACHIEVED=$achieved
    local verdict=clean
    [ "$STEP_CLEAN" = 1 ] || verdict=limit
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$rate" "$achieved" "$calls" "$ok" "$fail_pct" "$p50" "$p99" "$p999" "$server_cpu" "$sipp_cpu" "$verdict"
}

# ramp LABEL PORT SERVER_PID [engine] -> table rows; sets CLEAN_RATE (achieved rate of
# the last clean step) and CLEAN_TARGET.
ramp() {
    local label=$1 port=$2 server_pid=$3 is_engine=${4:-}
    CLEAN_RATE=0
    CLEAN_TARGET=0
    for rate in $RATES; do
        local row
        row=$(step "$port" "$rate" "$server_pid")
        echo "| $label $row"
        if [[ $row == *"| clean |" ]]; then
            CLEAN_TARGET=$rate
            CLEAN_RATE=$(echo "$row" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')
        else
            break
        fi
        [ -n "$is_engine" ] && wait_engine_idle
        sleep 1
    done
}

header='| server | target cps | achieved cps | calls | ok | failed % | INVITE→200 p50 ms | p99 ms | p99.9 ms | server CPU % of 1 core | SIPp CPU % | step |
|---|---|---|---|---|---|---|---|---|---|---|---|'

echo "building the engine (cargo build --release)…" >&2
build_engine
write_config "$WORK"
echo "engine on CPU $ENGINE_CPUS, SIPp on CPU $LOAD_CPUS; work dir $WORK" >&2

start_engine "$WORK"
engine_rows=$(ramp engine "$ENGINE_SIP_PORT" "$ENGINE_PID" engine)
echo "$engine_rows" >&2
engine_clean=$(echo "$engine_rows" | awk -F'|' '$13 ~ /clean/ { gsub(/ /, "", $4); r = $4 } END { print r + 0 }')
engine_clean_target=$(echo "$engine_rows" | awk -F'|' '$13 ~ /clean/ { gsub(/ /, "", $3); r = $3 } END { print r + 0 }')
at80_row=""
if [ "$engine_clean_target" -gt 0 ]; then
    wait_engine_idle
    rate80=$((engine_clean_target * 8 / 10))
    [ "$rate80" -lt 1 ] && rate80=1
    at80_row="| engine@80% $(step "$ENGINE_SIP_PORT" "$rate80" "$ENGINE_PID")"
    echo "$at80_row" >&2
fi
wait_engine_idle
answered=$(metric hotline_calls_answered_total)
written=$(metric hotline_recordings_written_total)
stop_engine

(cd "$WORK" && exec taskset -c "$ENGINE_CPUS" sipp -sn uas -i 127.0.0.1 -p "$BASELINE_PORT" -mp 27000 \
    -buff_size "$BUFF_SIZE" -nostdin >"$WORK/uas.out" 2>&1) &
BASELINE_PID=$!
sleep 1
kill -0 "$BASELINE_PID" 2>/dev/null || die "SIPp uas did not start: $(tail -5 "$WORK/uas.out")"
baseline_rows=$(ramp "sipp uas" "$BASELINE_PORT" "$BASELINE_PID")
echo "$baseline_rows" >&2
baseline_clean=$(echo "$baseline_rows" | awk -F'|' '$13 ~ /clean/ { gsub(/ /, "", $4); r = $4 } END { print r + 0 }')
kill "$BASELINE_PID" 2>/dev/null || true
wait "$BASELINE_PID" 2>/dev/null || true
BASELINE_PID=

ratio=$(awk -v e="$engine_clean" -v b="$baseline_clean" 'BEGIN { if (b > 0) printf "%.2f", e / b; else print "n/a" }')
top_rate=$(echo "$RATES" | awk '{ print $NF }')
ceiling_note=""
[ "$baseline_clean" -gt 0 ] && [ "$(echo "$baseline_rows" | tail -1 | grep -c clean)" = 1 ] &&
    ceiling_note=" (the baseline was clean at the top of RATES, $top_rate: its real ceiling is higher)"

command="RATES=\"$RATES\" STEP_SECONDS=$STEP_SECONDS HOLD_MS=$HOLD_MS ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS benches/load/cps.sh"
{
    echo "$header"
    echo "$engine_rows"
    [ -n "$at80_row" ] && echo "$at80_row"
    echo "$baseline_rows"
    echo
    echo "Highest clean rate: engine **$engine_clean** calls/s, SIPp uas **$baseline_clean** calls/s$ceiling_note; ratio engine / baseline **$ratio**."
    echo "Engine answered $answered calls and wrote $written recordings in its ramp. Hold $HOLD_MS ms, $STEP_SECONDS s per step, SIPp -buff_size $BUFF_SIZE on every side,"
    echo "engine (and the baseline uas) pinned to CPU $ENGINE_CPUS, SIPp uac to CPU $LOAD_CPUS. Clean = failures ≤ 0.1 % and achieved ≥ ${MIN_ACHIEVED_PCT} % of target."
    echo "Latency is SIPp's -trace_rtt: whole milliseconds from SIPp's own clock, which advances in steps of a few ms under load (0 = under one step)."
} | record_results "cps: engine vs SIPp uas" "$command" "$NOTE"
