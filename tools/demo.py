"""The whole mission on one machine (run by tools/demo, as root):

    [ctl]  headscale                 [ts1]  tailscaled peer serving a web page
       \\______________ test LAN 198.18.40.0/24 ______________/
                 |                                   |
    [gw]  lopowerd (configs/demo.toml)         [esp32] wireguard-go device,
          on the LAN through DPDK                      enrolled with lopower-ctl

The device fetches the peer's page through lopower: WireGuard to lopower,
spliced onto the tailnet, WireGuard with node keys to the peer, and back.
Everything is torn down on exit (Ctrl-C, or at once with --once).
"""

import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "net"))

from lopower_net import Topology, wait_until  # noqa: E402
from lopowerd import LOPOWER_CTL, LOPOWERD  # noqa: E402
from tailnet_lab import TailnetLab, attach_to_switch  # noqa: E402
from wg_device import WgDevice, config_from_add_output  # noqa: E402

RUN = Path("/run/lopower-demo")
CONFIG = ROOT / "configs" / "demo.toml"
SUFFIX = "tailnet.demo"  # headscale's MagicDNS base domain: names like ts1.tailnet.demo
PAGE = "<h1>Hello from ts1</h1><p>served on the tailnet, fetched by a WireGuard device through lopower</p>\n"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def ctl(*args: str, check: bool = True) -> str:
    import subprocess
    r = subprocess.run([str(LOPOWER_CTL), "--socket", str(RUN / "lopower.sock"), *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"lopower-ctl {' '.join(args)}: {r.stderr}")
    return r.stdout


def main() -> int:
    once = "--once" in sys.argv or not sys.stdin.isatty()
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    topo_cleanup = []
    try:
        return run_demo(once, topo_cleanup)
    finally:
        for fn in topo_cleanup:
            fn()


def run_demo(once: bool, topo_cleanup: list) -> int:
    with Topology(prefix="lpdemo") as topo:
        say("a tailnet: headscale in [ctl], a tailscaled peer in [ts1], on a test LAN")
        lab = TailnetLab(topo, peers=["ts1"],
                         headscale_kw={"extra_config": {"dns": {"magic_dns": True, "base_domain": SUFFIX}}})
        ts1 = lab.peers["ts1"]
        print(f"ts1 joined as {', '.join(ts1.ips())}")
        www = topo.tmpdir / "www"
        www.mkdir()
        (www / "index.html").write_text(PAGE)
        ts1.host.popen(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", str(www)])

        say(f"lopowerd --config {CONFIG.relative_to(ROOT)}  (in [gw], its port on the LAN through net_af_packet)")
        key = RUN / "authkey"
        key.write_text(lab.authkey() + "\n")
        key.chmod(0o600)
        proc = lab.gw.popen([str(LOPOWERD), "--config", str(CONFIG)], log=str(RUN / "lopowerd.log"))
        wait_until(lambda: ctl("status", check=False).find("tailnet: Running") >= 0 or proc.poll() is not None, 60,
                   "lopowerd to join the tailnet")
        if proc.poll() is not None:
            print((RUN / "lopowerd.log").read_text())
            return 1
        print(ctl("status").split("tailnet:")[1].split("neighbours:")[0])

        say("lopower-ctl device add esp32   (the config and its QR code, as an operator sees them)")
        printed = ctl("device", "add", "esp32")
        print(printed)
        say("the device comes up in [esp32] from exactly that text (wireguard-go, as wg-quick would)")
        esp = topo.host("esp32")
        attach_to_switch(topo, esp, ["198.18.40.50/24", "fd00:198:18:40::50/64"])
        config = config_from_add_output(printed)
        dev = WgDevice(esp, config).up()
        # Its resolver is what the config's DNS line says: lopower.
        # (`ip netns exec` mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf.)
        nameservers = re.search(r"^DNS = (.*)$", config, re.M).group(1).split(", ")
        resolv = Path("/etc/netns") / esp.netns
        resolv.mkdir(parents=True, exist_ok=True)
        (resolv / "resolv.conf").write_text("".join(f"nameserver {n}\n" for n in nameservers))
        topo_cleanup.append(lambda: shutil.rmtree(resolv, ignore_errors=True))
        print("device pings lopower:", "ok" if dev.ping("10.90.0.1") else "FAILED")

        url = f"http://ts1.{SUFFIX}:8000/"
        say(f"the device fetches {url} -- the name from lopower's DNS, the page through lopower")
        print(esp.run(["getent", "hosts", f"ts1.{SUFFIX}"], check=False).stdout.strip() or "(not resolved)")
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and PAGE.strip() not in page:
            r = esp.run(["curl", "-sS", "-m", "5", url], check=False)
            page = r.stdout
        print(page or "(no answer)")
        ok = PAGE.strip() in page

        say("lopower-ctl status")
        print(ctl("status"))
        say("lopower-ctl flows")
        print(ctl("flows"))
        if not ok:
            print("the page did not come through: see", RUN / "lopowerd.log")
            return 1
        if once:
            say("done (--once)")
        else:
            say(f"running: try   {LOPOWER_CTL} --socket {RUN}/lopower.sock status   (Ctrl-C ends the demo)")
            try:
                while proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        proc.terminate()
        proc.wait(20)
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("tools/demo makes network namespaces and runs DPDK: run it as root", file=sys.stderr)
        sys.exit(1)
    sys.exit(main())
