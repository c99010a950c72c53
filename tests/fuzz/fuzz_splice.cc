// libFuzzer target: the splice's packet translation (dataplane/splice), on
// whatever bytes a device or a tailnet peer can put in an inner packet.
//
// The input is taken as an inner IP packet, copied into a buffer of exactly
// its size (so a read or write past the given length is caught by ASan),
// and put through every translation with fixed parameters (so are the
// input cut to the packet's own length and the input with its IP length
// field set to its size, see LLVMFuzzerTestOneInput):
//   rewrite_source / rewrite_destination  refused: the buffer is untouched;
//       done: the packet still parses with the same header, carries the new
//       address and port, nothing past its own length moved, a checksum
//       that verified still verifies (and one that did not still does not:
//       incremental updates carry errors through), a UDP "no checksum"
//       stays zero, and rewriting back gives the input again (up to the
//       two representations of zero in a checksum field);
//   clamp_tcp_mss     when it changes something: still parses, the
//       checksum keeps verifying, the flow key is the same, and a second
//       clamp changes nothing;
//   build_icmp_error  every kind: within the RFC size limits, parses, both
//       checksums verify, quotes the input's first bytes, names the input's
//       flow, and is itself accepted by translate_icmp_error_inner;
//   translate_icmp_error_inner  done: parses, the outer checksums keep
//       verifying, the quote now names the device's address and port;
//   decrement_hop_limit  refused: untouched; done: one less, the IPv4
//       header checksum still verifying, nothing else moved;
//   translate_icmp_error_outbound  likewise, the other way: the outer source
//       and the quote's destination now lopower's address and port;
//   next_state        every state and direction with the input's TCP flags.
// Checksums are verified with code of this file's own (RFC 1071 written
// out), not the library's. A violated invariant traps.
//
// Built by tests/fuzz.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/splice/flow_key.h"
#include "dataplane/splice/translate.h"
#include "lopower/byte_order.h"

namespace sp = lopower::splice;
using lopower::ip_address;
using lopower::ip_family;
using bytes = std::vector<std::uint8_t>;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

using lopower::load_be16;
using lopower::store_be16;

// RFC 1071, plainly.
std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += load_be16(p + i);
  if (n & 1) sum += static_cast<std::uint32_t>(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

ip_address make_address(ip_family f, std::array<std::uint8_t, 16> b) {
  ip_address a;
  a.family = f;
  a.bytes = b;
  return a;
}

const ip_address tailnet_v4 = make_address(ip_family::v4, {100, 64, 0, 1});
const ip_address tailnet_v6 =
    make_address(ip_family::v6, {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
const ip_address device_v4 = make_address(ip_family::v4, {10, 90, 0, 2});
const ip_address device_v6 =
    make_address(ip_family::v6, {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x99, 0x09, 0, 0, 0, 0, 0, 0, 0, 2});
const ip_address lopower_v4 = make_address(ip_family::v4, {10, 90, 0, 1});
const ip_address lopower_v6 =
    make_address(ip_family::v6, {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0x99, 0x09, 0, 0, 0, 0, 0, 0, 0, 1});
constexpr std::uint16_t tailnet_port = 40000, device_port = 1234;

bool v6(const sp::packet_info& i) { return i.family == ip_family::v6; }
std::size_t address_size(const sp::packet_info& i) { return v6(i) ? 16 : 4; }

// Where the L4 checksum is and whether it has a pseudo-header, for the
// protocols the splice carries; 0 when there is none to check.
std::size_t l4_checksum_at(const sp::packet_info& i) {
  switch (i.protocol) {
    case sp::ipproto_tcp: return i.l4_length() >= 18 ? i.l4_offset + 16u : 0;
    case sp::ipproto_udp: return i.l4_length() >= 8 ? i.l4_offset + 6u : 0;
    case sp::ipproto_icmp:
    case sp::ipproto_icmpv6: return i.l4_length() >= 4 ? i.l4_offset + 2u : 0;
    default: return 0;
  }
}

enum class verdict { none, valid, invalid };

// A checksum verifies when everything sums to zero in one's complement:
// 0xffff, or 0x0000 when every word summed is zero (an all-zero ICMPv4
// message with checksum 0). Incremental updates keep the sum's value, not
// its representation: once a non-zero word is in, +0 comes out as -0.
verdict verifies(std::uint32_t folded) {
  return folded == 0xffff || folded == 0 ? verdict::valid : verdict::invalid;
}

verdict l4_checksum(const std::uint8_t* p, const sp::packet_info& i) {
  const std::size_t at = l4_checksum_at(i);
  if (at == 0 || i.fragment) return verdict::none;
  if (i.protocol == sp::ipproto_udp && load_be16(p + at) == 0) return verdict::none;
  std::uint32_t pseudo = 0;
  if (i.protocol != sp::ipproto_icmp) {
    const std::size_t n = address_size(i);
    pseudo = sum16(p + (v6(i) ? 8 : 12), 2 * n) + i.protocol + i.l4_length();
  }
  return verifies(sum16(p + i.l4_offset, i.l4_length(), pseudo));
}

verdict ip_checksum(const std::uint8_t* p, const sp::packet_info& i) {
  if (v6(i)) return verdict::none;
  return verifies(sum16(p, i.l4_offset));
}

bool same_header(const sp::packet_info& a, const sp::packet_info& b) {
  return a.family == b.family && a.protocol == b.protocol && a.fragment == b.fragment && a.length == b.length &&
         a.l4_offset == b.l4_offset;
}

// Equal but for checksum fields holding 0x0000 in one and 0xffff in the other.
bool equal_up_to_zero_checksums(const bytes& a, const bytes& b, const sp::packet_info& i) {
  bytes x = a, y = b;
  for (const std::size_t at : {std::size_t{10}, l4_checksum_at(i)}) {
    if (at == 0 || (at == 10 && v6(i))) continue;
    const std::uint16_t u = load_be16(&x[at]), v = load_be16(&y[at]);
    if (u != v && (u == 0 || u == 0xffff) && (v == 0 || v == 0xffff)) x[at] = y[at] = x[at + 1] = y[at + 1] = 0;
  }
  return x == y;
}

ip_address address_of(const sp::flow_key& k, bool source) {
  ip_address a;
  a.family = k.family;
  std::memcpy(a.bytes.data(), source ? k.src : k.dst, 16);
  return a;
}

void check_rewrite(const bytes& input, bool source) {
  using translate_fn = sp::translate_status (*)(std::uint8_t*, std::uint32_t, const ip_address&, std::uint16_t) noexcept;
  using translate_fields_fn =
      sp::translate_status (*)(std::uint8_t*, const sp::flow_fields&, const ip_address&, std::uint16_t) noexcept;
  const auto translate = source ? static_cast<translate_fn>(sp::rewrite_source)
                                : static_cast<translate_fn>(sp::rewrite_destination);
  const auto translate_fields = source ? static_cast<translate_fields_fn>(sp::rewrite_source)
                                       : static_cast<translate_fields_fn>(sp::rewrite_destination);
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  for (const ip_address* addr : {&tailnet_v4, &tailnet_v6}) {
    bytes p = input;
    const auto st = translate(p.data(), static_cast<std::uint32_t>(p.size()), *addr, tailnet_port);
    if (st != sp::translate_status::ok) {
      check(p == input);
      continue;
    }
    check(info.has_value() && addr->family == info->family);
    const auto after = sp::parse_ip(p.data(), static_cast<std::uint32_t>(p.size()));
    check(after.has_value() && same_header(*info, *after));
    check(std::memcmp(p.data() + info->length, input.data() + info->length, p.size() - info->length) == 0);
    for (const auto& [before_v, after_v] : {std::pair{l4_checksum(input.data(), *info), l4_checksum(p.data(), *after)},
                                            std::pair{ip_checksum(input.data(), *info), ip_checksum(p.data(), *after)}})
      check(before_v == after_v);
    sp::flow_key before_key{}, key{};
    check(sp::flow_key_of(input.data(), static_cast<std::uint32_t>(input.size()), before_key) == sp::translate_status::ok);
    check(sp::flow_key_of(p.data(), static_cast<std::uint32_t>(p.size()), key) == sp::translate_status::ok);
    check(std::memcmp(source ? key.src : key.dst, addr->bytes.data(), address_size(*info)) == 0);
    check((source ? key.src_port : key.dst_port) == tailnet_port);
    // And back.
    check(translate(p.data(), static_cast<std::uint32_t>(p.size()), address_of(before_key, source),
                    source ? before_key.src_port : before_key.dst_port) == sp::translate_status::ok);
    check(equal_up_to_zero_checksums(p, input, *info));
    // Where flow_key_of found the fields, the rewrite that parses nothing
    // writes the same bytes.
    bytes q = input, r = input;
    sp::flow_key k{};
    sp::flow_fields fields;
    check(sp::flow_key_of(q.data(), static_cast<std::uint32_t>(q.size()), k, fields) == sp::translate_status::ok);
    check(translate_fields(q.data(), fields, *addr, tailnet_port) == sp::translate_status::ok);
    check(translate(r.data(), static_cast<std::uint32_t>(r.size()), *addr, tailnet_port) == sp::translate_status::ok);
    check(q == r);
  }
}

void check_clamp(const bytes& input) {
  bytes p = input;
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  const std::uint16_t max = info && v6(*info) ? 1220 : 1240;
  if (!sp::clamp_tcp_mss(p.data(), static_cast<std::uint32_t>(p.size()), max)) {
    check(p == input);
    return;
  }
  const auto after = sp::parse_ip(p.data(), static_cast<std::uint32_t>(p.size()));
  check(info && after && same_header(*info, *after) && info->protocol == sp::ipproto_tcp);
  check(l4_checksum(input.data(), *info) == l4_checksum(p.data(), *after));
  sp::flow_key a{}, b{};
  check(sp::flow_key_of(input.data(), static_cast<std::uint32_t>(input.size()), a) == sp::translate_status::ok);
  check(sp::flow_key_of(p.data(), static_cast<std::uint32_t>(p.size()), b) == sp::translate_status::ok && a == b);
  check(!sp::clamp_tcp_mss(p.data(), static_cast<std::uint32_t>(p.size()), max));
}

// decrement_hop_limit (the uplink NAT's router hop): refused, untouched;
// done, the same header, the TTL / hop limit one less, nothing else but the
// IPv4 header checksum changed, and a checksum that verified still does.
void check_hop_limit(const bytes& input) {
  bytes p = input;
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  if (!sp::decrement_hop_limit(p.data(), static_cast<std::uint32_t>(p.size()))) {
    check(p == input);
    return;
  }
  const auto after = sp::parse_ip(p.data(), static_cast<std::uint32_t>(p.size()));
  check(info && after && same_header(*info, *after));
  const std::size_t ttl_at = v6(*info) ? 7 : 8;
  check(p[ttl_at] + 1 == input[ttl_at]);
  for (std::size_t i = 0; i < p.size(); ++i)
    if (i != ttl_at && (v6(*info) || (i != 10 && i != 11))) check(p[i] == input[i]);
  if (ip_checksum(input.data(), *info) == verdict::valid) check(ip_checksum(p.data(), *after) == verdict::valid);
}

void check_translated_error(bytes& e, const ip_address& device) {
  const auto before = sp::parse_ip(e.data(), static_cast<std::uint32_t>(e.size()));
  const auto st = sp::translate_icmp_error_inner(e.data(), static_cast<std::uint32_t>(e.size()), device, device_port);
  if (st != sp::translate_status::ok) return;
  const auto after = sp::parse_ip(e.data(), static_cast<std::uint32_t>(e.size()));
  check(before && after && same_header(*before, *after));
  sp::flow_key quoted{};
  check(sp::quoted_flow_key(e.data(), static_cast<std::uint32_t>(e.size()), quoted) == sp::translate_status::ok);
  check(std::memcmp(quoted.src, device.bytes.data(), address_size(*after)) == 0 && quoted.src_port == device_port);
  check(std::memcmp(e.data() + (v6(*after) ? 24 : 16), device.bytes.data(), address_size(*after)) == 0);
}

void check_build_error(const bytes& input) {
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  const bool is_v6 = info && v6(*info);
  for (const auto kind : {sp::icmp_error_kind::admin_prohibited, sp::icmp_error_kind::host_unreachable,
                          sp::icmp_error_kind::packet_too_big, sp::icmp_error_kind::time_exceeded}) {
    bytes out(1280);
    const std::uint16_t n = sp::build_icmp_error(out.data(), out.size(), input.data(),
                                                 static_cast<std::uint32_t>(input.size()), kind, 1280,
                                                 is_v6 ? lopower_v6 : lopower_v4);
    if (n == 0) continue;
    check(info.has_value() && n <= (is_v6 ? 1280 : 576));
    out.resize(n);
    const auto e = sp::parse_ip(out.data(), n);
    check(e && e->length == n && !e->fragment && e->family == info->family);
    check(l4_checksum(out.data(), *e) == verdict::valid && ip_checksum(out.data(), *e) != verdict::invalid);
    const std::size_t quote_at = e->l4_offset + 8u;
    check(std::memcmp(out.data() + quote_at, input.data(), n - quote_at) == 0);
    sp::flow_key sent{}, quoted{};
    if (sp::flow_key_of(input.data(), static_cast<std::uint32_t>(input.size()), sent) == sp::translate_status::ok) {
      check(sp::quoted_flow_key(out.data(), n, quoted) == sp::translate_status::ok && quoted == sent);
      check_translated_error(out, is_v6 ? device_v6 : device_v4);
      const auto translated = sp::parse_ip(out.data(), n);
      check(translated && l4_checksum(out.data(), *translated) == verdict::valid &&
            ip_checksum(out.data(), *translated) != verdict::invalid);
    }
  }
}

// A translated ICMP error: the same header as before, and checksums that
// verify as they did (an incremental update, not a fresh sum).
void check_sums_kept(const bytes& input, const std::optional<sp::packet_info>& info, const bytes& p) {
  const auto after = sp::parse_ip(p.data(), static_cast<std::uint32_t>(p.size()));
  check(info && after && same_header(*info, *after));
  check(l4_checksum(input.data(), *info) == l4_checksum(p.data(), *after));
  check(ip_checksum(input.data(), *info) == ip_checksum(p.data(), *after));
}

void check_icmp_error_in(const bytes& input) {
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  for (const ip_address* device : {&device_v4, &device_v6}) {
    bytes p = input;
    const auto st = sp::translate_icmp_error_inner(p.data(), static_cast<std::uint32_t>(p.size()), *device, device_port);
    if (st != sp::translate_status::ok) {
      check(p == input);
      continue;
    }
    check_sums_kept(input, info, p);
    check(std::memcmp(p.data() + info->length, input.data() + info->length, p.size() - info->length) == 0);
    bytes again = input;
    check_translated_error(again, *device);
  }
}

// translate_icmp_error_outbound (a device's error about a NATed answer):
// refused, untouched; done, the same header, checksums verifying as before,
// the quote's destination and the outer source now lopower's address and port.
void check_icmp_error_out(const bytes& input) {
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  for (const ip_address* ours : {&lopower_v4, &lopower_v6}) {
    bytes p = input;
    const auto st = sp::translate_icmp_error_outbound(p.data(), static_cast<std::uint32_t>(p.size()), *ours, device_port);
    if (st != sp::translate_status::ok) {
      check(p == input);
      continue;
    }
    check_sums_kept(input, info, p);
    sp::flow_key quoted{};
    check(sp::quoted_flow_key(p.data(), static_cast<std::uint32_t>(p.size()), quoted) == sp::translate_status::ok);
    check(std::memcmp(quoted.dst, ours->bytes.data(), address_size(*info)) == 0 && quoted.dst_port == device_port);
    check(std::memcmp(p.data() + (v6(*info) ? 8 : 12), ours->bytes.data(), address_size(*info)) == 0);
  }
}

void check_tcp_state(const bytes& input) {
  const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size()));
  const std::uint8_t flags = info ? sp::tcp_flags(input.data(), *info) : (input.empty() ? 0 : input[0]);
  for (const auto s : {sp::tcp_state::syn_sent, sp::tcp_state::established, sp::tcp_state::fin_wait_original,
                       sp::tcp_state::fin_wait_reply, sp::tcp_state::closed})
    for (const auto d : {sp::flow_direction::original, sp::flow_direction::reply}) {
      const sp::tcp_state next = sp::next_state(s, flags, d);
      check(static_cast<unsigned>(next) <= static_cast<unsigned>(sp::tcp_state::closed));
      if ((flags & sp::tcp_flag::rst) && s != sp::tcp_state::closed) check(next == sp::tcp_state::closed);
      check(sp::tcp_timeout(next) > 0);
    }
}

void check_all(const bytes& input) {
  if (const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size())))
    check(info->length <= input.size() && info->l4_offset <= info->length && info->l4_offset >= 20);
  sp::flow_key key{};
  if (sp::flow_key_of(input.data(), static_cast<std::uint32_t>(input.size()), key) == sp::translate_status::ok)
    check(key.reverse().reverse() == key && key.pad[0] == 0 && key.pad[1] == 0);
  check_rewrite(input, true);
  check_rewrite(input, false);
  check_clamp(input);
  check_hop_limit(input);
  check_build_error(input);
  check_icmp_error_in(input);
  check_icmp_error_out(input);
  check_tcp_state(input);
}

// The input with its IP length field set to its size: mutations rarely keep
// the two in step, and without it most inputs would stop at parse_ip.
bytes with_length_fixed(const bytes& input) {
  bytes p = input;
  if (p.size() >= 40 && (p[0] >> 4) == 6) {
    store_be16(&p[4], static_cast<std::uint16_t>(p.size() - 40));
  } else if (p.size() >= 20 && p.size() <= 0xffff && (p[0] >> 4) == 4) {
    store_be16(&p[2], static_cast<std::uint16_t>(p.size()));
  }
  return p;
}

}  // namespace

// Each variant in a buffer of exactly its size: the input; the input cut to
// the packet's own length when something follows it (the functions must
// not read past that length either, and padding would hide such a read);
// the input with its length field fixed up.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 0xffff + 40) return 0;
  const bytes input(data, data + size);
  check_all(input);
  if (const auto info = sp::parse_ip(input.data(), static_cast<std::uint32_t>(input.size())); info && info->length < size)
    check_all(bytes(input.begin(), input.begin() + info->length));
  if (const bytes fixed = with_length_fixed(input); fixed != input) check_all(fixed);
  return 0;
}
