#!/usr/bin/env python3
"""lopower side by side with the box a user would otherwise build (issue 15,
"Side by side, one command"): the same lopower-loadgen traffic through each
gateway, in one namespace lab, and lopower over memif.

    sudo tools/bench e2e [--devices 4] [--sizes 64,512,1280] [--duration 3] [--no-memif] [--no-af-xdp]

The af_packet lab is tests/net/splice_lab.py's, without tailscaled peers: a
bridge ("sw"), headscale in "ctl", lopowerd in "gw" on a net_af_packet port
(role both); for the af_xdp rows the same lopowerd (same state, so the same
tailnet node) restarted with that port on net_af_xdp (splice_lab.GW_DEVICES),
on the same veth. Added here:

- "gen": lopower-loadgen, lcore 0, two net_af_packet ports on two veths to
  the bridge: port 0 the devices (outer address 198.18.40.60), port 1 the
  loadgen's own tailnet node (tools/loadgen/tailnet/, 198.18.40.61:41641;
  the kernel side of that veth has 198.18.40.62 for the node's control
  client to reach headscale). The node registers (an ephemeral node per
  run), finds the gateway by its tailnet hostname (--lopower-hostname),
  talks disco and WireGuard with it like any tailscale peer and echoes the
  flows spliced onto it, at DPDK speed: device and tailnet traffic both
  cross the bridge to the gateway, as they would in the field. The
  namespace's kernel keeps off the frames for its packet sockets
  (keep_gen_stack_off), and the bridge passes frames without netfilter
  (lopowerd.switch_without_netfilter): a veth runs the receiver's stack in
  the sender's system call, so either would be on the gateway's bill;
- "box": the alternative, on the same bridge at 198.18.40.70: wireguard-go
  on a TUN (wg0, 10.91.0.1/24, one peer per device) and tailscaled in TUN
  mode (--tun=tailscale0, hostname "box") joined to the same tailnet, IPv4
  forwarding and masquerade from the devices' 10.91.0.0/24 out of tailscale0.

The memif lab (bench/loadgen_tailnet.py --two-ports): headscale on the
loopback of one namespace, lopowerd there with a devices-role and a
tailnet-role memif port, the loadgen beside it (memif client on both, the
node on the second).

Every row as fast as the gateway takes it (no --rate), each size in
--sizes for --duration seconds:

    lopower → tailnet            lopowerd, UDP to the loadgen's node (--target tailnet)
    lopower (own address)        lopowerd, ICMP echo to its device-side address
    lopower af_xdp → tailnet     as above, lopowerd's port on net_af_xdp
    lopower af_xdp (own address) as above, lopowerd's port on net_af_xdp
    wireguard-go hub             wireguard-go alone, ICMP echo to wg0's address
                                 (the box's kernel answers): a plain WireGuard hub
    wireguard-go+tailscaled      the box: UDP to the loadgen's node, forwarded and
                                 masqueraded from wg0 to tailscale0
    lopower memif → tailnet      as above, over memif
    lopower memif (own address)  as above, over memif

"delivered" is round trips: a tailnet row's round trip crosses the gateway
twice (device → tailnet and back), an own-address row's once (the gateway
answers). "of cipher bound" counts the packets the gateway moved (the
loadgen's tailnet.lopower_moved_pps in the tailnet rows: both directions;
the round trips in the others), each opened once and sealed once by it.

The loadgen drives lopowerd through its control socket and the box through
--peers-file (tools/loadgen/peers_file.h), with keys this script makes.

Gateway CPU, over the traffic only (from the loadgen's "devices have
sessions" line to its exit, which includes up to --drain): the gateway's
processes' utime+stime (/proc/PID/stat, the process and its children:
lopowerd; wireguard-go, plus tailscaled for the forwarding box), and
separately the softirq time of the whole machine (/proc/stat). Softirq is
where the kernel forwards, masquerades and runs the veths and the bridge; it
cannot be split by process, so it holds the loadgen's share too (the same
veths every gateway uses) — it is shown beside, not added. Over memif there
is no kernel in the path. CPU-s/GB = CPU seconds / delivered inner IP
gigabytes (10^9 B).

lopowerd polls (DPDK): its workers spin or nap whether or not packets
come, so its process CPU counts polling, not work. Its rows therefore also
count lopower's CPU by its work, over the same window:

- busy: the workers' busy cycles (lcore_stats::busy_cycles, read through
  the control socket before and after: the TSC cycles of poll passes that
  moved at least one packet, up to the flush that sent what they buffered,
  divided by the TSC rate `lopower-ctl status --json` gives). rdtsc counts
  wall time, so a worker preempted mid-pass on this shared machine counts
  the preemption as work: too much, never too little;
- plus the utime+stime of every lopowerd thread that is not a worker
  (/proc/PID/task/*/stat, all but EAL's worker lcore threads: the control
  thread — handshakes, the tailnet client, the control socket answering
  these reads — EAL's interrupt thread and the rest) and of its child
  processes, if any: nothing lopower does is left out.

The columns:

    gateway CPU-s            utime+stime of the gateway's processes over the window
                             (lopowerd's includes its polling)
    CPU-s/GB                 gateway CPU-s / delivered GB
    lopower busy CPU-s       lopower rows: busy (above) + non-worker threads' CPU
    CPU-s/GB (busy)          lopower busy CPU-s / delivered GB
    softirq-s/GB (machine)   the machine's softirq seconds / delivered GB (beside, not added)
    per core × the alternative (busy)
                             a lopower row: the CPU-s/GB of the alternative carrying
                             the same traffic (alternative(): the box for → tailnet, the
                             wireguard-go hub for own address), the same size, over
                             this row's CPU-s/GB (busy): how much more one core of
                             lopower carries
    × (process CPU)          the same with this row's process CPU-s/GB instead

Nothing leaves the machine: everything runs in lopower_net.Topology
namespaces. Root is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE / "tests" / "net"))

from lopower_net import Topology, wait_until  # noqa: E402
from lopowerd import BUILD_DIR  # noqa: E402
from memif_lab import memif_lopowerd  # noqa: E402
from splice_lab import splice_lab, start_gateway  # noqa: E402
from tailnet_lab import attach_to_switch  # noqa: E402
from tailscaled import Tailscaled  # noqa: E402
from wg_device import WgDevice  # noqa: E402

LOADGEN = BUILD_DIR / "tools" / "loadgen" / "lopower-loadgen"
GEN_IP = "198.18.40.60"            # the devices' outer address (the loadgen answers ARP for it)
NODE_IP = "198.18.40.61"           # the loadgen's tailnet node, on its second port (the loadgen answers ARP)
GEN_KERNEL = "198.18.40.62/24"     # the loadgen's kernel side of that veth: its control client reaches headscale
HEADSCALE_URL = "http://198.18.40.2:8080"
MEMIF_LOPOWER, MEMIF_GEN = "10.77.0.1", "10.77.0.2"    # the memif lab's devices link
MEMIF_TN_LOPOWER, MEMIF_NODE = "10.78.0.1", "10.78.0.2"  # its tailnet link
BOX_IP = "198.18.40.70"
BOX_LAN = [f"{BOX_IP}/24", "fd00:198:18:40::70/64"]  # headscale listens on the IPv6 address
BOX_WG_IP, BOX_WG_NET, BOX_WG_PORT = "10.91.0.1", "10.91.0.0/24", 51820
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# CPU accounting

def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces):
    fields 3.. of proc(5), so utime (14) is [11] and stime (15) is [12]."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def process_cpu_s(pids: list[int]) -> float:
    """utime+stime of ``pids`` and all their descendants, in seconds."""
    children, total, todo, seen = _children_of(), 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            f = _stat_fields(pid)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass  # gone meanwhile
        todo += children.get(pid, [])
    return total / CLK_TCK


# How EAL names its worker lcore threads: "rte-worker-N" (22.11.x as built
# here), "lcore-worker-N" (older 22.11), "dpdk-worker<N>" (23.11 on).
WORKER_THREAD_NAMES = ("rte-worker-", "lcore-worker-", "dpdk-worker")


def non_worker_threads_cpu_s(pid: int) -> float:
    """utime+stime of ``pid``'s threads but its DPDK worker lcores, plus
    its descendant processes, in seconds: lopowerd's CPU outside the busy
    cycles."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if text[text.index("(") + 1:text.rindex(")")].startswith(WORKER_THREAD_NAMES):
            continue
        f = text[text.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12])
    return total / CLK_TCK + process_cpu_s(_children_of().get(pid, []))


def workers_busy_s(lopowerd) -> float:
    """Seconds lopowerd's workers spent in passes that moved packets, from
    their busy cycles and the TSC rate (control socket, `status --json`)."""
    return sum(lc["busy_cycles"] / lc["tsc_hz"] for lc in lopowerd.status()["lcores"] if lc["role"] == "worker")


def lopower_busy_s(lopowerd) -> tuple[float, float]:
    """(workers' busy seconds, non-worker threads' CPU seconds) now."""
    return workers_busy_s(lopowerd), non_worker_threads_cpu_s(lopowerd.proc.pid)


def softirq_s() -> float:
    """The machine's softirq time (all CPUs), in seconds (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[7]) / CLK_TCK


# --------------------------------------------------------------------------
# the loadgen

def eal(topo, vdevs: list[str]) -> list[str]:
    """The loadgen's EAL: port 0 the devices', port 1 its tailnet node's."""
    return ["--no-huge", "--no-pci", "--no-shconf", "-l", "0", "-m", "256", "--file-prefix", f"{topo.prefix}-lg",
            *(a for v in vdevs for a in ("--vdev", v))]


AF_PACKET_PORTS = ["net_af_packet0,iface=eth0", "net_af_packet1,iface=eth1"]


def tailnet_node(control_url: str, key_file: Path, hostname: str, gateway_hostname: str, node_ip: str) -> list[str]:
    """The loadgen's own tailnet node on its second port, echoing what the
    gateway (by its tailnet hostname) sends it: the far end of the tailnet rows."""
    return ["--tailnet", control_url, "--auth-key-file", str(key_file), "--tailnet-hostname", hostname,
            "--lopower-hostname", gateway_hostname, "--tailnet-port-id", "1", "--tailnet-ip", node_ip,
            "--target", "tailnet", "--tailnet-mode", "echo", "--handshake-timeout", "60"]


def run_loadgen(gen, topo, label: str, size: int, gateway_pids: list[int], args: list[str], duration: float,
                local_ip: str = GEN_IP, vdevs: list[str] = AF_PACKET_PORTS, lopowerd=None) -> dict:
    """One loadgen run; its JSON report with the gateway's CPU added (and,
    with ``lopowerd``, its busy seconds and non-worker threads' CPU)."""
    report = topo.tmpdir / f"{label}-{size}.json"
    argv = [str(LOADGEN), *eal(topo, vdevs), "--", "--local-ip", local_ip, "--sizes", str(size),
            "--duration", str(duration), "--json", str(report),
            *args]  # not --quiet: its "have sessions" line starts the CPU window
    proc = gen.popen(argv)
    log = proc.log_path
    started = wait_until(lambda: "have sessions" in log.read_text() or proc.poll() is not None, 90,
                         f"{label}: the loadgen's sessions")
    assert started and proc.poll() is None, f"{label}: the loadgen exited:\n{log.read_text()[-3000:]}"
    busy0 = lopower_busy_s(lopowerd) if lopowerd else None
    cpu0, soft0, t0 = process_cpu_s(gateway_pids), softirq_s(), time.monotonic()
    rc = proc.wait(duration + 60)
    cpu1, soft1, t1 = process_cpu_s(gateway_pids), softirq_s(), time.monotonic()
    busy1 = lopower_busy_s(lopowerd) if lopowerd else None
    assert rc == 0, f"{label}: the loadgen exited {rc}:\n{log.read_text()[-3000:]}"
    result = json.loads(report.read_text())
    result["gateway_cpu_s"], result["softirq_s"], result["window_s"] = cpu1 - cpu0, soft1 - soft0, t1 - t0
    if busy0 and busy1:
        result["lopower_workers_busy_s"] = busy1[0] - busy0[0]
        result["lopower_other_threads_cpu_s"] = busy1[1] - busy0[1]
    return result


# --------------------------------------------------------------------------
# the box: wireguard-go + tailscaled in TUN mode

def keep_gen_stack_off(gen) -> None:
    """The loadgen's frames reach its packet sockets and nothing else: an
    nftables ingress hook (it runs after the packet taps, as lopowerd's own
    on its port) drops every frame on eth0 (the devices' port: no kernel
    address) and, on eth1, those for the node's address (the kernel keeps
    198.18.40.62 there for the control client). Without it the generator's
    kernel took each frame up to its IP layer to drop it there, and a veth
    runs the receiver's stack in the sender's system call: 8 % of lopowerd's
    worker at 1280 B (ip_rcv and its route lookup, profiled), on the
    gateway's bill (every gateway's sends go the same way) for work that in
    the field another machine does."""
    gen.run(["nft", "-f", "-"], input=(
        "table netdev loadgen {\n"
        "  chain port0 { type filter hook ingress device \"eth0\" priority 0; policy drop; }\n"
        f"  chain port1 {{ type filter hook ingress device \"eth1\" priority 0; ip daddr {NODE_IP} drop; }}\n"
        "}\n"))


def wg_keypair(host) -> tuple[str, str]:
    private = host.run(["wg", "genkey"]).stdout.strip()
    public = host.run(["wg", "pubkey"], input=private + "\n").stdout.strip()
    return private, public


def device_address(i: int) -> str:
    return f"10.91.0.{i + 2}"


def start_box(lab, topo, devices: int):
    """The box's wireguard-go, its tailscaled (TUN mode, joined), forwarding
    and masquerade; (wg, tailscaled, peers file for the loadgen)."""
    box = topo.host("box")
    attach_to_switch(topo, box, BOX_LAN)
    server_private, server_public = wg_keypair(box)
    keys = [wg_keypair(box) for _ in range(devices)]
    config = [f"[Interface]\nPrivateKey = {server_private}\nListenPort = {BOX_WG_PORT}\nAddress = {BOX_WG_IP}/24\n"]
    config += [f"[Peer]\nPublicKey = {public}\nAllowedIPs = {device_address(i)}/32\n"
               for i, (_, public) in enumerate(keys)]
    wg = WgDevice(box, "\n".join(config)).up()
    peers = topo.tmpdir / "box-peers.toml"
    peers.write_text(f'[gateway]\npublic_key = "{server_public}"\nendpoint = "{BOX_IP}:{BOX_WG_PORT}"\n'
                     f'inner_ip = "{BOX_WG_IP}"\n' +
                     "".join(f'\n[[device]]\nprivate_key = "{private}"\naddress = "{device_address(i)}"\n'
                             for i, (private, _) in enumerate(keys)))
    ts = Tailscaled(box, "box", extra_args=["--tun=tailscale0"]).start()
    lab.join([ts])
    box.sysctl("net.ipv4.ip_forward", "1")
    box.run(["nft", "-f", "-"], input=(
        "table ip sbs_nat {\n  chain post { type nat hook postrouting priority 100;\n"
        f"    oifname \"tailscale0\" ip saddr {BOX_WG_NET} masquerade\n  }}\n}}\n"))
    return wg, ts, peers


# --------------------------------------------------------------------------
# the table

def row(gateway: str, size: int, r: dict) -> dict:
    delivered = r["delivered"]
    gb = delivered["bytes"] / 1e9
    lat = r["latency_ns"]
    # A tailnet round trip crosses the gateway twice; an ICMP echo to it, once.
    moved = r["tailnet"]["lopower_moved_pps"] if "tailnet" in r else delivered["pps"]
    workers_busy, other_threads = r.get("lopower_workers_busy_s"), r.get("lopower_other_threads_cpu_s")
    busy = None if workers_busy is None else workers_busy + other_threads
    return {"busy_s": busy, "workers_busy_s": workers_busy, "other_threads_cpu_s": other_threads,
            "busy_s_per_gb": busy / gb if busy is not None and gb else None,
            "gateway": gateway, "size": size, "pps": delivered["pps"], "moved_pps": moved,
            "mbps": delivered["bps"] / 1e6,
            "offered_pps": r["offered"]["pps"], "loss": r["loss_ratio"], "p50_us": lat["p50"] / 1e3,
            "p99_us": lat["p99"] / 1e3, "cpu_s": r["gateway_cpu_s"], "softirq_s": r["softirq_s"],
            "window_s": r["window_s"], "cpu_s_per_gb": r["gateway_cpu_s"] / gb if gb else None,
            "softirq_s_per_gb": r["softirq_s"] / gb if gb else None, "cipher_bound_pps": r.get("cipher_bound_pps"),
            "handshakes_ok": all(d["established"] for d in r["devices"])}


def fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def alternative(gateway: str) -> str | None:
    """The alternative carrying the same traffic as a lopower row (any of
    its links): the box for tailnet rows, the plain hub for own-address rows."""
    if not gateway.startswith("lopower"):
        return None
    return "wireguard-go+tailscaled" if gateway.endswith("→ tailnet") else "wireguard-go hub"


def ratio(rows: list[dict], r: dict, lopower_key: str) -> str:
    """On a lopower row: the alternative's CPU-s/GB over this row's
    ``lopower_key`` ("busy_s_per_gb" or "cpu_s_per_gb"), the same size: how
    much more one core of lopower carries."""
    alt = next((x for x in rows if x["gateway"] == alternative(r["gateway"]) and x["size"] == r["size"]), None)
    if alt is None or not alt["cpu_s_per_gb"] or not r[lopower_key]:
        return ""
    return f"{alt['cpu_s_per_gb'] / r[lopower_key]:.2f}x"


def share(r: dict) -> str:
    """The packets the gateway moved per second as a share of the cipher
    bound (bench/cipher_bound.h: one core opening and sealing these sizes),
    measured by the loadgen in the same run."""
    return f"{r['moved_pps'] / r['cipher_bound_pps']:.1%}" if r["cipher_bound_pps"] else "—"


def table(rows: list[dict]) -> str:
    out = ["| gateway | size B | offered pps | delivered pps | delivered Mbit/s | loss | p50 µs | p99 µs | "
           "moved pps | of cipher bound | gateway CPU-s | CPU-s/GB | lopower busy CPU-s | CPU-s/GB (busy) | "
           "softirq-s/GB (machine) | per core × the alternative (busy) | × (process CPU) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['gateway']} | {r['size']} | {r['offered_pps']:.0f} | {r['pps']:.0f} | {r['mbps']:.1f} | "
                   f"{r['loss']:.1%} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['moved_pps']:.0f} | {share(r)} | "
                   f"{r['cpu_s']:.2f} | {fmt(r['cpu_s_per_gb'], '.1f')} | {fmt(r['busy_s'], '.2f')} | "
                   f"{fmt(r['busy_s_per_gb'], '.1f')} | {fmt(r['softirq_s_per_gb'], '.1f')} | "
                   f"{ratio(rows, r, 'busy_s_per_gb')} | {ratio(rows, r, 'cpu_s_per_gb')} |")
    return "\n".join(out)


# --------------------------------------------------------------------------

def busy_note(r: dict) -> str:
    if r["busy_s"] is None:
        return ""
    return f" (busy {r['workers_busy_s']:.2f} s + other threads {r['other_threads_cpu_s']:.2f} s)"


def run_sizes(rows: list[dict], reports: dict, gateway: str, sizes: list[int], run) -> None:
    """``run(label, size)`` for each size: one row each."""
    for size in sizes:
        label = gateway.split()[0].replace("+", "-") + f"-{len(reports)}"
        r = run(label, size)
        reports[f"{gateway} {size}"] = r
        rows.append(row(gateway, size, r))
        print(f"{gateway:34} {size:5} B: delivered {rows[-1]['pps']:9.0f} pps, loss {rows[-1]['loss']:.1%}, "
              f"gateway CPU {rows[-1]['cpu_s']:.2f} s" + busy_note(rows[-1]), file=sys.stderr, flush=True)


def lopower_runs(lab, ctl: list[str], node, link: str = "") -> list:
    """lopowerd's two rows (run_sizes' arguments) as it runs now: to the
    loadgen's tailnet node, and to its own address. ``link``: the name's
    word for the port's driver ("" for net_af_packet)."""
    lp, name = lab.lopowerd, "lopower" + (f" {link}" if link else "")
    return [(f"{name} → tailnet", [lp.proc.pid], lp, lambda label: ctl + node(label, "lopower")),
            (f"{name} (own address)", [lp.proc.pid], lp, lambda label: ctl + ["--target", "lopower"])]


def restart_on_af_xdp(lab) -> bool:
    """lopowerd again, its port on net_af_xdp (the same veth and state);
    False, said on stderr, when it cannot start there."""
    lab.lopowerd.stop()
    try:
        start_gateway(lab, "net_af_xdp")
    except AssertionError as e:
        print(f"no af_xdp rows: lopowerd did not start on net_af_xdp:\n{str(e)[-1500:]}", file=sys.stderr)
        return False
    return True


def veth_rows(args, sizes: list[int], rows: list[dict], reports: dict) -> None:
    """lopowerd (net_af_packet, then net_af_xdp unless --no-af-xdp), the
    wireguard-go hub and the box, on the bridge."""
    with Topology() as topo, splice_lab(topo, [], devices=()) as lab:
        gen = topo.host("gen")
        attach_to_switch(topo, gen, [])
        attach_to_switch(topo, gen, [GEN_KERNEL], ifname="eth1")
        keep_gen_stack_off(gen)
        key_file = topo.tmpdir / "loadgen-authkey"
        key_file.write_text(lab.authkey(reusable=True, ephemeral=True) + "\n")
        ctl = ["--ctl-socket", str(lab.lopowerd.socket), "--devices", str(args.devices)]
        wg, ts, peers = start_box(lab, topo, args.devices)
        box = ["--peers-file", str(peers), "--devices", str(args.devices)]

        def node(label: str, gateway_hostname: str) -> list[str]:
            return tailnet_node(HEADSCALE_URL, key_file, f"lg-{label}", gateway_hostname, NODE_IP)

        def run_all(runs) -> None:
            for gateway, pids, busy_of, extra in runs:
                run_sizes(rows, reports, gateway, sizes, lambda label, size: run_loadgen(
                    gen, topo, label, size, pids, extra(label), args.duration, lopowerd=busy_of))

        run_all(lopower_runs(lab, ctl, node))
        if not args.no_af_xdp and restart_on_af_xdp(lab):
            run_all(lopower_runs(lab, ctl, node, "af_xdp"))
        run_all([("wireguard-go hub", [wg.proc.pid], None, lambda label: box + ["--target", "lopower"]),
                 ("wireguard-go+tailscaled", [wg.proc.pid, ts.proc.pid], None,
                  lambda label: box + node(label, "box"))])


def memif_rows(args, sizes: list[int], rows: list[dict], reports: dict) -> None:
    """lopowerd and the loadgen in one namespace over memif (bench/loadgen_tailnet.py's
    --two-ports lab): a devices-role port and a tailnet-role port, the loadgen's node on the
    second; headscale on that namespace's loopback."""
    with Topology() as topo, memif_lopowerd(topo, MEMIF_LOPOWER, MEMIF_TN_LOPOWER) as lab:
        ctl = ["--ctl-socket", str(lab.lopowerd.socket), "--devices", str(args.devices)]
        runs = [("lopower memif → tailnet", lambda label: ctl + tailnet_node(
                    lab.headscale.url4, lab.key_file, f"lg-{label}", "lopower", MEMIF_NODE)),
                ("lopower memif (own address)", lambda label: ctl + ["--target", "lopower"])]
        for gateway, extra in runs:
            run_sizes(rows, reports, gateway, sizes, lambda label, size: run_loadgen(
                lab.gw, topo, label, size, [lab.lopowerd.proc.pid], extra(label), args.duration,
                local_ip=MEMIF_GEN, vdevs=lab.client_vdevs(), lopowerd=lab.lopowerd))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--sizes", default="64,512,1280")
    ap.add_argument("--duration", type=float, default=3)
    ap.add_argument("--no-memif", action="store_true", help="only the veth lab (af_packet and af_xdp rows)")
    ap.add_argument("--no-af-xdp", action="store_true", help="no rows with lopowerd's port on net_af_xdp")
    ap.add_argument("--json", type=Path, help="also write the rows and the reports here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tools/bench e2e needs root (network namespaces)")
    if not os.access(LOADGEN, os.X_OK):
        sys.exit(f"{LOADGEN} is not built")
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, reports = [], {}
    veth_rows(args, sizes, rows, reports)
    if not args.no_memif:
        memif_rows(args, sizes, rows, reports)
    print(table(rows))
    bounds = sorted({(r["size"], r["cipher_bound_pps"]) for r in rows if r["cipher_bound_pps"]})
    if bounds:
        print("\ncipher bound (one core opening and sealing, the loadgen's backend, measured before each run; the "
              "last per size): " + ", ".join(f"{s} B {b:.0f} pps" for s, b in dict(bounds).items()))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "reports": reports}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
