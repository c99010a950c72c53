"""Restarts during a control-server outage: the netmap kept on disk.

lopowerd keeps the netmap it uses in ``<state_dir>/netmap.json`` (and its
disco key in ``tailnet.json``). Restarted while headscale is down -- killed
with SIGKILL in the middle of a device's traffic -- it applies that netmap
at start, so the device reaches its tailnet peer again before headscale
returns; when headscale does, the server's netmap replaces the cached one.
Killed while map updates flow (ts1 renamed over and over), every state file
it leaves parses and the next start takes the cache.

The lab (tests/net/splice_lab.py): headscale with MagicDNS, one tailscaled
peer ts1 serving HTTP, lopowerd in gw, one wireguard-go device dev1.
"""

import json
import os
import random
import signal
import threading

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import HTTP_PORT, SUFFIX, Device, diagnosis, splice_lab
from tailscaled import binaries_missing

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

PAGE = b"served by ts1 through lopower\n"
# A restarted lopowerd has no sessions: the device handshakes again once
# its packets go unanswered (15 s), lopower finds ts1 by disco and
# handshakes with it. Generous: the box is shared.
RECOVERY_TIMEOUT = 120
KILL_ROUNDS = 5


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], [Device("dev1")]) as lab:
            (lab.www / "page.txt").write_bytes(PAGE)
            yield lab


def tailnet(d):
    return d.status()["tailnet"]


def peer_names(d):
    return {p["name"] for p in tailnet(d)["peers"]}


def state_file(d, name):
    return d.dir / "state" / name


def kill9(d):
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(30)


def replies(log) -> int:
    return log.read_text(errors="replace").count("bytes from") if log.exists() else 0


def fetch_page(dev, timeout=30):
    """A new TCP connection to ts1 by its MagicDNS name, resolved by lopower."""
    r = dev.host.run(["curl", "-sS", "-m", str(timeout), f"http://ts1.{SUFFIX}:{HTTP_PORT}/page.txt"], check=False,
                     timeout=timeout + 10)
    return r.stdout == PAGE.decode()


def test_restart_during_an_outage_serves_the_cached_netmap(lab):
    d, ts1, dev = lab.lopowerd, lab.peers["ts1"], lab.devices["dev1"]
    wait_until(lambda: dev.ping(ts1.ip(4), count=1, wait=1), 30, "the first spliced ping")
    wait_until(lambda: tailnet(d)["netmap_source"] == "control" and tailnet(d)["netmap_cache"]["writes"] >= 1, 30,
               "lopowerd to keep its netmap on disk")
    kept = json.loads(state_file(d, "netmap.json").read_text())
    assert any(p.get("Hostinfo", {}).get("Hostname") == "ts1" for p in kept["Peers"]), kept
    assert state_file(d, "netmap.json").stat().st_mode & 0o777 == 0o600

    # A transfer running through everything that follows: pings from the
    # device to ts1, five a second.
    log = lab.topo.tmpdir / "dev1-ping.log"
    stream = dev.host.popen(["ping", "-i", "0.2", "-W", "1", ts1.ip(4)], log=str(log))
    try:
        wait_until(lambda: replies(log) >= 5, 30, "the ping stream answered")
        lab.headscale.proc.kill()  # the outage
        lab.headscale.proc.wait(10)
        wait_until(lambda: not tailnet(d)["connected"], 60, "lopowerd to notice headscale went away")
        kill9(d)
        d.start()
        t = tailnet(d)
        assert t["netmap_source"] == "cache", t
        assert t["netmap_cache"]["at_start"] == "loaded", t["netmap_cache"]
        assert "age_seconds" in t["netmap_cache"], t["netmap_cache"]
        assert t["backend_state"] == "Starting" and not t["connected"], t
        assert f"ts1.{SUFFIX}." in peer_names(d)
        assert "cached netmap" in d.ctl("status").stdout

        # The device reaches ts1 again, headscale still down.
        mark = replies(log)
        wait_until(lambda: replies(log) >= mark + 5, RECOVERY_TIMEOUT,
                   "the device's pings to reach ts1 through the restarted lopowerd")
        assert fetch_page(dev), "a new connection, by name" + diagnosis(d)
        assert not lab.headscale.running
        t = tailnet(d)
        assert t["netmap_source"] == "cache" and not t["connected"], t

        # headscale returns: lopower reconnects and takes the server's netmap.
        lab.headscale.start()
        wait_until(lambda: (t := tailnet(d))["connected"] and t["backend_state"] == "Running"
                   and t["netmap_source"] == "control", 90, "lopowerd to reconnect and take the server's netmap")
        mark = replies(log)
        wait_until(lambda: replies(log) >= mark + 5, 30, "the ping stream answered after headscale returned")
    finally:
        stream.terminate()
        stream.wait(10)
        if not lab.headscale.running:
            lab.headscale.start()
    assert fetch_page(dev)


def rename_until(lab, node_id, stop: threading.Event, errors: list) -> None:
    """ts1 renamed over and over: each a map update to lopower."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            lab.headscale.cli("nodes", "rename", "--identifier", str(node_id), f"ts1-churn{n % 7}")
        except Exception as e:  # noqa: BLE001 -- reported by the test
            errors.append(e)
            return
        stop.wait(0.1)


def check_state_files_parse(d, round_):
    ident = json.loads(state_file(d, "tailnet.json").read_text())
    assert ident["node_key"].startswith("privkey:") and ident["disco_key"].startswith("privkey:"), round_
    devices = json.loads(state_file(d, "devices.json").read_text())
    assert [x["name"] for x in devices["devices"]] == ["dev1"], round_
    kept = json.loads(state_file(d, "netmap.json").read_text())
    assert kept["Node"]["Key"].startswith("nodekey:") and len(kept["Peers"]) == 1, round_


def test_sigkill_during_map_updates_leaves_state_files_that_parse(lab):
    seed = int(os.environ.get("LOPOWER_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    d, dev, ts1 = lab.lopowerd, lab.devices["dev1"], lab.peers["ts1"]
    node_id = lab.node_ids()["ts1"]
    stop, errors = threading.Event(), []
    churn = threading.Thread(target=rename_until, args=(lab, node_id, stop, errors))
    churn.start()
    try:
        for round_ in range(KILL_ROUNDS):
            what = f"round {round_} (seed {seed})"
            wait_until(lambda: tailnet(d)["backend_state"] == "Running", 60, f"lopowerd on the tailnet, {what}")
            # Past the cache's 5 s pacing now and then, so writes happen
            # while renames arrive.
            stop.wait(rng.uniform(0.5, 8.0))
            assert not errors, errors
            kill9(d)
            check_state_files_parse(d, what)
            d.start()
            t = tailnet(d)
            assert t["netmap_cache"]["at_start"] == "loaded", f"{what}: {t['netmap_cache']}"
            assert t["netmap_source"] in ("cache", "control"), what
            assert [x["name"] for x in json.loads(d.ctl("device", "list", "--json").stdout)] == ["dev1"], what
    finally:
        stop.set()
        churn.join(60)
    assert not errors, errors
    # The renames stopped: lopower follows the last one, then the original.
    wait_until(lambda: tailnet(d)["backend_state"] == "Running", 60, "lopowerd on the tailnet")
    last = next(n for n in lab.headscale.nodes() if int(n["id"]) == node_id)
    wait_until(lambda: f"{last['given_name']}.{SUFFIX}." in peer_names(d), 30, "lopowerd to see the last rename")
    lab.headscale.cli("nodes", "rename", "--identifier", str(node_id), "ts1")
    wait_until(lambda: f"ts1.{SUFFIX}." in peer_names(d), 30, "lopowerd to see ts1 by its name again")
    wait_until(lambda: tailnet(d)["netmap_cache"]["writes"] >= 1, 30, "the netmap written again")
    wait_until(lambda: dev.ping(ts1.ip(4), count=1, wait=1), RECOVERY_TIMEOUT, "the device to reach ts1 again")
    assert fetch_page(dev)
    assert d.stop() == 0
    # A clean stop leaves the netmap as it was in force.
    kept = json.loads(state_file(d, "netmap.json").read_text())
    assert [p["Name"] for p in kept["Peers"]] == [f"ts1.{SUFFIX}."]
    d.start()
