// Any decrypted inner packet goes through parse_inner, and the replies
// lopower builds in place from one (ICMP echo reply, TSMP pong) must read
// and write only inside it and come out as packets parse_inner accepts,
// with the addresses swapped and (echo) a checksum that verifies. The
// splice's flow key taken from parse_inner's reading is the one
// splice::flow_key_of finds parsing the packet itself.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/flow_packet.h"
#include "dataplane/inner_packet.h"
#include "dataplane/splice/checksum.h"

namespace {

using lopower::inner_info;

[[noreturn]] void fail() { __builtin_trap(); }

void check_inside(const inner_info& info, const std::uint8_t* p, std::size_t size) {
  if (info.length > size || info.l4_offset > info.length) fail();
  const std::size_t addr = info.ipv6 ? 16 : 4;
  if (info.src < p || info.src + addr > p + size || info.dst < p || info.dst + addr > p + size) fail();
}

// The reply `q` (from `before`) swapped the addresses of the request.
void check_swapped(const std::uint8_t* before, const inner_info& b, const std::uint8_t* q, const inner_info& r) {
  const std::size_t addr = b.ipv6 ? 16 : 4;
  if (r.ipv6 != b.ipv6) fail();
  if (std::memcmp(r.src, before + (b.dst - before), addr) != 0) fail();
  if (std::memcmp(r.dst, before + (b.src - before), addr) != 0) fail();
  (void)q;
}

// The worker keys a packet's flow from parse_inner's reading of its header
// (packet_info_of) rather than parsing it again: the same status, key and
// fields as flow_key_of parsing it itself.
void check_flow_key_as_parsed(const std::uint8_t* p, const inner_info& info) {
  namespace sp = lopower::splice;
  sp::flow_key parsed_key{}, given_key{};
  sp::flow_fields parsed_fields, given_fields;
  const auto parsed = sp::flow_key_of(p, info.length, parsed_key, parsed_fields);
  const auto given = sp::flow_key_of(p, lopower::packet_info_of(p, info), given_key, given_fields);
  if (parsed != given) fail();
  if (given != sp::translate_status::ok) return;
  const auto same_fields = [](const sp::flow_fields& a, const sp::flow_fields& b) {
    return a.family == b.family && a.src_port_at == b.src_port_at && a.dst_port_at == b.dst_port_at &&
           a.checksum_at == b.checksum_at && a.pseudo_header == b.pseudo_header && a.udp == b.udp;
  };
  if (!(parsed_key == given_key) || !same_fields(parsed_fields, given_fields)) fail();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 65535) return 0;
  const auto info = lopower::parse_inner(data, static_cast<std::uint32_t>(size));
  if (!info) return 0;
  check_inside(*info, data, size);
  check_flow_key_as_parsed(data, *info);
  (void)lopower::is_dns_query(data, *info);
  (void)lopower::is_lopower_echo_reply(data, *info);

  std::vector<std::uint8_t> reply(data, data + size);
  if (auto mine = lopower::parse_inner(reply.data(), static_cast<std::uint32_t>(size));
      mine && lopower::make_echo_reply(reply.data(), *mine)) {
    const auto back = lopower::parse_inner(reply.data(), static_cast<std::uint32_t>(size));
    if (!back || back->length != info->length || back->protocol != info->protocol) fail();
    check_swapped(data, *info, reply.data(), *back);
    // The ICMP checksum covers the message (and, for ICMPv6, the pseudo-header).
    const std::uint8_t* l4 = reply.data() + back->l4_offset;
    const std::size_t l4_len = back->length - back->l4_offset;
    const std::uint64_t pseudo =
        back->ipv6 ? lopower::splice::pseudo_header_sum(true, back->src, back->dst, back->protocol,
                                                        static_cast<std::uint32_t>(l4_len))
                   : 0;
    if (lopower::splice::checksum(l4, l4_len, pseudo) != 0) fail();
  }

  std::vector<std::uint8_t> pong(data, data + size);
  pong.resize(std::max<std::size_t>(size, info->l4_offset + lopower::tsmp_pong_l4_size));
  if (auto mine = lopower::parse_inner(pong.data(), static_cast<std::uint32_t>(size));
      mine && lopower::is_tsmp_ping(pong.data(), *mine)) {
    const std::uint16_t len = lopower::make_tsmp_pong(pong.data(), *mine);
    if (len > pong.size()) fail();
    const auto back = lopower::parse_inner(pong.data(), len);
    if (!back || back->protocol != lopower::ipproto_tsmp || back->length != len) fail();
    check_swapped(data, *info, pong.data(), *back);
  }
  return 0;
}
