"""Network-namespace topologies for lopower's interop and e2e tests.

A :class:`Topology` builds hosts (network namespaces), veth links between
them and the root namespace, and processes running inside them, and tears all
of it down again on exit -- also when the test body raised, and (via
``atexit``) when the interpreter exits without leaving the ``with`` block.

Every name it creates starts with a per-run prefix, ``lpt<pid>`` by default,
so parallel runs don't collide and :func:`sweep_stale` can remove what a
crashed run left behind.  Addresses in tests come from ``198.18.0.0/15`` and
``fd00:198:18::/48`` (see docs/TESTING.md); traffic stays inside the test's
namespaces and loopback.

Example::

    with Topology() as topo:
        a, b = topo.host("a"), topo.host("b")
        topo.veth(a, "eth0", b, "eth0",
                  a_addrs=["198.18.0.1/24", "fd00:198:18::1/64"],
                  b_addrs=["198.18.0.2/24", "fd00:198:18::2/64"])
        a.run(["ping", "-c1", "-W2", "198.18.0.2"])

Standard library only; runs under Debian 12's /usr/bin/python3 (3.11).
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional, TypeVar

__all__ = [
    "CommandError", "Host", "LogFile", "Topology", "Veth", "sweep_stale", "wait_until",
]

PREFIX_ROOT = "lpt"
IFNAMSIZ = 15          # longest Linux interface name
KILL_GRACE = 5.0       # seconds between SIGTERM and SIGKILL at teardown
_NAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
_active_prefixes: set[str] = set()

T = TypeVar("T")


class CommandError(subprocess.CalledProcessError):
    """A command failed; ``str()`` includes its stderr and stdout."""

    def __str__(self) -> str:
        text = super().__str__()
        for label, out in (("stderr", self.stderr), ("stdout", self.output)):
            if out:
                if isinstance(out, bytes):
                    out = out.decode(errors="replace")
                text += f"\n{label}: {out.strip()[-2000:]}"
        return text


class Veth(NamedTuple):
    """The two ends of a veth pair (``None`` host means the root namespace)."""

    a: Optional["Host"]
    a_if: str
    b: Optional["Host"]
    b_if: str


# --------------------------------------------------------------------------
# helpers

def sh(argv: list[str], check: bool = True, timeout: float = 30,
       **kw) -> subprocess.CompletedProcess:
    """Run ``argv`` in the root namespace, capturing text output.

    Raises :class:`CommandError` (with stderr) when ``check`` and it fails.
    """
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    if "stdout" not in kw and "stderr" not in kw:
        kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    cp = subprocess.run(argv, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise CommandError(cp.returncode, argv, cp.stdout, cp.stderr)
    return cp


class LogFile:
    """A process's log file, for the helpers that run one (``log_path``)."""

    log_path: Path

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"


def wait_until(fn: Callable[[], T], timeout: float = 10.0,
               what: str = "condition", interval: float = 0.1) -> T:
    """Call ``fn`` until it returns something truthy; return that value.

    Raises ``AssertionError("timed out after Ns waiting for <what>")``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _ip_family(addr: str) -> str:
    """``-4`` or ``-6`` for an address or prefix such as ``fd00::1/64``."""
    return f"-{ipaddress.ip_interface(addr).version}"


def list_netns() -> list[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links(netns: Optional[str] = None) -> list[str]:
    """Interface names in ``netns`` (root namespace when ``None``)."""
    argv = ["ip", "-o", "link", "show"]
    if netns:
        argv = ["ip", "-n", netns, "-o", "link", "show"]
    names = []
    for line in sh(argv).stdout.splitlines():
        # "3: name@peer: <FLAGS> ..." -- drop the "@peer" part
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def link_exists(ifname: str, netns: Optional[str] = None) -> bool:
    """True when interface ``ifname`` exists in ``netns`` (root if None)."""
    argv = ["ip", "link", "show", "dev", ifname]
    if netns:
        argv[1:1] = ["-n", netns]
    return sh(argv, check=False).returncode == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(netns: str) -> list[int]:
    out = sh(["ip", "netns", "pids", netns], check=False).stdout
    return [int(tok) for tok in out.split() if tok.isdigit()]


def _kill_netns_pids(netns: str) -> None:
    """SIGKILL every process still inside ``netns`` (e.g. self-daemonized)."""
    for pid in _netns_pids(netns):
        if pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _delete_netns(netns: str) -> None:
    _kill_netns_pids(netns)
    sh(["ip", "netns", "delete", netns], check=False)


def _delete_link(ifname: str) -> None:
    sh(["ip", "link", "delete", "dev", ifname], check=False)


def _stale(regex: "re.Pattern[str]", name: str) -> bool:
    """True when ``name`` matches ``regex`` and its pid group is dead."""
    m = regex.match(name)
    return bool(m) and not _pid_alive(int(m.group(1)))


def sweep_stale(prefix_root: str = PREFIX_ROOT) -> list[str]:
    """Delete namespaces ``<root><pid>-*``, root links ``<root><pid>...``
    and temp dirs ``<tmp>/<root><pid>-*`` left by runs whose pid no longer
    exists (their processes in those namespaces are killed).  Returns the
    names it deleted."""
    root = re.escape(prefix_root)
    owned = re.compile(rf"^{root}(\d+)(_[a-z])?-")
    removed = [ns for ns in list_netns() if _stale(owned, ns)]
    for ns in removed:
        _delete_netns(ns)
    for path in Path(tempfile.gettempdir()).glob(f"{prefix_root}*-*"):
        if path.is_dir() and _stale(owned, path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    link_re = re.compile(rf"^{root}(\d+)")
    for ifname in list_links():
        if _stale(link_re, ifname):
            _delete_link(ifname)
            removed.append(ifname)
    return removed


def _default_prefix() -> str:
    """``lpt<pid>``, or ``lpt<pid>_b``.. when that one is in use here."""
    base = f"{PREFIX_ROOT}{os.getpid()}"
    for suffix in ["", *(f"_{c}" for c in "bcdefghijklmnopqrstuvwxyz")]:
        if base + suffix not in _active_prefixes:
            return base + suffix
    raise RuntimeError("too many live Topology objects in this process")


# --------------------------------------------------------------------------
# hosts

class Host:
    """A network namespace ``<prefix>-<name>`` made by a :class:`Topology`."""

    def __init__(self, topo: "Topology", name: str) -> None:
        self.topo = topo
        self.name = name
        self.netns = f"{topo.prefix}-{name}"

    def __repr__(self) -> str:
        return f"Host({self.netns!r})"

    def _argv(self, argv: Iterable[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *map(str, argv)]

    def run(self, argv: Iterable[str], check: bool = True,
            timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run ``argv`` in this namespace and wait (text output captured).

        Raises :class:`CommandError` when ``check`` and it exits non-zero,
        ``subprocess.TimeoutExpired`` (after killing it) past ``timeout``.
        """
        return sh(self._argv(argv), check=check, timeout=timeout, **kw)

    def popen(self, argv: Iterable[str], log: Optional[str] = None,
              **kw) -> subprocess.Popen:
        """Start ``argv`` in this namespace in its own process group.

        stdout and stderr go to ``log`` (default: a new file in the
        topology's temp dir, path in ``proc.log_path``) unless given.  The
        process is killed at teardown if still running.
        """
        return self.topo._popen(self, self._argv(argv), log, kw)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``ip -n <netns> <args>``."""
        return sh(["ip", "-n", self.netns, *args], check=check)

    def add_addr(self, ifname: str, addr: str) -> None:
        """Add ``addr`` (v4 or v6 prefix) to ``ifname``; v6 skips DAD."""
        extra = ["nodad"] if _ip_family(addr) == "-6" else []
        self.ip("addr", "add", addr, "dev", ifname, *extra)

    def link_up(self, ifname: str) -> None:
        """Set ``ifname`` up."""
        self.ip("link", "set", "dev", ifname, "up")

    def add_route(self, prefix: str, via: str,
                  dev: Optional[str] = None) -> None:
        """Route ``prefix`` (v4/v6, or ``default`` + v4/v6 ``via``) via ``via``."""
        fam = _ip_family(via)
        extra = ["dev", dev] if dev else []
        self.ip(fam, "route", "replace", prefix, "via", via, *extra)

    def sysctl(self, key: str, value: str) -> None:
        """Set a sysctl of this namespace (``net.*`` keys are per-netns)."""
        self.run(["sysctl", "-qw", f"{key}={value}"])

    def ping(self, addr: str, count: int = 1, wait: float = 2) -> bool:
        """True when ``addr`` answers ``count`` pings from this host."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", f"{wait:g}", addr]
        timeout = count * (wait + 1) + 5
        return self.run(argv, check=False, timeout=timeout).returncode == 0

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0,
                 interval: float = 0.1, what: str = "condition") -> T:
        """:func:`wait_until` with ``what`` prefixed by this host's name."""
        return wait_until(predicate, timeout, f"{self.name}: {what}",
                          interval)

    def wait_addrs_ready(self, ifname: str, timeout: float = 5.0) -> None:
        """Wait until no address on ``ifname`` is tentative (IPv6 DAD)."""
        def ready() -> bool:
            out = self.ip("-6", "addr", "show", "dev", ifname).stdout
            return "tentative" not in out
        self.wait_for(ready, timeout, what=f"{ifname} addresses ready")


# --------------------------------------------------------------------------
# topology

class Topology:
    """Namespaces, links and processes for one test; torn down on exit."""

    def __init__(self, prefix: Optional[str] = None) -> None:
        self.prefix = prefix or _default_prefix()
        if not _NAME_RE.match(self.prefix) or len(self.prefix) > 12:
            raise ValueError(f"bad topology prefix {self.prefix!r}")
        sweep_stale()
        _active_prefixes.add(self.prefix)
        self.hosts: dict[str, Host] = {}
        self._root_links: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._logs: list[Path] = []
        self._closed = False
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        atexit.register(self.close)

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.dump_logs()
        self.close()

    # -- building ----------------------------------------------------------

    def ifname(self, short: str) -> str:
        """Root-namespace interface name ``<prefix><short>`` (≤ 15 chars).

        ``short`` must start with a letter so stale sweeps can parse the pid.
        """
        name = f"{self.prefix}{short}"
        if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]*$", short):
            raise ValueError(f"interface suffix {short!r} must start with "
                             "a letter")
        if len(name) > IFNAMSIZ:
            raise ValueError(f"interface name {name!r} is longer than "
                             f"{IFNAMSIZ} characters; use a shorter suffix")
        return name

    def owns_link(self, ifname: str) -> bool:
        """True for root-namespace names this topology's :meth:`ifname` makes."""
        rest = ifname[len(self.prefix):]
        return ifname.startswith(self.prefix) and rest[:1].isalpha()

    def host(self, name: str) -> Host:
        """Create namespace ``<prefix>-<name>`` with ``lo`` up and no DAD."""
        if not _NAME_RE.match(name) or name in self.hosts:
            raise ValueError(f"bad or duplicate host name {name!r}")
        h = Host(self, name)
        sh(["ip", "netns", "add", h.netns])
        self.hosts[name] = h
        h.link_up("lo")
        h.sysctl("net.ipv6.conf.all.accept_dad", "0")
        h.sysctl("net.ipv6.conf.default.accept_dad", "0")
        return h

    def _check_root_name(self, ifname: str) -> None:
        if not self.owns_link(ifname) or len(ifname) > IFNAMSIZ:
            raise ValueError(f"root-namespace interface {ifname!r} must come "
                             "from topo.ifname(short)")

    def veth(self, a: Optional[Host], a_if: str, b: Optional[Host],
             b_if: str, a_addrs: Iterable[str] = (),
             b_addrs: Iterable[str] = (), mtu: Optional[int] = None) -> Veth:
        """Create a veth pair ``a:a_if`` <-> ``b:b_if``, addressed and up.

        A ``None`` host is the root namespace; its interface name must come
        from :meth:`ifname`.  Addresses are prefixes (``198.18.0.1/24``,
        ``fd00:198:18::1/64``).
        """
        for host, ifname in ((a, a_if), (b, b_if)):
            if host is None:
                self._check_root_name(ifname)
        argv = ["ip", "link", "add", "name", a_if, *self._ns_opt(a)]
        argv += ["type", "veth", "peer", "name", b_if, *self._ns_opt(b)]
        sh(argv)
        self._root_links += [n for h, n in ((a, a_if), (b, b_if)) if h is None]
        for host, ifname, addrs in ((a, a_if, a_addrs), (b, b_if, b_addrs)):
            self._configure(host, ifname, addrs, True, mtu)
        return Veth(a, a_if, b, b_if)

    def move_link(self, ifname: str, host: Host, addrs: Iterable[str] = (),
                  up: bool = True, new_name: Optional[str] = None,
                  mtu: Optional[int] = None, timeout: float = 10.0) -> str:
        """Move root-namespace ``ifname`` (e.g. a DPDK ``net_tap`` TAP) into
        ``host``, optionally renamed, then address it and set it up.

        Waits up to ``timeout`` seconds for the interface to appear first.
        Returns its name inside ``host``.
        """
        wait_until(lambda: link_exists(ifname), timeout,
                   f"interface {ifname} to appear")
        argv = ["ip", "link", "set", "dev", ifname, "netns", host.netns]
        if new_name:
            argv += ["name", new_name]
        sh(argv)
        name = new_name or ifname
        self._configure(host, name, addrs, up, mtu)
        return name

    def _ns_opt(self, host: Optional[Host]) -> list[str]:
        return ["netns", host.netns] if host is not None else []

    def _configure(self, host: Optional[Host], ifname: str,
                   addrs: Iterable[str], up: bool,
                   mtu: Optional[int]) -> None:
        """Set MTU, up, and addresses on ``ifname`` in ``host`` (or root)."""
        def ip(*args: str) -> None:
            if host is None:
                sh(["ip", *args])
            else:
                host.ip(*args)
        if mtu:
            ip("link", "set", "dev", ifname, "mtu", str(mtu))
        if up:
            ip("link", "set", "dev", ifname, "up")
        addrs = list(addrs)
        for addr in addrs:
            extra = ["nodad"] if _ip_family(addr) == "-6" else []
            ip("addr", "add", addr, "dev", ifname, *extra)
        if host is not None and up and any(":" in x for x in addrs):
            host.wait_addrs_ready(ifname)

    def _popen(self, host: Host, argv: list[str], log: Optional[str],
               kw: dict) -> subprocess.Popen:
        if self._closed:
            raise RuntimeError("topology already torn down")
        log_path = Path(log) if log else self._log_path(host, argv)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw["start_new_session"] = True
        fh = None
        if "stdout" not in kw or "stderr" not in kw:
            fh = open(log_path, "ab")
            kw.setdefault("stdout", fh)
            kw.setdefault("stderr", subprocess.STDOUT if
                          kw["stdout"] is fh else fh)
        try:
            proc = subprocess.Popen(argv, **kw)
        finally:
            if fh:
                fh.close()
        proc.log_path = log_path  # type: ignore[attr-defined]
        self._procs.append(proc)
        self._logs.append(log_path)
        return proc

    def _log_path(self, host: Host, argv: list[str]) -> Path:
        prog = os.path.basename(argv[4]) if len(argv) > 4 else "proc"
        return self.tmpdir / f"{host.name}-{prog}-{len(self._procs)}.log"

    # -- teardown ----------------------------------------------------------

    def dump_logs(self, lines: int = 30, stream=None) -> None:
        """Write the last ``lines`` lines of each process log to stderr."""
        stream = stream or sys.stderr
        for path in self._logs:
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            stream.write(f"--- {path.name} (last {lines} lines) ---\n")
            stream.write("".join(f"{t}\n" for t in tail))

    def close(self) -> None:
        """Kill processes, delete namespaces, links and temp dir.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._kill_procs()
            for h in self.hosts.values():
                _delete_netns(h.netns)
            for ifname in self._root_links:
                _delete_link(ifname)
            self._wait_gone()
        finally:
            if os.environ.get("LOPOWER_KEEP_LOGS"):  # for a post-mortem: logs and state stay
                print(f"kept {self.tmpdir}")
            else:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            _active_prefixes.discard(self.prefix)

    def _kill_procs(self) -> None:
        """SIGTERM each process group, SIGKILL what is left after a grace."""
        live = [p for p in self._procs if p.poll() is None]
        for p in live:
            _killpg(p, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        for p in live:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self._procs:
            _killpg(p, signal.SIGKILL)  # also strays left in the group
            try:
                p.wait(KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass

    def _wait_gone(self, timeout: float = 10.0) -> None:
        """Wait until no namespace or root link with our prefix is left."""
        def gone() -> bool:
            ns = [n for n in list_netns() if n.startswith(self.prefix + "-")]
            links = [n for n in list_links() if self.owns_link(n)]
            for n in links:
                _delete_link(n)
            return not ns and not links
        wait_until(gone, timeout, f"teardown of {self.prefix}", 0.1)


def _killpg(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
