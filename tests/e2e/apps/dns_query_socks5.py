"""One DNS question over UDP through a SOCKS5 proxy's UDP ASSOCIATE (RFC
1928 section 7), run in a tailscaled peer's namespace: with
``--tun=userspace-networking`` the kernel there has no route to tailnet
addresses, and tailscaled's ``--socks5-server`` carries the datagram through
its netstack over the tailnet. Prints the answer as dns_query.py does,
with "questions_sent": like a stub resolver, the question is sent again
(same ID) when no answer came within the timeout, up to ATTEMPTS times.

    python3 dns_query_socks5.py PROXY_PORT SERVER NAME A|AAAA [TIMEOUT_SECONDS [ATTEMPTS]]
"""

import json
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dns_query import TYPES, ask, parse, question  # noqa: E402


def associate(proxy_port: int) -> tuple[socket.socket, tuple[str, int]]:
    """The TCP control connection (the association lives as long as it does)
    and the proxy's UDP relay address."""
    ctl = socket.create_connection(("127.0.0.1", proxy_port), timeout=5)
    ctl.sendall(b"\x05\x01\x00")  # version 5, one method: no authentication
    if ctl.recv(2) != b"\x05\x00":
        raise SystemExit("the proxy wants authentication")
    ctl.sendall(b"\x05\x03\x00\x01" + bytes(4) + bytes(2))  # UDP ASSOCIATE, from 0.0.0.0:0
    reply = ctl.recv(262)
    if len(reply) < 10 or reply[1] != 0 or reply[3] != 1:
        raise SystemExit(f"UDP ASSOCIATE refused: {reply!r}")
    relay = socket.inet_ntoa(reply[4:8]), struct.unpack("!H", reply[8:10])[0]
    if relay[0] == "0.0.0.0":
        relay = ("127.0.0.1", relay[1])
    return ctl, relay


def main() -> None:
    proxy_port, server, name, qtype = int(sys.argv[1]), sys.argv[2], sys.argv[3], TYPES[sys.argv[4]]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 3
    attempts = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    qid = int.from_bytes(os.urandom(2), "big")
    ctl, relay = associate(proxy_port)
    with ctl, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        header = b"\x00\x00\x00\x01" + socket.inet_aton(server) + struct.pack("!H", 53)  # RSV, FRAG 0, IPv4
        m, sent = ask(s, header + question(name, qtype, qid), relay, qid, timeout, attempts,
                      unwrap=lambda m: m[10:])  # the same header, the sender's address
    print(json.dumps(parse(m) | {"questions_sent": sent}))


if __name__ == "__main__":
    main()
