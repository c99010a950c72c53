#pragma once
// lopower's DERP relays and netcheck (tailscale's magicsock derp.go and
// net/netcheck, in the parts a gateway needs; ../shared/docs/DERP-EXIT.md
// sections 1-3):
//
//   - the regions come from the netmap's DERP map (or an override file);
//   - STUN binding requests go to every region from the tailnet WireGuard
//     port (through the dataplane, so the mapping found is the one peers
//     must use) every ~23 s; each answer gives the region's latency and
//     lopower's endpoint as the region saw it;
//   - the home region is the one with the lowest latency over the last
//     5 minutes, changed only for a clear gain (netcheck's hysteresis); it
//     is kept connected, marked preferred, and reported to control
//     (NetInfo.PreferredDERP, DERPLatency);
//   - connections to other regions open on demand (a peer's home, or where
//     a peer reached us) and close after a minute without writes;
//   - a connection that drops is dialled again with a capped backoff, or
//     when the server said it was restarting, after the delay it gave.
//
// Packets go out with send(); whatever the relays bring in goes to the
// on_packet hook, with the region and the sender's node key.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/event_loop.h"
#include "control/tailnet/derp/derp_client.h"
#include "control/tailnet/netmap/map_response.h"
#include "control/tailnet/stun/stun.h"
#include "lopower/keys.h"

// What the relays did, for status: the fields and their names come from this list.
#define LOPOWER_DERP_COUNTERS(X)                                                                            \
  X(packets_sent) X(packets_received) X(send_queued) X(send_dropped_no_region) X(send_dropped_queue_full) \
  X(send_dropped_refused) X(connects) X(connect_failures) X(stun_sent) X(stun_received) X(stun_no_route)

namespace lopower {

struct derp_settings {
  bool enabled = true;
  // Dial DERP servers over plain HTTP (labs: tailscaled's TS_DEBUG_USE_DERP_HTTP).
  bool plain_http = false;
  std::string ca_file;  // trusted beside the system roots
  // Used instead of the netmap's DERP map when set.
  std::optional<tailnet::derp_map> map_override;
};

class derp_relays {
 public:
  using clock = std::chrono::steady_clock;
  struct hooks {
    // A packet a relay brought from the node with key `src`.
    std::function<void(int region, const public_key& src, std::span<const std::uint8_t>)> on_packet;
    // Sends a STUN request from the tailnet port; false when there is no way there yet.
    std::function<bool(const ip_address&, std::uint16_t, std::span<const std::uint8_t>)> send_stun;
    // The home region, the latencies or the mapped endpoint changed.
    std::function<void()> on_net_info;
    // Makes the stream a DERP connection runs over (TLS or plain TCP).
    std::function<std::unique_ptr<tailnet::byte_stream>(const tailnet::derp_node&, tailnet::byte_stream::handlers)>
        make_stream;
  };

  derp_relays(event_loop& loop, const private_key& node_key, derp_settings settings, hooks h);
  ~derp_relays();
  derp_relays(const derp_relays&) = delete;
  derp_relays& operator=(const derp_relays&) = delete;

  // The netmap's DERP map (ignored when the settings override it).
  void set_map(const tailnet::derp_map& map);
  // A packet to the node with key `to` through region `region`: the
  // connection is opened when there is none (the packet waits for it, a
  // few per region). False when it cannot go (counted).
  bool send(int region, const public_key& to, std::span<const std::uint8_t> packet);
  // The region a packet from `peer` last came in on (0: none).
  int region_of(const public_key& peer) const;
  // A STUN response that reached the tailnet port.
  void handle_stun(std::span<const std::uint8_t> payload);
  // Every ~100 ms: netcheck rounds, idle connections, reconnects.
  void tick();

  bool enabled() const noexcept { return settings_.enabled && !regions_.empty(); }
  int home() const noexcept { return home_; }
  bool has_region(int region) const { return regions_.contains(region); }
  // Connected to the region's server (packets sent now go out at once).
  bool ready(int region) const;
  // The best latency per region over the last 5 minutes ("999-v4" -> s).
  std::map<std::string, double> latencies() const;
  // Where STUN saw us (IPv4 first), if it answered.
  std::optional<tailnet::endpoint> mapped_endpoint() const;
  nlohmann::json status_json() const;
  nlohmann::json netcheck_json() const;

 private:
  struct pending_packet {
    public_key to;
    std::vector<std::uint8_t> bytes;
  };
  struct connection {
    std::unique_ptr<tailnet::derp::client> client;
    bool ready = false;
    clock::time_point last_write{};
    clock::time_point retry_at{};   // while closed and wanted: when to dial again
    std::chrono::milliseconds backoff{0};
    std::deque<pending_packet> pending;  // while connecting
    std::string last_error;
    std::size_t node = 0;  // which of the region's nodes is dialled
  };
  struct stun_probe {
    int region = 0;
    bool ipv6 = false;
    clock::time_point sent;
  };
  struct latency_sample {
    clock::time_point at;
    double seconds = 0;
  };

  connection& open_connection(int region);
  void dial(int region, connection& c);
  void on_ready(int region);
  void on_closed(int region, const std::string& reason);
  void close_idle(clock::time_point now);
  void redial_due(clock::time_point now);
  void start_stun_round(clock::time_point now);
  void finish_stun_round();
  void choose_home();
  void set_home(int region);
  bool wanted(int region) const;
  const tailnet::derp_node* node_for(int region, std::size_t index) const;

  event_loop& loop_;
  private_key node_key_;
  derp_settings settings_;
  hooks hooks_;
  std::map<int, tailnet::derp_region> regions_;
  std::map<int, connection> connections_;
  std::unordered_map<public_key, int> last_region_of_;
  int home_ = 0;
  // netcheck
  std::map<std::array<std::uint8_t, 12>, stun_probe> probes_;
  clock::time_point next_round_{};
  clock::time_point round_ends_{};
  bool round_open_ = false;
  std::map<std::string, std::deque<latency_sample>> history_;  // "999-v4" -> samples
  std::optional<tailnet::endpoint> mapped_v4_, mapped_v6_;
  // The NAT type, as far as one round shows it: the IPv4 mappings that
  // different regions saw (a symmetric NAT gives each its own port);
  // unknown with fewer than two answers.
  std::vector<tailnet::endpoint> round_mappings_;
  std::optional<bool> mapping_varies_;
  std::uint64_t rounds_ = 0;
  struct {
#define LOPOWER_DERP_COUNTER_FIELD(name) std::uint64_t name = 0;
    LOPOWER_DERP_COUNTERS(LOPOWER_DERP_COUNTER_FIELD)
#undef LOPOWER_DERP_COUNTER_FIELD
  } counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower
