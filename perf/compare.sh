#!/usr/bin/env bash
# perf/compare.sh: ringkv, Redis and the echo baseline side by side, same loadgen workloads,
# same machine, one table. See perf/RESULTS.md for what the columns mean and recorded results.
#
# Every server runs pinned to CPU 0 (ringkv: 1 shard), loadgen pinned to CPU 1, all on loopback.
# Cells: GET, SET, YCSB A, YCSB B at pipeline 1 and 16 with 100-byte values over a 1M-key
# keyspace (loaded first), 50 connections; then the durable comparison (Redis appendfsync always
# vs ringkv durability sync) for SET. Server CPU per request = (utime + stime) delta of the
# server process from /proc/PID/stat, divided by the requests loadgen completed. Client IPIs per
# 1k requests = rescheduling interrupts taken by the client's CPU over the cell (/proc/interrupts,
# RES), per 1000 requests: on loopback the server's send runs the client's receive path, and each
# time it finds loadgen's thread running it interrupts it (glommio's rings lack COOP_TASKRUN), at
# ~10 us of the server's CPU per interrupt on this VM (perf/RESULTS.md, "Who pays for the client's
# wake-ups"). A server the client keeps up with (echo) takes almost none.
#
# Usage: perf/compare.sh [--duration SECS] [--long] [--runs N] [--keyspace N] [--connections N]
#                        [--targets redis,echo,ringkv[,ringkv-glommio,ringkv-resp]] [--no-durable] [--cells get,set,a,b]
#                        [--pipelines 1,16] [--open-rates R1,R2] [--open-half-peak] [--open-connections N]
#                        [--open-pipeline N] [--send-quantum-us US] [--transport uring|glommio]
#                        [--warmup SECS] [--out DIR] [--no-build] [--stall-probe SECS]
# Every cell first runs its workload for --warmup seconds (default 1) unmeasured, on the same
# connections at the same rate: its latencies, throughput and the server's CPU count from then on.
# The first second of a fresh set of connections (TCP windows, first page faults) alone had a p99
# of 7-16 ms against the echo server in open loop, enough to decide a 5 s cell's p99.9.
# ringkv runs with its default network engine (io_uring); the target ringkv-glommio is the same
# binary with --net-engine glommio, for a before/after in one run. The target ringkv-resp is
# ringkv again, driven over its Redis-protocol port by the very client code that drives Redis.
# --open-rates adds open-loop cells (GET and SET, latency from each request's intended send time)
# at each total rate, for every target; they appear as get@RATE, set@RATE.
# --open-half-peak adds open-loop GET and SET cells at half of ringkv's pipeline-16 throughput of
# that workload (the median of its runs so far, the lower middle one of an even count, so --cells
# must include get and set and --pipelines 16), the issue's latency goal in one command; they
# appear as get@half, set@half, and the rates used are logged. Open cells use
# --open-connections connections (default 8), each with up to --open-pipeline requests in flight
# (default 64: the window bounds what is in flight, the rate sets the load; a window that fills
# makes due requests wait in the client, charged to the server), and loadgen's --send-quantum-us
# (default 100: requests that fall due within 100 us of a connection's last write share its next
# write, still timed from when they were due; without it one client core cannot send more than
# ~380k requests/s open-loop, even to the echo server).
# loadgen runs with --transport uring (default; its connections on its own io_uring with
# COOP_TASKRUN, polled while requests are out, so no server pays an IPI to interrupt the client,
# see the ipi/1k column); --transport glommio gives the figures recorded before 2026-12-06 14:45.
# --stall-probe SECS (default 10, 0 to skip) first spins on the server's and the client's CPU for
# SECS with nothing else running (perf/src/bin/stall-probe.rs): the stalls the machine itself
# imposes (a VM's vCPU taken away for milliseconds), and the share of constant-rate requests they
# alone would delay past 1 ms and 2 ms, i.e. whether the open-loop p99 / p99.9 goals are possible
# here at all. Its lines are printed before the table.
# The last line printed is always:
#   ratios get_vs_redis=X set_vs_redis=Y get_vs_echo=Z cpu_per_request_vs_redis=W
# (pipeline 16, ringkv divided by the peer; n/a when a target is missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=5
RUNS=1
KEYSPACE=1000000
CONNECTIONS=50
TARGETS=redis,echo,ringkv
CELLS=get,set,a,b
PIPELINES=1,16
OPEN_RATES=""
OPEN_HALF_PEAK=0
OPEN_CONNECTIONS=8
OPEN_PIPELINE=64
SEND_QUANTUM_US=100
TRANSPORT=uring
WARMUP=1
DURABLE=1
BUILD=1
STALL_PROBE=10
OUT=""
SERVER_CPU=0
CLIENT_CPU=1

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --long) DURATION=30; RUNS=3; shift ;;
        --runs) RUNS=$2; shift 2 ;;
        --keyspace) KEYSPACE=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        --cells) CELLS=$2; shift 2 ;;
        --pipelines) PIPELINES=$2; shift 2 ;;
        --open-rates) OPEN_RATES=$2; shift 2 ;;
        --open-half-peak) OPEN_HALF_PEAK=1; shift ;;
        --open-connections) OPEN_CONNECTIONS=$2; shift 2 ;;
        --open-pipeline) OPEN_PIPELINE=$2; shift 2 ;;
        --send-quantum-us) SEND_QUANTUM_US=$2; shift 2 ;;
        --transport) TRANSPORT=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --no-durable) DURABLE=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --stall-probe) STALL_PROBE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done

log() { echo "compare: $*" >&2; }

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-compare.XXXXXX")
[ -n "$OUT" ] || OUT="$WORK/results"
mkdir -p "$OUT"
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # Give each server 15 s to shut down cleanly (ringkv flushes), then kill it.
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    # ringkv's data directories live on the real disk under target/, removed with the rest.
    rm -rf "$WORK/data" "$ROOT/target/compare-data-$$"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v jq >/dev/null || need_apt+=(jq)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "$BUILD" = 1 ]; then
    log "building loadgen, echo-server and stall-probe (release)"
    (cd "$ROOT" && cargo build --release -q -p ringkv-perf --bin loadgen --bin echo-server --bin stall-probe)
fi
LOADGEN=$CARGO_TARGET_DIR/release/loadgen
ECHO=$CARGO_TARGET_DIR/release/echo-server
STALL_PROBE_BIN=$CARGO_TARGET_DIR/release/stall-probe
RINGKV=$CARGO_TARGET_DIR/release/ringkv
CLK_TCK=$(getconf CLK_TCK)

# A loopback port nobody listens on (and the next one, for ringkv's shard 0), below the
# ephemeral range: a port an earlier client connection used as its own end is unbindable
# while that connection is in TIME-WAIT (redis-server then fails with "Address already in use").
free_port() {
    local p ephemeral
    ephemeral=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$ephemeral" -gt 12000 ] 2>/dev/null || ephemeral=32768
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % (ephemeral - 10002)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "compare.sh: no free port" >&2
    exit 1
}

wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { log "server $pid died before listening on $port"; return 1; }
        sleep 0.05
    done
    log "nothing listens on $port after 10 s"
    return 1
}

cpu_ticks() { # utime + stime of a process (fields 14 and 15, counted after the ")" of comm)
    local stat
    stat=$(cat "/proc/$1/stat")
    echo "${stat##*) }" | awk '{print $12 + $13}'
}

# Rescheduling interrupts the client's CPU has taken (0 where /proc/interrupts does not say).
client_ipis() {
    if [ ! -r /proc/interrupts ]; then echo 0; return; fi
    awk -v col=$((CLIENT_CPU + 2)) '$1 == "RES:" { n = $col } END { print n + 0 }' /proc/interrupts
}

declare -A URL=() SPID=()
# start_server NAME: redis | redis-aof | echo | ringkv | ringkv-sync | ringkv-glommio | ringkv-resp
start_server() {
    local name=$1 port dir SERVER_URL
    port=$(free_port)
    case "$name" in
        redis|redis-aof)
            dir="$WORK/data/$name"; mkdir -p "$dir"
            local persist=(--save '' --appendonly no)
            [ "$name" = redis-aof ] && persist=(--save '' --appendonly yes --appendfsync always)
            taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
                "${persist[@]}" --protected-mode no --logfile "$WORK/$name.log" &
            SERVER_URL="redis://127.0.0.1:$port" ;;
        echo)
            taskset -c "$SERVER_CPU" "$ECHO" --port "$port" --cpu "$SERVER_CPU" --protocol resp \
                --value-size 100 2>"$WORK/echo.log" &
            SERVER_URL="redis://127.0.0.1:$port" ;;
        ringkv|ringkv-sync|ringkv-glommio|ringkv-resp)
            # The data directory must be on the real disk (O_DIRECT), not tmpfs.
            dir="$ROOT/target/compare-data-$$/$name"; rm -rf "$dir"; mkdir -p "$dir"
            local durability=none engine=() resp_port=0
            [ "$name" = ringkv-sync ] && durability=sync
            [ "$name" = ringkv-glommio ] && engine=(--net-engine glommio)
            [ "$name" = ringkv-resp ] && resp_port=$(free_port)
            taskset -c "$SERVER_CPU" "$RINGKV" serve --host 127.0.0.1 --port "$port" --shards 1 \
                --data-dir "$dir" --durability "$durability" --resp-port "$resp_port" --log-level warn \
                "${engine[@]}" 2>"$WORK/$name.log" &
            SERVER_URL="ringkv://127.0.0.1:$port"
            [ "$name" = ringkv-resp ] && SERVER_URL="redis://127.0.0.1:$resp_port" ;;
    esac
    SPID[$name]=$!
    URL[$name]=$SERVER_URL
    PIDS+=("${SPID[$name]}")
    wait_port "$port" "${SPID[$name]}"
    if [[ $name == ringkv* ]]; then wait_port $((port + 1)) "${SPID[$name]}"; fi
    if [ "$name" = ringkv-resp ]; then wait_port "${URL[$name]##*:}" "${SPID[$name]}"; fi
}

# run_cell TARGET WORKLOAD PIPELINE RUN [RATE [LABEL]] -> writes $OUT/TARGET-WORKLOAD-PPIPELINE-RUN.json
# and appends "target workload pipeline ops p50 p99 p999 cpu_us errors ipis_per_1k" to $OUT/cells.txt; with
# RATE, an open loop at RATE requests/s whose cell is named WORKLOAD@LABEL (LABEL defaults to RATE).
run_cell() {
    local target=$1 workload=$2 pipeline=$3 run=$4 rate=${5:-} label=${6:-${5:-}} t0 t1 i0 i1 file requests name lg open=()
    local connections=$CONNECTIONS
    name=$workload
    if [ -n "$rate" ]; then
        name="$workload@$label"
        open=(--rate "$rate" --send-quantum-us "$SEND_QUANTUM_US")
        connections=$OPEN_CONNECTIONS
    fi
    file="$OUT/$target-$name-P$pipeline-$run.json"
    taskset -c "$CLIENT_CPU" "$LOADGEN" --target "${URL[$target]}" --cpus "$CLIENT_CPU" --threads 1 \
        --connections "$connections" --pipeline "$pipeline" --workload "$workload" \
        --keyspace "$KEYSPACE" --value-size 100 --duration "$DURATION" --seed "$run" "${open[@]}" \
        --transport "$TRANSPORT" --warmup "${WARMUP}s" \
        --json --quiet >"$file" 2>"$file.log" &
    lg=$!
    # The server's CPU counts from the end of the warm-up, as loadgen's requests do.
    sleep "$WARMUP"
    t0=$(cpu_ticks "${SPID[$target]}")
    i0=$(client_ipis)
    if ! wait "$lg"; then
        log "$target $workload P$pipeline: loadgen failed: $(tail -2 "$file.log" | tr '\n' ' ')"
    fi
    t1=$(cpu_ticks "${SPID[$target]}")
    i1=$(client_ipis)
    if ! jq -e '.phases[-1].ops[-1]' "$file" >/dev/null 2>&1; then
        echo "$target $name $pipeline 0 0 0 0 0 -1 0" >>"$OUT/cells.txt"
        return
    fi
    requests=$(jq '.phases[-1].requests' "$file")
    jq -r --arg t "$target" --arg w "$name" --arg p "$pipeline" \
        --argjson cpu "$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN{printf "%.3f", (n > 0 ? d * 1e6 / hz / n : 0)}')" \
        --argjson ipis "$(awk -v d=$((i1 - i0)) -v n="$requests" 'BEGIN{printf "%.2f", (n > 0 ? d * 1000 / n : 0)}')" \
        '.phases[-1] as $ph | $ph.ops[-1] as $o
         | "\($t) \($w) \($p) \($ph.ops_per_s) \($o.p50_us) \($o.p99_us) \($o.p999_us) \($cpu) \($ph.errors) \($ipis)"' \
        "$file" >>"$OUT/cells.txt"
    log "$(tail -1 "$OUT/cells.txt")"
}

load_keyspace() {
    log "loading $KEYSPACE keys into $1"
    taskset -c "$CLIENT_CPU" "$LOADGEN" --target "${URL[$1]}" --cpus "$CLIENT_CPU" --connections "$CONNECTIONS" \
        --pipeline 16 --workload set --keyspace "$KEYSPACE" --value-size 100 --load-only --quiet \
        --transport "$TRANSPORT" \
        >"$OUT/$1-load.txt" 2>&1 || log "load into $1 failed: $(tail -2 "$OUT/$1-load.txt" | tr '\n' ' ')"
}

# half_peak_rate WORKLOAD -> half of ringkv's median pipeline-16 throughput of WORKLOAD so far
# (requests/s), or nothing when no such cell ran.
half_peak_rate() {
    awk -v w="$1" '$1 == "ringkv" && $2 == w && $3 == 16 && $4 > 0 { print $4 }' "$OUT/cells.txt" |
        sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%d\n", a[int((NR + 1) / 2)] / 2 }'
}

cell_workload() { case "$1" in a|b) echo "ycsb-$1" ;; *) echo "$1" ;; esac; }

# All servers run at once (idle ones cost nothing), and cells are interleaved across targets
# run by run, so a change in the machine's background load hits every target alike.
: >"$OUT/cells.txt"
: >"$OUT/stalls.txt"
# Before any server starts: the machine's own stalls on both CPUs.
if [ "$STALL_PROBE" != 0 ]; then
    log "stall probe: spinning on CPUs $SERVER_CPU,$CLIENT_CPU for $STALL_PROBE s"
    "$STALL_PROBE_BIN" --cpus "$SERVER_CPU,$CLIENT_CPU" --seconds "$STALL_PROBE" >"$OUT/stalls.txt"
    while read -r line; do log "$line"; done <"$OUT/stalls.txt"
fi
log "results in $OUT; loadgen transport $TRANSPORT; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
MAIN=()
for t in ${TARGETS//,/ }; do
    if [[ $t == ringkv* ]] && ! "$RINGKV" --version >/dev/null 2>&1; then
        log "skipping ringkv: $RINGKV does not run (build it with: cargo build --release --bin ringkv)"
        continue
    fi
    MAIN+=("$t")
done
DURABLE_TARGETS=()
if [ "$DURABLE" = 1 ]; then
    DURABLE_TARGETS+=(redis-aof)
    for t in "${MAIN[@]}"; do [ "$t" = ringkv ] && DURABLE_TARGETS+=(ringkv-sync); done
fi
for t in "${MAIN[@]}" "${DURABLE_TARGETS[@]}"; do
    start_server "$t"
    load_keyspace "$t"
done
for r in $(seq "$RUNS"); do
    for c in ${CELLS//,/ }; do
        for p in ${PIPELINES//,/ }; do
            for t in "${MAIN[@]}"; do run_cell "$t" "$(cell_workload "$c")" "$p" "$r"; done
        done
    done
    for p in ${PIPELINES//,/ }; do
        for t in "${DURABLE_TARGETS[@]}"; do run_cell "$t" set "$p" "$r"; done
    done
    for rate in ${OPEN_RATES//,/ }; do
        for w in get set; do
            for t in "${MAIN[@]}"; do run_cell "$t" "$w" "$OPEN_PIPELINE" "$r" "$rate"; done
        done
    done
    if [ "$OPEN_HALF_PEAK" = 1 ]; then
        for w in get set; do
            rate=$(half_peak_rate "$w")
            if [ -z "$rate" ]; then
                log "--open-half-peak: no ringkv $w cell at pipeline 16 to take the peak from; skipped"
                continue
            fi
            log "run $r: $w at half of ringkv's peak: $rate requests/s"
            for t in "${MAIN[@]}"; do run_cell "$t" "$w" "$OPEN_PIPELINE" "$r" "$rate" half; done
        done
    fi
done

# --- the table: medians over runs, ratios against Redis and echo --------------------------------
tee "$OUT/table.txt" <"$OUT/stalls.txt"
awk -v runs="$RUNS" '
function median(key, n,   i, j, t, a) {
    n = cnt[key]; for (i = 1; i <= n; i++) a[i] = vals[key, i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    cell = $2 " " $3
    if (!(cell in seen)) { seen[cell] = 1; order[++ncells] = cell }
    if (!(($1) in tseen)) { tseen[$1] = 1; torder[++ntargets] = $1 }
    for (f = 4; f <= 8; f++) { k = $1 SUBSEP cell SUBSEP f; cnt[k]++; vals[k, cnt[k]] = $f }
    k = $1 SUBSEP cell SUBSEP 10; cnt[k]++; vals[k, cnt[k]] = $10 + 0
    errs[$1 SUBSEP cell] += $9
}
END {
    printf "%-11s %3s %-12s %12s %9s %9s %9s %11s %9s %9s %9s %8s %8s\n", "workload", "P", "target", "ops/s", "p50 us", "p99 us", "p99.9 us", "cpu us/req", "vs redis", "vs echo", "cpu/redis", "errors", "ipi/1k"
    for (i = 1; i <= ncells; i++) {
        cell = order[i]; split(cell, cp, " ")
        for (j = 1; j <= ntargets; j++) {
            t = torder[j]; k = t SUBSEP cell
            if (!((k SUBSEP 4) in cnt)) continue
            ops = median(k SUBSEP 4); cpu = median(k SUBSEP 8)
            peer = (t ~ /-aof$|-sync$/) ? "redis-aof" : "redis"
            vr = "-"; ve = "-"; vc = "-"
            if (t ~ /^ringkv/ && ((peer SUBSEP cell SUBSEP 4) in cnt)) {
                r = median(peer SUBSEP cell SUBSEP 4); if (r > 0) vr = sprintf("%.2f", ops / r)
                rc = median(peer SUBSEP cell SUBSEP 8); if (rc > 0) vc = sprintf("%.2f", cpu / rc)
            }
            if (t ~ /^ringkv/ && (("echo" SUBSEP cell SUBSEP 4) in cnt)) {
                e = median("echo" SUBSEP cell SUBSEP 4); if (e > 0) ve = sprintf("%.2f", ops / e)
            }
            printf "%-11s %3s %-12s %12.0f %9.1f %9.1f %9.1f %11.2f %9s %9s %9s %8d %8.1f\n", cp[1], cp[2], t, ops, median(k SUBSEP 5), median(k SUBSEP 6), median(k SUBSEP 7), cpu, vr, ve, vc, errs[k], median(k SUBSEP 10)
        }
    }
    # The summary line: pipeline 16, ringkv (in-memory) against Redis (persistence off) and echo.
    split("get set", names, " ")
    for (n = 1; n <= 2; n++) {
        cell = names[n] " 16"
        rk = "ringkv" SUBSEP cell SUBSEP 4; rd = "redis" SUBSEP cell SUBSEP 4
        ratio[names[n]] = ((rk in cnt) && (rd in cnt) && median(rd) > 0) ? sprintf("%.2f", median(rk) / median(rd)) : "n/a"
    }
    ec = "echo" SUBSEP "get 16" SUBSEP 4; rk = "ringkv" SUBSEP "get 16" SUBSEP 4
    gve = ((rk in cnt) && (ec in cnt) && median(ec) > 0) ? sprintf("%.2f", median(rk) / median(ec)) : "n/a"
    # CPU per request over GET and SET together (mean of the two per-request costs).
    cvr = "n/a"
    if (("ringkv" SUBSEP "get 16" SUBSEP 8) in cnt && ("ringkv" SUBSEP "set 16" SUBSEP 8) in cnt && ("redis" SUBSEP "get 16" SUBSEP 8) in cnt && ("redis" SUBSEP "set 16" SUBSEP 8) in cnt) {
        a = median("ringkv" SUBSEP "get 16" SUBSEP 8) + median("ringkv" SUBSEP "set 16" SUBSEP 8)
        b = median("redis" SUBSEP "get 16" SUBSEP 8) + median("redis" SUBSEP "set 16" SUBSEP 8)
        if (b > 0) cvr = sprintf("%.2f", a / b)
    }
    printf "ratios get_vs_redis=%s set_vs_redis=%s get_vs_echo=%s cpu_per_request_vs_redis=%s\n", ratio["get"], ratio["set"], gve, cvr
}' "$OUT/cells.txt" | tee -a "$OUT/table.txt"
