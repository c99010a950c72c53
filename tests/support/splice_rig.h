#pragma once
// A worker's world for splicing, on one ring port: a device (10.90.0.2,
// fd7a:115c:a1e0:9909::2, at 198.18.0.2:40000) and a tailnet peer
// (100.64.0.5, fd7a:115c:a1e0::5, at 198.18.0.3:41641), with sessions up
// both ways (random keys, known to the rig), lopower at 198.18.0.1 on the
// port and 100.64.0.1 / fd7a:115c:a1e0::1 on the tailnet. Shared by the
// splice and fragment benchmarks and the data path's unit tests.

#include <rte_cycles.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <tuple>

#include "dataplane/session_table.h"
#include "dataplane/tailnet_view.h"
#include "dataplane/worker.h"
#include "tests/support/ring_port.h"
#include "tests/support/worker_frames.h"

namespace lopower::test_support {

inline const char* device_address(bool v6) { return v6 ? "fd7a:115c:a1e0:9909::2" : "10.90.0.2"; }
inline const char* peer_address(bool v6) { return v6 ? "fd7a:115c:a1e0::5" : "100.64.0.5"; }
inline const char* our_tailnet_address(bool v6) { return v6 ? "fd7a:115c:a1e0::1" : "100.64.0.1"; }
inline const char* our_device_address(bool v6) { return v6 ? "fd7a:115c:a1e0:9909::1" : "10.90.0.1"; }

struct splice_rig {
  static constexpr std::uint32_t device_index = 7, peer_index = 8;  // lopower's receiver indices

  std::string name;
  rte_mempool* pool;
  rte_ring *rx, *tx, *events, *staged, *relay_out, *relay_in;
  std::uint16_t port;
  port_identity identity;
  rcu_domain rcu{1};
  session_table sessions{1024, rcu};
  wg_peer device, ts_peer;
  wg_endpoint device_ep, peer_ep;  // as lopower sees them
  // What each peer seals with (lopower's receive key) and opens with
  // (lopower's send key).
  std::uint8_t device_key[32], peer_key[32];
  std::uint8_t device_open_key[32], peer_open_key[32];
  std::atomic<const tailnet_view*> view{nullptr};
  // Each keypair's next counter: the replay window remembers the last ones.
  std::uint64_t device_counter = 0, peer_counter = 0;

  // `name` (a few characters) makes the rings and the port unique in the process.
  splice_rig(const std::string& rig_name, rte_mempool* mbufs) : name(rig_name), pool(mbufs) {
    rx = make_ring(name + "_rx");
    tx = make_ring(name + "_tx");
    events = rte_ring_create_elem((name + "_ev").c_str(), sizeof(wg_event), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    staged = rte_ring_create_elem((name + "_st").c_str(), sizeof(staged_packet), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    relay_out = rte_ring_create_elem((name + "_ro").c_str(), sizeof(relay_packet), 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    relay_in = make_ring(name + "_ri");
    if (events == nullptr || staged == nullptr || relay_out == nullptr) throw std::runtime_error("cannot create the rig's rings");
    port = ring_port("net_ring_" + name, rx, tx, pool);
    identity.add_address(ip_address::v4(0xc6120001));
    identity.device_port_be = htons(51820);
    identity.tailnet_port_be = htons(41641);
    for (auto [ep, ip, peer_port, local_port] :
         {std::tuple{&device_ep, "198.18.0.2", 40000, 51820}, std::tuple{&peer_ep, "198.18.0.3", 41641, 41641}}) {
      ep->port_id = port;
      inet_pton(AF_INET, ip, ep->peer_ip);
      inet_pton(AF_INET, "198.18.0.1", ep->local_ip);
      ep->peer_port_be = htons(static_cast<std::uint16_t>(peer_port));
      ep->local_port_be = htons(static_cast<std::uint16_t>(local_port));
    }
    device.id = 1;
    device.has_v4 = device.has_v6 = true;
    inet_pton(AF_INET, device_address(false), &device.v4_be);
    inet_pton(AF_INET6, device_address(true), device.v6);
    device.endpoint.store(new wg_endpoint(device_ep));
    ts_peer.id = 2;
    ts_peer.tailnet = true;
    ts_peer.endpoint.store(new wg_endpoint(peer_ep));
    ts_peer.allowed.store(new allowed_prefixes{{*ip_prefix::parse("100.64.0.5/32"), *ip_prefix::parse("fd7a:115c:a1e0::5/128")}});
    sessions.insert(make_keypair(device, device_index, device_key, device_open_key));
    sessions.insert(make_keypair(ts_peer, peer_index, peer_key, peer_open_key));
    auto* v = new tailnet_view;
    v->has_v4 = v->has_v6 = true;
    inet_pton(AF_INET, our_tailnet_address(false), &v->v4_be);
    inet_pton(AF_INET6, our_tailnet_address(true), v->v6);
    v->routes.add(*ip_prefix::parse("fd7a:115c:a1e0::5/128"), &ts_peer);
    v->routes.add(*ip_prefix::parse("100.64.0.5/32"), &ts_peer);
    v->routes.finish();
    view.store(v);
  }

  ~splice_rig() {
    close_ring_port(port);
    drain({rx, tx});
    staged_packet sp;
    while (rte_ring_sc_dequeue_elem(staged, &sp, sizeof sp) == 0) rte_pktmbuf_free(sp.mbuf);
    relay_packet rp;
    while (rte_ring_sc_dequeue_elem(relay_out, &rp, sizeof rp) == 0) rte_pktmbuf_free(rp.mbuf);
    drain({relay_in});
    for (rte_ring* r : {rx, tx, events, staged, relay_out, relay_in}) rte_ring_free(r);
    delete view.load();
    for (wg_peer* p : {&device, &ts_peer}) {
      delete p->endpoint.load();
      p->current.store(nullptr);
    }
    rcu.drain();
  }
  splice_rig(const splice_rig&) = delete;
  splice_rig& operator=(const splice_rig&) = delete;

  // A worker on the rig's port, splicing into `flows`; the caller adds
  // what its case needs (fragment limits, flow limits).
  worker_setup setup(flow_table& flows, const char* backend = "ipsec-mb") {
    worker_setup s;
    s.burst_size = 32;
    s.adaptive_idle = false;
    s.ports.push_back(worker_port{0, port, no_port, &identity});
    s.sessions = &sessions;
    s.crypto_backend = backend;
    s.reject_after_cycles = rte_get_tsc_hz() * 3600;
    // The worker owns its keypairs' replay windows (replay_guard.h): one
    // worker here, so none is ever handed over.
    s.qsbr = rcu.qsbr();
    s.has_local_v4 = s.has_local_v6 = true;
    inet_pton(AF_INET, our_device_address(false), &s.local_v4_be);
    inet_pton(AF_INET6, our_device_address(true), s.local_v6);
    s.tailnet = &view;
    s.flows = &flows;
    s.wg_events = events;
    s.staged = staged;
    s.relay_out = relay_out;
    s.relay_in = relay_in;
    return s;
  }

  // The device's / the tailnet peer's next frame carrying `packet`.
  void seal_from_device(rte_mbuf* m, const std::vector<std::uint8_t>& packet) {
    seal_packet(m, packet, device_key, device_counter++, device_index, device_ep);
    m->port = port;  // as a PMD sets it (the ring PMD does not)
  }
  void seal_from_peer(rte_mbuf* m, const std::vector<std::uint8_t>& packet) {
    seal_packet(m, packet, peer_key, peer_counter++, peer_index, peer_ep);
    m->port = port;
  }
};

}  // namespace lopower::test_support
