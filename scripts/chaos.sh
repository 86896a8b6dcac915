#!/usr/bin/env bash
# Fault injection (issue 9), unattended, against the release build on 127.0.0.1. For
# each fault a fresh engine (own work directory, own store) takes a steady probe load of
# PROBE_CALLS short recorded calls (SIPp, benches/load/uac_short.xml with its own
# caller numbers 1380000…) while the fault is injected; then the engine is stopped and
# what it left is counted:
#
#   offered      probe calls SIPp started
#   answered     probe calls that completed (200, ACK, BYE answered)
#   lost         offered - answered (a 503 while shedding a flood counts as lost here)
#   WOs lost     answered probe calls without a work order, plus work orders left open
#   WAVs bad     recordings Python's `wave` module cannot read, or whose header does
#                not describe the audio in the file
#
# Faults: flood (INVITEs far above calls.max_concurrent), slowloris (TCP connections
# trickling one byte a second, probe over TCP), fd exhaustion (idle TCP connections
# from 30 source addresses, twice sip.max_tcp_connections, under `ulimit -n 1024`, probe
# over TCP), disk full (recordings on a 256 KiB tmpfs when root can mount one; else the
# row says why not), store locked (`sqlite3` holding BEGIN EXCLUSIVE on the store for
# LOCK_SECONDS), kill -9 and restart (mid-load; counted after the restart's repair).
# The target is zero in lost, WOs lost and WAVs bad; the table says where it is not.
#
# Bounded: about 20-40 s per fault, a few minutes in all.
#
#   scripts/chaos.sh                       # every fault, table appended to benches/RESULTS.md
#   FAULTS="flood kill9" scripts/chaos.sh  # some of them
set -euo pipefail
# Before common.sh, which has defaults of its own for these.
ENGINE_MAX_CONCURRENT=${ENGINE_MAX_CONCURRENT:-60}
ENGINE_SIP_PORT=${ENGINE_SIP_PORT:-25260}
ENGINE_HTTP_PORT=${ENGINE_HTTP_PORT:-29290}
source "$(dirname "$0")/../benches/load/common.sh"

FAULTS=${FAULTS:-"flood slowloris fd_exhaustion disk_full store_locked kill9"}
PROBE_CALLS=${PROBE_CALLS:-40}
PROBE_RATE=${PROBE_RATE:-4}
PROBE_HOLD_MS=${PROBE_HOLD_MS:-1000}
LOCK_SECONDS=${LOCK_SECONDS:-8}
NOTE=${NOTE:-}
PROBE_PORT=${PROBE_PORT:-25280}
FLOOD_PORT=${FLOOD_PORT:-25290}

need sipp sqlite3 python3 curl taskset timeout
WORK=$(mktemp -d /tmp/hotline-chaos.XXXXXX)
MOUNTED=
HELPER_PID=
cleanup() {
    [ -n "$HELPER_PID" ] && kill "$HELPER_PID" 2>/dev/null && wait "$HELPER_PID" 2>/dev/null
    stop_engine
    [ -n "$MOUNTED" ] && umount "$MOUNTED" 2>/dev/null
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# HOTLINE_BIN: measure a binary built elsewhere (an A/B comparison) instead of building.
if [ -n "${HOTLINE_BIN:-}" ]; then
    ENGINE_BIN=$HOTLINE_BIN
else
    build_engine
fi
sed 's/1390000/1380000/g' "$REPO/benches/load/uac_short.xml" >"$WORK/probe.xml"

# probe DIR TRANSPORT(u1|t1): the probe load in the background; PROBE_PID.
probe() {
    local dir=$1 transport=$2
    (cd "$dir" && timeout $((PROBE_CALLS / PROBE_RATE * 3 + 60)) taskset -c "$LOAD_CPUS" \
        sipp "127.0.0.1:$ENGINE_SIP_PORT" -sf "$WORK/probe.xml" -i 127.0.0.1 -p "$PROBE_PORT" \
        -t "$transport" -mp 27000 -r "$PROBE_RATE" -m "$PROBE_CALLS" -d "$PROBE_HOLD_MS" \
        -recv_timeout 15000 -nostdin -trace_stat -stf "$dir/probe.csv" -fd 1 \
        >"$dir/probe.out" 2>&1) &
    PROBE_PID=$!
}

# Connections that trickle or idle: python3 helper in the background; HELPER_PID.
# connections MODE(trickle|idle) COUNT SECONDS SOURCES
connections() {
    python3 - "$ENGINE_SIP_PORT" "$@" <<'PY' &
import socket, sys, time
port, mode, count, seconds, sources = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
conns, refused = [], 0
for i in range(count):
    s = socket.socket()
    try:
        s.bind((f"127.0.0.{2 + i % sources}", 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        conns.append(s)
    except OSError:
        refused += 1
payload = b"INVITE sip:8890@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKslow\r\n"
end, sent, i = time.time() + seconds, 0, 0
while time.time() < end:
    alive = []
    for s in conns:
        try:
            if s.recv(1) == b"":
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        if mode == "trickle":
            try:
                s.send(payload[i % len(payload):i % len(payload) + 1])
                sent += 1
            except OSError:
                s.close()
                continue
        alive.append(s)
    conns, i = alive, i + 1
    time.sleep(1)
print(f"{mode}: {count} opened, {refused} refused at connect, {len(conns)} still open after {seconds:.0f} s", flush=True)
PY
    HELPER_PID=$!
}

wait_probe() {
    wait "$PROBE_PID" || true
}

# counts DIR -> "offered answered lost wos_lost wavs_bad wavs"
counts() {
    local dir=$1 offered answered db wos open
    read -r offered answered _ < <(sipp_totals "$dir/probe.csv")
    db="$dir/data/work-orders.sqlite3"
    wos=$(sqlite3 "$db" "select count(*) from work_orders where caller like '1380000%' and answered_at is not null" 2>/dev/null || echo 0)
    open=$(sqlite3 "$db" "select count(*) from work_orders where ended_at is null" 2>/dev/null || echo 0)
    local wos_lost=$((answered > wos ? answered - wos : 0))
    wos_lost=$((wos_lost + open))
    local wav
    wav=$(python3 - "$dir/recordings" <<'PY'
import os, sys, wave
bad = total = 0
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        if not name.endswith(".wav"):
            continue
        total += 1
        path = os.path.join(root, name)
        try:
            with wave.open(path) as w:
                frames = w.getnframes()
                w.readframes(frames)
                described = frames * w.getnchannels() * w.getsampwidth()
            if described + 44 > os.path.getsize(path):
                bad += 1
        except Exception:
            bad += 1
print(bad, total)
PY
)
    echo "$offered $answered $((offered - answered)) $wos_lost $wav"
}

# fault NAME: sets DIR, starts the engine (after CONFIG_TWEAK, an optional sed
# expression, and PRE_START, an optional command), runs the fault, stops the engine.
TABLE="| fault | what was injected | offered | answered | lost | WOs lost | WAVs bad / written | engine |
|---|---|---|---|---|---|---|---|"
row() {
    local fault=$1 what=$2 dir=$3 engine_note=$4
    local offered answered lost wos_lost bad total
    read -r offered answered lost wos_lost bad total < <(counts "$dir")
    local line="| $fault | $what | $offered | $answered | $lost | $wos_lost | $bad / $total | $engine_note |"
    echo "$line"
    TABLE="$TABLE
$line"
}

engine_for() {
    local name=$1 tweak=${2:-}
    DIR="$WORK/$name"
    write_config "$DIR"
    [ -n "$tweak" ] && sed -i -e "$tweak" "$DIR/hotline.toml"
    mkdir -p "$DIR/recordings"
}

engine_note() {
    local dir=$1
    local dropped malformed closed
    dropped=$(metric hotline_recording_frames_dropped_total)
    echo "frames dropped $dropped"
}

for fault in $FAULTS; do
    echo "== $fault"
    case $fault in
    flood)
        engine_for flood
        start_engine "$DIR"
        probe "$DIR" u1
        sleep 2
        (cd "$DIR" && timeout 60 taskset -c "$LOAD_CPUS" sipp "127.0.0.1:$ENGINE_SIP_PORT" \
            -sf "$REPO/benches/load/uac_short.xml" -i 127.0.0.1 -p "$FLOOD_PORT" -mp 28000 \
            -r 2000 -m 20000 -l 20000 -d 200 -buff_size 4194304 -recv_timeout 5000 -nostdin \
            >"$DIR/flood.out" 2>&1) || true
        wait_probe
        note="$(engine_note "$DIR")"
        stop_engine
        row flood "20,000 INVITEs at 2,000/s, max_concurrent $ENGINE_MAX_CONCURRENT" "$DIR" "$note"
        ;;
    slowloris)
        engine_for slowloris
        start_engine "$DIR"
        connections trickle 200 25 20
        sleep 1
        probe "$DIR" t1
        wait_probe
        wait "$HELPER_PID" >"$DIR/helper.out" 2>&1 || true
        HELPER_PID=
        note="$(engine_note "$DIR"), closed by message timeout $(curl -sf "http://127.0.0.1:$ENGINE_HTTP_PORT/metrics" | awk '/^hotline_tcp_connections_closed_total\{reason="message_timeout"\}/ { print $2 }')"
        stop_engine
        row slowloris "200 TCP connections from 20 addresses, 1 byte/s; probe over TCP" "$DIR" "$note"
        ;;
    fd_exhaustion)
        engine_for fd_exhaustion 's/^max_tcp_connections = .*/max_tcp_connections = 300/; s/^fd_limit = .*/fd_limit = "warn"/'
        # The engine inherits the lowered soft limit; the script's own is restored.
        soft=$(ulimit -Sn)
        ulimit -Sn 1024
        start_engine "$DIR"
        ulimit -Sn "$soft"
        connections idle 600 25 30
        sleep 3
        probe "$DIR" t1
        wait_probe
        wait "$HELPER_PID" >"$DIR/helper.out" 2>&1 || true
        HELPER_PID=
        note="$(engine_note "$DIR"), evicted $(curl -sf "http://127.0.0.1:$ENGINE_HTTP_PORT/metrics" | awk '/^hotline_tcp_connections_closed_total\{reason="evicted"\}/ { print $2 }')"
        stop_engine
        row "fd exhaustion" "ulimit -n 1024, 600 idle TCP connections from 30 addresses, max_tcp_connections 300; probe over TCP" "$DIR" "$note"
        ;;
    disk_full)
        engine_for disk_full
        if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=256k,mode=0750 tmpfs "$DIR/recordings" 2>/dev/null; then
            MOUNTED="$DIR/recordings"
            start_engine "$DIR"
            probe "$DIR" u1
            wait_probe
            note="$(engine_note "$DIR")"
            stop_engine
            row "disk full" "recordings on a 256 KiB tmpfs" "$DIR" "$note"
            umount "$MOUNTED" && MOUNTED=
        else
            TABLE="$TABLE
| disk full | not run: needs root and tmpfs | - | - | - | - | - | - |"
        fi
        ;;
    store_locked)
        engine_for store_locked
        start_engine "$DIR"
        probe "$DIR" u1
        sleep 3
        (
            echo "BEGIN EXCLUSIVE;"
            sleep "$LOCK_SECONDS"
            echo "COMMIT;"
        ) | sqlite3 "$DIR/data/work-orders.sqlite3" >"$DIR/lock.out" 2>&1 || true
        wait_probe
        note="$(engine_note "$DIR"), store errors $(metric hotline_store_errors_total)"
        stop_engine
        row "store locked" "sqlite3 BEGIN EXCLUSIVE for $LOCK_SECONDS s mid-load" "$DIR" "$note"
        ;;
    kill9)
        engine_for kill9
        start_engine "$DIR"
        probe "$DIR" u1
        sleep 4
        kill -KILL "$ENGINE_PID"
        wait "$ENGINE_PID" 2>/dev/null || true
        ENGINE_PID=
        sleep 1
        start_engine "$DIR"
        wait_probe
        note="restarted; $(grep -c 'repaired' "$DIR/engine.log" || true) repair lines"
        stop_engine
        row "kill -9 and restart" "SIGKILL 4 s into the load, restart 1 s later" "$DIR" "$note"
        ;;
    *)
        die "unknown fault $fault"
        ;;
    esac
done

record_results "Fault injection (issue 9, scripts/chaos.sh)" \
    "FAULTS=\"$FAULTS\" PROBE_CALLS=$PROBE_CALLS PROBE_RATE=$PROBE_RATE scripts/chaos.sh" \
    "probe: $PROBE_CALLS calls of $PROBE_HOLD_MS ms at $PROBE_RATE/s per fault (SIPp uac_short, recorded, no RTP sent); calls.max_concurrent $ENGINE_MAX_CONCURRENT${NOTE:+; $NOTE}" <<<"$TABLE"
