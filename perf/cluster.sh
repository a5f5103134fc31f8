#!/usr/bin/env bash
# perf/cluster.sh: loadgen against a local 3-node cluster (`ringkv dev-cluster --nodes 3`, one shard
# per node, replication factor 3) on this machine: GET and PUT of 100-byte values, closed-loop peak
# at QUORUM, then open loop at half of that peak at ONE, QUORUM and ALL. Prints one table and, last,
# a `cluster ...` line with the QUORUM figures.
#
# Every request goes to node 1, which coordinates it (its shard writes or reads its own copy and
# those of nodes 2 and 3 over the internode links). All processes share the machine's cores.
#
# Usage: perf/cluster.sh [--runs 3] [--keys N] [--duration 10s] [--connections C] [--base-port P]
#                        [-- extra `ringkv serve` flags, e.g. --durability none]
# With --runs N, each run measures its own peak and half-peak cells; the table shows per-column
# medians over the runs (cells are named by level, not by rate).
# Needs: jq; builds ringkv and loadgen in release mode if missing. Cleans up every process it started.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=100000
RUNS=1
DURATION=10s
CONNECTIONS=16
BASE_PORT=7600
SERVE_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --keys) KEYS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    --) shift; SERVE_ARGS=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { echo "[cluster.sh $(date -u +%H:%M:%S)] $*" >&2; }
command -v jq >/dev/null || { echo "perf/cluster.sh needs jq (apt-get install jq)" >&2; exit 2; }

BIN="$ROOT/target/release"
if [ ! -x "$BIN/ringkv" ] || [ ! -x "$BIN/loadgen" ] || [ ! -x "$BIN/ringctl" ]; then
    log "building ringkv, ringctl and loadgen (release)"
    (cd "$ROOT" && cargo build --release -q --bin ringkv --bin ringctl && cargo build --release -q -p ringkv-perf --bin loadgen)
fi

OUT=$(mktemp -d -p "$ROOT/target" cluster-bench.XXXXXX)
"$BIN/ringkv" dev-cluster --nodes 3 --base-port "$BASE_PORT" --data-dir "$OUT/data" -- \
    "${SERVE_ARGS[@]}" >"$OUT/dev-cluster.out" 2>"$OUT/dev-cluster.err" &
DEV=$!
cleanup() {
    kill -TERM "$DEV" 2>/dev/null || true
    wait "$DEV" 2>/dev/null || true
}
trap cleanup EXIT

ADDR="127.0.0.1:$BASE_PORT"
log "waiting for the cluster (results in $OUT)"
for _ in $(seq 1 300); do
    if "$BIN/ringctl" --addr "$ADDR" --consistency all put cluster-bench-probe ok >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
"$BIN/ringctl" --addr "$ADDR" --consistency all put cluster-bench-probe ok >/dev/null

log "loading $KEYS keys at QUORUM"
"$BIN/loadgen" --target "ringkv://$ADDR" --connections "$CONNECTIONS" --pipeline 16 --workload set \
    --keyspace "$KEYS" --value-size 100 --consistency quorum --load-only --quiet >"$OUT/load.txt" 2>&1

# run NAME WORKLOAD LEVEL [--rate R] -> "name ops p50 p99 p999 errors" on stdout
run() {
    local name=$1 workload=$2 level=$3; shift 3
    local file="$OUT/$name.json"
    "$BIN/loadgen" --target "ringkv://$ADDR" --connections "$CONNECTIONS" --pipeline 1 \
        --workload "$workload" --keyspace "$KEYS" --value-size 100 --consistency "$level" \
        --duration "$DURATION" --json --quiet "$@" >"$file" 2>"$file.log" || true
    jq -r --arg n "$name" '.phases[-1] as $ph | $ph.ops[-1] as $o
        | "\($n) \($ph.ops_per_s|floor) \($o.p50_us) \($o.p99_us) \($o.p999_us) \($ph.errors)"' "$file"
}

: >"$OUT/cells.txt"
for r in $(seq 1 "$RUNS"); do
    declare -A PEAK=()
    for op in get set; do
        line=$(run "$op-quorum-peak-$r" "$op" quorum)
        PEAK[$op]=$(echo "$line" | awk '{print $2}')
        echo "$line" | sed "s/-$r / /" >>"$OUT/cells.txt"
    done
    for op in get set; do
        rate=$(( ${PEAK[$op]} / 2 ))
        for level in one quorum all; do
            run "$op-$level-half-$r" "$op" "$level" --rate "$rate" | sed "s/-$r / /" >>"$OUT/cells.txt"
        done
    done
    log "run $r of $RUNS done"
done

# Per cell, the median of each column over the runs.
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
printf '%-20s %10s %10s %10s %10s %8s\n' cell ops/s p50_us p99_us p99.9_us errors
declare -A MED
for cell in get-quorum-peak set-quorum-peak get-one-half get-quorum-half get-all-half \
    set-one-half set-quorum-half set-all-half; do
    row="$cell"
    for col in 2 3 4 5 6; do
        row="$row $(awk -v c="$cell" -v k="$col" '$1 == c {print $k}' "$OUT/cells.txt" | median)"
    done
    MED[$cell]=$row
    echo "$row" | awk '{printf "%-20s %10d %10.1f %10.1f %10.1f %8d\n", $1, $2, $3, $4, $5, $6}'
done
read -r _ gpeak _ <<<"${MED[get-quorum-peak]}"
read -r _ speak _ <<<"${MED[set-quorum-peak]}"
read -r _ _ _ gp99 gp999 _ <<<"${MED[get-quorum-half]}"
read -r _ _ _ sp99 sp999 _ <<<"${MED[set-quorum-half]}"
echo "cluster runs=$RUNS get_peak=$gpeak set_peak=$speak get_p99_us=$gp99 get_p999_us=$gp999 set_p99_us=$sp99 set_p999_us=$sp999"
