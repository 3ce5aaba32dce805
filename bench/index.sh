#!/usr/bin/env bash
# Index-server load benchmark: p2pshare's index under `p2pshare bench index`, next to
# redis-server under redis-benchmark (same connections and pipeline depth), and the
# classic dialect (a new connection per request) next to the physical limit, a minimal
# accept-read-write-close loop (bench/accept_loop.rs), and a rebuild of the seed-003
# index. Prints one table of ops/s, latency and ratios; writes the raw figures to
# OUT/index.json.
#
# Usage: bench/index.sh [--duration 5s] [--rounds 3] [--connections 50] [--pipeline 16]
#                       [--classic-clients 4] [--install] [--smoke] [--out DIR]
#   --classic-clients  client threads for the classic rows, each dialling anew
#   --install   apt-get install redis-server (redis-benchmark) if missing
#   --smoke     one second per row, for CI: checks the scripts still run
set -euo pipefail

DURATION=5s
ROUNDS=3
CONNS=50
PIPE=16
CLASSIC=4
INSTALL=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration | --connections | --pipeline | --classic-clients | --rounds | --out)
            [ $# -ge 2 ] || { echo "index.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNS="$2"; shift 2 ;;
        --pipeline) PIPE="$2"; shift 2 ;;
        --classic-clients) CLASSIC="$2"; shift 2 ;;
        --install) INSTALL=1; shift ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --smoke) DURATION=1s; ROUNDS=1; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "index.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-bench/results/index-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$INSTALL" = 1 ] && ! command -v redis-benchmark >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

echo "# index benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
echo "# command: bench/index.sh --duration $DURATION --rounds $ROUNDS --connections $CONNS --pipeline $PIPE --classic-clients $CLASSIC"

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare" # where cargo put it
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac

# Waits (bounded) for a line matching a pattern in a file; prints the match.
wait_for() {
    local file="$1" pattern="$2" deadline=$((SECONDS + 20))
    while [ $SECONDS -lt $deadline ]; do
        if grep -m1 -o "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "index.sh: timed out waiting for '$pattern' in $file" >&2
    cat "$file" >&2
    return 1
}

"$BIN" index --listen 127.0.0.1:0 --db "$WORK/index.db" --max-connections 4096 --max-connections-per-address 4096 \
    --max-peers-per-address 4096 --max-files-per-peer 100000000 --max-files-per-address 100000000 --publish-rate 100000000 --publish-rate-per-address 100000000 >"$WORK/index.out" 2>"$WORK/index.err" &
PIDS+=($!)
INDEX="$(wait_for "$WORK/index.out" '127\.0\.0\.1:[0-9]*')"

ROWS="$WORK/rows.jsonl"
: >"$ROWS"
run_p2p() { # label, args...
    local label="$1"; shift
    "$BIN" bench index --index "$INDEX" --duration "$DURATION" --json "$@" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; print(json.dumps(r))' "$label" >>"$ROWS"
}
# The classic dialect's references: the seed-003 index as its program runs (rebuilt
# from its design: one thread accepts, answers and closes), and the physical limit, a
# minimal accept-read-write-close loop in Rust with nothing else.
rustc -O --edition 2021 bench/accept_loop.rs -o "$WORK/accept_loop"
"$WORK/accept_loop" "$WORK/loop.port" &
PIDS+=($!)
python3 bench/seed003_index.py "$WORK/seed.port" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/seed.port" ] && [ -s "$WORK/loop.port" ] && break; sleep 0.05; done
SEED="127.0.0.1:$(cat "$WORK/seed.port")"
LOOP="127.0.0.1:$(cat "$WORK/loop.port")"
python3 - "$SEED" <<'PY'
import socket, sys
host, port = sys.argv[1].split(":")
for i in range(10000):
    s = socket.create_connection((host, int(port)))
    s.sendall(f"set|bench-file-{i:07}.dat|127.0.0.1|seed|1025".encode())
    s.recv(64); s.close()
PY
run_classic() { # label, address
    "$BIN" bench index --index "$2" --op classic-get -c "$CLASSIC" --duration "$DURATION" --no-populate --json 2>/dev/null |
        python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; print(json.dumps(r))' "$1" >>"$ROWS" ||
        echo "# $1: no figure this round"
}

HAVE_REDIS=0
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    HAVE_REDIS=1
    RPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
    SECS="$(python3 -c 'import sys; t=sys.argv[1]; print(float(t[:-2])/1000 if t.endswith("ms") else float(t.rstrip("s")))' "$DURATION")"
    # Redis does the same work as the index: GET of 10,000 keys that exist, each value
    # the size of a holder row (about 180 bytes), not a miss answered with 5 bytes.
    redis-benchmark -p "$RPORT" -t set -r 10000 -d 180 -n 200000 -c "$CONNS" -P 16 -q >/dev/null
else
    echo "# skipped: redis-server/redis-benchmark not installed (run with --install)"
fi
run_redis() { # tests, pipeline
    [ "$HAVE_REDIS" = 1 ] || return 0
    local tests="$1" P="$2" N
    # Enough requests for about the same duration as the p2pshare rows.
    N="$(python3 -c "print(int(max(20000, $SECS * (80000 if $P == 1 else 800000))))")"
    redis-benchmark -p "$RPORT" -t "$tests" -r 10000 -d 180 -c "$CONNS" -P "$P" -n "$N" --csv 2>/dev/null |
        python3 -c '
import csv, json, sys
p = sys.argv[1]
for row in csv.reader(sys.stdin):
    if row and row[0] in ("GET", "SET"):
        print(json.dumps({"label": f"redis {row[0]}" + (f" -P{p}" if p != "1" else ""), "ops_per_sec": float(row[1]),
                          "p50_us": float(row[4]) * 1000 if len(row) > 4 else None,
                          "p99_us": float(row[6]) * 1000 if len(row) > 6 else None,
                          "connections": int(sys.argv[2]), "pipeline": int(p)}))' "$P" "$CONNS" >>"$ROWS"
}

# The rows that carry a target alternate with their reference, round after round, so
# a slow moment of the machine hits both; the tables show medians.
for round in $(seq "$ROUNDS"); do
    echo "# round $round of $ROUNDS"
    run_p2p "p2pshare get" --op get -c "$CONNS" -P 1
    run_redis get 1
    run_p2p "p2pshare get -P$PIPE" --op get -c "$CONNS" -P "$PIPE"
    run_redis get "$PIPE"
    run_p2p "p2pshare classic get" --op classic-get -c "$CLASSIC"
    run_classic "accept loop (Rust, one thread)" "$LOOP"
    run_classic "seed-003 index (Python, one thread)" "$SEED"
done
run_p2p "p2pshare search" --op search -c "$CONNS" -P 1
run_p2p "p2pshare publish (durable)" --op publish -c "$CONNS" -P 1
run_redis set 1

python3 - "$ROWS" "$OUT/index.json" "$PIPE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(rows, open(sys.argv[2], "w"), indent=1)
pipe = sys.argv[3]
labels = list(dict.fromkeys(r["label"] for r in rows))
def med(label, key):
    vals = [r[key] for r in rows if r["label"] == label and r.get(key) is not None]
    return statistics.median(vals) if vals else None
def ops(label):
    return med(label, "ops_per_sec")
print()
print(f"{'row (median of rounds)':<40} {'ops/s':>12} {'min-max ops/s':>20} {'p50 us':>9} {'p99 us':>9}")
fmt = lambda v: "-" if v is None else f"{v:,.0f}"
for label in labels:
    all_ops = [r["ops_per_sec"] for r in rows if r["label"] == label]
    spread = f"{min(all_ops):,.0f}-{max(all_ops):,.0f}" if len(all_ops) > 1 else ""
    print(f"{label:<40} {ops(label):>12,.0f} {spread:>20} {fmt(med(label, 'p50_us')):>9} {fmt(med(label, 'p99_us')):>9}")
print()
def ratio(a, b, target):
    x, y = ops(a), ops(b)
    if x and y:
        print(f"{a} / {b}: {x / y:.2f}  (target >= {target})")
    else:
        print(f"{a} / {b}: n/a (a row is missing)")
ratio("p2pshare get", "redis GET", "1.0")
ratio(f"p2pshare get -P{pipe}", f"redis GET -P{pipe}", "0.8")
ratio("p2pshare classic get", "accept loop (Rust, one thread)", "0.95")
ratio("p2pshare classic get", "seed-003 index (Python, one thread)", "1.0")
PY
echo
echo "raw figures: $OUT/index.json"
