"""One test LAN with a real tailnet on it: headscale and tailscaled peers in
namespaces, and a place for lopowerd.

    lab = TailnetLab(topology, peers=["ts1", "ts2"])   # built, joined
    lab.headscale.nodes()
    lab.wait_direct("ts1", "ts2")                      # disco pong, direct
    ok, out = lab.peers["ts1"].ping(lab.peers["ts2"].ip(4), mode="icmp")
    ts3 = lab.add_peer("ts3")                          # joins later
    lab.remove_peer("ts3", unplug=True)                # and leaves

The LAN (``lan_switch`` from lopowerd.py: a bridge br0 in namespace "sw"):

=========  ======================================  ==========================
namespace  addresses                               what runs there
=========  ======================================  ==========================
gw         198.18.40.1, fd00:198:18:40::1          lopowerd, later: its port
                                                   ``port0`` (read with
                                                   net_af_packet, kernel kept
                                                   off it) has no addresses
ctl        198.18.40.2, fd00:198:18:40::2          headscale, :8080 on both;
                                                   STUN on UDP 3478
ts<N>      198.18.40.<10+N>, fd00:198:18:40::<10+N>  tailscaled, UDP 41641
=========  ======================================  ==========================

(IPv6 addresses repeat the IPv4 host number's digits: .11 is ::11.)

Peers log in at ``lab.login_server`` = ``http://[fd00:198:18:40::2]:8080``
(why IPv6: see headscale.Headscale); ``lab.headscale.url4`` is the IPv4 URL
(same server) for clients without that problem.

``derp``: "none" (default) -- the DERP map has one region whose only working
part is STUN (headscale's, on ctl; tailscaled needs it to trust UDP), its
DERP port is closed: peers talk directly on the LAN or not at all.
"embedded" -- headscale's embedded DERP (over plain HTTP, which tailscaled
takes with TS_DEBUG_USE_DERP_HTTP=1) is the only region and relays.

No namespace has a default route: nothing but this LAN (and each
namespace's loopback) is reachable.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Optional

from headscale import Headscale
from lopower_net import Host, Topology, list_links
from lopowerd import lan_switch
from tailscaled import Tailscaled

LAN4, LAN6 = "198.18.40.0/24", "fd00:198:18:40::/64"
GW4, GW6 = "198.18.40.1", "fd00:198:18:40::1"
CTL4, CTL6 = "198.18.40.2", "fd00:198:18:40::2"
GW_IF = "port0"
FIRST_PEER = 11          # ts1 is .11, ts2 .12, ...
USER = "lab"
# Headscale arguments per ``derp`` mode (see the module docstring).
DERP_MODES: dict[str, dict[str, Any]] = {
    "none": {"stun": True},
    "embedded": {"embedded_derp": True},
}


def lan_addrs(last: int) -> list[str]:
    """``198.18.40.<last>/24`` and ``fd00:198:18:40::<last>/64`` (the
    same digits, read as hex)."""
    return [f"198.18.40.{last}/24", f"fd00:198:18:40::{last}/64"]


def attach_to_switch(topo: Topology, host: Host, addrs: list[str], ifname: str = "eth0",
                     sw_name: str = "sw", bridge: str = "br0") -> str:
    """Joins ``host`` to the bridge :func:`lopowerd.lan_switch` made, like
    the hosts it joined itself: a veth ``p<i>`` in "sw" (enslaved to br0) to
    ``ifname`` in ``host`` with ``addrs``, checksum offload off on both ends.
    Returns the switch-side port name."""
    sw = topo.hosts[sw_name]
    used = set(list_links(sw.netns))
    port = next(f"p{i}" for i in range(1000) if f"p{i}" not in used)
    topo.veth(sw, port, host, ifname, b_addrs=addrs)
    sw.ip("link", "set", port, "master", bridge)
    for h, name in ((sw, port), (host, ifname)):
        h.run(["ethtool", "-K", name, "tx", "off"])  # finished checksums, as a real wire carries
    return port


def masquerade(router: Host, outside_if: str, inside: str, symmetric: bool = False) -> None:
    """``router`` NATs ``inside`` (an IPv4 prefix) out of ``outside_if``
    as a home router does: masquerade (the source port kept when it can, so
    one mapping serves every destination; ``symmetric``: a random port per
    destination), and unsolicited UDP to the router itself dropped.  The
    drop matters: Linux would otherwise keep a conntrack entry for a peer's
    early ping to the router, and the mapping the inside host asks for a
    moment later would clash with it and move to another port -- a NAT no
    peer could punch through."""
    mapping = "masquerade random" if symmetric else "masquerade"
    router.run(["nft", "-f", "-"], input=(
        "table ip nat {\n  chain post { type nat hook postrouting priority 100;\n"
        f"    oifname \"{outside_if}\" ip saddr {inside} {mapping}\n  }}\n}}\n"
        "table ip lpfw {\n  chain in { type filter hook input priority 0;\n"
        f"    iifname \"{outside_if}\" meta l4proto udp drop\n  }}\n}}\n"))


def detach_from_switch(topo: Topology, port: str, sw_name: str = "sw") -> None:
    """Unplugs switch port ``port`` (deletes the veth pair)."""
    topo.hosts[sw_name].ip("link", "delete", "dev", port, check=False)


class TailnetLab:
    """The LAN, headscale in "ctl" with user :data:`USER`, and tailscaled
    peers (``peers``: names of namespaces, each gets one tailscaled of the
    same name and joins with a fresh reusable pre-auth key when ``join``).

    ``headscale_kw`` goes to :class:`headscale.Headscale`,
    ``tailscaled_kw`` to every :class:`tailscaled.Tailscaled`.

    Attributes: ``gw``, ``ctl``, ``sw`` (hosts), ``headscale``, ``user_id``,
    ``peers`` (name -> Tailscaled), ``addrs`` (namespace name -> its LAN
    prefixes, "gw" included: those are for lopowerd's port), ``ports``
    (peer -> its switch port).
    """

    def __init__(self, topo: Topology, peers: Iterable[str] = ("ts1", "ts2"), join: bool = True,
                 derp: str = "none", headscale_kw: Optional[dict[str, Any]] = None,
                 tailscaled_kw: Optional[dict[str, Any]] = None) -> None:
        self.topo = topo
        self.tailscaled_kw = dict(tailscaled_kw or {})
        self.peers: dict[str, Tailscaled] = {}
        self.ports: dict[str, str] = {}          # peer name -> switch port
        self.addrs: dict[str, list[str]] = {}    # namespace name -> LAN prefixes
        self._next = FIRST_PEER
        names = list(peers)
        self.gw = topo.host("gw")
        self.ctl = topo.host("ctl")
        hosts = {self.ctl: lan_addrs(2)}
        self.addrs["gw"], self.addrs["ctl"] = lan_addrs(1), lan_addrs(2)
        peer_hosts = []
        for name in names:
            h = topo.host(name)
            hosts[h] = self._take_addrs(name)
            peer_hosts.append(h)
        lan_switch(topo, self.gw, GW_IF, hosts)
        self.sw = topo.hosts["sw"]
        for i, h in enumerate(peer_hosts):
            self.ports[h.name] = f"p{i + 2}"     # p0 gw, p1 ctl (lan_switch's order)
        if derp not in DERP_MODES:
            raise ValueError(f"derp must be one of {sorted(DERP_MODES)}")
        hs_kw = {"host6": CTL6, **DERP_MODES[derp], **(headscale_kw or {})}
        self.headscale = Headscale(host=CTL4, netns_host=self.ctl, **hs_kw)
        self.headscale.start()
        self.user_id = self.headscale.create_user(USER)
        for h in peer_hosts:
            self.peers[h.name] = Tailscaled(h, h.name, **self.tailscaled_kw).start()
        if join:
            self.join(self.peers.values())

    def _take_addrs(self, name: str) -> list[str]:
        addrs = lan_addrs(self._next)
        self._next += 1
        self.addrs[name] = addrs
        return addrs

    # --- tailnet ---------------------------------------------------------------

    @property
    def login_server(self) -> str:
        return self.headscale.url

    def authkey(self, reusable: bool = True, ephemeral: bool = False, expiration: str = "1h") -> str:
        """A new pre-auth key of the lab's user."""
        return self.headscale.create_preauth_key(self.user_id, reusable=reusable, ephemeral=ephemeral,
                                                 expiration=expiration)

    def join(self, peers: Iterable[Tailscaled], key: Optional[str] = None, timeout: float = 60.0) -> None:
        """``tailscale up`` on each of ``peers`` at once (one reusable key)."""
        peers = list(peers)
        key = key or self.authkey(reusable=True)
        errors: list[BaseException] = []

        def up(ts: Tailscaled) -> None:
            try:
                ts.up(self.login_server, key, hostname=ts.name, timeout=timeout)
            except BaseException as e:  # noqa: BLE001 -- re-raised below
                errors.append(e)
        threads = [threading.Thread(target=up, args=(ts,)) for ts in peers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def add_peer(self, name: Optional[str] = None, join: bool = True, **tailscaled_kw: Any) -> Tailscaled:
        """A new namespace on the LAN (next free address) with a tailscaled
        that joins the tailnet (when ``join``)."""
        name = name or f"ts{self._next - FIRST_PEER + 1}"
        host = self.topo.host(name)
        self.ports[name] = attach_to_switch(self.topo, host, self._take_addrs(name))
        ts = Tailscaled(host, name, **{**self.tailscaled_kw, **tailscaled_kw}).start()
        self.peers[name] = ts
        if join:
            self.join([ts])
        return ts

    def add_natted_peer(self, name: str, symmetric: bool = False, join: bool = True) -> Tailscaled:
        """A peer behind a NAT, as most are in the field: namespace
        ``<name>-nat`` (a router on the LAN, next free address) masquerades
        for ``name`` on a private link behind it (10.77.<n>.0/24, IPv4 only).
        Linux's masquerade keeps the source port when it can: one mapping
        whatever the destination (endpoint-independent), so hole punching
        works; ``symmetric`` gives each destination a random port of its
        own, as carrier-grade NATs do, and a direct path cannot open.  The
        peer logs in over IPv4 (``headscale.url4``)."""
        n = self._next
        router = self.topo.host(f"{name}-nat")
        self.ports[router.name] = attach_to_switch(self.topo, router, self._take_addrs(router.name))
        host = self.topo.host(name)
        inside, outside = f"10.77.{n}.2", f"10.77.{n}.1"
        self.topo.veth(router, "in0", host, "eth0", a_addrs=[f"{outside}/24"], b_addrs=[f"{inside}/24"])
        for h, ifname in ((router, "in0"), (host, "eth0")):
            h.run(["ethtool", "-K", ifname, "tx", "off"])
        host.add_route("default", outside)
        router.sysctl("net.ipv4.ip_forward", "1")
        masquerade(router, "eth0", f"10.77.{n}.0/24", symmetric)
        ts = Tailscaled(host, name, **self.tailscaled_kw).start()
        self.peers[name] = ts
        if join:
            ts.up(self.headscale.url4, self.authkey(), hostname=name)
        return ts

    def remove_peer(self, name: str, logout: bool = True, unplug: bool = False) -> None:
        """The peer leaves: ``tailscale logout`` (headscale then expires
        the node, it stays in `nodes list`), tailscaled stopped; ``unplug``
        also takes its namespace off the LAN."""
        ts = self.peers.pop(name)
        if logout and ts.running:
            ts.logout()
        ts.stop()
        if unplug:
            detach_from_switch(self.topo, self.ports.pop(name))

    def wait_mesh(self, timeout: float = 30.0) -> None:
        """Waits until every peer sees every other one Online."""
        for ts in self.peers.values():
            for other in self.peers.values():
                if other is not ts:
                    ts.wait_peer(other.name, online=True, timeout=timeout)

    def wait_direct(self, a: str, b: str, timeout: float = 20.0) -> str:
        """Disco-pings from peer ``a`` to peer ``b`` until a pong comes over
        a direct path; returns that ``tailscale ping`` output.  Also a good
        warm-up: tailscaled's first data packets to a peer it has no path
        to yet can sit in WireGuard's queue for seconds."""
        src, dst = self.peers[a], self.peers[b]
        target = dst.ip(4)
        last = ""

        def direct() -> bool:
            nonlocal last
            ok, last = src.ping(target, mode="disco", count=1, timeout=2)
            return ok
        try:
            src.wait_for(direct, timeout, what=f"a direct path to {b}", interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}; last ping said: {last}") from None
        return last

    def underlay(self, name: str, family: int = 4) -> str:
        """The LAN address of namespace ``name`` (no prefix length)."""
        return self.addrs[name][0 if family == 4 else 1].split("/")[0]

    def node_ids(self) -> dict[str, int]:
        """headscale's node IDs by node name."""
        return {n["given_name"]: int(n["id"]) for n in self.headscale.nodes()}

    def close(self) -> None:
        """Stops the peers and headscale; their logs stay until the topology
        removes its temp dir (and with it everything else)."""
        for ts in self.peers.values():
            ts.stop()
        self.headscale.stop(keep_state=True)

    def __enter__(self) -> "TailnetLab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
