#pragma once
// The dataplane as the control thread sees it: the packet pool, the ports and
// their exception-path TAPs, the worker lcores, and the rings between them.
// Built after rte_eal_init, from a validated config (dataplane_settings).

#include <rte_mempool.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "dataplane/neighbour_table.h"
#include "dataplane/port.h"
#include "dataplane/rcu.h"
#include "dataplane/flow_table.h"
#include "dataplane/session_table.h"
#include "dataplane/worker.h"
#include "lopower/dataplane_config.h"

namespace lopower {

// Counters of the control plane's side of the rings (one writer: the control thread).
struct control_stats {
  drop_counters drops[max_ports];  // count with drops[port].count(reason)
  counter received[packet_class_count];
};

class dataplane {
 public:
  // Opens every port and TAP and creates the workers (not yet running).
  // Throws std::runtime_error with an operator-facing message; whatever was
  // opened before the failure is closed again.
  dataplane(const dataplane_settings& cfg, const std::vector<unsigned>& worker_lcores);
  ~dataplane();
  dataplane(const dataplane&) = delete;
  dataplane& operator=(const dataplane&) = delete;

  void start();  // launches the workers on their lcores
  void stop();   // signals them and waits; idempotent

  // Control thread: moves the workers' neighbour notes into the table.
  unsigned drain_neighbour_notes(std::uint64_t now_ms);
  // Control thread: hands the packets the workers passed up to `handler`,
  // which owns each afterwards (frees it or sends it back through
  // transmit()): per call, up to a budget of each class (control_frame.h's
  // up_ring) from each worker, so no class waits behind another's flood.
  using packet_handler = std::function<void(rte_mbuf*)>;
  unsigned drain_control_packets(const packet_handler& handler);
  // Control thread: handshake messages waiting to be answered (the load
  // that turns cookies on).
  unsigned handshake_backlog() const;
  // Control thread: under load, the workers check MAC2 too and keep
  // messages without a cookie on a ring of their own (handshake_guard.h).
  void set_handshakes_under_load(bool under_load) { handshakes_under_load_.store(under_load, std::memory_order_relaxed); }
  bool handshakes_under_load() const { return handshakes_under_load_.load(std::memory_order_relaxed); }
  // Control thread: a listener's MAC1 key and current cookie secret, for
  // the workers' checks (nullptr: not checked there; the control thread
  // still is). The old copy is freed after a grace period.
  void publish_handshake_keys(listener l, const key32* mac1_key, const key32* cookie_secret);
  // Control thread: session events (confirmations, roaming) from the workers.
  using event_handler = std::function<void(const wg_event&)>;
  unsigned drain_wg_events(const event_handler& handler);
  // Control thread: packets the workers hold back for peers with no session
  // (the handler owns each mbuf afterwards).
  using staged_handler = std::function<void(const staged_packet&)>;
  unsigned drain_staged(const staged_handler& handler);
  // Control thread: sealed messages the workers hand up for peers reached
  // through DERP (the handler owns each mbuf afterwards).
  using relay_handler = std::function<void(const relay_packet&)>;
  unsigned drain_relay_out(const relay_handler& handler);
  // Control thread: WireGuard transport data a DERP relay brought (the mbuf
  // holds the message from its first byte) to a worker, chosen by
  // `spread` (the same for every packet of a peer: its packets stay in
  // order on one worker). Frees it and returns false when that ring is full
  // (counted as relay_in_ring_full).
  bool inject_relayed(rte_mbuf* m, std::uint16_t region, std::uint64_t spread);
  // Control thread: a drop on the way to or from the tailnet that no port
  // saw (relays), counted on the first port serving the tailnet.
  void count_tailnet_drop(drop_reason why);
  // Control thread: queues a frame for transmission out of port `m->port`.
  // Frees it and returns false when the worker's ring is full.
  bool transmit(rte_mbuf* m);
  // Control thread (udp_out.cc): one UDP datagram to `to`, outer headers
  // written here.
  bool send_udp(const wg_endpoint& to, std::span<const std::uint8_t> payload);
  // Control thread: the way out to dst:dst_port from local_port on a port
  // serving the tailnet (or the devices): the port whose prefix holds dst,
  // else one with a gateway of its family. nullopt when no port reaches it,
  // or when the next hop's MAC is not known yet -- then an ARP request or
  // neighbour solicitation goes out, and a retry a moment later finds it.
  std::optional<wg_endpoint> route_udp(const ip_address& dst, std::uint16_t dst_port, std::uint16_t local_port,
                                       bool tailnet_side);

  const std::vector<port_runtime>& ports() const { return ports_; }
  const std::vector<std::unique_ptr<worker>>& workers() const { return workers_; }
  const neighbour_table& neighbours() const { return neighbours_; }
  session_table& sessions() { return *sessions_; }
  flow_table& flows() { return *flows_; }
  const flow_table& flows() const { return *flows_; }
  // Control thread, once a second: removes flows idle past their timeout and
  // every flow of a removed device; returns how many. `census`, when given,
  // gets the flows that stay by protocol and state. Neither walks the
  // table: the flow table's timer wheel checks the flows whose deadline has
  // come, and the census is kept as counts (flow_table.h); a walk only
  // after a device was removed. `now`: a TSC reading (tests, benchmarks).
  unsigned expire_flows(flow_census* census = nullptr);
  unsigned expire_flows(flow_census* census, std::uint64_t now);
  // Control thread: a removed device's peer, retired once its flows are:
  // a worker may still have made one in the moment of the removal, so the
  // peer waits a second (expire_flows then takes its flows, and the peer is
  // retired after them).
  void retire_device_peer(wg_peer* peer);
  rcu_domain& rcu() { return *rcu_; }
  control_stats& control_counters() { return control_stats_; }
  const control_stats& control_counters() const { return control_stats_; }
  std::size_t port_index_of(std::uint16_t port_id) const;
  rte_mempool* pool() const { return pool_; }
  // The ol_flags bit on inner packets the workers hand up (see worker_setup).
  std::uint64_t inner_up_flag() const { return inner_up_flag_; }
  // Control thread: replaces what the workers know of the tailnet (nullptr:
  // lopower is not on a tailnet); the old view is freed after a grace period.
  void publish_tailnet_view(std::unique_ptr<tailnet_view> view);
  // Control thread: replaces the workers' directory of devices by inner
  // address (after a device is added or removed); the old one is freed
  // after a grace period.
  void publish_devices(const std::vector<wg_peer*>& devices);
  // Control thread: replaces the port forwards the workers carry.
  void publish_forwards(std::unique_ptr<forward_table> forwards);
  // Control thread: ends the flows a forward opened (`protocol`, `port` on
  // lopower's tailnet address); returns how many.
  unsigned end_forward_flows(std::uint8_t protocol, std::uint16_t port);

 private:
  void create_rings(std::size_t workers, std::uint32_t size);
  void set_uplink(worker_setup& s) const;
  // Control thread, once a second: asks (ARP / neighbour solicitation) for
  // each uplink gateway not in the neighbour table, and for a known one
  // well before its entry would age out, so the workers' NAT finds it.
  void solicit_uplink_gateways(std::uint64_t now_ms);
  void open_ports(const dataplane_settings& cfg, std::uint16_t queues);
  void close_all();

  rte_mempool* pool_ = nullptr;
  std::vector<port_runtime> ports_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::vector<std::array<rte_ring*, up_ring_count>> to_control_;  // per worker, per class
  std::vector<rte_ring*> from_control_, neighbour_rings_, event_rings_, staged_rings_;
  std::vector<rte_ring*> relay_out_rings_, relay_in_rings_;
  std::unique_ptr<rcu_domain> rcu_;
  std::unique_ptr<session_table> sessions_;
  std::unique_ptr<flow_table> flows_;
  std::vector<std::pair<wg_peer*, std::uint64_t>> removed_devices_;
  bool device_removed_ = false;  // since the last expire_flows: its flows are looked for
  std::vector<rte_ring*> released_ports_;                      // per worker
  std::vector<std::vector<splice::flow_key>> release_backlog_;  // per worker: what did not fit the ring  // peer, when removed (tsc)
  neighbour_table neighbours_;
  // What lopower asked for (route_udp's solicitations): port, address ->
  // when. Only such answers, or questions for lopower's own addresses, may
  // add a neighbour.
  std::map<std::pair<std::uint16_t, std::array<std::uint8_t, 16>>, std::uint64_t> solicited_;
  // When each uplink gateway was last asked for (solicit_uplink_gateways).
  std::map<std::pair<std::uint16_t, std::array<std::uint8_t, 16>>, std::uint64_t> gateway_asked_ms_;
  std::uint64_t neighbour_timeout_ms_ = 0;
  std::uint64_t last_neighbour_expiry_ms_ = 0;
  bool admit_neighbour(const neighbour_note& note, std::uint64_t now_ms);
  control_stats control_stats_;
  std::atomic<const tailnet_view*> tailnet_view_{nullptr};
  std::atomic<const device_directory*> devices_{nullptr};
  std::atomic<const forward_table*> forwards_{nullptr};
  void end_flow(flow* f);
  std::optional<ip_prefix> device_v4_prefix_;
  ip_prefix device_v6_prefix_;
  handshake_guard guard_;  // the control thread's copy: what was published last
  std::atomic<const handshake_guard*> published_guard_{nullptr};
  std::atomic<bool> handshakes_under_load_{false};
  std::uint64_t inner_up_flag_ = 0;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  std::size_t next_tx_worker_ = 0;
};

}  // namespace lopower
