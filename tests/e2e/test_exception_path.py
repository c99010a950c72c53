"""lopowerd owns the port; the host kernel still works over it.

Topology: host "gw" runs lopowerd with one port; host "h1" sits on the other
end of the wire.  With the wire in DPDK's hands, h1 must still get ARP/ND,
ping answers and TCP connections from gw's kernel, through the exception-path
TAP, and lopowerd must count what it saw.
"""

import json
from pathlib import Path
import re
import signal
import socket
import subprocess

import pytest

from lopower_net import wait_until
from lopowerd import LOPOWERD, Lopowerd, af_packet_wire, port_toml, send_udp, wait_counter

GW4, GW6 = "198.18.0.1", "fd00:198:18::1"
H1_4, H1_6 = "198.18.0.2", "fd00:198:18::2"
ADDRS = [f"{GW4}/24", f"{GW6}/64"]


@pytest.fixture
def af_packet_gw(topology):
    """lopowerd on a veth read through net_af_packet (how a kernel NIC is used)."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    af_packet_wire(topology, gw, "port0", h1, "eth0", [f"{H1_4}/24", f"{H1_6}/64"])
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS, gateway4="198.18.0.254")).start()
    yield topology, gw, h1, lp
    lp.stop()


def ping(host, addr, count=3):
    return host.run(["ping", "-c", str(count), "-i", "0.2", "-W", "2", addr], check=False)


def test_ping_v4_and_v6_answered_once_through_the_exception_path(af_packet_gw):
    _, gw, h1, lp = af_packet_gw
    for addr in (GW4, GW6):
        out = ping(h1, addr)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "3 received" in out.stdout and "DUP" not in out.stdout, out.stdout
    port = lp.port_status("lan")
    assert port["to_kernel"] >= 6 and port["from_kernel"] >= 6
    assert port["classes"]["neighbour"] >= 2  # ARP and ND went through the worker
    assert port["exception_path"]["tap"] == "lp-lan"


def test_tap_mirrors_the_port(af_packet_gw):
    _, gw, _, lp = af_packet_gw
    port = lp.port_status("lan")
    link = json.loads(gw.run(["ip", "-j", "addr", "show", "dev", "lp-lan"]).stdout)[0]
    assert link["address"].lower() == port["mac"].lower()
    kernel_addrs = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"}
    assert kernel_addrs == set(ADDRS)
    routes = gw.run(["ip", "-j", "route", "show", "default"]).stdout
    assert "198.18.0.254" in routes and "lp-lan" in routes


def tcp_server(host, addr, port, reply):
    """A one-shot TCP server in ``host`` that sends ``reply`` to its first client."""
    family = "AF_INET6" if ":" in addr else "AF_INET"
    code = (f"import socket;s=socket.socket(socket.{family});s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            f"s.bind(('{addr}',{port}));s.listen();print('ready',flush=True);c,_=s.accept();"
            f"c.sendall({reply!r});c.close()")
    proc = host.popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("addr", [GW4, GW6])
def test_tcp_to_a_kernel_socket_on_the_port_address(af_packet_gw, addr):
    _, gw, h1, lp = af_packet_gw
    server = tcp_server(gw, addr, 8080, b"hello through the exception path\n")
    out = h1.run(["socat", "-T", "5", "-", f"TCP:[{addr}]:8080" if ":" in addr else f"TCP:{addr}:8080"], timeout=15)
    assert out.stdout == "hello through the exception path\n"
    server.wait(5)
    port = lp.port_status("lan")
    assert port["rx_packets"] > 0 and port["tx_packets"] > 0 and port["rx_bytes"] > 0


def test_neighbours_are_learned_from_arp_and_nd(af_packet_gw):
    _, _, h1, lp = af_packet_gw
    assert ping(h1, GW4, 1).returncode == 0 and ping(h1, GW6, 1).returncode == 0
    h1_mac = json.loads(h1.run(["ip", "-j", "link", "show", "eth0"]).stdout)[0]["address"].lower()
    seen = wait_until(lambda: {n["ip"]: n["mac"].lower() for n in lp.status()["neighbours"]}.get(H1_4) and
                      {n["ip"]: n["mac"].lower() for n in lp.status()["neighbours"]}, 5, "h1 in the neighbour table")
    assert seen[H1_4] == h1_mac
    assert seen.get(H1_6) == h1_mac


def wg_message(msg_type, size):
    return bytes([msg_type, 0, 0, 0]) + bytes(size - 4)


def test_listener_traffic_is_classified_and_drops_are_named(af_packet_gw):
    _, _, h1, lp = af_packet_gw
    send_udp(h1, GW4, 51820, wg_message(1, 147), count=5)   # one byte short of an initiation
    send_udp(h1, GW4, 51820, wg_message(4, 64), count=4)    # transport data for no session
    send_udp(h1, GW4, 51820, wg_message(1, 148), count=3)   # initiation-shaped, bad MAC1: junk, dropped on the worker
    send_udp(h1, GW6, 41641, b"\x99" * 40, count=2)         # neither STUN, disco nor WireGuard
    drops = lambda: lp.port_status("lan")["drops"]
    wait_counter(lambda: drops()["wg_malformed"], 5, what="wg_malformed drops")
    wait_counter(lambda: drops()["wg_unknown_receiver"], 4, what="wg_unknown_receiver drops")
    wait_counter(lambda: drops()["tailnet_unknown_payload"], 2, what="tailnet_unknown_payload drops")
    wait_counter(lambda: drops()["wg_bad_mac1"], 3, what="junk initiations dropped on the worker")
    assert lp.status()["wireguard"]["handshakes"]["invalid_mac1"] == 0, "the handshake service never saw them"
    port = lp.port_status("lan")
    assert port["classes"]["wg_handshake"] == 3 and port["to_control"] == 0, "junk never goes up"
    assert port["drops_total"] == sum(port["drops"].values())
    assert set(port["drops"]) == set(lp.status()["drop_reasons"])


def test_control_socket_survives_hostile_clients(af_packet_gw):
    _, _, _, lp = af_packet_gw

    def raw(payload: bytes) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(lp.socket))
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the daemon may cut an oversized request short
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return json.loads(data)

    assert raw(b"not json\n") == {"ok": False, "error": "request is not valid JSON"}
    assert "too large" in raw(b"x" * 200_000)["error"]
    assert raw(b'{"command":"no-such"}\n')["error"] == 'unknown command "no-such"'
    assert "nested" in raw(b'{"command":"status","args":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}\n")["error"]
    # Connections held open, more than the daemon serves at once, cannot
    # lock the operator out: the oldest are let go, with a reason.
    idle = [socket.socket(socket.AF_UNIX) for _ in range(40)]
    try:
        for s in idle:
            s.connect(str(lp.socket))
        assert lp.status()["ports"][0]["name"] == "lan"
        let_go = 0
        for s in idle:  # the daemon let them go before it answered the status
            s.setblocking(False)
            try:
                reply = s.recv(65536)
            except BlockingIOError:
                continue  # still held: among the newest
            if reply:
                assert b"the oldest was let go" in reply, reply
                let_go += 1
        assert let_go >= 40 - 8, "one user holds at most its share"
        assert lp.status()["control_socket"]["evicted"] >= let_go
    finally:
        for s in idle:
            s.close()


def test_control_client_gives_up_on_a_stopped_daemon(af_packet_gw):
    """lopower-ctl against a daemon that accepts nothing (stopped, backlog
    full) reports it within its deadline instead of hanging."""
    _, _, _, lp = af_packet_gw
    lp.proc.send_signal(signal.SIGSTOP)
    backlog = []
    try:
        for _ in range(64):  # fill the listen backlog: connect then fails with EAGAIN
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)
            backlog.append(s)
            try:
                s.connect(str(lp.socket))
            except BlockingIOError:
                break
        r = lp.ctl("status", check=False, timeout=120)
        assert r.returncode != 0
        assert "in time" in r.stderr, r.stderr
    finally:
        lp.proc.send_signal(signal.SIGCONT)
        for s in backlog:
            s.close()
    wait_until(lambda: lp.ctl("status", check=False).returncode == 0, 30, "lopowerd to answer again")


def test_sigterm_removes_taps_and_socket(af_packet_gw):
    _, gw, _, lp = af_packet_gw
    assert lp.stop() == 0
    assert "lp-lan" not in gw.run(["ip", "-o", "link"]).stdout
    assert not lp.socket.exists()
    out = lp.ctl("status", check=False)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "not running" in out.stderr
    lp.start()  # the fixture stops it again; a restart must also work


def test_dpdk_tap_moved_into_a_host_namespace(topology):
    """The port is a DPDK net_tap whose kernel side becomes h1's interface."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    lp = Lopowerd(gw, port_toml("wire", "net_tap0,iface=wire0", ADDRS)).start()
    gw.ip("link", "set", "dev", "wire0", "netns", h1.netns, "name", "eth0")
    for addr in (f"{H1_4}/24", f"{H1_6}/64"):
        h1.add_addr("eth0", addr)
    h1.link_up("eth0")
    for addr in (GW4, GW6):
        out = ping(h1, addr)
        assert out.returncode == 0 and "DUP" not in out.stdout, out.stdout
    assert lp.port_status("wire")["from_kernel"] >= 6
    assert lp.stop() == 0


def test_bad_config_is_refused_with_file_line_and_key(topology):
    gw = topology.host("gw")
    lp = Lopowerd(gw, port_toml("lan", "net_null0", ["198.18.0.1/33"]))
    out = gw.run([str(LOPOWERD), "--config", str(lp.config), "--check-config"], check=False)
    assert out.returncode == 2
    line = next(i for i, text in enumerate(lp.config.read_text().splitlines(), 1) if text.startswith("addresses"))
    assert f"{lp.config}:{line}: port[1].addresses" in out.stderr
    # What only the machine can show is checked too: the auth key file.
    missing = Lopowerd(gw, port_toml("lan", "net_null0", ["198.18.0.1/24"]), name="missing-key",
                       extra_toml='[tailnet]\ncontrol_url = "http://198.18.0.2:8080"\n'
                                  'auth_key_file = "/nonexistent/authkey"\n')
    out = gw.run([str(LOPOWERD), "--config", str(missing.config), "--check-config"], check=False)
    assert out.returncode == 2
    assert "tailnet.auth_key_file: /nonexistent/authkey: No such file or directory" in out.stderr, out.stderr


def test_two_instances_side_by_side(topology):
    """Separate configs, sockets and TAPs: several lopowerds on one machine."""
    a, b = topology.host("a"), topology.host("b")
    lp_a = Lopowerd(a, port_toml("lan", "net_null0", ["198.18.1.1/24"])).start()
    lp_b = Lopowerd(b, port_toml("lan", "net_null0", ["198.18.2.1/24"])).start()
    assert lp_a.status()["pid"] != lp_b.status()["pid"]
    assert lp_a.stop() == 0 and lp_b.stop() == 0


def test_no_device_config_without_an_endpoint(af_packet_gw):
    """devices.endpoint is unset here: enrolling refuses, names the key, saves nothing."""
    _, _, _, lp = af_packet_gw
    out = lp.ctl("device", "add", "esp1", check=False)
    assert out.returncode != 0 and "devices.endpoint" in out.stderr, out.stderr
    assert json.loads(lp.ctl("device", "list", "--json").stdout) == []


def nft_table(host, table):
    return host.run(["nft", "list", "table", "netdev", table], check=False)


def offloads(host, ifname) -> dict:
    out = host.run(["ethtool", "-k", ifname]).stdout
    return {k.strip(): v.split()[0] for k, v in (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)}


def test_lopowerd_keeps_the_host_stack_off_its_af_packet_port(topology):
    """lopowerd itself installs the ingress drop and turns the offloads off
    (the lab no longer does: the ping test above sees no DUP because of it),
    and takes the drop away at a clean stop."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    af_packet_wire(topology, gw, "port0", h1, "eth0", [f"{H1_4}/24", f"{H1_6}/64"])
    assert offloads(gw, "port0")["tx-checksumming"] == "on"  # veth's default: what lopowerd must change
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS)).start()
    table = nft_table(gw, "lopower_port0")
    assert table.returncode == 0 and "hook ingress" in table.stdout and "policy drop" in table.stdout, table.stdout
    got = offloads(gw, "port0")
    assert got["tx-checksumming"] == "off" and got["generic-receive-offload"] == "off", got
    assert "host stack kept off port0" in lp.log_text()
    lp.stop()
    assert nft_table(gw, "lopower_port0").returncode != 0, "the ingress drop outlived lopowerd"


def test_a_shared_port_is_left_to_the_host(topology):
    """host_stack = "shared": nothing installed, and the host's stack answers
    beside lopower's TAP (the duplicates the bypass exists to prevent)."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    af_packet_wire(topology, gw, "port0", h1, "eth0", [f"{H1_4}/24", f"{H1_6}/64"])
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS, host_stack="shared")).start()
    try:
        assert nft_table(gw, "lopower_port0").returncode != 0
        assert offloads(gw, "port0")["tx-checksumming"] == "on"
        out = ping(h1, GW4, count=3)
        assert "DUP" in out.stdout, out.stdout
    finally:
        lp.stop()


def test_a_missing_af_packet_interface_is_a_clear_error(topology):
    gw = topology.host("gw")
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=nosuch0", ADDRS))
    r = gw.run([str(LOPOWERD), "--config", str(lp.config)], check=False, timeout=60)
    assert r.returncode != 0
    assert "port lan: no network interface nosuch0" in r.stderr, r.stderr


ARP_SPRAY = """
import socket, struct, sys
ifname, target, first, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
op = int(sys.argv[5]) if len(sys.argv) > 5 else 1  # 1 request (for target), 2 reply (to target)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
base = struct.unpack("!I", socket.inet_aton(first))[0]
for i in range(count):
    mac = bytes([0x02, 0x42, 0, 0, (i >> 8) & 0xff, i & 0xff])
    sender = socket.inet_aton(socket.inet_ntoa(struct.pack("!I", base + i)))
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + sender + bytes(6) + socket.inet_aton(target)
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp)
"""


def neighbour_ips(lp) -> set:
    return {n["ip"] for n in lp.status()["neighbours"]}


def test_a_host_spraying_arp_cannot_fill_the_neighbour_table(topology):
    """Only on-link bindings that ask for lopower's address (or answer
    questions asked from it) enter; the rest are counted; what entered ages
    out."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    af_packet_wire(topology, gw, "port0", h1, "eth0", [f"{H1_4}/24", f"{H1_6}/64"])
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS),
                  dataplane_toml="neighbour_timeout = 5\n").start()
    try:
        def spray(target, first, count, op=1):
            h1.run(["python3", "-c", ARP_SPRAY, "eth0", target, first, str(count), str(op)])

        drops = lambda reason: lp.port_status("lan")["drops"][reason]  # noqa: E731
        spray("198.18.0.200", "198.18.0.100", 50)  # on-link, but asking for someone else
        spray("198.18.0.200", "198.18.0.100", 50, op=2)  # answers nobody here asked for
        wait_counter(lambda: drops("neighbour_unsolicited"), 100, what="unsolicited bindings counted")
        spray(GW4, "203.0.113.1", 50)  # asking for lopower, from off the link
        wait_counter(lambda: drops("neighbour_off_link"), 50, what="off-link bindings counted")
        assert not {ip for ip in neighbour_ips(lp) if ip.startswith(("198.18.0.1", "203.0.113."))}
        spray(GW4, "198.18.0.150", 20)  # on-link, asking for lopower: learned
        learned = wait_until(lambda: (lambda got: got if len(got) >= 20 else None)(
            {ip for ip in neighbour_ips(lp) if ip.startswith("198.18.0.1")}), 10, "the askers learned")
        assert learned == {f"198.18.0.{i}" for i in range(150, 170)}
        # Nothing refreshes them: gone after the timeout (5 s here).
        wait_until(lambda: not {ip for ip in neighbour_ips(lp) if ip.startswith("198.18.0.1")}, 30,
                   "the sprayed entries to age out")
        # A real neighbour talking to lopower is learned again when it asks.
        assert ping(h1, GW4, 1).returncode == 0
        wait_until(lambda: H1_4 in neighbour_ips(lp), 10, "h1 learned again")
    finally:
        lp.stop()


def large_mappings(pid: int, at_least: int) -> list[tuple[str, int, str]]:
    """(address range, size in bytes, VmFlags) of the process's mappings of at
    least ``at_least`` bytes, from /proc/PID/smaps."""
    out, current = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            current = [head[0], 0, ""]
        elif head and head[0] == "Size:" and current:
            current[1] = int(head[1]) * 1024
        elif head and head[0] == "VmFlags:" and current:
            current[2] = " ".join(head[1:])
            if current[1] >= at_least:
                out.append(tuple(current))
    return out


def test_keys_stay_out_of_core_dumps(topology):
    """lopowerd is not dumpable unless the operator asks (a dump would hold
    its keys); when asked, DPDK's memory (packet buffers) is still left out
    of the dump (VmFlags dd)."""
    gw, h1 = topology.host("gw"), topology.host("h1")
    af_packet_wire(topology, gw, "port0", h1, "eth0", [f"{H1_4}/24", f"{H1_6}/64"])
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS)).start()
    try:
        assert lp.status()["core_dumps"] is False
    finally:
        lp.stop()
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", ADDRS), name="dumps",
                  daemon_toml="core_dumps = true\n").start()
    try:
        assert lp.status()["core_dumps"] is True
        # memory_mb = 256, mapped shared by DPDK; glibc's arenas (and, under
        # ASan, its allocator's reserved regions) are private mappings.
        dpdk = [m for m in large_mappings(lp.proc.pid, 200 << 20) if "sh" in m[2].split()]
        assert dpdk, "DPDK's memory is mapped"
        assert all("dd" in flags.split() for _, _, flags in dpdk), f"left out of core dumps: {dpdk}"
        assert ping(h1, GW4, 1).returncode == 0, "and the dataplane works as before"
    finally:
        lp.stop()
