#!/usr/bin/env bash
# Makes, without a container registry, the two base images the Dockerfile builds FROM:
#
#   p2pshare-local/debian:bookworm-slim      Debian 12 (bookworm), minbase, trimmed of
#                                            documentation, manual pages and locales
#   p2pshare-local/rust:VERSION-bookworm     the same with gcc and libc6-dev (SQLite is
#                                            compiled from source), and this machine's own
#                                            Rust toolchain (`rustup which cargo`) under
#                                            /usr/local/rust
#
# Debian comes from debootstrap and the package mirror this machine's apt already uses
# (read from /etc/apt/sources.list.d/*.sources or a sources.list; P2PSHARE_DEBIAN_MIRROR
# overrides it); the folders are turned into images with `docker import`. Nothing is
# pulled. Then build with:
#
#   eval "$(scripts/docker-base.sh)"     # prints the two --build-arg settings
#   docker build $P2PSHARE_DOCKER_BUILD_ARGS -t p2pshare .
#
# Usage: scripts/docker-base.sh [--force]
#   --force   make the images again even when they exist
#
# Output: on stdout only `export P2PSHARE_BUILDER_IMAGE=... P2PSHARE_RUNTIME_IMAGE=...
# P2PSHARE_DOCKER_BUILD_ARGS=...` lines (for eval); progress goes to stderr. An image
# that exists already is kept, so a second run takes a second. Needs root (debootstrap
# and chroot) and debootstrap (apt-get install debootstrap debian-archive-keyring).
# Work files live in target/docker-base/ (the downloaded packages are kept there for
# the next run).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE=bookworm
WORK="$REPO/target/docker-base"
FORCE=0

for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "docker-base: unknown argument '$arg' (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { printf 'docker-base: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# The Debian mirror this machine's apt uses for $SUITE: the first URI of a deb822
# stanza (Types: deb) whose Suites name it, else the URI of a one-line `deb URI SUITE`
# entry. The mirror is only ever read from here, never written into the repository.
apt_mirror() {
    if [ -n "${P2PSHARE_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "$P2PSHARE_DEBIAN_MIRROR"
        return
    fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[Tt]ypes:/) { sub(/^[^:]*:[ \t]*/, "", line); types = line }
                    else if (line ~ /^URIs:/) { sub(/^[^:]*:[ \t]*/, "", line); uris = line }
                    else if (line ~ /^[Ss]uites:/) { sub(/^[^:]*:[ \t]*/, "", line); suites = line }
                }
                if (types !~ /(^|[ \t])deb([ \t]|$)/) next
                n = split(suites, s, /[ \t]+/)
                for (j = 1; j <= n; j++) if (s[j] == suite) { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        uri=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return
        fi
    done
    return 1
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap SUITE into $1 (minbase), with extra packages $2 (comma-separated).
bootstrap() {
    local dir="$1" include="$2" mirror
    mirror=$(apt_mirror) || die "no apt source for Debian $SUITE on this machine: set P2PSHARE_DEBIAN_MIRROR to a Debian mirror's URL"
    rm -rf "$dir"
    mkdir -p "$dir" "$WORK/debs"
    say "debootstrap $SUITE${include:+ (with $include)} into $dir"
    local args=(--variant=minbase --cache-dir="$WORK/debs")
    [ -z "$include" ] || args+=(--include="$include")
    if ! debootstrap "${args[@]}" "$SUITE" "$dir" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        die "debootstrap failed (log: $WORK/debootstrap.log)"
    fi
    # What a container image does not need: package downloads and lists, documentation,
    # manual pages, translations, and the host's own name and resolver (the engine
    # provides both). Later installs skip documentation too, as in Debian's slim
    # images.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
        "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log "$dir"/var/log/apt/* \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
        "$dir"/usr/share/locale/* "$dir"/usr/share/lintian "$dir"/usr/share/linda \
        "$dir"/etc/hostname "$dir"/etc/resolv.conf "$dir"/debootstrap
    mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
}

# `docker import` of a root folder, with the settings an image from a Dockerfile would
# have.
import() {
    local dir="$1" tag="$2"
    shift 2
    say "docker import $tag"
    tar --numeric-owner -C "$dir" -c . |
        docker import "$@" --change 'CMD ["bash"]' - "$tag" >/dev/null
}

command -v docker >/dev/null 2>&1 || die "no docker command"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is dockerd running?)"

RUNTIME_IMAGE="p2pshare-local/debian:$SUITE-slim"
rustc_path=$(rustup which rustc 2>/dev/null || command -v rustc || true)
[ -n "$rustc_path" ] || die "no Rust toolchain on this machine (rustup which rustc)"
TOOLCHAIN="$(cd "$(dirname "$rustc_path")/.." && pwd)"
if [ ! -d "$TOOLCHAIN/lib/rustlib" ] || [ ! -x "$TOOLCHAIN/bin/cargo" ]; then
    die "$TOOLCHAIN is not a self-contained Rust toolchain (bin/cargo, lib/rustlib): install one with rustup"
fi
RUST_VERSION=$("$TOOLCHAIN/bin/rustc" --version | awk '{ print $2 }')
BUILDER_IMAGE="p2pshare-local/rust:$RUST_VERSION-$SUITE"

need_root() {
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root: run this as root (or with sudo)"
    command -v debootstrap >/dev/null 2>&1 ||
        die "debootstrap is missing: apt-get install debootstrap debian-archive-keyring"
}

if [ "$FORCE" = 1 ] || ! image_exists "$RUNTIME_IMAGE"; then
    need_root
    bootstrap "$WORK/runtime" ""
    import "$WORK/runtime" "$RUNTIME_IMAGE" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    rm -rf "$WORK/runtime"
else
    say "$RUNTIME_IMAGE exists"
fi

if [ "$FORCE" = 1 ] || ! image_exists "$BUILDER_IMAGE"; then
    need_root
    bootstrap "$WORK/builder" "gcc,libc6-dev,ca-certificates"
    # The toolchain without its documentation, sources and editor tools: cargo, rustc,
    # the standard library and the linker (rust-lld) rustc drives.
    say "copying Rust $RUST_VERSION from $TOOLCHAIN"
    mkdir -p "$WORK/builder/usr/local/rust/bin"
    cp -a "$TOOLCHAIN/bin/cargo" "$TOOLCHAIN/bin/rustc" "$WORK/builder/usr/local/rust/bin/"
    (cd "$TOOLCHAIN" && tar --exclude=lib/rustlib/src --exclude=lib/rustlib/rustc-src -c lib/rustlib lib/*.so*) |
        tar -C "$WORK/builder/usr/local/rust" -x
    import "$WORK/builder" "$BUILDER_IMAGE" \
        --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo'
    rm -rf "$WORK/builder"
else
    say "$BUILDER_IMAGE exists"
fi

printf 'export P2PSHARE_BUILDER_IMAGE=%s\n' "$BUILDER_IMAGE"
printf 'export P2PSHARE_RUNTIME_IMAGE=%s\n' "$RUNTIME_IMAGE"
printf "export P2PSHARE_DOCKER_BUILD_ARGS='--build-arg BUILDER_IMAGE=%s --build-arg RUNTIME_IMAGE=%s'\n" \
    "$BUILDER_IMAGE" "$RUNTIME_IMAGE"
