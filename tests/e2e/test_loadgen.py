"""lopower-loadgen against lopowerd (issue 15): N devices enrolled through
the control socket, real handshakes, ICMP echo to lopower, a JSON report.

    memif      lopowerd (memif server, port role both) <-> loadgen (memif client),
               both DPDK processes without hugepages, in one namespace ("gw")
    af_packet  lopowerd on veth "port0" in "gw" <-> loadgen on veth "lg0" in "lg"
    pcap       over af_packet: --write-pcap, the frames replayed once from a
               packet socket while the loadgen keeps the session, and again
    restart    over af_packet: lopowerd killed and started again mid-run, the
               devices handshake again on their own
    rerun      over memif: a run after one that kept its devices
    udp        the splice lab: UDP to a tailnet peer's echo (--target IP:PORT)

A modest fixed rate for a short time; no timing assertions (speed belongs in
benchmarks): only that every device got its session, replies came back, and
the report adds up.
"""

import contextlib
import json
import os
import re
import signal
import struct

import pytest

from lopower_net import wait_until
from lopowerd import BUILD_DIR, Lopowerd, af_packet_wire, port_toml

LOADGEN = BUILD_DIR / "tools" / "loadgen" / "lopower-loadgen"
LOPOWER_IP, LOADGEN_IP = "10.77.0.1", "10.77.0.2"
DEVICES = 4
REPORT_KEYS = {"setup", "devices", "duration_s", "handshake_s", "offered", "delivered", "lost", "loss_ratio",
               "latency_ns", "receive_drops", "samples", "refused_handshake_messages", "cipher_bound_pps"}
SAMPLE_KEYS = {"t", "offered_pps", "offered_bps", "delivered_pps", "delivered_bps", "latency_ns"}
LATENCY_KEYS = {"p50", "p90", "p99", "p99.9", "max", "samples"}
DEVICES_TOML = f'[devices]\nendpoint = "{LOPOWER_IP}:51820"\n'

pytestmark = pytest.mark.skipif(not os.access(LOADGEN, os.X_OK), reason=f"{LOADGEN} not built")


def loadgen_argv(topo, vdev, lp, report, *extra):
    eal = ["--no-huge", "--no-pci", "--no-shconf", "-l", "0", "-m", "128", "--file-prefix", f"{topo.prefix}-lg",
           "--vdev", vdev]
    return [str(LOADGEN), *eal, "--", "--ctl-socket", str(lp.socket), "--local-ip", LOADGEN_IP,
            "--devices", str(DEVICES), "--json", str(report), *extra]


def run_loadgen(host, topo, vdev, lp, *extra):
    report = topo.tmpdir / "report.json"
    argv = loadgen_argv(topo, vdev, lp, report, "--rate", "400", "--duration", "2", "--flows", "3",
                        "--sizes", "64,200", *extra)
    r = host.run(argv, check=False, timeout=120)
    assert r.returncode == 0, f"lopower-loadgen exited {r.returncode}:\n{r.stderr[-4000:]}\n{lp.log_text()[-3000:]}"
    assert "offered" in r.stderr  # the summary (and progress lines) go to stderr
    return json.loads(report.read_text())


def check_report(report, lp):
    assert REPORT_KEYS <= report.keys(), report.keys()
    devices = report["devices"]
    assert len(devices) == DEVICES
    # One each: nothing in a short run renews a keypair (a spurious renewal was a bug once).
    assert all(d["established"] and d["handshakes"] == 1 for d in devices), devices
    offered, delivered = report["offered"]["packets"], report["delivered"]["packets"]
    assert offered > 0 and delivered > 0, report
    assert delivered + report["lost"] == offered, report
    assert LATENCY_KEYS <= report["latency_ns"].keys()
    assert report["latency_ns"]["samples"] == delivered
    assert report["samples"] and all(SAMPLE_KEYS <= s.keys() for s in report["samples"])
    assert {"pps", "bps", "packets", "bytes"} <= report["offered"].keys()
    # The loadgen removed its devices again.
    assert json.loads(lp.ctl("device", "list", "--json").stdout) == []


def test_loadgen_over_memif_without_hugepages(topology):
    gw = topology.host("gw")
    sock = topology.tmpdir / "memif.sock"
    lp = Lopowerd(gw, port_toml("mem", f"net_memif0,role=server,socket={sock}", [f"{LOPOWER_IP}/24"]),
                  extra_toml=DEVICES_TOML).start()
    try:
        report = run_loadgen(gw, topology, f"net_memif0,role=client,socket={sock}", lp)
        check_report(report, lp)
        assert report["setup"]["port_driver"] == "net_memif"
    finally:
        lp.stop()


def test_a_rerun_meets_the_devices_an_earlier_run_kept(topology):
    """Devices left enrolled (--keep-devices, or a loadgen that crashed) are
    not the next run's: it refuses their names saying how to go on, and
    removes nothing it did not enrol; --replace-devices takes them over."""
    gw = topology.host("gw")
    sock = topology.tmpdir / "memif.sock"
    vdev = f"net_memif0,role=client,socket={sock}"
    lp = Lopowerd(gw, port_toml("mem", f"net_memif0,role=server,socket={sock}", [f"{LOPOWER_IP}/24"]),
                  extra_toml=DEVICES_TOML).start()
    try:
        run_loadgen(gw, topology, vdev, lp, "--keep-devices")
        def enrolled():
            return sorted((d["name"], d["public_key"]) for d in json.loads(lp.ctl("device", "list", "--json").stdout))
        kept = enrolled()
        assert [name for name, _ in kept] == [f"loadgen-{i}" for i in range(DEVICES)]

        argv = loadgen_argv(topology, vdev, lp, topology.tmpdir / "refused.json", "--duration", "1")
        r = gw.run(argv, check=False, timeout=120)
        assert r.returncode != 0
        assert "loadgen-0" in r.stderr and "--replace-devices" in r.stderr, r.stderr[-2000:]
        assert enrolled() == kept  # none removed, none changed

        check_report(run_loadgen(gw, topology, vdev, lp, "--replace-devices"), lp)
    finally:
        lp.stop()


@pytest.fixture
def af_packet_lab(topology):
    gw, lg = topology.host("gw"), topology.host("lg")
    # The loadgen's end has no kernel address: the loadgen answers ARP for it.
    af_packet_wire(topology, gw, "port0", lg, "lg0", [])
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", [f"{LOPOWER_IP}/24"]),
                  extra_toml=DEVICES_TOML).start()
    yield topology, gw, lg, lp
    lp.stop()


def test_loadgen_over_af_packet(af_packet_lab):
    topology, _, lg, lp = af_packet_lab
    report = run_loadgen(lg, topology, "net_af_packet0,iface=lg0", lp)
    check_report(report, lp)
    assert report["setup"]["port_driver"] == "net_af_packet"


def replay(host, ifname, pcap, first, count):
    """Sends frames ``first`` .. ``first + count - 1`` of a classic pcap file
    out of ``ifname`` (what pktgen-dpdk does on a real box), from a packet
    socket."""
    code = ("import socket,struct,sys\n"
            "data=open(sys.argv[2],'rb').read()\n"
            "first,count=int(sys.argv[3]),int(sys.argv[4])\n"
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
            "s.bind((sys.argv[1],0))\n"
            "at,i=24,0\n"
            "while at<len(data) and i<first+count:\n"
            "    n=struct.unpack_from('<IIII',data,at)[2]\n"
            "    if i>=first: s.send(data[at+16:at+16+n])\n"
            "    at+=16+n; i+=1\n")
    host.run(["python3", "-c", code, ifname, str(pcap), str(first), str(count)])


def replay_in_chunks(host, ifname, pcap, frames, arrived, what):
    """The whole file, a chunk at a time, each once ``arrived(n)`` says the
    frames so far got where they go: a burst of all of them at once could
    overflow a packet ring on a loaded machine, which is not what is tested."""
    chunk = 60
    for first in range(0, frames, chunk):
        replay(host, ifname, pcap, first, min(chunk, frames - first))
        done = min(first + chunk, frames)
        wait_until(lambda: arrived(done), 30, f"{what} ({done} of {frames} frames)")


def pcap_frames(pcap):
    data = pcap.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xa1b2c3d4  # classic pcap, microseconds
    count, at = 0, 24
    while at < len(data):
        at += 16 + struct.unpack_from("<IIII", data, at)[2]
        count += 1
    return count


def test_write_pcap_replays_once_inside_the_kept_session(af_packet_lab):
    topology, _, lg, lp = af_packet_lab
    pcap, report = topology.tmpdir / "devices.pcap", topology.tmpdir / "pcap-report.json"
    argv = loadgen_argv(topology, "net_af_packet0,iface=lg0", lp, report, "--write-pcap", str(pcap),
                        "--pcap-packets", "300", "--duration", "600")
    proc = lg.popen(argv)
    log = proc.log_path
    wait_until(lambda: "keeping the session alive" in log.read_text() or proc.poll() is not None, 60,
               "the loadgen to write the pcap")
    assert proc.poll() is None, log.read_text()[-3000:]
    assert pcap_frames(pcap) == 300
    replay_in_chunks(lg, "lg0", pcap, 300, lambda n: delivered_so_far(log) >= n,
                     "the loadgen to get the replayed echoes' replies")
    # Again: every counter was used once, lopower refuses them all.
    replay_in_chunks(lg, "lg0", pcap, 300, lambda n: replay_drops(lp) >= n, "lopower to refuse the second replay")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    result = json.loads(report.read_text())
    assert result["delivered"]["packets"] == 300, result
    assert all(d["handshakes"] == 1 for d in result["devices"]), \
        f"{result['devices']}\n{log.read_text()[-2000:]}\n{lp.log_text()[-4000:]}"
    assert json.loads(lp.ctl("device", "list", "--json").stdout) == []


def test_devices_come_back_after_lopowerd_is_killed_under_traffic(af_packet_lab):
    """lopowerd killed (SIGKILL) and started again while the devices send:
    the new process has the devices (they are on disk) but none of their
    sessions, and WireGuard has no way to say so. A device hears nothing
    back, and like any WireGuard peer after keepalive + rekey timeout (15 s)
    of unanswered data it starts a new handshake: the traffic flows again
    without anyone touching the device."""
    topology, _, lg, lp = af_packet_lab
    report = topology.tmpdir / "restart-report.json"
    argv = loadgen_argv(topology, "net_af_packet0,iface=lg0", lp, report, "--rate", "200", "--duration", "600",
                        "--flows", "2", "--sizes", "64")
    proc = lg.popen(argv)
    log = proc.log_path
    wait_until(lambda: delivered_so_far(log) > 0 or proc.poll() is not None, 60, "replies before the restart")
    assert proc.poll() is None, log.read_text()[-3000:]
    lp.stop(signal.SIGKILL)
    lp.start()

    def sessions():
        return sum(d["wireguard"].get("seconds_since_handshake") is not None
                   for d in json.loads(lp.ctl("device", "list", "--json").stdout))
    assert len(json.loads(lp.ctl("device", "list", "--json").stdout)) == DEVICES
    assert sessions() == 0
    wait_until(lambda: sessions() == DEVICES or proc.poll() is not None, 90,
               "every device to handshake with the new lopowerd")
    assert proc.poll() is None, log.read_text()[-3000:]
    after_handshakes = delivered_so_far(log)
    wait_until(lambda: delivered_so_far(log) > after_handshakes + 50 or proc.poll() is not None, 60,
               "replies through the new lopowerd")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    devices = json.loads(report.read_text())["devices"]
    assert all(d["handshakes"] >= 2 and d["after_silence"] >= 1 for d in devices), devices
    assert json.loads(lp.ctl("device", "list", "--json").stdout) == []


def delivered_so_far(log):
    """The loadgen's running count of replies, from its progress lines."""
    counts = re.findall(r"delivered so far (\d+)", log.read_text())
    return int(counts[-1]) if counts else 0


def replay_drops(lp):
    return lp.port_status("lan")["drops"]["wg_replay"]


def test_loadgen_udp_to_a_tailnet_peer_through_the_splice(topology):
    """--target IP:PORT: UDP to a tailnet peer's echo service (tailscaled in
    the splice lab), the replies back through lopower. The loadgen sits on
    the lab's device LAN with no kernel address of its own."""
    from headscale import HEADSCALE
    from splice_lab import UDP_PORT, splice_lab
    from tailnet_lab import attach_to_switch
    from tailscaled import binaries_missing
    if binaries_missing() or not os.access(HEADSCALE, os.X_OK):
        pytest.skip("peer binaries missing (run tools/setup)")
    with splice_lab(topology, ["ts1"], devices=()) as lab:
        lg = topology.host("lg")
        attach_to_switch(topology, lg, [])
        report = topology.tmpdir / "udp-report.json"
        eal = ["--no-huge", "--no-pci", "--no-shconf", "-l", "0", "-m", "128", "--file-prefix", f"{topology.prefix}-lg",
               "--vdev", "net_af_packet0,iface=eth0"]
        argv = [str(LOADGEN), *eal, "--", "--ctl-socket", str(lab.lopowerd.socket), "--local-ip", "198.18.40.60",
                "--devices", "2", "--target", f"{lab.peers['ts1'].ip(4)}:{UDP_PORT}", "--rate", "100",
                "--duration", "2", "--drain", "5", "--json", str(report)]
        r = lg.run(argv, check=False, timeout=120)
        assert r.returncode == 0, f"{r.stderr[-3000:]}\n{lab.lopowerd.log_text()[-3000:]}"
        result = json.loads(report.read_text())
        assert all(d["established"] and d["handshakes"] == 1 for d in result["devices"]), result["devices"]
        assert result["delivered"]["packets"] > 0, result
        assert result["delivered"]["packets"] + result["lost"] == result["offered"]["packets"]
        assert result["setup"]["target"].endswith(f":{UDP_PORT}")
        print(f"udp to ts1: offered {result['offered']['packets']}, delivered {result['delivered']['packets']}, "
              f"latency p50 {result['latency_ns']['p50'] / 1e3:.0f} us")


TAILNET_KEYS = {"mode", "established", "generation", "device_to_tailnet", "tailnet_to_device", "lopower_moved_pps",
                "drops", "node"}
DIRECTION_KEYS = {"offered", "delivered", "lost", "delivered_pps"}


@contextlib.contextmanager
def tailnet_lopowerd(topology, ports):
    """headscale and lopowerd (on the tailnet as "lopower", ``ports``) in
    one namespace, "gw": the memif sockets are abstract, and headscale on
    that namespace's loopback is where both lopowerd's control thread and
    the loadgen's tailnet node reach it. Yields (gw, lopowerd, headscale,
    auth key file)."""
    from headscale import HEADSCALE, Headscale
    if not os.access(HEADSCALE, os.X_OK):
        pytest.skip("headscale missing (run tools/setup)")
    gw = topology.host("gw")
    hs = Headscale(host="127.0.0.1", netns_host=gw).start()
    try:
        key_file = topology.tmpdir / "authkey"
        key_file.write_text(hs.create_preauth_key(hs.create_user("lab"), reusable=True) + "\n")
        key_file.chmod(0o600)
        tailnet = f'[tailnet]\ncontrol_url = "{hs.url4}"\nhostname = "lopower"\nauth_key_file = "{key_file}"\n'
        lp = Lopowerd(gw, ports, extra_toml=DEVICES_TOML + tailnet).start()
        try:
            wait_until(lambda: lp.status()["tailnet"]["backend_state"] == "Running", 60, "lopowerd on the tailnet")
            yield gw, lp, hs, key_file
        finally:
            lp.stop()
    finally:
        hs.stop()


@pytest.fixture
def tailnet_memif_lab(topology):
    """One memif port, role both: the devices and the loadgen's tailnet node on it."""
    sock = topology.tmpdir / "memif.sock"
    with tailnet_lopowerd(topology, port_toml("mem", f"net_memif0,role=server,socket={sock}",
                                              [f"{LOPOWER_IP}/24"])) as (gw, lp, hs, key_file):
        yield topology, gw, lp, hs, key_file, sock


def test_loadgen_plays_the_tailnet_too_over_memif(tailnet_memif_lab):
    """--tailnet: the loadgen's own tailnet node registers with headscale,
    handshakes with lopower on the memif port, and echoes the device flows
    lopower splices onto its session back to the devices: both directions
    delivered, the report adds up per direction."""
    topology, gw, lp, hs, key_file, sock = tailnet_memif_lab
    report = topology.tmpdir / "tailnet-report.json"
    argv = loadgen_argv(topology, f"net_memif0,role=client,socket={sock}", lp, report,
                        "--tailnet", hs.url4, "--auth-key-file", str(key_file), "--target", "tailnet",
                        "--tailnet-mode", "echo", "--rate", "400", "--duration", "2", "--sizes", "64,200",
                        "--drain", "5", "--handshake-timeout", "60")
    r = gw.run(argv, check=False, timeout=180)
    assert r.returncode == 0, f"lopower-loadgen exited {r.returncode}:\n{r.stderr[-4000:]}\n{lp.log_text()[-3000:]}"
    result = json.loads(report.read_text())
    assert REPORT_KEYS <= result.keys(), result.keys()
    assert all(d["established"] and d["handshakes"] >= 1 for d in result["devices"]), result["devices"]
    t = result["tailnet"]
    assert TAILNET_KEYS <= t.keys(), t.keys()
    assert t["established"] is True and t["node"]["handshakes_completed"] >= 1, t
    out, back = t["device_to_tailnet"], t["tailnet_to_device"]
    assert DIRECTION_KEYS <= out.keys() and DIRECTION_KEYS <= back.keys(), t
    offered, delivered = result["offered"]["packets"], result["delivered"]["packets"]
    assert offered > 0 and out["delivered"] > 0 and back["delivered"] > 0, t
    assert delivered + result["lost"] == offered, result
    # Echo mode: what the devices got back is the round trip, and each
    # direction's count adds up.
    assert back["delivered"] == delivered and out["offered"] == offered, t
    assert out["delivered"] + out["lost"] == offered and back["delivered"] <= back["offered"] <= out["delivered"], t
    assert result["setup"]["target"].endswith(":7")
    # lopower saw the node as a tailnet peer.
    peers = {p["hostname"] for p in lp.status()["tailnet"]["peers"]}
    assert "lopower-loadgen" in peers, peers
    print(f"tailnet echo: offered {offered}, at the node {out['delivered']}, back {back['delivered']}, "
          f"keypairs {t['keypairs']}, previous key used {t['previous_key_used']}")


def test_loadgen_tailnet_sink_counts_one_way(tailnet_memif_lab):
    """--tailnet-mode sink: the node only opens and counts; the run's
    delivered is the device -> tailnet direction, nothing comes back."""
    topology, gw, lp, hs, key_file, sock = tailnet_memif_lab
    report = topology.tmpdir / "sink-report.json"
    argv = loadgen_argv(topology, f"net_memif0,role=client,socket={sock}", lp, report,
                        "--tailnet", hs.url4, "--auth-key-file", str(key_file), "--target", "tailnet:9",
                        "--tailnet-mode", "sink", "--rate", "400", "--duration", "2", "--drain", "5",
                        "--handshake-timeout", "60")
    r = gw.run(argv, check=False, timeout=180)
    assert r.returncode == 0, f"lopower-loadgen exited {r.returncode}:\n{r.stderr[-4000:]}\n{lp.log_text()[-3000:]}"
    result = json.loads(report.read_text())
    t = result["tailnet"]
    assert t["mode"] == "sink" and t["established"] is True, t
    out, back = t["device_to_tailnet"], t["tailnet_to_device"]
    assert result["delivered"]["packets"] == out["delivered"] > 0, t
    assert result["delivered"]["packets"] + result["lost"] == result["offered"]["packets"], result
    assert back["offered"] == back["delivered"] == 0 and t["echoed"] == 0, t
    assert result["latency_ns"]["samples"] == out["delivered"]


def test_loadgen_tailnet_node_on_a_second_port(topology):
    """--tailnet-port-id: the node on a memif port of its own, facing
    lopower's tailnet-role port (its own subnet); the devices on the
    devices-role port. Both directions delivered."""
    dev_sock, tn_sock = topology.tmpdir / "dev.sock", topology.tmpdir / "tn.sock"
    ports = (port_toml("dev", f"net_memif0,role=server,socket={dev_sock}", [f"{LOPOWER_IP}/24"], role="devices") +
             port_toml("tn", f"net_memif1,role=server,socket={tn_sock}", ["10.78.0.1/24"], role="tailnet"))
    with tailnet_lopowerd(topology, ports) as (gw, lp, hs, key_file):
        report = topology.tmpdir / "two-port-report.json"
        argv = loadgen_argv(topology, f"net_memif0,role=client,socket={dev_sock}", lp, report,
                            "--tailnet", hs.url4, "--auth-key-file", str(key_file), "--target", "tailnet",
                            "--tailnet-port-id", "1", "--tailnet-ip", "10.78.0.2", "--rate", "400",
                            "--duration", "2", "--drain", "5", "--handshake-timeout", "60")
        # The node's port: a second vdev among the EAL options (port 1).
        argv[argv.index("--"):argv.index("--")] = ["--vdev", f"net_memif1,role=client,socket={tn_sock}"]
        r = gw.run(argv, check=False, timeout=180)
        assert r.returncode == 0, f"lopower-loadgen exited {r.returncode}:\n{r.stderr[-4000:]}\n{lp.log_text()[-3000:]}"
        result = json.loads(report.read_text())
        t = result["tailnet"]
        assert t["established"] is True, t
        assert t["device_to_tailnet"]["delivered"] > 0 and t["tailnet_to_device"]["delivered"] > 0, t
        assert result["delivered"]["packets"] + result["lost"] == result["offered"]["packets"], result
        peer = next(p for p in lp.status()["tailnet"]["peers"] if p["hostname"] == "lopower-loadgen")
        assert "10.78.0.2:41641" in peer["endpoints"], peer
