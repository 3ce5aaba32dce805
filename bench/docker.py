#!/usr/bin/env python3
"""Figures of p2pshare in containers (bench/docker.sh runs this; see BENCHMARKS.md):

  join       compose.yaml with N peers: how long `up` takes, and how long after it
             every peer has registered and has neighbours and every seed lists all
  memory     each container's memory at rest (`docker stats`), some seconds after the
             join, by role
  transfer   a file of SIZE downloaded by one peer container from another (`p2pshare
             get` inside the downloader's container), next to the same download
             between two processes of the host's own build over loopback, rounds
             interleaved, in the same run

The compose project is removed at the end, whatever happens (the suite's cleanup).
Usage: docker.py --image IMAGE --bin HOST_BINARY [--peers N] [--size BYTES]
                 [--rounds N] [--settle S] [--out DIR]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "docker"))
import suite  # noqa: E402  (the container suite's compose helpers)

UNITS = {"B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def mib(text):
    """`docker stats` memory ("12.5MiB") in MiB."""
    m = re.match(r"([\d.]+)\s*([A-Za-z]+)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2).upper()] / (1 << 20)


def memory(bench):
    names = {}
    for role in ("index", "seed1", "seed2", "seed3", "peer"):
        for node in bench.containers(role):
            names[node.cid] = "seed" if role.startswith("seed") else role
    out = suite.run(["docker", "stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.MemUsage}}"] + list(names), timeout=120)
    by_role = {}
    for line in out.splitlines():
        cid, usage = line.split(" ", 1)
        by_role.setdefault(names[cid], []).append(mib(usage.split("/")[0]))
    return {
        role: {
            "containers": len(v),
            "median_mib": round(statistics.median(v), 1),
            "min_mib": round(min(v), 1),
            "max_mib": round(max(v), 1),
            "total_mib": round(sum(v), 1),
        }
        for role, v in by_role.items()
    }


def container_get(bench, getter, size):
    """`p2pshare get` of the SIZE-byte big.bin, run in `getter`: the seconds the
    download took by its own account (`get --json`, from asking the index to the file
    in place), and by the wall clock around `docker exec`."""
    bench.exec(getter, "rm", "-rf", "/tmp/dl")
    started = time.monotonic()
    out = bench.exec(getter, "p2pshare", "get", "big.bin", "--dir", "/tmp/dl", "--json", timeout=600)
    wall = time.monotonic() - started
    got = json.loads(out)
    if got.get("size") != size:
        raise suite.Failure(f"container get: {out}")
    return got["seconds"], wall


class HostPair:
    """An index and a peer of the host's build on 127.0.0.1, sharing one file."""

    def __init__(self, binary, size, root):
        self.binary, self.root = binary, root
        share = os.path.join(root, "share")
        os.makedirs(share)
        with open(os.path.join(share, "big.bin"), "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 22))
                f.write(chunk)
                left -= len(chunk)
        self.procs = []
        self.index = self.start(["index", "--listen", "127.0.0.1:0", "--db", ":memory:"])
        self.start(["peer", "--dir", share, "--listen", "127.0.0.1:0", "--no-console", "--index", self.index])
        suite.wait_for("the host index lists big.bin", 120, self.listed)

    def start(self, args):
        log = open(os.path.join(self.root, f"{args[0]}.log"), "w")
        p = subprocess.Popen([self.binary] + args, stdout=subprocess.PIPE, stderr=log, text=True, cwd=self.root)
        self.procs.append(p)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            m = re.search(r" listening on (\S+),", line)
            if m:
                return m.group(1)
        raise suite.Failure(f"{args[0]} did not start (log: {log.name})")

    def listed(self):
        out = subprocess.run([self.binary, "search", "big", "--json", "--index", self.index], capture_output=True, text=True, cwd=self.root).stdout
        try:
            return any(r["name"] == "big.bin" for r in json.loads(out)["results"])
        except (ValueError, KeyError):
            return False

    def get(self, size):
        dest = os.path.join(self.root, "dl")
        subprocess.run(["rm", "-rf", dest], check=True)
        started = time.monotonic()
        p = subprocess.run([self.binary, "get", "big.bin", "--dir", dest, "--json", "--index", self.index], capture_output=True, text=True, cwd=self.root)
        wall = time.monotonic() - started
        if p.returncode != 0 or json.loads(p.stdout).get("size") != size:
            raise suite.Failure(f"host get: {p.stdout}{p.stderr}")
        return json.loads(p.stdout)["seconds"], wall

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--bin", required=True, help="the host's release build of p2pshare")
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--size", type=int, default=1 << 30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=20, help="seconds of rest before docker stats")
    ap.add_argument("--out", help="write the figures here as JSON")
    a = ap.parse_args()
    suite.stop_on_signals()
    project = f"p2pshare-bench-{os.getpid()}"
    bench = suite.Suite(a.image, a.peers, keep=False, project=project)
    figures = {"peers": a.peers, "size_bytes": a.size, "rounds": a.rounds}
    host = None
    try:
        bench.start(a.peers, within=120)
        figures["up_s"] = bench.figures["containers_started_s"]
        figures["join_s"] = bench.figures["join_s"]
        time.sleep(a.settle)
        figures["memory_at_rest"] = memory(bench)
        suite.log(f"  memory at rest: {json.dumps(figures['memory_at_rest'])}")

        holder, getter = bench.peers[0], bench.peers[1]
        figures["transfer_between"] = [holder.name, getter.name]
        mb = a.size >> 20
        bench.exec(holder, "sh", "-c", f"head -c {mb}M /dev/urandom > share/big.bin", timeout=600)
        suite.wait_for(
            "the index lists big.bin",
            300,
            lambda: any(r[0] == "big.bin" for r in (bench.search(getter, "big") or [])),
            every=1,
        )
        host = HostPair(a.bin, a.size, tempfile.mkdtemp(prefix="p2pshare-bench-", dir=os.path.join(REPO, "target")))
        runs = {"containers": [], "host": []}
        for r in range(a.rounds):
            runs["containers"].append(container_get(bench, getter, a.size))
            runs["host"].append(host.get(a.size))
            (c, cw), (h, hw) = runs["containers"][-1], runs["host"][-1]
            suite.log(f"  round {r + 1}: containers {c:.2f} s ({cw:.2f} s with docker exec), host loopback {h:.2f} s ({hw:.2f} s with the process start)")
        c = statistics.median(t for t, _ in runs["containers"])
        h = statistics.median(t for t, _ in runs["host"])
        figures["transfer"] = {
            "containers_s": [round(t, 3) for t, _ in runs["containers"]],
            "containers_wall_s": [round(w, 3) for _, w in runs["containers"]],
            "host_loopback_s": [round(t, 3) for t, _ in runs["host"]],
            "host_loopback_wall_s": [round(w, 3) for _, w in runs["host"]],
            "containers_median_mb_per_s": round(a.size / c / 1e6, 1),
            "host_loopback_median_mb_per_s": round(a.size / h / 1e6, 1),
            "containers_time_over_host": round(c / h, 2),
        }
        suite.log(f"  transfer: {json.dumps(figures['transfer'])}")
    finally:
        if host:
            host.stop()
            subprocess.run(["rm", "-rf", host.root])
        bench.pool.shutdown(wait=False)
        bench.cleanup()
    print(json.dumps(figures, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    try:
        main()
    except suite.Failure as e:
        print(f"docker bench: {e}", file=sys.stderr)
        sys.exit(1)
