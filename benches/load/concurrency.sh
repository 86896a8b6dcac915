#!/usr/bin/env bash
# Concurrent recorded calls (issue 4): for each N in LEVELS, a fresh engine holds N calls
# with G.711 RTP both ways (20 ms) and recording on, for HOLD_SECONDS each. Reports the
# engine's CPU and resident memory per call while all N are up, RTP lost inside the
# engine (what loadgen sent vs the engine's hotline_rtp_packets_received_total), the
# engine's own stream as loadgen received it (count, gaps > 40 ms), recording frames
# dropped (hotline_recording_frames_dropped_total), kernel UDP buffer drops, and checks
# every WAV's duration (soxi -D) against the call's length (within 1 %).
#
# MODE=bridged: each level is N caller + agent pairs (issue 12). loadgen also plays N
# agents' phones (agents AGENT_FIRST…, written into this run's own agents file with
# password AGENT_PASSWORD_PREFIX + number): they register with digest, are logged in
# through the API, answer the call the ACD offers after the greeting, and send and count
# RTP, so every call is two legs with RTP both ways, bridged and recorded in one stereo
# WAV. CPU and memory are sampled while all N pairs are bridged; RTP is counted on both
# legs (into the engine: what loadgen sent vs what the engine received; out of it: gaps
# in each leg's RTP sequence numbers as loadgen received them).
#
# The load comes from benches/load/loadgen.rs (a cargo example, not SIPp: SIPp replays
# a fixed 8 s pcap from one thread per call and counts no received RTP). loadgen runs
# on LOAD_CPUS, the engine on ENGINE_CPUS (taskset). Stops at the first level with a
# failed call. Bounded: each level lasts about N / RAMP_RATE + HOLD_SECONDS + drain.
#
#   benches/load/concurrency.sh                                  # 50 … 1000, 30 s each
#   LEVELS="20 50" HOLD_SECONDS=8 NOTE="validation run" benches/load/concurrency.sh
#   MODE=bridged PAIRS="50 100 200 500" benches/load/concurrency.sh  # pairs, 40 s each
set -euo pipefail

source "$(dirname "$0")/common.sh"

MODE=${MODE:-queued}
case $MODE in
    queued | bridged) ;;
    *) die "MODE is queued or bridged" ;;
esac

if [ "$MODE" = bridged ]; then
    LEVELS=${PAIRS:-${LEVELS:-"50 100 200 500"}}
    HOLD_SECONDS=${HOLD_SECONDS:-40}
else
    LEVELS=${LEVELS:-"50 100 200 400 600 800 1000"}
    HOLD_SECONDS=${HOLD_SECONDS:-30}
fi
AGENT_FIRST=${AGENT_FIRST:-5000}
AGENT_PASSWORD_PREFIX=${AGENT_PASSWORD_PREFIX:-bench-}
# Seconds from a caller's answer to its agent's: the greeting (prompts.greeting), the
# offer and the answer, with room to spare.
BRIDGE_DELAY=${BRIDGE_DELAY:-10}
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

# UDP datagrams the kernel dropped on the sockets of these processes (their receive
# buffers overflowed): /proc/net/udp's per-socket drops, matched by inode. Unlike the
# host-wide counter, a neighbour's traffic on a shared machine does not count.
socket_drops() {
    local pid
    for pid in "$@"; do
        ls -l "/proc/$pid/fd" 2>/dev/null
    done | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' |
        awk 'NR == FNR { want[$1] = 1; next } FNR > 1 && ($10 in want) { d += $13 } END { print d + 0 }' \
            - /proc/net/udp
}

# The agents file of a bridged level: the default queue and one agent per pair, each
# with the password loadgen derives from its number.
write_agents() {
    local file=$1 pairs=$2
    {
        echo '# Written by benches/load/concurrency.sh MODE=bridged: one agent per pair.'
        echo '[[queues]]'
        echo 'name = "general"'
        echo 'strategy = "longest_idle"'
        echo 'max_wait_seconds = 300'
        echo 'wrap_up_seconds = 5'
        local i
        for i in $(seq 0 $((pairs - 1))); do
            printf '\n[[agents]]\nid = "%s"\npassword = "%s%s"\nskills = { general = 5 }\nqueues = ["general"]\n' \
                $((AGENT_FIRST + i)) "$AGENT_PASSWORD_PREFIX" $((AGENT_FIRST + i))
        done
    } >"$file"
}

level() {
    local calls=$1
    local dir="$WORK/n$calls"
    local agent_args=() ready_event=all_answered settle=$(((calls + RAMP_RATE - 1) / RAMP_RATE + 30))
    mkdir -p "$dir"
    if [ "$MODE" = bridged ]; then
        AGENTS_FILE="$dir/agents.toml"
        write_agents "$AGENTS_FILE" "$calls"
    fi
    write_config "$dir"
    if [ "$MODE" = bridged ]; then
        local token
        token=$(awk -F'"' '/^token = / { print $2; exit }' "$dir/hotline.toml")
        agent_args=(--agents "$calls" --agent-first "$AGENT_FIRST"
            --agent-password-prefix "$AGENT_PASSWORD_PREFIX"
            --api "127.0.0.1:$ENGINE_HTTP_PORT" --api-token "$token" --agents-csv "$dir/agents.csv")
        ready_event=all_bridged
        settle=$((settle + BRIDGE_DELAY + 60))
    fi
    start_engine "$dir"
    sleep 1
    local rss_idle udp0
    rss_idle=$(rss_kb "$ENGINE_PID")
    udp0=$(udp_rcvbuf_errors)
    taskset -c "$LOAD_CPUS" "$LOADGEN" --target "127.0.0.1:$ENGINE_SIP_PORT" --calls "$calls" \
        --hold-secs "$HOLD_SECONDS" --rate "$RAMP_RATE" --codec "$CODEC" \
        --calls-csv "$dir/calls.csv" "${agent_args[@]}" >"$dir/loadgen.out" 2>"$dir/loadgen.err" &
    LOADGEN_PID=$!

    # CPU and memory while every call is up (bridged: every pair): from then (plus a
    # second for the answers' own work to settle) to the first hang-up; the last sample
    # before it counts. loadgen's own CPU is sampled too: a saturated generator would
    # make the engine look better than it is.
    local ticks0="" t0="" ticks1="" t1="" rss_peak=0 lg_ticks0="" lg_ticks1="" load_avg="" drops="n/a"
    if wait_for_event "$dir/loadgen.out" "$ready_event" "$settle"; then
        sleep 1
        ticks0=$(cpu_ticks "$ENGINE_PID")
        lg_ticks0=$(cpu_ticks "$LOADGEN_PID")
        t0=$(now)
        load_avg=$(cut -d' ' -f1 /proc/loadavg)
        while ! grep -q '^event=first_hangup' "$dir/loadgen.out" && kill -0 "$LOADGEN_PID" 2>/dev/null; do
            ticks1=$(cpu_ticks "$ENGINE_PID")
            lg_ticks1=$(cpu_ticks "$LOADGEN_PID" 2>/dev/null || echo "$lg_ticks1")
            t1=$(now)
            local rss
            rss=$(rss_kb "$ENGINE_PID")
            [ "$rss" -gt "$rss_peak" ] && rss_peak=$rss
            [ "$MODE" = bridged ] && drops=$(socket_drops "$ENGINE_PID" "$LOADGEN_PID")
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
    # New INVITEs the engine shed with 503 (its overload control), by reason.
    local shed
    shed=$(curl -sf -m 5 "http://127.0.0.1:$ENGINE_HTTP_PORT/metrics" | awk '
        /^hotline_overload_shed_total/ { r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r)
            if ($2 > 0) { printf "%s%s %d", sep, r, $2; sep = ", " } }
        END { if (sep == "") printf "0" }' || echo n/a)
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

    local cpu="n/a" cpu2="n/a" lg_cpu="n/a" per_call="n/a"
    if [ -n "$t1" ] && [ -n "$t0" ]; then
        cpu=$(cpu_percent "$ticks0" "$ticks1" "$(elapsed "$t0" "$t1")")
        cpu2=$(awk -v c="$cpu" 'BEGIN { if (c == "n/a") print c; else printf "%.1f", c / 2 }')
        [ -n "$lg_ticks1" ] && lg_cpu=$(cpu_percent "$lg_ticks0" "$lg_ticks1" "$(elapsed "$t0" "$t1")")
    fi
    if [ "$rss_peak" -gt 0 ]; then
        per_call=$(awk -v a="$rss_idle" -v b="$rss_peak" -v n="$calls" 'BEGIN { printf "%.0f", (b - a) / n }')
    fi
    if [ "$MODE" = bridged ]; then
        local a_answered a_failed a_sent a_received a_expected a_lost a_late a_max_gap a_tail c_lost
        a_answered=$(kv "$summary" agents_answered)
        a_failed=$(kv "$summary" agents_failed)
        a_sent=$(kv "$summary" agent_rtp_sent)
        a_received=$(kv "$summary" agent_rtp_received)
        a_expected=$(kv "$summary" agent_rtp_expected_from_engine)
        a_lost=$(kv "$summary" agent_rtp_lost_from_engine)
        a_late=$(kv "$summary" agent_rtp_late_from_engine)
        a_max_gap=$(kv "$summary" agent_max_gap_ms)
        a_tail=$(kv "$summary" agent_tail_sent)
        c_lost=$(kv "$summary" rtp_lost_from_engine)
        local lost="n/a (engine hung)" lost_net="n/a"
        if [ "$engine_received" != n/a ] && [ -n "$a_sent" ]; then
            lost=$(awk -v s="$sent" -v a="$a_sent" -v r="$engine_received" 'BEGIN { printf "%d", s + a - r }')
            lost_net=$(awk -v l="$lost" -v t="$a_tail" 'BEGIN { printf "%d", l - t }')
        fi
        printf -v LEVEL_ROW '| %s | %s / %s | %s / %s | %s | %s / %s | %s | **%s** | %s | %s / %s | %s + %s | %s (%s after the tail) | %s / %s, lost %s | %s / %s, lost %s | %s / %s | %s / %s | %s | %s | %s | %s/%s | %s | %s–%s | %s |' \
            "$calls" "$answered" "$a_answered" "$failed" "${a_failed:-n/a}" "$shed" "$p50" "$p99" "$cpu" "$cpu2" "$lg_cpu" \
            "$((rss_idle / 1024))" "$((rss_peak / 1024))" "$sent" "${a_sent:-n/a}" "$lost" "$lost_net" \
            "$received" "$expected" "$c_lost" "${a_received:-n/a}" "${a_expected:-n/a}" "${a_lost:-n/a}" \
            "$late" "${a_late:-n/a}" "$max_gap" "${a_max_gap:-n/a}" "$frames_dropped" "$drops" "$((udp1 - udp0))" \
            "$wavs" "$written" "$off" "$dmin" "$dmax" "${load_avg:-n/a}"
        LEVEL_FAILED=$((failed + ${a_failed:-$calls}))
        return
    fi
    local lost="n/a (engine hung)"
    [ "$engine_received" != n/a ] &&
        lost=$(awk -v s="$sent" -v r="$engine_received" 'BEGIN { printf "%d", s - r }')
    # Set globals rather than print: level runs in this shell, not a $(…) subshell, so the
    # EXIT trap still sees (and stops) the engine and loadgen it started.
    printf -v LEVEL_ROW '| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s/%s | %s | %s–%s |' \
        "$calls" "$answered" "$failed" "$p50" "$p99" "$cpu" \
        "$((rss_idle / 1024))" "$((rss_peak / 1024))" "$per_call" \
        "$sent" "$lost" "$received" "$expected" "$late" "$max_gap" "$frames_dropped" \
        "$((udp1 - udp0))" "$wavs" "$written" "$off" "$dmin" "$dmax"
    LEVEL_FAILED=$failed
}

if [ "$MODE" = bridged ]; then
    header='| pairs | answered callers / agents | failed callers / agents | INVITEs shed (503) | caller INVITE→200 p50 / p99 ms | engine CPU % of 1 core | engine CPU % of 2 cores | loadgen CPU % of 1 core | RSS idle / all up MB | RTP sent to engine: callers + agents | lost in engine | caller legs: RTP received / expected from engine | agent legs: RTP received / expected from engine | late (gap > 40 ms) callers / agents | max gap ms callers / agents | recording frames dropped | UDP drops on engine + loadgen sockets | kernel UDP drops (whole host) | WAVs / written | WAVs off > 1 % | WAV s min–max | load avg (1 min) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
else
    header='| calls | answered | failed | INVITE→200 p50 / p99 ms | engine CPU % of 1 core | RSS idle MB | RSS all up MB | KB per call | RTP sent to engine | lost in engine | engine RTP received / expected | late (gap > 40 ms) | max gap ms | recording frames dropped | kernel UDP drops | WAVs / written | WAVs off > 1 % | WAV s min–max |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
fi

rows=""
for calls in $LEVELS; do
    min_hold=$((calls / RAMP_RATE + 5))
    [ "$MODE" = bridged ] && min_hold=$((min_hold + BRIDGE_DELAY))
    if [ "$HOLD_SECONDS" -lt "$min_hold" ]; then
        die "HOLD_SECONDS=$HOLD_SECONDS is too short to have all $calls calls up at once at RAMP_RATE=$RAMP_RATE"
    fi
    level "$calls"
    echo "$LEVEL_ROW" >&2
    rows="$rows$LEVEL_ROW"$'\n'
    if [ "$LEVEL_FAILED" != 0 ]; then
        echo "stopping: $LEVEL_FAILED failed calls or agents at N=$calls" >&2
        break
    fi
done

if [ "$MODE" = bridged ]; then
    command="MODE=bridged PAIRS=\"$LEVELS\" HOLD_SECONDS=$HOLD_SECONDS RAMP_RATE=$RAMP_RATE CODEC=$CODEC ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS benches/load/concurrency.sh"
    {
        echo "$header"
        printf '%s' "$rows"
        echo
        echo "Load: loadgen (benches/load/loadgen.rs) plays the callers and the agents' phones: callers start at $RAMP_RATE/s and hang up $HOLD_SECONDS s after their 200 OK; after the greeting each is offered to an agent"
        echo "(registered with digest, logged in through the API), who answers at once; $CODEC 20 ms both ways on both legs; recording on. Engine pinned to CPU $ENGINE_CPUS, loadgen to CPU $LOAD_CPUS;"
        echo "CPU and RSS sampled while all pairs are bridged (% of 2 cores = engine CPU time / (2 × wall time))."
        echo "Lost in engine = RTP loadgen sent on both legs − hotline_rtp_packets_received_total; after the tail = minus the packets agents sent after the engine's last packet to them"
        echo "(the engine closes the agent leg's socket when the caller hangs up; the agent sends until the engine's BYE reaches it). Received from the engine: lost = gaps in each leg's RTP sequence numbers."
        echo "WAVs are checked against each caller's 200-OK-to-BYE time."
    } | record_results "concurrency: bridged caller + agent pairs" "$command" "$NOTE"
    exit 0
fi

command="LEVELS=\"$LEVELS\" HOLD_SECONDS=$HOLD_SECONDS RAMP_RATE=$RAMP_RATE CODEC=$CODEC ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS benches/load/concurrency.sh"
{
    echo "$header"
    printf '%s' "$rows"
    echo
    echo "Load: loadgen (benches/load/loadgen.rs), $CODEC 20 ms both ways, calls started at $RAMP_RATE/s and held $HOLD_SECONDS s each; recording on;"
    echo "engine pinned to CPU $ENGINE_CPUS, loadgen to CPU $LOAD_CPUS. CPU and RSS are sampled while all calls are up; KB per call = (RSS all up − RSS idle) / calls."
    echo "Lost in engine = RTP loadgen sent − hotline_rtp_packets_received_total. WAVs are checked against each call's 200-OK-to-BYE time."
} | record_results "concurrency: recorded calls with RTP both ways" "$command" "$NOTE"
