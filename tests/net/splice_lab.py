"""The lab the end-to-end splice tests share: a real tailnet (headscale +
tailscaled peers, tests/net/tailnet_lab.py) with lopowerd on its LAN, the
peers' services on 127.0.0.1 in their namespaces (tailscaled's userspace
networking hands connections to its tailnet address to them), wireguard-go
devices enrolled with ``lopower-ctl device add`` and resolving through
lopower's DNS, and the helpers the tests read lopowerd with.

    with splice_lab(topo, peers=["ts1"], devices=[Device("dev1"), Device("dev4", ipv4_only=True, esp32=True)]) as lab:
        lab.devices["dev1"].ping(lab.peers["ts1"].ip(4))
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lopower_net import wait_until
from lopowerd import Lopowerd, port_toml
from tailnet_lab import GW_IF, TailnetLab, attach_to_switch
from wg_device import WgDevice, config_from_add_output

APPS = Path(__file__).resolve().parents[1] / "e2e" / "apps"
HTTP_PORT, SINK_PORT, ECHO_PORT, UDP_PORT, STREAM_PORT = 8000, 9001, 9002, 9003, 9004
SUFFIX = "tailnet.test"
MAGIC_DNS = {"dns": {"magic_dns": True, "base_domain": SUFFIX}}
UPSTREAM_NAME, UPSTREAM_ADDR = "upstream.example.test", "198.18.40.99"


@dataclass
class Device:
    """A device to enroll: ``esp32`` configures it as ESP32 WireGuard
    libraries are (everything IPv4 into the tunnel); ``edit`` rewrites the
    enrolled config text before it is brought up."""
    name: str
    ipv4_only: bool = False
    esp32: bool = False
    edit: object = None
    flags: list[str] = field(default_factory=list)

    @property
    def ipv6_only(self) -> bool:
        return "--ipv6-only" in self.flags

    @property
    def lopower_address(self) -> str:
        """lopower's device-side address of a family the device's tunnel
        carries: the DNS server its resolv.conf names."""
        return "10.90.0.1" if self.ipv4_only else "fd7a:115c:a1e0:9909::1"


def lopowerd_toml(key_file, extra: str = "", devices: str = "", tailnet: str = "") -> str:
    """``devices``, ``tailnet``: more keys of those tables, one per line."""
    return (f'[tailnet]\ncontrol_url = "http://198.18.40.2:8080"\nhostname = "lopower"\n'
            f'auth_key_file = "{key_file}"\n{tailnet}\n[devices]\nendpoint = "198.18.40.1:51820"\n{devices}\n'
            f'[dns]\nupstreams = ["198.18.40.2"]\n' + extra)


def use_lopower_dns(host, nameserver):
    """``ip netns exec`` mounts /etc/netns/<ns>/resolv.conf over
    /etc/resolv.conf: the device's resolver is lopower, as its config's DNS
    line says."""
    d = Path("/etc/netns") / host.netns
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:2 attempts:2\n")
    return d


def start_services(lab, ts) -> None:
    """The peer's services on 127.0.0.1 in its namespace: lab.www over
    HTTP, and tests/e2e/apps/services.py's."""
    ts.host.popen(["python3", "-m", "http.server", str(HTTP_PORT), "--bind", "127.0.0.1", "--directory", str(lab.www)])
    for kind, port in (("sink", SINK_PORT), ("echo", ECHO_PORT), ("udp-echo", UDP_PORT), ("udp-stream", STREAM_PORT)):
        ts.host.popen(["python3", str(APPS / "services.py"), kind, str(port)])


def enroll(lab, dev: Device, index: int) -> WgDevice:
    """``dev`` in a namespace of its own on the LAN (198.18.40.<index>), enrolled and up."""
    host = lab.topo.host(dev.name)
    attach_to_switch(lab.topo, host, [f"198.18.40.{index}/24", f"fd00:198:18:40::{index}/64"])
    return bring_up(lab, host, dev)


def bring_up(lab, host, dev: Device) -> WgDevice:
    """``dev`` enrolled with ``lopower-ctl device add`` and brought up in
    ``host`` (however that reaches lopower) from the config it printed."""
    flags = dev.flags + (["--ipv4-only"] if dev.ipv4_only else [])
    config = config_from_add_output(lab.lopowerd.ctl("device", "add", dev.name, *flags).stdout)
    if dev.esp32:
        config = re.sub(r"^AllowedIPs = .*$", "AllowedIPs = 0.0.0.0/0", config, flags=re.M)
    if dev.edit:
        config = dev.edit(config)
    return WgDevice(host, config).up()


@contextlib.contextmanager
def splice_lab(topo, peers=("ts1",), devices=(Device("dev1"),), dataplane_toml: str = "", extra_toml: str = "",
               headscale_extra: dict | None = None, dnsmasq_args=(), derp: str = "none", dpdk_toml: str = "",
               more_ports=None, devices_toml: str = "", gw_device: str = "net_af_packet", tailnet_toml: str = ""):
    """``derp``: the lab's DERP mode (tailnet_lab.TailnetLab); with
    "embedded", lopowerd dials headscale's relay over plain HTTP too.
    ``more_ports(lab)``: wires further ports up before lopowerd starts and
    returns their [[port]] tables. ``gw_device``: the DPDK driver lopowerd
    reads its LAN port with, a key of GW_DEVICES."""
    lab = TailnetLab(topo, peers=list(peers), derp=derp, headscale_kw={"extra_config": headscale_extra or MAGIC_DNS})
    if derp == "embedded":
        extra_toml = "[derp]\nplain_http = true\n\n" + extra_toml
    lab.topo = topo
    resolv_dirs = []
    try:
        # The upstream resolver for names lopower does not own.
        lab.ctl.popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--listen-address=198.18.40.2",
                       "--bind-interfaces", f"--address=/{UPSTREAM_NAME}/{UPSTREAM_ADDR}", "--pid-file=",
                       *dnsmasq_args])
        key_file = topo.tmpdir / "authkey"
        key_file.write_text(lab.authkey())
        key_file.chmod(0o600)
        lab.more_ports = more_ports(lab) if more_ports else ""
        lab.lopowerd_kw = {"extra_toml": lopowerd_toml(key_file, extra_toml, devices_toml, tailnet_toml),
                           "dataplane_toml": dataplane_toml, "dpdk_toml": dpdk_toml}
        start_gateway(lab, gw_device)
        lab.www = topo.tmpdir / "www"
        lab.www.mkdir()
        for ts in lab.peers.values():
            ts.wait_peer("lopower", online=True, timeout=30)
            start_services(lab, ts)
        lab.devices = {dev.name: enroll(lab, dev, i) for i, dev in enumerate(devices, start=50)}
        for dev in devices:
            address = "fd7a:115c:a1e0:9909::1" if dev.ipv6_only else "10.90.0.1"
            assert lab.devices[dev.name].ping(address, count=3), f"{dev.name}'s tunnel up"
            resolv_dirs.append(use_lopower_dns(lab.devices[dev.name].host, dev.lopower_address))
        yield lab
    finally:
        for d in resolv_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if getattr(lab, "lopowerd", None):
            lab.lopowerd.stop()
        lab.close()


# The LAN port's device string for each driver lopowerd can read the lab's
# veth with. net_af_xdp: the veth has one queue; libxdp loads its own XDP
# program (redirect to the socket) in native veth mode.
GW_DEVICES = {
    "net_af_packet": f"net_af_packet0,iface={GW_IF}",
    "net_af_xdp": f"net_af_xdp0,iface={GW_IF},start_queue=0,queue_count=1",
}


def start_gateway(lab, gw_device: str = "net_af_packet"):
    """Starts lab.lopowerd on its LAN port through ``gw_device`` (GW_DEVICES)
    and waits until it is on the tailnet. A restart with another driver keeps
    the state directory: the same tailnet node."""
    ports = port_toml("lan", GW_DEVICES[gw_device], lab.addrs["gw"], role="both")
    if lab.more_ports:
        ports += "\n" + lab.more_ports
    lab.lopowerd = Lopowerd(lab.gw, ports, **lab.lopowerd_kw).start()
    d = lab.lopowerd
    wait_until(lambda: d.status()["tailnet"]["backend_state"] == "Running", 30, "lopowerd on the tailnet")
    return d


def getent(dev, *args):
    """The device's resolver (lopower's DNS, use_lopower_dns) asked through glibc."""
    return dev.host.run(["getent", *args], check=False, timeout=20)


def diagnosis(d):
    """What lopowerd saw, for a failure message."""
    drops = {k: v for p in d.status()["ports"] for k, v in p["drops"].items() if v}
    return f"\ndrops: {drops}\nflows:\n{d.ctl('flows').stdout[-3000:]}"


def drop_count(d, reason):
    return sum(p["drops"].get(reason, 0) for p in d.status()["ports"])


def run_client(dev, *args, timeout=120, d=None):
    r = dev.host.run(["python3", str(APPS / "clients.py"), *map(str, args)], check=False, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr[-500:] + (diagnosis(d) if d else "")
    return json.loads(r.stdout.strip().splitlines()[-1])


def start_paced_upload(dev, ts, size, seconds, timeout=240):
    """An upload from ``dev`` to ``ts`` spread over ``seconds``, on a thread
    of its own: (thread, result dict filled when it ends)."""
    result = {}
    t = threading.Thread(target=lambda: result.update(
        run_client(dev, "paced-upload", ts.ip(4), SINK_PORT, size, seconds, timeout=timeout)))
    t.start()
    return t, result


def flows(d, device=None):
    args = ["flows", "--json"] + (["--device", device] if device else [])
    return json.loads(d.ctl(*args).stdout)["flows"]


def tailnet_handshakes(d):
    """The tailnet interface's handshake counters."""
    return d.status()["tailnet"].get("handshakes", {})


def device_handshakes(d):
    return d.status()["wireguard"]["handshakes"]


def tailnet_peer(d, hostname):
    return next((p for p in d.status()["tailnet"]["peers"] if p["hostname"] == hostname), None)
