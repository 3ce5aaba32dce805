#!/usr/bin/env bash
# One-command demo of p2pshare: an index server, a seed and three peers on 127.0.0.1, a
# large random file shared by peer1 and downloaded into peer3's folder (then checked
# with cmp), and a message broadcast to every peer through the overlay.
#
# Usage: scripts/demo.sh
#   DEMO_SIZE_MB    size of the generated file in MiB (default 64)
#   DEMO_WAIT_SECS  how long to wait for the network to come up (default 20)
#
# Every server binds port 0 (an ephemeral port chosen by the kernel) and the demo reads
# the real address from its ready line, so it never collides with anything already
# running. Everything happens in a temporary folder that is removed on exit, together
# with every process the demo started.

set -euo pipefail

SIZE_MB="${DEMO_SIZE_MB:-64}"
WAIT_SECS="${DEMO_WAIT_SECS:-20}"
case "$SIZE_MB" in '' | *[!0-9]* | 0) echo "demo: DEMO_SIZE_MB must be a positive whole number, not '$SIZE_MB'" >&2; exit 2 ;; esac
case "$WAIT_SECS" in '' | *[!0-9]* | 0) echo "demo: DEMO_WAIT_SECS must be a positive whole number, not '$WAIT_SECS'" >&2; exit 2 ;; esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [ -t 1 ]; then
    BOLD=$'\033[1m' GREEN=$'\033[32m' RED=$'\033[31m' RESET=$'\033[0m'
else
    BOLD='' GREEN='' RED='' RESET=''
fi
STEP=0
step() {
    STEP=$((STEP + 1))
    printf '\n%s==> %d. %s%s\n' "$BOLD" "$STEP" "$*" "$RESET"
}
info() { printf '    %s\n' "$*"; }

WORK=""
PIDS=()
LOGS=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
        printf '\n%sdemo interrupted%s\n' "$RED" "$RESET" >&2
    elif [ "$status" -ne 0 ]; then
        printf '\n%sdemo failed (exit %d)%s\n' "$RED" "$status" "$RESET" >&2
        for log in "${LOGS[@]+"${LOGS[@]}"}"; do
            if [ -f "$log" ]; then
                printf '\n--- last lines of %s ---\n' "$(basename "$log")" >&2
                tail -n 20 "$log" >&2 || true
            fi
        done
    fi
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    printf '%serror:%s %s\n' "$RED" "$RESET" "$*" >&2
    exit 1
}

# wait_for_line LOG PID SED_EXPR: waits until the sed expression prints something for
# LOG (the server's log), and prints that; fails if the server exits or the deadline
# passes first.
wait_for_line() {
    local log="$1" pid="$2" expr="$3" found
    local deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        found="$(sed -n "$expr" "$log" | head -n 1)"
        if [ -n "$found" ]; then
            printf '%s\n' "$found"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            fail "$(basename "$log" .log) exited before it was ready"
        fi
        sleep 0.1
    done
    fail "$(basename "$log" .log) was not ready after ${WAIT_SECS}s"
}

step "Building the release binary"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"
[ -x "$BIN" ] || fail "no binary at $BIN after the build"
info "$("$BIN" --version) at $BIN"

step "Preparing a scratch folder with three peers' shared folders"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2pshare-demo.XXXXXX")"
for p in peer1 peer2 peer3; do
    cp -R "peers/$p" "$WORK/$p"
done
BIG="demo-${SIZE_MB}MiB.bin"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom >"$WORK/peer1/$BIG"
info "work dir: $WORK"
info "generated peer1/$BIG ($SIZE_MB MiB of random data)"

step "Starting the index server on an ephemeral port"
"$BIN" index --listen 127.0.0.1:0 --db "$WORK/index.db" >"$WORK/index.log" 2>&1 &
INDEX_PID=$!
PIDS+=("$INDEX_PID")
LOGS+=("$WORK/index.log")
INDEX="$(wait_for_line "$WORK/index.log" "$INDEX_PID" 's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p')"
info "index listening on $INDEX (log: index.log)"

step "Starting a seed (peers find each other through it) on an ephemeral port"
"$BIN" seed --listen 127.0.0.1:0 --seeds /dev/null --log-file "$WORK/seed-events.log" >"$WORK/seed.log" 2>&1 &
SEED_PID=$!
PIDS+=("$SEED_PID")
LOGS+=("$WORK/seed.log")
SEED="$(wait_for_line "$WORK/seed.log" "$SEED_PID" "s/^p2pshare seed '[^']*' listening on \([^,]*\),.*/\1/p")"
info "seed listening on $SEED (log: seed.log, events: seed-events.log)"

step "Starting three peers, each sharing its folder"
PEER_ADDRS=()
for p in peer1 peer2 peer3; do
    "$BIN" peer --dir "$WORK/$p" --no-console --listen 127.0.0.1:0 --index "$INDEX" \
        --seed "$SEED" >"$WORK/$p.log" 2>&1 &
    PIDS+=("$!")
    LOGS+=("$WORK/$p.log")
    addr="$(wait_for_line "$WORK/$p.log" "$!" "s/^p2pshare peer '$p' listening on \([^,]*\),.*/\1/p")"
    PEER_ADDRS+=("$addr")
    info "$p listening on $addr (log: $p.log)"
done

step "Waiting until the index lists $BIG (peer1 hashes it first)"
deadline=$((SECONDS + WAIT_SECS))
until "$BIN" search "$BIG" --index "$INDEX" --json 2>/dev/null | grep -qF "\"name\":\"$BIG\""; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        fail "the index did not list $BIG within ${WAIT_SECS}s"
    fi
    sleep 0.2
done
for p in peer1 peer2 peer3; do
    info "$p: $(grep -m 1 '^sharing ' "$WORK/$p.log" || echo 'still scanning')"
done

step "Searching the index: p2pshare search demo"
"$BIN" search demo --index "$INDEX"

step "Downloading $BIG into peer3's folder: p2pshare get"
"$BIN" get "$BIG" --index "$INDEX" --dir "$WORK/peer3"

step "Checking the copy byte for byte: cmp"
cmp "$WORK/peer1/$BIG" "$WORK/peer3/$BIG"
info "${GREEN}identical${RESET}: peer3/$BIG equals peer1/$BIG"

step "Broadcasting through peer2: p2pshare say"
deadline=$((SECONDS + WAIT_SECS))
until [ "$("$BIN" members "$SEED" 2>/dev/null | grep -c ' alive ')" -ge 3 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the seed did not see the three peers within ${WAIT_SECS}s"
    sleep 0.2
done
# A peer refuses a broadcast that would reach nobody: wait for peer2's two neighbours.
until [ "$("$BIN" members "${PEER_ADDRS[1]}" 2>/dev/null | grep -c ' active ')" -ge 2 ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "peer2 did not get its neighbours within ${WAIT_SECS}s"
    sleep 0.2
done
"$BIN" say "hello from the demo" --peer "${PEER_ADDRS[1]}"
for p in peer1 peer2 peer3; do
    wait_for_line "$WORK/$p.log" "$SEED_PID" '/: hello from the demo$/p' >/dev/null
    info "$p printed: $(grep -m 1 ': hello from the demo$' "$WORK/$p.log")"
done
sleep 1
for p in peer1 peer2 peer3; do
    count="$(grep -c ': hello from the demo$' "$WORK/$p.log")"
    [ "$count" -eq 1 ] || fail "$p printed the broadcast $count times"
done

step "Asking the index and the seed for their status: p2pshare status"
"$BIN" status "$INDEX"
"$BIN" status "$SEED"

step "Summary"
info "index server      $INDEX"
info "seed              $SEED"
info "peers             peer1 ${PEER_ADDRS[0]}, peer2 ${PEER_ADDRS[1]}, peer3 ${PEER_ADDRS[2]}"
info "downloaded        $BIG ($SIZE_MB MiB) from peer1 into peer3's folder"
info "verified          by p2pshare (SHA-1 of every piece, which its content id covers) and by cmp"
info "broadcast         'hello from the demo', through peer2, printed once by every peer"
printf '\n%sDemo passed.%s Cleaning up %s and stopping the servers.\n' "$GREEN" "$RESET" "$WORK"
