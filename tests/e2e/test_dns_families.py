"""lopower's DNS answers a device with the tailnet addresses its tunnel can
carry (issue 14): an --ipv4-only device gets no AAAA for a tailnet name, an
--ipv6-only device (for carriers whose CGNAT clashes with 100.64/10) no A;
NOERROR with no answer instead (NODATA, the zone's SOA as authority),
counted as the DNS outcome family_filtered. Names forwarded upstream come
back as the upstream gave them.

Devices by name (issue 14): one device resolves another's name under
[dns] device_domain ("lopower.internal") through lopower, under the same
family rule; a device enrolled or removed while lopowerd runs is answered,
or not, at once.

    dual (dual stack), v4 (--ipv4-only), v6 (--ipv6-only)
        | WireGuard to lopowerd, each resolving through lopower's
        | device-side address of a family it has
    lopowerd -- ts1 (tailscaled) on the lab's tailnet (tests/net/splice_lab.py)
"""

import json
import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import APPS, SUFFIX, UPSTREAM_ADDR, UPSTREAM_NAME, Device, diagnosis, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

NAME = f"ts1.{SUFFIX}"
DEVICES = [Device("dual"), Device("v4", ipv4_only=True), Device("v6", flags=["--ipv6-only"])]


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], DEVICES) as lab:
            yield lab


def ask(lab, device: str, qtype: str, name: str = NAME) -> dict:
    """One question from the device's namespace to lopower's DNS, over the
    family the device has."""
    dev = next(d for d in DEVICES if d.name == device)
    r = lab.devices[device].host.run(["python3", str(APPS / "dns_query.py"), dev.lopower_address, name, qtype],
                                     check=False, timeout=20)
    assert r.returncode == 0, f"{device} {qtype} {name}: {r.stdout}{r.stderr[-500:]}"
    return json.loads(r.stdout)


def answered(reply: dict, address: str) -> bool:
    return reply["rcode"] == 0 and reply["answers"] == [address]


def nodata(reply: dict) -> bool:
    """NOERROR, authoritative, no record, the tailnet zone's SOA."""
    return reply["rcode"] == 0 and reply["aa"] and reply["answers"] == [] and reply["authority"] == 1


def family_filtered(lab) -> int:
    return lab.lopowerd.status()["dns"]["outcomes"]["family_filtered"]


def test_dual_stack_device_gets_a_and_aaaa(lab):
    ts1 = lab.peers["ts1"]
    assert answered(ask(lab, "dual", "A"), ts1.ip(4))
    assert answered(ask(lab, "dual", "AAAA"), ts1.ip(6))


def test_ipv4_only_device_gets_no_aaaa(lab):
    ts1, before = lab.peers["ts1"], family_filtered(lab)
    assert answered(ask(lab, "v4", "A"), ts1.ip(4))
    reply = ask(lab, "v4", "AAAA")
    assert nodata(reply), reply
    assert family_filtered(lab) == before + 1


def test_ipv6_only_device_gets_no_a(lab):
    ts1, before = lab.peers["ts1"], family_filtered(lab)
    assert answered(ask(lab, "v6", "AAAA"), ts1.ip(6))
    reply = ask(lab, "v6", "A")
    assert nodata(reply), reply
    assert family_filtered(lab) == before + 1


def test_forwarded_names_are_not_filtered(lab):
    # dnsmasq has only an A for the name: an IPv6-only device gets it as
    # forwarded, the "internet names keep being forwarded as they are".
    before = family_filtered(lab)
    assert answered(ask(lab, "v6", "A", UPSTREAM_NAME), UPSTREAM_ADDR)
    assert family_filtered(lab) == before


def test_ipv6_only_device_reaches_the_peer_over_ipv6(lab):
    ts1, v6 = lab.peers["ts1"], lab.devices["v6"]
    assert v6.config.addresses and all(":" in a for a in v6.config.addresses + v6.config.allowed_ips), v6.config
    # The first packet finds no session: lopower finds a path and
    # handshakes; the pings after it go through.
    wait_until(lambda: v6.ping(ts1.ip(6), count=1, wait=1), 15, "the first spliced ping over IPv6")
    assert v6.ping(ts1.ip(6), count=3), diagnosis(lab.lopowerd)


def hold(lab, device: str, *args) -> dict:
    dev = next(d for d in DEVICES if d.name == device)
    r = lab.devices[device].host.run(["python3", str(APPS / "dns_tcp_hold.py"), args[0], dev.lopower_address,
                                      *map(str, args[1:])], check=False, timeout=120)
    assert r.returncode == 0, f"{device} {args}: {r.stdout}{r.stderr[-800:]}"
    return json.loads(r.stdout)


def tcp_status(lab) -> dict:
    return lab.lopowerd.status()["dns"]["tcp"]


def test_an_idle_tcp_connection_is_closed(lab):
    before = tcp_status(lab)["closed_idle"]
    r = hold(lab, "dual", "idle")
    assert r["closed"], r
    assert 5 <= r["seconds"] <= 50, r  # RFC 7766's idle timeout is lopower's 10 s; not at once, not never
    assert tcp_status(lab)["closed_idle"] > before


def test_held_tcp_connections_cannot_lock_a_device_out(lab):
    """A device holding more connections than its share (16) loses its
    least recently used ones; its new connection is answered."""
    before = tcp_status(lab)["closed_for_room"]
    r = hold(lab, "dual", "crowd", 24, NAME, 9)
    assert r["answer"]["rcode"] == 0 and r["answer"]["answers"] == [lab.peers["ts1"].ip(4)], r
    assert r["held_closed"] >= 9, r  # 24 held + 1 new against a share of 16
    assert tcp_status(lab)["closed_for_room"] >= before + 9


DOMAIN = "lopower.internal"


def address_of(lab, device: str, family: int) -> str:
    """The device's tunnel address of a family, from its config."""
    return next(a.split("/")[0] for a in lab.devices[device].config.addresses if (":" in a) == (family == 6))


def test_a_device_resolves_another_device_by_name(lab):
    assert answered(ask(lab, "dual", "A", f"v4.{DOMAIN}"), address_of(lab, "v4", 4))
    assert answered(ask(lab, "dual", "AAAA", "V6.LoPower.Internal."), address_of(lab, "v6", 6))
    assert answered(ask(lab, "v4", "A", f"dual.{DOMAIN}"), address_of(lab, "dual", 4))
    assert answered(ask(lab, "v6", "AAAA", f"dual.{DOMAIN}"), address_of(lab, "dual", 6))


def test_device_names_follow_the_family_rule(lab):
    before = family_filtered(lab)
    reply = ask(lab, "v6", "A", f"dual.{DOMAIN}")  # an address its tunnel cannot carry
    assert nodata(reply), reply
    assert family_filtered(lab) == before + 1
    reply = ask(lab, "dual", "AAAA", f"v4.{DOMAIN}")  # the device has no IPv6
    assert nodata(reply), reply


def test_a_device_enrolled_or_removed_live_is_answered_at_once(lab):
    reply = ask(lab, "dual", "A", f"nosuch.{DOMAIN}")
    assert reply["rcode"] == 3 and reply["aa"] and reply["answers"] == [], reply
    added = lab.lopowerd.ctl("device", "add", "later", "--ipv4-only").stdout
    try:
        later = next(d for d in json.loads(lab.lopowerd.ctl("device", "list", "--json").stdout)
                     if d["name"] == "later")
        assert answered(ask(lab, "dual", "A", f"later.{DOMAIN}"), later["ipv4"]), added
    finally:
        lab.lopowerd.ctl("device", "remove", "later")
    reply = ask(lab, "dual", "A", f"later.{DOMAIN}")
    assert reply["rcode"] == 3, reply
