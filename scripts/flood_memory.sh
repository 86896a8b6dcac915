#!/usr/bin/env bash
# Memory after floods (issue 9 row 6): starts the release engine on 127.0.0.1 with a
# small admission limit, measures its resident memory (VmRSS) once warm, then floods it
# FLOODS times with INVITE_COUNT INVITEs from SIPp (benches/load/uac_short.xml at RATE
# calls/s; above calls.max_concurrent they are shed with 503), and measures RSS at the
# flood's peak and SETTLE_SECONDS after each flood ends. Appends a dated table to
# benches/RESULTS.md. The target: after a flood, RSS within 20 % of the pre-flood level
# (TARGET_RATIO, 1.20); the script exits 1 when a flood misses it, so it reads as a check.
#
# Bounded: each flood lasts about INVITE_COUNT / RATE seconds (SIPp is killed after
# three times that plus 30 s), then SETTLE_SECONDS.
#
#   scripts/flood_memory.sh                                   # 4 floods of 20,000
#   FLOODS=2 INVITE_COUNT=5000 NOTE="quick check" scripts/flood_memory.sh
set -euo pipefail
# Before common.sh, which has defaults of its own for these.
ENGINE_MAX_CONCURRENT=${ENGINE_MAX_CONCURRENT:-50}
ENGINE_SIP_PORT=${ENGINE_SIP_PORT:-25160}
ENGINE_HTTP_PORT=${ENGINE_HTTP_PORT:-29190}
source "$(dirname "$0")/../benches/load/common.sh"

FLOODS=${FLOODS:-4}
INVITE_COUNT=${INVITE_COUNT:-20000}
RATE=${RATE:-2000}
SETTLE_SECONDS=${SETTLE_SECONDS:-40}
TARGET_RATIO=${TARGET_RATIO:-1.20}
NOTE=${NOTE:-}
UAC_PORT=${UAC_PORT:-25180}
UAC_MEDIA_PORT=${UAC_MEDIA_PORT:-26000}
SCENARIO="$REPO/benches/load/uac_short.xml"

need sipp taskset curl awk
WORK=$(mktemp -d /tmp/hotline-flood.XXXXXX)
cleanup() {
    stop_engine
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# HOTLINE_BIN: measure a binary built elsewhere (build_engine takes it).
build_engine
write_config "$WORK"
start_engine "$WORK"
sleep 3
baseline=$(rss_kb "$ENGINE_PID")
echo "baseline RSS ${baseline} kB"

table="| flood | INVITEs | answered | failed (503, timeout) | RSS before (kB) | RSS peak (kB) | RSS ${SETTLE_SECONDS} s after (kB) | after / baseline |
|---|---|---|---|---|---|---|---|"
worst=0
for flood in $(seq 1 "$FLOODS"); do
    before=$(rss_kb "$ENGINE_PID")
    dir="$WORK/flood-$flood"
    mkdir -p "$dir"
    seconds=$((INVITE_COUNT / RATE))
    (cd "$dir" && timeout $((seconds * 3 + 30)) taskset -c "$LOAD_CPUS" \
        sipp "127.0.0.1:$ENGINE_SIP_PORT" -sf "$SCENARIO" -i 127.0.0.1 -p "$UAC_PORT" \
        -mp "$UAC_MEDIA_PORT" -r "$RATE" -m "$INVITE_COUNT" -l $((RATE * 10)) -d 200 \
        -buff_size 4194304 -recv_timeout 5000 -nostdin -trace_stat -stf "$dir/stat.csv" -fd 1 \
        >"$dir/sipp.out" 2>&1) &
    sipp_pid=$!
    peak=$before
    while kill -0 "$sipp_pid" 2>/dev/null; do
        rss=$(rss_kb "$ENGINE_PID")
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.5
    done
    wait "$sipp_pid" || true
    sleep "$SETTLE_SECONDS"
    after=$(rss_kb "$ENGINE_PID")
    read -r ok failed < <(awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 } END { split(last, v, ";");
          print v[col["SuccessfulCall(C)"]] + 0, v[col["FailedCall(C)"]] + 0 }' \
        "$dir/stat.csv" 2>/dev/null || echo "0 0")
    ratio=$(awk -v a="$after" -v b="$baseline" 'BEGIN { printf "%.2f", a / b }')
    worst=$(awk -v r="$ratio" -v w="$worst" 'BEGIN { print (r > w) ? r : w }')
    row="| $flood | $INVITE_COUNT | $ok | $failed | $before | $peak | $after | $ratio |"
    echo "$row"
    table="$table
$row"
done

met=$(awk -v w="$worst" -v t="$TARGET_RATIO" 'BEGIN { print (w <= t) ? "met" : "missed" }')
verdict="worst after/baseline ratio $worst (target ≤ $TARGET_RATIO: $met)"
echo "$verdict"
record_results "Memory after floods (issue 9 row 6)" \
    "FLOODS=$FLOODS INVITE_COUNT=$INVITE_COUNT RATE=$RATE SETTLE_SECONDS=$SETTLE_SECONDS scripts/flood_memory.sh" \
    "calls.max_concurrent = $ENGINE_MAX_CONCURRENT, baseline RSS $baseline kB once warm; $verdict${NOTE:+; $NOTE}" <<<"$table"
[ "$met" = met ]
