"""lopowerd on a larger tailnet: a few hundred nodes registered in a real
headscale (pinned 0.29.2) besides one real tailscaled peer (ts1), all in the
tailnet lab (tests/net/tailnet_lab.py), lopowerd in "gw" as in
test_tailnet_node.py.

The nodes are registered without a tailscaled each: `tsp register` with
fresh keys, as bench/large_tailnet.py does (NodeRegistrar: a plaintext copy
of the pre-auth key skips headscale's bcrypt check, and headscale batches
its node-store writes every 100 ms instead of 500 while they come). They
never connect, so headscale lists them offline; one of them is brought
online with `tsp map -stream`.

What is checked: lopower lists every node as a peer and is not degraded;
it still reaches ts1 among them (disco and ICMP, both ways); changes to one
peer -- online and offline, a rename, a join, a leave, ts1 restarting with a
new disco key -- arrive as deltas and are applied (lopower syncs only the
peers a delta names: control/tailnet/node.cc, on_netmap). Waits are by
condition with generous deadlines; nothing is timed.
"""

import os
import re
import secrets
import sys
from pathlib import Path

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from lopowerd import Lopowerd, port_toml
from tailnet_lab import CTL4, GW_IF, TailnetLab
from tailscaled import binaries_missing

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from large_tailnet import BULK_TUNING, TSP, NodeRegistrar  # noqa: E402

MISSING = binaries_missing() + [str(p) for p in (HEADSCALE, TSP) if not os.access(p, os.X_OK)]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

NODES = 300  # registered with tsp; with ts1, lopower has NODES + 1 peers
HOSTNAME = "lopower"


def tailnet_status(d):
    return d.status()["tailnet"]


def peers_by_host(d):
    return {p["hostname"]: p for p in tailnet_status(d)["peers"]}


def peer_by_id(d, node_id):
    return next((p for p in tailnet_status(d)["peers"] if p["id"] == node_id), None)


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        lab = TailnetLab(topo, peers=["ts1"], headscale_kw={"extra_config": {"tuning": dict(BULK_TUNING)}})
        try:
            lab.registrar = NodeRegistrar(lab.headscale, lab.user_id, topo.tmpdir / "nodes", parallel=16)
            lab.registrar.register_up_to(NODES, progress=False)
            key_file = topo.tmpdir / "authkey"
            key_file.write_text(lab.authkey(reusable=True) + "\n")
            key_file.chmod(0o600)
            toml = (f'[tailnet]\ncontrol_url = "http://{CTL4}:8080"\nhostname = "{HOSTNAME}"\n'
                    f'auth_key_file = "{key_file}"\n')
            ports = port_toml("lan", f"net_af_packet0,iface={GW_IF}", lab.addrs["gw"], role="both")
            lab.lopowerd = Lopowerd(lab.gw, ports, extra_toml=toml).start()
            try:
                yield lab
            finally:
                lab.lopowerd.stop()
        finally:
            lab.close()


def test_lists_every_registered_node(lab):
    d = lab.lopowerd
    wait_until(lambda: tailnet_status(d)["backend_state"] == "Running", 60, "lopowerd to be Running")
    wait_until(lambda: len(tailnet_status(d)["peers"]) == NODES + 1, 60, f"lopowerd to list {NODES + 1} peers")
    st = tailnet_status(d)
    assert "degraded" not in st, st.get("degraded")
    peers = {p["hostname"]: p for p in st["peers"]}
    assert set(peers) == {f"n{i:05d}" for i in range(1, NODES + 1)} | {"ts1"}
    addresses = [a for p in st["peers"] for a in p["addresses"]]
    assert len(addresses) == len(set(addresses)) == 2 * (NODES + 1), "two tailnet addresses each, none shared"
    # headscale's own view agrees: every node it has, lopower lists (but itself).
    assert {n["name"] for n in lab.headscale.nodes()} - {HOSTNAME} == set(peers)
    assert peers["n00001"]["online"] is False and peers["ts1"]["online"] is True
    # The status text shows the count, not a wall of errors.
    text = d.ctl("status").stdout
    assert re.search(rf"peers: {NODES + 1}\b", text), text[-2000:]


def test_reaches_the_real_peer_among_them(lab):
    d, ts1 = lab.lopowerd, lab.peers["ts1"]
    ours = tailnet_status(d)["self"]["addresses"]
    ts1.wait_peer(HOSTNAME, online=True, timeout=60)
    wait_until(lambda: ts1.ping(ours[0], mode="disco", count=1, timeout=2)[0], 30, "a direct path from ts1")
    ok, out = ts1.ping(ours[0], mode="icmp", count=3, timeout=3)
    assert ok, out
    r = d.ctl("ping", "--c", "3", "ts1", check=False)
    assert r.returncode == 0 and "pong from ts1" in r.stdout, r.stdout + r.stderr
    r = d.ctl("ping", "--icmp", "--c", "3", ts1.ip(4), check=False)
    assert r.returncode == 0 and "via ICMP" in r.stdout, r.stdout + r.stderr


def test_a_peer_online_then_offline(lab):
    # (`tsp map` sends the machine's own Hostinfo: the peer's host name
    # changes too, so it is followed by its ID.)
    d = lab.lopowerd
    node_id = int(lab.headscale.node("n00007")["id"])
    assert peer_by_id(d, node_id)["online"] is False
    stream = lab.registrar.stream("n00007")
    try:
        wait_until(lambda: peer_by_id(d, node_id)["online"] is True, 30, "n00007 online in lopower's status")
    finally:
        stream.terminate()
        stream.wait(timeout=10)
    wait_until(lambda: peer_by_id(d, node_id)["online"] is False, 60, "n00007 offline again")
    assert len(tailnet_status(d)["peers"]) == NODES + 1


def test_a_peer_renamed_joins_and_leaves(lab):
    d = lab.lopowerd
    node_id = int(lab.headscale.node("n00011")["id"])
    new_name = f"renamed-{secrets.token_hex(3)}"
    lab.headscale.cli("nodes", "rename", "--identifier", str(node_id), new_name)
    wait_until(lambda: peer_by_id(d, node_id)["name"].startswith(new_name), 30, "the new name in lopower's status")
    lab.registrar.register("late1")
    wait_until(lambda: "late1" in peers_by_host(d), 30, "lopower to list a node that joined")
    assert len(tailnet_status(d)["peers"]) == NODES + 2
    lab.headscale.delete_node(lab.headscale.node("late1")["id"])
    wait_until(lambda: "late1" not in peers_by_host(d), 30, "lopower to drop a node that left")
    assert len(tailnet_status(d)["peers"]) == NODES + 1
    assert "degraded" not in tailnet_status(d)


def test_a_restarted_peer_is_reached_again(lab):
    """ts1 restarts with a new disco key: a delta naming ts1 alone, which
    must still drop lopower's session with it and start a new one."""
    d, ts1 = lab.lopowerd, lab.peers["ts1"]
    before = tailnet_status(d)["handshakes"]
    disco_before = ts1.status(peers=False)["Self"].get("PublicKey")
    ts1.restart()
    ts1.wait_running(60)
    assert ts1.status(peers=False)["Self"].get("PublicKey") == disco_before, "the same node"
    wait_until(lambda: tailnet_status(d)["handshakes"]["peer_restarts"] > before["peer_restarts"], 60,
               "lopower to see ts1's new disco key")

    def reached():
        return d.ctl("ping", "--icmp", "--c", "1", "--timeout", "3", ts1.ip(4), check=False).returncode == 0
    wait_until(reached, 60, "lopower's ICMP ping to reach ts1 again", interval=0.5)
    assert tailnet_status(d)["handshakes"]["handshakes_completed"] > before["handshakes_completed"]
