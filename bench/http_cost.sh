#!/usr/bin/env bash
# What the HTTP interface costs the work it watches: the same measurements with and
# without a scraper reading /metrics ten times a second, interleaved in one run:
#
#   get rate      `p2pshare bench index --op get -c 50` against an index started with
#                 --http; the scraper reads the index's /metrics
#   download      a one-shot `p2pshare get` of a SIZE file from a peer started with
#                 --http; the scraper reads the holder's and the index's /metrics
#
# Each round runs both cases quiet, then scraped (A B A B ...), so drift on the machine
# lands on both. Reported: medians, min-max, and scraped / quiet.
#
# Usage: bench/http_cost.sh [--runs 5] [--size 1G] [--duration 5s] [--out DIR] [--smoke]
#   --runs      rounds                                           [default: 5]
#   --size      download size, K/M/G binary                       [default: 1G]
#   --duration  each get-rate run                                 [default: 5s]
#   --out       results folder     [default: bench/results/http-cost-<UTC timestamp>]
#   --smoke     1 round, 8M, 1s: checks the script still runs (for CI)
# Outputs in OUT: http_cost.csv (case, mode, run, value), report.txt, logs/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

CMDLINE="bench/http_cost.sh $*"
RUNS=5
SIZE_ARG=1G
DURATION=5s
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --size) SIZE_ARG="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --smoke) RUNS=1; SIZE_ARG=8M; DURATION=1s; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
SIZE="$(size_to_bytes "$SIZE_ARG")"
OUT="${OUT:-$REPO/bench/results/http-cost-$(date -u +%Y%m%dT%H%M%SZ)}"
WAIT_SECS="${BENCH_WAIT_SECS:-120}"
mkdir -p "$OUT/logs"
LOGDIR="$OUT/logs"
WORK="$(mktemp -d)"
BG_PIDS=()
trap 'stop_all; rm -rf "$WORK"' EXIT

cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac

# Reads each URL ten times a second until killed; counts what it read.
scraper() { # URL...
    python3 -c '
import sys, time, urllib.request
urls, n = sys.argv[1:], 0
while True:
    t = time.monotonic()
    for u in urls:
        with urllib.request.urlopen(u, timeout=5) as r:
            if r.status != 200 or not r.read():
                sys.exit("bad scrape of " + u)
    n += 1
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
' "$@"
}

http_of() { # LOG PID
    wait_for_line "$1" "$2" 's|^HTTP on http://\([^/]*\)/.*|\1|p' "$WAIT_SECS"
}

start_bg "$LOGDIR/index.log" "$BIN" index --listen 127.0.0.1:0 --db :memory: --http 127.0.0.1:0
INDEX_PID="$BG_PID"
INDEX="$(wait_for_line "$LOGDIR/index.log" "$INDEX_PID" 's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p' "$WAIT_SECS")"
INDEX_HTTP="$(http_of "$LOGDIR/index.log" "$INDEX_PID")"

mkdir -p "$WORK/share" "$WORK/dl"
head -c "$SIZE" /dev/urandom >"$WORK/share/cost.bin"
start_bg "$LOGDIR/peer.log" "$BIN" peer --dir "$WORK/share" --listen 127.0.0.1:0 --index "$INDEX" \
    --no-console --http 127.0.0.1:0
PEER_PID="$BG_PID"
PEER_HTTP="$(http_of "$LOGDIR/peer.log" "$PEER_PID")"
wait_for_line "$LOGDIR/peer.log" "$PEER_PID" "s/^index $INDEX: connected, \([0-9]*\) files\{0,1\} published.*/\1/p" "$WAIT_SECS" >/dev/null

CSV="$OUT/http_cost.csv"
echo "case,mode,run,value" >"$CSV"

get_rate() { # -> ops/s
    "$BIN" bench index --index "$INDEX" --op get -c 50 --duration "$DURATION" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["ops_per_sec"])'
}

download_secs() {
    rm -rf "$WORK/dl"
    mkdir -p "$WORK/dl"
    sync
    local t0 t1
    t0="$(now_us)"
    "$BIN" get cost.bin --index "$INDEX" --dir "$WORK/dl" --json >>"$LOGDIR/get.log" 2>&1 ||
        die "get failed (see $LOGDIR/get.log)"
    t1="$(now_us)"
    cmp -s "$WORK/share/cost.bin" "$WORK/dl/cost.bin" || die "the download differs"
    fmt_seconds $((t1 - t0))
}

for ((run = 1; run <= RUNS; run++)); do
    for mode in quiet scraped; do
        SCRAPER=""
        if [ "$mode" = scraped ]; then
            scraper "http://$INDEX_HTTP/metrics" >>"$LOGDIR/scraper.log" 2>&1 &
            SCRAPER=$!
            sleep 0.5 # the interpreter's start is not part of the measurement
        fi
        rate="$(get_rate)"
        echo "get-rate,$mode,$run,$rate" >>"$CSV"
        [ -z "$SCRAPER" ] || { kill "$SCRAPER" 2>/dev/null; wait "$SCRAPER" 2>/dev/null || true; }
        if [ "$mode" = scraped ]; then
            scraper "http://$PEER_HTTP/metrics" "http://$INDEX_HTTP/metrics" >>"$LOGDIR/scraper.log" 2>&1 &
            SCRAPER=$!
            sleep 0.5
        fi
        secs="$(download_secs)"
        echo "download-s,$mode,$run,$secs" >>"$CSV"
        [ -z "$SCRAPER" ] || { kill "$SCRAPER" 2>/dev/null; wait "$SCRAPER" 2>/dev/null || true; }
        printf '  run %d/%d  %-8s get %s ops/s, %s download %s s\n' "$run" "$RUNS" "$mode" "$rate" "$SIZE_ARG" "$secs"
    done
done

python3 - "$CSV" "$CMDLINE" <<'EOF' | tee "$OUT/report.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("command:", sys.argv[2])
for case, better in (("get-rate", "higher"), ("download-s", "lower")):
    vals = {m: [float(r["value"]) for r in rows if r["case"] == case and r["mode"] == m]
            for m in ("quiet", "scraped")}
    med = {m: statistics.median(v) for m, v in vals.items()}
    print(f"{case:11} quiet {med['quiet']:.3f} ({min(vals['quiet']):.3f}-{max(vals['quiet']):.3f})"
          f"  scraped {med['scraped']:.3f} ({min(vals['scraped']):.3f}-{max(vals['scraped']):.3f})"
          f"  scraped / quiet {med['scraped'] / med['quiet']:.3f} ({better} is better)")
EOF
