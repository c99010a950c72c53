"""Inbound: tailnet peers reach lopower's devices. lopowerd advertises its
device prefixes as subnet routes ([inbound] advertise_routes), headscale
approves them, and a tailscaled peer with --accept-routes opens TCP to a
wireguard-go device's HTTP server by the device's own addresses (IPv4, and
IPv6 from a prefix outside Tailscale's fd7a:115c:a1e0::/48: see the ULA
caveat in docs/configuration.md). The tailnet's ACLs still decide; devices
stay isolated from each other ([devices] device_to_device = "deny").

The tests share one lab (tests/net/splice_lab.py) and run in file order.
"""

import json
import os

import pytest

from headscale import ALLOW_ALL, HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import Device, diagnosis, drop_count, flows, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

V4_PREFIX, V6_PREFIX = "10.90.0.0/24", "fd00:90::/64"
DEVICE_HTTP = 8080
PAGE = b"served by a device behind lopower"
GET = b"GET /index.html HTTP/1.0\r\n\r\n"


def route_devices(config):
    """The devices' tunnels carry the other devices' addresses too (what
    they send each other reaches lopower, whose policy decides; what comes
    from each other passes their WireGuard source check)."""
    return config.replace("AllowedIPs = ", f"AllowedIPs = {V4_PREFIX}, {V6_PREFIX}, ", 1)


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, peers=["ts1"], devices=[Device("dev1", edit=route_devices), Device("dev2", edit=route_devices)],
                        extra_toml="\n[inbound]\nadvertise_routes = true\n",
                        devices_toml=f'ipv6_prefix = "{V6_PREFIX}"\n') as lab:
            dev = lab.devices["dev1"]
            www = topo.tmpdir / "devwww"
            www.mkdir()
            (www / "index.html").write_bytes(PAGE)
            dev.host.popen(["python3", "-m", "http.server", str(DEVICE_HTTP), "--bind", "::", "--directory", str(www)])
            yield lab


def device_address(dev, family):
    want = ":" if family == 6 else "."
    return next(a.split("/")[0] for a in dev.config.addresses if want in a)


def routes(d):
    return {r["prefix"]: r["approved"] for r in d.status()["tailnet"].get("routes", [])}


def fetch(ts, address, port=DEVICE_HTTP):
    return ts.nc(address, port, GET, timeout=5)


def test_routes_are_advertised_and_approved(lab):
    d, hs = lab.lopowerd, lab.headscale
    assert routes(d) == {V4_PREFIX: False, V6_PREFIX: False}, d.status()["tailnet"]
    node = hs.node("lopower")
    listed = wait_until(lambda: V4_PREFIX in hs.cli("nodes", "list-routes") and hs.cli("nodes", "list-routes"), 20,
                        "headscale to list lopower's routes")
    assert V6_PREFIX in listed, listed
    hs.cli("nodes", "approve-routes", "-i", str(node["id"]), "-r", f"{V4_PREFIX},{V6_PREFIX}")
    ts = lab.peers["ts1"]
    wait_until(lambda: {V4_PREFIX, V6_PREFIX} <= set(peer_in_netmap(ts, "lopower").get("PrimaryRoutes") or []), 20,
               "the tailnet to get lopower's routes")
    # lopower learns of the approval from its self node, which headscale
    # 0.29.2 sends again only in a full map: listed all the same.
    assert set(routes(d)) == {V4_PREFIX, V6_PREFIX}
    text = d.ctl("status").stdout
    assert f"route {V4_PREFIX} (" in text, text


def peer_in_netmap(ts, hostname):
    return next((p for p in ts.netmap().get("Peers", []) if p.get("Name", "").startswith(hostname + ".")), {})


def test_peer_with_accept_routes_reaches_a_device_by_ipv4_and_ipv6(lab):
    ts, d, dev = lab.peers["ts1"], lab.lopowerd, lab.devices["dev1"]
    ts.cli("set", "--accept-routes")
    for family in (4, 6):
        address = device_address(dev, family)
        wait_until(lambda: PAGE in fetch(ts, address), 30, f"the device's page over {address}" + diagnosis(d))
    # SNAT: the device saw lopower's device-side address, not the peer's.
    assert drop_count(d, "tailnet_filtered") == 0


def test_the_tailnet_acl_refuses_and_the_drop_is_counted(lab):
    ts, d, dev, hs = lab.peers["ts1"], lab.lopowerd, lab.devices["dev1"], lab.headscale
    address = device_address(dev, 4)
    # The route stays visible to ts1 (another port of it is allowed), so ts1
    # still sends; lopower's filter refuses port DEVICE_HTTP.
    hs.set_policy({"acls": [{"action": "accept", "src": ["*"], "dst": [f"{V4_PREFIX}:9", f"{V6_PREFIX}:9"]}]})
    try:
        before = drop_count(d, "tailnet_filtered")
        wait_until(lambda: PAGE not in fetch(ts, address) and drop_count(d, "tailnet_filtered") > before, 30,
                   "the connection refused by the ACL and counted" + diagnosis(d))
    finally:
        hs.set_policy(ALLOW_ALL)
    wait_until(lambda: PAGE in fetch(ts, address), 30, "the device reachable again")


def test_devices_are_isolated_from_each_other(lab):
    d, dev1, dev2 = lab.lopowerd, lab.devices["dev1"], lab.devices["dev2"]
    before = drop_count(d, "device_to_device_denied")
    assert not dev2.ping(device_address(dev1, 4), count=2)
    assert drop_count(d, "device_to_device_denied") >= before + 2


FORWARD_PORT = 18080


def lopower_tailnet_ip(d):
    return next(a for a in d.status()["tailnet"]["self"]["addresses"] if "." in a)


def forward_flows(d, ours, port=FORWARD_PORT):
    return [f for f in flows(d) if f.get("direction") == "inbound" and f.get("addressed") == f"{ours}:{port}"]


def test_a_port_forward_reaches_the_device_and_removing_it_refuses(lab):
    ts, d = lab.peers["ts1"], lab.lopowerd
    ours = lopower_tailnet_ip(d)
    refused = d.ctl("forward", "add", "tcp", str(FORWARD_PORT), "nosuch", "80", check=False)
    assert refused.returncode != 0 and 'no device named "nosuch"' in refused.stdout + refused.stderr, refused
    out = d.ctl("forward", "add", "tcp", str(FORWARD_PORT), "dev1", str(DEVICE_HTTP)).stdout
    assert f"tcp {FORWARD_PORT} -> dev1:{DEVICE_HTTP}" in out, out
    again = d.ctl("forward", "add", "tcp", str(FORWARD_PORT), "dev2", "80", check=False)
    assert again.returncode != 0 and "forwarded already" in again.stdout + again.stderr, again
    listed = json.loads(d.ctl("forward", "list", "--json").stdout)["forwards"]
    assert listed == [{"protocol": "tcp", "port": FORWARD_PORT, "device": "dev1", "device_port": DEVICE_HTTP}]
    wait_until(lambda: PAGE in fetch(ts, ours, FORWARD_PORT), 30, "the device's page through the forward" + diagnosis(d))
    assert forward_flows(d, ours), flows(d)
    d.ctl("forward", "remove", "tcp", str(FORWARD_PORT))
    assert not forward_flows(d, ours), "the forward's flows end with it"
    assert PAGE not in fetch(ts, ours, FORWARD_PORT)
    assert "no forwards" in d.ctl("forward", "list").stdout


def device_to_device_count(d):
    return sum(p.get("device_to_device", 0) for p in d.status()["ports"])


def test_forwards_survive_a_restart_and_devices_talk_when_allowed(lab):
    ts, d, dev1, dev2 = lab.peers["ts1"], lab.lopowerd, lab.devices["dev1"], lab.devices["dev2"]
    d.ctl("forward", "add", "tcp", str(FORWARD_PORT + 1), "dev1", str(DEVICE_HTTP))
    d.stop()
    d.config.write_text(d.config.read_text().replace("[devices]\n", '[devices]\ndevice_to_device = "allow"\n', 1))
    d.start()
    wait_until(lambda: d.status()["tailnet"]["backend_state"] == "Running", 30, "lopowerd back on the tailnet")
    assert f"tcp {FORWARD_PORT + 1} -> dev1:{DEVICE_HTTP}" in d.ctl("forward", "list").stdout
    wait_until(lambda: dev2.ping(device_address(dev1, 4), count=1), 60, "dev2 to reach dev1" + diagnosis(d))
    assert dev2.ping(device_address(dev1, 6), count=2)
    assert device_to_device_count(d) >= 2
    ours = lopower_tailnet_ip(d)
    wait_until(lambda: PAGE in fetch(ts, ours, FORWARD_PORT + 1), 60, "the forward after the restart" + diagnosis(d))
