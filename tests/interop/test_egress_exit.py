"""Egress through a tailnet exit node: headscale (v0.29.2) and two
tailscaled exit nodes (v1.98.10, userspace networking) on the tailnet lab's
LAN, lopowerd with ``[egress] mode = "exit"`` and wireguard-go devices.

    dev1, dev2 -- WireGuard --> lopowerd (gw) -- node keys --> ex1 | ex2
                                                                |    |
                              "internet" (namespace inet): 203.0.113.80:80

Only the exit nodes' namespaces reach the internet namespace (a link each;
tailscaled's userspace networking forwards exit traffic through its host's
sockets); nothing else has a route to 203.0.113.0/24.

The tests share one lab and run in file order: the exit nodes go away one
after the other (ex1, then ex2), so each test starts where the last left.
"""

import json
import os
import re
import time

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import Device, diagnosis, drop_count, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

WEB = "203.0.113.80"
PAGE = "hello from the internet\n"
EGRESS_TOML = '[egress]\nmode = "exit"\nexit_nodes = ["ex1", "ex2"]\n'


def build_internet(lab):
    """Namespace inet with the web server at WEB, one point-to-point link
    to each exit node's namespace (ex1: 203.0.113.0/30, ex2: .4/30)."""
    inet = lab.topo.host("inet")
    inet.ip("addr", "add", f"{WEB}/32", "dev", "lo")
    for i, name in enumerate(("ex1", "ex2")):
        ours, theirs = f"203.0.113.{4 * i + 1}", f"203.0.113.{4 * i + 2}"
        host = lab.peers[name].host
        lab.topo.veth(host, "up0", inet, f"to-{name}", a_addrs=[f"{theirs}/30"], b_addrs=[f"{ours}/30"])
        host.add_route(f"{WEB}/32", ours)
    www = lab.topo.tmpdir / "internet"
    www.mkdir()
    (www / "hello.txt").write_text(PAGE)
    inet.popen(["python3", "-m", "http.server", "80", "--bind", WEB, "--directory", str(www)])
    wait_until(lambda: lab.peers["ex1"].host.run(["curl", "-sS", "-m", "2", f"http://{WEB}/hello.txt"],
                                                 check=False).stdout == PAGE, 20, "the web server from ex1")


def advertise_exit_nodes(lab):
    """Each exit node offers 0.0.0.0/0 and ::/0; headscale approves them."""
    for name in ("ex1", "ex2"):
        lab.peers[name].cli("set", "--advertise-exit-node")
    ids = lab.node_ids()
    for name in ("ex1", "ex2"):
        lab.headscale.cli("nodes", "approve-routes", "-i", str(ids[name]), "-r", "0.0.0.0/0,::/0")


def egress_status(d):
    return d.status()["egress"]


def exit_node_name(d):
    node = egress_status(d)["exit_node"]
    return node["name"].split(".")[0] if node else None


def fetch(dev, timeout=20):
    """(curl's result, seconds it took) for the page, from ``dev``."""
    start = time.monotonic()
    r = dev.host.run(["curl", "-sS", "-m", str(timeout), f"http://{WEB}/hello.txt"], check=False, timeout=timeout + 10)
    return r, time.monotonic() - start


def fetch_page(d, dev, timeout=30):
    """Waits until ``dev`` gets the page (the first packets to a new exit
    node wait for disco and a handshake)."""
    last = {}

    def got():
        last["r"], _ = fetch(dev, timeout=5)
        return last["r"].returncode == 0 and last["r"].stdout == PAGE
    try:
        wait_until(got, timeout, "the page through the exit node")
    except AssertionError as e:
        raise AssertionError(f"{e}: {last['r'].stderr}{diagnosis(d)}") from None


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        # Up from the very config `device add` prints: an exit egress routes
        # the internet into the tunnel by itself.
        devices = [Device("dev1"), Device("dev2")]
        with splice_lab(topo, ["ts1", "ex1", "ex2"], devices, extra_toml=EGRESS_TOML) as lab:
            build_internet(lab)
            # Nothing else reaches the internet: not lopower, not the devices.
            assert not lab.gw.ping(WEB, wait=1) and not lab.devices["dev1"].host.ping(WEB, wait=1)
            advertise_exit_nodes(lab)
            yield lab


def test_device_fetches_a_page_through_the_first_exit_node(lab):
    d, dev1 = lab.lopowerd, lab.devices["dev1"]
    wait_until(lambda: exit_node_name(d) == "ex1" and len(egress_status(d)["offered"]) == 2, 30,
               f"ex1 as the exit node, ex2 offered (last: {egress_status(d)})")
    e = egress_status(d)
    assert e["mode"] == "exit" and e["exit_nodes"] == ["ex1", "ex2"], e
    assert {o["name"].split(".")[0]: (o["online"], o["in_use"]) for o in e["offered"]} == {
        "ex1": (True, True), "ex2": (True, False)}, e
    assert e["exit_node"]["ip"] == lab.peers["ex1"].ip(4)
    fetch_page(d, dev1)
    # Spliced like a tailnet flow: from lopower's tailnet address.
    flows = d.ctl("flows", "--json", "--device", "dev1").stdout
    assert f"{WEB}:80" in flows, flows
    text = d.ctl("status").stdout
    assert re.search(r"egress: exit .*\n  exit node in use: ex1\.", text), text
    assert "egress: exit" in d.ctl("device", "show", "dev1").stdout


def test_device_set_to_none_is_refused_but_keeps_the_tailnet(lab):
    d, dev2, ts1 = lab.lopowerd, lab.devices["dev2"], lab.peers["ts1"]
    fetch_page(d, dev2)  # an exit device like the others first
    out = d.ctl("device", "set", "dev2", "--egress", "none").stdout
    assert "egress: none\n" in out, out
    before = drop_count(d, "egress_refused")
    r, took = fetch(dev2)
    assert r.returncode != 0 and took < 5, (r.stderr, took)
    assert re.search(r"No route to host|Host is unreachable|Couldn't connect", r.stderr), r.stderr
    assert drop_count(d, "egress_refused") > before
    assert dev2.ping(ts1.ip(4), count=3), "its tailnet traffic still goes"
    listed = [x for x in json.loads(d.ctl("device", "list", "--json").stdout) if x["name"] == "dev2"]
    assert listed[0]["egress"] == "none" and listed[0]["own_egress"] == "none", listed
    # Persisted: the state file says so (a restart keeps it).
    assert '"egress": "none"' in (d.dir / "state" / "devices.json").read_text()
    fetch_page(d, lab.devices["dev1"])  # the other device is not affected


def test_device_add_takes_an_egress_and_refuses_what_cannot_be(lab):
    d = lab.lopowerd
    added = json.loads(d.ctl("device", "add", "spare", "--egress", "none", "--json").stdout)
    assert added["egress"] == "none" and added["own_egress"] == "none", added
    # Its config keeps the internet out of the tunnel; an exit device's takes it in.
    assert "0.0.0.0/0" not in added["config"] and "::/0" not in added["config"], added["config"]
    allowed = re.search(r"^AllowedIPs = (.*)$", d.ctl("device", "show", "dev1").stdout, flags=re.M)
    assert allowed and {"0.0.0.0/0", "::/0"} <= set(allowed.group(1).split(", ")), allowed
    back = d.ctl("device", "set", "spare", "--egress", "default").stdout
    assert "egress: exit (global default)\n" in back, back
    for mode, why in (("uplink", "needs a [[port]] with role uplink"), ("internet", "expected default, none")):
        r = d.ctl("device", "set", "spare", "--egress", mode, check=False)
        assert r.returncode != 0 and why in r.stderr, r.stderr
    d.ctl("device", "remove", "spare")


def test_traffic_moves_to_the_next_exit_node_when_the_first_goes(lab):
    d, dev1 = lab.lopowerd, lab.devices["dev1"]
    lab.remove_peer("ex1", logout=False)  # stopped: headscale marks it offline
    wait_until(lambda: exit_node_name(d) == "ex2", 60, f"ex2 as the exit node (last: {egress_status(d)})")
    fetch_page(d, dev1)


def test_no_exit_node_left_is_an_unreachable_at_once(lab):
    d, dev1 = lab.lopowerd, lab.devices["dev1"]
    lab.remove_peer("ex2", logout=False)
    wait_until(lambda: exit_node_name(d) is None, 60, f"no exit node (last: {egress_status(d)})")
    before = drop_count(d, "egress_no_exit_node")
    r, took = fetch(dev1)
    assert r.returncode != 0 and took < 5, (r.stderr, took)
    assert re.search(r"No route to host|Host is unreachable|Couldn't connect", r.stderr), r.stderr
    assert drop_count(d, "egress_no_exit_node") > before
    assert "exit node in use: none" in d.ctl("status").stdout
