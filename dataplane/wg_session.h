#pragma once
// WireGuard state the workers read: peers and their keypairs. The control
// thread creates and retires them (RCU/QSBR). What the workers write here:
//   - a keypair's send counter (one atomic add per run of packets to it) and
//     replay window (checked by the one worker that receives the keypair,
//     else under replay_lock, taken once per run of packets from it in a
//     burst: replay_guard.h) -- the only shared read-modify-writes on the
//     data path;
//   - a keypair's `confirmed` flag and a peer's timer stamps (plain relaxed
//     stores: last writer wins, any recent value will do);
//   - a peer's traffic counters (shared_counter: a slot per worker, summed
//     on read) and a device's flow count (an atomic add per flow created).

#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/lcore_stats.h"
#include "dataplane/replay_guard.h"
#include "lopower/byte_order.h"
#include "lopower/egress_mode.h"
#include "lopower/net_addr.h"
#include "lopower/replay_window.h"

namespace lopower {

// Where a peer is: the last authenticated packet's source, and the port
// and local address it arrived on. Replaced as a whole (RCU) on roaming.
struct wg_endpoint {
  std::uint16_t port_id = 0;
  bool ipv6 = false;
  std::uint8_t peer_mac[6]{};     // next hop: the source MAC of that packet
  std::uint8_t local_mac[6]{};
  std::uint8_t peer_ip[16]{};     // IPv4 in the first four bytes
  std::uint8_t local_ip[16]{};
  std::uint16_t peer_port_be = 0;
  std::uint16_t local_port_be = 0;
  // Non-zero: the peer is reached through DERP region N instead (a tailnet
  // peer with no direct path): the workers hand its sealed packets to the
  // control thread (relay_packet), which frames them for the relay; only
  // port_id (the port its traffic is counted on) means anything then.
  std::uint16_t relay_region = 0;

  bool same_path(const wg_endpoint& o) const noexcept;
};

// "198.18.40.11:41641" or "[fd00::11]:41641": the peer side of `ep`.
std::string endpoint_string(const wg_endpoint& ep);

struct wg_peer;

// A tailnet peer's AllowedIPs (its addresses, and the routes lopower accepts
// from it): inbound sources must fall inside. Immutable once published;
// replaced as a whole (RCU) when the netmap changes them.
struct allowed_prefixes {
  std::vector<ip_prefix> prefixes;
  // Inline, as ip_prefix::contains: it runs for every packet a tailnet peer sends.
  bool contains(bool ipv6, const std::uint8_t* addr) const noexcept {
    // Loaded from the packet as words (ip_prefix::contains says why).
    const std::uint64_t words[2] = {ipv6 ? load_be64(addr) : std::uint64_t{load_be32(addr)} << 32,
                                    ipv6 ? load_be64(addr + 8) : 0};
    const ip_family family = ipv6 ? ip_family::v6 : ip_family::v4;
    for (const ip_prefix& p : prefixes)
      if (p.contains(family, words)) return true;
    return false;
  }
};

struct wg_keypair {
  std::uint8_t send_key[32]{};
  std::uint8_t receive_key[32]{};
  std::uint32_t local_index = 0;   // what peers put in the receiver field: our table key
  std::uint32_t remote_index = 0;  // what we put in the receiver field
  bool initiator = false;
  std::uint64_t created_tsc = 0;
  wg_peer* peer = nullptr;

  // Every lcore that sends for this peer takes counters from here: one
  // atomic add per run of packets to this keypair, not per packet (the
  // control thread's keepalives take one each).
  std::atomic<std::uint64_t> send_counter{0};
  // Guards `replay` once more than one worker has received this keypair
  // (replay_owner says when); RSS keeps a peer's packets on one queue, so
  // that is the moment a peer roams between queues. The decrypt stage takes
  // it once per run of consecutive same-keypair packets in a burst
  // (stage_decrypt.cc, worker::check_replay).
  replay_guard replay_owner;
  rte_spinlock_t replay_lock = RTE_SPINLOCK_INITIALIZER;
  replay_window replay;
  std::atomic<bool> confirmed{false};  // responder's keypair: set by the first data packet

  ~wg_keypair();
};

struct wg_peer {
  std::uint32_t id = 0;  // unique among every interface's peers (names staged packets)
  // Cryptokey routing for a device: its inner source must be one of these.
  bool has_v4 = false, has_v6 = false;
  std::uint32_t v4_be = 0;
  std::uint8_t v6[16]{};

  std::atomic<wg_keypair*> current{nullptr};      // used to send
  std::atomic<const wg_endpoint*> endpoint{nullptr};
  std::atomic<bool> removed{false};
  // A tailnet peer (the node-key interface) rather than a device: its inner
  // packets are checked against `allowed` and the tailnet's packet filter.
  bool tailnet = false;
  std::atomic<const allowed_prefixes*> allowed{nullptr};

  // Timer inputs: the workers stamp, the control thread's timers decide.
  std::atomic<std::uint64_t> last_rx_tsc{0};
  std::atomic<std::uint64_t> last_data_rx_tsc{0};
  std::atomic<std::uint64_t> last_tx_tsc{0};
  // Traffic: the workers add to their own slots, the control thread (its
  // keepalives and pings) to the shared one; load() sums them.
  shared_counter rx_bytes, tx_bytes, rx_packets, tx_packets;
  // A device's spliced flows (its limit is per device): an atomic add when a
  // worker creates one, a subtract when the control thread expires one.
  std::atomic<std::uint32_t> flows{0};
  // A device's DNS queries to lopower are paced on the worker (GCRA: when
  // the next is due), so one device's flood cannot fill the ring every
  // device's queries take. A device's packets stay on one worker, so a
  // relaxed load and store (no read-modify-write) are enough.
  std::atomic<std::uint64_t> dns_due_tsc{0};
  // Where a device's packets to destinations outside the tailnet go (its
  // own mode, else [egress] mode): the control thread stores it when the
  // device is added or `device set --egress` changes it; a worker loads it
  // (relaxed) only for packets no tailnet route takes.
  std::atomic<egress_mode> egress{egress_mode::none};

  // One query at `now` (tsc), `interval` cycles apart on average, up to
  // `burst` at once; an interval of 0 lets everything through.
  bool allow_dns_query(std::uint64_t now, std::uint64_t interval, std::uint32_t burst) noexcept {
    if (interval == 0) return true;
    const std::uint64_t due = std::max(dns_due_tsc.load(std::memory_order_relaxed), now);
    if (due > now + interval * (burst - 1)) return false;
    dns_due_tsc.store(due + interval, std::memory_order_relaxed);
    return true;
  }

  bool source_allowed_v4(std::uint32_t src_be) const noexcept { return has_v4 && src_be == v4_be; }
  wg_peer() = default;
  wg_peer(const wg_peer&) = delete;
  wg_peer& operator=(const wg_peer&) = delete;
  ~wg_peer();  // frees `allowed` (retired peers are deleted after their grace period)
  bool source_allowed_v6(const std::uint8_t* src) const noexcept;
};

// Events the workers report to the control thread (one ring per worker).
struct wg_event {
  enum kind_t : std::uint8_t { keypair_confirmed = 1, endpoint_changed = 2 } kind;
  std::uint8_t reserved[3]{};
  std::uint32_t local_index = 0;  // the keypair concerned
  wg_endpoint endpoint;           // endpoint_changed: the new one
};
static_assert(sizeof(wg_event) % 4 == 0);

// An inner packet ready to encrypt for a peer that has no current keypair
// (or no endpoint) yet: the worker hands it up instead of dropping it, and
// the control thread holds it until a handshake completes (WireGuard's
// staged packets). The peer is named by its id, never by pointer: it may be
// retired while the packet waits in the ring.
struct staged_packet {
  rte_mbuf* mbuf = nullptr;
  std::uint32_t peer_id = 0;
  std::uint32_t reserved = 0;
};
static_assert(sizeof(staged_packet) % 8 == 0);

// A sealed WireGuard message (the mbuf holds it from its first byte, no
// outer headers) for a peer reached through DERP: the worker hands it up,
// the control thread sends it to the peer's node key on the region.
struct relay_packet {
  rte_mbuf* mbuf = nullptr;
  std::uint32_t peer_id = 0;
  std::uint16_t region = 0;
  std::uint16_t reserved = 0;
};
static_assert(sizeof(relay_packet) % 8 == 0);

}  // namespace lopower
