#include "dataplane/fragments/reassembler.h"

#include <rte_ip.h>

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace lopower::fragments {
namespace {

// The table's shape: buckets of 16 entries, two candidate buckets per key,
// eight entries for each datagram the ledger lets in, so that both of a
// key's buckets being full is next to impossible. Its limit is twice the
// ledger's: a datagram the ledger forgot may linger in the table until the
// table's own expiry comes by.
constexpr std::uint32_t bucket_entries = 16;
// One call into the table puts at most a datagram and a fragment on the
// death row.
constexpr std::uint32_t death_row_room = RTE_IP_FRAG_DEATH_ROW_MBUF_LEN - (max_fragments + 1);
// Datagrams are looked for this many times per timeout.
constexpr std::uint64_t sweeps_per_timeout = 20;

drop_reason reason_for(admission a) {
  switch (a) {
    case admission::duplicate: return drop_reason::fragment_duplicate;
    case admission::given_up: return drop_reason::fragment_overlap;
    case admission::owner_limit: return drop_reason::fragment_peer_limit;
    default: return drop_reason::fragment_table_full;
  }
}

}  // namespace

reassembler::reassembler(const reassembly_limits& limits, std::uint64_t seed, int socket_id)
    : limits_(limits),
      ledger_(limits.ledger, seed),
      sweep_interval_(std::max<std::uint64_t>(limits.ledger.timeout / sweeps_per_timeout, 1)) {
  const std::uint32_t datagrams = std::max<std::uint32_t>(limits.ledger.max_datagrams, 1);
  const std::uint32_t buckets = std::bit_ceil(std::max<std::uint32_t>(datagrams / 4, 1));
  table_ = rte_ip_frag_table_create(buckets, bucket_entries, datagrams * 2, limits.ledger.timeout, socket_id);
  if (table_ == nullptr) throw std::runtime_error("cannot create the IP reassembly table");
}

reassembler::~reassembler() {
  rte_ip_frag_free_death_row(&death_row_, 0);
  rte_ip_frag_table_destroy(table_);
}

void reassembler::make_room_on_death_row() noexcept {
  if (death_row_.cnt > death_row_room) rte_ip_frag_free_death_row(&death_row_, prefetch);
}

// The table's own expiry stops when the death row has no room for the next
// datagram's fragments: go on until it stopped for another reason.
void reassembler::expire_table(std::uint64_t now) noexcept {
  for (;;) {
    rte_ip_frag_table_del_expired_entries(table_, &death_row_, now);
    const bool stopped_for_room = death_row_.cnt > death_row_room;
    rte_ip_frag_free_death_row(&death_row_, prefetch);
    if (!stopped_for_room) return;
  }
}

// The table's chain as the path wants it: one segment with room left for
// WireGuard's trailer, and the IPv4 header checksum it leaves at zero.
rte_mbuf* reassembler::whole_packet(rte_mbuf* chain, drop_reason& why) noexcept {
  const std::uint32_t rest = chain->pkt_len - chain->data_len;
  if (rte_pktmbuf_tailroom(chain) < rest + limits_.tailroom || rte_pktmbuf_linearize(chain) != 0) {
    rte_pktmbuf_free(chain);
    why = drop_reason::fragment_too_big;
    return nullptr;
  }
  auto* ip = rte_pktmbuf_mtod(chain, rte_ipv4_hdr*);
  if ((ip->version_ihl >> 4) == 4) {
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
  }
  return chain;
}

reassembly_outcome reassembler::add(rte_mbuf* m, const fragment_view& f, const void* owner, std::uint8_t port,
                                    std::uint64_t now, std::uint32_t share) noexcept {
  reassembly_outcome out;
  const admission_result a = ledger_.admit(f, owner, port, now, share);
  out.timed_out_port = a.timed_out_port;
  out.timed_out = a.timed_out_fragments;
  if (a.verdict != admission::held && a.verdict != admission::complete) {
    rte_pktmbuf_free(m);
    out.kind = reassembly_outcome::dropped;
    out.why = reason_for(a.verdict);
    return out;
  }
  make_room_on_death_row();
  m->l2_len = 0;
  m->l3_len = f.header_length;
  rte_mbuf* chain;
  if (f.key.family == ip_family::v6) {
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv6_hdr*);
    chain = rte_ipv6_frag_reassemble_packet(table_, &death_row_, m, now, ip, reinterpret_cast<rte_ipv6_fragment_ext*>(ip + 1));
  } else {
    chain = rte_ipv4_frag_reassemble_packet(table_, &death_row_, m, now, rte_pktmbuf_mtod(m, rte_ipv4_hdr*));
  }
  if (a.verdict == admission::held) {
    if (chain == nullptr) return out;
    ledger_.forget(f.key);  // the table finished a datagram the ledger thought unfinished
  } else if (chain == nullptr) {
    // The ledger saw every piece, the table did not: it had no room for one.
    out.kind = reassembly_outcome::dropped;
    out.why = drop_reason::fragment_table_full;
    return out;
  }
  out.packet = whole_packet(chain, out.why);
  out.kind = out.packet != nullptr ? reassembly_outcome::whole : reassembly_outcome::dropped;
  return out;
}

}  // namespace lopower::fragments
