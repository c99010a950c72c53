// IP fragments on a worker. Inner packets that come in pieces, from a
// device after decryption or from a tailnet peer before splice_in, are put
// together first (deliver_fragment, then back to stage_deliver.cc): the
// ports the splice goes by are in the first piece only, and the rest of the
// path wants whole packets in one segment. On the way out (send_inner, just
// before the send stage) a packet bigger than the next hop's MTU is cut up,
// as a router's would be: IPv4 without DF, IPv6 only when it came in pieces
// (the tailnet takes 1280 bytes, a device its tunnel's MTU). The reassembly
// table is the worker's own: no locks.

#include <rte_cycles.h>
#include <rte_random.h>

#include "dataplane/fragments/fragmenter.h"
#include "dataplane/inner_packet.h"
#include "dataplane/worker.h"

namespace lopower {

void worker::start_reassembly() {
  next_fragment_id_ = static_cast<std::uint32_t>(rte_rand());
  if (setup_.reassembly_datagrams == 0) return;
  fragments::reassembly_limits limits;
  limits.ledger.max_datagrams = setup_.reassembly_datagrams;
  limits.ledger.per_owner = setup_.reassembly_per_device != 0 ? setup_.reassembly_per_device : setup_.reassembly_datagrams;
  limits.ledger.timeout = rte_get_tsc_hz() / 1000 * fragments::reassembly_timeout_ms;
  reassembly_ = std::make_unique<fragments::reassembler>(limits, rte_rand(), socket_);
}

void worker::expire_fragments(std::uint64_t now) noexcept {
  if (!reassembly_) return;
  reassembly_->tick(now, [this](std::uint8_t port, std::uint16_t fragments) {
    stats_.ports[port].drops.count(drop_reason::fragment_timeout, fragments);
  });
}

// A fragment (or an IPv6 atomic fragment) from `from`: once its datagram is
// whole, delivered as if it had come whole.
void worker::deliver_fragment(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* from,
                              outbound& out) noexcept {
  inner_info whole = info;
  if (!reassemble(ps, m, whole, from)) return;
  if (from->tailnet) return deliver_from_tailnet(ps, m, whole, from, flow_lookup{}, out);
  deliver_inner(ps, m, from, whole, flow_lookup{}, out);
}

// True when `m` now holds a whole packet, described by `info`; false when
// the fragment was taken: held for the rest of its datagram, or dropped.
bool worker::reassemble(port_state& ps, rte_mbuf*& m, inner_info& info, const wg_peer* from) noexcept {
  auto* p = rte_pktmbuf_mtod(m, std::uint8_t*);
  fragments::fragment_view f;
  switch (fragments::inspect(p, info.length, f)) {
    case fragments::fragment_kind::whole:
      return true;
    case fragments::fragment_kind::malformed:
      drop_one(ps.port.index, m, drop_reason::fragment_malformed);
      return false;
    case fragments::fragment_kind::atomic:  // RFC 6946: the datagram, with a Fragment header to drop
      fragments::strip_atomic_fragment_header(p);
      rte_pktmbuf_adj(m, fragments::fragment_header_size);
      break;
    case fragments::fragment_kind::fragment: {
      if (!reassembly_) {
        drop_one(ps.port.index, m, drop_reason::fragment_table_full);
        return false;
      }
      const std::uint32_t share = from->tailnet ? setup_.reassembly_per_tailnet_peer : setup_.reassembly_per_device;
      const auto o = reassembly_->add(m, f, from, ps.port.index, rte_rdtsc(), share);
      if (o.timed_out != 0) stats_.ports[o.timed_out_port].drops.count(drop_reason::fragment_timeout, o.timed_out);
      if (o.kind == fragments::reassembly_outcome::dropped) stats_.ports[ps.port.index].drops.count(o.why);
      if (o.kind != fragments::reassembly_outcome::whole) return false;
      m = o.packet;
      break;
    }
  }
  p = rte_pktmbuf_mtod(m, std::uint8_t*);
  const auto parsed = parse_inner(p, m->data_len);
  if (!parsed || fragments::is_fragment(p, parsed->ipv6)) {  // a fragment of fragments: nobody sends that
    drop_one(ps.port.index, m, drop_reason::fragment_malformed);
    return false;
  }
  info = *parsed;
  info.reassembled = true;
  return true;
}

// A packet bigger than `mtu` (worker::send_inner): in pieces of at most
// `mtu` bytes when it may be cut up, else whole (what may not went through
// the sender's checks as it is). Pieces are numbered per worker (index +
// count × n): workers never hand out the same identification at once.
void worker::send_oversized(port_state& ps, rte_mbuf* m, const inner_info& info, wg_peer* peer, std::uint16_t mtu,
                            outbound& out) noexcept {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  if (!fragments::may_fragment(p, info.ipv6, info.reassembled)) return push_out(ps, m, peer, out);
  rte_mbuf* pieces[fragments::max_pieces];
  const std::uint32_t id = next_fragment_id_++ * setup_.worker_count + setup_.worker_index;
  const unsigned n = fragments::fragment_packet(m, info.ipv6, mtu, id, pieces, fragments::max_pieces);
  if (n == 0) return drop_one(ps.port.index, m, drop_reason::fragment_no_buffer);
  for (unsigned i = 0; i < n; ++i) push_out(ps, pieces[i], peer, out);
}

}  // namespace lopower
