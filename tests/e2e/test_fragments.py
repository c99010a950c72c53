"""IP fragments through the splice, with real peers (headscale + a tailscaled
peer, wireguard-go devices) in the splice lab (tests/net/splice_lab.py).

    esp32 (IPv4 only, AllowedIPs 0.0.0.0/0, MTU 1420: as ESP32 WireGuard
           libraries are): a 1392-byte datagram is one 1420-byte packet
           without DF. lopower cuts it in two for the tailnet (MTU 1280);
           the peer's answer comes back in two fragments, which lopower puts
           together for the device.
    dev6  (dual stack, MTU 1420): its kernel sends a 1392-byte datagram over
           IPv6 (1440 bytes) in two fragments; lopower puts them together.
    flood (IPv4 only): first fragments that never complete, while the
           others' fragmented traffic must go on.

ts1 is tailscaled v1.98.10 with userspace networking (gVisor). What it
takes in pieces, as found here:
  - IPv4 ICMP: yes (gVisor reassembles; its replies over 1280 bytes come
    back in pieces), so ICMP echo carries the IPv4 tests;
  - IPv4 UDP and TCP: no. Its RX checksum "offload"
    (wgengine/netstack/gro.RXChecksumOffload) checks the UDP/TCP checksum
    of a first fragment on its own, fails, and drops it silently;
  - IPv6 fragments of any kind: no. Its packet parser takes the Fragment
    header for an unknown protocol (44), which the packet filter drops.
The UDP echo the issue asked for runs against a second peer, tsk: tailscaled
on a kernel TUN (as on a server or laptop), whose kernel puts fragments
together -- 1392-byte datagrams from the ESP32-shaped device come back whole.
Against ts1 it is kept below as strict xfails: they say
what still fails in the field, and fail the suite once a peer (or lopower)
changes it. The IPv6 reassembly and re-fragmenting is shown against the
device side instead (lopower answers a big echo on its own address).
"""

import json
import os
import re
import signal
from pathlib import Path

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import APPS, UDP_PORT, Device, drop_count, run_client, splice_lab, tailnet_peer
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

DATAGRAM = 1392  # 1420 bytes as IPv4: the device tunnel's MTU exactly
COUNT = 20
LOPOWER_V4, LOPOWER_V6 = "10.90.0.1", "fd7a:115c:a1e0:9909::1"


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        devices = [Device("esp32", ipv4_only=True, esp32=True), Device("dev6"),
                   Device("flood", ipv4_only=True, esp32=True)]
        with splice_lab(topo, ["ts1"], devices) as lab:
            assert all(dev.config.mtu == 1420 for dev in lab.devices.values())
            ts1 = lab.peers["ts1"]
            # Sessions with the peer before anything is measured.
            for name in ("esp32", "flood"):
                wait_until(lambda: lab.devices[name].ping(ts1.ip(4), count=1, wait=1), 20, f"{name} reaching ts1")
            yield lab


def drops(d):
    return {k: v for p in d.status()["ports"] for k, v in p["drops"].items() if v}


def sent_to_peer(d, hostname="ts1"):
    """Inner bytes lopower sent the tailnet peer. A packet that went in
    pieces counts each piece's IP header: more than its own length."""
    return tailnet_peer(d, hostname)["tx_bytes"]


def sent_to_device(d, name):
    """Packets lopower sent the device (each piece is one)."""
    return json.loads(d.ctl("device", "show", name, "--json").stdout)["wireguard"]["tx_packets"]


def big_ping(dev, addr, size, count=COUNT):
    """Echo requests of `size` bytes of data without DF; replies that came
    back whole and right (ping checks their data)."""
    r = dev.host.run(["ping", "-c", str(count), "-i", "0.1", "-W", "2", "-M", "dont", "-s", str(size), addr],
                     check=False, timeout=count * 2.5 + 10)
    got = [int(m.group(1)) for m in re.finditer(r"^(\d+) bytes from", r.stdout, flags=re.M)]
    assert "wrong data" not in r.stdout and "truncated" not in r.stdout, r.stdout
    return sum(1 for n in got if n == size + 8), r.stdout


def udp_echo(dev, host, count=COUNT):
    return run_client(dev, "udp-echo-nodf", host, UDP_PORT, DATAGRAM, count, timeout=count * 3 + 30)


def rss_kib(d):
    status = Path(f"/proc/{d.proc.pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.M).group(1))


def test_ipv4_packets_without_df_are_cut_for_the_tailnet_and_answers_put_together(lab):
    ts1, esp32, d = lab.peers["ts1"], lab.devices["esp32"], lab.lopowerd
    too_big, before = drop_count(d, "splice_too_big"), sent_to_peer(d)
    # 1392 bytes of ICMP data: 1420-byte packets, as the ESP32's datagrams.
    intact, out = big_ping(esp32, ts1.ip(4), DATAGRAM)
    assert intact >= COUNT - 1, f"{out}\ndrops: {drops(d)}"
    assert drop_count(d, "splice_too_big") == too_big, "nothing refused as too big: DF was clear"
    # In two pieces each, a second IPv4 header apiece; the answers came back
    # in pieces too (gVisor cuts at 1280) and reached the device whole.
    assert sent_to_peer(d) - before >= COUNT * (DATAGRAM + 28 + 20), sent_to_peer(d) - before


def test_a_devices_fragments_are_put_together_and_the_answer_cut_for_its_tunnel(lab):
    ts1, esp32, d = lab.peers["ts1"], lab.devices["esp32"], lab.lopowerd
    before = sent_to_device(d, "esp32")
    # 1600 bytes of data: 1628-byte packets the device's kernel cuts for its
    # 1420-byte tunnel. lopower puts them together, cuts them for the
    # tailnet; the 1628-byte answer, in pieces from the peer, is put
    # together and cut again for the device's tunnel.
    intact, out = big_ping(esp32, ts1.ip(4), 1600)
    assert intact >= COUNT - 1, f"{out}\ndrops: {drops(d)}"
    assert sent_to_device(d, "esp32") - before >= 2 * intact, "each answer in two pieces to the device"


def test_ipv6_fragments_are_put_together_and_cut_again(lab):
    dev6, d = lab.devices["dev6"], lab.lopowerd
    before = sent_to_device(d, "dev6")
    # The device's kernel sends 1440-byte (and 1948-byte) echo requests in
    # pieces; lopower puts them together, answers, and cuts the answer for
    # the tunnel with an identification of its own (IPv6 that arrived in
    # pieces may leave in pieces).
    for size in (DATAGRAM, 1900):
        intact, out = big_ping(dev6, LOPOWER_V6, size)
        assert intact >= COUNT - 1, f"{size}: {out}\ndrops: {drops(d)}"
    assert sent_to_device(d, "dev6") - before >= 2 * 2 * (COUNT - 1)
    # The same over IPv4 to lopower's own address.
    intact, out = big_ping(lab.devices["esp32"], LOPOWER_V4, 1900)
    assert intact >= COUNT - 1, f"{out}\ndrops: {drops(d)}"


def test_what_does_not_fit_a_buffer_is_dropped_and_counted(lab):
    dev6, d = lab.devices["dev6"], lab.lopowerd
    before = drop_count(d, "fragment_too_big")
    intact, _ = big_ping(dev6, LOPOWER_V6, 3000, count=2)
    assert intact == 0
    wait_until(lambda: drop_count(d, "fragment_too_big") >= before + 2, 10, "too-big datagrams counted")
    assert big_ping(dev6, LOPOWER_V6, DATAGRAM, count=2)[0] == 2, "and the next ones go through"


def test_with_df_the_device_still_gets_too_big(lab):
    ts1, esp32, d = lab.peers["ts1"], lab.devices["esp32"], lab.lopowerd
    before = drop_count(d, "splice_too_big")
    r = esp32.host.run(["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", ts1.ip(4)], check=False)
    assert "mtu = 1280" in r.stdout, r.stdout + r.stderr
    assert drop_count(d, "splice_too_big") == before + 1


def kernel_tun_peer(lab):
    """A second tailscaled, on a kernel TUN in its namespace (as on a
    server or laptop): the kernel's IP stack, which puts fragments together,
    serves its tailnet address. A UDP echo listens on every address."""
    if "tsk" not in lab.peers:
        tsk = lab.add_peer("tsk", join=False, extra_args=["--tun=tskern0"])
        tsk.up(lab.login_server, lab.authkey(), hostname="tsk", extra_args=["--netfilter-mode=off"])
        tsk.host.popen(["python3", "-c", "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                        f"s.bind(('0.0.0.0', {UDP_PORT}))\nwhile True:\n    d, p = s.recvfrom(65535)\n"
                        "    s.sendto(d, p)\n"])
        tsk.wait_peer("lopower", online=True, timeout=30)
        wait_until(lambda: tailnet_peer(lab.lopowerd, "tsk"), 30, "tsk in lopower's netmap")
    return lab.peers["tsk"]


def test_udp_datagrams_without_df_to_a_kernel_tun_tailscaled(lab):
    """The ESP32's 1392-byte datagram (one 1420-byte packet, no DF): cut in
    two for the tailnet, put together by the peer's kernel, echoed in two
    fragments, put together by lopower for the device."""
    tsk, esp32, d = kernel_tun_peer(lab), lab.devices["esp32"], lab.lopowerd
    wait_until(lambda: esp32.ping(tsk.ip(4), count=1, wait=1), 30, "esp32 reaching tsk")
    before = drops(d)
    r = udp_echo(esp32, tsk.ip(4))
    assert r["intact"] >= COUNT - 2, (r, drops(d), before)
    assert drop_count(d, "splice_too_big") == before.get("splice_too_big", 0)


@pytest.mark.xfail(strict=True, reason="tailscaled 1.98.10 (userspace networking) drops fragmented UDP: "
                   "RXChecksumOffload checks a first fragment's UDP checksum alone")
def test_udp_datagrams_without_df_to_a_userspace_tailscaled(lab):
    ts1, esp32 = lab.peers["ts1"], lab.devices["esp32"]
    assert udp_echo(esp32, ts1.ip(4), count=5)["intact"] >= 4


@pytest.mark.xfail(strict=True, reason="tailscaled 1.98.10 drops IPv6 fragments: its parser takes the Fragment "
                   "header for protocol 44, which its packet filter refuses")
def test_udp_datagrams_from_an_ipv6_device_to_tailscaled(lab):
    ts1, dev6 = lab.peers["ts1"], lab.devices["dev6"]
    assert udp_echo(dev6, ts1.ip(6), count=5)["intact"] >= 4


def test_a_fragment_flood_from_one_device_leaves_the_others_their_share(lab):
    ts1, d = lab.peers["ts1"], lab.lopowerd
    esp32, dev6, flood = lab.devices["esp32"], lab.devices["dev6"], lab.devices["flood"]
    flood_src = flood.config.addresses[0].split("/")[0]
    rss, sent = [], 0
    pool_before = d.status()["packet_pool"]["in_use"]
    for round_ in range(3):
        refused = drop_count(d, "fragment_peer_limit")
        # Counted from before the flood: read after it stops, the baseline
        # could already include every piece it left (they time out 2 s after
        # its last one, which a busy machine can take to get here).
        timed_out = drop_count(d, "fragment_timeout")
        log = flood.host.topo.tmpdir / f"flood-{round_}.log"
        proc = flood.host.popen(["python3", str(APPS / "fragment_flood.py"), flood_src, ts1.ip(4), "3000", "60"],
                                log=str(log))
        try:
            # The flood reaches lopower and is held to its share...
            wait_until(lambda: drop_count(d, "fragment_peer_limit") >= refused + 500, 30,
                       "the flood's datagrams beyond its share to be refused")
            # ...while the others' datagrams are put together on both sides:
            # the device's pieces, the tailnet peer's, and IPv6's.
            v4, out4 = big_ping(esp32, ts1.ip(4), 1600)
            v6, out6 = big_ping(dev6, LOPOWER_V6, DATAGRAM)
            assert proc.poll() is None, "the flood was still on while the others' traffic ran"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        assert v4 >= COUNT - 2 and v6 >= COUNT - 2, f"{out4}\n{out6}\ndrops: {drops(d)}"
        sent += json.loads(log.read_text().splitlines()[-1])["sent"]
        # What the flood left in the table times out (2 s) and is freed.
        wait_until(lambda: drop_count(d, "fragment_timeout") > timed_out, 10, "the flood's pieces to time out")
        wait_until(lambda: d.status()["packet_pool"]["in_use"] <= pool_before + 64, 10,
                   f"the flood's pieces back in the pool ({pool_before} buffers in use before)")
        rss.append(rss_kib(d))
    assert sent > 3000, sent
    assert drop_count(d, "fragment_table_full") == 0, f"the flood never filled the table: {drops(d)}"
    # Memory stays where the first round left it: the table and what it
    # holds are bounded, and what the flood held went back to the pool.
    # (Not under ASan: its quarantine keeps what the status queries free.)
    if not os.environ.get("LOPOWER_SANITIZED"):
        assert rss[-1] - rss[0] < 4096, f"lopowerd's RSS grew by {rss[-1] - rss[0]} KiB over the floods: {rss}"
    # Every buffer the floods passed through is back in the pool (a few
    # may sit in TX queues at any moment).
    wait_until(lambda: d.status()["packet_pool"]["in_use"] <= pool_before + 64, 10,
               f"the packet pool back to its {pool_before} buffers in use")
    assert big_ping(esp32, ts1.ip(4), 1600, count=5)[0] >= 4, "and afterwards, everything still works"
