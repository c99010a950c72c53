#include "tools/loadgen/tailnet_path.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstring>

#include "lopower/wireguard_messages.h"
#include "tools/loadgen/traffic.h"

namespace lopower::loadgen {
namespace {

constexpr std::size_t eth_size = sizeof(rte_ether_hdr);
constexpr std::size_t ip_size = sizeof(rte_ipv4_hdr);
// WireGuard's KEEPALIVE_TIMEOUT: with nothing to send back (sink mode),
// confirm we are alive before lopower decides the session is dead.
constexpr double keepalive_after_s = 10;

const rte_ipv4_hdr* outer_ip(const rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, eth_size); }
const rte_udp_hdr* outer_udp(const rte_mbuf* m) {
  return rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, eth_size + ip_size);
}

}  // namespace

tailnet_path::tailnet_path(const options& opts, const link_port& port, bool own_port, crypto::aead_backend& aead,
                           tailnet_node& node, std::uint32_t devices)
    : opts_(opts), port_(port), aead_(aead), node_(node), devices_(devices), own_port_(own_port),
      ns_per_tsc_(1e9 / static_cast<double>(rte_get_tsc_hz())), hz_(rte_get_tsc_hz()) {}

tailnet_path::~tailnet_path() {
  rte_pktmbuf_free_bulk(backlog_, backlog_count_);
  rte_pktmbuf_free_bulk(queued_, queued_count_);
}

std::uint64_t tailnet_path::now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void tailnet_path::set_lopower_mac(const rte_ether_addr& mac) {
  lopower_mac_ = mac;
  have_lopower_mac_ = true;
}

unsigned tailnet_path::poll_port(std::uint64_t now_tsc, counters& into) {
  rte_mbuf* frames[burst_size];
  const unsigned n = rte_eth_rx_burst(port_.id, 0, frames, burst_size);
  rte_mbuf* done[burst_size];
  unsigned finished = 0;
  for (unsigned i = 0; i < n; ++i) {
    rte_mbuf* m = frames[i];
    rte_ether_addr mac;
    if (answer_arp(m, port_, opts_.tailnet.ip_be)) send_burst(port_, &m, 1);
    else if (lopower_ip_be_ != 0 && arp_sender_mac(m, lopower_ip_be_, mac)) {
      set_lopower_mac(mac);
      done[finished++] = m;
    } else if (!take(m, now_tsc)) {
      done[finished++] = m;  // not for the node: other traffic on the link
    }
  }
  rte_pktmbuf_free_bulk(done, finished);
  flush(now_tsc, into);
  return n;
}

void tailnet_path::ask_for_lopower_mac(std::uint64_t now_tsc) {
  if (!own_port_ || have_lopower_mac_ || now_tsc - last_arp_tsc_ < hz_) return;
  last_arp_tsc_ = now_tsc;
  for (const udp_endpoint& e : node_.lopower_endpoints())
    if (!e.ipv6) std::memcpy(&lopower_ip_be_, e.ip, 4);
  if (lopower_ip_be_ == 0) return;
  if (rte_mbuf* m = arp_request(port_, opts_.tailnet.ip_be, lopower_ip_be_)) send_burst(port_, &m, 1);
}

wg_endpoint tailnet_path::path_to(const udp_endpoint& peer) const noexcept {
  wg_endpoint p;
  p.port_id = port_.id;
  std::memcpy(p.local_mac, port_.mac.addr_bytes, 6);
  // lopower is the only one the node talks to, and it is on this link.
  std::memcpy(p.peer_mac, lopower_mac_.addr_bytes, 6);
  std::memcpy(p.local_ip, &opts_.tailnet.ip_be, 4);
  std::memcpy(p.peer_ip, peer.ip, 4);
  p.local_port_be = rte_cpu_to_be_16(opts_.tailnet.udp_port);
  p.peer_port_be = rte_cpu_to_be_16(peer.port);
  return p;
}

bool tailnet_path::take(rte_mbuf* m, std::uint64_t now_tsc) {
  const std::size_t frame_length = rte_pktmbuf_data_len(m);
  if (!rte_pktmbuf_is_contiguous(m) || frame_length < outer_size) return false;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  const rte_ipv4_hdr* ip = outer_ip(m);
  // lopower writes 20-byte IPv4 headers (outer_headers.h); anything else is not ours.
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || ip->version_ihl != RTE_IPV4_VHL_DEF ||
      ip->next_proto_id != IPPROTO_UDP || ip->dst_addr != opts_.tailnet.ip_be || rte_ipv4_frag_pkt_is_fragmented(ip))
    return false;
  const rte_udp_hdr* udp = outer_udp(m);
  const std::size_t udp_length = rte_be_to_cpu_16(udp->dgram_len);
  if (udp->dst_port != rte_cpu_to_be_16(opts_.tailnet.udp_port) || udp_length < sizeof(rte_udp_hdr) ||
      eth_size + ip_size + udp_length > frame_length)
    return false;
  const auto* payload = reinterpret_cast<const std::uint8_t*>(udp + 1);
  const std::size_t length = udp_length - sizeof(rte_udp_hdr);
  const wg::parsed_message parsed = wg::parse_message(payload, length);
  const wg::message_data* data = parsed.transport();
  if (data == nullptr) {
    hand_to_node(m, payload, length, ip->src_addr, rte_be_to_cpu_16(udp->src_port));
    return true;
  }
  transport_session* session = session_for(data->receiver_index.get());
  // The queue holds one RX burst and flush() follows each: never full, but never overrun either.
  if (session == nullptr || queued_count_ == burst_size) {
    ++stats_.unknown_session;
    rte_pktmbuf_free(m);
    return true;
  }
  // Trailing link padding would otherwise be resealed and sent on.
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(frame_length - (eth_size + ip_size + udp_length)));
  auto* sealed = const_cast<std::uint8_t*>(parsed.transport_payload());
  const auto sealed_length = static_cast<std::uint32_t>(parsed.transport_payload_length() - wg::aead_tag_size);
  ops_[queued_count_] = crypto::aead_op{sealed, sealed_length, sealed + sealed_length, session->receive_key.data(),
                                        data->counter.get(), false};
  sessions_[queued_count_] = session;
  queued_[queued_count_++] = m;
  last_received_tsc_ = now_tsc;
  return true;
}

// Control messages are rare (disco every few seconds, a handshake a
// minute): copied out for the node, which takes bytes, not mbufs.
void tailnet_path::hand_to_node(rte_mbuf* m, const std::uint8_t* payload, std::size_t length, std::uint32_t src_be,
                                std::uint16_t src_port) {
  datagram in;
  std::memcpy(in.peer.ip, &src_be, 4);
  in.peer.port = src_port;
  in.payload.assign(payload, payload + length);
  rte_pktmbuf_free(m);
  ++stats_.control_datagrams;
  node_.receive(in, now_ns(), out_);
  send_datagrams();
}

void tailnet_path::send_datagrams() {
  if (!have_lopower_mac_) {  // they cannot go out yet; disco and the handshake retry
    out_.clear();
    return;
  }
  for (const datagram& d : out_) {
    if (d.peer.ipv6) continue;  // the port is IPv4 only
    if (rte_mbuf* m = handshake_frame(port_.pool, path_to(d.peer), d.payload.data(), d.payload.size()))
      send_burst(port_, &m, 1);
  }
  out_.clear();
}

transport_session* tailnet_path::session_for(std::uint32_t receiver_index) noexcept {
  if (current_ && current_->keys.local_index == receiver_index) return &current_->keys;
  if (previous_ && previous_->keys.local_index == receiver_index) return &previous_->keys;
  return nullptr;
}

bool tailnet_path::is_device_probe(const std::uint8_t* inner, std::uint32_t length, std::uint16_t& total) const noexcept {
  constexpr std::size_t l4_size = sizeof(rte_udp_hdr);
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(inner);
  if (length < ip_size + l4_size + sizeof(probe) || ip->version_ihl != RTE_IPV4_VHL_DEF ||
      ip->next_proto_id != IPPROTO_UDP)
    return false;
  total = rte_be_to_cpu_16(ip->total_length);
  if (total > length || total < ip_size + l4_size + sizeof(probe)) return false;
  probe p;
  std::memcpy(&p, inner + ip_size + l4_size, sizeof p);
  return p.magic == probe_magic && p.device < devices_;
}

void tailnet_path::flush(std::uint64_t now_tsc, counters& into) {
  if (queued_count_ == 0) return;
  const unsigned n = queued_count_;
  queued_count_ = 0;
  aead_.decrypt_burst(ops_, n);
  rte_mbuf* echo[burst_size];
  crypto::aead_op echo_ops[burst_size];
  rte_mbuf* done[burst_size];
  unsigned echoes = 0, finished = 0;
  for (unsigned i = 0; i < n; ++i) {
    std::uint16_t total = 0;
    bool keep = false;
    if (!ops_[i].ok) ++stats_.bad_tag;
    else if (!sessions_[i]->replay.validate(ops_[i].counter)) ++stats_.replayed;
    else if (ops_[i].length == 0) ++stats_.keepalives_received;
    else if (!is_device_probe(ops_[i].data, ops_[i].length, total)) ++stats_.not_a_probe;
    else {
      ++stats_.opened;
      stats_.opened_bytes += total;
      if (previous_ && sessions_[i] == &previous_->keys) ++stats_.previous_key_used;
      if (opts_.tailnet.echo) {
        keep = true;
        echo[echoes] = queued_[i];
        echo_ops[echoes++] = ops_[i];
      } else {
        probe p;
        std::memcpy(&p, ops_[i].data + ip_size + sizeof(rte_udp_hdr), sizeof p);
        ++into.delivered_packets;
        into.delivered_bytes += total;
        const std::uint64_t ticks = now_tsc > p.sent_tsc ? now_tsc - p.sent_tsc : 0;
        into.latency.record(static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tsc_));
      }
    }
    if (!keep) done[finished++] = queued_[i];
  }
  rte_pktmbuf_free_bulk(done, finished);
  echo_back(echo, echo_ops, echoes);
}

// Each opened probe goes back in its own mbuf: the inner packet's addresses
// and ports swapped (neither checksum changes), resealed in place with the
// current keypair (its padding is already there, zero as lopower wrote it),
// the outer headers rewritten towards lopower.
void tailnet_path::echo_back(rte_mbuf** frames, crypto::aead_op* ops, unsigned n) {
  if (n == 0) return;
  if (!current_) {
    rte_pktmbuf_free_bulk(frames, n);
    return;
  }
  transport_session& keys = current_->keys;
  const wg_endpoint path = path_to(node_session_lopower_);
  for (unsigned i = 0; i < n; ++i) {
    std::uint8_t* inner = ops[i].data;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(inner);
    const std::uint32_t src = ip->src_addr;  // packed fields: no std::swap
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = src;
    auto* udp = reinterpret_cast<rte_udp_hdr*>(inner + ip_size);
    const std::uint16_t src_port = udp->src_port;
    udp->src_port = udp->dst_port;
    udp->dst_port = src_port;
    auto* frame = rte_pktmbuf_mtod(frames[i], std::uint8_t*);
    const auto message_length = static_cast<std::uint16_t>(rte_pktmbuf_data_len(frames[i]) - outer_size);
    write_outer_headers(frame, path, message_length);
    const std::uint64_t counter = keys.next_counter++;
    wg::write_data_header(frame + outer_size, keys.remote_index, counter);
    ops[i] = crypto::aead_op{inner, ops[i].length, inner + ops[i].length, keys.send_key.data(), counter, false};
  }
  aead_.encrypt_burst(ops, n);
  for (unsigned i = 0; i < n; ++i) {
    if (!ops[i].ok) {
      rte_pktmbuf_free(frames[i]);
      ++stats_.echo_not_sent;
    } else if (backlog_count_ < backlog_capacity) {
      backlog_[backlog_count_++] = frames[i];
    } else {
      rte_pktmbuf_free(frames[i]);
      ++stats_.echo_not_sent;
    }
  }
  send_backlog();
}

void tailnet_path::send_backlog() {
  if (backlog_count_ == 0) return;
  const unsigned sent = rte_eth_tx_burst(port_.id, 0, backlog_, static_cast<std::uint16_t>(backlog_count_));
  if (sent == 0) return;
  stats_.echoed += sent;
  last_sent_tsc_ = rte_get_tsc_cycles();
  std::memmove(backlog_, backlog_ + sent, (backlog_count_ - sent) * sizeof(rte_mbuf*));
  backlog_count_ -= sent;
}

void tailnet_path::adopt_session(const tailnet_session& s) {
  auto next = std::make_unique<keypair>();
  std::memcpy(next->keys.send_key.data(), s.send_key, 32);
  std::memcpy(next->keys.receive_key.data(), s.receive_key, 32);
  next->keys.local_index = s.local_index;
  next->keys.remote_index = s.remote_index;
  next->keys.next_counter = s.first_send_counter;  // the node's keepalive took the ones below
  next->generation = s.generation;
  // lopower may still send on the old keypair for a while (its rekey
  // ~300 ms after the first handshake, packets in flight): keep it for opening.
  previous_ = std::move(current_);
  current_ = std::move(next);
  node_session_lopower_ = s.lopower;
  ++stats_.generations;
}

void tailnet_path::tick(std::uint64_t now_tsc) {
  ask_for_lopower_mac(now_tsc);
  node_.poll(now_ns(), out_);
  send_datagrams();
  if (const auto s = node_.session()) {
    if (!current_ || s->generation != current_->generation) adopt_session(*s);
  }
  if (!current_ || last_received_tsc_ <= last_sent_tsc_ ||
      now_tsc - last_sent_tsc_ < static_cast<std::uint64_t>(keepalive_after_s * static_cast<double>(hz_)))
    return;
  if (rte_mbuf* m = keepalive_frame(port_.pool, path_to(node_session_lopower_), current_->keys, aead_)) {
    if (send_burst(port_, &m, 1) == 1) ++stats_.keepalives_sent;
    last_sent_tsc_ = now_tsc;
  }
}

nlohmann::json tailnet_path::to_json() const {
  nlohmann::json node;
  node_.counters().for_each([&node](const char* name, std::uint64_t value) { node[name] = value; });
  const tailnet_path_counters& s = stats_;
  return {{"mode", opts_.tailnet.echo ? "echo" : "sink"},
          {"established", established()},
          {"generation", current_ ? current_->generation : 0},
          {"keypairs", s.generations},
          {"opened", s.opened},
          {"opened_bytes", s.opened_bytes},
          {"echoed", s.echoed},
          {"echo_not_sent", s.echo_not_sent},
          {"previous_key_used", s.previous_key_used},
          {"keepalives_received", s.keepalives_received},
          {"keepalives_sent", s.keepalives_sent},
          {"control_datagrams", s.control_datagrams},
          {"drops", {{"unknown_session", s.unknown_session}, {"bad_tag", s.bad_tag}, {"replayed", s.replayed},
                     {"not_a_probe", s.not_a_probe}}},
          {"node", node}};
}

}  // namespace lopower::loadgen
