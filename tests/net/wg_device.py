"""A real WireGuard device for tests: wireguard-go on a TUN in a namespace,
configured from the exact wg-quick text lopower printed.

wg-quick itself is not used: it wants resolvconf and touches the host. This
does what wg-quick does with the same text: `wg setconf` with the
wg-quick-only keys (Address, DNS, MTU) removed, then addresses, MTU, link up
and a route per AllowedIPs entry.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import tempfile
from dataclasses import dataclass, field

from lopower_net import Host, wait_until

WG_QUICK_ONLY = {"address", "dns", "mtu", "table", "preup", "postup", "predown", "postdown", "saveconfig"}


def config_from_add_output(text: str) -> str:
    """The wg-quick config `lopower-ctl device add` printed, without the QR
    code drawn after it."""
    lines = []
    for line in text.splitlines():
        if "\x1b" in line or "\u2580" in line or "\u2584" in line or "\u2588" in line:
            break
        lines.append(line)
    return "\n".join(lines).strip() + "\n"


@dataclass
class WgQuickConfig:
    """The parts of a wg-quick file a test needs, plus the wg(8) text."""
    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    mtu: int | None = None
    allowed_ips: list[str] = field(default_factory=list)
    endpoint: str | None = None
    keepalive: int | None = None
    setconf_text: str = ""

    @staticmethod
    def parse(text: str) -> "WgQuickConfig":
        cfg = WgQuickConfig()
        out = []
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("["):
                out.append(line)
                continue
            key, _, value = (part.strip() for part in line.partition("="))
            lk = key.lower()
            values = [v.strip() for v in value.split(",") if v.strip()]
            if lk == "address":
                cfg.addresses += values
            elif lk == "dns":
                cfg.dns += values
            elif lk == "mtu":
                cfg.mtu = int(value)
            if lk in WG_QUICK_ONLY:
                continue
            if lk == "allowedips":
                cfg.allowed_ips += values
            elif lk == "endpoint":
                cfg.endpoint = value
            elif lk == "persistentkeepalive":
                cfg.keepalive = int(value)
            out.append(f"{key} = {value}")
        cfg.setconf_text = "\n".join(out) + "\n"
        return cfg


class WgDevice:
    """wireguard-go interface ``ifname`` (default ``wg-<host>``) in ``host``.

    The name is unique per host and per test run because wireguard-go's
    control socket lives in /var/run/wireguard, which namespaces share: two
    runs on one machine (a CI run beside a developer's) with the same host
    names would otherwise take each other's socket, and the second
    wireguard-go never comes up.
    """

    def __init__(self, host: Host, config_text: str, ifname: str | None = None) -> None:
        self.host = host
        self.ifname = ifname or f"wg{os.getpid() & 0xffff:04x}-{host.name}"[:15]
        self.config = WgQuickConfig.parse(config_text)
        self.proc = None

    def up(self) -> "WgDevice":
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1", WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD="1",
                   LOG_LEVEL="debug")
        self.proc = self.host.popen(["wireguard-go", "-f", self.ifname], env=env)
        # Go's start-up on a busy 2-core machine (a CI run beside a flood) took over 10 s.
        wait_until(lambda: self.host.ip("link", "show", self.ifname, check=False).returncode == 0, 60,
                   f"wireguard-go to create {self.ifname}")
        # Its control socket comes after the interface: `wg` finding none
        # asks the kernel module instead ("Protocol not supported"), seen
        # when the machine was busy between the two.
        wait_until(lambda: os.path.exists(self.control_socket), 60, f"wireguard-go's socket for {self.ifname}")
        self.setconf(self.config.setconf_text)
        for addr in self.config.addresses:
            self.host.add_addr(self.ifname, addr)
        if self.config.mtu:
            self.host.ip("link", "set", "dev", self.ifname, "mtu", str(self.config.mtu))
        self.host.link_up(self.ifname)
        for prefix in self.config.allowed_ips:
            net = ipaddress.ip_network(prefix, strict=False)
            family = "-6" if net.version == 6 else "-4"
            self.host.run(["ip", family, "route", "replace", str(net), "dev", self.ifname])
        return self

    @property
    def control_socket(self) -> str:
        """Where wireguard-go listens for `wg` (shared by every namespace)."""
        return f"/var/run/wireguard/{self.ifname}.sock"

    def down(self) -> None:
        """Stops wireguard-go (its interface, sessions and keys in memory
        go with it), as a device that reboots."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None
        wait_until(lambda: self.host.ip("link", "show", self.ifname, check=False).returncode != 0, 30,
                   f"{self.ifname} to go away")

    def setconf(self, text: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(text)
        try:
            self.host.run(["wg", "setconf", self.ifname, f.name])
        finally:
            os.unlink(f.name)

    def dump(self) -> list[list[str]]:
        return [line.split("\t") for line in self.host.run(["wg", "show", self.ifname, "dump"]).stdout.splitlines()]

    def latest_handshake(self) -> int:
        """Unix time of the latest handshake with the (only) peer; 0 = none."""
        peers = self.dump()[1:]
        return int(peers[0][4]) if peers else 0

    def wait_handshake(self, after: int = 0, timeout: float = 20) -> int:
        return wait_until(lambda: (t := self.latest_handshake()) > after and t, timeout, "a WireGuard handshake")

    def ping(self, addr: str, count: int = 3, interval: float = 0.2, wait: float = 2) -> bool:
        out = self.host.run(["ping", "-c", str(count), "-i", str(interval), "-W", str(wait), addr], check=False,
                            timeout=count * (interval + wait) + 10)
        return out.returncode == 0

    def ping_loss(self, addr: str, count: int, interval: float = 0.05) -> float:
        """Fraction of `count` echo requests that got no reply."""
        out = self.host.run(["ping", "-c", str(count), "-i", str(interval), "-W", "1", addr], check=False,
                            timeout=count * interval + 30)
        for line in out.stdout.splitlines():
            if "packet loss" in line:
                return float(line.split("%")[0].split()[-1]) / 100
        return 1.0
