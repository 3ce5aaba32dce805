#!/usr/bin/env bash
# Builds the p2pshare image from the Dockerfile on a machine with no container registry:
#
#   1. the crates of Cargo.lock are vendored into docker/vendor/ (by this machine's
#      cargo, from crates.io or its cache), so the build inside needs no network;
#   2. the base images are made locally (scripts/docker-base.sh: debootstrap of Debian
#      and this machine's Rust toolchain), unless --public;
#   3. `docker build` with those base images as build arguments.
#
# Usage: scripts/docker-build.sh [--tag TAG] [--public] [-- DOCKER_BUILD_ARGS...]
#   --tag TAG   the image's name (default p2pshare:local)
#   --public    build FROM the public base images (needs a registry)
#
# The image's name is the last line on stdout; progress goes to stderr. Building again
# after a change to src/ rebuilds only the crate: the dependencies are a layer of their
# own.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TAG=p2pshare:local
PUBLIC=0
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --tag)
            TAG="${2:?--tag needs a name}"
            shift 2
            ;;
        --public)
            PUBLIC=1
            shift
            ;;
        --)
            shift
            EXTRA=("$@")
            break
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "docker-build: unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
done

say() { printf 'docker-build: %s\n' "$*" >&2; }

VENDOR=docker/vendor
# Vendoring again only when Cargo.lock changed since the last time.
lock_sum=$(sha256sum Cargo.lock | cut -d' ' -f1)
if [ "$(cat "$VENDOR/.lock-sha256" 2>/dev/null || true)" != "$lock_sum" ]; then
    say "vendoring the crates of Cargo.lock into $VENDOR/"
    find "$VENDOR" -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
    # --no-delete: the folder was emptied above, all but its README.
    cargo vendor --locked --versioned-dirs --no-delete --quiet "$VENDOR" >/dev/null
    # Crates only Windows builds compile (two thirds of the bytes) keep their manifest,
    # which cargo reads to resolve the lock file, and lose their sources, which it
    # never reads on Linux.
    stubbed=0
    for dir in "$VENDOR"/windows* "$VENDOR"/winapi*; do
        [ -d "$dir" ] || continue
        package=$(grep -o '"package":"[0-9a-f]*"' "$dir/.cargo-checksum.json")
        find "$dir" -mindepth 1 -maxdepth 1 ! -name Cargo.toml -exec rm -rf {} +
        mkdir -p "$dir/src"
        : >"$dir/src/lib.rs"
        printf '{"files":{},%s}\n' "$package" >"$dir/.cargo-checksum.json"
        stubbed=$((stubbed + 1))
    done
    cat >"$VENDOR/config.toml" <<'EOF'
# Written by scripts/docker-build.sh: the Dockerfile copies this file to .cargo/ so that
# cargo takes the crates of Cargo.lock from docker/vendor/ instead of crates.io.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "docker/vendor"
EOF
    printf '%s\n' "$lock_sum" >"$VENDOR/.lock-sha256"
    say "vendored $(find "$VENDOR" -mindepth 1 -maxdepth 1 -type d | wc -l) crates ($stubbed Windows-only ones as stubs), $(du -sh "$VENDOR" | cut -f1)"
fi

ARGS=()
if [ "$PUBLIC" = 0 ]; then
    eval "$(bash scripts/docker-base.sh)"
    ARGS+=(--build-arg "BUILDER_IMAGE=$P2PSHARE_BUILDER_IMAGE" --build-arg "RUNTIME_IMAGE=$P2PSHARE_RUNTIME_IMAGE")
fi

say "docker build -t $TAG ${ARGS[*]} ${EXTRA[*]}"
# The classic builder when BuildKit's client (buildx) is missing: the Dockerfile needs
# nothing BuildKit adds.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
docker build -t "$TAG" "${ARGS[@]}" "${EXTRA[@]}" . >&2
printf '%s\n' "$TAG"
