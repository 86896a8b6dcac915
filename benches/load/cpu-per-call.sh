#!/usr/bin/env bash
# CPU per call against a transaction-stateful proxy (issue 12): one SIPp uac load, the
# same for every target, side by side on the same pinning, against
#   (a) SIPp's built-in uas alone (no state beyond SIPp's own, no media),
#   (b) Kamailio (benches/load/kamailio-tm.cfg: tm-stateful, CHILDREN UDP workers)
#       relaying every call to a SIPp uas; Kamailio's processes and that uas both count,
#   (c) the engine with its full per-call work (greeting RTP, recording, work order,
#       metrics), configured as benches/load/cps.sh runs it.
# The load is benches/load/uac_short.xml (INVITE -> 200 -> ACK -> hold -> BYE) at RATE
# calls/s for RUN_SECONDS, HOLD_MS each. CPU is utime + stime from /proc of every
# process under test (all threads, and every Kamailio process), read before the load
# and after it has drained; CPU per call = that time / calls completed. The result is
# each target's ms per call and its ratio to Kamailio's and to the bare uas's.
#
# Targets (Kamailio, the uas behind it, the engine, the bare uas) run on ENGINE_CPUS,
# the uac on LOAD_CPUS (taskset). Everything is on 127.0.0.1; Kamailio runs in the
# foreground under this script and is stopped by its trap. Bounded: each target takes
# RUN_SECONDS + the hold + a drain, at most RUN_SECONDS * 4 + 60 s.
#
#   benches/load/cpu-per-call.sh                       # 1,000 calls/s for 15 s, 3 targets
#   RATE=200 RUN_SECONDS=5 NOTE="validation run" benches/load/cpu-per-call.sh
#   BASELINE_BIN=/tmp/hotline-before benches/load/cpu-per-call.sh   # A/B: a fourth target,
#                                       # an engine built elsewhere, in every round
set -euo pipefail
source "$(dirname "$0")/common.sh"

RATE=${RATE:-1000}
RUN_SECONDS=${RUN_SECONDS:-15}
HOLD_MS=${HOLD_MS:-500}
CHILDREN=${CHILDREN:-2}
# Rounds of the three targets, interleaved (a b c a b c …), so a neighbour's load on
# the machine falls on all of them alike.
ROUNDS=${ROUNDS:-1}
BUFF_SIZE=4194304
UAS_PORT=${UAS_PORT:-25070}
PROXY_PORT=${PROXY_PORT:-25075}
UAC_PORT=${UAC_PORT:-25080}
NOTE=${NOTE:-}
BASELINE_BIN=${BASELINE_BIN:-}
SCENARIO="$REPO/benches/load/uac_short.xml"
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}

need sipp taskset curl awk /usr/bin/time
[ -x "$KAMAILIO" ] || die "kamailio is missing: scripts/install-test-deps.sh --bench installs it"
WORK=$(mktemp -d /tmp/hotline-cpu-per-call.XXXXXX)
UAS_PID=
PROXY_PID=
cleanup() {
    stop_engine
    stop_pid "$PROXY_PID"
    stop_pid "$UAS_PID"
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# CPU ticks of PID and every process descended from it (Kamailio forks its workers;
# their time is not in the main process's utime until they exit).
tree_ticks() {
    # cat, not awk on the files: a process that exits between the glob and the read
    # is skipped instead of ending the read.
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
        {
            # comm may hold spaces and parentheses: fields count from its last ")".
            pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
            parent[pid] = f[2]; ticks[pid] = f[12] + f[13]
        }
        END {
            total = 0
            for (pid in ticks) {
                p = pid
                for (depth = 0; depth < 8 && p != "" && p != root; depth++) p = parent[p]
                if (p == root) total += ticks[pid]
            }
            print total
        }'
}

start_uas() {
    local port=$1 dir=$2
    (cd "$dir" && exec taskset -c "$ENGINE_CPUS" sipp -sn uas -i 127.0.0.1 -p "$port" -mp 27000 \
        -buff_size "$BUFF_SIZE" -nostdin >"$dir/uas.out" 2>&1) &
    UAS_PID=$!
    sleep 1
    kill -0 "$UAS_PID" 2>/dev/null || die "SIPp uas did not start: $(tail -5 "$dir/uas.out")"
}

start_proxy() {
    local dir=$1
    sed -e "s/@CHILDREN@/$CHILDREN/" -e "s/@PROXY_PORT@/$PROXY_PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" \
        "$REPO/benches/load/kamailio-tm.cfg" >"$dir/kamailio.cfg"
    "$KAMAILIO" -c -f "$dir/kamailio.cfg" >"$dir/kamailio-check.log" 2>&1 ||
        die "kamailio rejected its config: $(tail -5 "$dir/kamailio-check.log")"
    # -DD: stay in the foreground (this shell owns it, the trap stops it); -E: log to
    # stderr; shared memory for some 10,000 transactions in flight (64 MB runs out near
    # 1,000 calls/s: "out of mem", 500 answers), private memory small.
    (cd "$dir" && exec taskset -c "$ENGINE_CPUS" "$KAMAILIO" -DD -E -m 256 -M 8 -f "$dir/kamailio.cfg") \
        >"$dir/kamailio.log" 2>&1 &
    PROXY_PID=$!
    sleep 1.5
    kill -0 "$PROXY_PID" 2>/dev/null || die "kamailio did not start: $(tail -5 "$dir/kamailio.log")"
}

# load LABEL PORT DIR PID… -> one table row. The processes under test are the trees
# of the PIDs given.
load() {
    local label=$1 port=$2 dir=$3
    shift 3
    local pids=("$@")
    local calls=$((RATE * RUN_SECONDS))
    local before=0 after=0 pid
    for pid in "${pids[@]}"; do before=$((before + $(tree_ticks "$pid"))); done
    local t0 t1 load_avg
    t0=$(now)
    load_avg=$(cut -d' ' -f1 /proc/loadavg)
    (cd "$dir" && timeout $((RUN_SECONDS * 4 + 60)) taskset -c "$LOAD_CPUS" \
        /usr/bin/time -f "%U %S %e" -o "$dir/uac.time" \
        sipp "127.0.0.1:$port" -sf "$SCENARIO" -i 127.0.0.1 -p "$UAC_PORT" -mp 26000 \
        -r "$RATE" -m "$calls" -l $((RATE * 20 + 100)) -d "$HOLD_MS" \
        -buff_size "$BUFF_SIZE" -recv_timeout 10000 -nostdin \
        -trace_stat -stf "$dir/stat.csv" -fd 1 >"$dir/uac.out" 2>&1) || true
    # What the targets still do for the last calls (an engine's recordings and work
    # orders) belongs to those calls.
    case "$label" in engine*) wait_engine_idle ;; esac
    sleep 1
    for pid in "${pids[@]}"; do after=$((after + $(tree_ticks "$pid"))); done
    t1=$(now)
    local ok failed created
    read -r created ok failed < <(sipp_totals "$dir/stat.csv")
    failed=$((failed + calls - created))
    local target_ms per_call uac_ms uac_per_call
    target_ms=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / hz }')
    per_call=$(awk -v ms="$target_ms" -v n="$ok" 'BEGIN { if (n > 0) printf "%.3f", ms / n; else print "n/a" }')
    uac_ms=$(awk '{ printf "%.0f", ($1 + $2) * 1000 }' "$dir/uac.time" 2>/dev/null || echo n/a)
    uac_per_call=$(awk -v ms="$uac_ms" -v n="$ok" 'BEGIN { if (n > 0 && ms != "n/a") printf "%.3f", ms / n; else print "n/a" }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$label" "$RATE" "$calls" "$ok" "$failed" "$target_ms" "$per_call" "$uac_per_call" "$load_avg"
    echo "$label: $(elapsed "$t0" "$t1") s wall" >&2
}

echo "building the engine (cargo build --release)…" >&2
build_engine
echo "targets on CPU $ENGINE_CPUS, SIPp uac on CPU $LOAD_CPUS; work dir $WORK" >&2

rows=""
for round in $(seq 1 "$ROUNDS"); do
    dir="$WORK/r$round-uas"
    mkdir -p "$dir"
    start_uas "$UAS_PORT" "$dir"
    row=$(load "sipp uas" "$UAS_PORT" "$dir" "$UAS_PID")
    stop_pid "$UAS_PID"
    UAS_PID=
    echo "$row" >&2
    rows="$rows$row"$'\n'

    dir="$WORK/r$round-kamailio"
    mkdir -p "$dir"
    start_uas "$UAS_PORT" "$dir"
    start_proxy "$dir"
    row=$(load "kamailio + sipp uas" "$PROXY_PORT" "$dir" "$PROXY_PID" "$UAS_PID")
    stop_pid "$PROXY_PID"
    PROXY_PID=
    stop_pid "$UAS_PID"
    UAS_PID=
    echo "$row" >&2
    rows="$rows$row"$'\n'

    dir="$WORK/r$round-engine"
    write_config "$dir"
    start_engine "$dir"
    sleep 1
    row=$(load engine "$ENGINE_SIP_PORT" "$dir" "$ENGINE_PID")
    written=$(metric hotline_recordings_written_total)
    stop_engine
    echo "$row (recordings written: $written)" >&2
    rows="$rows$row"$'\n'

    if [ -n "$BASELINE_BIN" ]; then
        dir="$WORK/r$round-baseline"
        built=$ENGINE_BIN
        ENGINE_BIN=$BASELINE_BIN
        write_config "$dir"
        start_engine "$dir"
        sleep 1
        row=$(load "engine baseline" "$ENGINE_SIP_PORT" "$dir" "$ENGINE_PID")
        stop_engine
        ENGINE_BIN=$built
        echo "$row" >&2
        rows="$rows$row"$'\n'
    fi
done

# Mean ms per call of each target over the rounds, and the ratios.
summary=$(printf '%s' "$rows" | awk -F'|' '
    { gsub(/^ +| +$/, "", $2); gsub(/ /, "", $8); if ($8 != "n/a") { sum[$2] += $8; n[$2]++ } }
    END {
        u = n["sipp uas"] ? sum["sipp uas"] / n["sipp uas"] : 0
        k = n["kamailio + sipp uas"] ? sum["kamailio + sipp uas"] / n["kamailio + sipp uas"] : 0
        e = n["engine"] ? sum["engine"] / n["engine"] : 0
        b = n["engine baseline"] ? sum["engine baseline"] / n["engine baseline"] : 0
        if (b > 0) printf "A/B: engine **%.3f ms**, baseline engine **%.3f ms**: engine / baseline **%.2f**.\n", e, b, e / b
        printf "CPU per call (mean of the rounds): SIPp uas **%.3f ms**, Kamailio + SIPp uas **%.3f ms**, engine **%.3f ms**.\n", u, k, e
        if (k > 0) printf "Ratios: engine / Kamailio **%.2f**; ", e / k
        if (u > 0) printf "engine / uas **%.1f**; Kamailio / uas **%.1f**.\n", e / u, k / u
        if (k > 0) printf "Target (issue 12) engine ≤ Kamailio: **%s**.\n", (e <= k ? "met" : "not met")
    }')
command="RATE=$RATE RUN_SECONDS=$RUN_SECONDS HOLD_MS=$HOLD_MS CHILDREN=$CHILDREN ROUNDS=$ROUNDS ENGINE_CPUS=$ENGINE_CPUS LOAD_CPUS=$LOAD_CPUS${BASELINE_BIN:+ BASELINE_BIN=$BASELINE_BIN} benches/load/cpu-per-call.sh"
{
    echo '| target | calls/s | calls | completed | failed | target CPU ms | CPU ms per call | SIPp uac CPU ms per call | load avg (1 min) at start |'
    echo '|---|---|---|---|---|---|---|---|---|'
    printf '%s' "$rows"
    echo
    echo "$summary"
    echo "Load: SIPp uac, benches/load/uac_short.xml (no RTP from the caller), $HOLD_MS ms calls, -buff_size $BUFF_SIZE on every SIPp. Targets pinned to CPU $ENGINE_CPUS, the uac to CPU $LOAD_CPUS."
    echo "Kamailio: $("$KAMAILIO" -v 2>/dev/null | head -1 | awk '{ print $3 }'), benches/load/kamailio-tm.cfg, $CHILDREN UDP children: INVITE and BYE through tm transactions, the 2xx ACK stateless, no record-route. Its CPU is every Kamailio process plus the uas behind it."
    echo "Engine: the cps.sh config (built-in flow: greeting RTP, recording, work order, metrics), answered at once. CPU per call = CPU from before the load to 1 s after it drained / calls completed."
} | record_results "cpu per call: engine vs Kamailio (tm) vs SIPp uas" "$command" "$NOTE"
