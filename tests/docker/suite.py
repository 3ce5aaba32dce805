#!/usr/bin/env python3
"""The container test suite: compose.yaml's network (an index, three seeds, fifty
peers) on a real Docker engine, observed through the nodes' own interfaces: their HTTP
API on the published ports, `p2pshare` commands run inside the containers, their
output and their event logs.

Run by tests/docker/run.sh, which builds the image and says SKIPPED where there is no
engine. One compose project, named uniquely, for the whole run; whatever happens, its
containers, networks and volumes are removed at the end (see Suite.cleanup).

The checks run in this order, each leaving the network as the next expects it:

  join          50 peers joined within 30 s (every one registered, greeted a member,
                and has neighbours; every seed lists all 50); every node's /status and
                /health answer; seed 000's POST /message works with the token
  broadcast     a broadcast is printed once by every peer
  transfer      a file shared by one container is downloaded by another, verified
  kill          `docker kill` of 5 peers is seen (dead) at a majority of seeds within
                10 s; the event logs show the missed probes, the reports, the deaths
  partition     10 peers cut off (`docker network disconnect`) for 30 s, reconnected:
                within 60 s no live peer is held dead or suspect anywhere
  index         the index container replaced, its volume kept: the first answer of the
                new one has every file the old one had
  restart       a restarted peer keeps its id (its key) and its hash cache
  seedless      with every seed stopped, new peers join through the others

Usage: suite.py --image IMAGE [--peers N] [--only NAME,...] [--keep]
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKS = ["join", "broadcast", "transfer", "kill", "partition", "index", "restart", "seedless"]


def now():
    return time.monotonic()


def log(text):
    print(text, flush=True)


class Failure(Exception):
    pass


def compose_command():
    """`docker compose` (v2) when the engine's client has it, else `docker-compose`."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise Failure("neither `docker compose` nor `docker-compose` is installed")


def run(cmd, timeout=120, check=True, env=None):
    """Runs a command; returns its stdout. A failure names the command and its output."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def http(port, path, method="GET", body=None, token=None, timeout=3):
    """(status, JSON or None) of a request to 127.0.0.1:PORT; (None, None) when the
    node does not answer."""
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return None, None


def wait_for(what, within, cond, every=0.5):
    """Polls `cond` until it returns a true value (returned) or `within` seconds pass."""
    deadline = now() + within
    while True:
        got = cond()
        if got:
            return got
        if now() >= deadline:
            raise Failure(f"not within {within:.0f} s: {what}")
        time.sleep(every)


class Node:
    """A container of the project, with what the checks ask of it."""

    def __init__(self, cid, service):
        self.cid = cid
        self.service = service
        self.port = None  # the host port of its HTTP interface
        self.id = None  # its node id (key)
        self.name = None

    def __repr__(self):
        return f"{self.service}:{self.cid[:12]}"


class Suite:
    def __init__(self, image, peers, keep, project=None):
        self.image = image
        self.peers_wanted = peers
        self.keep = keep
        self.project = project or f"p2pshare-test-{os.getpid()}-{random.randrange(1 << 16):04x}"
        self.compose = compose_command() + ["-p", self.project, "-f", os.path.join(REPO, "compose.yaml")]
        self.env = dict(os.environ, P2PSHARE_IMAGE=image)
        self.token = None
        self.results = []  # (check, passed, seconds, note)
        self.figures = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)

    # ----- the project -----

    def dc(self, *args, timeout=300, check=True):
        return run(self.compose + list(args), timeout=timeout, check=check, env=self.env)

    def containers(self, service, running=True):
        args = [
            "docker", "ps", "-q", "--no-trunc",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ]
        if not running:
            args.insert(2, "-a")
        return [Node(c, service) for c in run(args).split()]

    def network(self):
        nets = run(["docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"]).split()
        if len(nets) != 1:
            raise Failure(f"expected one network for the project, found {nets}")
        return nets[0]

    def inspect(self, node):
        info = json.loads(run(["docker", "inspect", node.cid]))[0]
        bound = (info["NetworkSettings"]["Ports"] or {}).get("8080/tcp") or []
        node.port = int(bound[0]["HostPort"]) if bound else None
        return info

    def status(self, node):
        code, body = http(node.port, "/status")
        return body if code == 200 else None

    def fill(self, nodes):
        """Ports, ids and names of `nodes`, read from docker and /status."""

        def one(n):
            self.inspect(n)
            st = wait_for(f"{n} answers /status", 30, lambda: self.status(n))
            n.id, n.name = st["id"], st["name"]

        list(self.pool.map(one, nodes))
        return nodes

    def exec(self, node, *cmd, timeout=120, check=True):
        return run(["docker", "exec", node.cid] + list(cmd), timeout=timeout, check=check)

    def logs(self, node, since=None):
        args = ["docker", "logs"]
        if since:
            args += ["--since", since]
        p = subprocess.run(args + [node.cid], capture_output=True, text=True, timeout=60)
        return p.stdout

    def members(self, node):
        """{id: state} as `node` holds them (HTTP /peers), or None."""
        code, body = http(node.port, "/peers")
        if code != 200:
            return None
        return {m["id"]: m["state"] for m in body["members"]}

    def cleanup(self):
        """Removes everything the project made, whatever state it is in."""
        if self.keep:
            log(f"--keep: project {self.project} left running")
            return
        self.dc("down", "-v", "--remove-orphans", "-t", "3", timeout=300, check=False)
        label = f"label=com.docker.compose.project={self.project}"
        for kind, ls, rm in [
            ("containers", ["docker", "ps", "-aq", "--filter", label], ["docker", "rm", "-f", "-v"]),
            ("networks", ["docker", "network", "ls", "-q", "--filter", label], ["docker", "network", "rm"]),
            ("volumes", ["docker", "volume", "ls", "-q", "--filter", label], ["docker", "volume", "rm", "-f"]),
        ]:
            left = run(ls, check=False).split()
            if left:
                run(rm + left, check=False)
            left = run(ls, check=False).split()
            if left:
                log(f"cleanup: {len(left)} {kind} of {self.project} could not be removed: {left}")

    # ----- the checks -----

    def check_join(self):
        self.start(self.peers_wanted)
        peers, seeds = self.peers, self.seeds

        # Seed 000: each peer registered, fetched the list and messaged a random peer.
        def greeted():
            return all("greeted " in self.logs(p) for p in peers)

        wait_for("every peer greeted a member", 60, greeted, every=1)
        # Every node's /status and /health.
        for node in [self.index] + seeds + peers:
            for path in ("/status", "/health"):
                code, body = http(node.port, path)
                if code != 200:
                    raise Failure(f"{node} {path}: {code} {body}")
        # Seed 000's message, as its README sends it, with the token.
        target = peers[0]
        code, body = http(target.port, "/message", "POST", {"sender": "Node5", "msg": "Hello, this is a test"}, self.token)
        if code != 200 or body.get("status") != "received" or body.get("current_node") != target.name:
            raise Failure(f"POST /message: {code} {body}")
        code, _ = http(target.port, "/message", "POST", {"sender": "Node5", "msg": "no token"})
        if code != 401:
            raise Failure(f"POST /message without the token: {code}, not 401")

    def start(self, n, within=30):
        """`up` with `n` peers, then waits (`within` seconds) until every peer has
        registered with a seed and has a neighbour, and every seed lists every peer
        alive. Sets self.peers, self.seeds, self.index, self.token and the figures
        containers_started_s and join_s."""
        started = now()
        self.dc("up", "-d", "--scale", f"peer={n}", timeout=900)
        up = now() - started
        self.figures["containers_started_s"] = round(up, 1)
        log(f"  `up` with {n} peers returned in {up:.1f} s")
        self.token = self.exec(self.containers("index")[0], "cat", "/run/p2pshare/http-token").strip()
        peers = self.containers("peer")
        if len(peers) != n:
            raise Failure(f"{len(peers)} peer containers running, not {n}")
        seeds = [self.containers(s)[0] for s in ("seed1", "seed2", "seed3")]
        for node in peers + seeds:
            self.inspect(node)

        progress = {}

        def joined():
            states = list(self.pool.map(self.status, peers))
            progress["answering"] = sum(1 for s in states if s)
            progress["registered"] = sum(1 for s in states if s and s["seeds_up"] >= 1)
            progress["with neighbours"] = sum(1 for s in states if s and s["neighbours"] >= 1)
            if progress["with neighbours"] < n or progress["registered"] < n:
                return False
            ids = {s["id"] for s in states}
            lists = list(self.pool.map(self.members, seeds))
            alive = [len(ids & {i for i, st in (m or {}).items() if st == "alive"}) for m in lists]
            progress["listed by each seed"] = alive
            return all(a == n for a in alive)

        try:
            wait_for(f"{n} peers joined", within, joined, every=0.25)
        except Failure as e:
            raise Failure(f"{e}: {progress}")
        took = now() - started - up
        self.figures["join_s"] = round(took, 1)
        log(f"  {n} peers joined {took:.1f} s after `up` returned")
        self.fill(peers + seeds)
        self.peers, self.seeds = peers, seeds
        self.index = self.fill(self.containers("index"))[0]

    def check_broadcast(self):
        text = f"broadcast {random.randrange(1 << 32):08x}"
        self.exec(self.peers[1], "p2pshare", "say", text, "--peer", "127.0.0.1:1025")

        def counts():
            return [sum(1 for line in self.logs(p).splitlines() if line.endswith(f": {text}")) for p in self.peers]

        wait_for("every peer printed the broadcast", 20, lambda: all(c >= 1 for c in counts()), every=1)
        time.sleep(2)  # a duplicate would arrive within the graft timeout
        got = counts()
        if any(c != 1 for c in got):
            raise Failure(f"printed other than once: {got}")

    def check_transfer(self):
        a, b = self.peers[2], self.peers[3]
        self.exec(a, "sh", "-c", "head -c 48M /dev/urandom > share/blob.bin")
        for i in range(5):
            self.exec(self.peers[4 + i], "sh", "-c", f"echo 'file {i}' > share/shared-{i}.txt")

        def found():
            out = self.exec(b, "p2pshare", "search", "blob", "--json", check=False)
            try:
                return any(r["name"] == "blob.bin" for r in json.loads(out)["results"])
            except (ValueError, KeyError):
                return False

        wait_for("the index lists blob.bin", 30, found)
        started = now()
        out = self.exec(b, "p2pshare", "get", "blob.bin", "--dir", "/tmp/dl", "--json")
        took = now() - started
        got = json.loads(out)
        want = self.exec(a, "sha1sum", "share/blob.bin").split()[0]
        have = self.exec(b, "sha1sum", "/tmp/dl/blob.bin").split()[0]
        if want != have:
            raise Failure(f"sha1 {have} downloaded, {want} shared")
        log(f"  48 MiB from {a} to {b} in {took:.2f} s (`get` run in {b}): {got.get('sources')}")

    def check_kill(self):
        victims = self.peers[10:15]
        killed_at = now()
        run(["docker", "kill"] + [v.cid for v in victims])
        gone = {v.id for v in victims}

        def seen():
            lists = [self.members(s) or {} for s in self.seeds]
            return all(sum(1 for m in lists if m.get(i) in ("dead", "left")) >= 2 for i in gone)

        wait_for("5 killed peers dead at a majority of seeds", 10, seen, every=0.25)
        took = now() - killed_at
        self.figures["death_seen_s"] = round(took, 1)
        log(f"  seen dead at 2 of 3 seeds {took:.1f} s after the kill")
        # Seed 004: the event logs on the `logs` volume.
        seed_logs = self.exec(self.seeds[0], "sh", "-c", "cat /var/log/p2pshare/seed*.log")
        peer_logs = self.exec(self.seeds[0], "sh", "-c", "cat $(ls /var/log/p2pshare/*.log | grep -v -e seed -e index)")
        for v in victims:
            for kind, text in (("report", seed_logs), ("dead", seed_logs), ("probe-missed", peer_logs), ("dead", peer_logs)):
                if f" {kind} peer={v.id}" not in text:
                    raise Failure(f"no `{kind} peer={v.id}` in the event logs")
        run(["docker", "rm", "-f"] + [v.cid for v in victims])
        self.peers = [p for p in self.peers if p not in victims]

    def live_held_dead(self):
        """(node, member) pairs where a live node holds a live peer dead or suspect."""
        live = {p.id for p in self.peers}
        bad = []
        nodes = self.peers + self.seeds
        for node, held in zip(nodes, self.pool.map(self.members, nodes)):
            if held is None:
                bad.append((node, "no answer"))
                continue
            bad += [(node, i) for i, st in held.items() if i in live and st != "alive"]
        return bad

    def check_partition(self):
        net = self.network()
        cut = self.peers[15:25]
        for p in cut:
            run(["docker", "network", "disconnect", net, p.cid])
        time.sleep(30)
        for p in cut:
            run(["docker", "network", "connect", "--alias", "peer", net, p.cid])
        back = now()
        for p in cut:
            self.inspect(p)  # published ports change on reconnection
        last = []

        def healed():
            nonlocal last
            last = self.live_held_dead()
            return not last

        try:
            wait_for("no live peer held dead or suspect", 60, healed, every=1)
        except Failure as e:
            raise Failure(f"{e}: {len(last)} left, e.g. {last[:5]}")
        took = now() - back
        self.figures["partition_heal_s"] = round(took, 1)
        log(f"  healed {took:.1f} s after the reconnection")

    def search(self, node, word, index=None):
        args = ["p2pshare", "search", word, "--json"]
        if index:
            args += ["--index", index]
        out = self.exec(node, *args, check=False)
        try:
            return sorted((r["name"], r["id"], r["holders"]) for r in json.loads(out)["results"])
        except (ValueError, KeyError):
            return None

    def check_index(self):
        before = self.search(self.index, "shared", "127.0.0.1:1024")
        if not before or len(before) != 5:
            raise Failure(f"the index lists {before}, not the 5 shared-N.txt")
        blob = self.search(self.index, "blob", "127.0.0.1:1024")
        old = self.index.cid
        self.dc("stop", "-t", "5", "index")
        self.dc("rm", "-f", "index")
        self.dc("up", "-d", "--no-deps", "index")
        new = self.containers("index")[0]
        if new.cid == old:
            raise Failure("the index container was not replaced")
        # The first answer of the new container: it reads its database at start.
        first = wait_for(
            "the new index answers",
            30,
            lambda: self.search(new, "shared", "127.0.0.1:1024"),
            every=0.1,
        )
        if first != before:
            raise Failure(f"after the restart: {first}, before: {before}")
        if self.search(new, "blob", "127.0.0.1:1024") != blob:
            raise Failure("blob.bin changed across the restart")
        self.index = self.fill([new])[0]

    def check_restart(self):
        a = self.peers[2]  # shares blob.bin (48 MiB)
        before = self.status(a)
        since = run(["date", "-u", "+%Y-%m-%dT%H:%M:%S"]).strip()
        run(["docker", "restart", "-t", "5", a.cid])
        self.inspect(a)
        after = wait_for(f"{a} answers again", 30, lambda: self.status(a))
        if after["id"] != before["id"]:
            raise Failure(f"id {after['id']} after the restart, {before['id']} before")
        wait_for(
            "the restarted peer took its hashes from its cache",
            30,
            lambda: "unchanged since last run (hash cache)" in self.logs(a, since),
        )

    def check_seedless(self):
        self.dc("stop", "-t", "5", "seed1", "seed2", "seed3")
        old = {p.cid for p in self.peers}
        more = len(self.peers) + 5
        self.dc("up", "-d", "--no-deps", "--no-recreate", "--scale", f"peer={more}", "peer", timeout=300)
        new = [p for p in self.containers("peer") if p.cid not in old]
        if len(new) != 5:
            raise Failure(f"{len(new)} new peers, not 5")
        self.fill(new)
        everyone = self.peers + new
        ids = {p.id for p in everyone}

        def joined():
            for p in new:
                st = self.status(p)
                held = self.members(p)
                if not st or st["neighbours"] < 1 or not held:
                    return False
                if sum(1 for i, s in held.items() if i in ids and s == "alive") < len(everyone) // 2:
                    return False
            return True

        wait_for("the new peers joined through the others", 45, joined, every=1)
        text = f"seedless {random.randrange(1 << 32):08x}"
        self.exec(new[0], "p2pshare", "say", text, "--peer", "127.0.0.1:1025")
        wait_for(
            "every peer printed the new peer's broadcast",
            30,
            lambda: all(f": {text}" in self.logs(p) for p in everyone),
            every=1,
        )
        self.peers = everyone

    # ----- running -----

    def run(self, only):
        try:
            for name in CHECKS:
                if only and name not in only and name != "join":
                    continue
                started = now()
                try:
                    getattr(self, f"check_{name}")()
                except Failure as e:
                    self.results.append((name, False, now() - started, str(e)))
                    log(f"FAIL {name} ({now() - started:.1f} s): {e}")
                    if name == "join":
                        break  # nothing else can run
                    continue
                except subprocess.TimeoutExpired as e:
                    self.results.append((name, False, now() - started, f"timed out: {e}"))
                    log(f"FAIL {name}: timed out: {e}")
                    break
                self.results.append((name, True, now() - started, ""))
                log(f"PASS {name} ({now() - started:.1f} s)")
        finally:
            if any(not ok for _, ok, _, _ in self.results):
                for node in getattr(self, "seeds", [])[:1] + getattr(self, "peers", [])[:2]:
                    log(f"--- last lines of {node} ---\n" + "\n".join(self.logs(node).splitlines()[-15:]))
            self.pool.shutdown(wait=False)
            self.cleanup()
        passed = sum(1 for _, ok, _, _ in self.results if ok)
        failed = len(self.results) - passed
        log(f"figures: {json.dumps(self.figures)}")
        log(f"docker: {passed} passed, {failed} failed")
        return failed == 0


def stop_on_signals():
    """SIGTERM and SIGHUP end the run the way Ctrl-C does, through the `finally`
    that removes the project."""

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--peers", type=int, default=50)
    ap.add_argument("--only", default="", help="comma-separated checks (join always runs)")
    ap.add_argument("--keep", action="store_true", help="leave the project running (debugging)")
    ap.add_argument("--project", help="the compose project's name (default: made up, unique)")
    a = ap.parse_args()
    only = [c for c in a.only.split(",") if c]
    unknown = [c for c in only if c not in CHECKS]
    if unknown:
        ap.error(f"unknown checks {unknown}; the checks are {', '.join(CHECKS)}")
    stop_on_signals()
    try:
        ok = Suite(a.image, a.peers, a.keep, a.project).run(only)
    except Failure as e:
        log(f"docker suite: {e}")
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
