"""The tailnet lab itself, with real peers only (no lopowerd yet): headscale
(pinned v0.29.2) in namespace "ctl" and tailscaled (pinned v1.98.10) peers in
"ts1", "ts2", ... on one test LAN (tests/net/tailnet_lab.py).

The tests share one lab and run in file order: the ACL test restores the
allow-all policy when it ends, the restart test comes after it.  While they
run, tcpdump watches the LAN's bridge for any packet that is not between
test addresses.
"""

import json
import os
import re
import signal
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from headscale import ALLOW_ALL, HEADSCALE
from lopower_net import Topology, wait_until
from tailnet_lab import CTL6, TailnetLab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

# A direct path: the peer's LAN address and tailscaled's port, v4 or v6.
DIRECT = re.compile(r"via (198\.18\.40\.\d+|\[fd00:198:18:40::[0-9a-f]+\]):41641 in ")
# Anything on the bridge that is not test-to-test (ARP is not IP; the
# kernel's IGMP reports go to 224.0.0.0/24, IPv6 neighbour discovery and MLD
# use link-local and multicast addresses).
NOT_LOCAL = ("(ip and not dst net 224.0.0.0/24 and not (src net 198.18.0.0/15 and dst net 198.18.0.0/15)) or "
             "(ip6 and not ((src net fd00:198:18::/48 or src net fe80::/10 or src host ::) and "
             "(dst net fd00:198:18::/48 or dst net fe80::/10 or dst net ff02::/16)))")
PUBLIC_NAMES = ("controlplane.tailscale.com", "login.tailscale.com", "log.tailscale.io")


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        sw_capture = topo.tmpdir / "not-local.pcap"
        lab = TailnetLab(topo, peers=["ts1", "ts2"], join=False)
        dump = lab.sw.popen(["tcpdump", "-i", "br0", "-n", "-U", "-w", str(sw_capture), NOT_LOCAL])
        time.sleep(0.5)  # tcpdump is listening before anyone talks
        lab.join(lab.peers.values())
        lab.capture = sw_capture
        lab.capture_proc = dump
        try:
            yield lab
        finally:
            lab.close()


def peer_ips(lab):
    return {name: ts.ips() for name, ts in lab.peers.items()}


def test_nodes_registered(lab):
    nodes = {n["given_name"]: n for n in lab.headscale.nodes()}
    assert set(nodes) == {"ts1", "ts2"}
    for name, ips in peer_ips(lab).items():
        n = nodes[name]
        assert n["user"]["name"] == "lab"
        assert sorted(n["ip_addresses"]) == sorted(ips)
        assert ips[0].startswith("100.64.") and ips[1].startswith("fd7a:115c:a1e0::")
    wait_until(lambda: all(n.get("online") for n in lab.headscale.nodes()), 10, "both nodes online in headscale")


def test_peers_see_each_other(lab):
    lab.wait_mesh(timeout=30)
    ips = peer_ips(lab)
    for name, other in (("ts1", "ts2"), ("ts2", "ts1")):
        st = lab.peers[name].status()
        assert st["BackendState"] == "Running"
        # headscale names the tailnet after the host in its server_url
        assert st["CurrentTailnet"]["Name"] == urlsplit(lab.login_server).hostname == CTL6
        peer = lab.peers[name].peer(other)
        assert peer["Online"] and peer["HostName"] == other
        assert sorted(peer["TailscaleIPs"]) == sorted(ips[other])
    # What each peer advertises (from the other's netmap): its LAN address
    # (local interface) and STUN-learned addresses; tailscaled leaves ULA
    # (fd00::/8) interface addresses out while it has IPv4, so the v6 one
    # comes from STUN.
    def endpoints():
        peers = lab.peers["ts1"].netmap()["Peers"]
        return next(p for p in peers if p["Name"].split(".")[0] == "ts2").get("Endpoints")
    eps = lab.peers["ts1"].wait_for(lambda: len(endpoints() or []) >= 2, 15, "ts2's endpoints in ts1's netmap")
    eps = endpoints()
    assert f"{lab.underlay('ts2', 4)}:41641" in eps, eps
    assert f"[{lab.underlay('ts2', 6)}]:41641" in eps, eps


def test_disco_ping_is_direct(lab):
    out = lab.wait_direct("ts1", "ts2")
    assert DIRECT.search(out), out
    ok, out = lab.peers["ts1"].ping(lab.peers["ts2"].ip(4), count=3, timeout=2)
    assert ok and DIRECT.search(out), out
    out = lab.wait_direct("ts2", "ts1")
    assert DIRECT.search(out), out


@pytest.mark.parametrize("mode", ["icmp", "tsmp"])
@pytest.mark.parametrize("family", [4, 6])
def test_icmp_and_tsmp_ping(lab, mode, family):
    lab.wait_direct("ts1", "ts2")
    ok, out = lab.peers["ts1"].ping(lab.peers["ts2"].ip(family), mode=mode, count=5, timeout=2)
    assert ok, out
    assert f"via {mode.upper()}" in out, out


def test_acl_policy_blocks_one_direction(lab):
    ts1, ts2 = lab.peers["ts1"], lab.peers["ts2"]
    ip1, ip2 = ts1.ips(), ts2.ips()
    lab.wait_direct("ts2", "ts1")
    assert ts2.ping(ip1[0], mode="icmp", count=5, timeout=2)[0], "ts2 reaches ts1 before the policy"
    # Only ts1 -> ts2: ts1's own packet filter then lets nothing in from ts2.
    policy = {"acls": [{"action": "accept", "src": ip1, "dst": [f"{a}:*" for a in ip2]}]}
    try:
        lab.headscale.set_policy(policy)
        ts1.wait_for(lambda: ts1.netmap().get("PacketFilter") in (None, []), 15,
                     "ts1's netmap to carry an empty packet filter")
        # ts2 -> ts1 now fails (and keeps failing) ...
        wait_until(lambda: not ts2.ping(ip1[0], mode="icmp", count=1, timeout=2)[0], 10,
                   "ts2's ICMP ping to ts1 to fail")
        for ip in ip1:
            ok, out = ts2.ping(ip, mode="icmp", count=2, timeout=2)
            assert not ok and "no reply" in out, out
        # ... while ts1 -> ts2 works, replies included (ts1 tracks its flows).
        ok, out = ts1.ping(ip2[0], mode="icmp", count=3, timeout=2)
        assert ok, out
        # The peers still see each other (headscale keeps peers that may
        # talk in either direction) and disco, below the ACLs, still works.
        assert ts2.peer("ts1")["Online"]
        assert ts2.ping(ip1[0], count=3, timeout=2)[0]
        # TSMP is answered by tailscaled's engine before the packet filter:
        # it still gets a pong.
        ok, out = ts2.ping(ip1[0], mode="tsmp", count=3, timeout=2)
        assert ok and "via TSMP" in out, out
    finally:
        lab.headscale.set_policy(ALLOW_ALL)
    ts1.wait_for(lambda: ts1.netmap().get("PacketFilter"), 15, "ts1's allow-all packet filter")
    wait_until(lambda: ts2.ping(ip1[0], mode="icmp", count=1, timeout=2)[0], 15,
               "ts2's ICMP ping to ts1 to work again")


def test_headscale_restart_keeps_nodes(lab):
    hs = lab.headscale
    before = {n["given_name"]: (int(n["id"]), n["node_key"], n["ip_addresses"]) for n in hs.nodes()}
    server_key = json.loads(hs.get("/key?v=119")[1])["publicKey"]
    hs.restart()
    after = {n["given_name"]: (int(n["id"]), n["node_key"], n["ip_addresses"]) for n in hs.nodes()}
    assert after == before
    assert json.loads(hs.get("/key?v=119")[1])["publicKey"] == server_key
    wait_until(lambda: all(n.get("online") for n in hs.nodes()), 30, "both nodes back online in headscale")
    lab.wait_mesh(timeout=30)
    ok, out = lab.peers["ts1"].ping(lab.peers["ts2"].ip(4), mode="icmp", count=5, timeout=2)
    assert ok, out


def test_peer_joins_and_leaves(lab):
    lab.add_peer("ts3")
    assert lab.underlay("ts3") == "198.18.40.13"
    lab.wait_mesh(timeout=30)
    out = lab.wait_direct("ts3", "ts1")
    assert DIRECT.search(out), out
    ids = lab.node_ids()
    assert set(ids) == {"ts1", "ts2", "ts3"}
    lab.remove_peer("ts3", unplug=True)
    # A logged-out node is expired, not deleted: headscale keeps it and the
    # others keep it as a peer, marked Expired.
    assert "expiry" in lab.headscale.node("ts3")
    ts1 = lab.peers["ts1"]
    ts1.wait_for(lambda: (ts1.peer("ts3") or {}).get("Expired"), 15, "ts3 to be an expired peer")
    # Deleted, it leaves the others' netmaps.
    lab.headscale.delete_node(ids["ts3"])
    assert set(lab.node_ids()) == {"ts1", "ts2"}
    ts1.wait_for(lambda: ts1.peer("ts3") is None, 15, "ts3 to leave ts1's peers")


def test_served_from_a_peer(lab):
    """With userspace networking, tailscaled forwards TCP to its own
    Tailscale IP to the same port on its namespace's loopback."""
    ts1, ts2 = lab.peers["ts1"], lab.peers["ts2"]
    (ts2.dir / "www").mkdir(exist_ok=True)
    (ts2.dir / "www" / "hello.txt").write_text("hello from ts2\n")
    srv = ts2.host.popen(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                          "--directory", str(ts2.dir / "www")])
    try:
        wait_until(lambda: ts2.host.run(["curl", "-sf", "http://127.0.0.1:8000/hello.txt"],
                                        check=False).returncode == 0, 10, "the web server in ts2")
        reply = ts1.nc(ts2.ip(4), 8000, b"GET /hello.txt HTTP/1.0\r\n\r\n", timeout=10)
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello from ts2\n"), reply
    finally:
        srv.kill()


def test_nothing_left_the_test_network(lab):
    """Last: the bridge saw no packet to or from a non-test address, and no
    peer logged trying one."""
    time.sleep(1)
    lab.capture_proc.send_signal(signal.SIGINT)
    lab.capture_proc.wait(10)
    r = subprocess.run(["tcpdump", "-n", "-r", str(lab.capture)], capture_output=True, text=True)
    assert r.stdout.strip() == "", f"packets outside the test network:\n{r.stdout[:2000]}"
    for ts in lab.peers.values():
        log = ts.log_text()
        for name in PUBLIC_NAMES:
            assert name not in log, f"{ts.name} mentions {name}"
        assert "network is unreachable" not in log, f"{ts.name} tried to reach something off the LAN"
