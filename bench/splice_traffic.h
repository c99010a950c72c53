#pragma once
// Traffic for the splice benchmarks on a test_support::splice_rig: who
// sends (the rig's own device, or one of a fleet of devices with sessions
// of their own), the UDP flows they hold with a tailnet peer (the rig's,
// 100.64.0.5:9000, unless a flow names another), and frames sealed
// round-robin over those flows, in
// either direction: a device's datagram out, or the peer's reply on the
// flow back (which needs the flow open first: lopower chose its port).

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "dataplane/flow_table.h"
#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"
#include "tests/support/splice_rig.h"
#include "tests/support/worker_frames.h"

namespace lopower::bench {

using test_support::splice_rig;

// A device as a benchmark seals for it.
struct device_side {
  wg_peer* peer;
  const std::uint8_t* key;  // lopower's receive key for it
  std::uint64_t* counter;   // its next counter
  std::uint32_t receiver;   // lopower's receiver index for it
  const wg_endpoint* endpoint;
  ip_address address;  // its inner IPv4 address
};

inline device_side rig_device(splice_rig& g) {
  return {&g.device, g.device_key, &g.device_counter, splice_rig::device_index, &g.device_ep,
          *ip_address::parse(test_support::device_address(false))};
}

// A tailnet peer as a benchmark seals for it.
struct tailnet_side {
  ip_address address;             // its tailnet address (it listens on port 9000)
  const std::uint8_t* key = nullptr;  // lopower's receive key for it
  std::uint64_t* counter = nullptr;   // its next counter
  std::uint32_t receiver = 0;         // lopower's receiver index for it
  const wg_endpoint* endpoint = nullptr;
};

inline tailnet_side rig_peer(splice_rig& g) {
  return {*ip_address::parse(test_support::peer_address(false)), g.peer_key, &g.peer_counter, splice_rig::peer_index,
          &g.peer_ep};
}

// `count` devices besides the rig's own, on its port, sessions up: each its
// own peer (10.100.x.y), endpoint (198.19.x.y:40000), keys and receiver
// index (from 1000) in the rig's session table. Many sessions cost what one
// does not: keys, replay windows and peers no longer all stay in the cache.
class device_fleet {
 public:
  static constexpr std::uint32_t first_index = 1000;

  device_fleet(splice_rig& g, unsigned count) : rig_(g) {
    for (unsigned i = 0; i < count; ++i) members_.push_back(make_member(i));
  }
  ~device_fleet() {  // the table frees the keypairs after a grace period
    for (const auto& m : members_) {
      rig_.sessions.erase(m->index);
      delete m->peer.endpoint.load();
    }
  }
  device_fleet(const device_fleet&) = delete;
  device_fleet& operator=(const device_fleet&) = delete;

  unsigned size() const { return static_cast<unsigned>(members_.size()); }
  device_side side(unsigned i) {
    member& m = *members_.at(i);
    return {&m.peer, m.key, &m.counter, m.index, &m.endpoint, ip_address::v4(m.address_host)};
  }

 private:
  struct member {
    wg_peer peer;
    wg_endpoint endpoint;
    std::uint8_t key[32];
    std::uint32_t index = 0, address_host = 0;
    std::uint64_t counter = 0;
  };

  std::unique_ptr<member> make_member(unsigned i) {
    auto m = std::make_unique<member>();
    const std::uint32_t host = i + 1;  // .0 would be a network's address
    m->index = first_index + i;
    m->address_host = 0x0a640000u | host;  // 10.100.x.y
    m->endpoint = rig_.device_ep;
    const std::uint32_t ep_be = htonl(0xc6130000u | host);  // 198.19.x.y
    std::memcpy(m->endpoint.peer_ip, &ep_be, 4);
    m->peer.id = 100 + m->index;
    m->peer.has_v4 = true;
    m->peer.v4_be = htonl(m->address_host);
    m->peer.endpoint.store(new wg_endpoint(m->endpoint));
    if (!rig_.sessions.insert(test_support::make_keypair(m->peer, m->index, m->key)))
      throw std::runtime_error("the rig's session table is full: fewer devices");
    return m;
  }

  splice_rig& rig_;
  std::vector<std::unique_ptr<member>> members_;
};

// One flow: the device and its source port; `tailnet_port` is lopower's
// port for it on the tailnet once the flow is open; the tailnet peer it
// goes to (none given: the rig's).
struct flow_end {
  device_side device;
  std::uint16_t src_port;
  std::uint16_t tailnet_port = 0;
  tailnet_side tailnet = {};
};

// `count` flows of the rig's device, from source port 5555 for one, else
// from 10000 on (one flow each).
inline std::vector<flow_end> flows_of(device_side d, unsigned count) {
  std::vector<flow_end> out;
  for (unsigned i = 0; i < count; ++i)
    out.push_back({d, static_cast<std::uint16_t>(count == 1 ? 5555 : 10000 + i)});
  return out;
}

// One flow for each of the fleet's first `count` devices.
inline std::vector<flow_end> flows_of(device_fleet& fleet, unsigned count) {
  std::vector<flow_end> out;
  for (unsigned i = 0; i < count; ++i) out.push_back({fleet.side(i), 5555});
  return out;
}

// UDP datagrams of `inner` bytes (IPv4), round-robin over `flows`.
class splice_traffic {
 public:
  splice_traffic(splice_rig& g, std::vector<flow_end> flows, std::uint16_t inner)
      : rig_(g), flows_(std::move(flows)), inner_(inner), payload_(inner - 28u, 0x5a) {
    for (flow_end& f : flows_)
      if (f.tailnet.key == nullptr) f.tailnet = rig_peer(g);
  }

  // The next flow's datagram, as its device sends it.
  void seal_out(rte_mbuf* m) {
    const flow_end& f = next_flow();
    const device_side& d = f.device;
    test_support::seal_frame(
        m, inner_,
        [this, &f](std::uint8_t* ip) { write_udp_packet(ip, f.device.address, f.src_port, f.tailnet.address, 9000, payload_); },
        d.key, (*d.counter)++, d.receiver, *d.endpoint);
  }

  // The tailnet peer's reply on the next flow (open() or learn_ports() first).
  void seal_in(rte_mbuf* m) {
    const flow_end& f = next_flow();
    const tailnet_side& t = f.tailnet;
    test_support::seal_frame(
        m, inner_, [this, &f](std::uint8_t* ip) { write_udp_packet(ip, f.tailnet.address, 9000, ours(), f.tailnet_port, payload_); },
        t.key, (*t.counter)++, t.receiver, *t.endpoint);
  }

  // A new flow table starts empty: the devices' flow counts (held against
  // the per-device limit) start again too.
  void forget_flow_counts() {
    for (flow_end& f : flows_) f.device.peer->flows.store(0);
  }

  // Sends each flow's first datagram through `w` (which splices into
  // `table`) and learns the port lopower gave the flow.
  void open(worker& w, flow_table& table) {
    constexpr unsigned chunk = 1024;  // well inside the rig's rings and the pool
    for (std::size_t done = 0; done < flows_.size(); done += chunk) {
      const auto n = static_cast<unsigned>(std::min<std::size_t>(chunk, flows_.size() - done));
      test_support::fill(rig_.pool, rig_.rx, n, [this](rte_mbuf* m) { seal_out(m); });
      while (rte_ring_count(rig_.rx) != 0) w.poll_once();
      w.flush();
      test_support::drain({rig_.tx});
    }
    learn_ports(table);
  }

  // The port lopower gave each flow (its first datagram sent, by open() or
  // by the caller's own workers); the replies start with the first flow.
  void learn_ports(const flow_table& table) {
    for (flow_end& f : flows_) f.tailnet_port = tailnet_port_of(f, table);
    next_ = 0;
  }

 private:
  static ip_address ours() { return *ip_address::parse(test_support::our_tailnet_address(false)); }

  const flow_end& next_flow() {
    const flow_end& f = flows_[next_];
    next_ = next_ + 1 == flows_.size() ? 0 : next_ + 1;
    return f;
  }

  static std::uint16_t tailnet_port_of(const flow_end& f, const flow_table& table) {
    const flow* found = table.find(
        splice::make_flow_key(ip_family::v4, 17, f.device.address.bytes.data(), f.src_port, f.tailnet.address.bytes.data(), 9000));
    if (found == nullptr) throw std::runtime_error("a device's first datagram made no flow");
    return found->tailnet_key.dst_port;
  }

  splice_rig& rig_;
  std::vector<flow_end> flows_;
  std::uint16_t inner_;
  std::vector<std::uint8_t> payload_;
  std::size_t next_ = 0;
};

}  // namespace lopower::bench
