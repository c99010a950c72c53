"""lopowerd and an https:// control URL: headscale (pinned v0.29.2) serving
TLS on 198.18.40.2:8080 with a certificate from a CA this test makes
(openssl CLI), lopowerd in namespace "gw" (tests/net/tailnet_lab.py, no
tailscaled peers).

- with ``tailnet.ca_file`` = that CA: lopowerd joins (GET /key verified,
  /ts2021 over TLS too), and dials headscale's embedded DERP relay over
  TLS on the same port, verified with the same CA (the region's host
  name is headscale's IPv4 address: the certificate's IP SAN);
- with another CA, or none (only the system roots): it does not join,
  ``lopower-ctl status`` says the certificate is why, and it retries with
  the backoff, not in a tight loop.

The tests share one lab and run one lopowerd at a time.
"""

import os
import subprocess
import time

import pytest

from headscale import HEADSCALE, TlsFiles
from lopower_net import Topology, wait_until
from lopowerd import Lopowerd, port_toml
from tailnet_lab import CTL4, CTL6, GW_IF, TailnetLab

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not os.access(HEADSCALE, os.X_OK), reason=f"{HEADSCALE} missing (run tools/setup)"),
]

CONTROL_URL = f"https://{CTL4}:8080"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(d, name):
    """A self-signed CA in ``d``: (cert, key)."""
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=lopower test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return cert, key


def make_pki(d):
    """The test CA, a certificate for headscale's addresses signed by it,
    and an unrelated CA: (TlsFiles, the other CA's file)."""
    d.mkdir()
    ca, ca_key = make_ca(d, "ca")
    other_ca, _ = make_ca(d, "other-ca")
    (d / "server.ext").write_text(
        f"subjectAltName=IP:{CTL4},IP:{CTL6},IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=headscale test", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=d)
    return TlsFiles(cert=d / "server.pem", key=d / "server.key", ca=ca), other_ca


@pytest.fixture(scope="module")
def lab():
    with Topology() as topo:
        tls, other_ca = make_pki(topo.tmpdir / "pki")
        lab = TailnetLab(topo, peers=[], derp="embedded", headscale_kw={"tls": tls})
        assert lab.headscale.url4 == CONTROL_URL
        key_file = topo.tmpdir / "authkey"
        key_file.write_text(lab.authkey(reusable=True) + "\n")
        key_file.chmod(0o600)
        lab.key_file, lab.ca_file, lab.other_ca = key_file, tls.ca, other_ca
        try:
            yield lab
        finally:
            lab.close()


def start_lopowerd(lab, hostname, ca_file):
    lines = ["[tailnet]", f'control_url = "{CONTROL_URL}"', f'hostname = "{hostname}"',
             f'auth_key_file = "{lab.key_file}"']
    if ca_file:
        lines.append(f'ca_file = "{ca_file}"')
    ports = port_toml("lan", f"net_af_packet0,iface={GW_IF}", lab.addrs["gw"], role="both")
    return Lopowerd(lab.gw, ports, extra_toml="\n".join(lines) + "\n", name=hostname).start()


def tailnet_status(d):
    return d.status()["tailnet"]


def wait_tailnet(d, pred, timeout, what):
    """Waits until ``pred(tailnet status)``; on a timeout the error shows the
    status and the log as they are then."""
    try:
        wait_until(lambda: pred(tailnet_status(d)), timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}\ntailnet status now: {tailnet_status(d)}\n"
                             f"lopowerd log:\n{d.log_text()[-3000:]}") from None


def node_names(lab):
    return {n.get("given_name") or n.get("name") for n in lab.headscale.nodes()}


def test_joins_with_the_ca_file(lab):
    d = start_lopowerd(lab, "lopower-tls", lab.ca_file)
    try:
        wait_tailnet(d, lambda st: st["backend_state"] == "Running", 30, "lopowerd to be Running over TLS")
        st = tailnet_status(d)
        assert st["control_url"] == CONTROL_URL
        node = lab.headscale.node("lopower-tls")
        assert node["node_key"] == st["node_key"]
        assert node["machine_key"] == st["machine_key"]
        text = d.ctl("status").stdout
        assert "tailnet: Running" in text, text
        assert "certificate verify failed" not in d.log_text()
        # The relay: TLS to the same server, checked against the same CA.
        wait_tailnet(d, lambda st: st.get("derp", {}).get("connections", {}).get("999", {}).get("connected"), 30,
                     "the embedded DERP relay connected over TLS")
        assert tailnet_status(d)["derp"]["home"] == 999
    finally:
        d.stop()


@pytest.mark.parametrize("trust", ["other-ca", "system-roots-only"])
def test_does_not_join_a_server_it_cannot_verify(lab, trust):
    hostname = f"lopower-{trust}"
    d = start_lopowerd(lab, hostname, lab.other_ca if trust == "other-ca" else None)
    try:
        why = "tls: certificate verify failed: unable to get local issuer certificate (198.18.40.2)"
        wait_tailnet(d, lambda st: why in st.get("last_error", ""), 20, "the certificate error in the status")
        text = d.ctl("status").stdout
        assert why in text, text
        assert f"GET /key: {why}; reconnecting in" in d.log_text()
        # Backoff, not a tight loop: 1 s, 2 s, 4 s... (+-25%) between tries.
        before = tailnet_status(d)["connects"]
        time.sleep(6)
        st = tailnet_status(d)
        assert st["connects"] - before <= 3, st
        assert st["backend_state"] != "Running"
        assert hostname not in node_names(lab)
    finally:
        d.stop()
