"""Devices reach the tailnet: wireguard-go devices enrolled with lopowerd,
their flows spliced onto a real tailnet (headscale v0.29.2 + a tailscaled
peer, v1.98.10) on one test LAN (tests/net/tailnet_lab.py).

    dev1, dev2 (dual stack), dev4 (IPv4 only, AllowedIPs 0.0.0.0/0: as ESP32 libraries are)
        | WireGuard to lopowerd's port 51820
    lopowerd (namespace gw) -- splices each flow: lopower's tailnet address,
        | a port per flow; WireGuard with node keys to the peer
    ts1 (tailscaled, userspace networking: connections to its tailnet
         address reach 127.0.0.1 in its namespace, where the services run)

The devices resolve names through lopower's DNS server (their resolv.conf
names lopower's device-side address, as the enrolled config's DNS line
does): MagicDNS names under tailnet.test from the netmap, everything else
forwarded to a dnsmasq in [ctl].
"""

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import (APPS, ECHO_PORT, HTTP_PORT, SINK_PORT, SUFFIX, UDP_PORT, UPSTREAM_ADDR, UPSTREAM_NAME, Device,
                        diagnosis, drop_count, flows, getent, run_client, splice_lab)
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

TEN_MB = 10 * 1024 * 1024
# A name with more addresses than fit a 512-byte UDP answer: the upstream
# truncates it over UDP (TC) and gives all of them over TCP.
BIG_NAME, BIG_ADDRS = "big.example.test", [f"10.77.0.{i}" for i in range(1, 41)]
FLOWS_PER_DEVICE = 400  # above the 200-connection test, below what the limit test sprays


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        devices = [Device("dev1"), Device("dev2"), Device("dev4", ipv4_only=True, esp32=True)]
        with splice_lab(topo, ["ts1"], devices, dataplane_toml=f"max_flows_per_device = {FLOWS_PER_DEVICE}\n",
                        dnsmasq_args=[f"--host-record={BIG_NAME},{a}" for a in BIG_ADDRS]) as lab:
            (lab.www / "ten.bin").write_bytes(os.urandom(TEN_MB))
            yield lab


def test_ping_the_peer_on_both_families(lab):
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    # The first packet finds no session: lopower finds a path (disco) and
    # starts the handshake; the pings after it go through.
    wait_until(lambda: dev1.ping(ts1.ip(4), count=1, wait=1), 15, "the first spliced ping")
    for ip in ts1.ips():
        assert dev1.ping(ip, count=5), ip
    icmp = [f for f in flows(lab.lopowerd, "dev1") if f["protocol"].startswith("icmp")]
    assert {f["destination"].rsplit(":", 1)[0].strip("[]") for f in icmp} == set(ts1.ips())
    ours = lab.lopowerd.status()["tailnet"]["self"]["addresses"]
    assert all(f["tailnet_side"].rsplit(":", 1)[0].strip("[]") in ours for f in icmp)


def test_http_get_of_ten_megabytes(lab):
    dev1, d = lab.devices["dev1"], lab.lopowerd
    out = lab.www.parent / "got.bin"
    want = hashlib.sha256((lab.www / "ten.bin").read_bytes()).digest()
    no_flow = drop_count(d, "splice_no_flow")
    # Three in a row: the expiry once took a busy flow for an idle one (a
    # worker's newer stamp read as 2^64 ticks of idleness), about one GET
    # in eight; each GET is another chance to catch that back.
    for _ in range(3):
        r = dev1.host.run(["curl", "-sS", "-m", "60", "-o", str(out), f"http://ts1.{SUFFIX}:{HTTP_PORT}/ten.bin"],
                          check=False, timeout=90)
        assert r.returncode == 0, r.stderr + diagnosis(d)
        assert hashlib.sha256(out.read_bytes()).digest() == want
    # A flow torn away mid-transfer shows as the device's ACKs finding none.
    assert drop_count(d, "splice_no_flow") == no_flow, diagnosis(d)
    tcp = [f for f in flows(d, "dev1") if f["protocol"] == "tcp" and f["destination"].endswith(f":{HTTP_PORT}")]
    # curl may also have tried the other family (happy eyeballs): the flows that carried it.
    assert tcp and max(f["bytes_in"] for f in tcp) > TEN_MB, tcp


def test_tcp_upload_of_ten_megabytes(lab):
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    r = run_client(dev1, "upload", ts1.ip(6), SINK_PORT, TEN_MB, 7)
    assert r["answer"] == r["sent"], r


def test_udp_echo_with_1200_byte_datagrams(lab):
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    r = run_client(dev1, "udp-echo", ts1.ip(4), UDP_PORT, 1200, 50)
    assert r["intact"] >= 48, r  # the original cut replies at 64 bytes: none would be intact


def test_two_devices_with_the_same_source_port(lab):
    ts1 = lab.peers["ts1"]
    results = {}
    procs = {name: lab.devices[name].host.popen(
                 ["python3", str(APPS / "clients.py"), "many", ts1.ip(4), str(ECHO_PORT), "1", "40000"],
                 log=str(lab.www.parent / f"{name}-same-port.log"))
             for name in ("dev1", "dev2")}
    for name, p in procs.items():
        assert p.wait(60) == 0
        results[name] = json.loads(Path(lab.www.parent / f"{name}-same-port.log").read_text().splitlines()[-1])
    assert all(r["completed"] == 1 for r in results.values()), results
    sides = {f["tailnet_side"] for name in ("dev1", "dev2") for f in flows(lab.lopowerd, name)
             if f["device_side"].endswith(":40000")}
    assert len(sides) == 2, f"each device's flow got its own tailnet port: {sides}"


def test_ipv4_only_device(lab):
    ts1, dev4 = lab.peers["ts1"], lab.devices["dev4"]
    assert dev4.ping(ts1.ip(4), count=3)
    r = run_client(dev4, "upload", ts1.ip(4), SINK_PORT, 100000, 3)
    assert r["answer"] == r["sent"]


def test_two_hundred_concurrent_connections_then_expiry(lab):
    ts1, dev1, d = lab.peers["ts1"], lab.devices["dev1"], lab.lopowerd
    hold = dev1.host.popen(["python3", str(APPS / "clients.py"), "hold", ts1.ip(4), str(ECHO_PORT), "200", "4"],
                           log=str(lab.www.parent / "hold.log"))
    wait_until(lambda: len([f for f in flows(d, "dev1") if f["destination"].endswith(f":{ECHO_PORT}")
                            and f["state"] == "established"]) >= 200, 30, "200 established flows")
    assert hold.wait(60) == 0
    r = run_client(dev1, "many", ts1.ip(4), ECHO_PORT, 200, timeout=60, d=d)
    assert r == {"opened": 200, "completed": 200}, r
    # Closed connections go within seconds (FIN both ways, then 10 s).
    wait_until(lambda: not [f for f in flows(d, "dev1") if f["destination"].endswith(f":{ECHO_PORT}")], 40,
               "closed flows to expire")


def test_no_peer_there_gets_an_icmp_unreachable_at_once(lab):
    dev1, d = lab.devices["dev1"], lab.lopowerd
    before = drop_count(d, "splice_no_route")
    start = time.monotonic()
    r = dev1.host.run(["curl", "-sS", "-m", "20", "http://100.64.0.250:80/"], check=False, timeout=30)
    assert r.returncode != 0 and time.monotonic() - start < 5, (r.stderr, time.monotonic() - start)
    assert re.search(r"No route to host|Host is unreachable|Couldn't connect", r.stderr), r.stderr
    r = dev1.host.run(["ping", "-c", "1", "-W", "2", "100.64.0.250"], check=False)
    assert "Unreachable" in r.stdout, r.stdout
    assert drop_count(d, "splice_no_route") >= before + 2


def test_magicdns_names_through_lopower(lab):
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    name = f"ts1.{SUFFIX}"
    r = getent(dev1, "ahosts", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(ts1.ips()) <= set(line.split()[0] for line in r.stdout.splitlines()), r.stdout
    # The page by name, as the demo fetches it.
    r = dev1.host.run(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{http_code}",
                       f"http://{name}:{HTTP_PORT}/ten.bin"], check=False, timeout=40)
    assert r.stdout == "200", r.stdout + r.stderr
    # Authoritative NXDOMAIN under the tailnet's suffix, forwarded elsewhere.
    assert getent(dev1, "hosts", f"nosuch.{SUFFIX}").returncode == 2
    r = getent(dev1, "hosts", UPSTREAM_NAME)
    assert r.returncode == 0 and UPSTREAM_ADDR in r.stdout, r.stdout
    # Truncated over UDP: passed on with TC, and the device's resolver asks
    # again over TCP, as it would any resolver, and gets every address.
    r = getent(dev1, "ahostsv4", BIG_NAME)
    assert r.returncode == 0 and {line.split()[0] for line in r.stdout.splitlines()} == set(BIG_ADDRS), r.stdout
    # Reverse lookup of a tailnet address.
    r = getent(dev1, "hosts", ts1.ip(4))
    assert r.returncode == 0 and name in r.stdout, r.stdout
    outcomes = lab.lopowerd.status()["dns"]["outcomes"]
    assert outcomes["answered"] >= 2 and outcomes["nxdomain"] >= 1 and outcomes["forwarded_default"] >= 1, outcomes


def test_ipv4_only_device_resolves_over_ipv4(lab):
    ts1, dev4 = lab.peers["ts1"], lab.devices["dev4"]
    r = getent(dev4, "ahostsv4", f"ts1.{SUFFIX}")
    assert r.returncode == 0 and ts1.ip(4) in r.stdout, r.stdout + r.stderr


def test_too_big_for_the_tailnet_gets_an_icmp_error(lab):
    ts1, dev1, d = lab.peers["ts1"], lab.devices["dev1"], lab.lopowerd
    before = drop_count(d, "splice_too_big")
    # 1372 bytes of ICMP payload: a 1400-byte packet, within the device MTU
    # (1420), beyond the tailnet's (1280). Don't-fragment set.
    r = dev1.host.run(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", ts1.ip(4)], check=False)
    assert "mtu = 1280" in r.stdout, r.stdout + r.stderr
    r = dev1.host.run(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1352", ts1.ip(6)], check=False)
    assert "mtu = 1280" in r.stdout or "Packet too big" in r.stdout, r.stdout + r.stderr
    assert drop_count(d, "splice_too_big") >= before + 2
    # What fits goes through.
    assert dev1.ping(ts1.ip(4), count=2) and dev1.host.run(
        ["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1252", ts1.ip(4)], check=False).returncode == 0


def test_dns_over_tcp(lab):
    ts1, dev1, d = lab.peers["ts1"], lab.devices["dev1"], lab.lopowerd
    resolv = Path("/etc/netns") / dev1.host.netns / "resolv.conf"
    saved = resolv.read_text()
    for server in ("fd7a:115c:a1e0:9909::1", "10.90.0.1"):
        # use-vc: glibc's resolver asks over TCP only.
        resolv.write_text(f"nameserver {server}\noptions use-vc timeout:2 attempts:2\n")
        try:
            before = d.status()["dns"]["tcp"]["queries"]
            r = getent(dev1, "ahosts", f"ts1.{SUFFIX}")
            assert r.returncode == 0 and ts1.ip(4) in r.stdout, (server, r.stdout + r.stderr)
            r = getent(dev1, "hosts", UPSTREAM_NAME)  # forwarded, answered back over the connection
            assert r.returncode == 0 and UPSTREAM_ADDR in r.stdout, (server, r.stdout + r.stderr)
            assert d.status()["dns"]["tcp"]["queries"] >= before + 2
            # Truncated over UDP upstream: lopower asks again over TCP, and
            # the device gets every address, not the 29 that fit.
            retries = d.status()["dns"]["upstream_tcp_retries"]
            r = getent(dev1, "ahosts", BIG_NAME)
            got = {line.split()[0] for line in r.stdout.splitlines()}
            assert r.returncode == 0 and got == set(BIG_ADDRS), (server, sorted(got), r.stderr)
            assert d.status()["dns"]["upstream_tcp_retries"] >= retries + 1
        finally:
            resolv.write_text(saved)


def test_flow_limit_per_device(lab):
    ts1, dev4, d = lab.peers["ts1"], lab.devices["dev4"], lab.lopowerd
    before = drop_count(d, "splice_flow_limit")
    r = run_client(dev4, "spray", ts1.ip(4), UDP_PORT, FLOWS_PER_DEVICE + 100)
    assert r["sent"] == FLOWS_PER_DEVICE + 100, r
    wait_until(lambda: drop_count(d, "splice_flow_limit") >= before + 100, 10,
               "the flows over the limit to be refused and counted")
    assert len(flows(d, "dev4")) <= FLOWS_PER_DEVICE
    # Others are not limited by dev4's flows.
    assert lab.devices["dev1"].ping(ts1.ip(4), count=2)


def test_removing_a_device_ends_its_flows(lab):
    ts1, dev2, d = lab.peers["ts1"], lab.devices["dev2"], lab.lopowerd
    assert dev2.ping(ts1.ip(4), count=2)
    assert flows(d, "dev2"), "dev2 has flows"
    d.ctl("device", "remove", "dev2")
    wait_until(lambda: not [f for f in flows(d) if f["device"] in ("dev2", "")], 10, "dev2's flows to go")
    assert not dev2.ping(ts1.ip(4), count=1, wait=1)
    # Everyone else is untouched.
    assert lab.devices["dev1"].ping(ts1.ip(4), count=2)
