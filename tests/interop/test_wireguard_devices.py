"""Real WireGuard devices (wireguard-go in namespaces) against lopowerd.

Every device is configured from the exact text `lopower-ctl device add`
printed. All hosts share one L2 segment with lopowerd's port.
"""

import hashlib
import json
import os
import subprocess
import time

import pytest

from lopower_net import wait_until
from lopowerd import Lopowerd, lan_switch, port_toml
from wg_device import WgDevice, config_from_add_output

GW4, GW6 = "198.18.0.1", "fd00:198:18::1"
LP4, LP6 = "10.90.0.1", "fd7a:115c:a1e0:9909::1"
DEVICES_TOML = '[devices]\nendpoint = "198.18.0.1:51820"\n'


def start_gateway(topology, hosts, extra_toml=""):
    gw = topology.host("gw")
    lan_switch(topology, gw, "port0", hosts)
    lp = Lopowerd(gw, port_toml("lan", "net_af_packet0,iface=port0", [f"{GW4}/24", f"{GW6}/64"]),
                  extra_toml=DEVICES_TOML + extra_toml).start()
    return gw, lp


def enroll(lp, host, name, *flags):
    printed = lp.ctl("device", "add", name, *flags).stdout
    assert "[Interface]" in printed and "\u2588" in printed, "config and QR code are printed"
    return WgDevice(host, config_from_add_output(printed)).up()


def device_info(lp, name):
    return json.loads(lp.ctl("device", "show", name, "--json").stdout)


@pytest.fixture
def two_devices(topology):
    d1, d2 = topology.host("d1"), topology.host("d2")
    gw, lp = start_gateway(topology, {d1: ["198.18.0.11/24"], d2: ["198.18.0.12/24"]})
    yield topology, lp, d1, d2
    lp.stop()


def test_handshake_and_ping_both_families(two_devices):
    topology, lp, d1, _ = two_devices
    dev = enroll(lp, d1, "esp1", "--keep-private-key")  # for the QR code again below
    png = topology.tmpdir / "esp1.png"
    lp.ctl("device", "show", "esp1", "--qr-png", str(png))
    assert png.stat().st_mode & 0o777 == 0o600, "the image holds the private key"
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True, text=True, check=True).stdout
    assert decoded.strip() == device_info(lp, "esp1")["config"].strip()
    assert dev.ping(LP4) and dev.ping(LP6)
    info = device_info(lp, "esp1")
    assert info["wireguard"]["session"] and info["wireguard"]["endpoint"] == f"198.18.0.11:{dev.dump()[0][2]}"
    assert info["wireguard"]["rx_packets"] >= 6 and info["wireguard"]["tx_packets"] >= 6
    assert dev.latest_handshake() > 0
    status = lp.status()
    assert status["wireguard"]["handshakes"]["handshakes_completed"] >= 1
    assert status["wireguard"]["crypto_backend"] in ("ipsec-mb", "libsodium")


def test_ipv4_only_and_ipv6_only_devices(two_devices):
    _, lp, d1, d2 = two_devices
    v4 = enroll(lp, d1, "esp-v4", "--ipv4-only")
    v6 = enroll(lp, d2, "esp-v6", "--ipv6-only")
    assert v4.config.addresses == ["10.90.0.2/32"] and all(":" not in a for a in v4.config.allowed_ips)
    assert v6.config.addresses == ["fd7a:115c:a1e0:9909::2/128"] and all("." not in a for a in v6.config.allowed_ips)
    assert v4.ping(LP4) and v6.ping(LP6)


def test_two_devices_then_one_removed_mid_session(two_devices):
    _, lp, d1, d2 = two_devices
    a, b = enroll(lp, d1, "a"), enroll(lp, d2, "b")
    assert a.ping(LP4) and b.ping(LP4)
    lp.ctl("device", "remove", "a")
    assert not a.ping(LP4, count=3, wait=1), "a removed device gets no answers"
    assert b.ping(LP4, count=5), "the other device is untouched"
    assert "a" not in lp.ctl("device", "list").stdout.split()


def test_restart_keeps_devices_without_reenrolling(two_devices):
    _, lp, d1, _ = two_devices
    dev = enroll(lp, d1, "esp1")
    assert dev.ping(LP4)
    before = dev.latest_handshake()
    assert lp.stop() == 0
    lp.start()
    assert json.loads(lp.ctl("device", "list", "--json").stdout)[0]["name"] == "esp1"
    # The device still uses its old session; lopower lost it, so the device
    # re-handshakes once its data goes unanswered (KEEPALIVE + REKEY_TIMEOUT).
    wait_until(lambda: dev.ping(LP4, count=1, wait=1), 40, "the device to reach lopower after the restart")
    assert dev.latest_handshake() > before


def test_roaming_follows_the_latest_authenticated_packet(two_devices):
    _, lp, d1, _ = two_devices
    dev = enroll(lp, d1, "esp1")
    assert dev.ping(LP4)
    # The device moves to a new address and its port changes (a NAT
    # rebinding); rebinding also clears wireguard-go's sticky source.
    d1.sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")  # keep the new address when the old goes
    d1.ip("addr", "add", "198.18.0.21/24", "dev", "eth0")
    d1.ip("addr", "del", "198.18.0.11/24", "dev", "eth0")
    d1.run(["wg", "set", dev.ifname, "listen-port", "51999"])
    assert dev.ping(LP4, count=3)
    info = wait_until(lambda: (i := device_info(lp, "esp1"))["wireguard"]["endpoint"] == "198.18.0.21:51999" and i,
                      10, "the endpoint to follow the device")
    assert lp.status()["wireguard"]["handshakes"]["endpoint_changes"] >= 1
    assert info["wireguard"]["session"]


def test_rekey_inside_the_test(topology):
    d1 = topology.host("d1")
    _, lp = start_gateway(topology, {d1: ["198.18.0.11/24"]},
                          "[wireguard]\nrekey_after_seconds = 4\nreject_after_seconds = 12\nkeepalive_timeout_seconds = 2\n")
    dev = enroll(lp, d1, "esp1")
    assert dev.ping(LP4)
    first = device_info(lp, "esp1")["wireguard"]["handshakes"]
    loss = dev.ping_loss(LP4, count=120, interval=0.1)  # 12 s: past a rekey, up to an expiry
    after = device_info(lp, "esp1")["wireguard"]
    assert after["handshakes"] > first, "at least one rekey happened"
    assert lp.status()["wireguard"]["handshakes"]["rekeys_started"] >= 1
    # A rekey that stalls traffic loses whole seconds of pings; a busy
    # machine loses a few (the bound is a stall's, not speed's).
    assert loss <= 0.2, f"traffic kept flowing across the rekey (loss {loss:.0%})"
    lp.stop()


def forged_initiation(server_public: bytes, sender: int) -> bytes:
    """148 bytes with a valid MAC1 (anyone can compute it from lopower's
    public key) and garbage where Noise needs real keys: it costs the
    responder Diffie-Hellman work unless cookies stop it."""
    body = bytes([1, 0, 0, 0]) + sender.to_bytes(4, "little") + hashlib.sha256(sender.to_bytes(4, "little")).digest() * 4
    body = body[:116]
    mac1_key = hashlib.blake2s(b"mac1----" + server_public).digest()
    mac1 = hashlib.blake2s(body, key=mac1_key, digest_size=16).digest()
    return body + mac1 + bytes(16)


@pytest.mark.skipif(bool(os.environ.get("LOPOWER_SANITIZED")),
                    reason="a loss bound measures speed: it runs on the optimised build (interop suite), "
                           "not under ASan (sanitize suite)")
def test_initiation_flood_does_not_starve_an_established_device(topology):
    d1, attacker = topology.host("d1"), topology.host("evil")
    _, lp = start_gateway(topology, {d1: ["198.18.0.11/24"], attacker: ["198.18.0.66/24"]},
                          "[wireguard]\nhandshake_load_threshold = 16\n")
    dev = enroll(lp, d1, "esp1")
    assert dev.ping(LP4)
    import base64
    server_public = base64.b64decode(lp.status()["wireguard"]["public_key"])
    packets = [forged_initiation(server_public, i).hex() for i in range(256)]
    flood = (
        "import socket,time,sys\n"
        f"pk=[bytes.fromhex(h) for h in {packets!r}]\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('198.18.0.66',40000));s.setblocking(False)\n"
        "end=time.time()+15;sent=0;cookies=0\n"
        "while time.time()<end:\n"
        "  for p in pk:\n"
        "    try: s.sendto(p,('198.18.0.1',51820));sent+=1\n"
        "    except BlockingIOError: pass\n"
        "  while True:\n"
        "    try: d=s.recv(2048)\n"
        "    except BlockingIOError: break\n"
        "    if len(d)==64 and d[0]==3: cookies+=1\n"
        "print(sent,cookies)\n")
    attack = attacker.popen(["python3", "-c", flood], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    # On two cores the flooding process itself competes for the CPU, and CI
    # may run a fuzzer beside it (15 % of a window was seen lost that way):
    # up to three windows (all inside the flood) tell a scheduling hiccup
    # from starvation, which loses nearly every ping of every window. The
    # bound is starvation's, not speed's (speed belongs in benchmarks).
    losses = []
    for _ in range(3):
        losses.append(dev.ping_loss(LP4, count=60, interval=0.05))
        if losses[-1] <= 0.05:
            break
    loss = min(losses)
    sent, cookies = map(int, attack.communicate(timeout=30)[0].split())
    hs = lp.status()["wireguard"]["handshakes"]
    assert sent > 10_000, "the flood was a flood"
    assert loss <= 0.5, f"the established device kept its traffic (losses {losses})"
    assert hs["cookie_replies_sent"] > 0 and cookies > 0, f"under load lopower answers with cookies, not work: {hs}"
    lp.stop()


APPS = __import__("pathlib").Path(__file__).resolve().parent.parent / "e2e" / "apps"

# Runs until the file named by argv[1] exists: junk initiations (random
# bytes, so a wrong MAC1) and MAC1-valid forgeries (hex in argv[2]) to
# argv[3]:51820, as fast as Python sends them; prints how many it sent.
INITIATION_FLOOD = """
import os, socket, sys
stop, forged, target = sys.argv[1], [bytes.fromhex(h) for h in sys.argv[2].split(",")], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
sent = 0
while not os.path.exists(stop):
    for f in forged:
        for p in (f, bytes([1, 0, 0, 0]) + os.urandom(144)):
            try: s.sendto(p, (target, 51820)); sent += 1
            except BlockingIOError: pass
print(sent)
"""

# Runs until the file named by argv[1] exists: DNS queries to argv[2]:53
# as fast as they go (answers are not read).
DNS_FLOOD = """
import os, socket, struct, sys
stop, server = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.setblocking(False)
q = struct.pack("!6H", 7, 0x0100, 1, 0, 0, 0) + b"\\x05flood\\x07example\\x00" + struct.pack("!2H", 1, 1)
sent = 0
while not os.path.exists(stop):
    for _ in range(64):
        try: s.sendto(q, (server, 53)); sent += 1
        except BlockingIOError: pass
    try:
        while s.recv(2048): pass
    except BlockingIOError: pass
print(sent)
"""


def test_floods_leave_room_for_a_new_device_and_for_dns(topology):
    """Junk and forged initiations from a host, and a DNS flood from an
    enrolled device, at once: a device enrolled during the floods completes
    its handshake, and another device's DNS question is answered. Junk dies
    on the worker (wg_bad_mac1), the flooding device's queries past its
    rate too (dns_device_rate), and forgeries get cookies, not work."""
    d1, d2, d3, attacker = (topology.host(n) for n in ("d1", "d2", "d3", "evil"))
    _, lp = start_gateway(topology, {d1: ["198.18.0.11/24"], d2: ["198.18.0.12/24"], d3: ["198.18.0.13/24"],
                                     attacker: ["198.18.0.66/24"]},
                          "[wireguard]\nhandshake_load_threshold = 16\n[dns]\ndevice_query_rate = 50\n")
    asker, chatty = enroll(lp, d1, "asker"), enroll(lp, d2, "chatty")
    assert asker.ping(LP4) and chatty.ping(LP4)
    import base64
    server_public = base64.b64decode(lp.status()["wireguard"]["public_key"])
    forged = ",".join(forged_initiation(server_public, i).hex() for i in range(64))
    stop = topology.tmpdir / "stop-floods"
    floods = [attacker.popen(["python3", "-c", INITIATION_FLOOD, str(stop), forged, GW4], stdout=subprocess.PIPE, text=True),
              d2.popen(["python3", "-c", DNS_FLOOD, str(stop), LP4], stdout=subprocess.PIPE, text=True)]
    try:
        wait_until(lambda: port_drops(lp, "wg_bad_mac1") > 1000 and port_drops(lp, "dns_device_rate") > 100, 60,
                   "both floods to be on")

        def asked():
            r = d1.run(["python3", str(APPS / "dns_query.py"), LP4, "other.example", "A", "3"], check=False, timeout=30)
            return r.returncode == 0 and json.loads(r.stdout)["rcode"] in (0, 2, 3)  # any answer: none is an upstream
        # On a busy machine the port itself drops most of any device's
        # packets under these floods, before lopower's code sees them (the
        # kernel's ring behind net_af_packet fills while lopowerd, under the
        # sanitizers 2-3 times slower, waits for a core): ask as a stub
        # resolver does, again after a few seconds, until one is answered.
        wait_until(asked, 150, "the other device's DNS question to be answered during the floods")
        assert lp.status()["wireguard"]["under_load"], "forged initiations keep lopower under load"
        newcomer = enroll(lp, d3, "newcomer")
        wait_until(lambda: newcomer.ping(LP4, count=1, wait=1), 90,
                   "a device enrolled during the floods to complete its handshake")
        assert all(f.poll() is None for f in floods), "the floods were still on"
    finally:
        stop.touch()
        sent = [int(f.communicate(timeout=30)[0] or 0) for f in floods]
    hs = lp.status()["wireguard"]["handshakes"]
    assert sent[0] > 10_000 and sent[1] > 1_000, f"the floods were floods: {sent}"
    assert hs["cookie_replies_sent"] > 0, f"forged initiations got cookies, not work: {hs}"
    # What the floods could not do: push devices' handshakes or DNS out of
    # their rings. Sharing one ring with the floods, about half of the
    # other device's questions were lost; unpaced, the flooder alone
    # overflows the inner ring; with only the control thread's flag, a
    # burst of forgeries between two of its ticks (longer when it is
    # starved of CPU) filled the handshake ring. Junk, forgeries and the
    # flooder's excess went before (wg_bad_mac1, unproven_ring_full,
    # dns_device_rate): the worker turns "under load" itself once its
    # handshake rings hold more than the threshold. (That overflow needs a
    # starved control thread, so here it is a guard; the mechanism is shown
    # by tests/unit/dataplane's forged-initiations case, which fails
    # without it.)
    assert port_drops(lp, "control_ring_full") == 0, "forgeries pushed devices' handshakes out"
    assert port_drops(lp, "inner_ring_full") == 0, "the floods pushed devices' DNS out"
    lp.stop()


def port_drops(lp, reason):
    return sum(p["drops"].get(reason, 0) for p in lp.status()["ports"])


def test_enrollment_refusals_change_nothing(two_devices):
    _, lp, _, _ = two_devices
    lp.ctl("device", "add", "esp1", "--no-qr")
    for args, message in [
        (["esp1"], "taken"),
        (["bad name!"], "name"),
        (["esp2", "--public-key", "not-a-key"], "public key"),
        (["esp3", "--keepalive", "70000"], "keepalive"),
    ]:
        out = lp.ctl("device", "add", *args, check=False)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr)
    assert [d["name"] for d in json.loads(lp.ctl("device", "list", "--json").stdout)] == ["esp1"]


def test_device_with_its_own_key_and_reset_timestamp(two_devices):
    _, lp, d1, _ = two_devices
    priv = d1.run(["wg", "genkey"]).stdout.strip()
    pub = d1.run(["wg", "pubkey"], input=priv + "\n").stdout.strip()
    printed = lp.ctl("device", "add", "selfkeyed", "--public-key", pub, "--no-qr").stdout
    assert priv not in printed and "PrivateKey" in printed
    text = "\n".join(f"PrivateKey = {priv}" if line.startswith("PrivateKey") else line
                     for line in config_from_add_output(printed).splitlines())
    dev = WgDevice(d1, text).up()
    assert dev.ping(LP4)
    assert json.loads(lp.ctl("device", "show", "selfkeyed", "--json").stdout)["lopower_has_private_key"] is False
    gen = json.loads(lp.ctl("device", "reset-timestamp", "selfkeyed", "--json").stdout)["timestamp_reset_generation"]
    assert gen == 1
    assert dev.ping(LP4), "the live session is untouched by reset-timestamp"


def test_reset_timestamp_lets_a_clockless_device_back_in(two_devices):
    """A device without a real-time clock reboots: its TAI64N timestamps
    restart near 1970, so lopower refuses them as replays until the operator
    runs `device reset-timestamp`."""
    from lopowerd import BUILD_DIR
    _, lp, d1, _ = two_devices
    printed = lp.ctl("device", "add", "clockless", "--no-qr").stdout
    device_private = next(l.split("=", 1)[1].strip() for l in printed.splitlines() if l.startswith("PrivateKey"))
    server_public = lp.status()["wireguard"]["public_key"]
    initiator = [str(BUILD_DIR / "tests" / "wg_initiator"), server_public, device_private, GW4, "51820"]
    now = int(time.time())
    assert d1.run(initiator + [str(now)], check=False).returncode == 0, "a handshake with today's time is answered"
    after_reboot = initiator + ["1000"]  # 1000 s after the epoch: what a clockless device counts from
    assert d1.run(after_reboot, check=False).returncode == 1, "an older timestamp is refused as a replay"
    assert lp.status()["wireguard"]["handshakes"]["errors"].get("replayed_timestamp", 0) >= 1
    lp.ctl("device", "reset-timestamp", "clockless")
    assert d1.run(after_reboot, check=False).returncode == 0, "after reset-timestamp the device is let in"
    assert d1.run(after_reboot, check=False).returncode == 1, "and from then on its timestamps must grow again"


def test_lopower_keeps_only_the_public_key_unless_asked(two_devices):
    """`device add` shows a generated config once and keeps only the public
    key (as if the device had run `wg genkey`): no private key in the state
    file, `device show` has a placeholder; the device works from what was
    shown. --keep-private-key keeps it for later."""
    _, lp, d1, _ = two_devices
    added = lp.ctl("device", "add", "once", "--no-qr")
    assert "shown once" in added.stderr, added.stderr
    private = next(l.split("=", 1)[1].strip() for l in added.stdout.splitlines() if l.startswith("PrivateKey"))
    state = (lp.dir / "state" / "devices.json").read_text()
    assert private not in state
    assert json.loads(state)["devices"][0].get("private_key") is None
    shown = device_info(lp, "once")
    assert shown["lopower_has_private_key"] is False and private not in shown["config"]
    assert not lp.ctl("device", "show", "once", "--qr-png", "/dev/null", check=False).stdout.count(private)
    dev = WgDevice(d1, config_from_add_output(added.stdout)).up()
    assert dev.ping(LP4), "the device runs on the config it was shown"
    kept = lp.ctl("device", "add", "kept", "--no-qr", "--keep-private-key")
    assert "shown once" not in kept.stderr
    assert device_info(lp, "kept")["lopower_has_private_key"] is True
    kept_private = next(l.split("=", 1)[1].strip() for l in kept.stdout.splitlines() if l.startswith("PrivateKey"))
    assert kept_private in device_info(lp, "kept")["config"]


def test_the_control_group_may_look_but_not_change(topology):
    """With a ctl_group, its members reach the socket: status and lists
    answer, commands that change lopower or reveal keys are root's."""
    group = f"lpt{os.getpid() % 100000}"
    subprocess.run(["groupadd", group], check=True)
    try:
        gid = int(subprocess.run(["getent", "group", group], capture_output=True, text=True, check=True).stdout.split(":")[2])
        _, lp = start_gateway(topology, {topology.host("d1"): ["198.18.0.11/24"]})
        lp.stop()  # again with the group in its [daemon] table
        lp.config.write_text(lp.config.read_text().replace("[daemon]\n", f'[daemon]\nctl_group = "{group}"\n', 1))
        for d in (topology.tmpdir, lp.dir):
            d.chmod(0o711)  # the member must reach the socket, as under /run
        lp.start()
        lp.ctl("device", "add", "esp1", "--no-qr")

        def as_member(*args):
            from lopowerd import LOPOWER_CTL
            return subprocess.run(["setpriv", "--reuid=65534", f"--regid={gid}", "--clear-groups",
                                   str(LOPOWER_CTL), "--socket", str(lp.socket), *args],
                                  capture_output=True, text=True, timeout=30)

        assert as_member("status", "--json").returncode == 0
        listed = as_member("device", "list", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["name"] == "esp1"
        for args in (["device", "add", "esp2"], ["device", "show", "esp1"], ["device", "remove", "esp1"],
                     ["device", "reset-timestamp", "esp1"], ["device", "set", "esp1", "--egress", "none"], ["logout"]):
            r = as_member(*args)
            assert r.returncode != 0 and "root only" in r.stderr, (args, r.stdout, r.stderr)
        assert [d["name"] for d in json.loads(lp.ctl("device", "list", "--json").stdout)] == ["esp1"]
        lp.stop()
    finally:
        subprocess.run(["groupdel", group], check=False)
