#!/usr/bin/env bash
# The index's `get` rate under several builds of p2pshare, measured round by round in
# turn (the order rotates each round), so that every build sees the same machine at
# the same time. For "what did this change cost": pass the commit before and after.
#
# Usage: bench/index_builds.sh [--rounds 5] [--duration 4s] [--pipeline "1 16"]
#                              [--smoke] BUILD...
#   BUILD       a commit (built in a temporary worktree, release profile), or the
#               path of a p2pshare binary; "." is this working tree's release build
#   --smoke     one round of one second each, for CI: checks the script still runs
# Each row: `p2pshare bench index --op get -c 50 -P N` against `p2pshare index --db
# :memory:` of the same build. Prints every round, then each build's median and its
# ratio to the first build's median.
set -euo pipefail

ROUNDS=5
DURATION=4s
PIPES="1 16"
BUILDS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds | --duration | --pipeline)
            [ $# -ge 2 ] || { echo "index_builds.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --pipeline) PIPES="$2"; shift 2 ;;
        --smoke) ROUNDS=1; DURATION=1s; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        -*) echo "index_builds.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) BUILDS+=("$1"); shift ;;
    esac
done
[ ${#BUILDS[@]} -ge 1 ] || { echo "index_builds.sh: name at least one build (see --help)" >&2; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for d in "$WORK"/wt-*; do
        [ -d "$d" ] && git -C "$REPO" worktree remove --force "$d" >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Resolves each build to a binary.
BINS=()
for b in "${BUILDS[@]}"; do
    if [ "$b" = "." ]; then
        (cd "$REPO" && cargo build --release --quiet)
        cp "$REPO/target/release/p2pshare" "$WORK/bin-dot"
        BINS+=("$WORK/bin-dot")
    elif [ -f "$b" ] && [ -x "$b" ]; then
        BINS+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
    else
        commit="$(git -C "$REPO" rev-parse --verify --short "$b^{commit}")" ||
            { echo "index_builds.sh: '$b' is neither a binary nor a commit" >&2; exit 2; }
        echo "building $commit ..." >&2
        git -C "$REPO" worktree add --detach "$WORK/wt-$commit" "$commit" >/dev/null 2>&1
        (cd "$WORK/wt-$commit" && CARGO_TARGET_DIR="$REPO/target/builds" cargo build --release --quiet)
        cp "$REPO/target/builds/release/p2pshare" "$WORK/bin-$commit"
        BINS+=("$WORK/bin-$commit")
    fi
done

# One measurement: ops/s of `get` at pipeline depth $2 for binary $1.
measure() {
    local bin="$1" depth="$2" out="$WORK/index.out" addr=""
    "$bin" index --db :memory: --listen 127.0.0.1:0 >"$out" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        addr="$(sed -n 's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p' "$out")"
        [ -n "$addr" ] && break
        # Builds from before the index named its key print the address alone.
        addr="$(grep -o '127\.0\.0\.1:[0-9]*' "$out" | head -n 1 || true)"
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "index_builds.sh: $bin did not start:" >&2; cat "$out" >&2; exit 1; }
    "$bin" bench index --index "$addr" --op get -c 50 -P "$depth" --duration "$DURATION" --json -q |
        python3 -c 'import json, sys; print(round(json.load(sys.stdin)["ops_per_sec"]))'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

n=${#BINS[@]}
for round in $(seq "$ROUNDS"); do
    for depth in $PIPES; do
        for k in $(seq 0 $((n - 1))); do
            i=$(((k + round - 1) % n))
            echo "$round $depth $i $(measure "${BINS[$i]}" "$depth")" >>"$WORK/rows"
        done
    done
done

python3 - "$WORK/rows" "${BUILDS[@]}" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
builds = sys.argv[2:]
print(f"{'build':<14} {'depth':>5}  {'ops/s by round':<48} {'median':>9} {'÷ first':>8}")
for depth in sorted({int(r[1]) for r in rows}):
    first = None
    for i, name in enumerate(builds):
        got = [int(r[3]) for r in rows if int(r[1]) == depth and int(r[2]) == i]
        median = statistics.median(got)
        first = first or median
        by_round = " · ".join(f"{g:,}" for g in got)
        print(f"{name[:14]:<14} {depth:>5}  {by_round:<48} {median:>9,.0f} {median / first:>8.2f}")
EOF
