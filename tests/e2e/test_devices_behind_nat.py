"""Devices behind a home router's NAT, as most ESP32s in the field are:
several devices share the router's one public address (and, flashed with
one firmware image, one WireGuard listen port), and the router's mapping
for a device can change under a running transfer (a NAT reboot, a
conntrack entry timed out and made again).

    nat-a 10.66.1.2, nat-b 10.66.2.2 (wireguard-go, ListenPort 51820 both)
        | private links
    homenat: masquerade out of its LAN address 198.18.40.70
        | the lab's LAN (unsolicited UDP to the router dropped, as at home)
    lopowerd (gw, 198.18.40.1:51820) -- splices onto the tailnet -- ts1

lopower knows a device by its key, never by its address: each device's
endpoint is the address and port of its latest authenticated packet, and
replies follow it there.
"""

import hashlib
import json
import os
import threading

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import HTTP_PORT, SINK_PORT, Device, bring_up, diagnosis, flows, splice_lab, start_paced_upload
from tailnet_lab import attach_to_switch, masquerade
from tailscaled import binaries_missing
from wg_device import WgDevice

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

ROUTER_ADDRESS = "198.18.40.70"
DEVICES = ("nat-a", "nat-b")
FOUR_MB = 4 * 1024 * 1024
# The ports the router maps to once the test renumbers it: a new mapping
# cannot keep the old port.
RENUMBERED = range(40000, 40100)


def inside(i: int) -> str:
    return f"10.66.{i}.2"


def renumbered_nat() -> str:
    """The router's nat table replaced, in one nft transaction, by one that
    masquerades UDP from the private links to the RENUMBERED ports. One
    transaction: between a separate delete and add, the router forwarded
    the device's packets with its private source (seen under ASan, where
    the gap is wider), which no home router does."""
    return ("delete table ip nat\n"
            "table ip nat {\n  chain post { type nat hook postrouting priority 100;\n"
            "    oifname \"eth0\" ip saddr 10.66.0.0/16 meta l4proto udp "
            f"masquerade to :{RENUMBERED.start}-{RENUMBERED.stop - 1}\n  }}\n}}\n")


def renumbered(lab, name: str):
    """``name``'s endpoint at lopower once it is the router's address and a
    RENUMBERED port, else None."""
    address, _, port = endpoint(lab, name).rpartition(":")
    return f"{address}:{port}" if address == ROUTER_ADDRESS and int(port) in RENUMBERED else None


def put_behind_nat(lab) -> dict[str, WgDevice]:
    """The router and its devices, each enrolled with ``lopower-ctl device
    add`` and brought up from the printed config with one ListenPort for
    all."""
    topo = lab.topo
    router = topo.host("homenat")
    attach_to_switch(topo, router, [f"{ROUTER_ADDRESS}/24"])
    router.sysctl("net.ipv4.ip_forward", "1")
    for i, name in enumerate(DEVICES, start=1):
        host = topo.host(name)
        topo.veth(router, f"in{i}", host, "eth0", a_addrs=[f"10.66.{i}.1/24"], b_addrs=[f"{inside(i)}/24"])
        for h, ifname in ((router, f"in{i}"), (host, "eth0")):
            h.run(["ethtool", "-K", ifname, "tx", "off"])
        host.add_route("default", f"10.66.{i}.1")
    masquerade(router, "eth0", "10.66.0.0/16")
    return {name: bring_up(lab, topo.hosts[name], Device(name, ipv4_only=True, edit=with_listen_port))
            for name in DEVICES}


def with_listen_port(config: str) -> str:
    """The enrolled config with ListenPort 51820 (lopower prints none)."""
    assert "ListenPort" not in config, config
    return config.replace("[Interface]\n", "[Interface]\nListenPort = 51820\n", 1)


def endpoint(lab, name: str) -> str:
    return json.loads(lab.lopowerd.ctl("device", "show", name, "--json").stdout)["wireguard"]["endpoint"]


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], devices=()) as lab:
            (lab.www / "four.bin").write_bytes(os.urandom(FOUR_MB))
            lab.devices = put_behind_nat(lab)
            ts1 = lab.peers["ts1"]
            for name, dev in lab.devices.items():
                wait_until(lambda: dev.ping(ts1.ip(4), count=1, wait=1), 30, f"{name}'s first spliced ping")
            yield lab


def fetch(dev, url: str, out) -> tuple[int, str]:
    r = dev.host.run(["curl", "-sS", "-m", "90", "-o", str(out), url], check=False, timeout=120)
    return r.returncode, r.stderr


def test_two_devices_share_the_routers_address(lab):
    ts1, d = lab.peers["ts1"], lab.lopowerd
    want = hashlib.sha256((lab.www / "four.bin").read_bytes()).hexdigest()
    url = f"http://{ts1.ip(4)}:{HTTP_PORT}/four.bin"
    results = {}

    def get(name):
        out = lab.www.parent / f"{name}.bin"
        results[name] = (fetch(lab.devices[name], url, out), out)

    threads = [threading.Thread(target=get, args=(name,)) for name in DEVICES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    for name in DEVICES:
        (code, err), out = results[name]
        assert code == 0, f"{name}: {err}" + diagnosis(d)
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want, name
    # One address, two ports: the router gave the second device another
    # port for the same private one, and lopower keeps them apart.
    seen = {name: endpoint(lab, name) for name in DEVICES}
    addresses = {e.rsplit(":", 1)[0] for e in seen.values()}
    ports = {e.rsplit(":", 1)[1] for e in seen.values()}
    assert addresses == {ROUTER_ADDRESS}, seen
    assert len(ports) == 2, seen


def test_a_new_mapping_under_an_upload_is_followed(lab):
    """The router renumbers (its mappings forgotten, new ones from other
    ports) while nat-a uploads: the upload's next packets arrive from a new
    port, lopower follows them, the peer's acknowledgements reach the
    device there, and every byte arrives. nat-b, idle meanwhile, comes back
    on its own next packet."""
    ts1, d = lab.peers["ts1"], lab.lopowerd
    router, dev = lab.topo.hosts["homenat"], lab.devices["nat-a"]
    before = endpoint(lab, "nat-a")
    changes = d.status()["wireguard"]["handshakes"]["endpoint_changes"]
    upload, result = start_paced_upload(dev, ts1, 3 * 1024 * 1024, 12)
    try:
        wait_until(lambda: any(f["destination"] == f"{ts1.ip(4)}:{SINK_PORT}"
                               for f in flows(d, "nat-a")), 60, "the upload's flow")
        router.run(["nft", "-f", "-"], input=renumbered_nat())
        router.run(["conntrack", "-D", "-p", "udp"], check=False)  # exit 1 when nothing matched
        moved = wait_until(lambda: renumbered(lab, "nat-a"), 60, "lopower to follow nat-a to its new port")
    finally:
        upload.join(240)
    assert result.get("answer") == result.get("sent"), str(result) + diagnosis(d)
    assert moved != before, moved
    assert d.status()["wireguard"]["handshakes"]["endpoint_changes"] > changes
    # nat-b's old mapping is gone too: lopower cannot reach it until it
    # sends, and its first packet (this ping) is enough.
    assert lab.devices["nat-b"].ping(ts1.ip(4), count=3)
    assert renumbered(lab, "nat-b"), endpoint(lab, "nat-b")
