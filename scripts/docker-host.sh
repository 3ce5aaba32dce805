#!/usr/bin/env bash
# Makes room in the kernel's ARP table for a network of many containers on one Docker
# bridge (compose.yaml with --scale peer=50 is 57 of them).
#
# The kernel's neighbour (ARP) table is one for the whole machine, shared by every
# network namespace, and keeps at most net.ipv4.neigh.default.gc_thresh3 entries
# (1024 by default). Each container holds an entry for every node it talks to, and
# peers talk to their neighbours, the helpers of their probes, the seeds and the
# index: 57 containers overflow it. Past the limit a new entry cannot be made
# ("neighbor table overflow!" in dmesg) and packets to that node are dropped until
# old entries age out: a peer then finds the seeds silent for a minute or more.
#
# Usage: scripts/docker-host.sh [--check]
#   (as root) raises gc_thresh1/2/3 to 4096/8192/16384 when they are lower;
#   --check   only says whether they are high enough (exit 1 when not).
set -euo pipefail

WANT=(4096 8192 16384)
KEYS=(net.ipv4.neigh.default.gc_thresh1 net.ipv4.neigh.default.gc_thresh2 net.ipv4.neigh.default.gc_thresh3)

current=$(sysctl -n "${KEYS[2]}" 2>/dev/null || echo 0)
if [ "$current" -ge "${WANT[2]}" ]; then
    echo "docker-host: the ARP table holds $current entries: enough"
    exit 0
fi
if [ "${1:-}" = --check ] || [ "$(id -u)" -ne 0 ]; then
    echo "docker-host: the ARP table holds $current entries at most, too few for ~50 containers on one bridge;" \
        "as root: sysctl -w ${KEYS[0]}=${WANT[0]} ${KEYS[1]}=${WANT[1]} ${KEYS[2]}=${WANT[2]}" >&2
    exit 1
fi
for i in 0 1 2; do
    sysctl -qw "${KEYS[$i]}=${WANT[$i]}"
done
echo "docker-host: raised the ARP table's limits (${KEYS[2]}: $current -> ${WANT[2]})"
