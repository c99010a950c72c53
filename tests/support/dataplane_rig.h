#pragma once
// A whole `dataplane` (pool, rings, session and flow tables, one worker) on
// a net_ring device, for what is built on the dataplane (the WireGuard
// interface, DNS): frames go in on `rx`, what lopower sends comes out of
// `tx`. The worker is not launched: pump() runs its loop and the control
// thread's side (events, staged packets, packets handed up) in turn, as
// lopowerd's 1 ms timer would. Needs EAL (tests/support/eal.h) with 512 MB.

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "dataplane/dataplane.h"
#include "tests/support/ring_port.h"
#include "tests/support/worker_frames.h"

namespace lopower::test_support {

// A dataplane on the ring device ring_device(`name`, ...) made: one port
// "p0" with both roles at 198.18.0.1/24 and no exception path, polling,
// libsodium, a small pool without per-lcore caches (so in-use counts are
// exact), devices in 10.90.0.0/16 and fd7a:115c:a1e0:9909::/64. Tests and
// benchmarks change what their case needs.
inline dataplane_settings ring_dataplane_settings(const std::string& name, const char* config_path) {
  dataplane_settings s;
  s.config_path = config_path;
  s.dataplane.mbufs = 4095;
  s.dataplane.mbuf_cache = 0;
  s.dataplane.idle = idle_policy::poll;
  s.dataplane.ring_size = 1024;
  port_config p;
  p.name = "p0";
  p.device = "net_ring_" + name;  // what ethdev calls it
  p.role = port_role::both;
  p.addresses = {*ip_prefix::parse("198.18.0.1/24")};
  p.exception_path = false;
  s.ports.push_back(p);
  s.wireguard_port = 51820;
  s.tailnet_port = 41641;
  s.crypto_backend = "libsodium";
  s.device_ipv4_prefix = *ip_prefix::parse("10.90.0.0/16");
  s.device_ipv6_prefix = *ip_prefix::parse("fd7a:115c:a1e0:9909::/64");
  s.device_mtu = 1420;
  return s;
}

struct dataplane_rig {
  std::string name;
  rte_ring *rx, *tx;
  std::unique_ptr<dataplane> dp;
  wg_endpoint device_ep;  // a device at 198.18.0.2:40000, as lopower sees it (port 51820)
  wg_endpoint peer_ep;    // a tailnet peer at 198.18.0.3:41641, as lopower sees it

  // Handlers for what the control thread drains (empty: freed / ignored).
  std::function<void(rte_mbuf*)> on_control_packet;
  std::function<void(const wg_event&)> on_event;
  std::function<void(const staged_packet&)> on_staged;

  // `name`: a few characters, unique in the process. `reject_after_seconds`:
  // the workers' limit on a keypair's age (huge: see fake_clock.h).
  explicit dataplane_rig(const std::string& rig_name, std::uint32_t reject_after_seconds = 1'000'000) : name(rig_name) {
    rx = make_ring(name + "_rx", 4096);
    tx = make_ring(name + "_tx", 4096);
    ring_device(name, rx, tx);
    dataplane_settings s = ring_dataplane_settings(name, "test.toml");
    s.dataplane.max_flows = 1024;
    s.dataplane.max_flows_per_device = 64;
    s.reject_after_seconds = reject_after_seconds;
    s.device_ipv4_prefix = *ip_prefix::parse("10.90.0.0/24");
    dp = std::make_unique<dataplane>(s, std::vector<unsigned>{1});
    for (auto [ep, ip, peer_port, local_port] :
         {std::tuple{&device_ep, "198.18.0.2", 40000, 51820}, std::tuple{&peer_ep, "198.18.0.3", 41641, 41641}}) {
      ep->port_id = port_id();
      inet_pton(AF_INET, ip, ep->peer_ip);
      inet_pton(AF_INET, "198.18.0.1", ep->local_ip);
      ep->peer_port_be = htons(static_cast<std::uint16_t>(peer_port));
      ep->local_port_be = htons(static_cast<std::uint16_t>(local_port));
      std::memcpy(ep->local_mac, dp->ports()[0].mac.addr_bytes, 6);
      const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(peer_port & 0xff)};
      std::memcpy(ep->peer_mac, mac, 6);
    }
  }
  ~dataplane_rig() {
    drain({rx, tx});  // their mbufs are the dataplane's pool's
    dp.reset();
    rte_ring_free(rx);
    rte_ring_free(tx);
  }
  dataplane_rig(const dataplane_rig&) = delete;
  dataplane_rig& operator=(const dataplane_rig&) = delete;

  std::uint16_t port_id() const { return dp->ports()[0].port_id; }
  worker& the_worker() { return *dp->workers()[0]; }
  rte_mbuf* alloc() {
    rte_mbuf* m = rte_pktmbuf_alloc(dp->pool());
    if (m == nullptr) throw std::runtime_error("the dataplane's pool is empty");
    return m;
  }
  // As the port received it (the ring PMD leaves mbuf->port as it was: a
  // real PMD sets it, and lopower learns endpoints from it).
  void receive(rte_mbuf* m) {
    m->port = port_id();
    if (rte_ring_sp_enqueue(rx, m) != 0) throw std::runtime_error("the port's RX ring is full");
  }

  // A UDP datagram carrying `payload` from `from` (an endpoint as lopower
  // sees it), as a frame on the port.
  rte_mbuf* udp_frame(const wg_endpoint& from, const std::uint8_t* payload, std::size_t length) {
    rte_mbuf* m = alloc();
    const unsigned outer = outer_header_size(from.ipv6);
    auto* f = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(outer + length)));
    std::memcpy(f + outer, payload, length);
    wg_endpoint toward_lopower = from;
    std::swap(toward_lopower.peer_ip, toward_lopower.local_ip);
    std::swap(toward_lopower.peer_port_be, toward_lopower.local_port_be);
    std::swap(toward_lopower.peer_mac, toward_lopower.local_mac);
    write_outer_headers(f, toward_lopower, static_cast<std::uint16_t>(length));
    return m;
  }

  // Runs the worker and the control thread's side until nothing moves.
  void pump() {
    for (int round = 0; round < 8; ++round) {
      unsigned moved = 0;
      for (int i = 0; i < 4; ++i) moved += the_worker().poll_once();
      the_worker().flush();
      moved += dp->drain_wg_events([this](const wg_event& ev) {
        if (on_event) on_event(ev);
      });
      moved += dp->drain_staged([this](const staged_packet& sp) {
        if (on_staged) on_staged(sp);
        else rte_pktmbuf_free(sp.mbuf);
      });
      moved += dp->drain_control_packets([this](rte_mbuf* m) {
        if (on_control_packet) on_control_packet(m);
        else rte_pktmbuf_free(m);
      });
      dp->rcu().reclaim();
      if (moved == 0 && round > 0) break;
    }
    the_worker().flush();
  }

  // What lopower sent since the last call.
  std::vector<sent_frame> sent() { return take_sent(tx); }

  std::uint64_t worker_drops(drop_reason why) {
    return the_worker().stats().ports[0].drops[static_cast<unsigned>(why)].get();
  }
};

}  // namespace lopower::test_support
