#include "tools/loadgen/traffic.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip_frag.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstring>

namespace lopower::loadgen {
namespace {

constexpr std::uint16_t first_flow_port = 10000;  // UDP source ports of the flows

rte_ipv4_hdr* write_ipv4(std::uint8_t* at, std::uint32_t src_be, std::uint32_t dst_be, std::uint8_t protocol,
                         std::uint16_t size) {
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(at);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(size);
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = protocol;
  ip->hdr_checksum = 0;
  ip->src_addr = src_be;
  ip->dst_addr = dst_be;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  return ip;
}

}  // namespace

traffic_source::traffic_source(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead)
    : opts_(opts), port_(port), fleet_(devices), aead_(aead) {}

std::size_t traffic_source::write_inner(std::uint8_t* at, const device& d, std::uint16_t size, std::uint64_t now_tsc) {
  constexpr std::size_t ip_size = sizeof(rte_ipv4_hdr), l4_size = 8;
  const unsigned flow = next_flow_;
  auto* p = reinterpret_cast<probe*>(at + ip_size + l4_size);
  p->magic = probe_magic;
  p->device = static_cast<std::uint32_t>(&d - fleet_.devices().data());
  p->sequence = sequence_++;
  p->sent_tsc = now_tsc;
  std::memset(at + ip_size + l4_size + sizeof(probe), 0, size - ip_size - l4_size - sizeof(probe));
  const std::uint16_t l4_length = static_cast<std::uint16_t>(size - ip_size);
  if (opts_.target_lopower) {
    write_ipv4(at, d.inner_ip_be, fleet_.lopower().inner_ip_be, IPPROTO_ICMP, size);
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(at + ip_size);
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
    icmp->icmp_code = 0;
    icmp->icmp_cksum = 0;
    icmp->icmp_ident = rte_cpu_to_be_16(static_cast<std::uint16_t>(flow));
    icmp->icmp_seq_nb = rte_cpu_to_be_16(static_cast<std::uint16_t>(p->sequence));
    icmp->icmp_cksum = static_cast<std::uint16_t>(~rte_raw_cksum(icmp, l4_length));
  } else {
    auto* ip = write_ipv4(at, d.inner_ip_be, opts_.target_ip_be, IPPROTO_UDP, size);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(at + ip_size);
    udp->src_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(first_flow_port + flow));
    udp->dst_port = rte_cpu_to_be_16(opts_.target_port);
    udp->dgram_len = rte_cpu_to_be_16(l4_length);
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  }
  return size;
}

unsigned traffic_source::build(rte_mbuf** out, std::uint16_t* sizes, unsigned n, std::uint64_t now_tsc) {
  std::vector<device>& devices = fleet_.devices();
  crypto::aead_op ops[burst_size];
  if (n > burst_size) n = burst_size;
  unsigned built = 0;
  while (built < n) {
    device* d = nullptr;
    for (std::size_t tried = 0; tried < devices.size() && d == nullptr; ++tried) {
      device& candidate = devices[next_device_];
      if (++next_device_ == devices.size()) {
        next_device_ = 0;
        next_flow_ = (next_flow_ + 1) % opts_.flows;  // every device's flows in turn
      }
      if (candidate.current != nullptr) d = &candidate;
    }
    if (d == nullptr) break;
    const std::uint16_t size = opts_.sizes[next_size_];
    next_size_ = (next_size_ + 1) % opts_.sizes.size();
    std::uint8_t* plain = transport_frame(port_.pool, d->path, size, out[built]);
    if (plain == nullptr) break;
    write_inner(plain, *d, size, now_tsc);
    prepare_seal(out[built], size, *d->current, ops[built]);
    sizes[built] = size;
    fleet::note_sent_data(*d, now_tsc);
    ++built;
  }
  if (built == 0) return 0;
  aead_.encrypt_burst(ops, built);
  unsigned kept = 0;
  for (unsigned i = 0; i < built; ++i) {
    if (!ops[i].ok) {
      rte_pktmbuf_free(out[i]);
      continue;
    }
    out[kept] = out[i];
    sizes[kept++] = sizes[i];
  }
  return kept;
}

receiver::receiver(const options& opts, const link_port& port, fleet& devices, crypto::aead_backend& aead)
    : opts_(opts), port_(port), fleet_(devices), aead_(aead),
      ns_per_tsc_(1e9 / static_cast<double>(rte_get_tsc_hz())) {}

bool receiver::lopower_mac(rte_ether_addr& mac) const noexcept {
  if (have_lopower_mac_) mac = lopower_mac_;
  return have_lopower_mac_;
}

bool receiver::is_wireguard_to_us(const rte_mbuf* m, const std::uint8_t*& payload, std::size_t& length) const noexcept {
  constexpr std::size_t eth_size = sizeof(rte_ether_hdr);
  const std::size_t frame_length = rte_pktmbuf_data_len(m);
  if (!rte_pktmbuf_is_contiguous(m) || frame_length < outer_size) return false;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, eth_size);
  const std::size_t ip_header = rte_ipv4_hdr_len(ip);
  if ((ip->version_ihl >> 4) != 4 || ip_header < sizeof(rte_ipv4_hdr) || ip->next_proto_id != IPPROTO_UDP ||
      ip->dst_addr != opts_.local_ip_be || rte_ipv4_frag_pkt_is_fragmented(ip) ||
      eth_size + ip_header + sizeof(rte_udp_hdr) > frame_length)
    return false;
  const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, eth_size + ip_header);
  const unsigned port = rte_be_to_cpu_16(udp->dst_port);
  const std::size_t udp_length = rte_be_to_cpu_16(udp->dgram_len);
  if (port < opts_.first_udp_port || port >= opts_.first_udp_port + fleet_.devices().size() ||
      udp_length < sizeof(rte_udp_hdr) || eth_size + ip_header + udp_length > frame_length)
    return false;
  payload = reinterpret_cast<const std::uint8_t*>(udp + 1);
  length = udp_length - sizeof(rte_udp_hdr);
  return true;
}

void receiver::count_probe(const std::uint8_t* inner, std::uint32_t length, std::uint64_t now_tsc, counters& into) {
  constexpr std::size_t l4_size = 8;
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(inner);
  if (length < sizeof(rte_ipv4_hdr) || (ip->version_ihl >> 4) != 4) {
    ++drops_.not_a_probe;
    return;
  }
  const std::size_t ip_header = rte_ipv4_hdr_len(ip);
  const std::size_t total = rte_be_to_cpu_16(ip->total_length);
  const bool echo_reply = ip->next_proto_id == IPPROTO_ICMP && total > ip_header && inner[ip_header] == RTE_IP_ICMP_ECHO_REPLY;
  const bool udp = ip->next_proto_id == IPPROTO_UDP;
  if (total > length || total < ip_header + l4_size + sizeof(probe) || !(echo_reply || udp)) {
    ++drops_.not_a_probe;
    return;
  }
  probe p;
  std::memcpy(&p, inner + ip_header + l4_size, sizeof p);
  if (p.magic != probe_magic || p.device >= fleet_.devices().size()) {
    ++drops_.not_a_probe;
    return;
  }
  ++into.delivered_packets;
  into.delivered_bytes += total;
  const std::uint64_t ticks = now_tsc > p.sent_tsc ? now_tsc - p.sent_tsc : 0;
  into.latency.record(static_cast<std::uint64_t>(static_cast<double>(ticks) * ns_per_tsc_));
}

unsigned receiver::poll(std::uint64_t loop_tsc, counters& into) {
  rte_mbuf* frames[burst_size];
  const unsigned n = rte_eth_rx_burst(port_.id, 0, frames, burst_size);
  if (n == 0) return 0;
  // Not the loop's clock: a reply can arrive in the turn its request was sent in.
  const std::uint64_t now_tsc = std::max(loop_tsc, rte_get_tsc_cycles());
  crypto::aead_op ops[burst_size];
  transport_session* sessions[burst_size];
  device* owners[burst_size];
  rte_mbuf* done[burst_size];
  rte_mbuf* handshakes[burst_size];
  unsigned queued = 0, finished = 0, handshake_count = 0;
  for (unsigned i = 0; i < n; ++i) {
    rte_mbuf* m = frames[i];
    rte_ether_addr mac;
    if (answer_arp(m, port_, opts_.local_ip_be) ||
        (tailnet_ != nullptr && answer_arp(m, port_, opts_.tailnet.ip_be))) {
      send_burst(port_, &m, 1);
      continue;
    }
    if (tailnet_ != nullptr && tailnet_->take(m, now_tsc)) continue;
    done[finished++] = m;
    if (arp_sender_mac(m, fleet_.lopower().endpoint_ip_be, mac)) {
      lopower_mac_ = mac;
      have_lopower_mac_ = true;
      continue;
    }
    const std::uint8_t* payload = nullptr;
    std::size_t length = 0;
    if (!is_wireguard_to_us(m, payload, length)) {
      ++drops_.not_for_us;
      continue;
    }
    const wg::parsed_message parsed = wg::parse_message(payload, length);
    if (parsed.response() != nullptr || parsed.cookie_reply() != nullptr) {
      handshakes[handshake_count++] = m;
      continue;
    }
    const wg::message_data* data = parsed.transport();
    const auto [owner, session] =
        data != nullptr ? fleet_.session_for(data->receiver_index.get()) : std::pair<device*, transport_session*>{};
    if (session == nullptr) {
      ++drops_.unknown_session;
      continue;
    }
    auto* sealed = const_cast<std::uint8_t*>(parsed.transport_payload());
    const auto sealed_length = static_cast<std::uint32_t>(parsed.transport_payload_length() - wg::aead_tag_size);
    ops[queued] = crypto::aead_op{sealed, sealed_length, sealed + sealed_length, session->receive_key.data(),
                                  data->counter.get(), false};
    owners[queued] = owner;
    sessions[queued++] = session;
  }
  if (tailnet_ != nullptr) tailnet_->flush(now_tsc, into);
  aead_.decrypt_burst(ops, queued);
  for (unsigned i = 0; i < queued; ++i) {
    if (!ops[i].ok) {
      ++drops_.bad_tag;
    } else if (!sessions[i]->replay.validate(ops[i].counter)) {
      ++drops_.replayed;
    } else {
      fleet::note_received(*owners[i]);
      if (ops[i].length != 0) count_probe(ops[i].data, ops[i].length, now_tsc, into);  // 0: a keepalive
    }
  }
  // After the data: a completed handshake may retire a keypair queued above.
  for (unsigned i = 0; i < handshake_count; ++i) {
    const std::uint8_t* payload = nullptr;
    std::size_t length = 0;
    if (is_wireguard_to_us(handshakes[i], payload, length)) fleet_.on_handshake_message(payload, length, now_tsc);
  }
  rte_pktmbuf_free_bulk(done, finished);
  return n;
}

}  // namespace lopower::loadgen
