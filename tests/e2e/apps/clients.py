"""Clients for the splice tests, run on a WireGuard device (in its
namespace); each prints one JSON line with what it saw.

    clients.py upload HOST PORT BYTES SEED     sends BYTES of seeded data, prints its sha256 and the answer
    clients.py udp-echo HOST PORT SIZE COUNT   datagrams of SIZE bytes, prints how many came back intact
    clients.py udp-echo-nodf HOST PORT SIZE COUNT   the same, never with DF (lwIP's way): the kernel
                                               sends what fits its MTU whole, fragments the rest (IPv6)
    clients.py many HOST PORT N [SRCPORT]      N concurrent TCP echo round trips, prints how many completed
    clients.py hold HOST PORT N SECONDS        N TCP connections held open SECONDS, then closed
    clients.py spray HOST PORT N               one UDP datagram from each of N source ports (N flows)
"""

import hashlib
import json
import random
import socket
import sys
import time


def family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def upload(host: str, port: int, size: int, seed: int) -> dict:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    return {"sent": hashlib.sha256(data).hexdigest(), "answer": answer.decode()}


def paced_upload(host: str, port: int, size: int, seconds: float) -> dict:
    """upload, spread evenly over ``seconds``: a transfer that is still
    running while the test changes the network under it."""
    data = random.Random(size).randbytes(size)
    chunk = 16 * 1024
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=30) as s:
        for off in range(0, size, chunk):
            s.sendall(data[off:off + chunk])
            ahead = start + seconds * (off + chunk) / size - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while part := s.recv(4096):
            answer += part
    return {"sent": hashlib.sha256(data).hexdigest(), "answer": answer.decode(), "seconds": time.monotonic() - start}


def udp_echo(host: str, port: int, size: int, count: int) -> dict:
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    s.settimeout(2)
    good = 0
    for i in range(count):
        payload = bytes((i + j) % 256 for j in range(size))
        s.sendto(payload, (host, port))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            continue
        good += data == payload
    return {"sent": count, "intact": good}


# <linux/in.h>, <linux/in6.h>: Python's socket module does not name them.
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, PMTUDISC_DONT = 10, 23, 0


def udp_echo_nodf(host: str, port: int, size: int, count: int) -> dict:
    s = socket.socket(family(host), socket.SOCK_DGRAM)
    if family(host) == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_DONT)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTUDISC_DONT)
    s.settimeout(2)
    good = 0
    for i in range(count):
        payload = bytes((i + j) % 256 for j in range(size))
        s.sendto(payload, (host, port))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # a late echo of an earlier datagram is not this one's
            try:
                data, _ = s.recvfrom(65535)
            except socket.timeout:
                break
            if data == payload:
                good += 1
                break
    return {"sent": count, "intact": good}


def many(host: str, port: int, n: int, src_port: int = 0) -> dict:
    socks = []
    for i in range(n):
        s = socket.socket(family(host), socket.SOCK_STREAM)
        s.settimeout(20)
        if src_port:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", src_port))
        s.connect((host, port))
        socks.append(s)
    done = 0
    for i, s in enumerate(socks):
        msg = f"hello {i}\n".encode()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        done += got == msg
    for s in socks:
        s.close()
    return {"opened": len(socks), "completed": done}


def hold(host: str, port: int, n: int, seconds: float) -> dict:
    socks = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
    print(json.dumps({"open": len(socks)}), flush=True)
    time.sleep(seconds)
    for s in socks:
        s.close()
    return {"closed": len(socks)}


def spray(host: str, port: int, n: int) -> dict:
    socks = [socket.socket(family(host), socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.sendto(b"x", (host, port))
        time.sleep(0.001)  # one at a time: a burst of n first packets is not the point
    for s in socks:
        s.close()
    return {"sent": n}


def main() -> None:
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = [int(x) if x.isdigit() else float(x) for x in sys.argv[4:]]
    result = {"upload": upload, "paced-upload": paced_upload, "udp-echo": udp_echo, "udp-echo-nodf": udp_echo_nodf, "many": many, "hold": hold,
              "spray": spray}[cmd](host, port, *rest)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
