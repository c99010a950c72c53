"""lopower's own DERP map (``[derp] map_file``) pointing at standalone
``derper`` servers (tailscale.com/cmd/derper, pinned 1.98.10) in the ctl
namespace: one over plain HTTP, one over TLS with the self-signed
certificate derper makes for an IP host name, pinned in the map by its
SHA-256 (``CertName: "sha256-raw:<hex>"``) as derper itself advises. With
the right pin lopower connects; with a wrong one it refuses and says why.
"""

import hashlib
import json
import os
import ssl
import time

import pytest

from headscale import HEADSCALE
from lopower_net import Topology, wait_until
from tailnet_lab import CTL4, TailnetLab
from test_derp_client import DERPER
from test_tailnet_node import start_lopowerd_with, tailnet_status
from tailscaled import binaries_missing

MISSING = binaries_missing() + [str(p) for p in (HEADSCALE, DERPER) if not os.access(p, os.X_OK)]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"peer binaries missing (run tools/setup): {MISSING}"),
]

PLAIN_PORT, TLS_PORT = 3340, 8443
PLAIN_STUN, TLS_STUN = 3479, 3480


def derp_map(region, port, stun_port, **node):
    return {"Regions": {str(region): {
        "RegionID": region, "RegionCode": f"r{region}", "RegionName": f"derper {region}",
        "Nodes": [{"Name": f"{region}a", "RegionID": region, "HostName": CTL4, "IPv4": CTL4,
                   "STUNPort": stun_port, "DERPPort": port, **node}]}}}


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        lab = TailnetLab(topo, peers=[])
        try:
            key_file = topo.tmpdir / "authkey"
            key_file.write_text(lab.authkey(reusable=True) + "\n")
            key_file.chmod(0o600)
            lab.key_file = key_file
            d = topo.tmpdir / "derper"
            d.mkdir()
            lab.ctl.popen([str(DERPER), "-a", f"{CTL4}:{PLAIN_PORT}", "-c", str(d / "plain.json"), "-http-port", "-1",
                           "-stun-port", str(PLAIN_STUN)], log=str(d / "plain.log"))
            (d / "certs").mkdir()
            lab.ctl.popen([str(DERPER), "-a", f"{CTL4}:{TLS_PORT}", "-c", str(d / "tls.json"), "-http-port", "-1",
                           "-stun-port", str(TLS_STUN), "-certmode", "manual", "-certdir", str(d / "certs"),
                           "-hostname", CTL4], log=str(d / "tls.log"))
            cert = wait_until(lambda: next(iter((d / "certs").glob("*.crt")), None), 20, "derper's certificate")
            time.sleep(0.2)  # written, then read back: let it finish (the hash below reads it whole)
            der = ssl.PEM_cert_to_DER_cert(cert.read_text())
            lab.cert_sha256 = hashlib.sha256(der).hexdigest()
            lab.dir = d
            yield lab
        finally:
            lab.close()


def run_with_map(lab, name, dmap, plain_http):
    path = lab.dir / f"{name}.json"
    path.write_text(json.dumps(dmap))
    extra = f'[derp]\nmap_file = "{path}"\nplain_http = {"true" if plain_http else "false"}\n'
    return start_lopowerd_with(lab, lab.key_file, extra, name=name)


def derp_status(d):
    return tailnet_status(d).get("derp", {})


def test_plain_derper_from_a_map_file(lab):
    d = run_with_map(lab, "plain", derp_map(1000, PLAIN_PORT, PLAIN_STUN), plain_http=True)
    try:
        wait_until(lambda: derp_status(d).get("connections", {}).get("1000", {}).get("connected"), 40,
                   "lopower connected to the plain derper")
        nc = json.loads(d.ctl("netcheck", "--json").stdout)
        assert nc["home"] == 1000 and "1000-v4" in nc["latency_ms"], nc
        assert nc["regions"] == [{"id": 1000, "code": "r1000", "name": "derper 1000"}], nc
    finally:
        d.stop()


def test_two_stun_servers_tell_whether_the_mapping_varies(lab):
    # Region 1000 relays; region 1002 is a STUN-only node (the TLS derper's
    # STUN port): two answers per round, the same mapping (no NAT here).
    dmap = derp_map(1000, PLAIN_PORT, PLAIN_STUN)
    dmap["Regions"].update(derp_map(1002, 0, TLS_STUN, STUNOnly=True)["Regions"])
    d = run_with_map(lab, "twostun", dmap, plain_http=True)
    try:
        nc = wait_until(lambda: (lambda r: r if r.get("mapping_varies_by_dest") is not None else None)(
            json.loads(d.ctl("netcheck", "--json").stdout)), 40, "a round with two STUN answers")
        assert nc["mapping_varies_by_dest"] is False, nc
        assert {"1000-v4", "1002-v4"} <= set(nc["latency_ms"]), nc
        assert nc["home"] == 1000, "a STUN-only region is never home"
        assert "MappingVariesByDestIP: false" in d.ctl("netcheck").stdout
    finally:
        d.stop()


def test_tls_derper_pinned_by_its_certificate_hash(lab):
    d = run_with_map(lab, "tls", derp_map(1001, TLS_PORT, TLS_STUN, CertName=f"sha256-raw:{lab.cert_sha256}"),
                     plain_http=False)
    try:
        wait_until(lambda: derp_status(d).get("connections", {}).get("1001", {}).get("connected"), 40,
                   "lopower connected to the TLS derper")
    finally:
        d.stop()


def test_tls_derper_with_the_wrong_pin_is_refused_with_a_reason(lab):
    wrong = "00" * 32
    d = run_with_map(lab, "tlsbad", derp_map(1001, TLS_PORT, TLS_STUN, CertName=f"sha256-raw:{wrong}"),
                     plain_http=False)
    try:
        conn = wait_until(lambda: derp_status(d).get("connections", {}).get("1001", {}).get("error"), 40,
                          "the refusal in status")
        assert "certificate" in conn, conn
        assert not derp_status(d)["connections"]["1001"]["connected"]
        assert "certificate" in d.ctl("status").stdout
    finally:
        d.stop()
