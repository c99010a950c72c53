"""DNS over TCP connections held open, run in a device's namespace; prints
JSON. Exercises how lopower bounds them (control/dns/service.cc).

    python3 dns_tcp_hold.py idle SERVER          # one silent connection: how long until lopower closes it
    python3 dns_tcp_hold.py crowd SERVER N NAME K  # N silent connections, then a query on a new one;
                                                   # waits (20 s at most) for K of the N to be closed
"""

import json
import select
import socket
import struct
import sys
import time

from dns_query import parse, question


def connect(server: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((server, 53))
    return s


def closed_by_server(s: socket.socket) -> bool:
    readable, _, _ = select.select([s], [], [], 0)
    if not readable:
        return False
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def idle(server: str) -> dict:
    s, start = connect(server), time.monotonic()
    s.settimeout(60)
    try:
        got = s.recv(1)
    except ConnectionResetError:
        got = b""
    return {"closed": got == b"", "seconds": round(time.monotonic() - start, 1)}


def crowd(server: str, n: int, name: str, expected_closes: int) -> dict:
    held = [connect(server) for _ in range(n)]
    s = connect(server)
    q = question(name, 1, 0x4242)
    s.sendall(struct.pack("!H", len(q)) + q)
    size = struct.unpack("!H", s.recv(2))[0]
    answer = b""
    while len(answer) < size:
        answer += s.recv(size - len(answer))
    # The server made room before it read the query; its FINs for the held
    # connections travel through the tunnel beside the answer: wait for them.
    closed, deadline = set(), time.monotonic() + 20
    while len(closed) < expected_closes and time.monotonic() < deadline:
        closed |= {i for i, h in enumerate(held) if i not in closed and closed_by_server(h)}
        select.select([], [], [], 0.05)
    return {"answer": parse(answer), "held_closed": len(closed)}


if __name__ == "__main__":
    mode, server = sys.argv[1], sys.argv[2]
    print(json.dumps(idle(server) if mode == "idle" else crowd(server, int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))))
