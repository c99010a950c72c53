"""lopowerd on memif ports for the loadgen's bench scripts (bench/loadgen_tailnet.py,
bench/e2e_side_by_side.py): headscale on the namespace's loopback and lopowerd
(memif server ports) in one network namespace, where the loadgen runs beside
them as memif client (the memif sockets are abstract: one namespace).

One port (role both), or with ``two_ports`` a devices-role port and a
tailnet-role port, where the loadgen's own tailnet node sits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from headscale import Headscale
from lopower_net import Host, Topology, wait_until
from lopowerd import Lopowerd, port_toml


@dataclass
class MemifLab:
    gw: Host
    headscale: Headscale
    key_file: Path        # a reusable pre-auth key, for the loadgen's node
    sockets: list[Path]   # one per lopowerd port, in port order
    lopowerd: Lopowerd

    def client_vdevs(self) -> list[str]:
        """The loadgen's --vdev values, one per lopowerd port."""
        return [f"net_memif{i},role=client,socket={sock}" for i, sock in enumerate(self.sockets)]


@contextlib.contextmanager
def memif_lopowerd(topo: Topology, lopower_ip: str, tailnet_ip: Optional[str] = None) -> Iterator[MemifLab]:
    """lopowerd at ``lopower_ip``/24 on the devices' memif port; with
    ``tailnet_ip`` a second, tailnet-role, port there."""
    gw = topo.host("gw")
    hs = Headscale(host="127.0.0.1", netns_host=gw).start()
    try:
        key_file = topo.tmpdir / "authkey"
        key_file.write_text(hs.create_preauth_key(hs.create_user("lab"), reusable=True) + "\n")
        sockets = [topo.tmpdir / "memif.sock"] + ([topo.tmpdir / "tailnet.sock"] if tailnet_ip else [])
        if tailnet_ip:
            ports = (port_toml("dev", f"net_memif0,role=server,socket={sockets[0]}", [f"{lopower_ip}/24"],
                               role="devices") +
                     port_toml("tn", f"net_memif1,role=server,socket={sockets[1]}", [f"{tailnet_ip}/24"],
                               role="tailnet"))
        else:
            ports = port_toml("mem", f"net_memif0,role=server,socket={sockets[0]}", [f"{lopower_ip}/24"])
        toml = (f'[devices]\nendpoint = "{lopower_ip}:51820"\n[tailnet]\ncontrol_url = "{hs.url4}"\n'
                f'hostname = "lopower"\nauth_key_file = "{key_file}"\n')
        lp = Lopowerd(gw, ports, extra_toml=toml).start()
        try:
            wait_until(lambda: lp.status()["tailnet"]["backend_state"] == "Running", 60, "lopowerd on the tailnet")
            yield MemifLab(gw, hs, key_file, sockets, lp)
        finally:
            lp.stop()
    finally:
        hs.stop()
