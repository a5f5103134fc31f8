#!/usr/bin/env bash
# perf/resp-compare.sh: ringkv's Redis-protocol port against Redis, both driven by
# redis-benchmark (a client we did not write, epoll-based), on this machine.
#
# Each server runs pinned to CPU 0 (ringkv: 1 shard, --durability none; Redis: no persistence),
# redis-benchmark pinned to CPU 1, on loopback, 50 connections, 100-byte values, keys drawn from
# 1M (-r 1000000). Each server is filled first (a SET pass and a GET pass of 4M requests, which
# also warms ringkv's row cache); then each test (SET, GET) runs RUNS times per pipeline depth,
# servers in turns, and the medians are printed with the server CPU per request (utime + stime
# delta of the server process from /proc/PID/stat, divided by the requests) and the ratios
# ringkv / Redis (for CPU, lower is better).
#
# Usage: perf/resp-compare.sh [--runs N] [--requests N] [--pipelines 1,16] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=3
REQUESTS=3000000
PIPELINES=1,16
BUILD=1
SERVER_CPU=0
CLIENT_CPU=1

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --requests) REQUESTS=$2; shift 2 ;;
        --pipelines) PIPELINES=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "resp-compare.sh: unknown argument $1" >&2; exit 1 ;;
    esac
done

log() { echo "resp-compare: $*" >&2; }
for tool in redis-server redis-benchmark jq; do
    command -v "$tool" >/dev/null || { echo "resp-compare.sh: $tool is missing (apt-get install -y redis-server redis-tools jq)" >&2; exit 1; }
done
[ "$BUILD" = 1 ] && (cd "$ROOT" && cargo build --release --bin ringkv >&2)
RINGKV="$ROOT/target/release/ringkv"
CLK_TCK=$(getconf CLK_TCK)

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringkv-resp-compare.XXXXXX")
# The data directory must be on the real disk (O_DIRECT), not tmpfs.
DATA="$ROOT/target/resp-compare-data-$$"
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$WORK" "$DATA"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
            echo "$p"; return
        fi
    done
    echo "resp-compare.sh: no free port" >&2; exit 1
}

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        kill -0 "$2" 2>/dev/null || { echo "resp-compare.sh: server on port $1 exited" >&2; exit 1; }
        sleep 0.05
    done
    echo "resp-compare.sh: port $1 did not open" >&2; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A PORT=() SPID=()
port=$(free_port)
mkdir -p "$DATA"
taskset -c "$SERVER_CPU" "$RINGKV" serve --host 127.0.0.1 --port "$port" --shards 1 --data-dir "$DATA" \
    --durability none --resp-port $((port + 2)) --log-level warn 2>"$WORK/ringkv.log" &
SPID[ringkv]=$!; PORT[ringkv]=$((port + 2)); PIDS+=("$!")
port=$(free_port)
taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK" --save '' \
    --appendonly no --protected-mode no --logfile "$WORK/redis.log" &
SPID[redis]=$!; PORT[redis]=$port; PIDS+=("$!")
for s in ringkv redis; do wait_port "${PORT[$s]}" "${SPID[$s]}"; done

# bench SERVER TEST PIPELINE N -> "ops_per_s cpu_us_per_req"
bench() {
    local t0 t1 ops
    t0=$(cpu_ticks "${SPID[$1]}")
    ops=$(taskset -c "$CLIENT_CPU" redis-benchmark -p "${PORT[$1]}" -c 50 -P "$3" -t "$2" -n "$4" \
        -r 1000000 -d 100 -q 2>&1 | tr '\r' '\n' | grep -a "requests per second" | tail -1 \
        | sed 's/.*: \([0-9.]*\) requests per second.*/\1/')
    t1=$(cpu_ticks "${SPID[$1]}")
    echo "${ops:-0} $(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$4" 'BEGIN{printf "%.3f", d * 1e6 / hz / n}')"
}

for s in ringkv redis; do
    log "filling $s"
    bench "$s" set 16 4000000 >/dev/null
    bench "$s" get 16 4000000 >/dev/null
done

: >"$WORK/cells.txt"
for p in ${PIPELINES//,/ }; do
    # Pipeline 1 is client-bound: fewer requests keep its runs as short as the others.
    n=$REQUESTS; [ "$p" = 1 ] && n=$((REQUESTS / 10))
    for run in $(seq "$RUNS"); do
        for t in set get; do
            for s in ringkv redis; do
                read -r ops cpu < <(bench "$s" "$t" "$p" "$n")
                echo "$s $t $p $ops $cpu" >>"$WORK/cells.txt"
                log "run $run: $s $t P$p $ops ops/s, $cpu us/req"
            done
        done
    done
done

awk '
function median(k,   n, i, j, t, v) {
    n = cnt[k]; for (i = 1; i <= n; i++) v[i] = val[k, i]
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2 SUBSEP $3; cnt[k "o"]++; val[k "o", cnt[k "o"]] = $4; cnt[k "c"]++; val[k "c", cnt[k "c"]] = $5
  if (!(($2 SUBSEP $3) in seen)) { seen[$2 SUBSEP $3] = 1; order[++n] = $2 SUBSEP $3 } }
END {
    printf "%-5s %3s %14s %14s %9s %13s %13s %9s\n", "test", "P", "ringkv ops/s", "redis ops/s", "ratio", "ringkv us/req", "redis us/req", "cpu ratio"
    for (i = 1; i <= n; i++) {
        split(order[i], c, SUBSEP)
        ro = median("ringkv" SUBSEP order[i] "o"); do_ = median("redis" SUBSEP order[i] "o")
        rc = median("ringkv" SUBSEP order[i] "c"); dc = median("redis" SUBSEP order[i] "c")
        printf "%-5s %3s %14.0f %14.0f %9.2f %13.3f %13.3f %9.2f\n", c[1], c[2], ro, do_, (do_ > 0 ? ro / do_ : 0), rc, dc, (dc > 0 ? rc / dc : 0)
    }
}' "$WORK/cells.txt"
