#include "dataplane/fragments/fragmenter.h"

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>

namespace lopower::fragments {
namespace {

void free_all(rte_mbuf** pieces, unsigned n) {
  for (unsigned i = 0; i < n; ++i) rte_pktmbuf_free(pieces[i]);
}

// IPv4: copied straight into fresh buffers (one segment each); the pieces
// keep the packet's identification, which is ours to choose instead: the
// source is rewritten, so its sender's numbering says nothing about ours.
int cut_v4(rte_mbuf* m, std::uint16_t mtu, std::uint32_t id, rte_mbuf** pieces, unsigned max) {
  const int n = rte_ipv4_fragment_copy_nonseg_packet(m, pieces, static_cast<std::uint16_t>(max), mtu, m->pool);
  for (int i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pieces[i], rte_ipv4_hdr*);
    ip->packet_id = rte_cpu_to_be_16(static_cast<std::uint16_t>(id));
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
  }
  return n;
}

// IPv6: DPDK's pieces point into the packet (indirect segments) and carry
// identification 0; copied into their header buffer, and numbered.
int cut_v6(rte_mbuf* m, std::uint16_t mtu, std::uint32_t id, rte_mbuf** pieces, unsigned max) {
  const int n = rte_ipv6_fragment_packet(m, pieces, static_cast<std::uint16_t>(max), mtu, m->pool, m->pool);
  for (int i = 0; i < n; ++i) {
    if (rte_pktmbuf_linearize(pieces[i]) != 0) {
      free_all(pieces, static_cast<unsigned>(n));
      return -1;
    }
    auto* fh = rte_pktmbuf_mtod_offset(pieces[i], rte_ipv6_fragment_ext*, sizeof(rte_ipv6_hdr));
    fh->id = rte_cpu_to_be_32(id);
  }
  return n;
}

}  // namespace

unsigned fragment_packet(rte_mbuf* m, bool ipv6, std::uint16_t mtu, std::uint32_t id, rte_mbuf** pieces,
                         unsigned max) noexcept {
  if (m->nb_segs != 1 || max == 0) return 0;
  const int n = ipv6 ? cut_v6(m, mtu, id, pieces, max) : cut_v4(m, mtu, id, pieces, max);
  if (n <= 0) return 0;
  rte_pktmbuf_free(m);  // the pieces are copies now
  return static_cast<unsigned>(n);
}

}  // namespace lopower::fragments
