#!/usr/bin/env bash
# DHT benchmark, in two parts:
#
#   1. `p2pshare bench dht`: a private DHT of --nodes real DHT nodes in one process on
#      127.0.0.1; --keys keys put from random nodes and read from random others;
#      lookups of missing keys; then 30% of the nodes killed in 3 waves, each
#      followed by one republication window (1.5 x --republish + 5 s) and a read.
#      Per phase: success rate, p50/p99 latency, DHT requests per operation.
#   2. Trackerless get: one file (--size) shared by one peer, fetched with
#      `p2pshare get` through the index, and through the DHT alone (`--no-index`:
#      holders found with get_peers on the file name's hash), from real processes
#      (index, seed, peer) on 127.0.0.1. The two are interleaved for --runs rounds;
#      the report gives the medians and their ratio (DHT / index).
#
# Usage: bench/dht.sh [--nodes 200] [--keys 10000] [--republish 120s] [--waves 3]
#                     [--concurrency 16] [--size 64M] [--runs 5] [--out DIR] [--smoke]
#   --nodes        DHT nodes in part 1                                 [default: 200]
#   --keys         keys in part 1                                      [default: 10000]
#   --republish    the nodes' republish period in part 1               [default: 120s]
#   --waves        kill waves in part 1 (0: none)                      [default: 3]
#   --concurrency  operations under way at once in part 1              [default: 16]
#   --size         file size in part 2, K/M/G binary                   [default: 64M]
#   --runs         rounds of part 2                                    [default: 5]
#   --out          results folder          [default: bench/results/dht-<UTC timestamp>]
#   --smoke        30 nodes, 60 keys, 1 wave, republish 2s, 32 at once, an 8M file,
#                  1 round, for CI: checks the script still runs
# Environment: BENCH_WAIT_SECS, how long to wait for servers (default 120).
# Outputs in OUT: dht.json and dht.txt (part 1), get.csv (one row per timed get),
# report.txt (both parts' summary), logs/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

CMDLINE="bench/dht.sh $*"
NODES=200
KEYS=10000
REPUBLISH=120s
WAVES=3
CONCURRENCY=16
SIZE_ARG=64M
RUNS=5
OUT=""
SMOKE=0
WAIT_SECS="${BENCH_WAIT_SECS:-120}"
usage_error() {
    printf 'dht.sh: %s (see --help)\n' "$*" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes | --keys | --republish | --waves | --concurrency | --size | --runs | --out)
            [ $# -ge 2 ] || usage_error "$1 needs a value"
            case "$1" in
                --nodes) NODES="$2" ;;
                --keys) KEYS="$2" ;;
                --republish) REPUBLISH="$2" ;;
                --waves) WAVES="$2" ;;
                --concurrency) CONCURRENCY="$2" ;;
                --size) SIZE_ARG="$2" ;;
                --runs) RUNS="$2" ;;
                --out) OUT="$2" ;;
            esac
            shift 2
            ;;
        --smoke) SMOKE=1 && shift ;;
        -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done
BENCH_ARGS=(--nodes "$NODES" --keys "$KEYS" --republish "$REPUBLISH" --waves "$WAVES"
    --concurrency "$CONCURRENCY")
if [ "$SMOKE" -eq 1 ]; then
    BENCH_ARGS=(--nodes 30 --keys 60 --missing 10 --waves 1 --sample 10 --republish 2s
        --concurrency 32)
    SIZE_ARG=8M
    RUNS=1
fi
SIZE="$(size_to_bytes "$SIZE_ARG")" || usage_error "bad --size '$SIZE_ARG' (examples: 8M, 1G)"
case "$RUNS" in '' | *[!0-9]* | 0) usage_error "--runs must be a positive whole number" ;; esac
case "$NODES$KEYS$WAVES$CONCURRENCY" in *[!0-9]*) usage_error "--nodes, --keys, --waves and --concurrency must be whole numbers" ;; esac
case "$WAIT_SECS" in '' | *[!0-9]* | 0) usage_error "BENCH_WAIT_SECS must be a positive whole number" ;; esac
for tool in python3 cargo head; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required and not installed"
done

cd "$REPO"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
[ -x "$BIN" ] || die "no binary at $BIN after the build"

OUT="${OUT:-bench/results/dht-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOGDIR="$OUT/logs"
mkdir -p "$LOGDIR"
WORK="$(mktemp -d "$OUT/work.XXXXXX")"
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    [ "$status" -eq 0 ] || printf '\ndht.sh failed (exit %d); logs in %s\n' "$status" "$LOGDIR" >&2
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$COMMIT" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
HEADER="$(
    echo "p2pshare DHT benchmark"
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command:  $CMDLINE"
    echo "binary:   $("$BIN" --version) (commit $COMMIT, release build)"
    echo "machine:  nproc $(nproc), $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
    echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at start)"
    echo "part 1:   p2pshare bench dht ${BENCH_ARGS[*]}"
    echo "part 2:   file of $SIZE bytes, $RUNS rounds"
)"
printf '%s\n\n' "$HEADER"

# --- part 1: the in-process DHT ---------------------------------------------------------

echo "part 1: p2pshare bench dht ${BENCH_ARGS[*]} (progress in $LOGDIR/bench-dht.log)"
"$BIN" bench dht "${BENCH_ARGS[@]}" --json-out "$OUT/dht.json" >"$OUT/dht.txt" 2>"$LOGDIR/bench-dht.log" ||
    die "bench dht failed (see $LOGDIR/bench-dht.log)"
cat "$OUT/dht.txt"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, after part 1)"
echo

# --- part 2: trackerless get next to the index ------------------------------------------

SHARE="$WORK/holder"
mkdir -p "$SHARE"
head -c "$SIZE" /dev/urandom >"$SHARE/dht.bin"
SRC_ID="$(content_id "$SHARE/dht.bin")"

start_bg "$LOGDIR/index.log" "$BIN" index --listen 127.0.0.1:0 --db :memory:
INDEX="$(wait_for_line "$LOGDIR/index.log" "$BG_PID" 's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p' "$WAIT_SECS")"
# The seed's DHT node listens on UDP at its TCP port number: the one-shot gets
# bootstrap from it.
start_bg "$LOGDIR/seed.log" "$BIN" seed --listen 127.0.0.1:0
SEED="$(wait_for_line "$LOGDIR/seed.log" "$BG_PID" 's/^p2pshare seed .* listening on \([^ ,]*\).*/\1/p' "$WAIT_SECS")"
start_bg "$LOGDIR/holder.log" "$BIN" peer --dir "$SHARE" --listen 127.0.0.1:0 --index "$INDEX" \
    --seed "$SEED" --no-console
wait_for_line "$LOGDIR/holder.log" "$BG_PID" \
    "s/^index $INDEX: connected, \([0-9]*\) files\{0,1\} published.*/\1/p" "$WAIT_SECS" >/dev/null

DL="$WORK/dl"
fresh_dest() {
    rm -rf "$DL"
    mkdir -p "$DL"
    sync
}
get_args() { # WAY
    case "$1" in
        index) echo --index "$INDEX" ;;
        dht) echo --no-index --seed "$SEED" ;;
    esac
}
# The peer announces on the DHT within a few seconds of sharing: one untimed get
# through the DHT waits for that.
deadline=$((SECONDS + WAIT_SECS))
# shellcheck disable=SC2046 # get_args gives words
until fresh_dest && "$BIN" get dht.bin $(get_args dht) --dir "$DL" --json >>"$LOGDIR/get.jsonl" 2>>"$LOGDIR/get.log"; do
    [ "$SECONDS" -lt "$deadline" ] || die "the holder was not found on the DHT within ${WAIT_SECS}s"
    sleep 0.5
done
echo "part 2: index $INDEX, seed $SEED, one holder of dht.bin ($SIZE bytes)"

CSV="$OUT/get.csv"
echo "way,run,seconds,get_seconds" >"$CSV"
for ((run = 1; run <= RUNS; run++)); do
    for way in index dht; do
        fresh_dest
        t0="$(now_us)"
        # shellcheck disable=SC2046 # get_args gives words
        out="$("$BIN" get dht.bin $(get_args "$way") --dir "$DL" --json 2>>"$LOGDIR/get.log")" ||
            die "$way: get failed (see $LOGDIR/get.log)"
        t1="$(now_us)"
        printf '%s\n' "$out" >>"$LOGDIR/get.jsonl"
        case "$out" in *'"status":"downloaded"'*"\"id\":\"sha1:$SRC_ID\""* | *"\"id\":\"sha1:$SRC_ID\""*'"status":"downloaded"'*) ;;
            *) die "$way: unexpected answer $out" ;;
        esac
        [ "$(stat -c %s "$DL/dht.bin")" = "$SIZE" ] || die "$way: the copy has the wrong size"
        inner="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["seconds"])' "$out")"
        printf '%s,%s,%s,%s\n' "$way" "$run" "$(fmt_seconds $((t1 - t0)))" "$inner" >>"$CSV"
        printf '  run %d/%d  %-6s %s s\n' "$run" "$RUNS" "$way" "$(fmt_seconds $((t1 - t0)))"
    done
done
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the end)"

# --- report -----------------------------------------------------------------------------

BENCH_HEADER="$HEADER" BENCH_SIZE="$SIZE" python3 - "$OUT" <<'EOF' | tee "$OUT/report.txt"
import csv, json, os, statistics, sys

out = sys.argv[1]
size = int(os.environ["BENCH_SIZE"])
d = json.load(open(os.path.join(out, "dht.json")))
lines = [os.environ["BENCH_HEADER"], ""]
lines.append(f"part 1: {d['nodes']} nodes, {d['keys']} keys of {d['value_size']} bytes, "
             f"{d['concurrency']} operations at once, republish {d['republish_s']:.0f} s; "
             f"routing tables {d['routing_table']['min']}..{d['routing_table']['max']} "
             f"(median {d['routing_table']['median']})")
lines.append("")
lines.append("| phase | live nodes | ops | right | p50 ms | p99 ms | msgs/op | msgs/op net | background req/s | ops/s | CPU ms/op | UDP drops |")
lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
phases = [d["put"], d["get"], d["missing"]] + [w["read"] for w in d["waves"]]
for p in phases:
    lines.append(f"| {p['name']} | {p['live_nodes']} | {p['ops']} | {p['success_rate']:.2%} | "
                 f"{p['latency']['p50_ms']:.1f} | {p['latency']['p99_ms']:.1f} | "
                 f"{p['requests_per_op']:.1f} | {p['requests_per_op_net']:.1f} | "
                 f"{p['background_requests_per_s']:.0f} | {p['ops_per_s']:.0f} | "
                 f"{p['cpu_seconds'] * 1000 / max(p['ops'], 1):.1f} | {p['udp_rcvbuf_drops']} |")
for n, w in enumerate(d["waves"], 1):
    lines.append(f"wave {n}: {w['killed']} killed ({w['sockets_closed']} UDP sockets closed), "
                 f"{w['live_after']} alive, {w['waited_s']:.0f} s before the read")

rows = list(csv.DictReader(open(os.path.join(out, "get.csv"))))
secs = {"index": [], "dht": []}
for r in rows:
    secs[r["way"]].append(float(r["seconds"]))
med = {k: statistics.median(v) for k, v in secs.items()}
lines += ["", f"part 2: one holder, a file of {size} bytes; medians of {len(secs['index'])} rounds",
          "", "| way | median s | min–max s | MB/s |", "| --- | ---: | ---: | ---: |"]
for way, label in [("index", "get through the index"), ("dht", "get --no-index (DHT)")]:
    v = secs[way]
    lines.append(f"| {label} | {med[way]:.3f} | {min(v):.3f}–{max(v):.3f} | {size / med[way] / 1e6:.0f} |")
ratio = med["dht"] / med["index"]
lines += ["", f"trackerless get / index get: {ratio:.2f}x (the DHT adds {med['dht'] - med['index']:.3f} s)"]
json.dump({"header": os.environ["BENCH_HEADER"], "dht": d, "get": rows,
           "get_medians_s": med, "dht_over_index": ratio},
          open(os.path.join(out, "summary.json"), "w"), indent=1)
print("\n".join(lines))
EOF
