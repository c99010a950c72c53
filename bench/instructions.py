#!/usr/bin/env python3
"""Instructions per packet on the spliced path, counted by callgrind.

    tools/bench instructions [--filter REGEX] [--against OLD_SPLICE_BENCH]

Timed runs on a shared virtual machine move 10-25 % from one run to the
next; the instructions a packet costs do not move at all. This runs
splice_bench's cases under valgrind's callgrind, counting only in their
timed region (bench/worker_drive.h: not the flows opened before it, nor the
frames sealed afresh) and only inside the worker's poll pass
(worker::poll_once: receive, classify, decrypt, deliver, splice, encrypt,
transmit), and splits each packet's instructions in two:

- cipher: inside the crypto backend's burst calls (encrypt_burst and
  decrypt_burst, everything they call included): what the cipher bound
  measures;
- path: the rest of the poll pass, what lopower adds around the cipher.

Packets are those the worker moved in the timed regions (the benchmark
prints their number at exit when it runs under valgrind).
Instructions are not time (the cipher's are SIMD at a high rate, and a cache
miss costs no instruction), so this complements the timed benchmarks: it
shows exactly what a change removed or added, on any machine.

--against runs another build's splice_bench (from before a change) through
the same cases: both, and the ratio of their path instructions.

Use builds without debug information (build-rel): with it, callgrind_annotate
names a function once per source file its inlined code came from, and the
inclusive costs summed here count those parts twice (twice the path and the
cipher, the same ratios).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CASES = r"ipsec_mb/inner:(64|1280)/(flows|devices):(1|50000|1000)$"
CIPHER_CALL = re.compile(r"lopower::crypto::\w+::(en|de)crypt_burst\(")


def case_names(bench: Path, pattern: str) -> list[str]:
    out = subprocess.run([str(bench), f"--benchmark_filter={pattern}", "--benchmark_list_tests"],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("BM_")]


def callgrind(bench: Path, case: str, out: Path) -> int:
    """Runs `case` under callgrind into `out`; the packets its timed regions moved."""
    # bench/worker_drive.h turns counting on for the timed region only.
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no", str(bench),
           f"--benchmark_filter=^{re.escape(case)}$", "--benchmark_min_time=0.05"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"callgrind failed on {case}:\n{run.stderr[-2000:]}")
    m = re.search(r"instruction_count: (\d+) packets counted", run.stderr)
    if not m:
        sys.exit(f"{case}: the benchmark reported no packets (built without valgrind's headers?)")
    return int(m.group(1))


def inclusive_costs(out: Path) -> dict[str, int]:
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", "--threshold=100", str(out)],
                          check=True, capture_output=True, text=True).stdout
    costs: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(?:\S+?:)?(.*?)(?: \[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            costs[m.group(2)] = costs.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return costs


def measure(bench: Path, case: str, work: Path) -> tuple[int, float, float]:
    """(packets, cipher instructions per packet, path instructions per packet)"""
    out = work / "callgrind.out"
    packets = callgrind(bench, case, out)
    costs = inclusive_costs(out)
    total = sum(v for k, v in costs.items() if k.startswith("lopower::worker::poll_once("))
    cipher = sum(v for k, v in costs.items() if CIPHER_CALL.search(k))
    if packets == 0 or total == 0:
        sys.exit(f"{case}: no packets counted (does its timed loop call bench::instruction_count?)")
    return packets, cipher / packets, (total - cipher) / packets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True, help="splice_bench of this build")
    ap.add_argument("--against", type=Path, help="splice_bench of another build (before a change)")
    ap.add_argument("--filter", default=DEFAULT_CASES, help=f"splice_bench cases (default {DEFAULT_CASES})")
    args = ap.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("valgrind is not installed (tools/setup installs it: Debian's valgrind)")
    cases = case_names(args.bench, args.filter)
    if not cases:
        sys.exit(f"no splice_bench case matches {args.filter}")
    if args.against:
        print("| case | path instr/pkt before | after | after/before | cipher instr/pkt |")
        print("|---|---:|---:|---:|---:|")
    else:
        print("| case | packets | cipher instr/pkt | path instr/pkt | path/cipher |")
        print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            packets, cipher, path = measure(args.bench, case, Path(tmp))
            if args.against:
                _, _, before = measure(args.against, case, Path(tmp))
                print(f"| {case} | {before:.0f} | {path:.0f} | {path / before:.3f} | {cipher:.0f} |", flush=True)
            else:
                print(f"| {case} | {packets} | {cipher:.0f} | {path:.0f} | {path / cipher:.3f} |", flush=True)


if __name__ == "__main__":
    main()
