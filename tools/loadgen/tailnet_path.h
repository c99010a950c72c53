#pragma once
// The data path of the loadgen's tailnet node (--tailnet): the frames on
// the port addressed to the node's outer address and UDP port. Transport
// data -- the device flows lopower spliced onto its WireGuard session with
// the node -- is opened in bursts with the node's session keys (the
// previous keypair's too, for a while after a rekey) and then echoed back
// (addresses and ports swapped, resealed in the same mbuf, so lopower
// splices the reply back to the device) or only counted (sink). Everything
// else -- disco, handshakes, cookie replies -- goes to tailnet_node, whose
// replies and timers' messages go out as frames.

#include <rte_mbuf.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/loadgen/options.h"
#include "tools/loadgen/port.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/tailnet/tailnet_node.h"
#include "tools/loadgen/wire.h"

namespace lopower::loadgen {

// Per-direction and drop counters of the node's data path.
struct tailnet_path_counters {
  std::uint64_t opened = 0;          // probes from a device, opened (device -> tailnet delivered)
  std::uint64_t opened_bytes = 0;
  std::uint64_t echoed = 0;          // replies the port took (tailnet -> device offered)
  std::uint64_t echo_not_sent = 0;   // replies dropped: the port's TX ring and our backlog full
  std::uint64_t keepalives_received = 0;
  std::uint64_t keepalives_sent = 0;
  std::uint64_t control_datagrams = 0;  // handed to tailnet_node::receive
  std::uint64_t unknown_session = 0;
  std::uint64_t bad_tag = 0;
  std::uint64_t replayed = 0;
  std::uint64_t not_a_probe = 0;
  std::uint64_t previous_key_used = 0;  // opened with the keypair before the current one
  std::uint64_t generations = 0;        // keypairs seen
};

class tailnet_path {
 public:
  // `port`: the devices' port (the receiver hands over the node's frames)
  // or one of its own (`own_port`: poll_port() reads it).
  tailnet_path(const options& opts, const link_port& port, bool own_port, crypto::aead_backend& aead,
               tailnet_node& node, std::uint32_t devices);
  ~tailnet_path();
  tailnet_path(const tailnet_path&) = delete;
  tailnet_path& operator=(const tailnet_path&) = delete;

  bool own_port() const noexcept { return own_port_; }
  // On the devices' port: lopower's MAC as the devices found it.
  void set_lopower_mac(const rte_ether_addr& mac);
  // On a port of its own: one burst read (ARP, the node's frames), opened
  // and echoed; how many frames arrived.
  unsigned poll_port(std::uint64_t now_tsc, counters& into);
  // Takes `m` if it is addressed to the node (then owns it); false otherwise.
  bool take(rte_mbuf* m, std::uint64_t now_tsc);
  // Opens (and echoes) what take() queued. Sink mode counts the probes
  // into `into` (the run's delivered is one-way then); in echo mode the
  // devices count the replies.
  void flush(std::uint64_t now_tsc, counters& into);
  // The ms timer: the node's timers, a new keypair, keepalives, and on a
  // port of its own an ARP request for lopower until it answers.
  void tick(std::uint64_t now_tsc);
  bool established() const noexcept { return current_ != nullptr; }
  // Echoes the port did not take yet: sent again first on each turn, and
  // the devices hold back while there are any (the port's room goes to
  // the reply direction first, so a full TX ring does not lose echoes).
  bool backlogged() const noexcept { return backlog_count_ != 0; }
  void send_backlog();

  const tailnet_path_counters& stats() const noexcept { return stats_; }
  nlohmann::json to_json() const;

 private:
  struct keypair {
    transport_session keys;
    std::uint64_t generation = 0;
  };
  void adopt_session(const tailnet_session& s);
  void ask_for_lopower_mac(std::uint64_t now_tsc);
  void hand_to_node(rte_mbuf* m, const std::uint8_t* payload, std::size_t length, std::uint32_t src_be,
                    std::uint16_t src_port);
  void send_datagrams();
  void echo_back(rte_mbuf** frames, crypto::aead_op* ops, unsigned n);
  bool is_device_probe(const std::uint8_t* inner, std::uint32_t length, std::uint16_t& total) const noexcept;
  transport_session* session_for(std::uint32_t receiver_index) noexcept;
  wg_endpoint path_to(const udp_endpoint& peer) const noexcept;
  static std::uint64_t now_ns() noexcept;

  const options& opts_;
  const link_port& port_;
  crypto::aead_backend& aead_;
  tailnet_node& node_;
  std::uint32_t devices_;
  bool own_port_;
  rte_ether_addr lopower_mac_{};
  bool have_lopower_mac_ = false;
  std::uint32_t lopower_ip_be_ = 0;  // on a port of its own: whose MAC ARP asks for
  std::uint64_t last_arp_tsc_ = 0;
  std::unique_ptr<keypair> current_, previous_;
  udp_endpoint node_session_lopower_;  // where the current keypair's data goes
  std::uint64_t last_sent_tsc_ = 0, last_received_tsc_ = 0;
  std::vector<datagram> out_;
  // take() queues transport frames here; flush() opens them in one burst.
  rte_mbuf* queued_[burst_size];
  crypto::aead_op ops_[burst_size];
  transport_session* sessions_[burst_size];
  unsigned queued_count_ = 0;
  static constexpr unsigned backlog_capacity = 4 * burst_size;
  rte_mbuf* backlog_[backlog_capacity];
  unsigned backlog_count_ = 0;
  double ns_per_tsc_;
  std::uint64_t hz_;
  tailnet_path_counters stats_;
};

}  // namespace lopower::loadgen
