#!/usr/bin/env bash
# Index and folder scale: the durable index and the live folder at sizes users reach.
#
#   1. durable publish of N files in batches of 10 000 (default 100 000)
#   2. index start-up (loading the database) and resident memory with M (file, holder)
#      entries (default 1 000 000), and bytes of memory per entry
#   3. keyword search latency over those M names, one connection: p50, p99
#   4. a peer's start-up over a folder of F files (default 10 000), cold (hashing every
#      file) and warm (the hash cache spares it)
#
# Usage: bench/index_scale.sh [--publish N] [--entries M] [--files F] [--smoke] [--out DIR]
set -euo pipefail

PUBLISH=100000
ENTRIES=1000000
FILES=10000
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --duration | --connections | --pipeline | --rounds | --out | --publish | --entries | --files)
            [ $# -ge 2 ] || { echo "index_scale.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
        --publish) PUBLISH="$2"; shift 2 ;;
        --entries) ENTRIES="$2"; shift 2 ;;
        --files) FILES="$2"; shift 2 ;;
        --smoke) PUBLISH=2000; ENTRIES=20000; FILES=200; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "index_scale.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-bench/results/index-scale-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
WORK="$(mktemp -d -p "$REPO/bench/results" scale.XXXXXX 2>/dev/null || mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare" # where cargo put it
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
echo "# index and folder scale  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r), $(df -T "$WORK" | awk 'NR==2 {print $2}') disk"
echo "# command: bench/index_scale.sh --publish $PUBLISH --entries $ENTRIES --files $FILES"

now() { date +%s.%N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Starts an index on a database; sets INDEX_PID, INDEX (its address) and STARTED (the
# seconds from launch to its ready line).
start_index() {
    local db="$1" log="$WORK/index-$RANDOM.out" t0 deadline
    t0="$(now)"
    "$BIN" index --listen 127.0.0.1:0 --db "$db" --lease 10m --idle-timeout 10m \
        --max-files-per-peer 100000000 --max-files-per-address 100000000 --publish-rate 100000000 --publish-rate-per-address 100000000 >"$log" 2>>"$WORK/index.err" &
    INDEX_PID=$!
    PIDS+=("$INDEX_PID")
    deadline=$((SECONDS + 300))
    until grep -q 'listening on' "$log"; do
        [ $SECONDS -lt $deadline ] || { echo "index did not start" >&2; exit 1; }
        sleep 0.01
    done
    INDEX="$(grep -o '127\.0\.0\.1:[0-9]*' "$log")"
    STARTED="$(python3 -c "print(f'{$(now) - $t0:.3f}')")"
}

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# 1. Durable publish.
start_index "$WORK/publish.db"
PUB_SECS="$("$BIN" bench index --index "$INDEX" --names "$PUBLISH" --op get -c 1 -n 1 --json | json_field populate_seconds)"
kill "$INDEX_PID"; wait "$INDEX_PID" 2>/dev/null || true

# 2. Start-up and memory with ENTRIES entries.
start_index "$WORK/big.db"
RSS_EMPTY="$(rss_kib "$INDEX_PID")"
POP_SECS="$("$BIN" bench index --index "$INDEX" --names "$ENTRIES" --op get -c 1 -n 1 --json | json_field populate_seconds)"
RSS_FULL="$(rss_kib "$INDEX_PID")"
kill "$INDEX_PID"; wait "$INDEX_PID" 2>/dev/null || true
start_index "$WORK/big.db"
START_SECS="$STARTED"
RSS_RESTORED="$(rss_kib "$INDEX_PID")"

# 3. Search latency over those names (restored from disk), one connection.
SEARCH_JSON="$("$BIN" bench index --index "$INDEX" --names "$ENTRIES" --no-populate --op search -c 1 --duration 5s --json)"

# 4. Peer start-up over FILES files, cold then warm.
mkdir -p "$WORK/folder"
python3 - "$WORK/folder" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"file-{i:06}.txt"), "wb") as f:
        f.write(os.urandom(2048))
PY
# Old enough to count as settled at once.
touch -d '1 minute ago' "$WORK/folder"/*
peer_start() {
    local log="$WORK/peer-$RANDOM.out" t0 deadline pid
    t0="$(now)"
    "$BIN" peer --dir "$WORK/folder" --listen 127.0.0.1:0 --index "$INDEX" --no-console >"$log" 2>>"$WORK/peer.err" &
    pid=$!
    deadline=$((SECONDS + 300))
    until grep -q '^sharing ' "$log"; do
        [ $SECONDS -lt $deadline ] || { echo "peer did not finish its scan" >&2; exit 1; }
        sleep 0.01
    done
    python3 -c "print(f'{$(now) - $t0:.3f}')"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
COLD="$(peer_start)"
WARM="$(peer_start)"

python3 - "$OUT/index_scale.json" <<PY
import json, sys
search = json.loads('''$SEARCH_JSON''')
r = {
    "publish_files": $PUBLISH, "publish_seconds": $PUB_SECS,
    "entries": $ENTRIES, "populate_seconds": $POP_SECS,
    "startup_seconds": $START_SECS,
    "rss_empty_kib": $RSS_EMPTY, "rss_full_kib": $RSS_FULL, "rss_restored_kib": $RSS_RESTORED,
    "search_p50_us": search["p50_us"], "search_p99_us": search["p99_us"], "search_ops_per_sec": search["ops_per_sec"],
    "folder_files": $FILES, "peer_start_cold_seconds": $COLD, "peer_start_warm_seconds": $WARM,
}
json.dump(r, open(sys.argv[1], "w"), indent=1)
per_entry = (r["rss_restored_kib"] - r["rss_empty_kib"]) * 1024 / r["entries"]
print()
print(f"durable publish of {r['publish_files']:,} files in batches: {r['publish_seconds']:.3f} s   (target <= 1 s)")
print(f"index with {r['entries']:,} entries: start-up {r['startup_seconds']:.2f} s, resident {r['rss_restored_kib']/1024:.0f} MiB "
      f"(empty {r['rss_empty_kib']/1024:.0f} MiB) = {per_entry:.0f} bytes per entry   (target <= 200)")
print(f"  (after publishing them live: {r['rss_full_kib']/1024:.0f} MiB; publishing took {r['populate_seconds']:.1f} s)")
print(f"search over {r['entries']:,} names, one connection: p50 {r['search_p50_us']} us, p99 {r['search_p99_us']} us   (targets 1 ms, 10 ms)")
print(f"peer start-up over {r['folder_files']:,} files: cold {r['peer_start_cold_seconds']:.2f} s, warm hash cache {r['peer_start_warm_seconds']:.2f} s")
PY
echo "raw figures: $OUT/index_scale.json"
