#!/bin/sh
# The container's entrypoint: fills in what only the container knows, then becomes
# p2pshare (exec: p2pshare is PID 1 and gets the engine's SIGTERM itself).
#
#   p2pshare-entrypoint ARGS...            runs `p2pshare ARGS...`
#   p2pshare-entrypoint --health           the image's health check (below)
#   p2pshare-entrypoint --make-token FILE  writes a random HTTP token to FILE, unless
#                                          it has one already (compose's `token` service)
#
# What it fills in, only where nothing was set:
#   - a peer's name is the container's host name (P2PSHARE_NAME);
#   - with P2PSHARE_LOG_DIR, the event log is DIR/HOSTNAME.log (P2PSHARE_LOG_FILE), so
#     containers sharing one volume of logs each write a file of their own.
set -eu

# The role of a p2pshare command line (its first word that is not a flag), skipping
# global flags and the value of --config.
role_of() {
    skip=""
    for arg in "$@"; do
        if [ -n "$skip" ]; then
            skip=""
            continue
        fi
        case "$arg" in
            --config) skip=1 ;;
            -*) ;;
            *)
                echo "$arg"
                return
                ;;
        esac
    done
}

# Where the health check asks: 127.0.0.1 at the port the role listens on: --listen on
# the command line, else P2PSHARE_LISTEN, else the role's default. (A port set only in
# a configuration file is not seen here: set it with one of those two.)
health_addr() {
    role=$(role_of "$@")
    case "$role" in
        index) port=1024 ;;
        seed) port=1500 ;;
        peer) port=1025 ;;
        *) return 1 ;;
    esac
    listen="${P2PSHARE_LISTEN:-}"
    prev=""
    for arg in "$@"; do
        case "$prev" in --listen) listen="$arg" ;; esac
        case "$arg" in --listen=*) listen="${arg#--listen=}" ;; esac
        prev="$arg"
    done
    [ -z "$listen" ] || port="${listen##*:}"
    echo "127.0.0.1:$port"
}

case "${1:-}" in
    --health)
        # PID 1 is p2pshare (this script exec'd it): its command line says the role.
        # One word per argument (split on the NULs), with no globbing.
        set -f
        # shellcheck disable=SC2046
        set -- $(tr '\0' '\n' </proc/1/cmdline | tail -n +2 | tr '\n' ' ')
        if ! addr=$(health_addr "$@"); then
            # A one-shot command: nothing serves, nothing to check.
            exit 0
        fi
        exec p2pshare status --timeout 3s "$addr"
        ;;
    --make-token)
        file="${2:?--make-token needs a file}"
        if [ ! -s "$file" ]; then
            umask 077
            # 32 random bytes as 64 hex digits, written whole before it is renamed in.
            od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$file.new"
            mv "$file.new" "$file"
            echo "made the HTTP token $file"
        fi
        exit 0
        ;;
esac

role=$(role_of "$@")
host=$(uname -n)
if [ "$role" = peer ] && [ -z "${P2PSHARE_NAME:-}" ]; then
    export P2PSHARE_NAME="$host"
fi
if [ -n "${P2PSHARE_LOG_DIR:-}" ] && [ -z "${P2PSHARE_LOG_FILE:-}" ]; then
    case "$role" in
        index | seed | peer) export P2PSHARE_LOG_FILE="$P2PSHARE_LOG_DIR/$host.log" ;;
    esac
fi
exec p2pshare "$@"
