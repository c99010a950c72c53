// Stage 5, encrypt and send: inner packets bound for peers collect in the
// burst's `outbound` (worker::push_out); encrypt_and_send pads each, writes the
// WireGuard transport header (wg::write_data_header) with counters taken
// for a whole run of the same keypair at once, seals the lot with one
// backend call, writes the outer Ethernet/IP/UDP headers
// (write_outer_headers) and queues each frame on the TX buffer of the port
// its peer is reached through. A peer with no session yet gets its packets
// staged for the control thread instead. The TX buffers (one per port and
// TAP, on the worker's NUMA socket) are flushed when a poll pass finds the
// queues empty (worker::run) and at least every tx_drain_us under load; the
// control plane's own frames leave here too.

#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/mbuf_edit.h"
#include "dataplane/outer_headers.h"
#include "dataplane/worker.h"
#include "lopower/byte_order.h"
#include "lopower/wireguard_messages.h"

namespace lopower {
namespace {

constexpr std::uint8_t default_ttl = 64;
constexpr std::uint8_t ipproto_udp = 17;

// DPDK's checksum helpers sum 16-bit words as they lie in memory, so their
// result is stored as is, not byte-swapped.
void store_checksum(std::uint8_t* p, std::uint16_t sum) { std::memcpy(p, &sum, 2); }

// Packets sealed for one peer in a row (a burst's packets to one tailnet
// peer, or to one device): the peer's timer stamp and traffic counters are
// written once for the lot, not once per packet.
class sent_tally {
 public:
  sent_tally(unsigned worker_index, std::uint64_t now) : worker_(worker_index), now_(now) {}
  sent_tally(const sent_tally&) = delete;
  sent_tally& operator=(const sent_tally&) = delete;
  ~sent_tally() { flush(); }

  void add(wg_peer* peer, std::uint16_t bytes) noexcept {
    if (peer != peer_) {
      flush();
      peer_ = peer;
    }
    ++packets_;
    bytes_ += bytes;
  }
  void flush() noexcept {
    if (peer_ == nullptr) return;
    peer_->last_tx_tsc.store(now_, std::memory_order_relaxed);
    peer_->tx_packets.add(worker_, packets_);
    peer_->tx_bytes.add(worker_, bytes_);
    peer_ = nullptr;
    packets_ = 0;
    bytes_ = 0;
  }

 private:
  unsigned worker_;
  std::uint64_t now_;
  wg_peer* peer_ = nullptr;
  std::uint32_t packets_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace

// The control thread keeps the packet while it finds a path and completes a
// handshake, and sends it then; the ring and its queues are bounded.
void worker::stage(std::uint8_t port_index, rte_mbuf* m, const wg_peer* peer) noexcept {
  staged_packet sp{m, peer->id, 0};
  if (setup_.staged == nullptr || rte_ring_sp_enqueue_elem(setup_.staged, &sp, sizeof sp) != 0)
    drop_one(port_index, m, drop_reason::wg_stage_ring_full);
}

// A sealed message for a peer reached through DERP: the control thread
// frames it for the relay (the ring bounds what may wait for it).
void worker::relay_up(std::uint8_t port_index, rte_mbuf* m, const wg_peer* peer, std::uint16_t region) noexcept {
  relay_packet rp{m, peer->id, region, 0};
  if (setup_.relay_out == nullptr || rte_ring_sp_enqueue_elem(setup_.relay_out, &rp, sizeof rp) != 0)
    drop_one(port_index, m, drop_reason::relay_ring_full);
}

// Drops are counted on `port_index`, the port the triggering traffic came in on.
void worker::encrypt_and_send(std::uint8_t port_index, outbound& out) noexcept {
  crypto::aead_op ops[max_burst];
  const wg_endpoint* eps[max_burst];
  const wg_peer* sent_to[max_burst];
  rte_mbuf* ready[max_burst];
  std::uint16_t n = 0;
  wg_keypair* run_kp = nullptr;
  std::uint64_t run_next = 0, run_end = 0;
  sent_tally sent(setup_.worker_index, rte_rdtsc());
  for (std::uint16_t i = 0; i < out.count; ++i) {
    rte_mbuf* m = out.pkts[i];
    wg_peer* peer = out.peers[i];
    wg_keypair* kp = peer->current.load(std::memory_order_acquire);
    const wg_endpoint* ep = peer->endpoint.load(std::memory_order_acquire);
    if (kp == nullptr || ep == nullptr) {  // held until a handshake completes: nothing here waits
      stage(port_index, m, peer);
      continue;
    }
    // Counters for a run of packets to the same keypair come from one atomic add.
    if (kp != run_kp || run_next == run_end) {
      unsigned run = 1;
      while (i + run < out.count && out.peers[i + run]->current.load(std::memory_order_relaxed) == kp) ++run;
      run_next = kp->send_counter.fetch_add(run, std::memory_order_relaxed);
      run_end = run_next + run;
      run_kp = kp;
    }
    const std::uint16_t plain = static_cast<std::uint16_t>(m->data_len);
    const std::uint16_t padded = static_cast<std::uint16_t>(wg::padded_size(plain));
    const unsigned outer = ep->relay_region != 0 ? 0 : outer_header_size(ep->ipv6);  // the relay adds its own
    auto* tail = append_to(m, static_cast<std::uint16_t>(padded - plain + wg::aead_tag_size));
    auto* head = reinterpret_cast<std::uint8_t*>(
        rte_pktmbuf_prepend(m, static_cast<std::uint16_t>(outer + sizeof(wg::message_data))));
    if (tail == nullptr || head == nullptr) {
      drop_one(port_index, m, drop_reason::no_headroom);
      continue;
    }
    // Padded to 16 bytes: lengths already a multiple of 16 (64 B, 1280 B
    // packets) need no zeros, and skip the library call for none.
    if (padded != plain) std::memset(tail, 0, padded - plain);
    std::uint8_t* msg = head + outer;
    const std::uint64_t counter = run_next++;
    wg::write_data_header(msg, kp->remote_index, counter);
    std::uint8_t* plaintext = msg + sizeof(wg::message_data);
    ops[n] = crypto::aead_op{plaintext, padded, plaintext + padded, kp->send_key, counter, false};
    eps[n] = ep;
    sent_to[n] = peer;
    ready[n++] = m;
    sent.add(peer, plain);
  }
  sent.flush();
  if (n == 0) return;
  aead_->encrypt_burst(ops, n);
  outer_header_writer outer;
  port_state* ps = nullptr;  // the last packet's: a burst's packets nearly all leave by one port
  for (std::uint16_t i = 0; i < n; ++i) {
    if (!ops[i].ok) {  // the library refused the job: a bug, not traffic; never send plaintext
      drop_one(port_index, ready[i], drop_reason::wg_encrypt_failed);
      continue;
    }
    if (eps[i]->relay_region != 0) {
      relay_up(port_index, ready[i], sent_to[i], eps[i]->relay_region);
      continue;
    }
    const auto payload = static_cast<std::uint16_t>(sizeof(wg::message_data) + ops[i].length + wg::aead_tag_size);
    outer.write(rte_pktmbuf_mtod(ready[i], std::uint8_t*), *eps[i], payload);
    if (ps == nullptr || ps->port.port_id != eps[i]->port_id) ps = state_for_port_id(eps[i]->port_id);
    if (ps == nullptr) {
      rte_pktmbuf_free(ready[i]);
      continue;
    }
    transmit(*ps, ready[i]);
  }
}

void write_outer_headers(std::uint8_t* frame, const wg_endpoint& ep, std::uint16_t payload_length) noexcept {
  if (!ep.ipv6) {
    outer_header_writer v4;
    return v4.write(frame, ep, payload_length);
  }
  std::memcpy(frame, ep.peer_mac, 6);
  std::memcpy(frame + 6, ep.local_mac, 6);
  store_be16(frame + 12, 0x86dd);
  std::uint8_t* ip = frame + 14;
  const std::uint16_t udp_len = static_cast<std::uint16_t>(8 + payload_length);
  ip[0] = 0x60;
  ip[1] = ip[2] = ip[3] = 0;
  store_be16(ip + 4, udp_len);
  ip[6] = ipproto_udp;
  ip[7] = default_ttl;
  std::memcpy(ip + 8, ep.local_ip, 16);
  std::memcpy(ip + 24, ep.peer_ip, 16);
  std::uint8_t* udp = ip + 40;
  std::memcpy(udp, &ep.local_port_be, 2);
  std::memcpy(udp + 2, &ep.peer_port_be, 2);
  store_be16(udp + 4, udp_len);
  store_be16(udp + 6, 0);
  // IPv6 requires the UDP checksum. Over IPv4 it is optional (RFC 768: zero
  // means none) and WireGuard's AEAD already authenticates every byte that
  // matters, so the full pass over the payload is saved there.
  store_checksum(udp + 6, rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(ip), udp));
}

namespace {

// What every IPv4 frame lopower sends carries from the ethertype to the
// header checksum: IPv4, IHL 5, no DSCP, the lengths (written per frame) and
// the identification zero, don't fragment, TTL, UDP, the checksum zero.
constexpr std::uint8_t v4_fixed[14] = {0x08, 0x00, 0x45, 0, 0, 0, 0, 0, 0x40, 0, default_ttl, ipproto_udp, 0, 0};
// Their 16-bit words summed as they lie in memory (store_checksum says why).
const std::uint32_t v4_fixed_sum = __rte_raw_cksum(v4_fixed + 2, sizeof v4_fixed - 2, 0);

}  // namespace

// Written directly (not through write_outer_headers and a second sum): among
// many devices every frame is to another endpoint, so this runs per frame.
void outer_header_writer::build(const wg_endpoint& ep) noexcept {
  std::memcpy(v4_, ep.peer_mac, 6);
  std::memcpy(v4_ + 6, ep.local_mac, 6);
  std::memcpy(v4_ + 12, v4_fixed, sizeof v4_fixed);
  std::uint8_t* ip = v4_ + 14;
  std::memcpy(ip + 12, ep.local_ip, 4);
  std::memcpy(ip + 16, ep.peer_ip, 4);
  std::memcpy(ip + 20, &ep.local_port_be, 2);
  std::memcpy(ip + 22, &ep.peer_port_be, 2);
  store_be16(ip + 24, 0);  // the UDP length, per frame
  store_be16(ip + 26, 0);  // no UDP checksum (write_outer_headers says why)
  ip_sum_ = __rte_raw_cksum(ip + 12, 8, v4_fixed_sum);
  built_for_ = &ep;
}

void outer_header_writer::write(std::uint8_t* frame, const wg_endpoint& ep, std::uint16_t payload_length) noexcept {
  if (ep.ipv6) return write_outer_headers(frame, ep, payload_length);
  if (&ep != built_for_) build(ep);
  std::memcpy(frame, v4_, v4_size);
  std::uint8_t* ip = frame + 14;
  const auto udp_len = static_cast<std::uint16_t>(8 + payload_length);
  const auto ip_len = static_cast<std::uint16_t>(20 + udp_len);
  store_be16(ip + 2, ip_len);
  store_be16(ip + 20 + 4, udp_len);
  // The sum is of the words as they lie in memory (store_checksum): the
  // length enters as its big-endian bytes read natively.
  std::uint16_t len_word;
  std::memcpy(&len_word, ip + 2, 2);
  store_checksum(ip + 10, static_cast<std::uint16_t>(~__rte_raw_cksum_reduce(ip_sum_ + len_word)));
}

// Frames the control plane wants sent (handshake replies, keepalives, disco).
unsigned worker::drain_control_ring() noexcept {
  if (setup_.from_control == nullptr) return 0;
  rte_mbuf* pkts[max_burst];
  const unsigned n = rte_ring_sc_dequeue_burst(setup_.from_control, reinterpret_cast<void**>(pkts), setup_.burst_size, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    port_state* ps = state_for_port_id(pkts[i]->port);
    if (ps == nullptr) {
      rte_pktmbuf_free(pkts[i]);  // the control plane named a port this worker does not serve
      continue;
    }
    transmit(*ps, pkts[i]);
  }
  return n;
}

void worker::flush() noexcept {
  for (port_state& ps : ports_) {
    rte_eth_tx_buffer_flush(ps.port.port_id, setup_.queue, ps.tx_port);
    if (ps.tx_tap != nullptr) rte_eth_tx_buffer_flush(ps.port.tap_id, setup_.queue, ps.tx_tap);
  }
  last_drain_ = rte_rdtsc();
}

}  // namespace lopower
