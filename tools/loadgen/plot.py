#!/usr/bin/env python3
"""Draw a lopower-loadgen report (its --json FILE) over time: offered and
delivered packets/s above, latency percentiles below, to a PNG.

    tools/bench plot RESULT.json [-o OUT.png]   (default: RESULT.png)
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a lab box
import matplotlib.pyplot as plt  # noqa: E402


def plot(report: dict, out: Path) -> None:
    samples = report.get("samples", [])
    if not samples:
        raise SystemExit("the report has no per-second samples")
    t = [s["t"] for s in samples]
    fig, (rates, latency) = plt.subplots(2, 1, sharex=True, figsize=(10, 7))
    rates.plot(t, [s["offered_pps"] for s in samples], label="offered")
    rates.plot(t, [s["delivered_pps"] for s in samples], label="delivered")
    rates.set_ylabel("packets/s")
    peak = max(max(s["offered_pps"], s["delivered_pps"]) for s in samples)
    rates.set_ylim(0, peak * 1.1 or 1)  # a flat line at the top edge would hide in the frame
    rates.ticklabel_format(axis="y", useOffset=False, style="plain")
    rates.legend()
    rates.grid(True, alpha=0.3)
    for key in ("p50", "p99", "max"):
        latency.plot(t, [s["latency_ns"][key] / 1e3 for s in samples], label=key)
    latency.set_ylabel("latency (µs)")
    latency.set_ylim(bottom=0)
    latency.set_xlabel("seconds")
    latency.legend()
    latency.grid(True, alpha=0.3)
    setup = report.get("setup", {})
    fig.suptitle(f"lopower-loadgen: {setup.get('devices', '?')} devices, target {setup.get('target', '?')}, "
                 f"sizes {setup.get('sizes', '?')}, {setup.get('port_driver', '?')}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/bench plot", description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args(argv)
    out = args.output or args.report.with_suffix(".png")
    plot(json.loads(args.report.read_text()), out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
