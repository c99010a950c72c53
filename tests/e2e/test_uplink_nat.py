"""Device traffic for the internet (issue 14): a wireguard-go device sends
to an address the tailnet does not serve; lopowerd NATs it out of its
uplink port to its own address there, as a home router does, and the
answers (and ICMP errors from beyond the uplink) come back to the device.

    dev1 (IPv4, AllowedIPs 0.0.0.0/0)
        | WireGuard to lopowerd's lan port
    lopowerd (namespace gw): lan port (devices, tailnet) + uplink port
        | uplink 192.0.2.2/24 (net_af_packet on a veth), gateway 192.0.2.1
    router (192.0.2.1 / 203.0.113.1, forwards; no NAT of its own)
        |
    inet: 203.0.113.80 -- HTTP :8000, UDP echo :9003 that answers with the
          source address it saw; UDP :9999 closed

The router knows 192.0.2.0/24 only on its link to lopower: the internet
host's answers reach the device only if lopower's NAT put 192.0.2.2 in
the source.
"""

import os

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from lopowerd import af_packet_wire, port_toml
from splice_lab import Device, diagnosis, drop_count, flows, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

UPLINK_ADDR, ROUTER_UPLINK, ROUTER_INET, SERVER = "192.0.2.2", "192.0.2.1", "203.0.113.1", "203.0.113.80"
HTTP_PORT, ECHO_PORT, CLOSED_PORT = 8000, 9003, 9999

# Answers each datagram with the address and port it came from.
WHO_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"{peer[0]}:{peer[1]}:".encode() + data, peer)
"""

UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"hello")
try:
    print(s.recv(2048).decode())
except ConnectionRefusedError:
    print("ECONNREFUSED")
except socket.timeout:
    print("TIMEOUT")
"""


def wire_uplink(lab):
    topo = lab.topo
    router, inet = topo.host("router"), topo.host("inet")
    af_packet_wire(topo, lab.gw, "up0", router, "eth0", [f"{ROUTER_UPLINK}/24"])
    topo.veth(router, "eth1", inet, "eth0", a_addrs=[f"{ROUTER_INET}/24"], b_addrs=[f"{SERVER}/24"])
    for host, ifname in ((router, "eth1"), (inet, "eth0")):
        host.run(["ethtool", "-K", ifname, "tx", "off"])
    router.sysctl("net.ipv4.ip_forward", "1")
    inet.add_route("default", ROUTER_INET)
    lab.www_inet = topo.tmpdir / "www-inet"
    lab.www_inet.mkdir()
    (lab.www_inet / "index.html").write_text("hello from the internet\n")
    lab.http_log = topo.tmpdir / "inet-http.log"
    inet.popen(["python3", "-m", "http.server", str(HTTP_PORT), "--bind", SERVER, "--directory", str(lab.www_inet)],
               log=str(lab.http_log))
    inet.popen(["python3", "-c", WHO_ECHO, SERVER, str(ECHO_PORT)])
    lab.router, lab.inet = router, inet
    return port_toml("up", "net_af_packet1,iface=up0", [f"{UPLINK_ADDR}/24"], role="uplink", gateway4=ROUTER_UPLINK)


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, [], [Device("dev1", ipv4_only=True, esp32=True)], more_ports=wire_uplink) as lab:
            yield lab


def udp_ask(dev, port):
    r = dev.host.run(["python3", "-c", UDP_ASK, SERVER, str(port)], check=False, timeout=15)
    return r.stdout.strip()


def test_ping_through_the_uplink(lab):
    dev1, d = lab.devices["dev1"], lab.lopowerd
    # The first pings may find the gateway's MAC not learned yet (counted).
    wait_until(lambda: dev1.ping(SERVER, count=1, wait=1), 15, "a ping through the uplink" + diagnosis(d))
    assert dev1.ping(SERVER, count=5)
    icmp = [f for f in flows(d, "dev1") if f["protocol"].startswith("icmp")]
    assert icmp and all(f["kind"] == "uplink" for f in icmp), icmp


def test_http_get_from_the_internet_sees_the_uplink_address(lab):
    dev1, d = lab.devices["dev1"], lab.lopowerd
    wait_until(lambda: dev1.ping(SERVER, count=1, wait=1), 15, "the uplink up" + diagnosis(d))
    r = dev1.host.run(["curl", "-sS", "-m", "20", f"http://{SERVER}:{HTTP_PORT}/index.html"], check=False, timeout=30)
    assert r.returncode == 0 and r.stdout == "hello from the internet\n", r.stderr + diagnosis(d)
    wait_until(lambda: "GET /index.html" in lab.http_log.read_text(), 5, "the server's log line")
    line = next(x for x in lab.http_log.read_text().splitlines() if "GET /index.html" in x)
    assert line.startswith(UPLINK_ADDR + " "), line
    tcp = [f for f in flows(d, "dev1") if f["protocol"] == "tcp"]
    assert tcp and all(f["kind"] == "uplink" for f in tcp), tcp


def test_udp_answer_comes_from_the_uplink_address(lab):
    dev1, d = lab.devices["dev1"], lab.lopowerd
    answer = wait_until(lambda: (lambda a: a if a.startswith(UPLINK_ADDR) else None)(udp_ask(dev1, ECHO_PORT)), 15,
                        "a UDP answer" + diagnosis(d))
    addr, port, payload = answer.split(":")
    assert addr == UPLINK_ADDR and payload == "hello", answer
    assert 20000 <= int(port) <= 29999, answer  # the default NAT range


def test_closed_port_is_refused_through_the_uplink(lab):
    """The internet host's port unreachable quotes the NATed datagram:
    lopower translates it back, and the device's socket sees ECONNREFUSED."""
    dev1, d = lab.devices["dev1"], lab.lopowerd
    assert wait_until(lambda: udp_ask(dev1, CLOSED_PORT) == "ECONNREFUSED", 15,
                      "port unreachable translated back" + diagnosis(d))


def test_ttl_expiry_beyond_the_uplink_reaches_the_device(lab):
    """TTL 2: lopower's hop leaves 1, the router's ends it; the router's time
    exceeded (to 192.0.2.2, quoting the NATed echo) comes back to dev1."""
    dev1, d = lab.devices["dev1"], lab.lopowerd

    def expired():
        r = dev1.host.run(["ping", "-n", "-c", "1", "-W", "2", "-t", "2", SERVER], check=False, timeout=10)
        return f"From {ROUTER_UPLINK}" in r.stdout and "Time to live exceeded" in r.stdout
    wait_until(expired, 15, "time exceeded from the router" + diagnosis(d))


def test_status_shows_the_uplink(lab):
    d = lab.lopowerd
    up = d.status()["uplink"]
    assert up["port"] == "up" and up["address"] == [f"{UPLINK_ADDR}/24"] and up["gateway4"] == ROUTER_UPLINK, up
    assert up["gateway4_neighbour"] not in (None, ""), up
    assert up["flows"] >= 1
    assert "uplink" in d.ctl("status").stdout
    assert drop_count(d, "uplink_unsupported") == 0
