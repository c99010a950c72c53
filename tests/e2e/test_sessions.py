"""Sessions in the field (issue 9): the first packets to a peer with no
session are held until the handshake completes, not lost; a tailnet peer
that restarts (SIGTERM, kill -9, ``tailscale down``/``up``) is reached
again in seconds; a device that restarts while a tailnet peer keeps sending
to it gets its stream back -- by its own handshake, or by lopower's when
the device never speaks first.

    dev1 (dual stack), dev4 (ESP32-shaped: IPv4 only, AllowedIPs 0.0.0.0/0,
    PersistentKeepalive 10), dev5 (no keepalive, fixed ListenPort)
        | WireGuard to lopowerd
    lopowerd -- splices onto the tailnet
        | WireGuard with node keys
    ts1, ts2 (tailscaled, userspace networking; services on 127.0.0.1)

Recovery times are printed (``-s`` shows them) and bounded only by the
waits' generous timeouts: speed belongs in benchmarks.
"""

import json
import os
import re
import signal
import time

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import (ECHO_PORT, HTTP_PORT, STREAM_PORT, UDP_PORT, Device, device_handshakes, diagnosis,
                        drop_count, splice_lab, tailnet_handshakes)
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

ONE_MB = 1024 * 1024
DEV5_PORT = 51905
# Long enough to recover within it by any WireGuard rule (15 s + handshake
# retries); a lopower that never renews the session fails it.
RECOVERY_TIMEOUT = 60


def esp32_keepalive(config):
    return re.sub(r"^PersistentKeepalive = .*$", "PersistentKeepalive = 10", config, flags=re.M)


def quiet_device(config):
    """No keepalive and a fixed port: the device never speaks first, and
    lopower's handshake finds it where it was."""
    config = re.sub(r"^PersistentKeepalive = .*\n", "", config, flags=re.M)
    return config.replace("[Interface]\n", f"[Interface]\nListenPort = {DEV5_PORT}\n", 1)


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        devices = [Device("dev1"), Device("dev4", ipv4_only=True, esp32=True, edit=esp32_keepalive),
                   Device("dev5", ipv4_only=True, edit=quiet_device)]
        with splice_lab(topo, ["ts1", "ts2"], devices) as lab:
            (lab.www / "one.bin").write_bytes(os.urandom(ONE_MB))
            yield lab


def has_session_with(d, hostname):
    peer = next((p for p in d.status()["tailnet"]["peers"] if p["hostname"] == hostname), {})
    return "last_handshake_seconds" in peer


def udp_exchange(dev, host, port, payload=b"hello", timeout=5.0):
    """One datagram and its answer (or None): a sensor's request, sent once."""
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.settimeout(float(sys.argv[4]))\n"
            "s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))\n"
            "try:\n    print(s.recvfrom(65535)[0].decode())\nexcept socket.timeout:\n    print('TIMEOUT')\n")
    r = dev.host.run(["python3", "-c", code, host, str(port), payload.decode(), str(timeout)], check=False,
                     timeout=timeout + 10)
    out = r.stdout.strip()
    return None if out == "TIMEOUT" or r.returncode != 0 else out


TCP_CONNECT = """
import json, socket, struct, sys, time
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(20)
start = time.monotonic()
s.connect((sys.argv[1], int(sys.argv[2])))
took = time.monotonic() - start
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
total_retrans = struct.unpack_from("I", info, 100)[0]
s.sendall(b"ping")
echoed = s.recv(16)
print(json.dumps({"connect_s": took, "syn_retransmits": total_retrans, "echoed": echoed.decode()}))
"""


def test_a_single_udp_datagram_to_a_peer_with_no_session_gets_its_answer(lab):
    ts1, dev4, d = lab.peers["ts1"], lab.devices["dev4"], lab.lopowerd
    assert not has_session_with(d, "ts1"), "the test needs a peer lopower has no session with yet"
    staged = tailnet_handshakes(d).get("packets_staged", 0)
    answer = udp_exchange(dev4, ts1.ip(4), UDP_PORT, b"first-datagram", timeout=10)
    assert answer == "first-datagram", diagnosis(d)
    hs = tailnet_handshakes(d)
    assert hs["packets_staged"] >= staged + 1 and hs["staged_sent"] >= 1, hs
    assert drop_count(d, "wg_staged_gave_up") == 0 and drop_count(d, "wg_staged_overflow") == 0, diagnosis(d)


def test_the_first_tcp_connect_to_a_fresh_peer_is_not_retransmitted(lab):
    ts2, dev1, d = lab.peers["ts2"], lab.devices["dev1"], lab.lopowerd
    assert not has_session_with(d, "ts2"), "the test needs a peer lopower has no session with yet"
    before = tailnet_handshakes(d)
    r = dev1.host.run(["python3", "-c", TCP_CONNECT, ts2.ip(6), str(ECHO_PORT)], check=False, timeout=40)
    assert r.returncode == 0, r.stderr + diagnosis(d)
    got = json.loads(r.stdout)
    print(f"first TCP connect through a new session: {got['connect_s'] * 1000:.1f} ms, "
          f"{got['syn_retransmits']} retransmission(s)")
    assert got["echoed"] == "ping"
    after = tailnet_handshakes(d)
    # The SYN waited for the session instead of being dropped: the kernel's
    # one-second SYN retransmission is not what got it through.
    assert after["packets_staged"] > before["packets_staged"], after
    assert after["staged_sent"] > before["staged_sent"], after
    assert drop_count(d, "wg_staged_gave_up") == 0, diagnosis(d)


def wait_pings_through(dev, ip, what):
    start = time.monotonic()
    wait_until(lambda: dev.ping(ip, count=1, wait=1), RECOVERY_TIMEOUT, what)
    took = time.monotonic() - start
    print(f"{what}: {took:.1f} s")
    return took


def fetch_one_mb(dev, ts, d):
    out = dev.host.run(["curl", "-sS", "-m", "60", "-o", "/dev/null", "-w", "%{size_download}",
                        f"http://{ts.ip(4)}:{HTTP_PORT}/one.bin"], check=False, timeout=90)
    assert out.returncode == 0 and out.stdout == str(ONE_MB), out.stdout + out.stderr + diagnosis(d)


@pytest.mark.parametrize("how", ["sigterm", "sigkill", "down-up"])
def test_a_restarted_tailnet_peer_is_reached_again(lab, how):
    ts1, dev4, d = lab.peers["ts1"], lab.devices["dev4"], lab.lopowerd
    ip = ts1.ip(4)
    assert dev4.ping(ip, count=2), "a session before the restart"
    before = tailnet_handshakes(d)
    # The device keeps pinging all along, as a sensor would.
    pinger = dev4.host.popen(["ping", "-i", "0.2", "-w", str(RECOVERY_TIMEOUT + 30), ip])
    try:
        if how == "down-up":
            ts1.down()
            wait_until(lambda: ts1.status().get("BackendState") != "Running", 20, "ts1 down")
            ts1.up(lab.login_server, lab.authkey(), hostname="ts1")
        else:
            ts1.stop(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
            ts1.start()
            ts1.wait_running(60)
        took = wait_pings_through(dev4, ip, f"pings through after ts1's {how}")
    finally:
        pinger.kill()
        pinger.wait()
    after = tailnet_handshakes(d)
    assert after["handshakes_completed"] > before["handshakes_completed"], after
    # What renewed it: the peer's new disco key or its return online (at
    # once), or the unanswered-data rule (15 s).
    renewed = (after["peer_restarts"] - before["peer_restarts"]) + (
        after["unanswered_handshakes"] - before["unanswered_handshakes"])
    assert renewed >= 1, after
    print(f"{how}: recovered in {took:.1f} s; restarts followed {after['peer_restarts'] - before['peer_restarts']}, "
          f"unanswered-data handshakes {after['unanswered_handshakes'] - before['unanswered_handshakes']}")
    # A transfer started after the restart completes.
    fetch_one_mb(dev4, ts1, d)


def stream_receiver(dev, ip, seconds):
    """A device app that asks ts1 for a stream and logs what it receives
    (one JSON line per datagram: its number and when)."""
    code = ("import json,socket,sys,time\n"
            "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 0))\n"
            "s.settimeout(1)\n"
            "s.sendto(b'hello', (sys.argv[1], int(sys.argv[2])))\n"
            "end=time.time()+float(sys.argv[3])\n"
            "while time.time()<end:\n"
            "    try:\n"
            "        data,_=s.recvfrom(100)\n"
            "    except socket.timeout:\n"
            "        continue\n"
            "    print(json.dumps({'n': int(data), 't': time.time()}), flush=True)\n")
    log = dev.host.topo.tmpdir / f"{dev.host.name}-stream-{time.monotonic_ns()}.log"
    proc = dev.host.popen(["python3", "-c", code, ip, str(STREAM_PORT), str(seconds)], log=str(log))
    return proc, log


def received_after(log, t):
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    return [x for x in lines if x["t"] > t]


@pytest.mark.parametrize("name", ["dev4", "dev5"])
def test_a_restarted_device_gets_the_peer_stream_back(lab, name):
    """dev4 (keepalive 10) handshakes again by itself on start; dev5 (no
    keepalive, never speaks first) is reached by lopower's handshake when
    the stream it sends goes unanswered."""
    ts1, dev, d = lab.peers["ts1"], lab.devices[name], lab.lopowerd
    before = device_handshakes(d)
    proc, log = stream_receiver(dev, ts1.ip(4), RECOVERY_TIMEOUT + 40)
    try:
        wait_until(lambda: received_after(log, 0), 20, f"{name}: the stream to start")
        dev.down()
        restarted_at = time.time()
        dev.up()
        wait_until(lambda: received_after(log, restarted_at), RECOVERY_TIMEOUT,
                   f"{name}: the stream back after the restart" + diagnosis(d))
        took = received_after(log, restarted_at)[0]["t"] - restarted_at
        print(f"{name} restarted: stream back after {took:.1f} s")
    finally:
        proc.kill()
        proc.wait()
    after = device_handshakes(d)
    assert after["handshakes_completed"] > before["handshakes_completed"], after
    if name == "dev5":
        # Only lopower could have started it: the device never speaks first.
        assert after["unanswered_handshakes"] > before["unanswered_handshakes"], after
        assert after["initiations_sent"] > before["initiations_sent"], after
