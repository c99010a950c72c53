"""What an operator reads: ``lopower-ctl device list`` (as ``wg show``),
``device show``, ``top --once`` and ``version``, on a wireguard-go device
enrolled with lopowerd and passing traffic to a tailnet peer (the splice lab
of tests/net/splice_lab.py: headscale + tailscaled ts1, lopowerd on the LAN).

Everything is waited for with generous deadlines: the machine is busy.
"""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, sh, wait_until
from lopowerd import LOPOWER_CTL, LOPOWERD, SOURCE_DIR
from splice_lab import SINK_PORT, Device, flows, run_client, splice_lab, start_paced_upload
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}
AGO = re.compile(r"^  latest handshake: (?:\d+ (?:year|day|hour|minute|second)s?(?:, )?)+ ago$", re.M)
TRANSFER = re.compile(r"^  transfer: ([\d.]+) (B|KiB|MiB|GiB|TiB) received, ([\d.]+) (B|KiB|MiB|GiB|TiB) sent$", re.M)


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], [Device("dev1")]) as lab:
            yield lab


def device_block(text, name):
    """The lines of `name`'s block in `device list` output."""
    m = re.search(rf"^device: {re.escape(name)}\n(?:  .*\n?)*", text, re.M)
    assert m, text
    return m.group(0)


def transfer_of(block):
    """(received, sent) in bytes, as far as two decimals of a unit say."""
    m = TRANSFER.search(block)
    assert m, block
    return float(m.group(1)) * UNITS[m.group(2)], float(m.group(3)) * UNITS[m.group(4)], UNITS[m.group(2)], UNITS[m.group(4)]


def devices_json(d):
    return {dev["name"]: dev for dev in json.loads(d.ctl("device", "list", "--json").stdout)}


def test_device_list_reads_like_wg_show(lab):
    d, dev1, ts1 = lab.lopowerd, lab.devices["dev1"], lab.peers["ts1"]
    wait_until(lambda: dev1.ping(ts1.ip(4), count=1, wait=2), 30, "a spliced ping")
    wg = d.status()["wireguard"]
    out = d.ctl("device", "list").stdout
    assert out.startswith("interface: devices\n"), out
    assert f"\n  public key: {wg['public_key']}\n" in out, out
    assert f"\n  listening port: {wg['listen_port']}\n" in out, out
    assert "\n  devices: 1\n" in out, out
    info = devices_json(d)["dev1"]
    block = device_block(out, "dev1")
    assert f"  public key: {info['public_key']}\n" in block, block
    assert f"  allowed ips: {info['ipv4']}/32, {info['ipv6']}/128\n" in block, block
    # The endpoint is the device's address and wireguard-go's port.
    assert f"  endpoint: 198.18.40.50:{dev1.dump()[0][2]}\n" in block, block
    assert "  persistent keepalive: every 25 seconds\n" in block, block
    # "Now" in the second of the handshake; "N seconds ago" after it.
    def handshake_ago():
        b = device_block(d.ctl("device", "list").stdout, "dev1")
        return b if AGO.search(b) else None
    block = wait_until(handshake_ago, 30, "a latest handshake some seconds ago")

    # More traffic: the transfer grows.
    rx, tx, _, _ = transfer_of(block)
    r = run_client(dev1, "upload", ts1.ip(4), SINK_PORT, 300_000, 5, d=d)
    assert r["answer"] == r["sent"], r

    def grown():
        b = device_block(d.ctl("device", "list").stdout, "dev1")
        rx2, tx2, _, _ = transfer_of(b)
        return b if rx2 >= rx + 300_000 and tx2 > tx else None
    wait_until(grown, 30, "the transfer to grow by the upload")


def test_device_list_json_matches_the_text(lab):
    d, dev1, ts1 = lab.lopowerd, lab.devices["dev1"], lab.peers["ts1"]
    assert dev1.ping(ts1.ip(4), count=2)
    before = devices_json(d)["dev1"]
    block = device_block(d.ctl("device", "list").stdout, "dev1")
    after = devices_json(d)["dev1"]
    for dev in (before, after):
        assert dev["allowed_ips"] == [f"{dev['ipv4']}/32", f"{dev['ipv6']}/128"], dev
        assert dev["keepalive"] == 25, dev
        w = dev["wireguard"]
        assert isinstance(w["rx_bytes"], int) and isinstance(w["tx_bytes"], int), w
        assert isinstance(w["seconds_since_handshake"], int) and w["seconds_since_handshake"] >= 0, w
        assert w["latest_handshake"] > 0, w
    assert f"  public key: {after['public_key']}\n" in block
    assert f"  endpoint: {after['wireguard']['endpoint']}\n" in block
    # The text's transfer, to its two decimals, lies between the JSON's before and after.
    rx, tx, rx_unit, tx_unit = transfer_of(block)
    assert before["wireguard"]["rx_bytes"] - rx_unit * 0.005 <= rx <= after["wireguard"]["rx_bytes"] + rx_unit * 0.005
    assert before["wireguard"]["tx_bytes"] - tx_unit * 0.005 <= tx <= after["wireguard"]["tx_bytes"] + tx_unit * 0.005


def test_device_show_lists_its_flow_during_a_transfer(lab):
    d, dev1, ts1 = lab.lopowerd, lab.devices["dev1"], lab.peers["ts1"]
    upload, result = start_paced_upload(dev1, ts1, 3 * 1024 * 1024, 20)
    try:
        sink = f"-> {ts1.ip(4)}:{SINK_PORT}"

        def shown():
            out = d.ctl("device", "show", "dev1").stdout
            lines = [l for l in out.splitlines() if sink in l and " tcp " in l and "established" in l]
            return out if lines else None
        out = wait_until(shown, 60, "device show to list the upload's flow")
        # Its block first, then the flows, then the config as before.
        assert out.startswith("device: dev1\n"), out
        assert out.index("flows:") < out.index("[Interface]"), out
        shown_json = json.loads(d.ctl("device", "show", "dev1", "--json").stdout)
        assert "PrivateKey" in shown_json["config"]
        assert any(f["destination"] == f"{ts1.ip(4)}:{SINK_PORT}" and f["device"] == "dev1" for f in shown_json["flows"]), \
            shown_json["flows"]
        # What `flows --device dev1` lists.
        assert any(f["destination"] == f"{ts1.ip(4)}:{SINK_PORT}" for f in flows(d, "dev1"))
    finally:
        upload.join(240)
    assert result.get("answer") == result.get("sent"), result


def test_top_once_fits_80x24_and_shows_the_busy_device(lab):
    d, dev1, ts1 = lab.lopowerd, lab.devices["dev1"], lab.peers["ts1"]
    upload, result = start_paced_upload(dev1, ts1, 3 * 1024 * 1024, 20)
    frames = []
    try:
        def busy_frame():
            out = d.ctl("top", "--once").stdout
            frames.append(out)
            lines = out.splitlines()
            assert 0 < len(lines) <= 24, out
            assert all(len(l) <= 80 for l in lines), out
            rows = [l for l in lines[lines.index(next(l for l in lines if l.startswith("DEVICE"))) + 1:]
                    if l.startswith("dev1 ")]
            # dev1's row with bytes/s other than 0 in the receiving column.
            return out if rows and re.match(r"dev1\s+[\d.]+ (KiB|MiB|GiB)/s", rows[0]) else None
        out = wait_until(busy_frame, 60, "top --once to show dev1 busy", interval=0.5)
    finally:
        upload.join(240)
    assert result.get("answer") == result.get("sent"), result
    assert re.search(r"^lopowerd \S+ \(\S+\)  up \S+  rates over \d+\.\d s$", out, re.M), out
    assert re.search(r"^tailnet Running  devices 1  peers \d+ \(\d+ online\)", out, re.M), out
    assert re.search(r"^lan\s+\S+\s+\S+ [kMG]?bit/s", out, re.M), out
    assert re.search(r"^\s+\d+ \[[#.]{10}\]\s+[\d.]+%", out, re.M), out  # a worker's busy share
    assert "DROPS rising" in out, out


def run_top_in_a_terminal(d, key):
    """`lopower-ctl top` on a pseudo-terminal until it has drawn two frames,
    then `key` is typed: (exit code, what it wrote, whether the terminal's
    modes came back as they were)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    modes = termios.tcgetattr(slave)
    proc = subprocess.Popen([str(LOPOWER_CTL), "--socket", str(d.socket), "top", "--interval", "0.5"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    out = b""
    try:
        def drawn():
            nonlocal out
            while select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
            return out.count(b"rates over") >= 1
        wait_until(drawn, 30, "top to draw a frame with rates")
        os.write(master, key)
        rc = proc.wait(15)
        while select.select([master], [], [], 0.2)[0]:
            try:
                out += os.read(master, 65536)
            except OSError:
                break
        return rc, out, termios.tcgetattr(slave) == modes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_live_quits_and_restores_the_terminal(lab, key):
    rc, out, restored = run_top_in_a_terminal(lab.lopowerd, key)
    assert rc == 0, out[-2000:]
    assert out.startswith(b"\x1b[?1049h"), out[:200]  # the alternate screen...
    assert out.rstrip(b"\r\n").endswith(b"\x1b[?25h\x1b[?1049l"), out[-200:]  # ...left, the cursor back
    assert restored, "the terminal's modes (echo, line editing) are as they were"
    frame = out.split(b"\x1b[H")[-1].decode(errors="replace")
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", l).strip("\r") for l in frame.split("\n")]
    assert len(lines) <= 24 and all(len(l) <= 80 for l in lines), frame


def git_revision():
    r = subprocess.run(["git", "-C", str(SOURCE_DIR), "describe", "--always", "--dirty", "--abbrev=12"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def check_revision(revision):
    """The revision the build recorded: what git describes now, or (when the
    tree changed since the build: others work in it) a commit of this repository."""
    assert revision and revision != "unknown", revision
    if revision == git_revision():
        return
    m = re.search(r"(?:^|-g)([0-9a-f]{12})(?:-dirty)?$", revision)
    assert m, revision
    assert subprocess.run(["git", "-C", str(SOURCE_DIR), "cat-file", "-e", f"{m.group(1)}^{{commit}}"]).returncode == 0, \
        revision


def test_versions(lab):
    d = lab.lopowerd
    out = sh([str(LOPOWERD), "--version"]).stdout
    lines = out.splitlines()
    assert re.fullmatch(r"lopowerd \d+\.\d+\.\d+\S*", lines[0]), out
    assert lines[1].startswith("revision "), out
    check_revision(lines[1].split()[1])
    assert re.fullmatch(r"DPDK \d+\.\d+\.\d+\S*", lines[2]), out
    assert re.match(r"crypto (ipsec-mb|libsodium) \(", lines[3]), out

    status = d.status()
    check_revision(status["revision"])
    assert status["dpdk"] == lines[2], status["dpdk"]

    out = d.ctl("version").stdout
    assert re.search(rf"^lopower-ctl \S+\n  revision (\S+)\nlopowerd \S+\n  revision (\S+)\n  {re.escape(lines[2])}\n"
                     rf"  crypto {re.escape(status['wireguard']['crypto_backend'])} \(", out), out
    ctl_rev, daemon_rev = re.findall(r"^  revision (\S+)$", out, re.M)
    check_revision(ctl_rev)
    assert daemon_rev == status["revision"], out
    v = json.loads(d.ctl("version", "--json").stdout)
    assert v["lopowerd"]["revision"] == status["revision"] and v["lopowerd"]["dpdk"] == status["dpdk"], v
    assert v["lopowerd"]["crypto_backend"] == status["wireguard"]["crypto_backend"], v
