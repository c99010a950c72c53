#pragma once
// The traffic: inner packets (ICMP echo to lopower, or UDP to a tailnet
// peer) carrying a probe (sequence number and send TSC), sealed in bursts
// for the devices in turn; and the receive side, which opens the replies
// in bursts and matches their probes.

#include <cstdint>

#include "dataplane/crypto/aead_batch.h"
#include "tools/loadgen/fleet.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/tailnet_path.h"

namespace lopower::loadgen {

// What every inner packet carries after its ICMP or UDP header.
struct probe {
  std::uint32_t magic;
  std::uint32_t device;
  std::uint64_t sequence;
  std::uint64_t sent_tsc;
};
static_assert(sizeof(probe) == 24);
inline constexpr std::uint32_t probe_magic = 0x4c47504eu;  // "LGPN"

class traffic_source {
 public:
  traffic_source(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead);
  // Builds and seals up to `n` frames, the devices with a session in turn;
  // returns how many are in `out`. `sizes` gets each frame's inner size.
  unsigned build(rte_mbuf** out, std::uint16_t* sizes, unsigned n, std::uint64_t now_tsc);

 private:
  std::size_t write_inner(std::uint8_t* at, const device& d, std::uint16_t size, std::uint64_t now_tsc);

  const options& opts_;
  const link_port& port_;
  fleet& fleet_;
  crypto::aead_backend& aead_;
  std::uint64_t sequence_ = 0;
  std::size_t next_device_ = 0;
  std::size_t next_size_ = 0;
  unsigned next_flow_ = 0;
};

// The receive side: ARP, handshake replies, and transport data, in bursts.
class receiver {
 public:
  receiver(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead);
  // Reads one burst; counts the probes that came back into `into`.
  // Returns how many frames arrived.
  unsigned poll(std::uint64_t now_tsc, counters& into);
  const receive_drops& drops() const noexcept { return drops_; }
  // --tailnet: frames for the node go to its data path.
  void set_tailnet(tailnet_path* path) noexcept { tailnet_ = path; }
  // lopower's MAC, once an ARP packet from it was seen.
  bool lopower_mac(rte_ether_addr& mac) const noexcept;

 private:
  bool is_wireguard_to_us(const rte_mbuf* m, const std::uint8_t*& payload, std::size_t& length) const noexcept;
  void count_probe(const std::uint8_t* inner, std::uint32_t length, std::uint64_t now_tsc, counters& into);

  const options& opts_;
  const link_port& port_;
  fleet& fleet_;
  crypto::aead_backend& aead_;
  receive_drops drops_;
  tailnet_path* tailnet_ = nullptr;
  rte_ether_addr lopower_mac_{};
  bool have_lopower_mac_ = false;
  double ns_per_tsc_;
};

}  // namespace lopower::loadgen
