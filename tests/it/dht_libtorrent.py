#!/usr/bin/env python3
"""libtorrent nodes in a p2pshare private DHT, for tests/it/dht_interop.rs.

Runs two libtorrent sessions (Debian's python3-libtorrent), "a" and "b", whose DHT
nodes listen on 127.0.0.1 only, prints `ready A_PORT B_PORT` (their UDP ports), then
reads one JSON command a line on stdin and answers each with one JSON line on stdout:

  {"op": "add-node", "addr": "127.0.0.1:PORT"}     both sessions learn a node
  {"op": "get-item", "on": "b", "public": HEX, "salt": TEXT}
      BEP 44 mutable item, the first verified answer: {"ok": true, "value_hex": HEX,
      "seq": N}
  {"op": "put-item", "on": "b", "seed": HEX, "public": HEX, "salt": TEXT, "value": TEXT}
      starts putting VALUE (a bencoded string) signed by the Ed25519 key whose
      32-byte seed is SEED, numbered after the newest version found: {"ok": true}
  {"op": "get-peers", "on": "b", "info_hash": HEX}
      BEP 5 get_peers: {"ok": true, "peers": [["127.0.0.1", PORT], ...]}

Each command may carry "timeout" (seconds, default 20): past it the answer says
{"ok": false, ...}. End of input ends the script.

Nothing leaves the loopback: no public bootstrap node, no local service discovery, no
UPnP or NAT-PMP. `-v` writes every alert to stderr.
"""

import hashlib
import json
import sys
import time

import libtorrent as lt

VERBOSE = "-v" in sys.argv[1:]


def session():
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        # No public bootstrap node (the default is one): nodes come from add-node.
        "dht_bootstrap_nodes": "",
        # Every node of the test network shares 127.0.0.1: libtorrent's defaults keep
        # one node per address in its routing table and its searches, ignore private
        # and loopback addresses, and ban an address that sends more than 5 packets
        # a second.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 1_000_000,
        "dht_upload_rate_limit": 10_000_000,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.all_categories,
    }
    return lt.session(settings)


def dht_port(ses, deadline):
    """The UDP port the session's DHT listens on (its listen port: TCP and uTP/DHT
    share the number)."""
    while time.monotonic() < deadline:
        for a in pop(ses, 50):
            if isinstance(a, lt.listen_succeeded_alert) and "uTP" in a.message():
                return a.port
    raise SystemExit("libtorrent did not start listening")


def pop(ses, wait_ms):
    ses.wait_for_alert(wait_ms)
    out = ses.pop_alerts()
    if VERBOSE:
        for a in out:
            print(type(a).__name__, a.message(), file=sys.stderr, flush=True)
    return out


def alerts(ses, deadline):
    """Yields the session's alerts until the deadline."""
    while time.monotonic() < deadline:
        yield from pop(ses, 100)


def secret_key(seed):
    """The 64-byte secret key libtorrent signs with, as its ed25519_create_keypair
    makes it: SHA-512 of the 32-byte seed, the scalar half clamped."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    return bytes(h)


def get_item(ses, cmd, deadline):
    ses.dht_get_mutable_item(bytes.fromhex(cmd["public"]), cmd["salt"].encode())
    for a in alerts(ses, deadline):
        if not isinstance(a, lt.dht_mutable_item_alert):
            continue
        # The binding gives the item as a dict (key, value, signature, seq, salt,
        # authoritative; an empty value while nothing was found) whose signature
        # libtorrent has checked. The first answer will do: the lookup turns
        # authoritative only once every node asked has answered or timed out.
        value = a.item.get("value") if isinstance(a.item, dict) else None
        if value:
            return {"ok": True, "value_hex": value.hex(), "seq": a.item["seq"]}
    return {"ok": False}


def put_item(ses, cmd):
    ses.dht_put_mutable_item(
        secret_key(bytes.fromhex(cmd["seed"])),
        bytes.fromhex(cmd["public"]),
        cmd["value"].encode(),
        cmd["salt"].encode(),
    )
    # libtorrent first looks the item up (to number the new version after it), then
    # signs and stores: the caller reads until the item is there.
    return {"ok": True}


def get_peers(ses, cmd, deadline):
    info_hash = lt.sha1_hash(bytes.fromhex(cmd["info_hash"]))
    ses.dht_get_peers(info_hash)
    found = []
    for a in alerts(ses, deadline):
        if isinstance(a, lt.dht_get_peers_reply_alert) and a.info_hash == info_hash:
            for ip, port in a.peers():
                if [ip, port] not in found:
                    found.append([ip, port])
            if found:
                return {"ok": True, "peers": found}
    return {"ok": False, "peers": found}


def main():
    start = time.monotonic() + 20
    sessions = {"a": session(), "b": session()}
    ports = {name: dht_port(s, start) for name, s in sessions.items()}
    for name, s in sessions.items():
        other = "b" if name == "a" else "a"
        s.add_dht_node(("127.0.0.1", ports[other]))
    print(f"ready {ports['a']} {ports['b']}", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        deadline = time.monotonic() + float(cmd.get("timeout", 20))
        ses = sessions[cmd.get("on", "b")]
        op = cmd["op"]
        if op == "add-node":
            host, port = cmd["addr"].rsplit(":", 1)
            for s in sessions.values():
                s.add_dht_node((host, int(port)))
            out = {"ok": True}
        elif op == "get-item":
            out = get_item(ses, cmd, deadline)
        elif op == "put-item":
            out = put_item(ses, cmd)
        elif op == "get-peers":
            out = get_peers(ses, cmd, deadline)
        else:
            out = {"ok": False, "error": f"unknown op {op!r}"}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
