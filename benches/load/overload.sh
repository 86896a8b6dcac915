#!/usr/bin/env bash
# Overload (issue 12): offers the engine MULTIPLIERS × CLEAN_RATE calls/s of short calls
# (benches/load/uac_overload.xml) for DURATION seconds each, first with overload control
# at the edge as shipped, then with it switched off by config (the same binary), and
# reports per run: goodput (calls the engine answered per second, from its own
# counters), calls shed with 503 (by the transport, and by admission), INVITE→200
# latency of the admitted calls (SIPp -trace_rtt), the engine's CPU during the flood
# and in the 5 s that start 5 s after it, and whether a probe of 20 calls right after
# is clean.
#
# SIPp runs on LOAD_CPUS, the engine on ENGINE_CPUS (taskset). Bounded: each run lasts
# DURATION plus a drain of at most 60 s.
#
#   CLEAN_RATE=1200 benches/load/overload.sh                 # 2× and 5× for 30 s, ~10 min
#   CLEAN_RATE=300 MULTIPLIERS="2" DURATION=5 MODES=shed NOTE="validation" benches/load/overload.sh
#   OVERLOAD_BACKLOG=64 OVERLOAD_LAG_MS=20 MODES=shed benches/load/overload.sh   # other thresholds
set -euo pipefail
source "$(dirname "$0")/common.sh"

CLEAN_RATE=${CLEAN_RATE:-1200}
MULTIPLIERS=${MULTIPLIERS:-"2 5"}
DURATION=${DURATION:-30}
HOLD_MS=${HOLD_MS:-500}
MODES=${MODES:-"shed noshed"}
BUFF_SIZE=4194304
UAC_PORT=${UAC_PORT:-25080}
NOTE=${NOTE:-}
SCENARIO="$REPO/benches/load/uac_overload.xml"
PROBE_SCENARIO="$REPO/benches/load/uac_short.xml"

need sipp taskset curl awk
WORK=$(mktemp -d /tmp/hotline-overload.XXXXXX)
cleanup() {
    stop_engine
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# The sum of every series of a metric (all label sets), 0 when absent.
metric_sum() {
    local page
    if page=$(curl -sf -m 5 "http://127.0.0.1:$ENGINE_HTTP_PORT/metrics"); then
        echo "$page" | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $2 } END { print s + 0 }'
    else
        echo "n/a"
    fi
}

# flood MODE MULTIPLIER -> one table row
flood() {
    local mode=$1 multiplier=$2
    local rate=$((CLEAN_RATE * multiplier))
    local calls=$((rate * DURATION))
    local dir="$WORK/$mode-$multiplier"
    mkdir -p "$dir"
    local answered0 shed0 refused0 ticks0 t0
    answered0=$(metric_sum hotline_calls_answered_total)
    shed0=$(metric_sum hotline_overload_shed_total)
    refused0=$(metric_sum hotline_calls_rejected_total)
    ticks0=$(cpu_ticks "$ENGINE_PID")
    t0=$(now)
    (cd "$dir" && timeout $((DURATION * 3 + 60)) taskset -c "$LOAD_CPUS" \
        sipp "127.0.0.1:$ENGINE_SIP_PORT" -sf "$SCENARIO" -i 127.0.0.1 -p "$UAC_PORT" -mp 26000 \
        -r "$rate" -m "$calls" -l $((rate * 20 + 100)) -d "$HOLD_MS" \
        -buff_size "$BUFF_SIZE" -recv_timeout 10000 -nostdin \
        -trace_rtt -rtt_freq 100 -trace_stat -stf "$dir/stat.csv" -fd 1 \
        >"$dir/sipp.out" 2>&1) || true
    local ticks1 t1
    ticks1=$(cpu_ticks "$ENGINE_PID")
    t1=$(now)
    local flood_seconds
    flood_seconds=$(elapsed "$t0" "$t1")
    local answered shed refused
    # A reading the engine did not answer (too busy) makes its delta "n/a", never 0.
    delta() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print b - a }'; }
    answered=$(delta "$answered0" "$(metric_sum hotline_calls_answered_total)")
    shed=$(delta "$shed0" "$(metric_sum hotline_overload_shed_total)")
    refused=$(delta "$refused0" "$(metric_sum hotline_calls_rejected_total)")
    local failed
    failed=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 } END { split(last, v, ";"); print v[col["FailedCall(C)"]] + 0 }' \
        "$dir/stat.csv" 2>/dev/null || echo n/a)
    local p50="n/a" p99="n/a" p999="n/a" rtt
    rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1 || true)
    if [ -n "$rtt" ]; then
        awk -F';' 'NR > 1 { print $2 }' "$rtt" | sort -n >"$dir/latency"
        p50=$(percentile "$dir/latency" 0.50)
        p99=$(percentile "$dir/latency" 0.99)
        p999=$(percentile "$dir/latency" 0.999)
    fi
    local goodput
    goodput=$(awk -v n="$answered" -v s="$DURATION" 'BEGIN { if (n == "n/a") print "n/a"; else printf "%.0f", n / s }')
    local flood_cpu
    flood_cpu=$(cpu_percent "$ticks0" "$ticks1" "$flood_seconds")
    # Recovery: 5 s after the flood, the next 5 s of CPU, then a probe.
    sleep 5
    local ticks2 t2 ticks3 t3
    ticks2=$(cpu_ticks "$ENGINE_PID")
    t2=$(now)
    sleep 5
    ticks3=$(cpu_ticks "$ENGINE_PID")
    t3=$(now)
    local after_cpu
    after_cpu=$(cpu_percent "$ticks2" "$ticks3" "$(elapsed "$t2" "$t3")")
    wait_engine_idle 60
    local probe_failed
    (cd "$dir" && timeout 60 taskset -c "$LOAD_CPUS" \
        sipp "127.0.0.1:$ENGINE_SIP_PORT" -sf "$PROBE_SCENARIO" -i 127.0.0.1 -p "$UAC_PORT" -mp 26000 \
        -r 10 -m 20 -d 200 -buff_size "$BUFF_SIZE" -recv_timeout 5000 -nostdin \
        -trace_stat -stf "$dir/probe.csv" >"$dir/probe.out" 2>&1) || true
    probe_failed=$(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 } END { split(last, v, ";"); print v[col["FailedCall(C)"]] + 0 }' \
        "$dir/probe.csv" 2>/dev/null || echo n/a)
    local probe="clean"
    [ "$probe_failed" = 0 ] || probe="$probe_failed of 20 failed"
    printf '| %s | %s× (%s/s) | %s | %s | %s | %s | %s | %s / %s / %s | %s | %s | %s |\n' \
        "$mode" "$multiplier" "$rate" "$calls" "$goodput" \
        "$(awk -v g="$goodput" -v c="$CLEAN_RATE" 'BEGIN { if (g == "n/a") print "n/a"; else printf "%.0f %%", g * 100 / c }')" \
        "$shed" "$refused" "$p50" "$p99" "$p999" "$flood_cpu" "$after_cpu" "$probe"
    wait_engine_idle 60
}

header='| edge shedding | offered | calls | goodput calls/s | goodput / clean rate | shed at the edge | refused by admission | admitted INVITE→200 p50 / p99 / p99.9 ms | engine CPU % during | CPU % 5–10 s after | probe after |
|---|---|---|---|---|---|---|---|---|---|---|'

build_engine
rows=""
for mode in $MODES; do
    dir="$WORK/engine-$mode"
    write_config "$dir"
    if [ "$mode" = shed ] && [ -n "${OVERLOAD_BACKLOG:-}${OVERLOAD_LAG_MS:-}" ]; then
        # Other thresholds than the shipped ones, to tune them.
        [ -n "${OVERLOAD_BACKLOG:-}" ] &&
            sed -i -e "s|^overload_max_backlog = .*|overload_max_backlog = $OVERLOAD_BACKLOG|" "$dir/hotline.toml"
        [ -n "${OVERLOAD_LAG_MS:-}" ] &&
            sed -i -e "s|^overload_max_lag_ms = .*|overload_max_lag_ms = $OVERLOAD_LAG_MS|" "$dir/hotline.toml"
    fi
    if [ "$mode" = noshed ]; then
        # The same binary with overload control switched off: thresholds it never reaches.
        sed -i -e "s|^overload_max_backlog = .*|overload_max_backlog = 4000|" \
            -e "s|^overload_max_lag_ms = .*|overload_max_lag_ms = 10000|" "$dir/hotline.toml"
    fi
    echo "engine ($mode) on CPU $ENGINE_CPUS, SIPp on CPU $LOAD_CPUS; work dir $dir" >&2
    start_engine "$dir"
    for multiplier in $MULTIPLIERS; do
        row=$(flood "$mode" "$multiplier")
        echo "$row" >&2
        rows="$rows$row"$'\n'
    done
    stop_engine
done

command="${OVERLOAD_BACKLOG:+OVERLOAD_BACKLOG=$OVERLOAD_BACKLOG }${OVERLOAD_LAG_MS:+OVERLOAD_LAG_MS=$OVERLOAD_LAG_MS }CLEAN_RATE=$CLEAN_RATE MULTIPLIERS=\"$MULTIPLIERS\" DURATION=$DURATION HOLD_MS=$HOLD_MS MODES=\"$MODES\" ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS benches/load/overload.sh"
{
    echo "$header"
    printf '%s' "$rows"
    echo
    echo "Goodput: calls the engine answered per second of flood (its hotline_calls_answered_total); shed at the edge: hotline_overload_shed_total (stateless 503 from the transport);"
    echo "refused by admission: hotline_calls_rejected_total (503 from the switch at calls.max_concurrent). 'noshed' is the same binary with limits.overload_max_backlog = 4000 and"
    echo "limits.overload_max_lag_ms = 10000. Hold $HOLD_MS ms; engine pinned to CPU $ENGINE_CPUS, SIPp to CPU $LOAD_CPUS; latency is SIPp's -trace_rtt of the admitted calls."
} | record_results "overload: edge shedding on and off" "$command" "$NOTE"
