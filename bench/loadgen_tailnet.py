#!/usr/bin/env python3
"""lopower-loadgen playing both ends of the splice (issue 15): N devices and
the loadgen's own tailnet node against lopowerd over memif, echo mode, as
fast as lopower takes it, one run per size.

    sudo env LOPOWER_BUILD_DIR=$PWD/build python3 bench/loadgen_tailnet.py \
        [--sizes 64,576,1280,imix] [--devices 8] [--flows 4] [--duration 5] [--out DIR] [--two-ports]

headscale (on the namespace's loopback) and lopowerd (memif server, role
both, lcores 0-1) in one network namespace, the loadgen (-l 0) beside them
(the memif socket is abstract). Each packet: sealed by a device, opened and
resealed onto the tailnet by lopower, opened and resealed by the loadgen's
node, opened and resealed back to the device by lopower, opened by the
device. Prints one line per size: what lopower moved per second (both
directions) and its share of the cipher bound the loadgen measured in the
same run (bench/cipher_bound.h: one core opening and sealing these sizes).
The JSON reports go to --out. ``--two-ports``: lopowerd with a devices-role
and a tailnet-role memif port, the loadgen's node on the second
(--tailnet-port-id 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE / "tests" / "net"))

from lopower_net import Topology  # noqa: E402
from lopowerd import BUILD_DIR  # noqa: E402
from memif_lab import memif_lopowerd  # noqa: E402

LOADGEN = BUILD_DIR / "tools" / "loadgen" / "lopower-loadgen"
LOPOWER_IP, LOADGEN_IP = "10.77.0.1", "10.77.0.2"


def run_size(topo, lab, size, args, out_dir):
    report = out_dir / f"tailnet-{size}.json"
    eal = ["--no-huge", "--no-pci", "--no-shconf", "-l", "0", "-m", "256", "--file-prefix", f"{topo.prefix}-lg"]
    for vdev in lab.client_vdevs():
        eal += ["--vdev", vdev]
    node_port = ["--tailnet-port-id", "1", "--tailnet-ip", "10.78.0.2"] if len(lab.sockets) == 2 else []
    argv = [str(LOADGEN), *eal, "--", "--ctl-socket", str(lab.lopowerd.socket), "--local-ip", LOADGEN_IP,
            "--devices", str(args.devices), "--flows", str(args.flows), "--sizes", size,
            "--duration", str(args.duration), "--quiet", "--json", str(report), "--name-prefix", f"lg{size}",
            "--tailnet", lab.headscale.url4, "--auth-key-file", str(lab.key_file), "--tailnet-hostname", f"lg-{size}",
            "--target", "tailnet", "--tailnet-mode", "echo", "--handshake-timeout", "60", *node_port]
    r = lab.gw.run(argv, check=False, timeout=args.duration + 180)
    if r.returncode != 0:
        raise SystemExit(f"loadgen {size}: exit {r.returncode}\n{r.stderr[-3000:]}")
    return json.loads(report.read_text())


def summary(size, j):
    t = j["tailnet"]
    lat = j["latency_ns"]
    return (f"{size:>5}: devices->tailnet {t['device_to_tailnet']['delivered_pps'] / 1e3:8.1f} kpps, "
            f"back {t['tailnet_to_device']['delivered_pps'] / 1e3:8.1f} kpps, "
            f"lopower moved {t['lopower_moved_pps'] / 1e3:8.1f} kpps = "
            f"{100 * t.get('lopower_share_of_bound', 0):5.1f} % of bound {j['cipher_bound_pps'] / 1e3:.0f} kpps; "
            f"round trips {j['delivered']['pps'] / 1e3:.1f} kpps, lost {j['lost']} of {j['offered']['packets']}, "
            f"p50/p99 {lat['p50'] / 1e3:.0f}/{lat['p99'] / 1e3:.0f} us, keypairs {t['keypairs']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,576,1280,imix")
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/loadgen-tailnet"))
    ap.add_argument("--two-ports", action="store_true", help="the node on a port of its own (lopower's tailnet-role port)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with Topology() as topo, memif_lopowerd(topo, LOPOWER_IP, "10.78.0.1" if args.two_ports else None) as lab:
        for size in args.sizes.split(","):
            print(summary(size, run_size(topo, lab, size, args, args.out)), flush=True)


if __name__ == "__main__":
    main()
