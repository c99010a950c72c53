"""A tailnet peer behind a NAT (tests/net/tailnet_lab.py add_natted_peer:
a router namespace masquerading for it), as almost every peer is in the
field. lopower cannot reach its private address, and its public one only
through the mapping the peer's own packets open: the first packets go
through headscale's embedded DERP relay, disco (pings both ways, lopower's
call-me-maybe through the relay) opens the direct path, and traffic moves
onto it -- to the NAT's public address and port.

    dev1 --WireGuard--> lopowerd (gw, 198.18.40.1) ---- LAN ---- ts2-nat (198.18.40.x)
                                                                   | masquerade
                                                                 ts2 (10.77.n.2)
"""

import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import SINK_PORT, Device, diagnosis, run_client, splice_lab, start_services, tailnet_peer
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], [Device("dev1")], derp="embedded") as lab:
            ts2 = lab.add_natted_peer("ts2")
            ts2.wait_peer("lopower", online=True, timeout=30)
            start_services(lab, ts2)
            yield lab


def path_of(d, host):
    p = tailnet_peer(d, host)
    return p.get("path", "") if p else ""


def test_peer_behind_a_nat_ends_on_a_direct_path_to_its_public_address(lab):
    d, ts2, dev1 = lab.lopowerd, lab.peers["ts2"], lab.devices["dev1"]
    nat = lab.underlay("ts2-nat")
    # ts2's endpoints in the netmap are its private address and, maybe,
    # what STUN saw (headscale does not push STUN-only changes): the way
    # in is the source of its disco pings through the NAT.
    wait_until(lambda: dev1.ping(ts2.ip(4), count=1, wait=2), 30, "a spliced ping to the peer behind the NAT")
    wait_until(lambda: path_of(d, "ts2").startswith(f"direct {nat}:"), 30,
               f"a direct path through the NAT ({nat})")
    r = run_client(dev1, "upload", ts2.ip(4), SINK_PORT, TEN_MB, 5, d=d)
    assert r["answer"] == r["sent"], r
    assert path_of(d, "ts2").startswith(f"direct {nat}:"), path_of(d, "ts2") + diagnosis(d)
    disco = d.status()["tailnet"]["disco"]
    assert disco["pongs_received"] > 0, disco
