"""One DNS question over UDP, run in a device's namespace: prints the
answer as JSON ({"rcode", "aa", "answers": [addresses of A/AAAA records],
"authority": count}). Written out by hand (RFC 1035 4.1) so the test needs
no DNS library and sees exactly what lopower sent.

    python3 dns_query.py SERVER NAME A|AAAA [TIMEOUT_SECONDS]
"""

import json
import os
import socket
import struct
import sys

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


def main() -> None:
    server, name, qtype = sys.argv[1], sys.argv[2], TYPES[sys.argv[3]]
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(float(sys.argv[4]) if len(sys.argv) > 4 else 3)
        s.sendto(question(name, qtype, qid), (server, 53))
        while True:
            m, _ = s.recvfrom(4096)
            if len(m) >= 12 and struct.unpack("!H", m[:2])[0] == qid:
                break
    print(json.dumps(parse(m)))


if __name__ == "__main__":
    main()
