"""Small TCP/UDP services for the splice tests, run on a tailnet peer
(inside its namespace, bound to 127.0.0.1: tailscaled's userspace
networking hands connections to its tailnet address to the same port
there).

    services.py sink PORT         TCP: reads to EOF, answers the sha256 hex
    services.py echo PORT         TCP: echoes each connection until EOF (threads)
    services.py udp-echo PORT     UDP: echoes each datagram
    services.py udp-stream PORT   UDP: a datagram from a client starts a stream back to it,
                                  five datagrams a second (numbered) for two minutes
"""

import hashlib
import socket
import socketserver
import sys
import threading
import time


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


def udp_stream(port: int) -> None:
    """Streams to each client that says hello: a tailnet peer that keeps
    sending to a device (bounded: two minutes per client)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    lock = threading.Lock()

    def stream(peer) -> None:
        for i in range(600):
            with lock:
                s.sendto(f"{i}".encode(), peer)
            time.sleep(0.2)

    while True:
        _, peer = s.recvfrom(65535)
        threading.Thread(target=stream, args=(peer,), daemon=True).start()


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "udp-echo":
        udp_echo(port)
    if kind == "udp-stream":
        udp_stream(port)
    handler = {"sink": Sink, "echo": Echo}[kind]
    with Server(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
