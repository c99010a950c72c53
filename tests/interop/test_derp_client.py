"""lopower's DERP client (control/tailnet/derp) and STUN codec
(control/tailnet/stun) against the pinned derper (tailscale 1.98), plain
HTTP on loopback.

``derp_check`` (tests/tools/derp_check.cc) does the work with the C++ code
under test and reports in JSON: two clients with fresh node keys exchange a
packet each way through derper, a Ping gets its Pong, and a disco-looking
packet to an absent key brings PeerGone(NotHere). Its ``stun`` mode sends a
binding request built by our builder to derper's STUN port and reads the
answer with our parser; ``stun-request`` prints the builder's bytes, which
this test sends from its own socket and decodes by hand (so our parser is
checked against an independent reading too).
"""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "net"))

from headscale import free_port  # noqa: E402
from lopower_net import wait_until  # noqa: E402

SOURCE_DIR = Path(os.environ.get("LOPOWER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("LOPOWER_BUILD_DIR", SOURCE_DIR / "build"))
DERP_CHECK = BUILD_DIR / "tests" / "derp_check"
CACHE = Path(os.environ.get("LOPOWER_CACHE", Path.home() / ".cache" / "lopower"))
DERPER = Path(os.environ.get("DERPER", CACHE / "bin" / "derper"))


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Derper:
    """derper on 127.0.0.1 with fresh ports; plain HTTP (the port is not 443)."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.stun_port = free_port(socket.SOCK_DGRAM)
        self.config = tmp / "derper.json"
        self.log_path = tmp / "derper.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(DERPER), "-a", f"127.0.0.1:{self.port}", "-c", str(self.config),
             "-http-port", "-1", "-stun-port", str(self.stun_port)],
            stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or _accepts(self.port), timeout=15,
                   what="derper to listen")
        assert self.proc.poll() is None, f"derper exited: {self.log_tail()}"

    def private_key_hex(self) -> str:
        # derper.json (written by derper): {"PrivateKey": "privkey:<hex>"}.
        return json.loads(self.config.read_text())["PrivateKey"].removeprefix("privkey:")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def derper():
    assert DERPER.exists(), f"{DERPER} is missing (tools/setup fetches the pinned derper)"
    assert DERP_CHECK.exists(), f"{DERP_CHECK} is missing: build the tree first"
    with tempfile.TemporaryDirectory(prefix="lopower-derper-") as tmp:
        d = Derper(Path(tmp))
        try:
            yield d
        finally:
            d.close()


def run_check(*args: str, timeout: float = 30) -> tuple[int, dict]:
    r = subprocess.run([str(DERP_CHECK), *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode in (0, 1), f"derp_check crashed ({r.returncode}): {r.stdout}\n{r.stderr}"
    # Nothing on stderr: in a sanitizer build a report lands there.
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])


def test_two_clients_packets_ping_and_peer_gone(derper):
    rc, report = run_check("derp", "127.0.0.1", str(derper.port), "10")
    assert report["ok"], (report, derper.log_tail())
    assert rc == 0
    a, b = report["A"], report["B"]
    assert a["ready"] and b["ready"]
    assert a["closed"] is None and b["closed"] is None
    # Each got the other's packet with the other's node key as source.
    assert a["received_from_other"] and b["received_from_other"]
    assert a["unexpected_packets"] == [] and b["unexpected_packets"] == []
    assert a["node_key"] != b["node_key"]
    # One server, one key, seen the same by both clients.
    assert a["server_key"] == b["server_key"] and a["server_key"] != "0" * 64
    assert isinstance(report["ping_rtt_us"], int) and 0 <= report["ping_rtt_us"] < 5_000_000
    assert report["peer_gone"] == "not_here"
    assert a["stats"]["pongs_received"] >= 1
    assert a["stats"]["peer_gone"] >= 1
    assert b["stats"]["packets_received"] >= 1 and a["stats"]["packets_received"] >= 1
    for side in (a, b):
        s = side["stats"]
        assert s["send_refused_not_ready"] == 0 and s["send_refused_queue_full"] == 0
        assert s["unknown_frames"] == 0


def test_server_key_matches_derper_config(derper):
    # The key in the ServerKey frame is the public half of derper.json's
    # private key (X25519 computed here with python3-cryptography).
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    _, report = run_check("derp", "127.0.0.1", str(derper.port), "10")
    private_hex = derper.private_key_hex()
    public = X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex)).public_key()
    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex() == report["A"]["server_key"]


class OneReplyServer:
    """Accepts connections on a free port and answers each with ``reply``."""

    def __init__(self, reply: bytes):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                    time.sleep(0.2)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_derper_refuses_an_upgrade_without_the_header(derper):
    # What a client sees that forgets "Upgrade: DERP": 426, not a switch.
    with socket.create_connection(("127.0.0.1", derper.port), timeout=5) as s:
        s.sendall(b"GET /derp HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 426")


def test_a_non_101_reply_closes_with_its_status():
    server = OneReplyServer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here\n")
    try:
        rc, report = run_check("derp", "127.0.0.1", str(server.port), "5")
    finally:
        server.close()
    assert rc == 1 and not report["ok"]
    assert report["A"]["closed"] == "upgrade: HTTP 404"
    assert report["A"]["ready"] is False


def _stun_reply(request: bytes, stun_port: int) -> tuple[bytes, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
        s.sendto(request, ("127.0.0.1", stun_port))
        reply, _ = s.recvfrom(1500)
        return reply, s.getsockname()[1]


def test_stun_request_built_and_parsed_by_us(derper):
    rc, report = run_check("stun", "127.0.0.1", str(derper.stun_port))
    assert report["ok"], (report, derper.log_tail())
    assert rc == 0
    assert report["is_binding_response"] is True
    assert report["txid_matches"] is True
    assert report["mapped_address"] == "127.0.0.1"
    assert report["mapped_port"] == report["local_port"]
    request = bytes.fromhex(report["request"])
    assert len(request) == 40 and request[:4] == bytes.fromhex("00010014")


def test_stun_request_bytes_answered_and_decoded_independently(derper):
    txid = os.urandom(12)
    r = subprocess.run([str(DERP_CHECK), "stun-request", txid.hex()], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    request = bytes.fromhex(r.stdout.strip())
    assert len(request) == 40 and request[8:20] == txid
    # derper answers only a request with SOFTWARE "tailnode" and a valid
    # FINGERPRINT: an answer at all shows our bytes are right.
    reply, local_port = _stun_reply(request, derper.stun_port)
    msg_type, length, cookie = struct.unpack(">HHI", reply[:8])
    assert msg_type == 0x0101 and cookie == 0x2112A442 and reply[8:20] == txid
    attrs, found = reply[20:20 + length], None
    while len(attrs) >= 4:
        atype, alen = struct.unpack(">HH", attrs[:4])
        value = attrs[4:4 + alen]
        if atype in (0x0020, 0x8020) and value[1] == 1:
            port = struct.unpack(">H", value[2:4])[0] ^ 0x2112
            addr = bytes(x ^ y for x, y in zip(value[4:8], struct.pack(">I", 0x2112A442)))
            found = (socket.inet_ntoa(addr), port)
        attrs = attrs[4 + ((alen + 3) & ~3):]
    assert found == ("127.0.0.1", local_port)


def test_stun_request_with_a_broken_fingerprint_gets_no_answer(derper):
    # The control experiment for the test above: the same bytes with one
    # bit of the FINGERPRINT flipped are ignored.
    r = subprocess.run([str(DERP_CHECK), "stun-request", "00" * 12], capture_output=True, text=True, timeout=10)
    request = bytearray(bytes.fromhex(r.stdout.strip()))
    request[-1] ^= 1
    with pytest.raises(socket.timeout):
        _stun_reply(bytes(request), derper.stun_port)


def test_derp_check_reports_a_dead_server():
    port = free_port()  # nothing listens
    t0 = time.monotonic()
    rc, report = run_check("derp", "127.0.0.1", str(port), "5")
    assert rc == 1 and not report["ok"]
    assert "Connection refused" in (report["A"]["closed"] or "") or "Connection refused" in (report["B"]["closed"] or "")
    assert time.monotonic() - t0 < 5
