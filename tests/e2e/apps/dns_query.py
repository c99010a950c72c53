"""One DNS question over UDP, run in a device's namespace: prints the
answer as JSON ({"rcode", "aa", "answers": [addresses of A/AAAA records],
"authority": count, "questions_sent"}). Written out by hand (RFC 1035 4.1)
so the test needs no DNS library and sees exactly what lopower sent. Like a
stub resolver, the question is sent again (same ID) when no answer came
within the timeout, up to ATTEMPTS times (default once).

    python3 dns_query.py SERVER NAME A|AAAA [TIMEOUT_SECONDS [ATTEMPTS]]
"""

import json
import os
import socket
import struct
import sys
import time
from typing import Callable

TYPES = {"A": 1, "AAAA": 28}


def question(name: str, qtype: int, qid: int) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split("."))
    return struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!2H", qtype, 1)


def skip_name(m: bytes, at: int) -> int:
    while m[at] != 0:
        if m[at] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return at + 2
        at += 1 + m[at]
    return at + 1


def parse(m: bytes) -> dict:
    _, flags, qd, an, ns, _ = struct.unpack("!6H", m[:12])
    at = 12
    for _ in range(qd):
        at = skip_name(m, at) + 4
    answers = []
    for _ in range(an):
        at = skip_name(m, at)
        rtype, _, _, size = struct.unpack("!HHIH", m[at:at + 10])
        rdata = m[at + 10:at + 10 + size]
        if rtype in (1, 28):
            answers.append(socket.inet_ntop(socket.AF_INET if rtype == 1 else socket.AF_INET6, rdata))
        at += 10 + size
    return {"rcode": flags & 0xF, "aa": bool(flags & 0x0400), "answers": answers, "authority": ns}


def ask(s: socket.socket, datagram: bytes, to, qid: int, timeout: float, attempts: int,
        unwrap: Callable[[bytes], bytes] = lambda m: m) -> tuple[bytes, int]:
    """The answer to ``qid`` (each datagram received passed through
    ``unwrap`` first) and how many times ``datagram`` was sent to ``to``."""
    for sent in range(1, attempts + 1):
        s.sendto(datagram, to)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                m, _ = s.recvfrom(4096)
            except socket.timeout:
                break
            m = unwrap(m)
            if len(m) >= 12 and struct.unpack("!H", m[:2])[0] == qid:
                return m, sent
    raise SystemExit(f"no answer to the question sent {attempts} times")


def main() -> None:
    server, name, qtype = sys.argv[1], sys.argv[2], TYPES[sys.argv[3]]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 3
    attempts = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        m, sent = ask(s, question(name, qtype, qid), (server, 53), qid, timeout, attempts)
    print(json.dumps(parse(m) | {"questions_sent": sent}))


if __name__ == "__main__":
    main()
