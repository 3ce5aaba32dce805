#!/usr/bin/env bash
# Figures of p2pshare in containers, on this machine's Docker engine (bench/docker.py
# says what it measures): the time compose.yaml takes to start 50 peers and for them
# to join, each container's memory at rest, and a 1 GiB download between two peer
# containers next to the same download between two processes over the host's loopback,
# in the same run. The results are copied into bench/BENCHMARKS.md by hand.
#
# Usage: bench/docker.sh [--peers N] [--size SIZE] [--rounds N] [--image IMAGE]
#                        [--out DIR] [--smoke]
#   --peers N      peer containers                                  [default: 50]
#   --size SIZE    the file downloaded; K, M, G binary                [default: 1G]
#   --rounds N     downloads of each kind, interleaved                 [default: 3]
#   --image IMAGE  use this image instead of building one (scripts/docker-build.sh)
#   --out DIR      results folder          [default: bench/results/<UTC timestamp>]
#   --smoke        5 peers, 16M, 1 round: a minute or so, for CI
#
# It needs a Docker engine (without one it says SKIPPED and exits 0), and raises the
# kernel's ARP table limits as the container suite does (scripts/docker-host.sh).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

PEERS=50
SIZE=1G
ROUNDS=3
IMAGE=""
OUT=""
SETTLE=20
while [ $# -gt 0 ]; do
    case "$1" in
        --peers) PEERS="${2:?}"; shift 2 ;;
        --size) SIZE="${2:?}"; shift 2 ;;
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --image) IMAGE="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        --smoke) PEERS=5 SIZE=16M ROUNDS=1 SETTLE=2; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "docker.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
BYTES=$(size_to_bytes "$SIZE") || die "--size $SIZE: not a size"
OUT="${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "SKIPPED: docker bench: no Docker engine answers"
    exit 0
fi
bash scripts/docker-host.sh || echo "docker bench: going on with the ARP table as it is" >&2
if [ -z "$IMAGE" ]; then
    IMAGE=$(bash scripts/docker-build.sh --tag p2pshare:bench 2>"$OUT/docker-build.log" | tail -n 1) ||
        die "the image did not build (log: $OUT/docker-build.log)"
fi
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"

echo "docker bench: $PEERS peers, $SIZE x $ROUNDS, image $IMAGE, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
python3 bench/docker.py --image "$IMAGE" --bin "$BIN" --peers "$PEERS" --size "$BYTES" \
    --rounds "$ROUNDS" --settle "$SETTLE" --out "$OUT/docker.json"
echo "docker bench: figures in $OUT/docker.json"
