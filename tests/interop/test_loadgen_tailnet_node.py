"""lopower-loadgen's tailnet side (tools/loadgen/tailnet/tailnet_node.h)
against a real headscale and a real lopowerd in the namespace lab
(tests/net/tailnet_lab.py): tailnet_node_probe runs the node over a kernel
UDP socket in namespace "lg" on the lab's LAN, registers with headscale,
finds lopower in the netmap, does disco and the WireGuard handshake with
it, then proves the session's keys: an ICMP echo request sealed with them
to lopower's tailnet IPv4 address, and lopower's echo reply opened with
them.
"""

import json
import os

import pytest

from headscale import HEADSCALE
from lopowerd import BUILD_DIR
from lopower_net import Topology, wait_until
from tailnet_lab import TailnetLab, attach_to_switch, lan_addrs
from tailscaled import binaries_missing
from test_tailnet_node import CONTROL_URL, HOSTNAME, start_lopowerd, tailnet_status, wait_running

PROBE = BUILD_DIR / "tools" / "loadgen" / "tailnet" / "tailnet_node_probe"
MISSING = binaries_missing() + [str(p) for p in (HEADSCALE, PROBE) if not os.access(p, os.X_OK)]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"binaries missing (tools/setup, ninja): {MISSING}"),
]

PROBE_HOST = 60          # 198.18.40.60 on the lab's LAN
PROBE_PORT = 41642
PROBE_TIMEOUT_MS = 30000


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        lab = TailnetLab(topo, peers=[])
        key_file = topo.tmpdir / "authkey"
        key_file.write_text(lab.authkey(reusable=True) + "\n")
        key_file.chmod(0o600)
        lab.key_file = key_file
        lab.lopowerd = start_lopowerd(lab, key_file)
        lab.lg = topo.host("lg")
        attach_to_switch(topo, lab.lg, lan_addrs(PROBE_HOST))
        try:
            yield lab
        finally:
            lab.lopowerd.stop()
            lab.close()


def run_probe(lab, hostname, *extra):
    state = lab.topo.tmpdir / f"state-{hostname}"
    r = lab.lg.run([PROBE, "--control-url", CONTROL_URL, "--auth-key-file", lab.key_file,
                    "--hostname", hostname, "--lopower-hostname", HOSTNAME, "--state-dir", state,
                    "--local", f"198.18.40.{PROBE_HOST}:{PROBE_PORT}", "--timeout-ms", str(PROBE_TIMEOUT_MS), *extra],
                   check=False, timeout=PROBE_TIMEOUT_MS / 1000 + 30)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, f"probe printed no result (exit {r.returncode}): {r.stdout}\n{r.stderr}"
    print(f"probe {hostname}: exit {r.returncode} {lines[-1]}")
    return r.returncode, json.loads(lines[-1]), r.stderr


def test_handshake_and_echo_through_the_session(lab):
    d = lab.lopowerd
    wait_running(d)
    code, result, err = run_probe(lab, "loadgen")
    assert code == 0, (result, err)
    assert result["handshake"] is True, result
    assert result["echo_reply"] is True, result
    assert result["lopower"] in tailnet_status(d)["self"]["addresses"], result
    # Disco both ways: lopower answered our ping, and pinged the endpoint
    # the node advertised, which answered.
    assert result["disco_both_ways"] is True, result
    c = result["counters"]
    assert c["handshakes_completed"] >= 1 and c["disco_pongs_received"] >= 1 and c["disco_pongs_sent"] >= 1, c
    # lopower saw the node as a peer, with its endpoint, and handshook with it.
    peer = next(p for p in tailnet_status(d)["peers"] if p["hostname"] == "loadgen")
    assert f"198.18.40.{PROBE_HOST}:{PROBE_PORT}" in peer["endpoints"], peer
    assert peer.get("last_handshake_seconds") is not None and peer["rx_bytes"] > 0, peer
    assert tailnet_status(d)["disco"]["pongs_sent"] >= 1
    # and lopower took the node's pong (the only peer in this lab to send one).
    wait_until(lambda: tailnet_status(d)["disco"]["pongs_received"] >= 1, 10, "lopower to count the node's pong")


def test_echo_sealed_with_a_wrong_key_gets_no_reply(lab):
    """The probe's check can fail: the same run with the send key corrupted
    completes the handshake but lopower drops the echo."""
    wait_running(lab.lopowerd)
    code, result, _ = run_probe(lab, "loadgen-bad", "--corrupt-send-key", "--timeout-ms", "15000")
    assert code == 1, result
    assert result.get("handshake") is True, result
    assert result["echo_reply"] is False, result
