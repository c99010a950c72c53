"""lopower's ts2021 transport (control/tailnet/controlbase) against a real
headscale (pinned v0.29.2) on loopback.

`ts2021_probe` (tests/unit/controlbase) does each step with the C++ code
under test and reports in JSON: GET /key, the upgrade to ts2021 with the
Noise initiation in its header, the Noise response, the early payload
(records with big-endian nonces), the server's HTTP/2 SETTINGS, and the
SETTINGS ACK that shows headscale opened the record we sent. With
``--register-authkey`` it goes on with the HTTP/2 client (h2_client) inside
the records and registers a node: POST /machine/register.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "net"))

from headscale import Headscale  # noqa: E402
from lopower_net import wait_until  # noqa: E402

SOURCE_DIR = Path(os.environ.get("LOPOWER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD_DIR = Path(os.environ.get("LOPOWER_BUILD_DIR", SOURCE_DIR / "build"))
PROBE = BUILD_DIR / "tests" / "unit" / "controlbase" / "ts2021_probe"
# lopower's capability version: headscale 0.29 accepts 113 and up.
CAPVER = 119


@pytest.fixture(scope="module")
def headscale():
    assert PROBE.exists(), f"{PROBE} is missing: build the tree first"
    with Headscale() as hs:
        yield hs


def probe(hs, *args):
    r = subprocess.run([str(PROBE), "127.0.0.1", str(hs.port), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 1), f"probe crashed ({r.returncode}): {r.stderr}"
    report = json.loads(r.stdout)
    assert (r.returncode == 0) == report["ok"]
    return report


def test_handshake_early_payload_and_http2(headscale):
    report = probe(headscale, "--capver", str(CAPVER))
    assert report["ok"], report
    # The key the probe read with our parser is the one headscale serves.
    status, body = headscale.get(f"/key?v={CAPVER}")
    assert status == 200
    assert report["server_key"] == json.loads(body)["publicKey"]
    assert report["legacy_key"] == "mkey:" + "0" * 64
    assert report["upgrade_status"] == 101
    assert report["handshake"] == "ok"
    # headscale always sends the early payload: a fresh node-key challenge.
    challenge = report["early_payload"]["node_key_challenge"]
    assert challenge.startswith("chalpub:") and len(challenge) == 8 + 64
    assert json.loads(report["early_payload"]["json"]) == {"nodeKeyChallenge": challenge}
    # Then HTTP/2: the server's SETTINGS first, and, once it had our
    # preface and SETTINGS in a record of ours, a SETTINGS ACK.
    assert report["http2_first_frame"]["type"] == 4 and report["http2_first_frame"]["flags"] == 0
    assert report["http2_settings_ack"] is True
    assert report["records_sent"] == 1


def test_each_connection_is_its_own_session(headscale):
    a, b = probe(headscale), probe(headscale)
    assert a["ok"] and b["ok"], (a, b)
    assert a["handshake_hash"] != b["handshake_hash"]
    assert a["early_payload"]["node_key_challenge"] != b["early_payload"]["node_key_challenge"]


def test_oldest_accepted_capability_version(headscale):
    report = probe(headscale, "--capver", "113")
    assert report["ok"], report


def test_capability_version_below_113_is_refused(headscale):
    # The handshake itself succeeds on the server, which then refuses the
    # version and closes before sending its reply.
    report = probe(headscale, "--capver", "112")
    assert not report["ok"]
    assert report["upgrade_status"] == 101
    assert report["stage"] == "handshake", report
    wait_until(lambda: "unsupported client version" in headscale.log_tail(200), timeout=5,
               what="headscale to log the refused version")


def test_wrong_server_key_is_refused(headscale):
    report = probe(headscale, "--server-key", "mkey:" + "42" * 32)
    assert not report["ok"]
    assert report["stage"] == "handshake", report
    assert "handshake" not in report
    wait_until(lambda: "decrypting machine key" in headscale.log_tail(200), timeout=5,
               what="headscale to log the failed handshake")


def test_headscale_helper_cli(headscale):
    uid = headscale.create_user("ts2021-probe")
    key = headscale.create_preauth_key(uid, reusable=True)
    assert key
    users = headscale.cli_json("users", "list")
    assert any(u.get("name") == "ts2021-probe" for u in users)


def test_register_with_preauth_key_over_http2(headscale):
    uid = headscale.create_user("h2-register")
    key = headscale.create_preauth_key(uid)
    report = probe(headscale, "--register-authkey", key)
    assert report["ok"], report
    reg = report["register"]
    assert reg["status"] == 200
    assert reg["headers"]["content-type"].startswith("application/json")
    assert reg["close_code"] == 0
    # tailcfg.RegisterResponse: authorized at once by the pre-auth key, and
    # the user it belongs to.
    resp = reg["response"]
    assert resp is not None, reg["body"]
    assert resp["MachineAuthorized"] is True, resp
    assert resp["NodeKeyExpired"] is False
    assert not resp.get("AuthURL")
    assert not resp.get("Error")
    # (tailcfg.User has no LoginName any more; tailcfg.Login does.)
    assert resp["User"]["DisplayName"] == "h2-register", resp
    assert resp["Login"]["LoginName"] == "h2-register", resp
    # HTTP/2 as headscale (Go's x/net/http2) speaks it: SETTINGS first (with
    # a 1 MiB stream window), then a WINDOW_UPDATE widening the connection's.
    frames = reg["server_frames"]
    assert frames[0]["type"] == 4 and frames[0]["flags"] == 0 and frames[0]["stream"] == 0
    assert frames[0]["settings"].get("4", 65535) >= 65535
    assert any(f["type"] == 1 and f["stream"] == 1 for f in frames)  # the response HEADERS
    # headscale now knows the node, under the machine and node keys we used.
    nodes = headscale.cli_json("nodes", "list")
    probe_nodes = [n for n in nodes if n.get("name") == "probe"]
    assert len(probe_nodes) == 1, nodes
    node = probe_nodes[0]
    assert node["machine_key"] == report["machine_key"]
    assert node["node_key"] == reg["node_key"]
    assert node["user"]["name"] == "h2-register"


def test_register_with_a_bad_key_is_refused_in_the_response(headscale):
    # headscale answers 200 with RegisterResponse.Error (noise.go turns its
    # HTTPError into the body), not an HTTP error status.
    before = len(headscale.cli_json("nodes", "list") or [])
    report = probe(headscale, "--register-authkey", "hskey-auth-" + "x" * 40)
    assert report["ok"], report
    resp = report["register"]["response"]
    assert report["register"]["status"] == 200
    assert resp["MachineAuthorized"] is False
    assert "auth-key" in resp["Error"] or "auth key" in resp["Error"], resp
    assert len(headscale.cli_json("nodes", "list") or []) == before
