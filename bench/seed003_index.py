#!/usr/bin/env python3
"""The seed-003 index server, rebuilt from its design document, as a baseline.

The document calls the server threaded, but its program accepts, answers and closes
in one thread: per connection one recv(1024) of `get{filename}` or
`set{filename|host|port}` (the classic `get|name` and `set|name|host|peerid|port`
strings), a dictionary from file name to a set of `host|peerid|port` entries in
memory, a random holder for `get`, `Successfully Updated` for `set`, then close. This
file reproduces that (not its code) so that bench/index.sh can measure the classic
dialect against it in the same run.

Usage: seed003_index.py PORT_FILE   (binds 127.0.0.1:0 and writes the port there)
"""
import random
import socket
import sys

index = {}


def handle(conn):
    try:
        msg = conn.recv(1024).decode()
        parts = msg.split("|")
        if parts[0] == "get" and len(parts) == 2:
            holders = list(index.get(parts[1], ()))
            reply = random.choice(holders) if holders else "notfound"
        elif parts[0] == "set" and len(parts) == 5:
            index.setdefault(parts[1], set()).add("|".join(parts[2:]))
            reply = "Successfully Updated"
        else:
            reply = "notfound"
        conn.sendall(reply.encode())
    finally:
        conn.close()


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    with open(sys.argv[1], "w") as f:
        f.write(str(srv.getsockname()[1]))
    while True:
        conn, _ = srv.accept()
        handle(conn)


if __name__ == "__main__":
    main()
