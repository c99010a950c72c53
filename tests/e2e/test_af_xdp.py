"""lopowerd with its LAN port on DPDK's net_af_xdp PMD instead of
net_af_packet, in the splice lab (tests/net/splice_lab.py, gw_device):

    dev1 (wireguard-go) -- WireGuard --> port0 (veth; libxdp's XDP program
        redirects every frame to lopowerd's AF_XDP socket) lopowerd
        -- spliced --> ts1 (tailscaled; its HTTP server on 127.0.0.1)

The device handshakes (splice_lab pings lopower's device-side address over
the tunnel before the tests), resolves the peer's MagicDNS name through
lopower's DNS and fetches a file by it over a spliced TCP flow.

On a kernel or host without AF_XDP (no CONFIG_XDP_SOCKETS, the PMD package
librte-net-af-xdp23 missing) lopowerd cannot start its port: the tests skip,
naming the line of lopowerd's log that said so.
"""

import hashlib
import os
import re

import pytest

from headscale import HEADSCALE
from lopower_net import Topology
from splice_lab import (GW_IF, HTTP_PORT, SUFFIX, Device, diagnosis, drop_count, flows, getent, splice_lab)
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

FOUR_MB = 4 * 1024 * 1024

# What DPDK 22.11's net_af_xdp and EAL log when the host cannot give lopowerd
# an AF_XDP socket: socket(AF_XDP) refused (umem), the socket or its XDP
# program refused, or no net_af_xdp driver (the plugin not installed: EAL then
# knows no bus for the name). Nothing else skips: a wrong interface name
# ("Failed to probe") or any other start failure fails the test.
AF_XDP_UNAVAILABLE = re.compile(r"Failed to create umem|Failed to create xsk socket|Failed to configure xdp socket"
                                r"|failed to parse device \"net_af_xdp")


def af_xdp_unavailable(failure: AssertionError) -> str:
    """The log line saying the host has no AF_XDP for lopowerd, or ""."""
    return next((line.strip() for line in str(failure).splitlines() if AF_XDP_UNAVAILABLE.search(line)), "")


@pytest.fixture(scope="module")
def lab():
    started = False
    with Topology() as topo:
        try:
            with splice_lab(topo, ["ts1"], [Device("dev1")], gw_device="net_af_xdp") as lab:
                started = True
                (lab.www / "four.bin").write_bytes(os.urandom(FOUR_MB))
                yield lab
                return
        except AssertionError as e:
            reason = "" if started else af_xdp_unavailable(e)  # only lopowerd's start is judged
            if not reason:
                raise
        pytest.skip(f"net_af_xdp cannot run on this host: lopowerd said {reason!r}")


def test_the_lan_port_is_read_through_af_xdp(lab):
    port = lab.lopowerd.port_status("lan")
    assert port["driver"] == "net_af_xdp", port
    # The PMD attached its XDP program to the veth: frames go to lopowerd's
    # socket, not to the kernel's stack.
    link = lab.gw.run(["ip", "-details", "link", "show", GW_IF]).stdout
    assert re.search(r"\bprog/xdp\b|\bxdp(generic|drv)?\b", link), link


def test_name_resolved_through_lopower_then_fetched_over_a_spliced_flow(lab):
    ts1, dev1, d = lab.peers["ts1"], lab.devices["dev1"], lab.lopowerd
    rx_before = d.port_status("lan")["rx_packets"]
    name = f"ts1.{SUFFIX}"
    r = getent(dev1, "ahosts", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert set(ts1.ips()) <= {line.split()[0] for line in r.stdout.splitlines()}, r.stdout

    out = lab.www.parent / "got.bin"
    no_flow = drop_count(d, "splice_no_flow")
    r = dev1.host.run(["curl", "-sS", "-m", "60", "-o", str(out), f"http://{name}:{HTTP_PORT}/four.bin"],
                      check=False, timeout=90)
    assert r.returncode == 0, r.stderr + diagnosis(d)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256((lab.www / "four.bin").read_bytes()).digest()
    assert drop_count(d, "splice_no_flow") == no_flow, diagnosis(d)
    tcp = [f for f in flows(d, "dev1") if f["protocol"] == "tcp" and f["destination"].endswith(f":{HTTP_PORT}")]
    assert tcp and max(f["bytes_in"] for f in tcp) > FOUR_MB, tcp
    # The file came in through the AF_XDP port: the device's ACKs and the
    # tailnet's packets carrying it, thousands of frames.
    assert d.port_status("lan")["rx_packets"] - rx_before > FOUR_MB // 1500, d.port_status("lan")
