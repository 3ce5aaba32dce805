#!/usr/bin/env python3
"""The overlay on real processes: 3 seeds and N peers (default 100) on 127.0.0.1.

Usage: bench/overlay_processes.py BIN [--peers 100] [--kill 10] [--out DIR]

Every server binds port 0 and the script reads the real address from its ready line.
It measures and checks, with a deadline on every wait:
  1. joining: from the start of the last peer until every peer has >= 4 neighbours;
  2. a broadcast (`p2pshare say` through one peer) reaching all N peers, each once;
  3. killing K peers with SIGKILL: the time until a majority of the seeds drop each one,
     and until every peer that had it as a neighbour holds it dead;
  4. no live peer declared dead anywhere (false deaths).
Exits 1 when a check fails. Raw figures go to OUT/overlay_processes.json.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


# The bound for joining and for the seeds dropping the dead.
TARGET_SECONDS = 10


def free_port():
    """A port nothing listens on now (the kernel's pick for a socket closed at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    def __init__(self, name, args, cwd, bin_path):
        self.name = name
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen([bin_path] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addr = None
        self.id = None
        ready = threading.Event()

        def pump():
            for line in self.p.stdout:
                line = line.rstrip("\n")
                with self.lock:
                    self.lines.append((time.monotonic(), line))
                m = re.search(r" listening on (\S+?)[, ]", line + " ")
                if m and self.addr is None:
                    key = re.search(r", id (\S+?)[, ]", line + " ")
                    self.id = key.group(1) if key else None
                    self.addr = m.group(1)
                    ready.set()
        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(30):
            self.kill()
            raise SystemExit(f"{name} did not print its ready line")

    def seen(self, pred):
        with self.lock:
            return [(t, l) for t, l in self.lines if pred(l)]

    def kill(self, sig=signal.SIGKILL):
        try:
            self.p.send_signal(sig)
        except ProcessLookupError:
            pass

    def reap(self):
        self.kill()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass


def members(addr):
    """name -> (state, view) from a node's `members`, or None when it does not answer.
    Rows end with the member's name (ids are keys); a name of `-` is a member known only
    from contact, listed by id."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3) as s:
            s.settimeout(3)
            s.sendall(b"members\n")
            f = s.makefile("r")
            head = f.readline().strip()
            if not head.startswith("ok|"):
                return None
            out = {}
            for _ in range(int(head.split("|")[1])):
                r = f.readline().rstrip("\n").split("|")
                out[r[7] if r[7] != "-" else r[0]] = (r[3], r[5])
            return out
    except OSError:
        return None


def wait_until(what, seconds, cond, step=0.1):
    """Polls cond until it holds; returns the seconds it took, or None at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if cond():
            return time.monotonic() - start
        time.sleep(step)
    print(f"  NOT within {seconds} s: {what}")
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--peers", type=int, default=100)
    ap.add_argument("--kill", type=int, default=10)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="p2pshare-overlay-")
    procs = []
    failures = []
    result = {"peers": a.peers, "killed": a.kill}
    try:
        def start(name, args):
            p = Proc(name, args, work, a.bin)
            procs.append(p)
            return p

        # Every process here connects from 127.0.0.1: lift the per-address share.
        # and, at the index, the peer ids one address may register.
        many = ["--max-connections-per-address", "4096"]
        index = start("index", ["index", "--listen", "127.0.0.1:0", "--db", ":memory:",
                                "--max-peers-per-address", "4096"] + many)
        # Seeds too hold each address to so many live ids. A seed takes registries only
        # from the seeds it lists, so each is given all three: their ports are chosen
        # first.
        seed_many = many + ["--max-peers-per-address", "4096"]
        seed_addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        seed_list = sum((["--seed", a] for a in seed_addrs), [])
        seeds = [start(f"s{i + 1}", ["seed", "--listen", a, "--key", os.path.join(work, f"s{i + 1}.key")]
                       + seed_list + seed_many)
                 for i, a in enumerate(seed_addrs)]
        seed_flags = sum((["--seed", s.addr] for s in seeds), [])
        peers = []
        t_first = time.monotonic()
        for i in range(a.peers):
            d = os.path.join(work, f"p{i}")
            os.makedirs(d)
            peers.append(start(f"p{i}", ["peer", "--dir", d, "--listen", "127.0.0.1:0", "--index",
                                         index.addr, "--no-console", *seed_flags]))
        t_last = time.monotonic()
        result["start_all_seconds"] = t_last - t_first
        print(f"started 3 seeds and {a.peers} peers in {t_last - t_first:.1f} s")

        # 1. Joining.
        views = {}

        def all_joined():
            for p in peers:
                if len([1 for st, v in (views.get(p.name) or {}).values() if v == "active"]) >= 4:
                    continue
                m = members(p.addr)
                views[p.name] = m or {}
                if len([1 for st, v in views[p.name].values() if v == "active"]) < 4:
                    return False
            return True
        joined = wait_until("every peer has 4 neighbours", 60, all_joined, 0.05)
        if joined is None:
            failures.append("join")
            joined = float("nan")
        elif joined > TARGET_SECONDS:
            failures.append(f"join took over {TARGET_SECONDS} s")
        result["join_seconds_after_last_start"] = joined
        degrees = []
        for p in peers:
            m = members(p.addr) or {}
            degrees.append(len([1 for st, v in m.values() if v == "active"]))
        degrees.sort()
        result["degree"] = {"min": degrees[0], "median": degrees[len(degrees) // 2], "max": degrees[-1]}
        print(f"1. every peer has >= 4 neighbours {joined:.2f} s after the last peer started "
              f"(neighbours: min {degrees[0]}, median {degrees[len(degrees) // 2]}, max {degrees[-1]})")

        # 2. A broadcast.
        text = f"overlay check {rng.randrange(1 << 30)}"
        sent = time.monotonic()
        r = subprocess.run([a.bin, "say", text, "--peer", peers[0].addr], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            failures.append("say")
            print(r.stderr)
        got = lambda p: p.seen(lambda l: l.endswith(": " + text))
        took = wait_until("the broadcast reaches every peer", 30, lambda: all(got(p) for p in peers), 0.02)
        copies = [len(got(p)) for p in peers]
        if took is None:
            failures.append("broadcast")
        else:
            last = max(got(p)[0][0] for p in peers)
            result["broadcast_seconds"] = last - sent
        result["broadcast_reached"] = sum(1 for c in copies if c > 0)
        result["broadcast_printed_more_than_once"] = sum(1 for c in copies if c > 1)
        if any(c > 1 for c in copies):
            failures.append("duplicates")
        print(f"2. broadcast printed by {result['broadcast_reached']} of {a.peers} peers "
              f"({result['broadcast_printed_more_than_once']} more than once), the last after "
              f"{result.get('broadcast_seconds', float('nan')):.3f} s")

        # 3. Kills.
        victims = rng.sample(peers[1:], a.kill)
        # Events name a peer by its id (its key), tables by its name.
        vnames = {v.name for v in victims} | {v.id for v in victims}
        # The live peers that hold each victim as a neighbour when it dies.
        neighbours = {}
        for p in peers:
            if p.name in vnames:
                continue
            m = members(p.addr) or {}
            for v in victims:
                if m.get(v.name, ("", ""))[1] == "active":
                    neighbours.setdefault(v.name, []).append(p)
        live = [p for p in peers if p.name not in vnames]
        killed_at = time.monotonic()
        for v in victims:
            v.kill()
        seed_drop = {}
        view_drop = {}
        gone = lambda m, name: m is not None and (name not in m or m[name][0] in ("dead", "left"))

        def progress():
            now = time.monotonic() - killed_at
            ms = [members(s.addr) for s in seeds]
            for v in victims:
                if v.name not in seed_drop and sum(1 for m in ms if gone(m, v.name)) >= 2:
                    seed_drop[v.name] = now
                if v.name not in view_drop:
                    if all(gone(members(n.addr), v.name) for n in neighbours.get(v.name, [])):
                        view_drop[v.name] = now
            return len(seed_drop) == len(victims) and len(view_drop) == len(victims)
        if wait_until("the dead leave the seeds and their neighbours' views", 60, progress, 0.2) is None:
            failures.append("deaths")
            for v in victims:
                if v.name not in seed_drop:
                    print(f"   seeds on {v.name}: {[ (members(s.addr) or {}).get(v.name) for s in seeds]}")
                if v.name not in view_drop:
                    print(f"   former neighbours on {v.name}: "
                          f"{[(n.name, (members(n.addr) or {}).get(v.name)) for n in neighbours.get(v.name, [])]}")
        sd = sorted(seed_drop.values())
        vd = sorted(view_drop.values())
        result["seeds_majority_dropped_seconds"] = sd
        result["neighbours_dropped_seconds"] = vd
        if sd and sd[-1] > TARGET_SECONDS:
            failures.append(f"seeds took over {TARGET_SECONDS} s")
        if sd:
            print(f"3. {a.kill} peers killed: dropped by a majority of seeds after "
                  f"median {statistics.median(sd):.2f} s, max {sd[-1]:.2f} s")
        if vd:
            print(f"   held dead by every former neighbour after median {statistics.median(vd):.2f} s, "
                  f"max {vd[-1]:.2f} s")

        # 4. False deaths.
        false = []
        for s in seeds:
            m = members(s.addr) or {}
            false += [f"{s.name}: {p.name} {m.get(p.name)}" for p in live if m.get(p.name, ("",))[0] != "alive"]
        for p in live:
            for t, line in p.seen(lambda l: " is dead (declared by " in l):
                who = line.split(" ", 1)[0]
                if who not in vnames:
                    false.append(f"{p.name}: {line}")
        result["false_deaths"] = false
        print(f"4. false deaths: {len(false)}")
        for f in false[:10]:
            print("   ", f)
        if false:
            failures.append("false deaths")
    finally:
        for p in procs:
            p.reap()
        shutil.rmtree(work, ignore_errors=True)
    result["failures"] = failures
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "overlay_processes.json"), "w") as f:
            json.dump(result, f, indent=1)
    if failures:
        print("FAILED:", ", ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
