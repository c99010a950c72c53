"""Self-tests of the namespace harness (tests/net/lopower_net.py).

They need root (network namespaces) and are skipped otherwise.
"""

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import lopower_net
from lopower_net import Topology, link_exists, list_links, list_netns
from lopower_net import sweep_stale, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="network namespaces need root")

A4, B4 = "198.18.0.1/24", "198.18.0.2/24"
A6, B6 = "fd00:198:18::1/64", "fd00:198:18::2/64"


def leftovers(prefix):
    """Namespaces and root links whose name starts with ``prefix``."""
    ns = [n for n in list_netns() if n.startswith(prefix)]
    links = [n for n in list_links() if n.startswith(prefix)]
    return ns + links


def dead(pid):
    """True when ``pid`` is gone (or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def dead_pid():
    """A pid that no longer exists."""
    p = subprocess.Popen(["true"])
    p.wait()
    assert dead(p.pid)
    return p.pid


def test_veth_ping_v4_v6(topology):
    a, b = topology.host("a"), topology.host("b")
    topology.veth(a, "eth0", b, "eth0", a_addrs=[A4, A6], b_addrs=[B4, B6])
    assert a.ping("198.18.0.2")
    assert b.ping("198.18.0.1")
    assert a.ping("fd00:198:18::2")
    assert b.ping("fd00:198:18::1")


def test_veth_root_side_mtu_and_route(topology):
    a, b = topology.host("a"), topology.host("b")
    root_if = topology.ifname("r0")
    topology.veth(None, root_if, a, "eth0", a_addrs=["198.18.1.1/24"],
                  b_addrs=["198.18.1.2/24"], mtu=1400)
    topology.veth(a, "eth1", b, "eth0", a_addrs=["198.18.2.1/24"],
                  b_addrs=["198.18.2.2/24"])
    assert "mtu 1400" in a.ip("link", "show", "dev", "eth0").stdout
    assert link_exists(root_if)
    ping = ["ping", "-n", "-q", "-c1", "-W2", "198.18.1.2"]
    assert subprocess.run(ping, capture_output=True, timeout=10).returncode == 0
    a.sysctl("net.ipv4.ip_forward", "1")
    b.add_route("198.18.1.0/24", via="198.18.2.1")
    route = b.run(["ip", "route", "show", "198.18.1.0/24"]).stdout
    assert "via 198.18.2.1" in route
    assert b.ping("198.18.1.2")


def test_ifname_checks_length_and_first_char(topology):
    assert topology.ifname("x").startswith(topology.prefix)
    with pytest.raises(ValueError):
        topology.ifname("x" * 16)
    with pytest.raises(ValueError):
        topology.ifname("0abc")
    with pytest.raises(ValueError):
        topology.veth(None, "eth9", topology.host("a"), "eth0")


def test_run_raises_with_stderr(topology):
    a = topology.host("a")
    with pytest.raises(lopower_net.CommandError, match="nosuchdev"):
        a.run(["ip", "link", "show", "dev", "nosuchdev"])
    assert a.run(["false"], check=False).returncode == 1


def test_popen_killed_at_exit(monkeypatch, tmp_path):
    monkeypatch.setattr(lopower_net, "KILL_GRACE", 1.0)
    pidfile = tmp_path / "child.pid"
    with Topology() as topo:
        a = topo.host("a")
        plain = a.popen(["sleep", "300"])
        # ignores SIGTERM, so teardown has to escalate to SIGKILL
        stubborn = a.popen(["sh", "-c", "trap '' TERM; sleep 300"])
        # a grandchild in the same process group
        parent = a.popen(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"])
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
                   5, "grandchild pid file")
        grandchild = int(pidfile.read_text())
        assert plain.poll() is None and stubborn.poll() is None
        log = plain.log_path
        assert log.parent == topo.tmpdir
    for p in (plain, stubborn, parent):
        assert p.poll() is not None
    wait_until(lambda: dead(grandchild), 5, "grandchild to die")
    assert not log.exists()
    assert not topo.tmpdir.exists()


def test_popen_log_file(topology):
    a = topology.host("a")
    p = a.popen(["sh", "-c", "echo hello-out; echo hello-err >&2"])
    assert p.wait(10) == 0
    text = p.log_path.read_text()
    assert "hello-out" in text and "hello-err" in text


def test_nothing_left_after_with():
    with Topology() as topo:
        a, b = topo.host("a"), topo.host("b")
        topo.veth(a, "eth0", b, "eth0", a_addrs=[A4], b_addrs=[B4])
        topo.veth(None, topo.ifname("r0"), a, "eth1")
        assert len(leftovers(topo.prefix)) == 3   # 2 netns + 1 root link
    assert leftovers(topo.prefix) == []
    topo.close()  # idempotent


def test_nothing_left_after_exception():
    with pytest.raises(RuntimeError, match="boom"):
        with Topology() as topo:
            a = topo.host("a")
            topo.veth(None, topo.ifname("r0"), a, "eth0", a_addrs=[A4])
            a.popen(["sleep", "300"])
            raise RuntimeError("boom")
    assert leftovers(topo.prefix) == []


def test_two_live_topologies_get_distinct_prefixes():
    with Topology() as t1, Topology() as t2:
        assert t1.prefix != t2.prefix
        t1.host("a")
        t2.host("a")
    assert leftovers(t1.prefix) == [] and leftovers(t2.prefix) == []


def test_move_link_tap(topology):
    a = topology.host("a")
    tap = topology.ifname("tap")

    def make_tap():
        subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"],
                       check=True)

    timer = threading.Timer(0.5, make_tap)   # appears after move_link starts
    timer.start()
    try:
        name = topology.move_link(tap, a, addrs=[A4, A6], new_name="tap0")
    finally:
        timer.join()
    assert name == "tap0"
    assert not link_exists(tap)
    out = a.ip("addr", "show", "dev", "tap0").stdout
    assert "198.18.0.1/24" in out and "fd00:198:18::1/64" in out


def test_move_link_times_out(topology):
    a = topology.host("a")
    start = time.monotonic()
    with pytest.raises(AssertionError, match="nosuch0"):
        topology.move_link("nosuch0", a, timeout=0.5)
    assert time.monotonic() - start < 5


def test_wait_until():
    assert wait_until(lambda: 42, 1, "answer") == 42
    with pytest.raises(AssertionError, match="the thing"):
        wait_until(lambda: False, 0.2, "the thing", interval=0.05)


def test_sweep_stale_removes_dead_pid_namespace():
    pid = dead_pid()
    ns, link = f"lpt{pid}-x", f"lpt{pid}d"
    live_ns = f"lpt{os.getpid()}-live"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer",
                        "name", f"lpt{pid}e"], check=True)
        subprocess.run(["ip", "netns", "add", live_ns], check=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"lpt{pid}-"))
        removed = sweep_stale()
        assert ns in removed and link in removed
        assert ns not in list_netns()
        assert not link_exists(link)
        assert not tmp.exists()
        assert live_ns in list_netns()   # our own pid is alive: kept
    finally:
        for n in (ns, live_ns):
            subprocess.run(["ip", "netns", "delete", n], capture_output=True)
        subprocess.run(["ip", "link", "delete", link], capture_output=True)
