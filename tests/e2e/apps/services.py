"""Small TCP/UDP services for the splice tests, run on a tailnet peer
(inside its namespace, bound to 127.0.0.1: tailscaled's userspace
networking hands connections to its tailnet address to the same port
there).

    services.py sink PORT         TCP: reads to EOF, answers the sha256 hex
    services.py echo PORT         TCP: echoes each connection until EOF (threads)
    services.py udp-echo PORT     UDP: echoes each datagram
"""

import hashlib
import socket
import socketserver
import sys
import threading


class Sink(socketserver.StreamRequestHandler):
    def handle(self):
        h = hashlib.sha256()
        while chunk := self.rfile.read1(65536):
            h.update(chunk)
        self.wfile.write(h.hexdigest().encode())


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


def udp_echo(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "udp-echo":
        udp_echo(port)
    handler = {"sink": Sink, "echo": Echo}[kind]
    with Server(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
