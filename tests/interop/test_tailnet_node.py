"""lopowerd as a node of a real tailnet: headscale (pinned v0.29.2) and
tailscaled peers (pinned v1.98.10) on one test LAN (tests/net/tailnet_lab.py),
lopowerd in namespace "gw" on that LAN through its DPDK port (net_af_packet),
its coordination traffic through the exception path's TAP.

The tests share one lab and run in file order; each leaves the tailnet as it
found it (peers, policy, headscale running).
"""

import os
import re
import time

import pytest

from headscale import ALLOW_ALL, HEADSCALE
from lopower_net import Topology, wait_until
from lopowerd import Lopowerd, port_toml
from tailnet_lab import CTL4, GW_IF, TailnetLab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

HOSTNAME = "lopower"
# A disco pong over a direct path to lopower's port, v4 or v6.
LOPOWER_DIRECT = re.compile(r"via (198\.18\.40\.1|\[fd00:198:18:40::1\]):41641 in ")
# lopower's client takes plain http:// on any address (Noise authenticates
# the server); tailscaled needs the ULA URL (see tailnet_lab.py).
CONTROL_URL = f"http://{CTL4}:8080"


def tailnet_toml(key_file=None, hostname=HOSTNAME):
    lines = ["[tailnet]", f'control_url = "{CONTROL_URL}"', f'hostname = "{hostname}"']
    if key_file:
        lines.append(f'auth_key_file = "{key_file}"')
    return "\n".join(lines) + "\n"


def start_lopowerd(lab, key_file=None, hostname=HOSTNAME, name="lopowerd"):
    return start_lopowerd_with(lab, key_file, "", hostname=hostname, name=name)


def start_lopowerd_with(lab, key_file, extra_toml, hostname=HOSTNAME, name="lopowerd"):
    """lopowerd on the lab's LAN port, on the tailnet, with ``extra_toml`` added."""
    ports = port_toml("lan", f"net_af_packet0,iface={GW_IF}", lab.addrs["gw"], role="both")
    d = Lopowerd(lab.gw, ports, extra_toml=tailnet_toml(key_file, hostname) + extra_toml, name=name)
    return d.start()


def tailnet_status(d):
    return d.status()["tailnet"]


def peer_names(d):
    return {p["hostname"] for p in tailnet_status(d)["peers"]}


def wait_running(d, timeout=30):
    return wait_until(lambda: tailnet_status(d)["backend_state"] == "Running", timeout,
                      f"lopowerd to be Running (last: {tailnet_status(d)})")


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        lab = TailnetLab(topo, peers=["ts1", "ts2"])
        key_file = topo.tmpdir / "authkey"
        key_file.write_text(lab.authkey(reusable=True) + "\n")
        key_file.chmod(0o600)
        lab.key_file = key_file
        lab.lopowerd = start_lopowerd(lab, key_file)
        try:
            yield lab
        finally:
            lab.lopowerd.stop()
            lab.close()


def test_registers_and_sees_the_tailnet(lab):
    d = lab.lopowerd
    wait_running(d)
    node = lab.headscale.node(HOSTNAME)
    st = tailnet_status(d)
    assert st["node_key"] == node["node_key"]
    assert st["machine_key"] == node["machine_key"]
    assert sorted(st["self"]["addresses"]) == sorted(node["ip_addresses"])
    wait_until(lambda: peer_names(d) == {"ts1", "ts2"}, 15, "lopowerd to list ts1 and ts2")
    for p in tailnet_status(d)["peers"]:
        ts = lab.peers[p["hostname"]]
        assert sorted(p["addresses"]) == sorted(ts.ips())
        assert p["online"] is True
    # and the peers see lopower
    for ts in lab.peers.values():
        peer = ts.wait_peer(HOSTNAME, online=True, timeout=30)
        assert sorted(peer["TailscaleIPs"]) == sorted(st["self"]["addresses"])
    text = d.ctl("status").stdout
    assert re.search(r"tailnet: Running", text), text
    for ts in lab.peers.values():
        assert ts.ip(4) in text
    # The key never reaches the log.
    assert lab.key_file.read_text().strip() not in d.log_text()


def lopower_ips(d):
    return tailnet_status(d)["self"]["addresses"]


def peer_status(d, hostname):
    return next(p for p in tailnet_status(d)["peers"] if p["hostname"] == hostname)


def warm_up(ts, ip, timeout=20):
    """A direct path from ``ts`` to lopower first: tailscaled holds data for
    a peer it has no path to yet (see tests/net/tailnet_lab.py)."""
    wait_until(lambda: ts.ping(ip, mode="disco", count=1, timeout=2)[0], timeout, f"a direct path from {ts.name}")


def drops(d, reason):
    return sum(p["drops"].get(reason, 0) for p in d.status()["ports"])


def test_tailscale_ping_reaches_lopower_directly(lab):
    d, ts1 = lab.lopowerd, lab.peers["ts1"]
    ts1.wait_peer(HOSTNAME, online=True, timeout=30)
    warm_up(ts1, lopower_ips(d)[0])
    # disco: lopower answers the peer's pings on its advertised endpoints.
    ok, out = ts1.ping(lopower_ips(d)[0], mode="disco", count=10, timeout=2)
    assert ok and LOPOWER_DIRECT.search(out), out
    # ICMP and TSMP go through a WireGuard session keyed with node keys,
    # both ways, on both of lopower's tailnet addresses.
    for ip in lopower_ips(d):
        for mode in ("icmp", "tsmp"):
            ok, out = ts1.ping(ip, mode=mode, count=3, timeout=3)
            assert ok and f"via {mode.upper()}" in out, (ip, mode, out)
    p = peer_status(d, "ts1")
    assert p["path"].startswith("direct "), p
    assert p["last_handshake_seconds"] < 60 and p["rx_bytes"] > 0 and p["tx_bytes"] > 0, p
    assert tailnet_status(d)["handshakes"]["handshakes_completed"] >= 1
    assert tailnet_status(d)["disco"]["pongs_sent"] >= 1


def test_lopower_ctl_ping(lab):
    d, ts2 = lab.lopowerd, lab.peers["ts2"]
    r = d.ctl("ping", "--c", "3", "ts2", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"pong from ts2\S* \(100\.64\.\d+\.\d+\) via direct "
                     r"(198\.18\.40\.12|\[fd00:198:18:40::12\]):41641 in [\d.]+ms", r.stdout), r.stdout
    assert d.ctl("ping", ts2.ip(4), check=False).returncode == 0
    # ICMP through the WireGuard session lopower starts itself (as initiator).
    for ip in ts2.ips():
        r = d.ctl("ping", "--icmp", "--c", "3", ip, check=False)
        assert r.returncode == 0 and re.search(r"pong from ts2\S* \(" + re.escape(ip) + r"\) via ICMP, direct ", r.stdout), \
            r.stdout + r.stderr
    assert tailnet_status(d)["handshakes"]["initiations_sent"] >= 1
    r = d.ctl("ping", "no-such-peer", check=False)
    assert r.returncode != 0 and "no tailnet peer named no-such-peer" in r.stderr, r.stderr
    assert "direct " in peer_status(d, "ts2")["path"]


def test_acl_forbidding_a_peer_drops_and_counts(lab):
    d, ts1, ts2 = lab.lopowerd, lab.peers["ts1"], lab.peers["ts2"]
    ours = lopower_ips(d)
    warm_up(ts2, ours[0])
    assert ts2.ping(ours[0], mode="icmp", count=5, timeout=3)[0], "ts2 reaches lopower before the policy"
    # ts1 may reach lopower; ts2 only on TCP 443 (so it still sees lopower,
    # and its pings are lopower's filter's to refuse).
    policy = {"acls": [{"action": "accept", "src": ts1.ips(), "dst": [f"{a}:*" for a in ours]},
                       {"action": "accept", "src": ts2.ips(), "proto": "tcp", "dst": [f"{a}:443" for a in ours]}]}
    try:
        lab.headscale.set_policy(policy)
        wait_until(lambda: not ts2.ping(ours[0], mode="icmp", count=1, timeout=2)[0], 15,
                   "ts2's ICMP ping to lopower to fail")
        before = drops(d, "tailnet_filtered")

        def refused_and_counted():
            # tailscaled may not send every ping of a run (one can go while
            # its session renews), so ping until three more are counted.
            ok, out = ts2.ping(ours[0], mode="icmp", count=1, timeout=2)
            assert not ok and "no reply" in out, out
            return drops(d, "tailnet_filtered") >= before + 3
        wait_until(refused_and_counted, 30, "three of ts2's refused pings counted as tailnet_filtered")
        ok, out = ts1.ping(ours[0], mode="icmp", count=3, timeout=3)
        assert ok, out
    finally:
        lab.headscale.set_policy(ALLOW_ALL)
    wait_until(lambda: ts2.ping(ours[0], mode="icmp", count=1, timeout=2)[0], 15,
               "ts2's ICMP ping to lopower to work again")


def test_peer_joins_then_leaves(lab):
    d = lab.lopowerd
    lab.add_peer("ts3")
    wait_until(lambda: "ts3" in peer_names(d), 15, "lopowerd to see ts3 join")
    node_id = lab.node_ids()["ts3"]
    lab.remove_peer("ts3", logout=False, unplug=True)
    lab.headscale.delete_node(node_id)
    wait_until(lambda: "ts3" not in peer_names(d), 15, "lopowerd to see ts3 leave")
    assert peer_names(d) == {"ts1", "ts2"}


def test_reconnects_after_headscale_restart(lab):
    d = lab.lopowerd
    before = tailnet_status(d)["connects"]
    lab.headscale.stop(keep_state=True)
    wait_until(lambda: tailnet_status(d)["connected"] is False, 30, "lopowerd to notice headscale went away")
    # Forwarding state stays: the last netmap is kept while disconnected.
    assert peer_names(d) == {"ts1", "ts2"}
    time.sleep(2)
    lab.headscale.start()
    wait_until(lambda: tailnet_status(d)["connected"] and tailnet_status(d)["backend_state"] == "Running", 60,
               "lopowerd to reconnect on its own")
    assert tailnet_status(d)["connects"] > before
    lab.add_peer("ts4")
    try:
        wait_until(lambda: "ts4" in peer_names(d), 20, "lopowerd to see a peer that joined after the restart")
    finally:
        node_id = lab.node_ids()["ts4"]
        lab.remove_peer("ts4", logout=False, unplug=True)
        lab.headscale.delete_node(node_id)


def test_restart_is_the_same_node(lab):
    d = lab.lopowerd
    node_before = lab.headscale.node(HOSTNAME)
    d.stop()
    d.start()
    wait_running(d)
    nodes = [n for n in lab.headscale.nodes() if n["given_name"].startswith(HOSTNAME)]
    assert len(nodes) == 1, nodes
    assert nodes[0]["id"] == node_before["id"]
    assert nodes[0]["node_key"] == node_before["node_key"]
    assert sorted(lopower_ips(d)) == sorted(node_before["ip_addresses"])
    wait_until(lambda: peer_names(d) == {"ts1", "ts2"}, 15, "lopowerd to list its peers again")
    # Sessions come back: the peer's old session died with the process.
    ts1 = lab.peers["ts1"]
    warm_up(ts1, lopower_ips(d)[0])
    ok, out = ts1.ping(lopower_ips(d)[0], mode="icmp", count=5, timeout=3)
    assert ok, out


def test_without_auth_key_needs_login_with_the_servers_url(lab):
    # Another lopowerd (its own state directory) on the same port, with no key;
    # the main one steps aside meanwhile (one TAP name per namespace).
    lab.lopowerd.stop()
    d2 = start_lopowerd(lab, None, "lopower-interactive", name="interactive")
    try:
        st = wait_until(lambda: (s := tailnet_status(d2))["backend_state"] == "NeedsLogin" and "auth_url" in s and s,
                        30, "NeedsLogin with a URL")
        assert re.fullmatch(r"http://(198\.18\.40\.2|\[fd00:198:18:40::2\]):8080/register/\S+", st["auth_url"]), st
        assert "to log in, visit: " + st["auth_url"] in d2.ctl("status").stdout
        assert "lopower-interactive" not in {n["given_name"] for n in lab.headscale.nodes()}
    finally:
        d2.stop()
        lab.lopowerd.start()


def test_logout_then_login(lab):
    d = lab.lopowerd
    node = lab.headscale.node(HOSTNAME)
    r = d.ctl("logout")
    assert "NeedsLogin" in r.stdout
    st = tailnet_status(d)
    assert st["backend_state"] == "NeedsLogin" and st["peers"] == [], st
    # The server expired the old key: the peers see lopower as expired.
    wait_until(lambda: (lab.peers["ts1"].peer(HOSTNAME) or {}).get("Expired") is True, 30, "ts1 to see lopower expired")
    # A restart does not log back in by itself: the operator logged out.
    d.stop()
    d.start()
    time.sleep(2)
    assert tailnet_status(d)["backend_state"] == "NeedsLogin"
    assert d.ctl("login").returncode == 0
    wait_running(d)
    st = tailnet_status(d)
    assert st["node_key"] != node["node_key"], "a login after a logout uses a fresh node key"
    wait_until(lambda: peer_names(d) == {"ts1", "ts2"}, 15, "lopowerd to list its peers again")
    warm_up(lab.peers["ts1"], lopower_ips(d)[0])


def test_logout_while_the_register_is_on_its_way(lab):
    """A logout at once after a start: the first register's answer comes
    after it and must neither log lopower back in nor use the connection
    being let go (under ASan this once freed nghttp2 under its own feet)."""
    d = lab.lopowerd
    d.stop()
    d.start()
    r = d.ctl("logout")
    assert "NeedsLogin" in r.stdout, r.stdout + r.stderr
    # The logout reaches the server after the register, never before it (a
    # register answered after the logout would bring the old key back).
    wait_until(lambda: (lab.peers["ts1"].peer(HOSTNAME) or {}).get("Expired") is True, 30, "ts1 to see lopower expired")
    wait_until(lambda: not tailnet_status(d)["connected"], 15, "lopowerd to let the connection go")
    st = tailnet_status(d)
    assert st["backend_state"] == "NeedsLogin" and st["peers"] == [], st
    assert d.ctl("login").returncode == 0
    wait_running(d)
    wait_until(lambda: peer_names(d) == {"ts1", "ts2"}, 15, "lopowerd to list its peers again")


def test_logout_while_the_server_is_down_is_told_when_it_is_back(lab):
    """The operator was told "logged out": that holds across a lopowerd
    restart, and the server hears of it once it is reachable again."""
    d = lab.lopowerd
    wait_running(d)
    lab.headscale.stop(keep_state=True)
    try:
        r = d.ctl("logout")
        assert "NeedsLogin" in r.stdout, r.stdout + r.stderr
        d.stop()
        d.start()
        assert tailnet_status(d)["backend_state"] == "NeedsLogin"
    finally:
        lab.headscale.start()
    wait_until(lambda: (lab.peers["ts1"].peer(HOSTNAME) or {}).get("Expired") is True, 90, "ts1 to see lopower expired")
    wait_until(lambda: not tailnet_status(d)["connected"], 15, "lopowerd to let the connection go")
    assert tailnet_status(d)["backend_state"] == "NeedsLogin"
    assert d.ctl("login").returncode == 0
    wait_running(d, timeout=60)
    wait_until(lambda: peer_names(d) == {"ts1", "ts2"}, 15, "lopowerd to list its peers again")
    warm_up(lab.peers["ts1"], lopower_ips(d)[0])
