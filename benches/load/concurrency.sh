#!/usr/bin/env bash
# Concurrent recorded calls (issue 4): for each N in LEVELS, a fresh engine holds N calls
# with G.711 RTP both ways (20 ms) and recording on, for HOLD_SECONDS each. Reports the
# engine's CPU and resident memory per call while all N are up, RTP lost inside the
# engine (what loadgen sent vs the engine's hotline_rtp_packets_received_total), the
# engine's own stream as loadgen received it (count, gaps > 40 ms), recording frames
# dropped (hotline_recording_frames_dropped_total), kernel UDP buffer drops, and checks
# every WAV's duration (soxi -D) against the call's length (within 1 %).
#
# The load comes from benches/load/loadgen.rs (a cargo example, not SIPp: SIPp replays
# a fixed 8 s pcap from one thread per call and counts no received RTP). loadgen runs
# on LOAD_CPUS, the engine on ENGINE_CPUS (taskset). Stops at the first level with a
# failed call. Bounded: each level lasts about N / RAMP_RATE + HOLD_SECONDS + drain.
#
#   benches/load/concurrency.sh                                  # 50 … 1000, 30 s each
#   LEVELS="20 50" HOLD_SECONDS=8 NOTE="validation run" benches/load/concurrency.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"

LEVELS=${LEVELS:-"50 100 200 400 600 800 1000"}
HOLD_SECONDS=${HOLD_SECONDS:-30}
RAMP_RATE=${RAMP_RATE:-100}
CODEC=${CODEC:-pcma}
NOTE=${NOTE:-}

need taskset curl awk soxi
WORK=$(mktemp -d /tmp/hotline-concurrency.XXXXXX)
LOADGEN_PID=
cleanup() {
    [ -n "$LOADGEN_PID" ] && kill "$LOADGEN_PID" 2>/dev/null
    stop_engine
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the engine and loadgen (cargo build --release)…" >&2
build_engine
(cd "$REPO" && cargo build --release --quiet --example loadgen) || die "building loadgen failed"
LOADGEN="$REPO/target/release/examples/loadgen"
echo "engine on CPU $ENGINE_CPUS, loadgen on CPU $LOAD_CPUS; work dir $WORK" >&2

# kv LINE KEY: the value of KEY=value in a loadgen summary line.
kv() {
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}

wait_for_event() {
    local log=$1 name=$2 seconds=$3
    for _ in $(seq 1 $((seconds * 10))); do
        grep -q "^event=$name" "$log" && return 0
        kill -0 "$LOADGEN_PID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

level() {
    local calls=$1
    local dir="$WORK/n$calls"
    write_config "$dir"
    start_engine "$dir"
    sleep 1
    local rss_idle udp0
    rss_idle=$(rss_kb "$ENGINE_PID")
    udp0=$(udp_rcvbuf_errors)
    local ramp_seconds=$(((calls + RAMP_RATE - 1) / RAMP_RATE))
    taskset -c "$LOAD_CPUS" "$LOADGEN" --target "127.0.0.1:$ENGINE_SIP_PORT" --calls "$calls" \
        --hold-secs "$HOLD_SECONDS" --rate "$RAMP_RATE" --codec "$CODEC" \
        --calls-csv "$dir/calls.csv" >"$dir/loadgen.out" 2>"$dir/loadgen.err" &
    LOADGEN_PID=$!

    # CPU and memory while every call is up: from all answered (plus a second for the
    # answers' own work to settle) to the first hang-up; the last sample before it counts.
    local ticks0="" t0="" ticks1="" t1="" rss_peak=0
    if wait_for_event "$dir/loadgen.out" all_answered $((ramp_seconds + 30)); then
        sleep 1
        ticks0=$(cpu_ticks "$ENGINE_PID")
        t0=$(now)
        while ! grep -q '^event=first_hangup' "$dir/loadgen.out" && kill -0 "$LOADGEN_PID" 2>/dev/null; do
            ticks1=$(cpu_ticks "$ENGINE_PID")
            t1=$(now)
            local rss
            rss=$(rss_kb "$ENGINE_PID")
            [ "$rss" -gt "$rss_peak" ] && rss_peak=$rss
            sleep 0.5
        done
    fi
    wait "$LOADGEN_PID" || true
    LOADGEN_PID=
    local summary
    summary=$(grep '^summary' "$dir/loadgen.out" || echo "summary answered=0 failed=$calls")

    for _ in $(seq 1 300); do
        case $(metric hotline_calls_active) in
            0) break ;;
            n/a) capture_hang "$dir"; break ;;
        esac
        sleep 0.1
    done
    local engine_received engine_sent frames_dropped written
    engine_received=$(metric hotline_rtp_packets_received_total)
    engine_sent=$(metric hotline_rtp_packets_sent_total)
    frames_dropped=$(metric hotline_recording_frames_dropped_total)
    written=$(metric hotline_recordings_written_total)
    local udp1
    udp1=$(udp_rcvbuf_errors)
    stop_engine

    local answered failed sent received expected late max_gap held_min held_max p50 p99
    answered=$(kv "$summary" answered)
    failed=$(kv "$summary" failed)
    sent=$(kv "$summary" rtp_sent)
    received=$(kv "$summary" rtp_received)
    expected=$(kv "$summary" rtp_expected_from_engine)
    late=$(kv "$summary" rtp_late_from_engine)
    max_gap=$(kv "$summary" max_gap_ms)
    held_min=$(kv "$summary" held_min_s)
    held_max=$(kv "$summary" held_max_s)
    p50=$(kv "$summary" invite_200_p50_ms)
    p99=$(kv "$summary" invite_200_p99_ms)

    # Every WAV against the call lengths loadgen measured (200 OK to BYE): within 1 %.
    local wavs=0 off=0 dmin="n/a" dmax="n/a"
    if [ -d "$dir/recordings" ]; then
        find "$dir/recordings" -name '*.wav' -print0 | xargs -0 -r soxi -D >"$dir/durations" 2>/dev/null || true
        read -r wavs off dmin dmax < <(awk -v lo="$held_min" -v hi="$held_max" '
            { n++; d = $1; if (n == 1 || d < mn) mn = d; if (d > mx) mx = d
              if (d < lo * 0.99 || d > hi * 1.01) bad++ }
            END { if (n == 0) print 0, 0, "n/a", "n/a"; else printf "%d %d %.2f %.2f\n", n, bad, mn, mx }' "$dir/durations")
    fi

    local cpu="n/a" per_call="n/a"
    if [ -n "$t1" ] && [ -n "$t0" ]; then
        cpu=$(cpu_percent "$ticks0" "$ticks1" "$(elapsed "$t0" "$t1")")
    fi
    if [ "$rss_peak" -gt 0 ]; then
        per_call=$(awk -v a="$rss_idle" -v b="$rss_peak" -v n="$calls" 'BEGIN { printf "%.0f", (b - a) / n }')
    fi
    local lost="n/a (engine hung)"
    [ "$engine_received" != n/a ] &&
        lost=$(awk -v s="$sent" -v r="$engine_received" 'BEGIN { printf "%d", s - r }')
    # Set globals rather than print: level runs in this shell, not a $(…) subshell, so the
    # EXIT trap still sees (and stops) the engine and loadgen it started.
    printf -v LEVEL_ROW '| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s–%s |' \
        "$calls" "$answered" "$failed" "$p50" "$p99" "$cpu" \
        "$((rss_idle / 1024))" "$((rss_peak / 1024))" "$per_call" \
        "$sent" "$lost" "$received" "$expected" "$late" "$max_gap" "$frames_dropped" \
        "$((udp1 - udp0))" "$wavs/$written" "$off" "$dmin" "$dmax"
    LEVEL_FAILED=$failed
}

header='| calls | answered | failed | INVITE→200 p50 / p99 ms | engine CPU % of 1 core | RSS idle MB | RSS all up MB | KB per call | RTP sent to engine | lost in engine | engine RTP received / expected | late (gap > 40 ms) | max gap ms | recording frames dropped | kernel UDP drops | WAVs / written | WAVs off > 1 % | WAV s min–max |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'

rows=""
for calls in $LEVELS; do
    if [ "$HOLD_SECONDS" -lt $((calls / RAMP_RATE + 5)) ]; then
        die "HOLD_SECONDS=$HOLD_SECONDS is too short to have all $calls calls up at once at RAMP_RATE=$RAMP_RATE"
    fi
    level "$calls"
    echo "$LEVEL_ROW" >&2
    rows="$rows$LEVEL_ROW"$'\n'
    if [ "$LEVEL_FAILED" != 0 ]; then
        echo "stopping: $LEVEL_FAILED failed calls at N=$calls" >&2
        break
    fi
done

command="LEVELS=\"$LEVELS\" HOLD_SECONDS=$HOLD_SECONDS RAMP_RATE=$RAMP_RATE CODEC=$CODEC ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS benches/load/concurrency.sh"
{
    echo "$header"
    printf '%s' "$rows"
    echo
    echo "Load: loadgen (benches/load/loadgen.rs), $CODEC 20 ms both ways, calls started at $RAMP_RATE/s and held $HOLD_SECONDS s each; recording on;"
    echo "engine pinned to CPU $ENGINE_CPUS, loadgen to CPU $LOAD_CPUS. CPU and RSS are sampled while all calls are up; KB per call = (RSS all up − RSS idle) / calls."
    echo "Lost in engine = RTP loadgen sent − hotline_rtp_packets_received_total. WAVs are checked against each call's 200-OK-to-BYE time."
} | record_results "concurrency: recorded calls with RTP both ways" "$command" "$NOTE"
