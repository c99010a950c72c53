"""A real headscale for tests: a minimal config in a temp dir, `headscale
serve` on loopback (or on a test-LAN address inside a namespace), and its CLI.

Everything stays local: sqlite and the Noise key in the temp dir, the CLI
socket there too, no public DERP map (``derp.urls: []``; headscale wants at
least one region, so a file names a placeholder region on headscale's own
address -- see :meth:`Headscale._config`), no update check, no logtail, no
OIDC, MagicDNS off.

    with Headscale() as hs:
        hs.url            # "http://127.0.0.1:<port>"
        hs.port
        hs.cli("users", "list")

    # over TLS (tls_cert_path/tls_key_path) with a certificate the test made:
    with Headscale(tls=TlsFiles(cert=..., key=..., ca=...)) as hs:
        hs.url            # "https://127.0.0.1:<port>"

    # in a namespace of a lopower_net.Topology, on its LAN addresses:
    with Headscale(host="198.18.40.2", host6="fd00:198:18:40::2", netns_host=ctl, stun=True) as hs:
        hs.url            # "http://[fd00:198:18:40::2]:8080" (hs.url4: the IPv4 one)
        hs.set_policy({...})   # checked, written, SIGHUP, reload waited for
        hs.restart()           # same DB and Noise key: same server, same nodes

Policy: ``policy.mode: file`` with a file written before the first start
(allow-all by default, :data:`ALLOW_ALL`).  headscale 0.29.2 reloads that file
on SIGHUP only (hscontrol/app.go; with an empty ``policy.path`` SIGHUP does
nothing, hence a file from the start); there is no file watcher.  ``headscale
policy set`` works only in ``policy.mode: database`` (gRPC SetPolicy refuses
otherwise); :meth:`set_policy` uses it when a test configured that mode.

The binary is the one `tools/setup` builds (pinned v0.29.2) under
``${LOPOWER_CACHE:-$HOME/.cache/lopower}/bin``; ``HEADSCALE`` overrides it.
The config is written as JSON, which is YAML too.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from lopower_net import LogFile

if TYPE_CHECKING:  # only for annotations
    from lopower_net import Host

CACHE = Path(os.environ.get("LOPOWER_CACHE", Path.home() / ".cache" / "lopower"))
HEADSCALE = Path(os.environ.get("HEADSCALE", CACHE / "bin" / "headscale"))

# Node attributes every policy written here carries unless told otherwise:
# tailscaled's (LocalBackend's) captive-portal check would otherwise, when a
# health warning says connectivity is impaired (e.g. its DERP home is
# unreachable), try http://controlplane.tailscale.com/generate_204 -- a
# public name.  (netcheck's own check ignores this; see tailscaled.py.)
LOCAL_NODE_ATTRS: list[dict[str, Any]] = [
    {"target": ["*"], "attr": ["disable-captive-portal-detection"]},
]

# Everyone may reach everyone (what headscale does with no policy at all).
ALLOW_ALL: dict[str, Any] = {
    "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}

# Ports inside a namespace of our own: nothing else listens there.
NETNS_PORT, NETNS_METRICS_PORT, NETNS_GRPC_PORT, NETNS_STUN_PORT = 8080, 9090, 50443, 3478
# The placeholder DERP region's DERP port with ``stun=True``: nothing listens.
DERP_CLOSED_PORT = 9


class TlsFiles(NamedTuple):
    """PEM files for ``Headscale(tls=...)``: headscale's certificate chain
    and key, and the CA that issued it (what :meth:`Headscale.get` trusts)."""
    cert: Path
    key: Path
    ca: Path


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host`` (free unless someone
    takes it in the moment between this and the server's bind)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


class Headscale(LogFile):
    """One headscale server; stopped (and its temp dir removed) on exit.

    ``netns_host`` (a :class:`lopower_net.Host`): run ``headscale serve`` in
    that namespace, listening on ``host`` (an address of that namespace).  The
    CLI still runs in the root namespace (it talks over the unix socket); HTTP
    (health check, :meth:`get`) goes through ``curl`` run in the namespace.
    The state dir is then ``<topology tmpdir>/<host name>-headscale`` and the
    process is also killed by the topology's teardown.

    ``host6``: headscale's IPv6 address too (in a namespace, where nothing
    else listens): it then listens on ``[::]:port`` and :attr:`url` (its
    ``server_url``, the login server for peers) is ``http://[host6]:port``;
    :attr:`url4` is the IPv4 one.  Why: tailscaled (1.98) dials an
    ``http://`` control URL with a port on that port only when the host is
    "private" by Go's ``netip.Addr.IsPrivate`` (RFC 1918, fc00::/7) or
    loopback; otherwise it keeps https://host:443 as a fallback and, once a
    control connection broke (headscale restarted), forces that TLS
    fallback on every retry within 2 minutes of the previous one -- so it
    never comes back to a plain-HTTP headscale on 198.18.x.y.  ULA
    fd00:198:18::/48 is "private", 198.18.0.0/15 is not.

    ``stun``: run headscale's STUN server (via its embedded DERP server,
    whose region stays out of the DERP map) and point the placeholder
    region's STUN at it, DERP port closed.  tailscaled needs a STUN answer
    to know it can send UDP at all: without one its netcheck reports
    udp=false and magicsock rebinds its sockets after every netcheck
    ("last netcheck reported send error. Rebinding."), which keeps
    resetting paths; and netcheck's captive-portal probe, which runs
    when no STUN answer came in time, tries controlplane.tailscale.com.

    ``policy``: the policy file headscale starts with (default
    :data:`ALLOW_ALL`); :data:`LOCAL_NODE_ATTRS` is added unless
    ``local_node_attrs=False``.

    ``tls`` (:class:`TlsFiles`): serve TLS on ``listen_addr`` with that
    certificate (headscale's ``tls_cert_path``/``tls_key_path``; nothing on
    port 80); the URLs are then ``https://``.
    """

    def __init__(self, host: str = "127.0.0.1", port: Optional[int] = None,
                 embedded_derp: bool = False, extra_config: Optional[dict[str, Any]] = None,
                 binary: Path = HEADSCALE, keep_dir: bool = False,
                 netns_host: Optional["Host"] = None, policy: Optional[dict[str, Any]] = None,
                 local_node_attrs: bool = True, stun: bool = False, host6: Optional[str] = None,
                 tls: Optional[TlsFiles] = None) -> None:
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run tools/setup")
        self.binary = binary
        self.host = host
        self.host6 = host6
        self.netns_host = netns_host
        self.stun = stun and not embedded_derp
        self.tls = tls
        if netns_host is not None:
            self.port = port or NETNS_PORT
            self.dir = netns_host.topo.tmpdir / f"{netns_host.name}-headscale"
            self.dir.mkdir(parents=True, exist_ok=False)
        else:
            self.port = port or free_port(host=host)
            self.dir = Path(tempfile.mkdtemp(prefix="lopower-headscale-"))
        # With an IPv6 address, headscale listens on both families and its
        # server_url names the IPv6 one -- see the class docstring.
        scheme = "https" if tls else "http"
        self.url4 = f"{scheme}://{host}:{self.port}"
        self.url6 = f"{scheme}://[{host6}]:{self.port}" if host6 else None
        self.url = self.url6 or self.url4
        self.keep_dir = keep_dir
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "headscale.log"
        self.policy_path = self.dir / "policy.hujson"
        self.local_node_attrs = local_node_attrs
        self.proc: Optional[subprocess.Popen] = None
        self.config = self._config(embedded_derp)
        _merge(self.config, extra_config or {})
        self.policy = self._with_local_attrs(policy if policy is not None else ALLOW_ALL)
        if self.policy_mode == "file" and self.config["policy"].get("path") == str(self.policy_path):
            self.policy_path.write_text(json.dumps(self.policy, indent=2))

    def _write_derp_map(self, region: int, code: str, name: str, stun_port: int, derp_port: int) -> None:
        """derp.yaml: one region, one node on headscale's addresses.  Written
        as YAML proper (region IDs are integer keys); the host name is the
        IPv4 address, never a bare IPv6 one (DERP-EXIT.md section 0.2)."""
        node = (f"      - name: {region}a\n"
                f"        regionid: {region}\n"
                f"        hostname: {self.host}\n"
                f"        ipv4: {self.host}\n")
        if self.host6:
            node += f"        ipv6: \"{self.host6}\"\n"
        node += f"        stunport: {stun_port}\n        derpport: {derp_port}\n"
        (self.dir / "derp.yaml").write_text(
            "regions:\n"
            f"  {region}:\n"
            f"    regionid: {region}\n"
            f"    regioncode: {code}\n"
            f"    regionname: {name}\n"
            "    nodes:\n" + node)

    def _port(self, kind: int, netns_port: int) -> int:
        return netns_port if self.netns_host is not None else free_port(kind)

    def _config(self, embedded_derp: bool) -> dict[str, Any]:
        d = self.dir
        derp: dict[str, Any] = {"urls": [], "paths": [], "auto_update_enabled": False,
                                "server": {"enabled": False}}
        stun_port = 0
        if embedded_derp or self.stun:
            stun_port = (NETNS_STUN_PORT if self.netns_host is not None
                         else free_port(socket.SOCK_DGRAM, self.host))
            # "[::]:port" would take IPv4 and IPv6 alike, "host:port" only host.
            stun_host = "[::]" if self.host6 else self.host
            derp["server"] = {
                "enabled": True, "region_id": 999, "region_code": "headscale",
                "region_name": "Headscale Embedded DERP", "verify_clients": True,
                "stun_listen_addr": f"{stun_host}:{stun_port}",
                "private_key_path": str(d / "derp_server_private.key"),
                # The region is written below, not generated: headscale
                # names it after server_url's host, and tailscaled cannot
                # dial a bare IPv6 host name (DERP-EXIT.md section 0.2).
                "automatically_add_embedded_derp_region": False, "ipv4": self.host,
            }
            if self.host6:
                derp["server"]["ipv6"] = self.host6
        if embedded_derp:
            # The embedded server relays, and answers STUN on its own port.
            self._write_derp_map(999, "headscale", "Headscale Embedded DERP", stun_port, self.port)
        else:
            # headscale refuses an empty DERP map: one region on headscale's
            # own address, so whatever a peer does with it stays in the test.
            # Without ``stun``: no STUN (stunport -1), and headscale serves
            # no /derp without its embedded server, so a DERP dial there
            # gets a 404.  With ``stun``: STUN is headscale's embedded
            # server's (whose own region is not in the map) and the DERP
            # port is DERP_CLOSED_PORT, where nothing listens.
            self._write_derp_map(900, "placeholder", "Placeholder (tests)",
                                 stun_port if self.stun else -1,
                                 DERP_CLOSED_PORT if self.stun else self.port)
        derp["paths"] = [str(d / "derp.yaml")]
        self.stun_port = stun_port
        tls = {"tls_cert_path": str(self.tls.cert), "tls_key_path": str(self.tls.key)} if self.tls else {}
        return {
            **tls,
            "server_url": self.url,
            "listen_addr": f"[::]:{self.port}" if self.host6 else f"{self.host}:{self.port}",
            "metrics_listen_addr": f"127.0.0.1:{self._port(socket.SOCK_STREAM, NETNS_METRICS_PORT)}",
            "grpc_listen_addr": f"127.0.0.1:{self._port(socket.SOCK_STREAM, NETNS_GRPC_PORT)}",
            "grpc_allow_insecure": False,
            "noise": {"private_key_path": str(d / "noise_private.key")},
            "prefixes": {"v4": "100.64.0.0/10", "v6": "fd7a:115c:a1e0::/48", "allocation": "sequential"},
            "derp": derp,
            "disable_check_updates": True,
            "database": {"type": "sqlite", "sqlite": {"path": str(d / "db.sqlite"), "write_ahead_log": True}},
            "log": {"level": "info", "format": "text"},
            "policy": {"mode": "file", "path": str(self.policy_path)},
            "dns": {"magic_dns": False, "override_local_dns": False, "base_domain": "",
                    "nameservers": {"global": [], "split": {}}, "search_domains": [], "extra_records": []},
            "unix_socket": str(d / "headscale.sock"),
            "unix_socket_permission": "0770",
            "logtail": {"enabled": False},
            "taildrop": {"enabled": False},
        }

    # --- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "Headscale":
        """Starts ``headscale serve`` and waits for /health.  Called again
        after ``stop(keep_state=True)`` it comes back with the same database
        and Noise key: the same server, the same users and nodes."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("headscale is already running")
        self.config_path.write_text(json.dumps(self.config, indent=2))
        argv = [str(self.binary), "-c", str(self.config_path), "serve"]
        if self.netns_host is not None:
            self.proc = self.netns_host.popen(argv, log=str(self.log_path), cwd=self.dir)
        else:
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=self.dir,
                                             start_new_session=True)
            finally:
                log.close()
        deadline = time.monotonic() + timeout
        while True:
            problem = None
            if self.proc.poll() is not None:
                problem = f"headscale exited ({self.proc.returncode})"
            elif self._healthy():
                return self
            elif time.monotonic() >= deadline:
                problem = f"headscale not healthy after {timeout:g}s"
            if problem:
                # __exit__ does not run when __enter__ raises: clean up here.
                log = self.log_tail()
                self.stop()
                raise RuntimeError(f"{problem}:\n{log}")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            return self.get("/health", timeout=2)[0] == 200
        except (urllib.error.URLError, OSError, subprocess.SubprocessError):
            return False

    def stop(self, keep_state: bool = False) -> None:
        """Stops headscale (SIGTERM, then SIGKILL after 10 s).  Its dir (DB,
        Noise key, config, log) is removed unless ``keep_state`` or
        ``keep_dir``; :meth:`start` can then bring the same server back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if not (self.keep_dir or keep_state):
            shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, timeout: float = 30.0) -> "Headscale":
        """``stop(keep_state=True)`` then :meth:`start`."""
        self.stop(keep_state=True)
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "Headscale":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- HTTP and CLI --------------------------------------------------------------

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """HTTP(S) GET against the server: (status, body).  From inside
        the namespace (with ``curl``) when headscale runs in one."""
        if self.netns_host is not None:
            return self._netns_get(path, timeout)
        context = ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else None
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout, context=context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _netns_get(self, path: str, timeout: float) -> tuple[int, bytes]:
        assert self.netns_host is not None
        with tempfile.NamedTemporaryFile(dir=self.dir, prefix="get-", delete=False) as f:
            body_path = Path(f.name)
        try:
            cacert = ["--cacert", str(self.tls.ca)] if self.tls else []
            r = self.netns_host.run(["curl", "-sS", "--noproxy", "*", "--max-time", f"{timeout:g}", *cacert,
                                     "-o", str(body_path), "-w", "%{http_code}", self.url + path],
                                    check=False, timeout=timeout + 5)
            if r.returncode != 0:
                raise OSError(f"curl {self.url + path} failed ({r.returncode}): {r.stderr.strip()}")
            return int(r.stdout.strip() or 0), body_path.read_bytes()
        finally:
            body_path.unlink(missing_ok=True)

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        """`headscale -c <config> ARGS...` (over the unix socket); its stdout."""
        r = subprocess.run([str(self.binary), "-c", str(self.config_path), *args],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"headscale {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json"))

    def create_user(self, name: str) -> int:
        """Creates user ``name``; its numeric ID."""
        return int(self.cli_json("users", "create", name)["id"])

    def create_preauth_key(self, user_id: int, reusable: bool = False, ephemeral: bool = False,
                           expiration: str = "1h") -> str:
        args = ["preauthkeys", "create", "--user", str(user_id), "--expiration", expiration]
        if reusable:
            args.append("--reusable")
        if ephemeral:
            args.append("--ephemeral")
        return self.cli_json(*args)["key"]

    # --- nodes -------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """`headscale nodes list -o json`: one dict per node: ``id`` (int),
        ``name``, ``given_name``, ``ip_addresses``, ``user``, ``machine_key``,
        ``node_key``, ``disco_key``, ``last_seen``, ``expiry``, ``online``...
        Fields at their zero value are left out (``online`` only when true,
        ``expiry`` only when set): use ``.get``.  Endpoints and DERP home
        are not in there (see a peer's netmap for them)."""
        return self.cli_json("nodes", "list") or []

    def node(self, name: str) -> dict[str, Any]:
        """The node whose ``given_name`` or ``name`` is ``name``."""
        for n in self.nodes():
            if name in (n.get("given_name"), n.get("name")):
                return n
        raise KeyError(f"no node named {name!r} in headscale")

    def delete_node(self, node_id: int | str) -> None:
        self.cli("nodes", "delete", "--identifier", str(node_id), "--force")

    def expire_node(self, node_id: int | str, expiry: Optional[str] = None) -> None:
        """Expires the node now (or at RFC 3339 ``expiry``)."""
        args = ["nodes", "expire", "--identifier", str(node_id), "--force"]
        if expiry:
            args += ["--expiry", expiry]
        self.cli(*args)

    # --- policy ------------------------------------------------------------------

    @property
    def policy_mode(self) -> str:
        return str(self.config.get("policy", {}).get("mode", "file"))

    def _with_local_attrs(self, policy: dict[str, Any]) -> dict[str, Any]:
        policy = copy.deepcopy(policy)
        if self.local_node_attrs:
            attrs = policy.setdefault("nodeAttrs", [])
            for extra in LOCAL_NODE_ATTRS:
                if extra not in attrs:
                    attrs.append(copy.deepcopy(extra))
        return policy

    def set_policy(self, policy: dict[str, Any], timeout: float = 15.0) -> None:
        """Makes ``policy`` (a dict in headscale's policy format) the policy.

        Checked first with ``headscale policy check`` (a bad policy raises
        and changes nothing).  File mode: written to the policy file, then
        SIGHUP, then this waits until headscale logged the reload (nodes get
        their new netmaps right after, asynchronously).  Database mode:
        ``headscale policy set`` (needs headscale running).  When headscale
        is not running, file mode only writes the file (read at the next
        start).
        """
        policy = self._with_local_attrs(policy)
        with tempfile.NamedTemporaryFile("w", dir=self.dir, prefix="policy-", suffix=".hujson",
                                         delete=False) as f:
            json.dump(policy, f, indent=2)
        candidate = Path(f.name)
        try:
            if self.running:
                self.cli("policy", "check", "--file", str(candidate))
            if self.policy_mode == "database":
                self.cli("policy", "set", "--file", str(candidate))
                self.policy = policy
                return
            path = self.config["policy"].get("path")
            if not path:
                raise RuntimeError("policy.mode is file but policy.path is empty: SIGHUP would do nothing")
            changed = self.policy != policy
            os.replace(candidate, path)
        finally:
            candidate.unlink(missing_ok=True)
        self.policy = policy
        if self.running and changed:
            self.reload_policy(timeout)

    def reload_policy(self, timeout: float = 15.0) -> None:
        """SIGHUP headscale and wait until it logged the reload of the policy
        file; raise with its log when it logged an error instead.

        headscale logs "Policy reload completed" only when the policy (or a
        route) changed; for a reload that changed nothing this returns after
        a short quiet period following "Received SIGHUP"."""
        assert self.proc is not None
        offset = len(self.log_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        seen_at = None
        while True:
            new = self.log_text()[offset:]
            if "Policy reload completed" in new:
                return
            errors = [line for line in new.splitlines() if "reloading policy" in line and "ERR" in line]
            if errors:
                raise RuntimeError(f"headscale could not reload the policy:\n{new[-2000:]}")
            now = time.monotonic()
            if "Received SIGHUP" in new:
                seen_at = seen_at or now
                if now - seen_at > 2.0:
                    return
            if now >= deadline:
                raise RuntimeError(f"headscale did not report a policy reload within {timeout:g}s:\n"
                                   f"{new[-2000:]}")
            time.sleep(0.05)
