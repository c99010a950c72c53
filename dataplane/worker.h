#pragma once
// A worker lcore: polls its queue on every port, classifies each burst into
// typed sub-bursts and processes each sub-burst as a vector. It owns its
// queues, TX buffers, reassembly table, port allocator and counters outright
// and makes no system calls except the adaptive idle sleep. Shared state it
// touches: lock-free lookups (session and flow tables, RCU-published peers,
// endpoints, tailnet view); a keypair's replay window (without a lock by the
// one worker that receives the keypair; once a second one has, under its
// lock once per run of its packets in a burst: replay_guard.h); rte_hash's writer lock when it creates
// a flow; one atomic add per run of packets sent on a keypair (its send
// counter) and per flow created (the device's flow count). Peer and flow
// traffic counters have a slot per worker (shared_counter, flow_traffic).
//
// A packet's walk, stage -> file -> function, in order:
//   1. receive and classify   stage_receive.cc     poll_port, classify_burst
//      (handshakes, disco, STUN                    handshakes_to_control (MACs
//       to the control thread)                     checked, handshake_guard.h),
//                                                  to_control -- a ring per class;
//                                                  the verdict travels in an mbuf
//                                                  field, control_frame.h)
//      (transport data a DERP  stage_decrypt.cc     receive_relayed)
//       relay brought)
//   2. decrypt                stage_decrypt.cc     receive_transport,
//                                                  check_replay, admit_decrypted,
//                                                  note_endpoint, look_up_flows
//   3. deliver                stage_deliver.cc     deliver_inner (devices),
//                                                  deliver_from_tailnet
//      fragments, whole first stage_fragments.cc   deliver_fragment, reassemble
//   4. splice                 stage_splice.cc      splice_out (device -> tailnet,
//                                                  create_flow, refuse_to_device),
//                                                  splice_in (tailnet -> device)
//      beyond the tailnet     stage_egress.cc      egress_peer (exit node, or
//                                                  refused: none, no uplink)
//      fragments, cut up      stage_fragments.cc   send_inner
//      the internet           stage_uplink.cc      uplink_out (device -> uplink
//                                                  port, NATed), receive_uplink
//                                                  (replies and ICMP errors back;
//                                                  a miss to the exception path)
//   5. encrypt and send       stage_encrypt_send.cc  push_out, encrypt_and_send
//                                                  (wg::write_data_header,
//                                                  write_outer_headers), stage,
//                                                  transmit, flush; relay_up
//                                                  (peers reached through DERP)
//   exception path            stage_exception.cc   learn_neighbours, to_kernel
//                                                  (port -> TAP), poll_tap
//                                                  (TAP -> port)
//   the loop                  worker.cc            poll_once, run, idle; drops
//                                                  (drop, drop_one) are counted
//                                                  with drop_counters::count

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "dataplane/classifier.h"
#include "dataplane/control_frame.h"
#include "dataplane/crypto/aead_batch.h"
#include "dataplane/idle_governor.h"
#include "dataplane/lcore_stats.h"
#include "dataplane/session_table.h"
#include "dataplane/flow_table.h"
#include "dataplane/handshake_guard.h"
#include "dataplane/fragments/reassembler.h"
#include "dataplane/splice/port_allocator.h"
#include "dataplane/splice/translate.h"
#include "dataplane/tailnet_view.h"
#include "lopower/dataplane_config.h"
#include "dataplane/device_directory.h"
#include "dataplane/forward_table.h"

namespace lopower {

class neighbour_table;

inline constexpr std::uint16_t no_port = 0xffff;
inline constexpr unsigned max_burst = 256;

struct worker_port {
  std::uint8_t index = 0;               // position in the config, indexes lcore_stats::ports
  std::uint16_t port_id = no_port;      // DPDK port
  std::uint16_t tap_id = no_port;       // its exception-path TAP, or no_port
  const port_identity* identity = nullptr;
};

struct worker_setup {
  unsigned lcore_id = 0;
  std::uint16_t queue = 0;              // this worker's queue index on every port
  std::uint16_t burst_size = 32;
  std::uint32_t tx_drain_us = 100;
  bool adaptive_idle = true;
  std::uint32_t idle_sleep_max_us = 1000;
  std::uint32_t idle_hold_us = 500;     // adaptive: no sleep within this long of the last packet
  std::vector<worker_port> ports;
  // mbufs for the control plane, one ring per class (control_frame.h's up_ring)
  std::array<rte_ring*, up_ring_count> to_control{};
  rte_ring* from_control = nullptr;     // mbufs to transmit; mbuf->port names the DPDK port
  rte_ring* neighbours = nullptr;       // neighbour_note elements
  rte_ring* wg_events = nullptr;        // wg_event elements
  rte_ring* staged = nullptr;           // staged_packet elements: waiting for a session
  // DERP (control/tailnet/derp): sealed messages for peers reached through a
  // relay go up (relay_packet elements); transport data the relay brought
  // comes down (mbufs holding the WireGuard message, region in hash.usr).
  rte_ring* relay_out = nullptr;
  rte_ring* relay_in = nullptr;

  // WireGuard transport (none: transport data is dropped as unknown).
  const session_table* sessions = nullptr;
  std::string crypto_backend = "auto";  // each worker makes its own instance
  rte_rcu_qsbr* qsbr = nullptr;         // reports quiescent states here when set
  unsigned rcu_thread_id = 0;
  std::uint64_t reject_after_cycles = 0;
  // lopower's own device-side addresses: local services (ICMP echo) answer there.
  bool has_local_v4 = false, has_local_v6 = false;
  std::uint32_t local_v4_be = 0;
  std::uint8_t local_v6[16]{};
  // lopower on the tailnet (nullptr, or a null view: tailnet traffic is not for us).
  const std::atomic<const tailnet_view*>* tailnet = nullptr;
  // Which device holds an address (nullptr, or a null directory: none is
  // reached but by its own flows' replies). Route mode, port forwards and
  // device-to-device traffic are delivered through it.
  const std::atomic<const device_directory*>* devices = nullptr;
  // [inbound] advertise_routes: tailnet peers may open flows to device
  // addresses; snat: their source becomes lopower's device-side address and
  // a port of the flow's (the device needs no route back).
  bool inbound_routes = false;
  // Port forwards on lopower's tailnet address (nullptr, or a null table: none).
  const std::atomic<const forward_table*>* forwards = nullptr;
  bool inbound_snat = true;
  // [devices] device_to_device = "allow": a device's packet to another
  // device is delivered to it (else refused, ICMP administratively prohibited).
  bool device_to_device = false;
  // ol_flags bit marking an inner (decrypted) packet handed to the control
  // plane, e.g. the replies to lopower's own pings; 0: none are handed up.
  std::uint64_t inner_up_flag = 0;
  // Handshake MACs checked here (handshake_guard.h): the keys the control
  // thread publishes, and whether it is under load (then MAC2 is checked too).
  const std::atomic<const handshake_guard*>* guard = nullptr;
  const std::atomic<bool>* handshakes_under_load = nullptr;
  // ... and the worker's own view (handshake_load): its handshake rings
  // holding more than this is load at once, before the control thread's next
  // look (0: the control thread's flag only).
  std::uint32_t handshake_load_threshold = 0;
  // A device's DNS queries to lopower: one per this many cycles on average,
  // up to dns_query_burst at once (0: not paced).
  std::uint64_t dns_query_interval_cycles = 0;
  std::uint32_t dns_query_burst = 1;
  // Splicing (none: device traffic to the tailnet is refused as unroutable).
  flow_table* flows = nullptr;
  std::uint32_t max_flows_per_device = 4096;
  unsigned worker_index = 0, worker_count = 1;  // this worker's slice of the port range
  std::uint32_t max_flows = 65536;              // ports this worker may hold at once
  std::uint64_t port_seed = 0;                  // keys the port choice (random in lopowerd)
  // Tailnet-side keys of expired flows whose ports this worker gave out:
  // it takes them back here (its allocator is its own, unsynchronised).
  rte_ring* released_ports = nullptr;           // splice::flow_key elements
  // IP fragments (dataplane/fragments): inner packets that come in pieces are
  // reassembled here, before splicing, in a table of this worker's own.
  std::uint32_t reassembly_datagrams = 0;       // in progress at once (0: fragments are dropped)
  std::uint32_t reassembly_per_device = 0;      // of which one device may have
  std::uint32_t reassembly_per_tailnet_peer = 0;  // or one tailnet peer (it answers for many devices)
  std::uint16_t device_mtu = 1420;              // larger packets to a device are cut to this
  // The uplink port (role uplink; none: device traffic for the internet is
  // refused as unroutable): its [[port]] table (addresses, gateways, MTU,
  // NAT ports) and MAC; next hops' MACs come from `neighbour_macs`
  // (lock-free lookups), which the control thread fills.
  std::optional<port_config> uplink;
  rte_ether_addr uplink_mac{};
  const neighbour_table* neighbour_macs = nullptr;
};

class worker {
 public:
  explicit worker(worker_setup setup);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // One pass over every queue; returns the packets moved. Public so the
  // benchmarks drive exactly the loop the lcore runs.
  unsigned poll_once() noexcept;
  // Sends every buffered frame now.
  void flush() noexcept;
  // The lcore's loop, until `stop` becomes true.
  void run(const std::atomic<bool>& stop) noexcept;

  const lcore_stats& stats() const noexcept { return stats_; }
  std::string_view crypto_backend() const noexcept { return aead_ ? aead_->name() : "none"; }
  const worker_setup& setup() const noexcept { return setup_; }

 private:
  struct port_state {
    worker_port port;
    rte_eth_dev_tx_buffer* tx_port = nullptr;
    rte_eth_dev_tx_buffer* tx_tap = nullptr;
  };
  // Sub-bursts of one RX burst, by class.
  struct sub_bursts {
    rte_mbuf* pkts[packet_class_count][max_burst];
    std::uint16_t count[packet_class_count];
    classify_result transport[max_burst];  // offsets of the wg_transport sub-burst
  };
  // A packet's flow, looked up for the whole sub-burst at once.
  struct flow_lookup {
    bool done = false;      // looked up (else: look it up when it is needed)
    flow* found = nullptr;  // as of the lookup: an earlier packet of the burst may have created it since
    // The packet's 5-tuple as the lookup computed it (nullptr: not computed,
    // e.g. not a flow the splice carries, or a packet reassembled since), so
    // that the stages after it do not parse the packet for it again.
    const splice::flow_key* key = nullptr;
    const splice::flow_fields* fields = nullptr;  // where its rewritten fields lie, with `key`
  };
  // What look_up_flows found for a sub-burst's packets: each one's parse,
  // flow and key (flow_lookup::key and ::fields point into keys and fields).
  // A member of the worker, not on the stack: constructing max_burst of
  // each for every burst of 32 cost more than the lookups; look_up_flows
  // resets only the entries of the burst.
  struct burst_lookups {
    std::optional<inner_info> infos[max_burst];
    flow_lookup flows[max_burst];
    splice::flow_key keys[max_burst];
    splice::flow_fields fields[max_burst];
  };
  // The packet's flow key: the bulk lookup's, else read from the packet
  // into `parsed`; nullptr if it has none (not a flow the splice carries).
  // Inline and not copied: every packet on a flow asks, nearly always of
  // the lookup.
  static const splice::flow_key* flow_key_of(const flow_lookup& hint, const std::uint8_t* p, std::uint32_t len,
                                             splice::flow_key& parsed) noexcept {
    if (hint.key != nullptr) return hint.key;
    return splice::flow_key_of(p, len, parsed) == splice::translate_status::ok ? &parsed : nullptr;
  }
  // Inner packets on their way out to peers, by peer.
  struct outbound {
    rte_mbuf* pkts[max_burst];
    wg_peer* peers[max_burst];
    std::uint16_t count = 0;
  };

  // worker.cc: the loop and its helpers.
  void idle(idle_governor::step step) noexcept;
  // Busy-cycle accounting (lcore_stats::busy_cycles).
  void count_busy_pass(std::uint64_t start, std::uint64_t end) noexcept;
  bool tx_buffered() const noexcept;
  void flush_after_empty_pass() noexcept;
  port_state* state_for_port_id(std::uint16_t port_id) noexcept;
  void drop(port_state& ps, rte_mbuf** pkts, std::uint16_t n, drop_reason why) noexcept;
  void drop_one(std::uint8_t port_index, rte_mbuf* m, drop_reason why) noexcept;
  // 1. stage_receive.cc: receive and classify.
  unsigned poll_port(port_state& ps) noexcept;
  void classify_burst(port_state& ps, rte_mbuf** pkts, std::uint16_t n, sub_bursts& out) noexcept;
  void to_control(port_state& ps, up_ring ring, rte_mbuf** pkts, std::uint16_t n) noexcept;
  // Handshakes: junk dropped, the rest up the handshake or the unproven ring.
  void handshakes_to_control(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  // 2. stage_decrypt.cc: the WireGuard transport sub-burst.
  void receive_transport(port_state& ps, rte_mbuf** pkts, std::uint16_t n, bool relayed = false) noexcept;
  unsigned receive_relayed() noexcept;
  port_state* relay_port() noexcept;
  enum class replay_verdict : std::uint8_t { fresh, replayed, handover };
  void check_replay(const crypto::aead_op* ops, wg_keypair* const* kps, std::uint16_t n, replay_verdict* verdicts) noexcept;
  // Authenticated packets of one keypair in a row (a burst from one peer is
  // one run): admitted together, so the peer's stamps, counters and
  // endpoint are touched once per run, not once per packet.
  struct admitted_run {
    wg_keypair* kp = nullptr;
    rte_mbuf* last = nullptr;               // the run's latest packet: where the peer is now
    const std::uint8_t* last_frame = nullptr;  // its outer frame (the mbuf is stripped to the inner packet by then)
    std::uint16_t last_l4 = 0;
    std::uint32_t packets = 0;
    std::uint64_t bytes = 0;
  };
  void admit_decrypted(port_state& ps, const admitted_run& run, bool relayed) noexcept;
  // The peer's endpoint `known` is not where the run came from (or the run
  // came through a relay): the control thread is told where it is now.
  void note_endpoint(port_state& ps, const admitted_run& run, bool relayed, const wg_endpoint* known) noexcept;
  void post_event(port_state& ps, const wg_event& ev) noexcept;
  // `from[i]`: the peer packet i came from.
  void look_up_flows(rte_mbuf* const* pkts, wg_peer* const* from, std::uint16_t n, burst_lookups& out) noexcept;
  static void prefetch_flow(const flow& f, unsigned worker_index, bool from_tailnet) noexcept;
  // 3. stage_deliver.cc: where an inner packet goes.
  void deliver_inner(port_state& ps, rte_mbuf* m, wg_peer* peer, const std::optional<inner_info>& info,
                     const flow_lookup& flow_hint, outbound& out) noexcept;
  void deliver_from_tailnet(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer, const flow_lookup& flow_hint,
                            outbound& out) noexcept;
  // An inner packet for lopower's own services on the control thread (DNS,
  // replies to its pings), on the inner ring.
  void inner_to_control(port_state& ps, rte_mbuf* m) noexcept;
  // stage_fragments.cc: reassembly before delivery, fragmenting on the way out.
  void start_reassembly();
  void deliver_fragment(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* from, outbound& out) noexcept;
  bool reassemble(port_state& ps, rte_mbuf*& m, inner_info& info, const wg_peer* from) noexcept;
  // To `peer` whole, or cut up when bigger than `mtu` (send_oversized).
  // Inline: nearly every packet fits, and is one push onto the burst.
  void send_inner(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer, std::uint16_t mtu,
                  outbound& out) noexcept {
    if (info.length <= mtu) return push_out(ps, m, peer, out);
    send_oversized(ps, m, info, peer, mtu, out);
  }
  void send_oversized(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer, std::uint16_t mtu,
                      outbound& out) noexcept;
  void expire_fragments(std::uint64_t now) noexcept;
  // 4. stage_splice.cc: device flows onto the tailnet and back.
  void splice_out(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                  outbound& out) noexcept;
  bool splice_in(port_state& ps, rte_mbuf* m, const inner_info& info, const flow_lookup& flow_hint, outbound& out) noexcept;
  // The tailnet peer whose route holds the packet's destination (nullptr:
  // beyond the tailnet), through route_memo_.
  wg_peer* route_toward(const tailnet_view& view, const inner_info& info) noexcept {
    std::uint64_t dst[2] = {0, 0};  // an IPv4 address in the first word's low half
    if (info.ipv6) {
      std::memcpy(dst, info.dst, 16);
    } else {  // a copy of a fixed size each way: a variable one was a third of this function
      std::uint32_t v4;
      std::memcpy(&v4, info.dst, 4);
      dst[0] = v4;
    }
    if (route_memo_.view == &view && route_memo_.ipv6 == info.ipv6 && route_memo_.dst[0] == dst[0] &&
        route_memo_.dst[1] == dst[1])
      return route_memo_.peer;
    route_memo_ = {&view, info.ipv6, {dst[0], dst[1]}, view.route(info.ipv6, info.dst)};
    return route_memo_.peer;
  }
  // A flow made for a packet, or why none was: the packet's drop reason.
  struct made_flow {
    flow* f = nullptr;
    drop_reason refused = drop_reason::splice_flow_limit;
  };
  made_flow create_flow(const splice::flow_key& key, const tailnet_view& view, wg_peer* device) noexcept;
  // A port for a new flow; a refusal is the flow's (splice_flow_limit when
  // the allocator is at max_flows, splice_ports_exhausted toward one far end).
  std::optional<drop_reason> allocate_port(splice::flow_key& reply_key, splice::port_allocator& alloc) noexcept;
  void release_port(const splice::flow_key& reply_key) noexcept;
  // stage_inbound.cc: flows tailnet peers open toward devices (route mode),
  // their replies, and device-to-device traffic.
  void inbound_from_tailnet(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer,
                            const tailnet_view& view, const flow_lookup& flow_hint, outbound& out) noexcept;
  void inbound_on_flow(port_state& ps, rte_mbuf* m, const inner_info& info, flow& f, outbound& out) noexcept;
  // A device's packet on a tailnet peer's inbound flow, rewritten and sent
  // to the peer (true), or not such a reply (false). The caller asks only
  // for packets not looked up or of a flow that is not spliced.
  bool inbound_reply(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                     outbound& out) noexcept;
  made_flow create_inbound_flow(const splice::flow_key& opened, wg_peer* device, const std::uint8_t* device_addr,
                                std::uint16_t device_port, bool snat) noexcept;
  // A tailnet packet to a forwarded port of lopower's tailnet address:
  // carried to the device (true), or not a forward's (false).
  bool forward_in(port_state& ps, rte_mbuf* m, const inner_info& info, const tailnet_view& view, const flow_lookup& flow_hint,
                  outbound& out) noexcept;
  const forward_table* forwards() const noexcept {
    return setup_.forwards ? setup_.forwards->load(std::memory_order_acquire) : nullptr;
  }
  std::optional<drop_reason> allocate_tailnet_port(flow& f) noexcept;
  const device_directory* device_dir() const noexcept {
    return setup_.devices ? setup_.devices->load(std::memory_order_acquire) : nullptr;
  }
  // A device's packet to another device's address (`to`): delivered, or refused by policy.
  void device_to_device(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* from, wg_peer* to,
                        outbound& out) noexcept;
  unsigned take_back_ports() noexcept;
  void refuse_to_device(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device,
                        splice::icmp_error_kind kind, drop_reason why, outbound& out,
                        std::uint16_t mtu = splice::tailnet_mtu) noexcept;
  static bool reuse_for(rte_mbuf* m, const std::uint8_t* data, std::uint16_t len) noexcept;
  // stage_egress.cc: a device packet no tailnet route takes: the exit node
  // to splice it to, or nullptr once it has gone out of the uplink or been
  // refused (`m` consumed). `view` is null off the tailnet.
  wg_peer* egress_peer(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const tailnet_view* view,
                       const flow_lookup& flow_hint, outbound& out) noexcept;
  made_flow make_flow(const splice::flow_key& key, const std::uint8_t* ours, wg_peer* device,
                      splice::port_allocator& alloc, bool uplink) noexcept;
  // stage_uplink.cc: device flows NATed out of the uplink port and back.
  void uplink_out(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* device, const flow_lookup& flow_hint,
                  outbound& out) noexcept;
  void receive_uplink(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  bool uplink_in(port_state& ps, rte_mbuf* m, outbound& out) noexcept;
  bool next_hop_mac(const ip_address& dst, rte_ether_addr& mac) noexcept;
  void send_on_uplink(rte_mbuf* m, bool ipv6, const rte_ether_addr& hop_mac, std::uint8_t port_index) noexcept;
  void icmp_error_out(rte_mbuf* m, const inner_info& info, wg_peer* device, const ip_address& ours,
                      const rte_ether_addr& hop_mac, std::uint8_t port_index) noexcept;
  splice::port_allocator* allocator_for(const splice::flow_key& released) noexcept;
  void start_uplink();
  // 5. stage_encrypt_send.cc: sealed and out, or staged for the control thread.
  // Onto the burst encrypt_and_send seals. A packet cut up adds more than
  // one, so a full burst is sealed and sent first.
  void push_out(port_state& ps, rte_mbuf* m, wg_peer* peer, outbound& out) noexcept {
    if (out.count == max_burst) {
      encrypt_and_send(ps.port.index, out);
      out.count = 0;
    }
    out.pkts[out.count] = m;
    out.peers[out.count++] = peer;
  }
  void encrypt_and_send(std::uint8_t port_index, outbound& out) noexcept;
  void stage(std::uint8_t port_index, rte_mbuf* m, const wg_peer* peer) noexcept;
  void relay_up(std::uint8_t port_index, rte_mbuf* m, const wg_peer* peer, std::uint16_t region) noexcept;
  void transmit(port_state& ps, rte_mbuf* m) noexcept { rte_eth_tx_buffer(ps.port.port_id, setup_.queue, ps.tx_port, m); }
  unsigned drain_control_ring() noexcept;
  // stage_exception.cc: the host kernel's side.
  void learn_neighbours(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  void to_kernel(port_state& ps, rte_mbuf** pkts, std::uint16_t n) noexcept;
  unsigned poll_tap(port_state& ps) noexcept;

  worker_setup setup_;
  int socket_ = 0;           // the worker lcore's NUMA socket: its TX buffers and reassembly table live there
  handshake_load handshake_load_;
  int classify_field_ = -1;  // mbuf dynamic field for control-bound frames' verdict (control_frame.h)
  std::unique_ptr<crypto::aead_backend> aead_;
  std::vector<port_state> ports_;
  // When the current burst (transport data, or the uplink's replies) began
  // to be processed: the arrival stamp of its packets, for peers and flows
  // (one clock read per burst, not per packet).
  std::uint64_t burst_tsc_ = 0;
  std::uint64_t drain_cycles_ = 0;
  std::uint64_t last_drain_ = 0;
  lcore_stats stats_;
  sub_bursts subs_;
  burst_lookups lookups_;  // receive_transport's, for the sub-burst it delivers
  // The route the last device packet toward the tailnet took (route_toward):
  // a burst's packets mostly go to the same few tailnet hosts (IoT devices
  // to their broker), and its lookup is a search of every prefix length's
  // table. Valid for `view` only, and only within the poll pass it was
  // taken in: the view outlives the pass (RCU; the worker reports its
  // quiescent states between passes), not the next quiescent state, after
  // which another view may sit at the same address. poll_once forgets it.
  struct route_memo {
    const tailnet_view* view = nullptr;
    bool ipv6 = false;
    std::uint64_t dst[2]{};  // as route_toward reads the address
    wg_peer* peer = nullptr;
  };
  route_memo route_memo_;
  drop_reason reasons_[max_burst];
  std::unique_ptr<splice::port_allocator> ports_alloc_;  // when splicing
  std::unique_ptr<fragments::reassembler> reassembly_;    // when reassembly_datagrams != 0
  std::uint32_t next_fragment_id_ = 0;                    // numbers the packets this worker cuts up
  // The uplink, as this worker uses it (start_uplink, from setup_.uplink).
  struct uplink_state {
    port_state* port = nullptr;                 // in ports_
    std::optional<ip_address> v4, v6;           // the port's addresses flows are NATed to
    std::optional<ip_address> gateway4, gateway6;
    std::vector<ip_prefix> on_link;             // the port's prefixes: reached without the gateway
    std::uint16_t mtu = 1500;
    // The last next hop looked up, reused for a millisecond: most flows go
    // through the one gateway, so the neighbour table is read about once a
    // millisecond, not once a packet.
    ip_address hop{};
    rte_ether_addr hop_mac{};
    std::uint64_t hop_until_tsc = 0;
  };
  std::optional<uplink_state> uplink_;
  std::unique_ptr<splice::port_allocator> uplink_ports_alloc_;  // NAT ports on the uplink address
};

}  // namespace lopower
