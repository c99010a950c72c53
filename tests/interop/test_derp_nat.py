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

import json
import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from lopowerd import Lopowerd, af_packet_wire, port_toml
from splice_lab import SINK_PORT, Device, diagnosis, run_client, splice_lab, start_services, tailnet_peer
from tailnet_lab import CTL4, TailnetLab, attach_to_switch, masquerade
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


# --- lopower behind a NAT of its own -----------------------------------------------

LP_INSIDE, LP_ROUTER = "10.88.0.2", "10.88.0.1"


@pytest.fixture(scope="module")
def natted():
    """lopowerd in namespace "lp", its DPDK port on a private link behind
    router "lp-nat" (masquerade, endpoint-independent mapping) on the lab
    LAN; ts2 behind a NAT of its own (the same kind), ts3 behind a symmetric
    one. lopower only learns its public endpoint from STUN."""
    with Topology() as topo:
        lab = TailnetLab(topo, peers=["ts1"], derp="embedded")
        try:
            router = topo.host("lp-nat")
            attach_to_switch(topo, router, lab._take_addrs("lp-nat"))
            lp = topo.host("lp")
            af_packet_wire(topo, lp, "port0", router, "in0", [f"{LP_ROUTER}/24"])
            router.sysctl("net.ipv4.ip_forward", "1")
            masquerade(router, "eth0", "10.88.0.0/24")
            key_file = topo.tmpdir / "authkey"
            key_file.write_text(lab.authkey(reusable=True) + "\n")
            key_file.chmod(0o600)
            ports = port_toml("lan", "net_af_packet0,iface=port0", [f"{LP_INSIDE}/24"], role="both",
                              gateway4=LP_ROUTER)
            lab.lopowerd = Lopowerd(lp, ports, extra_toml=(
                f'[tailnet]\ncontrol_url = "http://{CTL4}:8080"\nhostname = "lopower"\n'
                f'auth_key_file = "{key_file}"\n\n[derp]\nplain_http = true\n')).start()
            for name, symmetric in (("ts2", False), ("ts3", True)):
                lab.add_natted_peer(name, symmetric=symmetric)
            for ts in lab.peers.values():
                ts.wait_peer("lopower", online=True, timeout=30)
            yield lab
        finally:
            if getattr(lab, "lopowerd", None):
                lab.lopowerd.stop()
            lab.close()


def test_stun_tells_lopower_its_public_endpoint(natted):
    d = natted.lopowerd
    public = natted.underlay("lp-nat")
    nc = wait_until(lambda: (lambda r: r if r.get("ipv4") else None)(json.loads(d.ctl("netcheck", "--json").stdout)),
                    40, "a STUN answer")
    assert nc["ipv4"].startswith(f"{public}:"), nc
    assert nc["home"] == 999 and nc["udp"], nc


def test_peer_behind_a_second_nat_gets_a_direct_path(natted):
    d = natted.lopowerd
    nat = natted.underlay("ts2-nat")
    # Neither side can reach the other's private address, and neither NAT
    # lets in what its side did not send to first: the call-me-maybe each
    # sends through the relay makes both ping at once, and the pings open
    # both NATs.
    try:
        out = wait_until(lambda: (lambda r: r.stdout if f"via direct {nat}:" in r.stdout else None)(
            d.ctl("ping", "ts2", check=False, timeout=80)), 90, "a direct pong through both NATs")
    except AssertionError as e:
        t = d.status()["tailnet"]
        raise AssertionError(f"{e}\nts2 as lopower sees it: {tailnet_peer(d, 'ts2')}\ndisco: {t['disco']}\n"
                             f"derp: {t['derp']}") from None
    assert "pong from ts2" in out
    assert tailnet_peer(d, "ts2")["path"].startswith(f"direct {nat}:") or \
        d.ctl("ping", "--icmp", "--c", "1", "ts2", check=False).returncode == 0
    assert d.status()["tailnet"]["disco"]["call_me_maybe_sent"] > 0


def test_peer_behind_a_symmetric_nat_stays_on_derp_and_works(natted):
    d = natted.lopowerd
    r = d.ctl("ping", "--icmp", "--c", "3", "ts3", check=False, timeout=60)
    assert r.returncode == 0 and "pong from ts3" in r.stdout, r.stdout + r.stderr
    assert tailnet_peer(d, "ts3")["path"] == "derp(999)", tailnet_peer(d, "ts3")
    r = d.ctl("ping", "ts3", check=False, timeout=80)
    assert "via derp(999)" in r.stdout and "direct connection not established" in r.stdout, r.stdout
