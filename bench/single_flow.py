#!/usr/bin/env python3
"""One TCP flow through lopower in the namespace lab: MB/s and CPU.

    sudo tools/bench single-flow [--idle adaptive,poll] [--mib 64] [--runs 3] [--lopowerd PATH]

The splice lab of the end-to-end tests (tests/net/splice_lab.py): a
wireguard-go device (dev1) -> lopowerd (net_af_packet on a veth) -> a
tailscaled peer (ts1, userspace networking, its services on 127.0.0.1).
For each idle policy, ``--runs`` times each way:

- **down**: dev1 fetches a ``--mib`` MiB file from ts1's HTTP server with
  curl (as tests/e2e/test_splice.py does);
- **up**: dev1 sends ``--mib`` MiB to ts1's sink (tests/e2e/apps/services.py),
  which answers its sha256 (checked).

Before the transfers, dev1 pings ts1's tailnet address (through lopower
both ways) at 1 ms and at 50 ms intervals: the round trip's min/avg/max.
Each transfer reports MB/s (10^6 bytes per second) and the CPU each process
on the path used over its wall time (utime + stime from /proc, in % of one
core): lopowerd (its worker lcore, its control thread and its af_packet
port), wireguard-go and tailscaled. When none is near 100 % the flow is
bound by latency, not by any one process's CPU.

``--lopowerd`` runs another build's lopowerd (e.g. one from before a
change) with this checkout's lab. Nothing leaves the machine; root is
needed (network namespaces).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE / "tests" / "net"))

import lopowerd  # noqa: E402
from lopower_net import Topology  # noqa: E402
from splice_lab import APPS, HTTP_PORT, SINK_PORT, SUFFIX, Device, splice_lab  # noqa: E402

MB = 1_000_000


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return f"machine: {model}, {os.cpu_count()} cores, kernel {os.uname().release}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class cpu_meter:
    """CPU % of one core each watched process used between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def __enter__(self) -> "cpu_meter":
        self.t0 = time.monotonic()
        self.c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self.t0
        self.percent = {name: round(100 * (cpu_seconds(pid) - self.c0[name]) / self.wall, 1)
                        for name, pid in self.pids.items()}


def download(lab, size: int) -> float:
    dev = lab.devices["dev1"]
    r = dev.host.run(["curl", "-sS", "-m", "300", "-o", "/dev/null", "-w", "%{size_download}",
                      f"http://ts1.{SUFFIX}:{HTTP_PORT}/big.bin"], timeout=320)
    if int(r.stdout.strip()) != size:
        raise RuntimeError(f"download got {r.stdout.strip()} bytes of {size}")
    return size


def upload(lab, size: int, want: str) -> float:
    dev = lab.devices["dev1"]
    r = dev.host.run(["python3", str(APPS / "clients.py"), "upload", lab.peers["ts1"].ip(4), SINK_PORT, size, 1],
                     timeout=320)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    if got["answer"].strip() != want:
        raise RuntimeError(f"the sink's sha256 {got['answer']!r} is not the data's")
    return size


PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def ping_rtt(lab, interval: float, count: int) -> dict:
    """Round trips dev1 -> lopower -> ts1 and back, in ms."""
    r = lab.devices["dev1"].host.run(["ping", "-n", "-q", "-c", str(count), "-i", f"{interval:g}",
                                      lab.peers["ts1"].ip(4)], timeout=count * (interval + 1) + 10)
    m = PING_RTT.search(r.stdout)
    if m is None:
        raise RuntimeError(f"ping printed no round trips:\n{r.stdout}")
    return {"way": f"ping every {interval * 1000:g} ms", "rtt_min_ms": float(m.group(1)),
            "rtt_avg_ms": float(m.group(2)), "rtt_max_ms": float(m.group(3))}


def measure(lab, pids: dict[str, int], way: str, size: int, want: str) -> dict:
    with cpu_meter(pids) as m:
        download(lab, size) if way == "down" else upload(lab, size, want)
    return {"way": way, "MB_s": round(size / MB / m.wall, 1), "seconds": round(m.wall, 2),
            **{f"cpu_{name}": pct for name, pct in m.percent.items()}}


def run_policy(idle: str, size: int, runs: int) -> list[dict]:
    # lopowerd.py writes idle = "adaptive" into [dataplane]; a second key would be a TOML error.
    original_init = lopowerd.Lopowerd.__init__

    def with_policy(self, *a, **kw):
        original_init(self, *a, **kw)
        self.config.write_text(self.config.read_text().replace('idle = "adaptive"', f'idle = "{idle}"'))

    lopowerd.Lopowerd.__init__ = with_policy
    rows = []
    try:
        with Topology() as topo, splice_lab(topo, peers=["ts1"], devices=[Device("dev1", ipv4_only=True)]) as lab:
            if f'idle = "{idle}"' not in lab.lopowerd.config.read_text():
                raise RuntimeError(f"lopowerd's config does not say idle = {idle!r}")
            (lab.www / "big.bin").write_bytes(os.urandom(size))
            want = hashlib.sha256(random.Random(1).randbytes(size)).hexdigest()  # clients.py upload's data, seed 1
            pids = {"lopowerd": lab.lopowerd.proc.pid, "wireguard_go": lab.devices["dev1"].proc.pid,
                    "tailscaled": lab.peers["ts1"].proc.pid}
            for interval, count in ((0.001, 500), (0.05, 60)):
                row = {"idle": idle, **ping_rtt(lab, interval, count)}
                print(json.dumps(row), flush=True)
                rows.append(row)
            for way in ("down", "up"):
                for _ in range(runs):
                    row = {"idle": idle, **measure(lab, pids, way, size, want)}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        lopowerd.Lopowerd.__init__ = original_init
    return rows


def table(rows: list[dict]) -> str:
    out = ["| idle | way | MB/s (runs) | median | lopowerd CPU % | wireguard-go CPU % | tailscaled CPU % |",
           "|---|---|---|---|---|---|---|"]
    for idle in dict.fromkeys(r["idle"] for r in rows):
        for way in ("down", "up"):
            rs = [r for r in rows if r["idle"] == idle and r["way"] == way]
            if not rs:
                continue
            med = statistics.median

            def cpu(key):
                return f"{med(r[key] for r in rs):.0f}"

            out.append(f"| {idle} | {way} | {', '.join(str(r['MB_s']) for r in rs)} | {med(r['MB_s'] for r in rs):.1f} "
                       f"| {cpu('cpu_lopowerd')} | {cpu('cpu_wireguard_go')} | {cpu('cpu_tailscaled')} |")
    out += ["", "| idle | ping | rtt min / avg / max ms |", "|---|---|---|"]
    out += [f"| {r['idle']} | {r['way']} | {r['rtt_min_ms']} / {r['rtt_avg_ms']} / {r['rtt_max_ms']} |"
            for r in rows if r["way"].startswith("ping")]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idle", default="adaptive,poll", help="idle policies to run, comma-separated")
    ap.add_argument("--mib", type=int, default=64, help="MiB per transfer (default 64)")
    ap.add_argument("--runs", type=int, default=3, help="transfers each way per policy (default 3)")
    ap.add_argument("--lopowerd", type=Path, help="this lopowerd binary instead of the build's")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("single-flow needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.lopowerd:
        lopowerd.LOPOWERD = args.lopowerd.resolve()
    print(machine(), flush=True)
    print(f"lopowerd: {lopowerd.LOPOWERD}", flush=True)
    rows = []
    for idle in args.idle.split(","):
        rows += run_policy(idle, args.mib << 20, args.runs)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
