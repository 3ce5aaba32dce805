#!/usr/bin/env bash
# The overlay's benchmark: the simulator scenarios (`p2pshare bench overlay`, 1000 peers,
# the same code the peers run), and the same checks on real processes (3 seeds and 100
# peers on 127.0.0.1, bench/overlay_processes.py).
#
# Usage: bench/overlay.sh [--peers 1000] [--process-peers 100] [--loss-duration 30m]
#                         [--classic] [--smoke] [--out DIR]
#   --classic   also simulate the original design's liveness checks, for comparison
#   --smoke     100 simulated peers for a minute of loss, 20 real peers: for CI
set -euo pipefail

PEERS=1000
PROCESS_PEERS=100
KILL=10
LOSS_DURATION=30m
CLASSIC=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --peers) PEERS="$2"; shift 2 ;;
        --process-peers) PROCESS_PEERS="$2"; shift 2 ;;
        --loss-duration) LOSS_DURATION="$2"; shift 2 ;;
        --classic) CLASSIC=1; shift ;;
        --smoke) PEERS=100; PROCESS_PEERS=20; KILL=3; LOSS_DURATION=1m; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "overlay.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-bench/results/overlay-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

echo "# overlay benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# machine: $(nproc) cores, kernel $(uname -r), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# command: bench/overlay.sh --peers $PEERS --process-peers $PROCESS_PEERS --loss-duration $LOSS_DURATION"

cargo build --release --quiet
BIN="$REPO/target/release/p2pshare"

echo
echo "== simulator: $PEERS peers, 3 seeds (p2pshare bench overlay) =="
"$BIN" bench overlay --peers "$PEERS" --loss-duration "$LOSS_DURATION" --json-out "$OUT/sim.json" \
    | tee "$OUT/sim.txt"
if [ "$CLASSIC" = 1 ]; then
    echo
    echo "== simulator, the original design's liveness checks =="
    "$BIN" bench overlay --peers "$PEERS" --loss-duration "$LOSS_DURATION" --liveness classic \
        --json-out "$OUT/sim-classic.json" | tee "$OUT/sim-classic.txt"
fi

echo
echo "== real processes: 3 seeds and $PROCESS_PEERS peers on 127.0.0.1 =="
python3 bench/overlay_processes.py "$BIN" --peers "$PROCESS_PEERS" --kill "$KILL" --out "$OUT"
echo
echo "raw figures: $OUT"
