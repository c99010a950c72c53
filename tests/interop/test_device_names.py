"""Tailnet peers resolve lopower's devices by name (issue 14): lopower
answers DNS questions that a real tailscaled peer (pinned v1.98.10) sends
to its tailnet address, for names under the device domain
("lopower.internal"), with the device's address; other names get
REFUSED. headscale (pinned v0.29.2) carries the split-DNS route an operator
sets for the domain, pointing at lopower's tailnet address.

    esp32 (wireguard-go) -- lopowerd -- ts2 (tailscaled, --socks5-server)
                             (the splice lab, tests/net/splice_lab.py)

How the question gets there. lopower's tailnet address is known only once
it has joined, so the split route is added then and headscale restarted
with it (same database: the same nodes). A tailscaled in the lab runs with
--tun=userspace-networking, and its DNS forwarder sends UDP to a resolver
through the kernel (net/dns/resolver/forwarder.go: packetListener), which
has no route to the tailnet there; only its TCP fallback goes through the
netstack, and lopower serves no DNS over TCP to the tailnet. So the peer
asks lopower's tailnet address directly, over UDP through tailscaled's
SOCKS5 UDP ASSOCIATE (its netstack, the tailnet's WireGuard path), as a
tailscaled with a kernel TUN does for a split-DNS route.

With the split route in its own netmap too, lopower keeps answering the
domain itself (it does not forward it to itself): a device resolves
another's name as before.
"""

import json
import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import APPS, Device, diagnosis, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

DOMAIN = "lopower.internal"
SOCKS_PORT = 1080
DEVICES = [Device("esp32"), Device("shelf")]


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], DEVICES) as lab:
            hs, d = lab.headscale, lab.lopowerd
            hs.config["dns"]["nameservers"]["split"] = {DOMAIN: [lopower_tailnet_ip(lab)]}
            hs.restart()
            wait_until(lambda: d.status()["tailnet"]["backend_state"] == "Running", 30, "lopowerd back on the tailnet")
            ts2 = lab.add_peer("ts2", extra_args=[f"--socks5-server=127.0.0.1:{SOCKS_PORT}"])
            ts2.wait_peer("lopower", online=True, timeout=30)
            yield lab


def lopower_tailnet_ip(lab) -> str:
    return next(a.split("/")[0] for a in lab.lopowerd.status()["tailnet"]["self"]["addresses"] if ":" not in a)


def device_ip(lab, name: str) -> str:
    return next(a.split("/")[0] for a in lab.devices[name].config.addresses if ":" not in a)


def ask_from_peer(lab, name: str, qtype: str = "A", attempts: int = 1):
    """ts2's question to lopower's tailnet address, sent up to `attempts`
    times 2 s apart, as a stub resolver does (one datagram over the tailnet
    can be lost, as while the path moves from DERP to direct); None when no
    answer came. The answer says how many times it was sent."""
    r = lab.peers["ts2"].host.run(["python3", str(APPS / "dns_query_socks5.py"), str(SOCKS_PORT),
                                   lopower_tailnet_ip(lab), name, qtype, "2", str(attempts)],
                                  check=False, timeout=10 + 2 * attempts)
    return json.loads(r.stdout) if r.returncode == 0 else None


def dns_status(lab) -> dict:
    return lab.lopowerd.status()["dns"]


def test_a_tailnet_peer_resolves_a_device_through_lopower(lab):
    esp32, before = device_ip(lab, "esp32"), dns_status(lab)
    # The first datagram finds no path yet (disco, then the handshake): asked again until answered.
    reply = wait_until(lambda: ask_from_peer(lab, f"esp32.{DOMAIN}"), 45,
                       f"ts2's question for esp32.{DOMAIN} answered", interval=0.5)
    assert reply["rcode"] == 0 and reply["aa"] and reply["answers"] == [esp32], (reply, diagnosis(lab.lopowerd))
    after = dns_status(lab)
    assert after["tailnet_queries"] > before["tailnet_queries"], after
    assert after["outcomes"]["answered"] > before["outcomes"]["answered"], after


def test_a_name_under_the_domain_that_is_no_device_is_nxdomain(lab):
    reply = ask_from_peer(lab, f"nosuch.{DOMAIN}", attempts=5)
    assert reply and reply["rcode"] == 3 and reply["answers"] == [], (reply, diagnosis(lab.lopowerd))


def test_other_names_are_refused_to_the_tailnet(lab):
    """lopower is no open resolver for the tailnet: MagicDNS names (the
    tailnet's own) and names it would forward for a device get REFUSED."""
    before = dns_status(lab)["outcomes"]["not_for_tailnet"]
    sent = 0
    for name in ("ts1.tailnet.test", "upstream.example.test"):
        reply = ask_from_peer(lab, name, attempts=5)
        assert reply and reply["rcode"] == 5 and reply["answers"] == [], (name, reply, diagnosis(lab.lopowerd))
        sent += reply["questions_sent"]
    after = dns_status(lab)
    # Each name counted once at least, and no more than it was asked.
    assert before + 2 <= after["outcomes"]["not_for_tailnet"] <= before + sent, (after, sent)
    assert after["forwarded_in_flight"] == 0


def test_a_device_still_resolves_device_names_with_the_route_in_lopowers_netmap(lab):
    before = dns_status(lab)["outcomes"]
    dev = next(d for d in DEVICES if d.name == "esp32")
    r = lab.devices["esp32"].host.run(["python3", str(APPS / "dns_query.py"), dev.lopower_address,
                                       f"shelf.{DOMAIN}", "A"], check=False, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["answers"] == [device_ip(lab, "shelf")]
    after = dns_status(lab)["outcomes"]
    assert after["forwarded_route"] == before["forwarded_route"], "not forwarded to lopower itself"
