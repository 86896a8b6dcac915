# Shared by benches/load/cps.sh and benches/load/concurrency.sh: build and start the
# engine with a bench config, sample its CPU and memory from /proc, record results.
# Sourced, not run. Everything listens on 127.0.0.1.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RESULTS="$REPO/benches/RESULTS.md"

# Cores: the engine on one, the load (SIPp, loadgen) on the other, so neither steals
# the other's CPU. Override for bigger machines, e.g. ENGINE_CPUS=0-3 LOAD_CPUS=4-7.
ENGINE_CPUS=${ENGINE_CPUS:-0}
LOAD_CPUS=${LOAD_CPUS:-1}
ENGINE_SIP_PORT=${ENGINE_SIP_PORT:-25060}
ENGINE_HTTP_PORT=${ENGINE_HTTP_PORT:-29090}
# Below Linux's ephemeral range (32768-60999), where SIPp and loadgen bind.
ENGINE_RTP_MIN=${ENGINE_RTP_MIN:-10000}
ENGINE_RTP_MAX=${ENGINE_RTP_MAX:-31999}
ENGINE_MAX_CONCURRENT=${ENGINE_MAX_CONCURRENT:-10000}
ENGINE_LOG_FILTER=${ENGINE_LOG_FILTER:-info}
# The agents and queues the engine loads: the shipped demo file, unless a bench writes
# its own (concurrency.sh MODE=bridged: one agent per pair).
AGENTS_FILE=${AGENTS_FILE:-$REPO/config/agents.toml}
CLK_TCK=$(getconf CLK_TCK)

die() {
    echo "$*" >&2
    exit 1
}

need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is missing: scripts/install-test-deps.sh --bench installs it"
    done
}

# HOTLINE_BIN: measure a binary built elsewhere (an A/B comparison) instead of building.
build_engine() {
    if [ -n "${HOTLINE_BIN:-}" ]; then
        ENGINE_BIN=$HOTLINE_BIN
        return
    fi
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
    ENGINE_BIN="$REPO/target/release/hotline"
}

# The shipped config with the bench's ports, paths and limits: answer at once
# (ring_before_answer_ms = 0: IVR-answered calls), admission and RTP ports large enough
# for the load, everything under $WORK. The built-in call flow (greeting, then the
# default queue) instead of the shipped dialplan, whose menu would keep silent load
# callers four seconds and then play them the no-answer script: the benches measure the
# engine, as every earlier run in RESULTS.md did. The admission limit is far above what a run
# reaches, so an open-file limit below what it would need only warns (fd_limit).
write_config() {
    local work=$1
    mkdir -p "$work"
    sed -e "s|^listen_udp = .*|listen_udp = \"127.0.0.1:$ENGINE_SIP_PORT\"|" \
        -e "s|^listen_tcp = .*|listen_tcp = \"127.0.0.1:$ENGINE_SIP_PORT\"|" \
        -e "s|^listen = .*|listen = \"127.0.0.1:$ENGINE_HTTP_PORT\"|" \
        -e "s|^rtp_port_min = .*|rtp_port_min = $ENGINE_RTP_MIN|" \
        -e "s|^rtp_port_max = .*|rtp_port_max = $ENGINE_RTP_MAX|" \
        -e "s|^max_concurrent = .*|max_concurrent = $ENGINE_MAX_CONCURRENT|" \
        -e "s|^ring_before_answer_ms = .*|ring_before_answer_ms = 0|" \
        -e "s|^dir = \"dialplans/prompts\"|dir = \"$REPO/dialplans/prompts\"|" \
        -e "s|^dir = \"recordings\"|dir = \"$work/recordings\"|" \
        -e "s|^data_dir = .*|data_dir = \"$work/data\"|" \
        -e "s|^filter = .*|filter = \"$ENGINE_LOG_FILTER\"|" \
        -e "s|^agents_file = .*|agents_file = \"$AGENTS_FILE\"|" \
        -e "s|^fd_limit = .*|fd_limit = \"warn\"|" \
        -e "/^dialplan = /d" \
        "$REPO/config/hotline.toml" >"$work/hotline.toml"
    "$ENGINE_BIN" check-config "$work/hotline.toml" >/dev/null || die "bench config rejected"
}

start_engine() {
    local work=$1
    (cd "$work" && exec taskset -c "$ENGINE_CPUS" "$ENGINE_BIN" run --config "$work/hotline.toml") \
        >"$work/engine.log" 2>&1 &
    ENGINE_PID=$!
    for _ in $(seq 1 300); do
        if curl -sf "http://127.0.0.1:$ENGINE_HTTP_PORT/health" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$ENGINE_PID" 2>/dev/null || die "engine exited at start: $(tail -5 "$work/engine.log")"
        sleep 0.1
    done
    die "engine not ready after 30 s"
}

# stop_pid PID [SECONDS]: SIGTERM, up to SECONDS (default 5) to exit, then SIGKILL.
stop_pid() {
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 1 $((${2:-5} * 10))); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

stop_engine() {
    [ -n "${ENGINE_PID:-}" ] || return 0
    stop_pid "$ENGINE_PID" 60
    ENGINE_PID=
}

# utime + stime of a process, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Resident memory of a process, in kB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# CPU used between two tick counts over a wall-clock interval, in % of one core.
cpu_percent() {
    local ticks0=$1 ticks1=$2 seconds=$3
    awk -v a="$ticks0" -v b="$ticks1" -v s="$seconds" -v hz="$CLK_TCK" \
        'BEGIN { if (s <= 0) print "n/a"; else printf "%.1f", (b - a) / hz / s * 100 }'
}

now() {
    date +%s.%N
}

elapsed() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'
}

# One sample from the engine's /metrics (0 when not emitted yet); label-less series.
# "n/a" when the engine does not answer within 5 s.
metric() {
    local page
    if page=$(curl -sf -m 5 "http://127.0.0.1:$ENGINE_HTTP_PORT/metrics"); then
        echo "$page" | awk -v name="$1" '$1 == name { value = $2 } END { print value + 0 }'
    else
        echo "n/a"
    fi
}

# When the engine stops answering: every thread's stack (gdb, if installed) into
# $1/engine-stacks.txt, and the work directory kept for a post-mortem.
capture_hang() {
    local dir=$1
    if command -v gdb >/dev/null; then
        gdb -p "$ENGINE_PID" -batch -ex "thread apply all bt 30" >"$dir/engine-stacks.txt" 2>&1 || true
    fi
    KEEP_WORK=1
    echo "engine not answering /metrics: stacks and logs kept in $dir" >&2
}

# UDP receive errors of the whole host (buffer overflows): every socket here is on
# loopback and belongs to the test, so a rise means packets were dropped by the kernel.
udp_rcvbuf_errors() {
    awk '/^Udp:/ { if (header) { print $6; exit } header = 1 }' /proc/net/snmp
}

machine_line() {
    local model
    model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    echo "$(nproc) CPUs, $model, $(uname -r), $(awk '/^MemTotal/ { printf "%.0f GB RAM", $2 / 1048576 }' /proc/meminfo)"
}

commit_line() {
    local commit
    commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit (with uncommitted changes)"
    fi
    echo "$commit"
}

# Appends a titled section (date, commit, machine, command, note, then the table on
# stdin) to benches/RESULTS.md and echoes the table.
record_results() {
    local title=$1 command=$2 note=$3
    local table
    table=$(cat)
    echo "$table"
    {
        echo
        echo "### $title — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "- commit: $(commit_line)"
        echo "- machine: $(machine_line)"
        echo "- command: \`$command\`"
        [ -n "$note" ] && echo "- $note"
        echo
        echo "$table"
    } >>"$RESULTS"
}

# Waits (up to SECONDS, default 30) until the engine has no call up.
wait_engine_idle() {
    local seconds=${1:-30}
    for _ in $(seq 1 $((seconds * 10))); do
        [ "$(metric hotline_calls_active)" = 0 ] && return 0
        sleep 0.1
    done
    echo "warning: engine still has active calls after $seconds s" >&2
}

# percentile FILE FRACTION: from a file of sorted numbers, one per line.
percentile() {
    awk -v f="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a"; exit }
        i = int(NR * f); if (i < NR * f) i++; if (i < 1) i = 1; print v[i] }' "$1"
}

# sipp_totals STAT_CSV -> "created successful failed" from the last line of SIPp's
# -trace_stat file ("0 0 0" when there is none).
sipp_totals() {
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { last = $0 } END { split(last, v, ";");
          print v[col["TotalCallCreated"]] + 0, v[col["SuccessfulCall(C)"]] + 0, v[col["FailedCall(C)"]] + 0 }' \
        "$1" 2>/dev/null || echo "0 0 0"
}

