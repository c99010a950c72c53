#pragma once
// lopower-loadgen's tailnet side: a minimal tailnet node, registered with
// the lab's control server, that terminates the flows lopower splices onto
// the tailnet. It speaks the control protocols only -- ts2021 register and
// map stream (lopower's own coordination client, on a thread of its own),
// disco ping/pong/call-me-maybe and the WireGuard handshake with lopower --
// and hands the session keys to the loadgen, whose data path owns the port
// and seals and opens transport data itself. No DPDK here: datagrams in and
// out are UDP payloads, addressed by peer.
//
//   tailnet_node node(opts);
//   node.start(error);                     // registered, lopower in the netmap
//   loop: node.receive(dgram, now, out);   // every non-data datagram (type != 4)
//         node.poll(now, out);             // every ~10-100 ms
//         send `out`; use node.session() to seal and open data
//
// Threads: the map stream runs on the node's own thread; receive(), poll()
// and session() may be called from one other thread (they take a mutex).
//
// The data path owns the send counter of each session, so the node sends
// no transport data of its own but one keepalive right after a handshake
// it initiated (so lopower, the responder, confirms the session without
// waiting for traffic): tailnet_session::first_send_counter says which
// counters that used. Passive keepalives are the data path's business too,
// and so are the replay window and keeping the previous session's receive
// key for the packets still in flight when `generation` moves on (the node
// hands out only the newest session).
//
// The protocols themselves are lopower_link's (lopower_link.h); this class
// adds the control server and the thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lopower::loadgen {

struct udp_endpoint {
  bool ipv6 = false;
  std::uint8_t ip[16]{};  // IPv4 in the first four bytes, network order
  std::uint16_t port = 0;  // host order
  friend bool operator==(const udp_endpoint&, const udp_endpoint&) = default;
};

struct datagram {
  udp_endpoint peer;  // where it came from (receive) or goes to (out)
  std::vector<std::uint8_t> payload;  // UDP payload only
};

// The current WireGuard keypair with lopower (changes on rekey).
struct tailnet_session {
  std::uint8_t send_key[32], receive_key[32];
  std::uint32_t local_index, remote_index;  // local: on data lopower sends us; remote: on data we send
  udp_endpoint lopower;                     // where to send data
  std::uint64_t first_send_counter = 0;     // counters below were used by the node (its keepalive)
  std::uint64_t generation = 0;             // increases with every new keypair
};

struct tailnet_node_options {
  std::string control_url, auth_key, hostname, lopower_hostname, state_dir;
  // The address:port the loadgen's port answers on (advertised as the node's endpoint).
  udp_endpoint local;
  // How long start() waits for registration and for lopower in the netmap.
  std::uint32_t start_timeout_ms = 60'000;
};

// What the node saw (for the loadgen's report and the tests). The drops:
// transport data (the data path's), anything before lopower is in the
// netmap, malformed, disco not from lopower's disco key or not opening, a
// ping naming another node key, a pong to no ping of ours, a cookie reply
// to no initiation in flight, a bad MAC1, a handshake message the Noise
// engine refused.
// X(name): the fields and their names come from this list.
#define LOPOWER_LOADGEN_TAILNET_COUNTERS(X)                                                        \
  X(initiations_sent) X(initiations_received) X(responses_sent) X(responses_received)             \
  X(cookie_replies_received) X(handshakes_completed) X(keepalives_sent)                           \
  X(disco_pings_sent) X(disco_pings_received) X(disco_pongs_sent) X(disco_pongs_received)         \
  X(call_me_maybe_received)                                                                       \
  X(transport_ignored) X(not_ready) X(malformed) X(disco_not_from_lopower) X(disco_undecryptable) \
  X(disco_ping_for_another_key) X(disco_unexpected_pong) X(cookie_reply_unexpected)               \
  X(handshake_invalid_mac) X(handshake_refused)

struct tailnet_node_counters {
#define LOPOWER_LOADGEN_TAILNET_COUNTER_FIELD(name) std::uint64_t name = 0;
  LOPOWER_LOADGEN_TAILNET_COUNTERS(LOPOWER_LOADGEN_TAILNET_COUNTER_FIELD)
#undef LOPOWER_LOADGEN_TAILNET_COUNTER_FIELD

  // Calls fn("name", value) for each counter, in the list's order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
#define LOPOWER_LOADGEN_TAILNET_COUNTER_VISIT(name) fn(#name, name);
    LOPOWER_LOADGEN_TAILNET_COUNTERS(LOPOWER_LOADGEN_TAILNET_COUNTER_VISIT)
#undef LOPOWER_LOADGEN_TAILNET_COUNTER_VISIT
  }
};

class tailnet_node {
 public:
  explicit tailnet_node(tailnet_node_options options);
  ~tailnet_node();
  tailnet_node(const tailnet_node&) = delete;
  tailnet_node& operator=(const tailnet_node&) = delete;

  // Machine/node/disco keys (kept in state_dir), ts2021 register and the
  // map stream on the node's thread; returns once lopower (by hostname) is
  // in the netmap, or false with `error` after start_timeout_ms.
  bool start(std::string& error);
  void stop();

  // Addresses: the node's tailnet IPv4/IPv6, lopower's tailnet IPv4/IPv6
  // and node endpoints (empty before start() succeeded).
  std::vector<udp_endpoint> own_addresses() const;       // port 0
  std::vector<udp_endpoint> lopower_addresses() const;   // port 0
  std::vector<udp_endpoint> lopower_endpoints() const;

  // A datagram from the port that is not transport data: handshake
  // initiations, responses and cookie replies, disco messages. Anything
  // else or malformed is dropped and counted. Replies go to `out`.
  void receive(const datagram& in, std::uint64_t now_ns, std::vector<datagram>& out);
  // Timers: disco pings to lopower's endpoints, handshake initiation and
  // rekey, the keepalive after our handshake. `now_ns`: a monotonic clock.
  void poll(std::uint64_t now_ns, std::vector<datagram>& out);
  std::optional<tailnet_session> session() const;
  tailnet_node_counters counters() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lopower::loadgen
