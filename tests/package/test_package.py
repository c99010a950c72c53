"""The Debian package tools/package builds, installed on this machine.

The module builds the package once, installs it with apt-get and, whatever
happens, purges it again at the end (with the group and runtime directory it
brought), so the machine is left as it was. It refuses to run when a lopower
package is already installed: purging it would take an operator's config and
keys.

lopowerd is started here as systemd would start the installed unit (its
ExecStartPre and ExecStart command lines, UMask, limits and capability bounding
set, a NOTIFY_SOCKET) but in a network namespace of its own, so the TAP and
TUN interfaces it creates stay out of the machine's network. systemd itself
need not run; `systemd-analyze verify` checks the unit file.
"""

from __future__ import annotations

import array
import grp
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from lopower_net import sh

SOURCE_DIR = Path(os.environ.get("LOPOWER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
PACKAGE = "lopower"
UNIT = Path("/lib/systemd/system/lopowerd.service")
CONFIG = Path("/etc/lopower/lopower.toml")
STATE_DIR = Path("/var/lib/lopower")
GROUP = "lopower"
# Paths the package installs (dpkg -L), directories included.
INSTALLED = {"/usr/sbin/lopowerd", "/usr/bin/lopower-ctl", str(CONFIG), str(STATE_DIR), str(UNIT)}
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

# What the daemon test gives lopowerd instead of the example: the paths of the
# example (the unit's directories), one virtual port, no hugepages, no NIC.
TEST_CONFIG = """\
[daemon]
state_dir = "/var/lib/lopower"
ctl_socket = "/run/lopower/lopower.sock"
ctl_group = "lopower"
log_level = "info"

[dpdk]
lcores = "0-1"
no_huge = true
no_pci = true
memory_mb = 256
file_prefix = "lptpkg"

[dataplane]
mbufs = 4095
idle = "adaptive"

[[port]]
name = "lan"
device = "net_null0"
role = "both"
addresses = ["198.18.90.1/24", "fd00:198:18:90::1/64"]
"""


# ---------------------------------------------------------------- helpers

def package_status() -> str:
    """dpkg's state of the package: "" when dpkg does not know it."""
    cp = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE], check=False)
    return cp.stdout.strip() if cp.returncode == 0 else ""


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def purge() -> None:
    cp = sh(APT + ["remove", "--purge", PACKAGE], check=False, timeout=900, env=APT_ENV)
    if cp.returncode != 0:  # apt refuses a half-installed package at times; dpkg does not
        sh(["dpkg", "--purge", PACKAGE], timeout=300)


def read_unit(path: Path) -> dict[str, list[str]]:
    """The unit's settings, every value of a key in order (sections merged:
    the keys used here are unique to theirs)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def command_line(value: str) -> list[str]:
    """An Exec*= value as argv, without systemd's prefixes (-, @, +, !, :)."""
    return shlex.split(value.lstrip("-@+!:"))


def limit(value: str, which: int) -> str:
    """A Limit*= value for prlimit, capped at this process's hard limit:
    raising that takes CAP_SYS_RESOURCE, which a container may not have."""
    want = resource.RLIM_INFINITY if value == "infinity" else int(value)
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY and (want == resource.RLIM_INFINITY or want > hard):
        want = hard
    text = "unlimited" if want == resource.RLIM_INFINITY else str(want)
    return f"{text}:{text}"


def as_the_unit_runs(unit: dict[str, list[str]], argv: list[str]) -> list[str]:
    """``argv`` under the unit's limits and capability bounding set."""
    nofile = limit(unit["LimitNOFILE"][-1], resource.RLIMIT_NOFILE)
    memlock = limit(unit["LimitMEMLOCK"][-1], resource.RLIMIT_MEMLOCK)
    caps = [c.lower().removeprefix("cap_") for v in unit["CapabilityBoundingSet"] for c in v.split()]
    wrapped = ["prlimit", f"--nofile={nofile}", f"--memlock={memlock}",
               "setpriv", "--bounding-set=-all," + ",".join("+" + c for c in caps)]
    if unit.get("NoNewPrivileges", ["no"])[-1] == "yes":
        wrapped.append("--no-new-privs")
    return wrapped + ["--", *argv]


def verify(unit_file: Path) -> str:
    """What `systemd-analyze verify` says about ``unit_file``: "" when it
    accepts it without a word."""
    cp = sh(["systemd-analyze", "verify", str(unit_file)], check=False, timeout=120)
    said = (cp.stdout + cp.stderr).strip()
    return said or ("" if cp.returncode == 0 else f"exit status {cp.returncode}")


class NotifySocket:
    """An AF_UNIX datagram socket in the role of systemd's NOTIFY_SOCKET:
    each message with the pid of its sender."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[int, dict[str, str]]] = []

    def close(self) -> None:
        self.sock.close()

    def _receive(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(3 * 4))
        except socket.timeout:
            return False
        pid = 0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = array.array("i", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((pid, fields))
        return True

    def wait_for(self, key: str, value: str, proc: subprocess.Popen, timeout: float,
                 log: Path) -> int:
        """Wait until a message sets ``key=value``; returns its sender's pid.
        Fails at once when ``proc`` exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for pid, fields in self.messages:
                if fields.get(key) == value:
                    return pid
            if proc.poll() is not None and not self._receive(0.1):
                pytest.fail(f"lopowerd exited with {proc.returncode} before {key}={value}:\n"
                            f"{log.read_text(errors='replace')[-4000:]}")
            if time.monotonic() >= deadline:
                pytest.fail(f"no {key}={value} within {timeout:g}s (messages: {self.messages}):\n"
                            f"{log.read_text(errors='replace')[-4000:]}")
            self._receive(0.5)


# --------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def deb() -> Path:
    """tools/package's .deb (built in LOPOWER_PKG_DIR, default build-pkg)."""
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    cp = sh([str(SOURCE_DIR / "tools" / "package")], timeout=2000)
    path = Path(cp.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".deb", cp.stdout + cp.stderr
    return path


@pytest.fixture(scope="module")
def installed(deb: Path):
    """The package installed with apt-get (yields apt-get's output); purged
    afterwards, and the group and /run/lopower removed when they came with it."""
    if (status := package_status()) not in ("", "not-installed"):
        pytest.fail(f"dpkg already has {PACKAGE} ({status}): this suite installs and purges it. "
                    f"Remove it first: apt-get remove --purge {PACKAGE}")
    had_group = group_exists(GROUP)
    had_run_dir = Path("/run/lopower").exists()
    try:
        cp = sh(APT + ["install", "--no-install-recommends", str(deb)], timeout=900, env=APT_ENV)
        yield cp.stdout
    finally:
        if package_status() not in ("", "not-installed"):
            purge()
        if not had_group and group_exists(GROUP):
            sh(["groupdel", GROUP], check=False)
        if not had_run_dir:
            shutil.rmtree("/run/lopower", ignore_errors=True)


# ------------------------------------------------------------------ tests

def test_files_are_where_they_belong(installed):
    listed = set(sh(["dpkg", "-L", PACKAGE]).stdout.split())
    assert INSTALLED <= listed, f"missing: {INSTALLED - listed}; dpkg -L: {sorted(listed)}"
    for program in ("/usr/sbin/lopowerd", "/usr/bin/lopower-ctl"):
        assert os.access(program, os.X_OK), program
    st = STATE_DIR.stat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0, oct(st.st_mode)
    assert sh(["/usr/sbin/lopowerd", "--version"]).stdout.startswith("lopowerd ")
    assert sh(["/usr/bin/lopower-ctl", "version"]).stdout.startswith("lopower-ctl ")


def test_config_is_the_example_as_a_conffile(installed):
    assert CONFIG.read_bytes() == (SOURCE_DIR / "configs" / "lopower.example.toml").read_bytes()
    conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    assert str(CONFIG) in conffiles.split(), conffiles
    # It checks as shipped: its ctl_group is the group the package created.
    assert group_exists(GROUP)
    sh(["/usr/sbin/lopowerd", "--config", str(CONFIG), "--check-config"])


def test_dependencies_come_from_the_libraries(installed):
    depends = sh(["dpkg-query", "-W", "-f=${Depends}", PACKAGE]).stdout
    # dpkg-shlibdeps' (versioned) and the DPDK plugins EAL loads at run time.
    for name in ("libc6 (>=", "librte-eal", "libsodium", "librte-mempool-ring", "librte-bus-vdev", "librte-net-tap"):
        assert name in depends, depends
    ldd = sh(["ldd", "/usr/sbin/lopowerd"]).stdout
    assert "not found" not in ldd, ldd


def test_installing_neither_enables_nor_starts_it(installed):
    assert "neither enabled nor started" in installed
    assert "--check-config" in installed
    assert not list(Path("/etc/systemd/system").glob("*.wants/lopowerd.service"))


def test_unit_and_config_agree(installed):
    unit = read_unit(UNIT)
    config = tomllib.loads(CONFIG.read_text())["daemon"]
    assert command_line(unit["ExecStart"][-1]) == ["/usr/sbin/lopowerd", "--config", str(CONFIG)]
    assert command_line(unit["ExecStartPre"][-1]) == ["/usr/sbin/lopowerd", "--config", str(CONFIG), "--check-config"]
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    # systemd makes these two; the config points into them.
    assert Path(config["ctl_socket"]).parent == Path("/run") / unit["RuntimeDirectory"][-1]
    assert Path(config["state_dir"]) == Path("/var/lib") / unit["StateDirectory"][-1]
    assert unit["StateDirectoryMode"] == ["0700"]
    # lopower-ctl finds the socket without being told.
    assert config["ctl_socket"] == "/run/lopower/lopower.sock"


def test_systemd_analyze_verify_accepts_the_unit(installed, tmp_path):
    assert verify(UNIT) == ""
    # The check can fail: a misspelt key is a warning, a missing program an error.
    text = UNIT.read_text()
    broken = tmp_path / "lopowerd.service"
    broken.write_text(text.replace("\nRestart=", "\nRestrat=", 1))
    assert "Restrat" in verify(broken)
    broken.write_text(text.replace("ExecStart=/usr/sbin/lopowerd", "ExecStart=/usr/sbin/lopowerd-gone", 1))
    assert "lopowerd-gone" in verify(broken)


def test_lopowerd_starts_as_the_unit_starts_it(installed, topology, tmp_path):
    unit = read_unit(UNIT)
    gw = topology.host("gw")
    run_dir = Path("/run") / unit["RuntimeDirectory"][-1]
    # A socket left by a killed run is fine (lopowerd replaces it); one that answers is not ours.
    answers = sh(["/usr/bin/lopower-ctl", "--socket", str(run_dir / "lopower.sock"), "status"], check=False)
    assert answers.returncode != 0, f"a lopowerd already answers in {run_dir}: this test would take its place"
    example = CONFIG.read_bytes()
    CONFIG.write_text(TEST_CONFIG)
    notify = NotifySocket(tmp_path / "notify")
    log = tmp_path / "lopowerd.log"
    umask = int(unit["UMask"][-1], 8)
    try:
        # What systemd does before ExecStartPre: the runtime directory.
        run_dir.mkdir(mode=int(unit["RuntimeDirectoryMode"][-1], 8), exist_ok=True)
        for value in unit.get("ExecStartPre", []):
            gw.run(as_the_unit_runs(unit, command_line(value)), timeout=120, umask=umask)
        env = {k: v for k, v in os.environ.items() if k != "LOPOWER_CTL_SOCKET"}
        env["NOTIFY_SOCKET"] = str(notify.path)
        proc = gw.popen(as_the_unit_runs(unit, command_line(unit["ExecStart"][-1])), log=str(log), env=env,
                        umask=umask)
        # ip netns exec, prlimit and setpriv exec: the pid is lopowerd's, the
        # main process NotifyAccess=main listens to.
        assert notify.wait_for("READY", "1", proc, 180, log) == proc.pid
        # Ready means the control socket answers, at once.
        status = json.loads(sh(["/usr/bin/lopower-ctl", "status", "--json"], env=env, timeout=60).stdout)
        assert [p["name"] for p in status["ports"]] == ["lan"], status["ports"]
        sock = (run_dir / "lopower.sock").stat()
        assert stat.S_IMODE(sock.st_mode) == 0o660 and sock.st_gid == grp.getgrnam(GROUP).gr_gid
        assert stat.S_IMODE(STATE_DIR.stat().st_mode) == 0o700
        # systemctl stop: SIGTERM, STOPPING=1, a clean exit.
        proc.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING", "1", proc, 60, log) == proc.pid
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"lopowerd did not exit within 60s of SIGTERM:\n{log.read_text(errors='replace')[-4000:]}")
        assert rc == 0, log.read_text(errors="replace")[-4000:]
    finally:
        notify.close()
        CONFIG.write_bytes(example)
        shutil.rmtree(run_dir, ignore_errors=True)  # systemd removes it after the stop


def test_purge_leaves_nothing_behind(installed):
    purge()
    assert package_status() in ("", "not-installed")
    left = [p for p in (*INSTALLED, "/etc/lopower", "/etc/systemd/system/lopowerd.service",
                        "/var/lib/systemd/deb-systemd-helper-enabled/lopowerd.service.dsh-also",
                        "/var/lib/systemd/deb-systemd-helper-masked/lopowerd.service")
            if os.path.lexists(p)]
    assert not left, f"left after purge: {left}"
