#!/usr/bin/env python3
"""lopowerd on a large tailnet: thousands of nodes registered in a real
headscale (the pinned 0.29.2), measured through the daemon.

    sudo tools/bench large-tailnet [--peers 2000] [--sizes 500,1000,2000] [--updates 3]

For each size N (ascending; nodes are registered once and kept, so each
size adds to the last): headscale is brought to N registered nodes, a fresh
lopowerd joins (new state dir, a real pre-auth key, so the time includes its
registration) and these are measured:

- **to netmap**: from starting lopowerd to its log saying "netmap with N
  peer(s)" (the log's own timestamp), and to `lopower-ctl status --json`
  listing N peers (polled every 0.25 s); in the JSON also to its log saying
  "registered" (what comes after is headscale's map, and lopower's share
  of it is the full map's CPU);
- **RSS**: VmRSS and VmHWM from /proc/PID/status once the netmap is in and
  things have settled (5 s); the same with no peers at all is the first row;
- **idle**: the control thread's CPU per second over 10 s with N peers and no
  traffic (its timers: disco, WireGuard and relay ticks walk the peers);
- **one update**: the control thread's CPU for what one change makes
  headscale send: a node comes online (a `tsp map -stream` for it: the
  commonest change in a real tailnet, with endpoints and keys), a node
  registered (a peer joins: headscale 0.29 sends the whole peer list), a
  node renamed (a peer changes its name). It is status' ``map_cpu_ms`` (the
  control thread's CPU on map responses: decoding, parsing, merging and
  every netmap handler, DNS names included) from just before the change
  until 2 s after lopowerd logged it; the median of ``--updates`` rounds.
  The thread's whole CPU over that window less its idle rate
  (/proc/PID/task/PID/schedstat) is in the JSON as ``window_ms``.

The control thread is lopowerd's main thread (the EAL main lcore runs the
event loop: docs/architecture.md, "Threads").

Registering thousands of nodes: no tailscaled per node. Each node is a JSON
file with fresh keys, registered by `tsp register` (tailscale's own protocol
tool, built by tools/setup from the pinned tailscale.com), run inside the
headscale namespace against http://127.0.0.1:8080, always with ``-s`` and
``--control-key`` (it would otherwise discover controlplane.tailscale.com).
Two things make that fast enough:

- headscale 0.29 keeps pre-auth keys as bcrypt hashes: ~70 ms of CPU per
  register. The bulk registrations use a legacy plaintext copy of a real
  key (its ``key`` column, the form headscale still reads from databases
  made before 0.28, written into sqlite); lopowerd's own key is a normal one.
- headscale batches its node-store writes (500 ms by default, two per
  register): during bulk registration ``tuning.node_store_batch_timeout``
  is 100 ms and 48 registrations run at once, so a batch takes many. Before
  lopowerd starts, headscale is restarted with its stock tuning (same
  database: the same nodes), which is what lopowerd is measured against.

headscale's own cost still grows with the tailnet (it recomputes peer maps
for every node it adds): registering 2000 nodes takes about a minute on a
2-core VM, 3000 about four, 4000 about ten.

Everything runs in namespaces of a lopower_net.Topology (tests/net/): the
tailnet lab's LAN, headscale in "ctl", lopowerd in "gw" on a net_af_packet
port. Nothing leaves the machine. Root is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

SOURCE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE / "tests" / "net"))

from headscale import CACHE, Headscale  # noqa: E402
from lopower_net import Host, Topology, wait_until  # noqa: E402
from lopowerd import Lopowerd, port_toml  # noqa: E402
from tailnet_lab import CTL4, GW_IF, TailnetLab  # noqa: E402

TSP = Path(os.environ.get("TSP", CACHE / "bin" / "tsp"))
BULK_TUNING = {"node_store_batch_timeout": "100ms"}
# lopowerd's log line for a netmap that changed peers (node.cc, on_netmap).
CHANGED = r"tailnet: peers \+0 -0 ~[1-9]"
JOINED = r"tailnet: peers \+1 -0 ~\d+"
AUTH_KEY_PREFIX = "hskey-auth-"


class NodeRegistrar:
    """Registers nodes with ``hs`` (running in a namespace) with `tsp`, no
    tailscaled: each node a JSON file with fresh keys (what `tsp new-node`
    writes), then `tsp register` with a reusable pre-auth key of ``user_id``.

    ``plaintext_key``: register with a legacy plaintext copy of the key
    (see the module docstring); otherwise with the bcrypt-checked key itself.
    """

    def __init__(self, hs: Headscale, user_id: int, workdir: Path, plaintext_key: bool = True,
                 parallel: int = 48) -> None:
        if not TSP.exists():
            raise FileNotFoundError(f"{TSP} is missing: run tools/setup")
        assert hs.netns_host is not None, "headscale must run in a namespace"
        self.hs = hs
        self.host: Host = hs.netns_host
        self.parallel = parallel
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{hs.port}"  # inside the headscale namespace
        key = hs.create_preauth_key(user_id, reusable=True, expiration="24h")
        if plaintext_key:
            key = self._plaintext_copy(key)
        self.key_file = self.dir / "authkey"
        self.key_file.write_text(key)
        self.key_file.chmod(0o600)
        self.server_key = self.dir / "server.key"
        self._tsp("discover-server-key", "-o", str(self.server_key))
        self.count = 0

    def _plaintext_copy(self, key: str) -> str:
        """A legacy (pre-0.28) plaintext key for the same database row as
        ``key``: headscale looks such keys up by their ``key`` column, without
        bcrypt."""
        if not key.startswith(AUTH_KEY_PREFIX):
            return key  # already one
        prefix = key[len(AUTH_KEY_PREFIX):][:12]
        plain = "benchplain" + secrets.token_hex(24)
        db = sqlite3.connect(self.hs.dir / "db.sqlite", timeout=30)
        try:
            cur = db.execute("UPDATE pre_auth_keys SET key = ? WHERE prefix = ?", (plain, prefix))
            db.commit()
            if cur.rowcount != 1:
                raise RuntimeError(f"no pre-auth key row with prefix {prefix!r}")
        finally:
            db.close()
        return plain

    def _tsp(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [str(TSP), "-s", self.url]
        if args[0] != "discover-server-key":
            argv += ["--control-key", str(self.server_key)]
        return self.host.run(argv + list(args), timeout=timeout)

    def register(self, hostname: str) -> None:
        node_file = self.dir / f"{hostname}.json"
        node_file.write_text(json.dumps({
            "node_key": "privkey:" + secrets.token_hex(32),
            "machine_key": "privkey:" + secrets.token_hex(32),
            "server_url": self.url,
            "server_key": self.server_key.read_text().strip(),
        }))
        node_file.chmod(0o600)
        self._tsp("register", "-n", str(node_file), "-auth-key", str(self.key_file), "-hostname", hostname,
                  "-o", "/dev/null")

    def stream(self, hostname: str):
        """A map stream for a registered node (`tsp map -stream`): headscale
        has it online until the process ends."""
        return self.host.popen([str(TSP), "-s", self.url, "--control-key", str(self.server_key), "map",
                                "-n", str(self.dir / f"{hostname}.json"), "-stream", "-peers=false",
                                "-o", "/dev/null"])

    def register_up_to(self, total: int, prefix: str = "n", progress: bool = True) -> float:
        """Registers nodes ``<prefix>00001``... until ``total`` were made by
        this registrar; the seconds it took."""
        t0 = time.monotonic()
        names = [f"{prefix}{i:05d}" for i in range(self.count + 1, total + 1)]
        with ThreadPoolExecutor(self.parallel) as pool:
            for start in range(0, len(names), 250):
                list(pool.map(self.register, names[start:start + 250]))
                self.count += len(names[start:start + 250])
                if progress:
                    print(f"  registered {self.count} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
        return time.monotonic() - t0


# --- lopowerd -------------------------------------------------------------------

LOG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z ")


def log_lines_with(text: str, needle: str) -> list[tuple[float, str]]:
    """(unix time, line) of the log lines ``needle`` (a regular expression) matches."""
    out = []
    pattern = re.compile(needle)
    for line in text.splitlines():
        if not pattern.search(line):
            continue
        m = LOG_STAMP.match(line)
        if m:
            stamp = m.group(1)
            fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in stamp else "%Y-%m-%dT%H:%M:%S"
            out.append((datetime.strptime(stamp, fmt).replace(tzinfo=timezone.utc).timestamp(), line))
    return out


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) of ``pid``."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def thread_cpu_ns(pid: int, tid: Optional[int] = None) -> int:
    """The CPU time thread ``tid`` (default: the main thread) has run, in ns."""
    return int(Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()[0])


class Daemon:
    """One lopowerd on the lab's LAN port, joined with a normal pre-auth key."""

    def __init__(self, lab: TailnetLab, name: str, key_file: Path) -> None:
        toml = (f'[tailnet]\ncontrol_url = "http://{CTL4}:8080"\nhostname = "{name}"\n'
                f'auth_key_file = "{key_file}"\n')
        ports = port_toml("lan", f"net_af_packet0,iface={GW_IF}", lab.addrs["gw"], role="both")
        self.name = name
        self.d = Lopowerd(lab.gw, ports, extra_toml=toml, name=name)

    def start(self) -> float:
        """Starts lopowerd; the unix time it was started at."""
        t0 = time.time()
        self.d.start(timeout=60)
        return t0

    @property
    def pid(self) -> int:
        assert self.d.proc is not None
        return self.d.proc.pid

    def log(self) -> str:
        return self.d.log_text()

    def wait_log(self, needle: str, after: int = 0, timeout: float = 300) -> float:
        """Waits for the (after+1)-th log line with ``needle``; its unix time."""
        def found():
            lines = log_lines_with(self.log(), needle)
            return lines[after][0] if len(lines) > after else None
        return wait_until(found, timeout, f"{self.name} to log {needle!r}", interval=0.05)

    def status_peers(self) -> int:
        return len(self.d.status()["tailnet"].get("peers", []))


def map_counters(d: Daemon) -> dict:
    t = d.d.status()["tailnet"]
    return {k: t.get(k, 0) for k in ("map_cpu_ms", "map_bytes", "map_responses")}


def measure_update(d: Daemon, change, needle: str, idle_ns_per_s: float, rounds: int) -> list[dict]:
    """For ``change()`` until 2 s after the (n+1)-th log line with
    ``needle``: the control thread's CPU on map responses (``map_cpu_ms``
    of status: decode, parse, merge, every netmap handler), the map bytes
    and responses that came, and the thread's whole CPU in that window less
    its idle rate (``window_ms``: noisier, it holds every timer too)."""
    out = []
    for _ in range(rounds):
        seen = len(log_lines_with(d.log(), needle))
        s0 = map_counters(d)
        t0, c0 = time.monotonic(), thread_cpu_ns(d.pid)
        change()
        d.wait_log(needle, after=seen, timeout=120)
        time.sleep(2.0)
        t1, c1 = time.monotonic(), thread_cpu_ns(d.pid)
        s1 = map_counters(d)
        out.append({"map_cpu_ms": round(s1["map_cpu_ms"] - s0["map_cpu_ms"], 3),
                    "map_bytes": s1["map_bytes"] - s0["map_bytes"],
                    "map_responses": s1["map_responses"] - s0["map_responses"],
                    "window_ms": round(((c1 - c0) - idle_ns_per_s * (t1 - t0)) / 1e6, 1)})
        time.sleep(1.0)
    return out


def median_of(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def measure(lab: TailnetLab, key_file: Path, peers: int, updates: int, registrar: NodeRegistrar,
            extra_names: list[str]) -> dict:
    name = f"lp{peers}"
    d = Daemon(lab, name, key_file)
    t_start = d.start()
    t_netmap = d.wait_log(re.escape(f"netmap with {peers} peer(s)"), timeout=600) - t_start
    t_registered = d.wait_log(re.escape("tailnet: registered"), timeout=10) - t_start
    wait_until(lambda: d.status_peers() == peers, 600, f"status to list {peers} peers", interval=0.25)
    t_status = time.time() - t_start
    first = map_counters(d)  # the full map (and whatever came with it)
    time.sleep(5)
    mem = proc_status(d.pid)
    c0, w0 = thread_cpu_ns(d.pid), time.monotonic()
    time.sleep(10)
    idle = (thread_cpu_ns(d.pid) - c0) / (time.monotonic() - w0)  # ns per s
    row = {"peers": peers, "to_registered_s": round(t_registered, 2), "to_netmap_s": round(t_netmap, 2),
           "to_status_s": round(t_status, 2),
           "full_map_cpu_ms": round(first["map_cpu_ms"], 1), "full_map_kib": round(first["map_bytes"] / 1024, 1),
           "rss_mib": round(mem["VmRSS"] / 1024, 1), "hwm_mib": round(mem["VmHWM"] / 1024, 1),
           "idle_ms_per_s": round(idle / 1e6, 2)}
    if updates and peers > 0:
        # `tsp map` sends its own Hostinfo (the machine's host name): a
        # node's first stream changes more than its online flag. Once
        # before, so that what is measured is a node coming back online.
        # headscale marks a node offline some seconds after its stream ends:
        # wait for lopower to see them all offline again each time.
        names = [f"n{i:05d}" for i in range(1, updates + 1)]
        ids = {int(n["id"]) for n in lab.headscale.nodes() if n.get("given_name") in names}

        def all_offline(online: bool = False):
            return all(p["online"] is online for p in d.d.status()["tailnet"]["peers"] if p["id"] in ids)

        def stop(procs):
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
            wait_until(all_offline, 120, "the streamed nodes offline again", interval=0.5)
            time.sleep(1)
        warm = [registrar.stream(name) for name in names]
        wait_until(lambda: all_offline(True), 120, "the streamed nodes online", interval=0.5)
        stop(warm)
        streams = []
        online_names = iter(f"n{i:05d}" for i in range(1, updates + 1))

        def online():
            streams.append(registrar.stream(next(online_names)))
        onlines = measure_update(d, online, CHANGED, idle, updates)
        stop(streams)  # offline again before the next measurement

        def join():
            extra_names.append(f"u{peers}-{len(extra_names)}")
            registrar.register(extra_names[-1])
        joins = measure_update(d, join, JOINED, idle, updates)
        # A rename: the peer changes (PeersChanged with the new name).
        node_ids = [n["id"] for n in lab.headscale.nodes() if n.get("name", "").startswith("n")]
        renamed = iter(node_ids[:updates])

        def rename():
            lab.headscale.cli("nodes", "rename", "--identifier", str(next(renamed)), f"r{secrets.token_hex(4)}")
        renames = measure_update(d, rename, CHANGED, idle, updates)
        row.update({"online_cpu_ms": median_of(onlines, "map_cpu_ms"),
                    "online_kib": round(median_of(onlines, "map_bytes") / 1024, 1),
                    "join_cpu_ms": median_of(joins, "map_cpu_ms"), "join_kib": round(median_of(joins, "map_bytes") / 1024, 1),
                    "rename_cpu_ms": median_of(renames, "map_cpu_ms"),
                    "rename_kib": round(median_of(renames, "map_bytes") / 1024, 1),
                    "onlines": onlines, "joins": joins, "renames": renames})
    st = d.d.status()["tailnet"]
    row["map_responses"] = st.get("map_responses")
    row["degraded"] = st.get("degraded")
    d.d.stop()
    # Its node leaves headscale, so the next size counts only the bulk nodes.
    for n in lab.headscale.nodes():
        if n.get("given_name") == name or n.get("name") == name:
            lab.headscale.delete_node(n["id"])
    return row


def restart_headscale(hs: Headscale, tuning: Optional[dict]) -> float:
    t0 = time.monotonic()
    hs.config.pop("tuning", None)
    if tuning:
        hs.config["tuning"] = dict(tuning)
    hs.restart(timeout=300)
    return time.monotonic() - t0


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    rev = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "none"
    dirty = subprocess.run(["git", "-C", str(SOURCE), "diff", "--quiet"]).returncode != 0
    return (f"machine: {model}, {os.cpu_count()} cores, kernel {os.uname().release}\n"
            f"commit:  {rev}{' + uncommitted' if dirty else ''}\n"
            f"date:    {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def table(rows: list[dict]) -> str:
    head = ("| peers | start → netmap (log) | → `status` lists them | full map: bytes, CPU | VmRSS | VmHWM "
            "| idle control CPU | a peer comes online | a peer joins | a peer renamed |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]

    def update(r, kind):
        return f"{r[kind + '_kib']} KiB, {r[kind + '_cpu_ms']} ms" if kind + "_cpu_ms" in r else "–"
    for r in rows:
        lines.append(f"| {r['peers']} | {r['to_netmap_s']} s | {r['to_status_s']} s | {r['full_map_kib']} KiB, "
                     f"{r['full_map_cpu_ms']} ms | {r['rss_mib']} MiB | {r['hwm_mib']} MiB | {r['idle_ms_per_s']} ms/s "
                     f"| {update(r, 'online')} | {update(r, 'join')} | {update(r, 'rename')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", type=int, default=2000, help="the largest tailnet (default 2000)")
    ap.add_argument("--sizes", default="", help="comma-separated sizes (default: 500,1000,2000 up to --peers)")
    ap.add_argument("--updates", type=int, default=3, help="rounds per update kind (median shown)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the row with no peers")
    ap.add_argument("--bcrypt-key", action="store_true", help="register with the normal (bcrypt) key: slow")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("large-tailnet needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = ([int(s) for s in args.sizes.split(",") if s] if args.sizes
             else [s for s in (500, 1000, 2000) if s < args.peers] + [args.peers])
    sizes = sorted(set(sizes))
    print(machine(), flush=True)
    rows = []
    with Topology() as topo:
        lab = TailnetLab(topo, peers=[], headscale_kw={"extra_config": {"tuning": dict(BULK_TUNING)}})
        key_file = topo.tmpdir / "lopower-authkey"
        key_file.write_text(lab.authkey(reusable=True, expiration="24h") + "\n")
        key_file.chmod(0o600)
        registrar = NodeRegistrar(lab.headscale, lab.user_id, topo.tmpdir / "nodes",
                                  plaintext_key=not args.bcrypt_key)
        extra: list[str] = []
        try:
            if not args.no_baseline:
                restart_headscale(lab.headscale, None)
                rows.append(measure(lab, key_file, 0, 0, registrar, extra))
                print(json.dumps(rows[-1]), flush=True)
            for n in sizes:
                bulk = n - len(extra)  # nodes added by earlier update rounds count too
                if bulk > registrar.count:
                    restart_headscale(lab.headscale, BULK_TUNING)
                    took = registrar.register_up_to(bulk)
                    print(f"  {registrar.count} nodes registered in {took:.0f} s", file=sys.stderr, flush=True)
                took = restart_headscale(lab.headscale, None)
                print(f"  headscale restarted with its stock tuning in {took:.1f} s", file=sys.stderr, flush=True)
                rows.append(measure(lab, key_file, registrar.count + len(extra), args.updates, registrar, extra))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            lab.close()
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
