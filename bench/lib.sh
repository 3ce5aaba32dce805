# shellcheck shell=bash
# Helpers shared by the benchmark scripts in bench/. Source it; it defines functions and
# a few globals only, and runs nothing.
#
#   now_us                      wall clock in microseconds (bash's EPOCHREALTIME, no fork)
#   fmt_seconds US              microseconds as seconds with 6 decimals
#   fmt_mbps BYTES US           throughput in MB/s (MB = 10^6 bytes), 3 decimals
#   size_to_bytes TEXT          1048576, 512K, 1M, 1G (binary: K=2^10, M=2^20, G=2^30)
#   free_port                   an ephemeral TCP port on 127.0.0.1 that is free right now
#   port_listening PORT         true when something listens on 127.0.0.1:PORT (IPv4)
#   wait_for_line LOG PID SED SECS   waits for a server's ready line; prints its capture
#   start_bg LOG CMD...         starts CMD in the background, output to LOG; sets BG_PID
#   stop_pid PID                stops one process this script started, and reaps it
#   stop_all                    stops every process started with start_bg

BG_PIDS=()
BG_PID=""

# The content id p2pshare gives a file, in hex: the SHA-1 of its piece list (the raw
# SHA-1 of each 1 MiB piece, in order). sha1sum gives the whole-file SHA-1, which
# p2pshare shows beside the id.
content_id() { # FILE
    python3 - "$1" <<'PY'
import hashlib, sys
pieces = hashlib.sha1()
with open(sys.argv[1], "rb") as f:
    while True:
        piece = f.read(1 << 20)
        if not piece:
            break
        pieces.update(hashlib.sha1(piece).digest())
print(pieces.hexdigest())
PY
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

now_us() {
    local t="${EPOCHREALTIME:-}"
    if [ -n "$t" ]; then
        # "1700000000.123456" (or with a ',' in some locales): always 6 decimals.
        t="${t//[!0-9]/}"
        printf '%s\n' "$((10#$t))"
    else
        date +%s%6N
    fi
}

fmt_seconds() {
    local us="$1"
    printf '%d.%06d' "$((us / 1000000))" "$((us % 1000000))"
}

fmt_mbps() {
    # bytes per microsecond is exactly MB/s (10^6 bytes per second).
    local bytes="$1" us="$2" milli
    [ "$us" -gt 0 ] || us=1
    milli=$((bytes * 1000 / us))
    printf '%d.%03d' "$((milli / 1000))" "$((milli % 1000))"
}

size_to_bytes() {
    local text="${1^^}" num mult
    case "$text" in
        *[!0-9KMG]* | '' | [KMG]* | *[KMG]?*) return 1 ;;
        *K) num="${text%K}" mult=1024 ;;
        *M) num="${text%M}" mult=$((1024 * 1024)) ;;
        *G) num="${text%G}" mult=$((1024 * 1024 * 1024)) ;;
        *) num="$text" mult=1 ;;
    esac
    case "$num" in '' | *[!0-9]*) return 1 ;; esac
    num=$((10#$num))
    [ "$num" -gt 0 ] || return 1
    printf '%s\n' "$((num * mult))"
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

port_listening() {
    local hex
    hex="$(printf '%04X' "$1")"
    # /proc/net/tcp: "sl local_address rem_address st ...", state 0A is LISTEN; the
    # address is 0100007F (127.0.0.1) or 00000000 (any).
    grep -qE "^ *[0-9]+: (0100007F|00000000):$hex [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp
}

wait_for_line() {
    local log="$1" pid="$2" expr="$3" secs="$4" found
    local deadline=$((SECONDS + secs))
    while :; do
        found="$(sed -n "$expr" "$log" 2>/dev/null | head -n 1)"
        if [ -n "$found" ]; then
            printf '%s\n' "$found"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die "$(basename "$log" .log) exited before it was ready (log: $log)"
        [ "$SECONDS" -lt "$deadline" ] || die "$(basename "$log" .log) was not ready after ${secs}s (log: $log)"
        sleep 0.05
    done
}

start_bg() {
    local log="$1"
    shift
    : >"$log" # exists before the process starts, for wait_for_line
    "$@" >>"$log" 2>&1 &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

stop_pid() {
    local pid="$1" keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    BG_PIDS=("${keep[@]+"${keep[@]}"}")
}

stop_all() {
    local p
    for p in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${BG_PIDS[@]+"${BG_PIDS[@]}"}"; do
        wait "$p" 2>/dev/null || true
    done
    BG_PIDS=()
}

# CPU time (user + sys, microseconds) that the waited-for children of the shell had
# used when it ran `times >FILE` (run it as a plain command, not in `$(...)`, whose
# subshell has children of its own).
children_cpu_us() { # FILE
    awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%d\n", n * 1000000 }' "$1"
}

# CPU time (user + sys, microseconds) used so far by running processes PID..., all
# their threads, from /proc.
procs_cpu_us() { # PID...
    local tck total=0 t pid
    tck="$(getconf CLK_TCK 2>/dev/null || echo 100)"
    for pid in "$@"; do
        t="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        total=$((total + t))
    done
    echo $((total * 1000000 / tck))
}
