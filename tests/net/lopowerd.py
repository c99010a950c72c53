"""Run lopowerd inside a test namespace and talk to it with lopower-ctl.

Every end-to-end and interop test starts its lopowerd through here, so the
binaries, the DPDK options for this machine (no hugepages, no PCI, two cores)
and the teardown are decided in one place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Optional

from lopower_net import Host, sh, wait_until

SOURCE_DIR = Path(os.environ.get("LOPOWER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("LOPOWER_BUILD_DIR", SOURCE_DIR / "build"))
LOPOWERD = BUILD_DIR / "lopowerd"
LOPOWER_CTL = BUILD_DIR / "tools" / "lopower-ctl" / "lopower-ctl"
# Leaks LeakSanitizer may not count against lopowerd: library frames only
# (the file says which and why). An ASan build reads it; others ignore it.
LSAN_SUPPRESSIONS = Path(__file__).with_name("lsan.supp")


def lopowerd_env() -> dict[str, str]:
    """The environment lopowerd runs with: the caller's, with the
    suppressions added to any LSAN_OPTIONS it already has."""
    env = dict(os.environ)
    env["LSAN_OPTIONS"] = ":".join(filter(None, [env.get("LSAN_OPTIONS"), f"suppressions={LSAN_SUPPRESSIONS}"]))
    return env


def af_packet_wire(topo, gw: Host, gw_if: str, peer: Host, peer_if: str, peer_addrs: list[str]) -> None:
    """A veth from ``gw`` (where lopowerd reads ``gw_if`` with net_af_packet)
    to ``peer``, set up the way a real wire behaves.

    veth hands on TCP/UDP with checksums left to an offload that never
    happens (packet sockets see them unfinished); a real NIC delivers them
    complete, so the offload is turned off on the peer's end. lopowerd's own
    end it sets up itself (control/af_packet_host.h: ingress drop, offloads).
    """
    topo.veth(gw, gw_if, peer, peer_if, b_addrs=peer_addrs)
    peer.run(["ethtool", "-K", peer_if, "tx", "off"])


BRIDGE_NETFILTER = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
                    "net.bridge.bridge-nf-call-arptables")


def switch_without_netfilter(sw: Host) -> None:
    """Bridged frames cross the switch as a wire carries them. Where the
    kernel has br_netfilter (built into this machine's; container runtimes
    load the module), every new namespace starts with these sysctls at 1 and
    the bridge hands each frame to iptables and a route lookup: a fifth of
    the kernel time of whoever sends through it (profiled: issue 15's
    side-by-side lab), in a lab that stands for a wire. The sysctls are per
    namespace; without br_netfilter there is nothing to turn off."""
    for key in BRIDGE_NETFILTER:
        if Path("/proc/sys", *key.split(".")).exists():
            sw.sysctl(key, "0")


def lan_switch(topo, gw: Host, gw_if: str, hosts: dict[Host, list[str]]) -> None:
    """One L2 segment: a bridge in namespace "sw" joining lopowerd's port
    ``gw_if`` (read with net_af_packet) and an ``eth0`` in each of ``hosts``
    (with its addresses)."""
    sw = topo.host("sw")
    sw.ip("link", "add", "br0", "type", "bridge")
    switch_without_netfilter(sw)
    sw.link_up("br0")
    ports = [(gw, gw_if, [])] + [(h, "eth0", addrs) for h, addrs in hosts.items()]
    for i, (host, ifname, addrs) in enumerate(ports):
        topo.veth(sw, f"p{i}", host, ifname, b_addrs=addrs)
        sw.ip("link", "set", f"p{i}", "master", "br0")
        for h, name in ((sw, f"p{i}"), (host, ifname)):
            if host is not gw or h is sw:  # lopowerd sets up its own end (control/af_packet_host.h)
                h.run(["ethtool", "-K", name, "tx", "off"])  # finished checksums, as a real wire carries


def port_toml(name: str, device: str, addresses: list[str], role: str = "both",
              **extra: object) -> str:
    lines = ["[[port]]", f'name = "{name}"', f'device = "{device}"', f'role = "{role}"',
             "addresses = [" + ", ".join(f'"{a}"' for a in addresses) + "]"]
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


class Lopowerd:
    """One lopowerd process in ``host``, configured from ``ports_toml``."""

    def __init__(self, host: Host, ports_toml: str, extra_toml: str = "",
                 name: str = "lopowerd", dataplane_toml: str = "", dpdk_toml: str = "",
                 daemon_toml: str = "") -> None:
        self.host = host
        self.dir = host.topo.tmpdir / f"{host.name}-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "ctl.sock"
        self.config = self.dir / "lopower.toml"
        self.config.write_text(textwrap.dedent(f"""\
            [daemon]
            state_dir = "{self.dir / 'state'}"
            ctl_socket = "{self.socket}"
            log_level = "debug"
            {daemon_toml}
            [dpdk]
            lcores = "0-1"
            no_huge = true
            no_pci = true
            memory_mb = 256
            {dpdk_toml}
            [dataplane]
            mbufs = 4095
            idle = "adaptive"
            """) + dataplane_toml + "\n" + extra_toml + "\n" + ports_toml)
        self.proc: Optional[subprocess.Popen] = None
        self.log = self.dir / "lopowerd.log"

    def start(self, timeout: float = 30) -> "Lopowerd":
        self.proc = self.host.popen([str(LOPOWERD), "--config", str(self.config)], log=str(self.log),
                                    env=lopowerd_env())
        wait_until(lambda: self._answers() or self._died(), timeout, f"lopowerd to answer on {self.socket}")
        if self.proc.poll() is not None:
            raise AssertionError(f"lopowerd exited with {self.proc.returncode}:\n{self.log_text()}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def _answers(self) -> bool:
        return self.socket.exists() and self.ctl("status", check=False).returncode == 0

    def ctl(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return sh([str(LOPOWER_CTL), "--socket", str(self.socket), *args], check=check, timeout=timeout)

    def status(self) -> dict:
        return json.loads(self.ctl("status", "--json").stdout)

    def port_status(self, name: str) -> dict:
        return next(p for p in self.status()["ports"] if p["name"] == name)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Stops lopowerd; fails when its log holds a sanitizer report (the
        `sanitize` suite runs everything against an ASan/UBSan build)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"lopowerd did not stop within {timeout}s:\n{self.log_text()}")
        log = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in log, f"lopowerd reported {marker!r}:\n{log[-4000:]}"
        return rc

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def send_udp(host: Host, dst: str, port: int, payload: bytes, count: int = 1) -> None:
    """Send ``count`` UDP datagrams carrying ``payload`` from ``host``."""
    family = "AF_INET6" if ":" in dst else "AF_INET"
    code = (f"import socket;s=socket.socket(socket.{family},socket.SOCK_DGRAM);"
            f"[s.sendto(bytes.fromhex('{payload.hex()}'),('{dst}',{port})) for _ in range({count})]")
    host.run(["python3", "-c", code])


def wait_counter(fn, at_least: int, timeout: float = 10, what: str = "counter") -> int:
    """Wait until ``fn()`` reaches ``at_least``; returns the value seen."""
    return wait_until(lambda: (v := fn()) >= at_least and v, timeout, f"{what} >= {at_least}")
