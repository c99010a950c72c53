"""A real headscale for tests: a minimal config in a temp dir, `headscale
serve` on loopback, and its CLI.

Everything stays local: sqlite and the Noise key in the temp dir, the CLI
socket there too, no public DERP map (``derp.urls: []``; headscale wants at
least one region, so a file names a placeholder region on 127.0.0.1 that
nothing contacts), no update check, no logtail, no OIDC, MagicDNS off.

    with Headscale() as hs:
        hs.url            # "http://127.0.0.1:<port>"
        hs.port
        hs.cli("users", "list")

The binary is the one `tools/setup` builds (pinned v0.29.2) under
``${LOPOWER_CACHE:-$HOME/.cache/lopower}/bin``; ``HEADSCALE`` overrides it.
The config is written as JSON, which is YAML too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

CACHE = Path(os.environ.get("LOPOWER_CACHE", Path.home() / ".cache" / "lopower"))
HEADSCALE = Path(os.environ.get("HEADSCALE", CACHE / "bin" / "headscale"))


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


class Headscale:
    """One headscale server; stopped (and its temp dir removed) on exit."""

    def __init__(self, host: str = "127.0.0.1", port: Optional[int] = None,
                 embedded_derp: bool = False, extra_config: Optional[dict[str, Any]] = None,
                 binary: Path = HEADSCALE, keep_dir: bool = False) -> None:
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run tools/setup")
        self.binary = binary
        self.host = host
        self.port = port or free_port(host=host)
        self.url = f"http://{host}:{self.port}"
        self.keep_dir = keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix="lopower-headscale-"))
        self.config_path = self.dir / "config.yaml"
        self.log_path = self.dir / "headscale.log"
        self.proc: Optional[subprocess.Popen] = None
        self.config = self._config(embedded_derp)
        _merge(self.config, extra_config or {})

    def _config(self, embedded_derp: bool) -> dict[str, Any]:
        d = self.dir
        derp: dict[str, Any] = {"urls": [], "paths": [], "auto_update_enabled": False,
                                "server": {"enabled": False}}
        if embedded_derp:
            derp["server"] = {
                "enabled": True, "region_id": 999, "region_code": "headscale",
                "region_name": "Headscale Embedded DERP", "verify_clients": True,
                "stun_listen_addr": f"{self.host}:{free_port(socket.SOCK_DGRAM, self.host)}",
                "private_key_path": str(d / "derp_server_private.key"),
                "automatically_add_embedded_derp_region": True, "ipv4": self.host,
            }
        else:
            # headscale refuses an empty DERP map: one region no one dials.
            # (Written as YAML proper: its region IDs are integer keys.)
            (d / "derp.yaml").write_text(
                "regions:\n"
                "  900:\n"
                "    regionid: 900\n"
                "    regioncode: placeholder\n"
                "    regionname: Placeholder (tests)\n"
                "    nodes:\n"
                "      - name: 900a\n"
                "        regionid: 900\n"
                f"        hostname: {self.host}\n"
                f"        ipv4: {self.host}\n"
                "        stunport: -1\n"
                f"        derpport: {self.port}\n")
            derp["paths"] = [str(d / "derp.yaml")]
        return {
            "server_url": self.url,
            "listen_addr": f"{self.host}:{self.port}",
            "metrics_listen_addr": f"127.0.0.1:{free_port()}",
            "grpc_listen_addr": f"127.0.0.1:{free_port()}",
            "grpc_allow_insecure": False,
            "noise": {"private_key_path": str(d / "noise_private.key")},
            "prefixes": {"v4": "100.64.0.0/10", "v6": "fd7a:115c:a1e0::/48", "allocation": "sequential"},
            "derp": derp,
            "disable_check_updates": True,
            "database": {"type": "sqlite", "sqlite": {"path": str(d / "db.sqlite"), "write_ahead_log": True}},
            "log": {"level": "info", "format": "text"},
            "policy": {"mode": "file", "path": ""},
            "dns": {"magic_dns": False, "override_local_dns": False, "base_domain": "",
                    "nameservers": {"global": [], "split": {}}, "search_domains": [], "extra_records": []},
            "unix_socket": str(d / "headscale.sock"),
            "unix_socket_permission": "0770",
            "logtail": {"enabled": False},
            "taildrop": {"enabled": False},
        }

    # --- lifecycle -------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> "Headscale":
        self.config_path.write_text(json.dumps(self.config, indent=2))
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen([str(self.binary), "-c", str(self.config_path), "serve"],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, start_new_session=True)
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
            with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Headscale":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- HTTP and CLI --------------------------------------------------------------

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """Plain HTTP GET against the server: (status, body)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def cli(self, *args: str, timeout: float = 30.0) -> str:
        """`headscale -c <config> ARGS...` (over the unix socket); its stdout."""
        r = subprocess.run([str(self.binary), "-c", str(self.config_path), *args],
                           capture_output=True, text=True, timeout=timeout)
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
