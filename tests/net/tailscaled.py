"""A real tailnet peer for tests: tailscaled (userspace networking) in a
namespace of a :class:`lopower_net.Topology`, driven with the tailscale CLI.

    ts = Tailscaled(host, "ts1").start()
    ts.up(headscale.url, authkey, hostname="ts1")
    ts.ip(4)                          # "100.64.0.1"
    ok, out = ts.ping("100.64.0.2")   # disco ping; out: "pong from ... via 198.18.40.12:41641 in 1ms"
    ts.status()["Peer"]               # `tailscale status --json`

Staying local.  tailscaled runs with ``--no-logs-no-support`` (no log
uploads) and this environment (:data:`LOCAL_ENV`):

- ``TS_DEBUG_USE_DERP_HTTP=1``: DERP over plain HTTP (a test DERP --
  headscale's embedded one or derper -- has no certificate);
- ``TS_DISABLE_PORTMAPPER=1``: no UPnP/NAT-PMP/PCP probes;
- ``TS_PANIC_IF_HIT_MAIN_CONTROL=1``: panics instead of talking to
  controlplane.tailscale.com should a login server be missing;
- ``TS_ASSUME_NETWORK_UP_FOR_TEST=1``: the control client never pauses for
  "network down" (a test namespace has no default route);
- ``TS_LOGS_DIR``: its log-config file goes to the peer's dir.

Everything else tailscaled dials comes from the netmap: the control URL,
the DERP map (headscale's, which lists only test hosts; see headscale.py)
and peers' endpoints -- except two captive-portal checks, which after the
DERP map's nodes try http://controlplane.tailscale.com/generate_204 and
http://login.tailscale.com/generate_204:

- LocalBackend's, run when a health warning says connectivity is impaired
  (e.g. its DERP home is unreachable): headscale.py's policies switch it
  off with the node attribute ``disable-captive-portal-detection``;
- netcheck's own, run on a full netcheck when no STUN answer came within
  200 ms: no node attribute stops it; the lab's STUN answers in well under
  that.

Both need DNS first: tailscaled gets a resolv.conf of its own naming only
127.0.0.1 (``local_resolver``, bind-mounted inside the mount namespace
``ip netns exec`` makes), so a lookup is refused on the spot.  And a test
namespace has no default route: anything aimed off the LAN fails with
ENETUNREACH and never leaves.  (Before the nameserver change a lookup went
to the machine's resolver and failed with "network is unreachable".)
Building tailscaled with ``-tags ts_omit_captiveportal`` would remove both
checks.

Serving something from this peer (for a later test): with
``--tun=userspace-networking`` tailscaled's netstack takes TCP connections to
the peer's own Tailscale IPs (v4 and v6 alike) and forwards them to
``127.0.0.1:<same port>`` in its namespace (wgengine/netstack), so
``host.popen(["python3", "-m", "http.server", "8000", "--bind",
"127.0.0.1"])`` in this namespace serves ``http://<this peer's
100.64.x.y>:8000`` to the tailnet; no ``tailscale serve`` needed (that is
the other way; not tried here).  test_tailnet_lab.py checks it with
``tailscale nc`` (:meth:`Tailscaled.nc`) from another peer.  This peer itself
has no kernel route into the tailnet: to reach tailnet addresses from its
namespace use :meth:`Tailscaled.nc` or tailscaled's ``--socks5-server`` /
``--outbound-http-proxy-listen`` (``extra_args``).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

from lopower_net import Host, LogFile, wait_until

CACHE = Path(os.environ.get("LOPOWER_CACHE", Path.home() / ".cache" / "lopower"))
TAILSCALED = Path(os.environ.get("TAILSCALED", CACHE / "bin" / "tailscaled"))
TAILSCALE = Path(os.environ.get("TAILSCALE", CACHE / "bin" / "tailscale"))
DEFAULT_PORT = 41641

LOCAL_ENV = {
    "TS_DEBUG_USE_DERP_HTTP": "1",
    "TS_DISABLE_PORTMAPPER": "1",
    "TS_PANIC_IF_HIT_MAIN_CONTROL": "1",
    "TS_ASSUME_NETWORK_UP_FOR_TEST": "1",
    "TS_NO_LOGS_NO_SUPPORT": "1",
}

PING_MODES = {"disco": [], "icmp": ["--icmp"], "tsmp": ["--tsmp"], "peerapi": ["--peerapi"]}


def binaries_missing() -> list[str]:
    """The peer binaries that are not there or not runnable by us (for
    skip messages)."""
    return [str(p) for p in (TAILSCALED, TAILSCALE) if not os.access(p, os.X_OK)]


class Tailscaled(LogFile):
    """tailscaled ``name`` in namespace ``host``.

    ``state``: ``"file"`` (default: ``<dir>/state``, survives a restart of
    tailscaled, registers as a normal node) or ``"mem:"`` (nothing stored;
    tailscaled then registers as an ephemeral node).  ``port``: tailscaled's
    UDP port (fixed, so the endpoints it advertises are predictable; 0 lets
    it pick).  ``env`` adds to / overrides :data:`LOCAL_ENV`; ``extra_args``
    go to tailscaled (e.g. ``["--socks5-server=127.0.0.1:1080"]``).
    """

    def __init__(self, host: Host, name: Optional[str] = None, port: int = DEFAULT_PORT,
                 state: str = "file", env: Optional[dict[str, str]] = None,
                 extra_args: Iterable[str] = (), verbose: int = 1, local_resolver: bool = True,
                 binary: Path = TAILSCALED, cli: Path = TAILSCALE) -> None:
        for path in (binary, cli):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: run tools/setup")
        self.host = host
        self.name = name or host.name
        self.port = port
        self.binary, self.cli_path = binary, cli
        self.dir = host.topo.tmpdir / f"{host.name}-{self.name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "sock"
        self.state = str(self.dir / "state") if state == "file" else state
        self.log_path = self.dir / "tailscaled.log"
        self.env = dict(os.environ, **LOCAL_ENV, TS_LOGS_DIR=str(self.dir))
        self.env.update(env or {})
        self.extra_args = list(extra_args)
        self.verbose = verbose
        self.local_resolver = local_resolver
        self.proc: Optional[subprocess.Popen] = None

    def __repr__(self) -> str:
        return f"Tailscaled({self.name!r} in {self.host.netns!r})"

    # --- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> "Tailscaled":
        """Starts tailscaled and waits until its LocalAPI answers."""
        if self.running:
            raise RuntimeError(f"{self} is already running")
        argv = [str(self.binary), "--tun=userspace-networking", f"--state={self.state}",
                f"--socket={self.socket}", f"--statedir={self.dir}", f"--port={self.port}",
                "--no-logs-no-support", f"--verbose={self.verbose}", *self.extra_args]
        if self.local_resolver:
            # `ip netns exec` runs us in a mount namespace of our own (a
            # slave of the root one): the bind mount stays in there.
            resolv = self.dir / "resolv.conf"
            resolv.write_text("# tailscaled in a test namespace: no DNS but loopback\n"
                              "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            argv = ["sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv), *argv]
        self.proc = self.host.popen(argv, log=str(self.log_path), env=self.env)

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"{self} exited ({self.proc and self.proc.returncode}):\n"
                                     f"{self.log_tail()}")
            return self.socket.exists() and self.cli("status", "--json", check=False).returncode in (0, 1)
        self.host.wait_for(ready, timeout, what=f"{self.name}'s LocalAPI on {self.socket}")
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self, timeout: float = 20.0) -> "Tailscaled":
        """Stops and starts tailscaled; with file state it comes back as the
        same node and reconnects by itself (no ``up`` needed)."""
        self.stop()
        return self.start(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> Optional[int]:
        """Stops tailscaled (SIGKILL after ``timeout``); its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        rc, self.proc = self.proc.returncode, None
        return rc

    def __enter__(self) -> "Tailscaled":
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- CLI -------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """``tailscale --socket=<sock> ARGS...`` run in the namespace."""
        return self.host.run([str(self.cli_path), f"--socket={self.socket}", *args],
                             check=check, timeout=timeout)

    def up(self, login_server: str, auth_key: str, hostname: Optional[str] = None,
           extra_args: Iterable[str] = (), timeout: float = 60.0) -> "Tailscaled":
        """``tailscale up`` against ``login_server`` with a pre-auth key;
        returns once the backend is Running with its Tailscale IPs."""
        self.cli("up", f"--login-server={login_server}", f"--auth-key={auth_key}",
                 f"--hostname={hostname or self.name}", "--accept-dns=false", f"--timeout={timeout:g}s",
                 *extra_args, timeout=timeout + 10)
        self.wait_running(timeout)
        return self

    def wait_running(self, timeout: float = 30.0) -> dict[str, Any]:
        def running() -> Optional[dict[str, Any]]:
            st = self.status()
            ok = st.get("BackendState") == "Running" and (st.get("Self") or {}).get("TailscaleIPs")
            return st if ok else None
        return self.host.wait_for(running, timeout, interval=0.2, what=f"{self.name} to be Running")

    def down(self) -> None:
        self.cli("down")

    def logout(self, timeout: float = 30.0) -> None:
        self.cli("logout", timeout=timeout)

    def status(self, peers: bool = True) -> dict[str, Any]:
        """``tailscale status --json`` parsed (``{}`` if it printed none)."""
        r = self.cli("status", "--json", f"--peers={str(peers).lower()}", check=False)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            return {}

    def ip(self, family: int = 4) -> str:
        """This peer's Tailscale address of ``family`` (4 or 6)."""
        return self.cli("ip", f"-{family}").stdout.strip()

    def ips(self) -> list[str]:
        return list((self.status(peers=False).get("Self") or {}).get("TailscaleIPs") or [])

    def peers(self) -> dict[str, dict[str, Any]]:
        """Peers from ``status()`` keyed by their HostName."""
        return {p.get("HostName", key): p for key, p in (self.status().get("Peer") or {}).items()}

    def peer(self, name_or_ip: str) -> Optional[dict[str, Any]]:
        """The peer whose HostName, DNSName or Tailscale IP is ``name_or_ip``."""
        for p in (self.status().get("Peer") or {}).values():
            names = {p.get("HostName"), (p.get("DNSName") or "").split(".")[0], *(p.get("TailscaleIPs") or [])}
            if name_or_ip in names:
                return p
        return None

    def wait_peer(self, name_or_ip: str, online: bool = True, timeout: float = 30.0) -> dict[str, Any]:
        """Waits until ``name_or_ip`` is a peer (and Online, if asked)."""
        def seen() -> Optional[dict[str, Any]]:
            p = self.peer(name_or_ip)
            return p if p and (not online or p.get("Online")) else None
        state = "online " if online else ""
        return self.host.wait_for(seen, timeout, interval=0.2, what=f"{state}peer {name_or_ip}")

    def ping(self, target: str, mode: str = "disco", count: int = 3, timeout: float = 5.0,
             until_direct: bool = True, extra_args: Iterable[str] = ()) -> tuple[bool, str]:
        """``tailscale ping`` (``mode``: disco, icmp, tsmp, peerapi): whether
        it exited 0, and its stdout+stderr.

        A disco ping with ``until_direct`` (the CLI's default) stops at the
        first pong over a direct path ("pong from X (ip) via <endpoint> in
        Nms") and fails ("direct connection not established") when every
        pong came through DERP.  icmp/tsmp/peerapi stop at the first pong;
        each try waits ``timeout`` seconds, ``count`` tries at most.
        """
        argv = ["ping", f"--c={count}", f"--timeout={timeout:g}s", *PING_MODES[mode]]
        if mode == "disco" and not until_direct:
            argv.append("--until-direct=false")
        r = self.cli(*argv, *extra_args, target, check=False, timeout=count * (timeout + 1) + 15)
        return r.returncode == 0, (r.stdout + r.stderr).strip()

    def netmap(self) -> dict[str, Any]:
        """``tailscale debug netmap`` (the netmap tailscaled holds: self
        node, peers with their Endpoints/HomeDERP, PacketFilter, DERPMap)."""
        return json.loads(self.cli("debug", "netmap").stdout)

    def nc(self, target: str, port: int, data: bytes = b"", timeout: float = 10.0) -> bytes:
        """``tailscale nc``: sends ``data`` to ``target:port`` through the
        tailnet and returns what came back until the peer closed (or what
        came until ``timeout``).  stdin stays open meanwhile: ``tailscale nc`` drops
        the connection as soon as its stdin ends."""
        argv = ["ip", "netns", "exec", self.host.netns, str(self.cli_path), f"--socket={self.socket}",
                "nc", target, str(port)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
            chunks: list[bytes] = []

            def read() -> None:
                while chunk := proc.stdout.read1(65536):  # type: ignore[union-attr]
                    chunks.append(chunk)
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            reader.join(timeout)
            return b"".join(chunks)
        finally:
            proc.kill()
            proc.wait()

    def command_line(self) -> str:
        """The CLI prefix for debugging by hand."""
        return shlex.join(["ip", "netns", "exec", self.host.netns, str(self.cli_path), f"--socket={self.socket}"])

    def wait_for(self, fn, timeout: float = 10.0, what: str = "condition", interval: float = 0.2):
        return wait_until(fn, timeout, f"{self.name}: {what}", interval)

