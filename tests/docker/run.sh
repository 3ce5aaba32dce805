#!/usr/bin/env bash
# The container test suite (tests/docker/suite.py says what it checks): builds the image
# from the Dockerfile without a registry (scripts/docker-build.sh), then runs compose.yaml
# with 50 peers on the local Docker engine and checks the network from outside.
#
# Usage: tests/docker/run.sh [suite.py options: --peers N, --only CHECK,..., --keep]
#
# Where no Docker engine answers, it prints SKIPPED and exits 0. It leaves no
# container, network or volume behind, even when it fails (a compose project of its
# own, removed on exit); the image (p2pshare:test) and its base images stay, as a
# build cache.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v docker >/dev/null 2>&1; then
    echo "SKIPPED: docker suite: no docker command on this machine"
    exit 0
fi
if ! docker info >/dev/null 2>&1; then
    echo "SKIPPED: docker suite: no Docker engine answers (is dockerd running?)"
    exit 0
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    echo "docker suite: a Docker engine answers but neither \`docker compose\` nor docker-compose is installed" >&2
    exit 1
fi

# Fifty containers on one bridge overflow the kernel's ARP table at its default size
# (see the script); without root the suite goes on, and may see peers cut off.
bash scripts/docker-host.sh || echo "docker suite: going on with the ARP table as it is" >&2

started=$(date +%s)
mkdir -p target
build_log=target/docker-build.log
if ! image=$(bash scripts/docker-build.sh --tag p2pshare:test 2>"$build_log" | tail -n 1); then
    tail -n 40 "$build_log" >&2
    echo "docker suite: the image did not build (log: $build_log)" >&2
    exit 1
fi
echo "docker suite: image $image built in $(($(date +%s) - started)) s (log: $build_log)"
# The suite removes its compose project when it ends, however it ends; this trap is
# the second line, for a suite that could not (killed with SIGKILL, say).
project="p2pshare-test-$$-$RANDOM"
cleanup() {
    local label="label=com.docker.compose.project=$project" ids
    mapfile -t ids < <(docker ps -aq --filter "$label")
    [ "${#ids[@]}" -eq 0 ] || docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || true
    mapfile -t ids < <(docker network ls -q --filter "$label")
    [ "${#ids[@]}" -eq 0 ] || docker network rm "${ids[@]}" >/dev/null 2>&1 || true
    mapfile -t ids < <(docker volume ls -q --filter "$label")
    [ "${#ids[@]}" -eq 0 ] || docker volume rm -f "${ids[@]}" >/dev/null 2>&1 || true
}
case " $* " in
    *" --keep "*) ;; # left running on purpose, for a look inside
    *) trap cleanup EXIT ;;
esac
python3 tests/docker/suite.py --image "$image" --project "$project" "$@"
echo "docker suite: $(($(date +%s) - started)) s in all"
