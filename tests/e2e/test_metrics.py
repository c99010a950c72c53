"""The operator's counters from outside the control socket (issue 13): the
Prometheus endpoint ([metrics] listen), scraped and parsed with the
reference parser (prometheus_client), and the same counters as DPDK
telemetry commands on the EAL's telemetry socket.

    dev1 (wireguard-go) -- lopowerd (gw, [metrics] on 127.0.0.1:9586) -- ts1 (tailscaled)
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from splice_lab import SINK_PORT, Device, run_client, splice_lab
from tailscaled import binaries_missing

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # tools/setup installs python3-prometheus-client
    text_string_to_metric_families = None

MISSING = binaries_missing() + ([] if os.access(HEADSCALE, os.X_OK) else [str(HEADSCALE)])
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

ROOT = Path(os.environ.get("LOPOWER_SOURCE_DIR", Path(__file__).resolve().parents[2]))
PORT = 9586
PREFIX = f"lpmetrics{os.getpid()}"
TELEMETRY = Path("/var/run/dpdk") / PREFIX / "dpdk_telemetry.v2"


@pytest.fixture(scope="module")
def lab():
    assert text_string_to_metric_families, "python3-prometheus-client is missing (tools/setup installs it)"
    with Topology() as topo:
        with splice_lab(topo, ["ts1"], [Device("dev1")], extra_toml=f'[metrics]\nlisten = "127.0.0.1:{PORT}"\n',
                        dpdk_toml=f'file_prefix = "{PREFIX}"') as lab:
            yield lab


def http(lab, request: bytes) -> bytes:
    """One request to the endpoint from lopowerd's namespace; the whole reply."""
    code = ("import socket,sys\n"
            f"s=socket.create_connection(('127.0.0.1',{PORT}),timeout=10)\n"
            "s.sendall(sys.stdin.buffer.read())\nout=b''\n"
            "while True:\n  b=s.recv(65536)\n  if not b: break\n  out+=b\n"
            "sys.stdout.buffer.write(out)\n")
    r = subprocess.run(["ip", "netns", "exec", lab.gw.netns, sys.executable, "-c", code], input=request,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def scrape(lab) -> dict:
    """{(name, frozenset(labels)): value} from GET /metrics, parsed by prometheus_client."""
    reply = http(lab, b"GET /metrics HTTP/1.1\r\nHost: lopower\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert b"Content-Type: text/plain; version=0.0.4" in head, head
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    want = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    assert found, f"no sample {name}{labels}"
    return sum(found)


def names(samples: dict) -> set:
    return {n for n, _ in samples}


def test_device_bytes_rise_in_a_scrape(lab):
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    before = scrape(lab)
    rx0 = value(before, "wireguard_received_bytes_total", interface="devices", friendly_name="dev1")
    tx0 = value(before, "wireguard_sent_bytes_total", interface="devices", friendly_name="dev1")
    r = run_client(dev1, "upload", ts1.ip(4), SINK_PORT, 1_000_000, 2)
    assert r["answer"] == r["sent"], r
    after = scrape(lab)
    assert value(after, "wireguard_received_bytes_total", interface="devices", friendly_name="dev1") > rx0 + 1_000_000
    assert value(after, "wireguard_sent_bytes_total", interface="devices", friendly_name="dev1") > tx0
    assert value(after, "wireguard_latest_handshake_seconds", interface="devices", friendly_name="dev1") > 0
    assert value(after, "lopower_device_handshake_age_seconds", device="dev1") >= 0
    # The tailnet side of the same transfer.
    peer = next(p["name"] for p in lab.lopowerd.status()["tailnet"]["peers"] if p["name"].startswith("ts1."))
    assert value(after, "wireguard_sent_bytes_total", interface="tailnet", friendly_name=peer) > 1_000_000
    assert value(after, "lopower_tailnet_peer_path", peer=peer, path="direct") == 1
    assert value(after, "lopower_tailnet_backend_state", state="Running") == 1


def test_every_drop_reason_and_port_counter_is_there(lab):
    samples = scrape(lab)
    reasons = set(lab.lopowerd.status()["drop_reasons"])
    scraped = {dict(ls)["reason"] for (n, ls) in samples if n == "lopower_drops_total"}
    assert scraped == reasons
    assert value(samples, "lopower_port_rx_packets_total", port="lan") > 0
    assert value(samples, "lopower_port_link_up", port="lan") == 1
    assert value(samples, "lopower_devices") == 1
    assert value(samples, "lopower_build_info") == 1
    assert value(samples, "lopower_packet_pool_in_use") > 0


def test_the_dashboard_uses_only_metrics_lopower_serves(lab):
    r = subprocess.run([sys.executable, str(ROOT / "docs/grafana/metric_names.py")], capture_output=True, text=True,
                       check=True)
    used = set(r.stdout.split())
    assert used, "the dashboard queries no metric"
    assert used <= names(scrape(lab)), f"the dashboard queries metrics lopower does not serve: {used - names(scrape(lab))}"


def test_bad_requests_are_refused_and_the_endpoint_stays(lab):
    assert http(lab, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert http(lab, b"GET /secret HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert http(lab, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert http(lab, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    assert value(scrape(lab), "lopower_devices") == 1


def telemetry(command: str) -> dict:
    """One command on DPDK's telemetry socket (what dpdk-telemetry.py sends)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(10)
        s.connect(str(TELEMETRY))
        json.loads(s.recv(16384).decode())  # the greeting: version, pid, max_output_len
        s.send(command.encode())
        return json.loads(s.recv(1 << 20).decode())[command.split(",")[0]]


def test_the_same_counters_as_dpdk_telemetry(lab):
    assert TELEMETRY.exists(), f"no telemetry socket at {TELEMETRY}"
    commands = telemetry("/")
    assert {"/lopower/ports", "/lopower/drops", "/lopower/devices", "/lopower/tailnet", "/lopower/flows",
            "/lopower/dns"} <= set(commands), commands
    ts1, dev1 = lab.peers["ts1"], lab.devices["dev1"]
    assert dev1.ping(ts1.ip(4), count=2)
    device = telemetry("/lopower/devices")["dev1"]
    assert device["rx_bytes"] > 0 and device["latest_handshake"] > 0, device
    assert telemetry("/lopower/ports")["lan"]["rx_packets"] > 0
    assert set(telemetry("/lopower/drops")) == set(lab.lopowerd.status()["drop_reasons"])
    assert telemetry("/lopower/tailnet")["backend_state"] == "Running"
    # Beside DPDK's own: the port's ethdev stats on the same socket.
    assert telemetry("/ethdev/stats,0")["ipackets"] > 0
    # Fresh numbers on the next request: the counters move with traffic.
    rx = telemetry("/lopower/devices")["dev1"]["rx_bytes"]
    r = run_client(dev1, "upload", ts1.ip(4), SINK_PORT, 200_000, 2)
    assert r["answer"] == r["sent"], r
    wait_until(lambda: telemetry("/lopower/devices")["dev1"]["rx_bytes"] > rx + 200_000, 20, "telemetry to catch up")
