"""A fragment flood, run on a WireGuard device (in its namespace): first
fragments of IPv4 datagrams that never complete, each with its own
identification, sent through the tunnel with a raw socket (the kernel
routes them into the WireGuard interface like any packet to DST).

    fragment_flood.py SRC DST RATE SECONDS

SRC is the device's tunnel address (lopower checks it), RATE packets per
second, for at most SECONDS (or until SIGTERM). Prints one JSON line with
how many it sent.
"""

import json
import signal
import socket
import struct
import sys
import time

stop = False


def on_term(*_):
    global stop
    stop = True


def first_fragment(src: bytes, dst: bytes, ident: int) -> bytes:
    payload = struct.pack(">HHHH", 40000, 9999, 8 + 4096, 0) + bytes(1016)  # a UDP header, then never the rest
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x2000, 64, 17, 0, src, dst)  # MF
    return header + payload  # the kernel fills in the header checksum


def main() -> None:
    src, dst, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    signal.signal(signal.SIGTERM, on_term)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    src_b, dst_b = socket.inet_aton(src), socket.inet_aton(dst)
    start = time.monotonic()
    sent = 0
    while not stop and time.monotonic() - start < seconds:
        # Paced: `sent` packets are due `sent / rate` seconds in.
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(min(ahead, 0.01))
            continue
        try:
            s.sendto(first_fragment(src_b, dst_b, sent & 0xffff), (dst, 0))
            sent += 1
        except OSError:  # the interface's queue is full for a moment
            time.sleep(0.001)
    print(json.dumps({"sent": sent}), flush=True)


if __name__ == "__main__":
    main()
