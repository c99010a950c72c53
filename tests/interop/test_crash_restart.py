"""lopowerd killed with SIGKILL at random moments, 20 times: while devices
are being enrolled and while an enrolled device sends traffic. Nothing
acknowledged to the operator is lost: every device whose `device add`
returned is there after the restart, the state file parses, and the device
that was talking reaches lopower again (a new handshake)."""

import base64
import json
import os
import random
import signal
import subprocess
import threading
import time

from lopower_net import wait_until
from test_wireguard_devices import LP4, enroll, start_gateway

ROUNDS = 20


def public_key(n: int) -> str:
    """A distinct X25519-shaped key for device ``n`` (lopower stores only the
    public key of a `--public-key` enrollment; it need not be on the curve
    for this)."""
    return base64.b64encode(n.to_bytes(4, "big") + bytes(27) + b"\x40").decode()


def names(lp) -> set:
    return {d["name"] for d in json.loads(lp.ctl("device", "list", "--json").stdout)}


def enroll_until_killed(lp, first: int, acknowledged: list, stop: threading.Event) -> None:
    """`device add` one after another; the names whose add returned 0."""
    n = first
    while not stop.is_set():
        r = lp.ctl("device", "add", f"crash{n}", "--public-key", public_key(n), check=False, timeout=30)
        if r.returncode != 0:
            return  # lopowerd went away mid-command: not acknowledged (it may or may not be kept)
        acknowledged.append(f"crash{n}")
        n += 1


def test_sigkill_at_random_moments_loses_nothing_acknowledged(topology):
    seed = int(os.environ.get("LOPOWER_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    d1 = topology.host("d1")
    _, lp = start_gateway(topology, {d1: ["198.18.0.11/24"]})
    talker = enroll(lp, d1, "talker")
    assert talker.ping(LP4)
    traffic = d1.popen(["ping", "-q", "-i", "0.05", LP4], stdout=subprocess.DEVNULL)  # through every crash
    acknowledged: list[str] = []
    try:
        for round_ in range(ROUNDS):
            stop = threading.Event()
            adder = threading.Thread(target=enroll_until_killed, args=(lp, 1000 * (round_ + 1), acknowledged, stop))
            adder.start()
            time.sleep(rng.uniform(0.0, 0.6))
            lp.proc.send_signal(signal.SIGKILL)
            lp.proc.wait(30)
            stop.set()
            adder.join(60)
            state = json.loads((lp.dir / "state" / "devices.json").read_text())  # whole after every kill
            on_disk = {d["name"] for d in state["devices"]}
            assert set(acknowledged) <= on_disk, f"round {round_} (seed {seed}): on disk {sorted(on_disk)}"
            lp.start()
            listed = names(lp)
            lost = [name for name in acknowledged if name not in listed]
            assert not lost, f"round {round_} (seed {seed}): acknowledged devices lost: {lost}"
            assert "talker" in listed, f"round {round_} (seed {seed})"
        assert len(acknowledged) >= ROUNDS, f"enrolments happened between the kills (seed {seed}): {len(acknowledged)}"
        # The talker's sessions died with each lopowerd: it makes a new
        # handshake once its pings go unanswered.
        wait_until(lambda: talker.ping(LP4, count=1, wait=1), 60, "the device to reach lopower again")
    finally:
        traffic.terminate()
        traffic.wait(10)
    assert lp.stop() == 0


def test_a_full_disk_refuses_the_enrolment_and_keeps_what_was_there(topology):
    """The state directory on a small tmpfs, filled up: `device add` fails
    with the reason, lopowerd runs on, devices.json is the old one whole;
    with room again the same add works and survives a restart."""
    d1 = topology.host("d1")
    _, lp = start_gateway(topology, {d1: ["198.18.0.11/24"]})
    lp.stop()
    state = lp.dir / "state"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(state)], check=True)
    try:
        lp.start()
        assert lp.ctl("device", "add", "first", "--public-key", public_key(1)).returncode == 0
        before = (state / "devices.json").read_bytes()
        filler = state / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)  # until ENOSPC
        r = lp.ctl("device", "add", "second", "--public-key", public_key(2), check=False)
        assert r.returncode != 0 and "space" in (r.stdout + r.stderr).lower(), r
        assert lp.ctl("status", check=False).returncode == 0, "lopowerd runs on"
        assert (state / "devices.json").read_bytes() == before, "the old registry, whole"
        assert names(lp) == {"first"}
        assert not [p.name for p in state.iterdir() if p.name not in ("devices.json", "filler")], \
            "no half-written file left behind"
        filler.unlink()
        assert lp.ctl("device", "add", "second", "--public-key", public_key(2)).returncode == 0
        lp.stop()
        lp.start()
        assert names(lp) == {"first", "second"}
        assert lp.stop() == 0
    finally:
        if lp.proc and lp.proc.poll() is None:
            lp.stop()
        subprocess.run(["umount", str(state)], check=False)
