// libFuzzer target: IP reassembly (dataplane/fragments), the path a
// worker's inner fragments take: inspect() each, then the reassembler
// (admission ledger + DPDK's rte_ip_frag table), on real mbufs.
//
// The input is a small program. Its first byte picks the family and the
// limits (datagrams in progress, per owner); then, until the input ends:
//   0  a piece of a patterned datagram: owner, identification (four of
//      them, so pieces meet), offset, length (tiny to 1600 bytes) and MF,
//      the payload bytes a pattern of (identification, position);
//   1  raw bytes taken as an inner packet (from another source address, so
//      patterned datagrams are never mixed with them);
//   2  time goes by (a fraction of the timeout, or past it) and the
//      worker's tick runs;
//   3  the last piece once more (a duplicate).
// Overlapping, duplicate, tiny, out-of-order and too many pieces all come
// from this. What must hold (a violation traps):
//   - a datagram that comes out is one segment with room for WireGuard's
//     trailer, parses as a whole IP packet of its own length (no fragment
//     fields left, IPv4 checksum right), and a patterned one carries its
//     pattern at every byte;
//   - cut up again for a 1280-byte MTU (lopower's fragmenter) and put back
//     together by a second reassembler, it is the same packet;
//   - the ledger's bounds hold at every step, and the buffers held stay
//     within them;
//   - once everything is torn down, every mbuf is back in the pool and the
//     DPDK heap is as it was (leaks of either are invisible to ASan).
//
// Built by tests/fuzz.

#include <rte_eal.h>
#include <rte_ip_frag.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <vector>

#include "dataplane/fragments/fragment_header.h"
#include "dataplane/fragments/fragmenter.h"
#include "dataplane/fragments/reassembler.h"
#include "lopower/byte_order.h"

namespace fr = lopower::fragments;
using bytes = std::vector<std::uint8_t>;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr std::uint64_t timeout = 1u << 20;
constexpr std::uint16_t stripped_in_front = 14 + 20 + 8 + 16;  // outer headers a decrypted packet had
rte_mempool* pool = nullptr;

using lopower::load_be16;
using lopower::store_be16;

// RFC 1071, plainly.
std::uint16_t sum16(const std::uint8_t* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += load_be16(p + i);
  if (n & 1) sum += static_cast<std::uint32_t>(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::uint8_t pattern(std::uint32_t id, std::size_t at) { return static_cast<std::uint8_t>(id * 37 + at * 11 + (at >> 8)); }

// Reads the program's bytes.
struct reader {
  const std::uint8_t* p;
  std::size_t n;
  bool take(std::size_t k, const std::uint8_t*& out) {
    if (n < k) return false;
    out = p;
    p += k;
    n -= k;
    return true;
  }
  bool byte(std::uint8_t& v) {
    const std::uint8_t* b;
    if (!take(1, b)) return false;
    v = *b;
    return true;
  }
  bool word(std::uint16_t& v) {
    const std::uint8_t* b;
    if (!take(2, b)) return false;
    v = load_be16(b);
    return true;
  }
};

// A piece of patterned datagram `id`: payload [offset, offset + length).
bytes patterned_piece(bool v6, std::uint32_t id, std::size_t offset, std::size_t length, bool more) {
  const std::size_t h = v6 ? 48 : 20;
  bytes f(h + length);
  if (v6) {
    f[0] = 0x60;
    f[3] = static_cast<std::uint8_t>(id);  // in the flow label too: the Fragment header goes in reassembly
    store_be16(&f[4], static_cast<std::uint16_t>(8 + length));
    f[6] = fr::ipproto_fragment;
    f[7] = 64;
    f[8] = f[24] = 0xfd;
    f[23] = 2;
    f[39] = 5;
    f[40] = 17;
    store_be16(&f[42], static_cast<std::uint16_t>(offset | (more ? 1 : 0)));
    store_be16(&f[46], static_cast<std::uint16_t>(id));
  } else {
    f[0] = 0x45;
    store_be16(&f[2], static_cast<std::uint16_t>(h + length));
    store_be16(&f[4], static_cast<std::uint16_t>(id));
    store_be16(&f[6], static_cast<std::uint16_t>((more ? 0x2000 : 0) | offset / 8));
    f[8] = 64;
    f[9] = 17;
    const std::uint8_t src[4] = {10, 90, 0, 2}, dst[4] = {100, 64, 0, 5};
    std::memcpy(&f[12], src, 4);
    std::memcpy(&f[16], dst, 4);
    store_be16(&f[10], static_cast<std::uint16_t>(~sum16(f.data(), 20)));
  }
  for (std::size_t i = 0; i < length; ++i) f[h + i] = pattern(id, offset + i);
  return f;
}

bool patterned(const std::uint8_t* p, bool v6) { return v6 ? p[23] == 2 : p[15] == 2; }

// The IP packet's own length, as the worker's parse_inner sees it; 0 if it
// is not a whole packet.
std::size_t ip_length(const std::uint8_t* p, std::size_t n) {
  if (n < 20) return 0;
  if ((p[0] >> 4) == 4) {
    const std::size_t ihl = (p[0] & 0x0fu) * 4u, total = load_be16(p + 2);
    return ihl >= 20 && total >= ihl && total <= n ? total : 0;
  }
  if ((p[0] >> 4) == 6 && n >= 40 && 40u + load_be16(p + 4) <= n) return 40u + load_be16(p + 4);
  return 0;
}

rte_mbuf* mbuf_of(const std::uint8_t* p, std::size_t n) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  check(m != nullptr);
  check(rte_pktmbuf_append(m, static_cast<std::uint16_t>(stripped_in_front + n)) != nullptr);
  rte_pktmbuf_adj(m, stripped_in_front);
  std::memcpy(rte_pktmbuf_mtod(m, void*), p, n);
  return m;
}

bytes contents(const rte_mbuf* m) {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  return bytes(p, p + m->data_len);
}

// A datagram that came out: whole, parsed, patterned as it should be.
void check_whole(const rte_mbuf* m) {
  check(m->nb_segs == 1 && m->pkt_len == m->data_len);
  check(rte_pktmbuf_tailroom(m) >= 32);
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const bool v6 = (p[0] >> 4) == 6;
  check(ip_length(p, m->data_len) == m->data_len);
  check(!fr::is_fragment(p, v6));
  if (!v6) check(sum16(p, (p[0] & 0x0fu) * 4u) == 0xffff);
  if (!patterned(p, v6)) return;
  const std::size_t h = v6 ? 40 : (p[0] & 0x0fu) * 4u;
  const std::uint32_t id = v6 ? p[3] : load_be16(p + 4);
  if (v6) check(p[6] == 17);
  for (std::size_t i = h; i < m->data_len; ++i) check(p[i] == pattern(id, i - h));
}

struct rig {
  bool v6;
  fr::reassembly_limits limits;
  std::unique_ptr<fr::reassembler> r, again;
  const int owners[4] = {};
  std::uint64_t now = 1;
  bytes last;

  void tick() {
    r->tick(now, [](std::uint8_t, std::uint16_t) {});
    again->tick(now, [](std::uint8_t, std::uint16_t) {});
  }

  // Out through the fragmenter, back through a second reassembler.
  void round_trip(const rte_mbuf* whole) {
    const auto* p = rte_pktmbuf_mtod(whole, const std::uint8_t*);
    const bool is_v6 = (p[0] >> 4) == 6;
    if (whole->data_len <= 1280 || !fr::may_fragment(p, is_v6, true)) return;
    rte_mbuf* copy = rte_pktmbuf_copy(whole, pool, 0, UINT32_MAX);
    check(copy != nullptr);
    rte_mbuf* pieces[fr::max_pieces];
    const unsigned n = fr::fragment_packet(copy, is_v6, 1280, 0x5151, pieces, fr::max_pieces);
    check(n >= 2);
    fr::reassembly_outcome o;
    for (unsigned i = 0; i < n; ++i) {
      const bytes piece = contents(pieces[i]);
      check(pieces[i]->nb_segs == 1 && piece.size() <= 1280 && rte_pktmbuf_headroom(pieces[i]) >= 78);
      fr::fragment_view f;
      check(fr::inspect(piece.data(), static_cast<std::uint16_t>(piece.size()), f) == fr::fragment_kind::fragment);
      o = again->add(pieces[i], f, &owners[3], 0, now);
      check((o.kind == fr::reassembly_outcome::whole) == (i + 1 == n));
    }
    bytes want = contents(whole), got = contents(o.packet);
    if (!is_v6) {  // our identification, so the checksum differs too
      check(load_be16(&got[4]) == 0x5151);
      got[4] = want[4], got[5] = want[5], got[10] = want[10], got[11] = want[11];
    }
    check(got == want);
    rte_pktmbuf_free(o.packet);
  }

  void add(const std::uint8_t* p, std::size_t n, const int* owner) {
    const std::size_t len = ip_length(p, n);
    if (len == 0 || len + stripped_in_front > 2048) return;
    fr::fragment_view f;
    if (fr::inspect(p, static_cast<std::uint16_t>(len), f) != fr::fragment_kind::fragment) return;
    last.assign(p, p + len);
    const fr::reassembly_outcome o = r->add(mbuf_of(p, len), f, owner, 0, now++);
    if (o.kind != fr::reassembly_outcome::whole) return;
    check(o.packet != nullptr);
    check_whole(o.packet);
    round_trip(o.packet);
    rte_pktmbuf_free(o.packet);
  }

  void check_bounds() const {
    const fr::ledger_limits& l = limits.ledger;
    check(r->in_progress() <= l.max_datagrams);
    for (const int& o : owners) check(r->held_by(&o) <= l.per_owner);
    // The table may hold what the ledger forgot (twice its datagrams), the death row the rest.
    check(rte_mempool_in_use_count(pool) <= 2 * 2 * l.max_datagrams * fr::max_fragments + 2 * RTE_IP_FRAG_DEATH_ROW_MBUF_LEN);
  }

  void run(reader& in) {
    std::uint8_t op;
    while (in.byte(op)) {
      switch (op & 3) {
        case 0: {
          std::uint8_t owner, id, flags;
          std::uint16_t offset, length;
          if (!in.byte(owner) || !in.byte(id) || !in.word(offset) || !in.word(length) || !in.byte(flags)) return;
          const bytes piece = patterned_piece(v6, id % 4u, (offset % 256u) * 8u, length % 1601u, flags & 1);
          add(piece.data(), piece.size(), &owners[owner % 3]);
          break;
        }
        case 1: {
          std::uint16_t length;
          const std::uint8_t* raw;
          if (!in.word(length) || !in.take(length % 1700u, raw)) return;
          bytes packet(raw, raw + length % 1700u);
          if (packet.size() >= 40 && (packet[0] >> 4) == 6) packet[23] = 3;  // never a patterned source
          else if (packet.size() >= 20) packet[15] = 3;
          add(packet.data(), packet.size(), &owners[op >> 2 & 1]);
          break;
        }
        case 2: {
          std::uint8_t t;
          if (!in.byte(t)) return;
          now += t * (timeout / 32);
          tick();
          break;
        }
        default:
          if (!last.empty()) {
            const bytes again_bytes = last;
            add(again_bytes.data(), again_bytes.size(), &owners[0]);
          }
      }
      check_bounds();
    }
  }
};

std::size_t heap_in_use() {
  rte_malloc_socket_stats s{};
  rte_malloc_get_socket_stats(0, &s);
  return s.heap_allocsz_bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* argv[] = {"fuzz_reassembly", "-l", "0", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                        "-m", "256", "--log-level=lib.eal:error", "--log-level=user1:error"};
  check(rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) >= 0);
  pool = rte_pktmbuf_pool_create("fuzz_frag", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  check(pool != nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in{data, size};
  std::uint8_t config;
  if (!in.byte(config)) return 0;
  const std::size_t heap_before = heap_in_use();
  {
    rig g;
    g.v6 = (config & 1) != 0;
    g.limits.ledger = {1u + (config >> 1 & 7u), 1u + (config >> 4 & 7u), timeout};
    fr::reassembly_limits roomy;
    roomy.ledger = {4, 4, timeout};
    g.r = std::make_unique<fr::reassembler>(g.limits, config, SOCKET_ID_ANY);
    g.again = std::make_unique<fr::reassembler>(roomy, 1, SOCKET_ID_ANY);
    g.run(in);
  }
  check(rte_mempool_in_use_count(pool) == 0);
  check(heap_in_use() == heap_before);
  return 0;
}
