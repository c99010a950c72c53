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
// counters that used. Passive keepalives are the data path's business too.

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

// What the node saw (for the loadgen's report and the tests).
struct tailnet_node_counters {
  std::uint64_t initiations_sent = 0, initiations_received = 0, responses_sent = 0, responses_received = 0,
                cookie_replies_received = 0, handshakes_completed = 0, disco_pings_sent = 0,
                disco_pings_received = 0, disco_pongs_sent = 0, disco_pongs_received = 0, call_me_maybe_received = 0,
                keepalives_sent = 0;
  // Dropped: transport data (the data path's), anything before lopower is
  // in the netmap, malformed, disco not from lopower's disco key or not
  // opening, a ping naming another node key, a pong to no ping of ours, a
  // cookie reply to no initiation in flight, a bad MAC1, a handshake message
  // the Noise engine refused.
  std::uint64_t transport_ignored = 0, not_ready = 0, malformed = 0, disco_not_from_lopower = 0,
                disco_undecryptable = 0, disco_ping_for_another_key = 0, disco_unexpected_pong = 0,
                cookie_reply_unexpected = 0, handshake_invalid_mac = 0, handshake_refused = 0;
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
