"""Lossy links on both sides of lopower: handshakes lost on the way and
data lost under a transfer, as on a device's weak Wi-Fi and a peer's
congested uplink.

- Toward the tailnet peer ts1, two of every three WireGuard initiations
  are dropped (in ts1's namespace, deterministically) and a tenth of all
  other UDP at random: lopower's own handshake to ts1 must retry until
  one gets through, then the spliced flows recover their losses end to
  end.
- Toward the device, the first two handshake responses lopower sends are
  dropped (in the device's namespace) and a twentieth of its UDP at
  random: lopower must answer each fresh initiation the device retries
  with, and the session the device finally gets must carry traffic.

The netem qdisc is not in every kernel (not in this lab's), so the
losses are nftables rules: ``numgen inc`` for the counted drops,
``numgen random`` for the rest.
"""

import hashlib
import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import HTTP_PORT, SINK_PORT, Device, bring_up, diagnosis, run_client, splice_lab, tailnet_handshakes
from tailnet_lab import attach_to_switch
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

ONE_MB = 1024 * 1024
# WireGuard's handshake messages: their type (the UDP payload's first
# byte, @th,64,8) and their UDP length (8 + 148, 8 + 92).
INITIATION, RESPONSE = (1, 156), (2, 100)


def lossy(host, message: tuple[int, int], keep_every: int, random_percent: int) -> None:
    """In ``host``'s namespace, of what it receives: of the WireGuard
    ``message``s, only every ``keep_every``-th passes (the first
    ``keep_every - 1`` are lost); of all other UDP, ``random_percent`` in a
    hundred are lost."""
    kind, length = message
    host.run(["nft", "-f", "-"], input=(
        "table inet lossy {\n"
        "  chain c { type filter hook input priority -300;\n"
        f"    meta l4proto udp udp length {length} @th,64,8 {kind} numgen inc mod {keep_every} != {keep_every - 1} drop\n"
        f"    meta l4proto udp udp length != {length} numgen random mod 100 < {random_percent} drop\n"
        "  }\n}\n"))


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], devices=()) as lab:
            (lab.www / "one.bin").write_bytes(os.urandom(ONE_MB))
            # ts1 receives lopower's initiations: two of three lost.
            lossy(lab.peers["ts1"].host, INITIATION, 3, 10)
            # The device receives lopower's responses: two of three lost.
            host = topo.host("weak")
            attach_to_switch(topo, host, ["198.18.40.60/24"])
            lossy(host, RESPONSE, 3, 5)
            lab.handshakes_before = lab.lopowerd.status()["wireguard"]["handshakes"]
            lab.device = bring_up(lab, host, Device("weak", ipv4_only=True))  # its keepalive starts the handshake
            yield lab


def test_the_device_gets_a_session_through_lost_responses(lab):
    d, before = lab.lopowerd, lab.handshakes_before
    # wireguard-go retries its initiation every 5 s (REKEY_TIMEOUT) while
    # the responses are lost: the third response gets through.
    wait_until(lambda: lab.device.ping("10.90.0.1", count=1, wait=1), 60, "the device's session")
    after = d.status()["wireguard"]["handshakes"]
    # Every initiation the device retried with was answered.
    assert after["responses_sent"] - before["responses_sent"] >= 3, (before, after)
    assert lab.device.ping("10.90.0.1", count=5)


def test_lopowers_own_handshake_retries_through_lost_initiations(lab):
    d, ts1 = lab.lopowerd, lab.peers["ts1"]
    before = tailnet_handshakes(d)
    # The first spliced packet makes lopower handshake with ts1; two of its
    # initiations are lost, the third (5 s apart, with jitter) answers.
    wait_until(lambda: lab.device.ping(ts1.ip(4), count=1, wait=1), 90, "the first spliced ping", interval=1)
    after = tailnet_handshakes(d)
    assert after.get("initiations_sent", 0) - before.get("initiations_sent", 0) >= 3, (before, after)
    assert lab.device.ping(ts1.ip(4), count=5)


def test_transfers_recover_their_losses_across_the_splice(lab):
    d, ts1, dev = lab.lopowerd, lab.peers["ts1"], lab.device
    out = lab.www.parent / "got.bin"
    r = dev.host.run(["curl", "-sS", "-m", "150", "-o", str(out), f"http://{ts1.ip(4)}:{HTTP_PORT}/one.bin"],
                     check=False, timeout=180)
    assert r.returncode == 0, r.stderr + diagnosis(d)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256((lab.www / "one.bin").read_bytes()).digest()
    up = run_client(dev, "upload", ts1.ip(4), SINK_PORT, ONE_MB, 7, timeout=180, d=d)
    assert up["answer"] == up["sent"], up
