"""Subnet routes: a device reaches hosts behind tailnet subnet routers
(lopower with [tailnet] accept_routes = true), each address through the
router of the most specific route that holds it, and follows the tailnet
when a route is withdrawn. Real peers: two tailscaled subnet routers
(--advertise-routes, approved in headscale), a wireguard-go device.

    site1 (10.99.7.10)  -- ts1, advertises 10.99.7.0/24
    site2 (10.99.8.10, and 10.99.7.10 too: an overlapping site network)
                        -- ts2, advertises 10.99.0.0/16

10.99.7.10 is on both sites: while ts1's /24 is there it must be site1's
(the longer prefix), once ts1 withdraws it site2's (the /16 holds it).
Each site's web server says which site it is. The tests share one lab and
run in file order.
"""

import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import Device, diagnosis, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

NARROW, WIDE = "10.99.7.0/24", "10.99.0.0/16"
BOTH_SITES, SITE2_ONLY = "10.99.7.10", "10.99.8.10"
HTTP = 8080


def reach_the_sites(config):
    """The device's tunnel carries the sites' addresses (an ESP32's carries everything)."""
    return config.replace("AllowedIPs = ", f"AllowedIPs = {WIDE}, ", 1)


def site_behind(topo, ts, name, router, addresses, page_dir):
    """A host ``name`` on a link of its own behind ``ts`` (the router's
    address ``router``), serving a page that names it."""
    site = topo.host(name)
    topo.veth(ts.host, "site0", site, "eth0", a_addrs=[router], b_addrs=addresses)
    site.add_route("default", via=router.split("/")[0])
    page_dir.mkdir()
    (page_dir / "index.html").write_text(f"served by {name}\n")
    site.popen(["python3", "-m", "http.server", str(HTTP), "--bind", "0.0.0.0", "--directory", str(page_dir)])
    return site


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, peers=["ts1", "ts2"], devices=[Device("dev1", edit=reach_the_sites)],
                        tailnet_toml="accept_routes = true\n") as lab:
            ts1, ts2 = lab.peers["ts1"], lab.peers["ts2"]
            site_behind(topo, ts1, "site1", "10.99.7.1/24", [f"{BOTH_SITES}/24"], topo.tmpdir / "site1")
            site_behind(topo, ts2, "site2", "10.99.8.1/24", [f"{SITE2_ONLY}/24"], topo.tmpdir / "site2")
            # site2's copy of 10.99.7.10, on the same host, routed to by ts2.
            topo.hosts["site2"].ip("addr", "add", f"{BOTH_SITES}/32", "dev", "lo")
            ts2.host.add_route(NARROW, via=SITE2_ONLY)
            yield lab


def page(dev, address):
    r = dev.host.run(["curl", "-sS", "-m", "5", f"http://{address}:{HTTP}/"], check=False, timeout=15)
    return r.stdout.strip() if r.returncode == 0 else f"curl: {r.stderr.strip()}"


def advertise(lab, ts, prefix):
    """``ts`` advertises ``prefix`` (or nothing), approved in headscale."""
    ts.cli("set", f"--advertise-routes={prefix}")
    if prefix:
        hs = lab.headscale
        node = hs.node(ts.name)
        wait_until(lambda: prefix in hs.cli("nodes", "list-routes"), 20, f"headscale to list {ts.name}'s {prefix}")
        hs.cli("nodes", "approve-routes", "-i", str(node["id"]), "-r", prefix)


def test_each_address_goes_to_the_router_of_its_longest_route(lab):
    dev = lab.devices["dev1"]
    advertise(lab, lab.peers["ts2"], WIDE)
    advertise(lab, lab.peers["ts1"], NARROW)
    wait_until(lambda: page(dev, SITE2_ONLY) == "served by site2", 60,
               "site2 through ts2's /16" + diagnosis(lab.lopowerd))
    wait_until(lambda: page(dev, BOTH_SITES) == "served by site1", 60,
               "10.99.7.10 through ts1's /24, not ts2's /16" + diagnosis(lab.lopowerd))
    assert page(dev, SITE2_ONLY) == "served by site2"  # the /16 still holds the rest


def test_a_withdrawn_route_leaves_its_addresses_to_the_covering_one(lab):
    dev = lab.devices["dev1"]
    advertise(lab, lab.peers["ts1"], "")
    wait_until(lambda: page(dev, BOTH_SITES) == "served by site2", 60,
               "10.99.7.10 through ts2's /16 once ts1's /24 is gone" + diagnosis(lab.lopowerd))
    advertise(lab, lab.peers["ts1"], NARROW)
    wait_until(lambda: page(dev, BOTH_SITES) == "served by site1", 60,
               "10.99.7.10 back through ts1's /24" + diagnosis(lab.lopowerd))
