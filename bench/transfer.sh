#!/usr/bin/env bash
# Transfer-throughput benchmark: how fast `p2pshare get` moves a file on this machine,
# next to the limits around it:
#
#   p2pshare            p2pshare get from one peer over loopback (SHA-1 verified, fsynced)
#   p2pshare-Nsrc       the same with N peers holding the file (--sources): the download
#                       takes pieces from all N at once (a swarm; see bench/swarm.sh)
#   dd                  dd bs=1M conv=fsync: a local copy, no network, no hashing (the disk)
#   dd-direct           dd bs=1M oflag=direct conv=fsync: the same without the page cache,
#                       the way p2pshare writes by default (the disk's direct-write speed)
#   curl                nginx (sendfile on) -> curl: plain HTTP, no verification, no fsync
#   curl+sha1sum+sync   the same, then sha1sum and sync (what a careful user does)
#   iperf3              iperf3 over loopback, -n SIZE (the network stack's limit)
#
# Methods are interleaved (A B C ... A B C ...) for --runs rounds; before every timed
# run the previous destination is removed and `sync` runs, so write-back left over from
# one run does not land in the next. Sources are read from the page cache (the file was
# just written and hashed), destinations are written to the disk of the output folder.
#
# Raw figures go to OUT/transfer.csv and OUT/transfer.json; bench/report.py then prints
# one table per size and draws OUT/transfer.svg. Run with --help for the flags.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"

# The command line as typed, quoting only the words that need it.
CMDLINE="$0"
for _arg in "$@"; do
    case "$_arg" in
        '' | *[!A-Za-z0-9_./:=,+@%-]*) CMDLINE="$CMDLINE $(printf '%q' "$_arg")" ;;
        *) CMDLINE="$CMDLINE $_arg" ;;
    esac
done

usage() {
    cat <<'EOF'
Usage: bench/transfer.sh [OPTIONS]

Times p2pshare downloads against dd, nginx + curl (with and without sha1sum + sync)
and iperf3, all on this machine, and writes a report.

Options:
  --sizes LIST    file sizes, comma-separated; K, M, G suffixes are binary
                  (1M = 1048576 bytes)                        [default: 1M,100M,1G]
  --runs N        rounds per size (methods interleaved)       [default: 5]
  --sources LIST  numbers of peers holding the file, e.g. 1,2,4 (one p2pshare row
                  each; the download takes pieces from all of them at once,
                  up to 64)                                    [default: 1,2,4]
  --out DIR       results folder       [default: bench/results/<UTC timestamp>]
  --install       apt-get install nginx-light, curl and iperf3 if missing
                  (without it, a missing tool's rows are skipped)
  --smoke         1M only, 1 run, 1 and 2 sources: a few seconds, for CI
                  (nginx/iperf3 optional)
  -h, --help      this help

Environment:
  BENCH_WAIT_SECS   how long to wait for servers and the index (default 120)

Outputs, in DIR: transfer.csv and transfer.json (one row per run: size_bytes,
method, run, seconds, mb_per_s; MB = 10^6 bytes), report.txt (the tables),
transfer.svg (median MB/s by size and method), logs/ (every server's log).
EOF
}

usage_error() {
    printf 'transfer.sh: %s\n' "$*" >&2
    printf "Try 'bench/transfer.sh --help'.\n" >&2
    exit 2
}

SIZES_ARG="1M,100M,1G"
RUNS=5
SOURCES_ARG="1,2,4"
OUT=""
INSTALL=0
SMOKE=0
WAIT_SECS="${BENCH_WAIT_SECS:-120}"

while [ $# -gt 0 ]; do
    case "$1" in
        --sizes | --runs | --sources | --out)
            [ $# -ge 2 ] || usage_error "$1 needs a value"
            case "$1" in
                --sizes) SIZES_ARG="$2" ;;
                --runs) RUNS="$2" ;;
                --sources) SOURCES_ARG="$2" ;;
                --out) OUT="$2" ;;
            esac
            shift 2
            ;;
        --sizes=*) SIZES_ARG="${1#*=}" && shift ;;
        --runs=*) RUNS="${1#*=}" && shift ;;
        --sources=*) SOURCES_ARG="${1#*=}" && shift ;;
        --out=*) OUT="${1#*=}" && shift ;;
        --install) INSTALL=1 && shift ;;
        --smoke) SMOKE=1 && shift ;;
        -h | --help) usage && exit 0 ;;
        *) usage_error "unknown argument '$1'" ;;
    esac
done

if [ "$SMOKE" -eq 1 ]; then
    SIZES_ARG="1M"
    RUNS=1
    SOURCES_ARG="1,2"
fi
case "$RUNS" in '' | *[!0-9]*) usage_error "--runs must be a positive whole number, not '$RUNS'" ;; esac
RUNS=$((10#$RUNS))
[ "$RUNS" -ge 1 ] || usage_error "--runs must be at least 1"
case "$WAIT_SECS" in '' | *[!0-9]* | 0) usage_error "BENCH_WAIT_SECS must be a positive whole number" ;; esac

SIZES=()  # bytes
LABELS=() # as given, upper case: 1M, 100M, 1G
IFS=',' read -r -a _items <<<"$SIZES_ARG"
for item in "${_items[@]}"; do
    item="${item// /}"
    [ -n "$item" ] || continue
    bytes="$(size_to_bytes "$item")" || usage_error "bad size '$item' in --sizes (examples: 1M, 100M, 1G, 4096)"
    SIZES+=("$bytes")
    LABELS+=("${item^^}")
done
[ "${#SIZES[@]}" -gt 0 ] || usage_error "--sizes is empty"

SOURCES=()
IFS=',' read -r -a _items <<<"$SOURCES_ARG"
for item in "${_items[@]}"; do
    item="${item// /}"
    [ -n "$item" ] || continue
    case "$item" in *[!0-9]*) usage_error "bad count '$item' in --sources (example: 1,2,4)" ;; esac
    item=$((10#$item))
    if [ "$item" -lt 1 ] || [ "$item" -gt 64 ]; then
        usage_error "--sources counts must be 1 to 64, not $item"
    fi
    SOURCES+=("$item")
done
[ "${#SOURCES[@]}" -gt 0 ] || usage_error "--sources is empty"
mapfile -t SOURCES < <(printf '%s\n' "${SOURCES[@]}" | sort -n -u)
MAX_SOURCES="${SOURCES[${#SOURCES[@]} - 1]}"

cd "$REPO"
for tool in python3 cargo dd sha1sum sync head cmp; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required and not installed"
done

# --- build ---------------------------------------------------------------------------

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/p2pshare"
case "$BIN" in /*) ;; *) BIN="$REPO/$BIN" ;; esac
[ -x "$BIN" ] || die "no binary at $BIN after the build"

# --- output folder -------------------------------------------------------------------

if [ -z "$OUT" ]; then
    OUT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOGDIR="$OUT/logs"
mkdir -p "$LOGDIR"

# --- tools --------------------------------------------------------------------------

# A tool counts as installed when it runs: `--version` (or nginx's -v) succeeds.
works() { "$@" >/dev/null 2>&1; }
find_nginx() { # nginx lives in /usr/sbin, which is not on every user's PATH
    local cand
    for cand in "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx; do
        if [ -n "$cand" ] && works "$cand" -v; then
            printf '%s\n' "$cand"
            return 0
        fi
    done
    return 1
}

if [ "$INSTALL" -eq 1 ]; then
    pkgs=()
    find_nginx >/dev/null || pkgs+=(nginx-light)
    works curl --version || pkgs+=(curl)
    works iperf3 --version || pkgs+=(iperf3)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        command -v apt-get >/dev/null 2>&1 || die "--install needs apt-get; install ${pkgs[*]} by hand"
        SUDO=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || die "--install needs root or sudo to install ${pkgs[*]}"
            SUDO=(sudo)
        fi
        echo "installing ${pkgs[*]} (log: $LOGDIR/install.log)"
        export DEBIAN_FRONTEND=noninteractive
        if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >"$LOGDIR/install.log" 2>&1; then
            # A fresh machine may have no package lists yet.
            if ! { "${SUDO[@]}" apt-get update && "${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}"; } >>"$LOGDIR/install.log" 2>&1; then
                tail -n 20 "$LOGDIR/install.log" >&2
                die "could not install ${pkgs[*]}"
            fi
        fi
    fi
fi

NGINX="$(find_nginx || true)"
HAVE_CURL=0
works curl --version && HAVE_CURL=1
HAVE_IPERF3=0
works iperf3 --version && HAVE_IPERF3=1
SKIPPED=()
HINT="run with --install"
[ "$INSTALL" -eq 0 ] || HINT="--install did not make it work"
if [ -z "$NGINX" ]; then
    SKIPPED+=("skipped: curl, curl+sha1sum+sync: nginx not installed ($HINT)")
elif [ "$HAVE_CURL" -eq 0 ]; then
    SKIPPED+=("skipped: curl, curl+sha1sum+sync: curl not installed ($HINT)")
fi
[ "$HAVE_IPERF3" -eq 1 ] || SKIPPED+=("skipped: iperf3: iperf3 not installed ($HINT)")
HTTP=0
[ -n "$NGINX" ] && [ "$HAVE_CURL" -eq 1 ] && HTTP=1

# --- work dir and cleanup ------------------------------------------------------------

WORK="$(mktemp -d "$OUT/work.XXXXXX")"
SHARE="$WORK/share" # share/peerK: the peers' folders; nginx serves share/peer1
DST="$WORK/dst"     # destinations of dd and curl
DL="$WORK/dl"       # p2pshare get --dir (fresh for every run)
mkdir -p "$SHARE/peer1" "$DST"

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
        printf '\ntransfer.sh interrupted; partial results and logs in %s\n' "$OUT" >&2
    elif [ "$status" -ne 0 ]; then
        printf '\ntransfer.sh failed (exit %d); logs in %s\n' "$status" "$LOGDIR" >&2
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- header --------------------------------------------------------------------------

cpu_model() {
    local m
    m="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)"
    [ -n "$m" ] || m="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
    printf '%s\n' "${m:-unknown}"
}

DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
NPROC="$(nproc)"
LOADAVG="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
KERNEL="$(uname -r)"
CPU="$(cpu_model)"
MEM="$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null || echo unknown)"
FS="$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 " (mounted on " $7 ")" }')"
COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ "$COMMIT" != unknown ] && [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
VERSION="$("$BIN" --version)"
TOOLS="dd $(dd --version 2>/dev/null | head -n 1 | awk '{ print $NF }')"
[ -n "$NGINX" ] && TOOLS="$TOOLS, nginx $("$NGINX" -v 2>&1 | sed 's|^nginx version: nginx/||')"
[ "$HAVE_CURL" -eq 1 ] && TOOLS="$TOOLS, curl $(curl --version | head -n 1 | awk '{ print $2 }')"
[ "$HAVE_IPERF3" -eq 1 ] && TOOLS="$TOOLS, iperf3 $(iperf3 --version | head -n 1 | awk '{ print $2 }')"

HEADER="$(
    echo "p2pshare transfer benchmark"
    echo "date:      $DATE"
    echo "command:   $CMDLINE"
    echo "binary:    $VERSION (commit $COMMIT, release build)"
    echo "machine:   nproc $NPROC, $CPU, $MEM RAM, kernel $KERNEL"
    echo "load:      $LOADAVG (1, 5, 15 min, at start; other work on the machine skews the figures)"
    echo "work dir:  $FS"
    echo "tools:     $TOOLS"
    echo "sizes:     ${LABELS[*]} (K/M/G = 2^10/2^20/2^30 bytes); runs: $RUNS; sources: ${SOURCES[*]}"
    echo "results:   $OUT"
    for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do echo "$s"; done
)"
printf '%s\n\n' "$HEADER"

# --- nginx ---------------------------------------------------------------------------

NGINX_PORT=""
start_nginx() {
    local dir="$WORK/nginx" conf port attempt deadline v
    NGINX_BUILD="$("$NGINX" -V 2>&1)"
    mkdir -p "$dir/tmp"
    conf="$dir/nginx.conf"
    for attempt in 1 2 3; do
        port="$(free_port)"
        {
            echo "worker_processes 1;"
            echo "daemon off;"
            echo "pid $dir/nginx.pid;"
            echo "error_log $LOGDIR/nginx-error.log warn;"
            # A master running as root would hand the worker to 'nobody', which may not
            # be able to read the work dir (mktemp makes it 0700).
            [ "$(id -u)" -eq 0 ] && echo "user root $(id -gn);"
            echo "events { worker_connections 64; }"
            echo "http {"
            echo "    access_log $LOGDIR/nginx-access.log;"
            echo "    client_body_temp_path $dir/tmp/client_body;"
            for v in proxy fastcgi uwsgi scgi; do
                case "$NGINX_BUILD" in
                    *"--without-http_${v}_module"*) ;;
                    *) echo "    ${v}_temp_path $dir/tmp/$v;" ;;
                esac
            done
            echo "    sendfile on;"
            echo "    tcp_nopush on;"
            echo "    default_type application/octet-stream;"
            echo "    server {"
            echo "        listen 127.0.0.1:$port;"
            echo "        root $SHARE/peer1;"
            echo "        location / { }"
            echo "    }"
            echo "}"
        } >"$conf"
        start_bg "$LOGDIR/nginx.log" "$NGINX" -p "$dir/" -e "$LOGDIR/nginx-error.log" -c "$conf"
        deadline=$((SECONDS + WAIT_SECS))
        while kill -0 "$BG_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            if port_listening "$port"; then
                NGINX_PORT="$port"
                echo "nginx listening on 127.0.0.1:$port (serving $SHARE/peer1)"
                return 0
            fi
            sleep 0.05
        done
        stop_pid "$BG_PID"
        echo "nginx did not start on port $port (attempt $attempt); see $LOGDIR/nginx-error.log" >&2
    done
    die "nginx would not start"
}
if [ "$HTTP" -eq 1 ]; then
    start_nginx
fi

# --- per-size setup: a random file, an index server, the peers -----------------------

INDEX=""
INDEX_PID=""
PEER_PIDS=()

file_name() { # SIZE_LABEL SOURCES
    if [ "$2" -eq 1 ]; then
        printf 'bench-%s.bin\n' "$1"
    else
        printf 'bench-%s-%ssrc.bin\n' "$1" "$2"
    fi
}

method_name() { # SOURCES
    if [ "$1" -eq 1 ]; then echo p2pshare; else echo "p2pshare-${1}src"; fi
}

# True when the index lists every NAME:HOLDERS given, with at least that many holders.
index_lists() {
    "$BIN" search bench --index "$INDEX" --json --limit 1000 2>/dev/null | python3 -c '
import json, sys
want = dict(a.rsplit(":", 1) for a in sys.argv[1:])
try:
    results = json.load(sys.stdin).get("results", [])
except ValueError:
    sys.exit(1)
have = {r.get("name"): r.get("holders", 0) for r in results}
sys.exit(0 if all(have.get(n, 0) >= int(k) for n, k in want.items()) else 1)
' "$@"
}

setup_size() { # LABEL BYTES
    local label="$1" bytes="$2" src k n name want=() deadline
    rm -rf "$SHARE"
    for ((k = 1; k <= MAX_SOURCES; k++)); do mkdir -p "$SHARE/peer$k"; done
    src="$SHARE/peer1/$(file_name "$label" 1)"
    head -c "$bytes" /dev/urandom >"$src"
    # Peer k holds the file under the name for every source count n >= k; hard links,
    # so every name and every peer reads the same bytes from the same page cache.
    for n in "${SOURCES[@]}"; do
        name="$(file_name "$label" "$n")"
        for ((k = 1; k <= n; k++)); do
            [ -e "$SHARE/peer$k/$name" ] || ln "$src" "$SHARE/peer$k/$name" 2>/dev/null ||
                cp "$src" "$SHARE/peer$k/$name"
        done
        want+=("$name:$n")
    done
    SRC_SHA1="$(sha1sum "$src" | awk '{ print $1 }')"
    SRC_ID="$(content_id "$src")"

    start_bg "$LOGDIR/index-$label.log" "$BIN" index --listen 127.0.0.1:0 --db :memory:
    INDEX_PID="$BG_PID"
    INDEX="$(wait_for_line "$LOGDIR/index-$label.log" "$INDEX_PID" \
        's/^p2pshare index .* listening on \([^ ,]*\).*/\1/p' "$WAIT_SECS")"
    PEER_PIDS=()
    for ((k = 1; k <= MAX_SOURCES; k++)); do
        start_bg "$LOGDIR/peer$k-$label.log" "$BIN" peer --dir "$SHARE/peer$k" \
            --listen 127.0.0.1:0 --index "$INDEX" --no-console
        PEER_PIDS+=("$BG_PID")
    done
    for ((k = 1; k <= MAX_SOURCES; k++)); do
        wait_for_line "$LOGDIR/peer$k-$label.log" "${PEER_PIDS[$((k - 1))]}" \
            "s/^index $INDEX: connected, \([0-9]*\) files\{0,1\} published.*/\1/p" "$WAIT_SECS" >/dev/null
    done
    deadline=$((SECONDS + WAIT_SECS))
    until index_lists "${want[@]}"; do
        [ "$SECONDS" -lt "$deadline" ] || die "the index did not list ${want[*]} within ${WAIT_SECS}s"
        sleep 0.1
    done
    echo "$label: index $INDEX, $MAX_SOURCES peer(s) sharing $(file_name "$label" 1) ($bytes bytes, sha1 $SRC_SHA1)"
}

teardown_size() {
    local pid
    for pid in "${PEER_PIDS[@]+"${PEER_PIDS[@]}"}"; do stop_pid "$pid"; done
    PEER_PIDS=()
    [ -z "$INDEX_PID" ] || stop_pid "$INDEX_PID"
    INDEX_PID=""
    rm -rf "$SHARE" "$DL" "${DST:?}"/*
    mkdir -p "$SHARE/peer1"
}

# --- one timed run per method --------------------------------------------------------

CSV="$OUT/transfer.csv"
echo "size_bytes,method,run,seconds,mb_per_s,cpu_get_s,cpu_peers_s" >"$CSV"

# CPU_GET_S and CPU_PEERS_S: what the last p2pshare run cost the downloader and the
# holders in CPU time (user + sys); empty for the other methods.
record() { # BYTES METHOD RUN SECONDS MBPS LABEL
    printf '%s,%s,%s,%s,%s,%s,%s\n' "$1" "$2" "$3" "$4" "$5" "${CPU_GET_S:-}" "${CPU_PEERS_S:-}" >>"$CSV"
    printf '  %-5s run %d/%d  %-20s %10s s %11s MB/s%s\n' "$6" "$3" "$RUNS" "$2" "$4" "$5" \
        "${CPU_GET_S:+  cpu get $CPU_GET_S s + holders $CPU_PEERS_S s}"
    CPU_GET_S=""
    CPU_PEERS_S=""
}

check_size() { # FILE BYTES WHAT
    local got
    got="$(stat -c %s "$1" 2>/dev/null || echo missing)"
    [ "$got" = "$2" ] || die "$3: $1 has size $got, expected $2"
}

run_p2pshare() { # LABEL BYTES RUN SOURCES
    local label="$1" bytes="$2" run="$3" n="$4" name t0 t1 out
    name="$(file_name "$label" "$n")"
    rm -rf "$DL"
    mkdir -p "$DL"
    sync
    local c0 c1 p0 p1
    p0="$(procs_cpu_us "${PEER_PIDS[@]+"${PEER_PIDS[@]}"}")"
    times >"$WORK/times0"
    t0="$(now_us)"
    out="$("$BIN" get "$name" --index "$INDEX" --dir "$DL" --json --max-sources "$n" 2>>"$LOGDIR/get.log")" ||
        die "p2pshare get $name failed: $out (see $LOGDIR/get.log)"
    t1="$(now_us)"
    times >"$WORK/times1"
    c0="$(children_cpu_us "$WORK/times0")"
    c1="$(children_cpu_us "$WORK/times1")"
    p1="$(procs_cpu_us "${PEER_PIDS[@]+"${PEER_PIDS[@]}"}")"
    CPU_GET_S="$(fmt_seconds $((c1 - c0)))"
    CPU_PEERS_S="$(fmt_seconds $((p1 - p0)))"
    printf '%s\n' "$out" >>"$LOGDIR/get.jsonl"
    case "$out" in *'"status":"downloaded"'*) ;; *) die "p2pshare get $name: unexpected answer $out" ;; esac
    case "$out" in *"\"id\":\"sha1:$SRC_ID\""*) ;; *) die "p2pshare get $name: content id is not sha1:$SRC_ID (the digest of its piece list): $out" ;; esac
    check_size "$DL/$name" "$bytes" "p2pshare get"
    [ "$run" -gt 1 ] || cmp -s "$SHARE/peer1/$name" "$DL/$name" || die "p2pshare get $name: the copy differs"
    record "$bytes" "$(method_name "$n")" "$run" "$(fmt_seconds $((t1 - t0)))" "$(fmt_mbps "$bytes" $((t1 - t0)))" "$label"
}

run_dd() { # LABEL BYTES RUN [direct]
    local label="$1" bytes="$2" run="$3" src dst t0 t1 method=dd flags=()
    if [ "${4:-}" = direct ]; then
        method=dd-direct
        flags=(oflag=direct)
    fi
    src="$SHARE/peer1/$(file_name "$label" 1)"
    dst="$DST/$method.bin"
    rm -f "$dst"
    sync
    t0="$(now_us)"
    # A file system without O_DIRECT (tmpfs on old kernels): no dd-direct row.
    dd if="$src" of="$dst" bs=1M conv=fsync "${flags[@]}" status=none 2>>"$LOGDIR/dd.log" || {
        [ "$method" = dd-direct ] || die "dd failed (see $LOGDIR/dd.log)"
        return 0
    }
    t1="$(now_us)"
    check_size "$dst" "$bytes" "$method"
    [ "$run" -gt 1 ] || cmp -s "$src" "$dst" || die "$method: the copy differs"
    record "$bytes" "$method" "$run" "$(fmt_seconds $((t1 - t0)))" "$(fmt_mbps "$bytes" $((t1 - t0)))" "$label"
}

run_curl() { # LABEL BYTES RUN CAREFUL(0|1)
    local label="$1" bytes="$2" run="$3" careful="$4" name dst url t0 t1 sum method=curl
    name="$(file_name "$label" 1)"
    dst="$DST/curl.bin"
    url="http://127.0.0.1:$NGINX_PORT/$name"
    rm -f "$dst"
    sync
    if [ "$careful" -eq 1 ]; then
        method="curl+sha1sum+sync"
        t0="$(now_us)"
        curl -sf -o "$dst" "$url" || die "curl $url failed"
        sum="$(sha1sum "$dst")"
        sync
        t1="$(now_us)"
        [ "${sum%% *}" = "$SRC_SHA1" ] || die "curl+sha1sum: got sha1 ${sum%% *}, expected $SRC_SHA1"
    else
        t0="$(now_us)"
        curl -sf -o "$dst" "$url" || die "curl $url failed"
        t1="$(now_us)"
    fi
    check_size "$dst" "$bytes" "$method"
    [ "$run" -gt 1 ] || cmp -s "$SHARE/peer1/$name" "$dst" || die "$method: the copy differs"
    record "$bytes" "$method" "$run" "$(fmt_seconds $((t1 - t0)))" "$(fmt_mbps "$bytes" $((t1 - t0)))" "$label"
}

# One iperf3 test: a one-off server (-s -1) on a fresh port, then the client. Prints
# "SECONDS MBPS" from the receiver summary (time = bytes / receiver throughput, so the
# processes' start-up is not counted); fails when that summary is unusable.
iperf3_once() { # BYTES
    local bytes="$1" port pid json deadline
    port="$(free_port)"
    start_bg "$LOGDIR/iperf3-server.log" iperf3 -s -1 -B 127.0.0.1 -p "$port"
    pid="$BG_PID"
    deadline=$((SECONDS + WAIT_SECS))
    until port_listening "$port"; do
        kill -0 "$pid" 2>/dev/null || die "iperf3 -s exited before listening (log: $LOGDIR/iperf3-server.log)"
        [ "$SECONDS" -lt "$deadline" ] || die "iperf3 -s did not listen within ${WAIT_SECS}s"
        sleep 0.05
    done
    json="$WORK/iperf3.json"
    sync
    iperf3 -c 127.0.0.1 -p "$port" -n "$bytes" -J >"$json" 2>>"$LOGDIR/iperf3-client.log" ||
        die "iperf3 -c failed: $(head -c 500 "$json")"
    stop_pid "$pid" # -1: it has exited already, or does now
    cat "$json" >>"$LOGDIR/iperf3-client.jsonl"
    # The receiver stops counting when the test ends, so on a short test it can report
    # only part of the bytes (or none): such a summary is not a measurement.
    python3 -c '
import json, sys
nbytes = int(sys.argv[2])
recv = json.load(open(sys.argv[1]))["end"]["sum_received"]
bps = recv.get("bits_per_second", 0)
if bps <= 0 or recv.get("bytes", 0) < nbytes / 2:
    sys.exit("receiver summary covers %d of %d bytes" % (recv.get("bytes", 0), nbytes))
print("%.6f %.3f" % (nbytes * 8 / bps, bps / 8e6))
' "$json" "$bytes" 2>>"$LOGDIR/iperf3-client.log"
}

run_iperf3() { # LABEL BYTES RUN
    local label="$1" bytes="$2" run="$3" attempt figures
    for attempt in 1 2 3; do
        if figures="$(iperf3_once "$bytes")"; then
            record "$bytes" iperf3 "$run" "${figures% *}" "${figures#* }" "$label"
            return 0
        fi
    done
    echo "  $label run $run/$RUNS  iperf3: no usable receiver summary in $attempt attempts; run not recorded (see $LOGDIR/iperf3-client.log)"
}

# --- the benchmark -------------------------------------------------------------------

for i in "${!SIZES[@]}"; do
    label="${LABELS[$i]}"
    bytes="${SIZES[$i]}"
    setup_size "$label" "$bytes"
    for ((run = 1; run <= RUNS; run++)); do
        for n in "${SOURCES[@]}"; do
            run_p2pshare "$label" "$bytes" "$run" "$n"
        done
        run_dd "$label" "$bytes" "$run"
        run_dd "$label" "$bytes" "$run" direct
        if [ "$HTTP" -eq 1 ]; then
            run_curl "$label" "$bytes" "$run" 0
            run_curl "$label" "$bytes" "$run" 1
        fi
        [ "$HAVE_IPERF3" -eq 0 ] || run_iperf3 "$label" "$bytes" "$run"
    done
    teardown_size
    echo
done

# --- results -------------------------------------------------------------------------

LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "load:      $LOADAVG_END (1, 5, 15 min, at the end)"
echo
BENCH_LOAD_END="$LOADAVG_END" BENCH_HEADER="$HEADER" BENCH_DATE="$DATE" BENCH_COMMAND="$CMDLINE" BENCH_BINARY="$VERSION" \
    BENCH_COMMIT="$COMMIT" BENCH_NPROC="$NPROC" BENCH_CPU="$CPU" BENCH_MEM="$MEM" BENCH_LOAD="$LOADAVG" \
    BENCH_KERNEL="$KERNEL" BENCH_FS="$FS" BENCH_TOOLS="$TOOLS" BENCH_RUNS="$RUNS" \
    BENCH_SIZES="${SIZES[*]}" BENCH_SOURCES="${SOURCES[*]}" \
    BENCH_SKIPPED="$(printf '%s\n' "${SKIPPED[@]+"${SKIPPED[@]}"}")" \
    python3 - "$OUT" <<'EOF'
import csv, json, os, sys

out = sys.argv[1]
env = os.environ
with open(os.path.join(out, "transfer.csv"), newline="") as f:
    rows = [
        {
            "size_bytes": int(r["size_bytes"]),
            "method": r["method"],
            "run": int(r["run"]),
            "seconds": float(r["seconds"]),
            "mb_per_s": float(r["mb_per_s"]),
            "cpu_get_s": float(r["cpu_get_s"]) if r["cpu_get_s"] else None,
            "cpu_peers_s": float(r["cpu_peers_s"]) if r["cpu_peers_s"] else None,
        }
        for r in csv.DictReader(f)
    ]
meta = {
    "header": env["BENCH_HEADER"],
    "date": env["BENCH_DATE"],
    "command": env["BENCH_COMMAND"],
    "binary": env["BENCH_BINARY"],
    "commit": env["BENCH_COMMIT"],
    "nproc": int(env["BENCH_NPROC"]),
    "cpu": env["BENCH_CPU"],
    "memory": env["BENCH_MEM"],
    "loadavg_at_start": env["BENCH_LOAD"],
    "loadavg_at_end": env["BENCH_LOAD_END"],
    "kernel": env["BENCH_KERNEL"],
    "filesystem": env["BENCH_FS"],
    "tools": env["BENCH_TOOLS"],
    "runs": int(env["BENCH_RUNS"]),
    "sizes": [int(x) for x in env["BENCH_SIZES"].split()],
    "sources": [int(x) for x in env["BENCH_SOURCES"].split()],
    "skipped": [line for line in env["BENCH_SKIPPED"].splitlines() if line],
    "units": {"seconds": "wall clock", "mb_per_s": "MB/s, MB = 10^6 bytes",
              "cpu_get_s": "CPU seconds (user + sys) of the p2pshare get process",
              "cpu_peers_s": "CPU seconds (user + sys) of the holders during the run"},
}
with open(os.path.join(out, "transfer.json"), "w") as f:
    json.dump({"meta": meta, "rows": rows}, f, indent=1)
    f.write("\n")
EOF

python3 "$REPO/bench/report.py" "$OUT"
