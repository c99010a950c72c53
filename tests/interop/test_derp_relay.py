"""lopower reaches tailnet peers through DERP: headscale's embedded relay
(region 999, plain HTTP as the lab's tailscaled use it) on the lab LAN, a
wireguard-go device spliced to a tailscaled peer (tests/net/splice_lab.py),
and nftables in the peer's namespace cutting UDP between it and lopower.

    dev1 --WireGuard--> lopowerd (gw) ==X== UDP ==X== ts1
                            \\                         /
                             `--- DERP (ctl:8080) ---'

With UDP cut, disco and WireGuard both go through the relay; with it back,
disco finds the direct path and traffic moves to it; cut again, lopower
falls back to the relay. STUN (headscale's, on ctl) gives lopower its
endpoint and its home region, which the peers then see.
"""

import hashlib
import json
import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import (HTTP_PORT, SUFFIX, Device, diagnosis, splice_lab, start_paced_upload,
                        tailnet_peer)
from tailnet_lab import GW4, GW6
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

TEN_MB = 10 * 1024 * 1024
REGION = 999


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], [Device("dev1")], derp="embedded") as lab:
            (lab.www / "ten.bin").write_bytes(os.urandom(TEN_MB))
            yield lab


def cut_udp(ts, cut: bool) -> None:
    """nftables in the peer's namespace: no UDP to or from lopower's
    addresses (the DERP relay is TCP, to another host)."""
    ts.host.run(["nft", "delete", "table", "inet", "lpcut"], check=False)
    if not cut:
        return
    rules = (f"table inet lpcut {{\n"
             f"  chain in {{ type filter hook input priority 0;\n"
             f"    ip saddr {GW4} meta l4proto udp drop\n    ip6 saddr {GW6} meta l4proto udp drop\n  }}\n"
             f"  chain out {{ type filter hook output priority 0;\n"
             f"    ip daddr {GW4} meta l4proto udp drop\n    ip6 daddr {GW6} meta l4proto udp drop\n  }}\n}}\n")
    ts.host.run(["nft", "-f", "-"], input=rules)


def path_of(d, host="ts1"):
    p = tailnet_peer(d, host)
    return p.get("path", "") if p else ""


def reach_through_the_relay(d, dev1, ts1, timeout):
    """A spliced ping that only the relay can carry (UDP cut), then ts1's
    path in status is the relay."""
    wait_until(lambda: dev1.ping(ts1.ip(4), count=1, wait=2), timeout, "a spliced ping through DERP")
    wait_until(lambda: path_of(d) == f"derp({REGION})", timeout, "ts1 on the relay")


def test_lopower_has_a_home_region_and_its_endpoint_from_stun(lab):
    d = lab.lopowerd
    nc = wait_until(lambda: (lambda r: r if r.get("home") == REGION and r.get("ipv4") else None)(
        json.loads(d.ctl("netcheck", "--json").stdout)), 40, "a netcheck report with a home region")
    assert nc["udp"] is True, nc
    # No NAT here: STUN sees lopower's own address and port.
    assert nc["ipv4"] == f"{GW4}:41641", nc
    assert f"{REGION}-v4" in nc["latency_ms"], nc
    derp = d.status()["tailnet"]["derp"]
    wait_until(lambda: d.status()["tailnet"]["derp"]["connections"].get(str(REGION), {}).get("connected"), 20,
               "the home region connected")
    assert derp["home"] == REGION
    # Reported to control: the peers see lopower's home region.
    ts1 = lab.peers["ts1"]
    wait_until(lambda: (ts1.peer("lopower") or {}).get("Relay") == "headscale", 30,
               "ts1 seeing lopower's home region (its Relay)")
    assert "Nearest DERP: 999" in d.ctl("netcheck").stdout


def test_peer_reached_through_derp_when_udp_is_cut(lab):
    d, ts1, dev1 = lab.lopowerd, lab.peers["ts1"], lab.devices["dev1"]
    cut_udp(ts1, True)
    try:
        # The first packets find no path: lopower's handshake goes through
        # the relay, and so does everything after it.
        wait_until(lambda: dev1.ping(ts1.ip(4), count=1, wait=2), 30, "a spliced ping through DERP")
        assert path_of(d) == f"derp({REGION})", d.status()["tailnet"]["peers"]
        r = d.ctl("ping", "--c", "1", "ts1", check=False)
        assert r.returncode == 0 and f"via derp({REGION})" in r.stdout, r.stdout + r.stderr
        out = lab.www.parent / "derp-got.bin"
        r = dev1.host.run(["curl", "-sS", "-m", "120", "-o", str(out), f"http://ts1.{SUFFIX}:{HTTP_PORT}/ten.bin"],
                          check=False, timeout=150)
        assert r.returncode == 0, r.stderr + diagnosis(d)
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256((lab.www / "ten.bin").read_bytes()).digest()
        relayed = d.status()["tailnet"]["derp"]["counters"]
        # 10 MB down is some 7 500 packets in; the ACKs going out are fewer.
        assert relayed["packets_received"] > TEN_MB // 1500 and relayed["packets_sent"] > 100, relayed
        assert path_of(d) == f"derp({REGION})"
    finally:
        cut_udp(ts1, False)


def test_path_moves_to_direct_and_back_without_breaking_a_transfer(lab):
    d, ts1, dev1 = lab.lopowerd, lab.peers["ts1"], lab.devices["dev1"]
    cut_udp(ts1, True)
    try:
        reach_through_the_relay(d, dev1, ts1, 30)
        # A steady upload (6 MB over 40 s) runs across both changes of path.
        upload, result = start_paced_upload(dev1, ts1, 6 * 1024 * 1024, 40)
        cut_udp(ts1, False)
        wait_until(lambda: path_of(d).startswith("direct "), 30, "the path upgraded to direct")
        cut_udp(ts1, True)
        wait_until(lambda: path_of(d) == f"derp({REGION})", 40, "the fall back to the relay")
        upload.join(200)
        assert result and result["answer"] == result["sent"], result
        assert dev1.ping(ts1.ip(4), count=3)
    finally:
        cut_udp(ts1, False)
    wait_until(lambda: dev1.ping(ts1.ip(4), count=1, wait=2) and path_of(d).startswith("direct "), 40,
               "direct again once UDP is back")


def test_relay_restarted_mid_transfer(lab):
    d, ts1, dev1 = lab.lopowerd, lab.peers["ts1"], lab.devices["dev1"]
    cut_udp(ts1, True)
    try:
        reach_through_the_relay(d, dev1, ts1, 40)
        connects = d.status()["tailnet"]["derp"]["counters"]["connects"]
        upload, result = start_paced_upload(dev1, ts1, 4 * 1024 * 1024, 20)
        # headscale's relay goes away and comes back (control with it): both
        # ends dial again, and TCP carries the upload over the gap.
        lab.headscale.restart()
        wait_until(lambda: d.status()["tailnet"]["derp"]["counters"]["connects"] > connects and
                   d.status()["tailnet"]["derp"]["connections"].get(str(REGION), {}).get("connected"), 40,
                   "lopower connected to the relay again")
        upload.join(200)
        assert result and result["answer"] == result["sent"], result
    finally:
        cut_udp(ts1, False)
