#include "dataplane/splice/translate.h"

#include <algorithm>
#include <cstring>

#include "dataplane/splice/checksum.h"

namespace lopower::splice {
namespace {

constexpr unsigned ipv4_header = 20, ipv6_header = 40, icmp_header = 8;
constexpr std::uint8_t default_ttl = 64;

namespace icmp4 {
constexpr std::uint8_t echo_reply = 0, unreachable = 3, echo_request = 8, time_exceeded = 11, parameter_problem = 12;
}
namespace icmp6 {
constexpr std::uint8_t unreachable = 1, packet_too_big = 2, time_exceeded = 3, parameter_problem = 4;
constexpr std::uint8_t echo_request = 128, echo_reply = 129, redirect = 137;
}

bool is_v6(ip_family f) { return f == ip_family::v6; }
std::size_t address_size(bool v6) { return v6 ? 16 : 4; }
unsigned src_at(bool v6) { return v6 ? 8 : 12; }
unsigned dst_at(bool v6) { return v6 ? 24 : 16; }
std::uint8_t icmp_protocol(bool v6) { return v6 ? ipproto_icmpv6 : ipproto_icmp; }

bool is_echo(std::uint8_t type, bool v6) {
  return v6 ? type == icmp6::echo_request || type == icmp6::echo_reply
            : type == icmp4::echo_request || type == icmp4::echo_reply;
}

// Where the fields a translation touches lie in one transport header, as
// offsets from the packet start (the family is set by whoever knows it).
using l4_fields = flow_fields;

// The transport header at `l4` (of `l4_len` bytes present) of a carried
// protocol. `whole_tcp` asks for the whole TCP header (a packet) rather
// than its first 8 bytes (a quote in an ICMP error).
translate_status view_l4(const std::uint8_t* p, std::uint16_t l4, unsigned l4_len, std::uint8_t protocol, bool v6,
                         bool whole_tcp, l4_fields& f) {
  f = l4_fields{};
  f.src_port_at = l4;
  f.dst_port_at = static_cast<std::uint16_t>(l4 + 2);
  if (protocol == ipproto_tcp) {
    if (l4_len < (whole_tcp ? 20u : 8u)) return translate_status::malformed;
    if (whole_tcp) {
      const unsigned data_offset = (p[l4 + 12u] >> 4) * 4u;
      if (data_offset < 20 || data_offset > l4_len) return translate_status::malformed;
    }
    if (l4_len >= 18) f.checksum_at = static_cast<std::uint16_t>(l4 + 16);
    return translate_status::ok;
  }
  if (protocol == ipproto_udp) {
    if (l4_len < 8) return translate_status::malformed;
    f.checksum_at = static_cast<std::uint16_t>(l4 + 6);
    f.udp = true;
    return translate_status::ok;
  }
  if (protocol != icmp_protocol(v6)) return translate_status::unsupported;
  if (l4_len < 8) return translate_status::malformed;
  if (!is_echo(p[l4], v6)) return translate_status::unsupported;
  f.src_port_at = f.dst_port_at = static_cast<std::uint16_t>(l4 + 4);
  f.checksum_at = static_cast<std::uint16_t>(l4 + 2);
  f.pseudo_header = v6;
  return translate_status::ok;
}

// A packet the splice carries: parsed IP header and its transport fields.
translate_status view_flow(const std::uint8_t* p, std::uint32_t len, packet_info& ip, l4_fields& f) {
  const auto parsed = parse_ip(p, len);
  if (!parsed) return translate_status::malformed;
  if (parsed->fragment) return translate_status::fragment;
  ip = *parsed;
  const translate_status st = view_l4(p, ip.l4_offset, ip.l4_length(), ip.protocol, is_v6(ip.family), true, f);
  f.family = ip.family;
  return st;
}

// Writes the new L4 checksum at `at` from the accumulated difference. A
// zero UDP checksum is "none" and stays so; a computed zero goes out as
// 0xffff (RFC 768).
void apply_l4_checksum(std::uint8_t* at, const checksum_delta& d, bool udp) {
  const std::uint16_t old = load_be16(at);
  if (udp && old == 0) return;
  const std::uint16_t updated = d.apply(old);
  store_be16(at, udp ? udp_checksum_field(updated) : updated);
}

enum class side : std::uint8_t { source, destination };

// The checksum differences of replacing `old_addr`:`old_port` by
// `new_addr`:`new_port`; `pseudo_header`: the transport checksum covers the
// addresses too (all but ICMPv4).
rewrite_deltas deltas_of(bool v6, bool pseudo_header, const std::uint8_t* old_addr, std::uint16_t old_port,
                         const std::uint8_t* new_addr, std::uint16_t new_port) {
  checksum_delta address;
  address.replace(old_addr, new_addr, address_size(v6));
  checksum_delta l4 = pseudo_header ? address : checksum_delta{};
  l4.replace16(old_port, new_port);
  return {address.folded(), l4.folded()};
}

// The address and port on side `s` become `addr` and `port`, the checksums
// moved by `d` (their differences): nothing old is read.
translate_status rewrite(std::uint8_t* p, const l4_fields& f, ip_family family, const std::uint8_t* addr,
                         std::uint16_t port, side s, rewrite_deltas d) {
  if (family != f.family) return translate_status::family_mismatch;
  const bool v6 = is_v6(f.family);
  std::memcpy(p + (s == side::source ? src_at(v6) : dst_at(v6)), addr, address_size(v6));
  store_be16(p + (s == side::source ? f.src_port_at : f.dst_port_at), port);
  if (!v6) store_be16(p + 10, checksum_delta(d.ip).apply(load_be16(p + 10)));
  apply_l4_checksum(p + f.checksum_at, checksum_delta(d.l4), f.udp);
  return translate_status::ok;
}

// The same with the differences taken from the packet's own address and port.
translate_status rewrite(std::uint8_t* p, const l4_fields& f, const ip_address& addr, std::uint16_t port, side s) {
  if (addr.family != f.family) return translate_status::family_mismatch;
  const bool v6 = is_v6(f.family);
  const std::uint8_t* old_addr = p + (s == side::source ? src_at(v6) : dst_at(v6));
  const std::uint16_t old_port = load_be16(p + (s == side::source ? f.src_port_at : f.dst_port_at));
  const rewrite_deltas d = deltas_of(v6, f.pseudo_header, old_addr, old_port, addr.bytes.data(), port);
  return rewrite(p, f, addr.family, addr.bytes.data(), port, s, d);
}

translate_status rewrite(std::uint8_t* p, std::uint32_t len, const ip_address& addr, std::uint16_t port, side s) {
  packet_info ip;
  l4_fields f;
  if (const auto st = view_flow(p, len, ip, f); st != translate_status::ok) return st;
  return rewrite(p, f, addr, port, s);
}

}  // namespace

const char* to_string(translate_status s) noexcept {
  switch (s) {
    case translate_status::ok: return "ok";
    case translate_status::malformed: return "malformed";
    case translate_status::fragment: return "fragment";
    case translate_status::unsupported: return "unsupported";
    case translate_status::family_mismatch: return "family_mismatch";
  }
  return "?";
}

std::optional<packet_info> parse_ip(const std::uint8_t* p, std::uint32_t len) noexcept {
  if (len < ipv4_header) return std::nullopt;
  packet_info info;
  if ((p[0] >> 4) == 4) {
    const unsigned ihl = (p[0] & 0x0f) * 4u;
    const std::uint16_t total = load_be16(p + 2);
    if (ihl < ipv4_header || total < ihl || total > len) return std::nullopt;
    info.protocol = p[9];
    info.fragment = (load_be16(p + 6) & 0x3fff) != 0;  // MF or a fragment offset
    info.length = total;
    info.l4_offset = static_cast<std::uint16_t>(ihl);
    return info;
  }
  if ((p[0] >> 4) == 6 && len >= ipv6_header) {
    const std::uint32_t total = ipv6_header + load_be16(p + 4);
    if (total > len || total > 0xffff) return std::nullopt;
    info.family = ip_family::v6;
    info.protocol = p[6];
    info.fragment = p[6] == 44;
    info.length = static_cast<std::uint16_t>(total);
    info.l4_offset = ipv6_header;
    return info;
  }
  return std::nullopt;
}

translate_status flow_key_of(const std::uint8_t* p, std::uint32_t len, flow_key& key) noexcept {
  flow_fields f;
  return flow_key_of(p, len, key, f);
}

translate_status flow_key_of(const std::uint8_t* p, std::uint32_t len, flow_key& key, flow_fields& f) noexcept {
  const auto parsed = parse_ip(p, len);
  if (!parsed) return translate_status::malformed;
  return flow_key_of(p, *parsed, key, f);
}

translate_status flow_key_of(const std::uint8_t* p, const packet_info& ip, flow_key& key, flow_fields& f) noexcept {
  if (ip.fragment) return translate_status::fragment;
  const translate_status st = view_l4(p, ip.l4_offset, ip.l4_length(), ip.protocol, is_v6(ip.family), true, f);
  f.family = ip.family;
  if (st != translate_status::ok) return st;
  const bool v6 = is_v6(ip.family);
  set_flow_key(key, ip.family, ip.protocol, p + src_at(v6), load_be16(p + f.src_port_at), p + dst_at(v6),
               load_be16(p + f.dst_port_at));
  return translate_status::ok;
}

translate_status rewrite_source(std::uint8_t* p, std::uint32_t len, const ip_address& new_src,
                                std::uint16_t new_port) noexcept {
  return rewrite(p, len, new_src, new_port, side::source);
}

translate_status rewrite_destination(std::uint8_t* p, std::uint32_t len, const ip_address& new_dst,
                                     std::uint16_t new_port) noexcept {
  return rewrite(p, len, new_dst, new_port, side::destination);
}

translate_status rewrite_source(std::uint8_t* p, const flow_fields& fields, const ip_address& new_src,
                                std::uint16_t new_port) noexcept {
  return rewrite(p, fields, new_src, new_port, side::source);
}

translate_status rewrite_destination(std::uint8_t* p, const flow_fields& fields, const ip_address& new_dst,
                                     std::uint16_t new_port) noexcept {
  return rewrite(p, fields, new_dst, new_port, side::destination);
}

rewrite_deltas rewrite_deltas_of(ip_family family, std::uint8_t protocol, const std::uint8_t* old_addr,
                                 std::uint16_t old_port, const std::uint8_t* new_addr, std::uint16_t new_port) noexcept {
  const bool v6 = is_v6(family);
  // As view_l4 marks it: ICMPv4 alone has no pseudo-header.
  return deltas_of(v6, !(protocol == ipproto_icmp && !v6), old_addr, old_port, new_addr, new_port);
}

translate_status rewrite_source(std::uint8_t* p, const flow_fields& fields, ip_family family, const std::uint8_t* new_src,
                                std::uint16_t new_port, rewrite_deltas deltas) noexcept {
  return rewrite(p, fields, family, new_src, new_port, side::source, deltas);
}

translate_status rewrite_destination(std::uint8_t* p, const flow_fields& fields, ip_family family,
                                     const std::uint8_t* new_dst, std::uint16_t new_port, rewrite_deltas deltas) noexcept {
  return rewrite(p, fields, family, new_dst, new_port, side::destination, deltas);
}

}  // namespace lopower::splice

// ---- TCP ---------------------------------------------------------------------

namespace lopower::splice {

bool clamp_tcp_mss(std::uint8_t* p, std::uint32_t len, std::uint16_t max_mss) noexcept {
  packet_info ip;
  l4_fields f;
  if (view_flow(p, len, ip, f) != translate_status::ok || ip.protocol != ipproto_tcp) return false;
  std::uint8_t* tcp = p + ip.l4_offset;
  if (!(tcp[13] & tcp_flag::syn)) return false;
  const unsigned data_offset = (tcp[12] >> 4) * 4u;  // view_flow checked 20 <= it <= the segment
  std::uint16_t sum = load_be16(tcp + 16);
  bool changed = false;
  for (unsigned i = 20; i < data_offset;) {
    const std::uint8_t kind = tcp[i];
    if (kind == 0) break;  // end of option list
    if (kind == 1) {       // no-operation
      ++i;
      continue;
    }
    if (i + 1 >= data_offset) break;
    const unsigned option_length = tcp[i + 1];
    if (option_length < 2 || i + option_length > data_offset) break;
    // An MSS option of another length is ignored by receivers (Linux's
    // tcp_parse_options), so it is skipped here too.
    if (kind == 2 && option_length == 4) {
      const std::uint16_t mss = load_be16(tcp + i + 2);
      if (mss > max_mss) {
        // The value may sit at an odd offset (after a single NOP): its
        // parity decides which halves of the checksum words it feeds.
        sum = update_at(sum, i + 2, mss, max_mss);
        store_be16(tcp + i + 2, max_mss);
        changed = true;
      }
    }
    i += option_length;
  }
  if (changed) store_be16(tcp + 16, sum);
  return changed;
}

std::uint8_t tcp_flags(const std::uint8_t* p, const packet_info& info) noexcept {
  if (info.protocol != ipproto_tcp || info.fragment || info.l4_length() < 14) return 0;
  return p[info.l4_offset + 13u];
}

const char* to_string(tcp_state s) noexcept {
  switch (s) {
    case tcp_state::syn_sent: return "syn_sent";
    case tcp_state::established: return "established";
    case tcp_state::fin_wait_original: return "fin_wait_original";
    case tcp_state::fin_wait_reply: return "fin_wait_reply";
    case tcp_state::closed: return "closed";
  }
  return "?";
}

namespace {

tcp_state after_fin(tcp_state state, flow_direction dir) {
  const bool original = dir == flow_direction::original;
  switch (state) {
    case tcp_state::syn_sent:
    case tcp_state::established:
      return original ? tcp_state::fin_wait_original : tcp_state::fin_wait_reply;
    case tcp_state::fin_wait_original: return original ? state : tcp_state::closed;
    case tcp_state::fin_wait_reply: return original ? tcp_state::closed : state;
    case tcp_state::closed: return state;
  }
  return state;
}

}  // namespace

tcp_state next_state(tcp_state state, std::uint8_t flags, flow_direction dir) noexcept {
  if (state == tcp_state::closed)
    return dir == flow_direction::original && opens_tcp_flow(flags) ? tcp_state::syn_sent : state;
  if (flags & tcp_flag::rst) return tcp_state::closed;
  if (flags & tcp_flag::fin) return after_fin(state, dir);
  const bool syn_ack = (flags & (tcp_flag::syn | tcp_flag::ack)) == (tcp_flag::syn | tcp_flag::ack);
  if (state == tcp_state::syn_sent && dir == flow_direction::reply && syn_ack) return tcp_state::established;
  return state;
}

std::uint32_t tcp_timeout(tcp_state state) noexcept {
  switch (state) {
    case tcp_state::syn_sent: return timeout::tcp_syn_sent;
    case tcp_state::established: return timeout::tcp_established;
    case tcp_state::fin_wait_original:
    case tcp_state::fin_wait_reply: return timeout::tcp_fin_wait;
    case tcp_state::closed: return timeout::tcp_closed;
  }
  return timeout::tcp_closed;
}

std::uint32_t idle_timeout(std::uint8_t protocol, std::uint16_t dst_port, tcp_state state) noexcept {
  if (protocol == ipproto_tcp) return tcp_timeout(state);
  if (protocol == ipproto_icmp || protocol == ipproto_icmpv6) return timeout::icmp_echo;
  return dst_port == 53 ? timeout::udp_dns : timeout::udp;
}

}  // namespace lopower::splice

// ---- ICMP errors built by lopower -----------------------------------------------

namespace lopower::splice {
namespace {

bool known_icmp4_query(std::uint8_t type) {
  // Echo, router advertisement/solicitation, timestamp, information,
  // address mask (RFC 792, RFC 1256, RFC 950); Linux's icmp_pointers.
  return type == 0 || type == 8 || type == 9 || type == 10 || (type >= 13 && type <= 18);
}

bool may_answer_v4(const std::uint8_t* p, const packet_info& ip) {
  if (load_be16(p + 6) & 0x1fff) return false;  // non-first fragment
  const std::uint8_t src0 = p[12], dst0 = p[16];
  // 0/8 ("this network"), 127/8 loopback, 224/4 multicast, 240/4 reserved
  // and the limited broadcast do not name one host.
  if (src0 == 0 || src0 == 127 || src0 >= 224) return false;
  if (dst0 >= 224) return false;
  if (ip.protocol != ipproto_icmp) return true;
  return ip.l4_length() >= 1 && known_icmp4_query(p[ip.l4_offset]);
}

// The upper-layer header past IPv6 extension headers (RFC 8200 §4): its
// protocol and offset, or false if it cannot be reached or the packet is a
// non-first fragment (whose upper layer is elsewhere).
bool ipv6_upper_layer(const std::uint8_t* p, const packet_info& ip, std::uint8_t& protocol, unsigned& offset) {
  protocol = p[6];
  offset = ipv6_header;
  for (;;) {
    const unsigned left = ip.length - offset;
    switch (protocol) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60:   // destination options
        if (left < 8) return false;
        protocol = p[offset];
        offset += (p[offset + 1] + 1u) * 8u;
        break;
      case 44:  // fragment
        if (left < 8) return false;
        if (load_be16(p + offset + 2) & 0xfff8) return false;
        protocol = p[offset];
        offset += 8;
        break;
      case 51:  // authentication header: length in 4-byte units, minus 2
        if (left < 8) return false;
        protocol = p[offset];
        offset += (p[offset + 1] + 2u) * 4u;
        break;
      default:
        return offset <= ip.length;
    }
    if (offset > ip.length) return false;
  }
}

bool all_zero(const std::uint8_t* a, std::size_t n) {
  return std::all_of(a, a + n, [](std::uint8_t b) { return b == 0; });
}

bool may_answer_v6(const std::uint8_t* p, const packet_info& ip, icmp_error_kind kind) {
  static constexpr std::uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const std::uint8_t* src = p + 8;
  if (all_zero(src, 16) || std::memcmp(src, loopback, 16) == 0 || src[0] == 0xff) return false;
  if (p[24] == 0xff && kind != icmp_error_kind::packet_too_big) return false;
  std::uint8_t protocol;
  unsigned offset;
  if (!ipv6_upper_layer(p, ip, protocol, offset)) return false;
  if (protocol != ipproto_icmpv6) return true;
  if (offset >= ip.length) return false;
  const std::uint8_t type = p[offset];
  return type >= 128 && type != icmp6::redirect;  // types below 128 are errors (RFC 4443 §2.1)
}

void write_icmp_type(std::uint8_t* icmp, bool v6, icmp_error_kind kind, std::uint16_t mtu) {
  std::memset(icmp, 0, icmp_header);
  switch (kind) {
    case icmp_error_kind::admin_prohibited:
      icmp[0] = v6 ? icmp6::unreachable : icmp4::unreachable;
      icmp[1] = v6 ? 1 : 13;
      break;
    case icmp_error_kind::host_unreachable:
      icmp[0] = v6 ? icmp6::unreachable : icmp4::unreachable;
      icmp[1] = v6 ? 3 : 1;
      break;
    case icmp_error_kind::packet_too_big:
      icmp[0] = v6 ? icmp6::packet_too_big : icmp4::unreachable;
      icmp[1] = v6 ? 0 : 4;
      if (v6)
        store_be32(icmp + 4, mtu);
      else
        store_be16(icmp + 6, mtu);  // next-hop MTU, RFC 1191 §4
      break;
    case icmp_error_kind::time_exceeded:
      icmp[0] = v6 ? icmp6::time_exceeded : icmp4::time_exceeded;
      icmp[1] = 0;  // in transit
      break;
  }
}

}  // namespace

std::uint16_t build_icmp_error(std::uint8_t* out, std::size_t out_capacity, const std::uint8_t* original,
                               std::uint32_t original_len, icmp_error_kind kind, std::uint16_t mtu,
                               const ip_address& from) noexcept {
  const auto ip = parse_ip(original, original_len);
  if (!ip || from.family != ip->family) return 0;
  const bool v6 = is_v6(ip->family);
  if (v6 ? !may_answer_v6(original, *ip, kind) : !may_answer_v4(original, *ip)) return 0;

  const std::size_t headers = (v6 ? ipv6_header : ipv4_header) + icmp_header;
  const std::size_t limit = v6 ? icmp_error_max_v6 : icmp_error_max_v4;
  if (out_capacity < headers) return 0;
  const std::size_t quote = std::min({std::size_t{ip->length}, limit - headers, out_capacity - headers});
  // RFC 792: at least the IP header and the first 64 bits of the data.
  if (quote < std::min<std::size_t>(ip->length, ip->l4_offset + 8u)) return 0;
  const auto total = static_cast<std::uint16_t>(headers + quote);

  std::uint8_t* icmp = out + headers - icmp_header;
  write_icmp_type(icmp, v6, kind, mtu);
  std::memcpy(icmp + icmp_header, original, quote);
  if (!v6) {
    std::memset(out, 0, ipv4_header);
    out[0] = 0x45;
    store_be16(out + 2, total);
    out[8] = default_ttl;
    out[9] = ipproto_icmp;
    std::memcpy(out + 12, from.bytes.data(), 4);
    std::memcpy(out + 16, original + 12, 4);
    store_be16(out + 10, checksum(out, ipv4_header));
    store_be16(icmp + 2, checksum(icmp, icmp_header + quote));
  } else {
    std::memset(out, 0, ipv6_header);
    out[0] = 0x60;
    store_be16(out + 4, static_cast<std::uint16_t>(icmp_header + quote));
    out[6] = ipproto_icmpv6;
    out[7] = default_ttl;
    std::memcpy(out + 8, from.bytes.data(), 16);
    std::memcpy(out + 24, original + 8, 16);
    const auto l4_length = static_cast<std::uint32_t>(icmp_header + quote);
    store_be16(icmp + 2, checksum(icmp, l4_length, pseudo_header_sum(true, out + 8, out + 24, ipproto_icmpv6, l4_length)));
  }
  return total;
}

}  // namespace lopower::splice

// ---- ICMP errors from the tailnet ------------------------------------------------

namespace lopower::splice {
namespace {

bool is_error_type(std::uint8_t type, bool v6) {
  return v6 ? type == icmp6::unreachable || type == icmp6::packet_too_big || type == icmp6::time_exceeded ||
                  type == icmp6::parameter_problem
            : type == icmp4::unreachable || type == icmp4::time_exceeded || type == icmp4::parameter_problem;
}

// An ICMP error and the packet it quotes, as offsets from the outer start.
struct error_view {
  packet_info outer;
  std::uint16_t icmp_at = 0;
  std::uint16_t quote_at = 0;
  std::uint8_t quoted_protocol = 0;
  l4_fields quoted;
};

// The quoted IP header at `q` (`qlen` bytes present): its L4 offset from
// `q` and protocol. The quote's own lengths are not checked against what
// is present: quotes are cut short by design.
translate_status view_quoted_ip(const std::uint8_t* q, unsigned qlen, bool v6, unsigned& l4, std::uint8_t& protocol) {
  if (qlen < 1 || (q[0] >> 4) != (v6 ? 6 : 4)) return translate_status::malformed;
  if (v6) {
    if (qlen < ipv6_header + 8) return translate_status::malformed;
    if (q[6] == 44) return translate_status::fragment;
    l4 = ipv6_header;
    protocol = q[6];
    return translate_status::ok;
  }
  if (qlen < ipv4_header) return translate_status::malformed;
  l4 = (q[0] & 0x0f) * 4u;
  if (l4 < ipv4_header || l4 + 8 > qlen) return translate_status::malformed;
  if (load_be16(q + 6) & 0x1fff) return translate_status::fragment;  // no ports in a non-first fragment
  protocol = q[9];
  return translate_status::ok;
}

translate_status view_error(const std::uint8_t* p, std::uint32_t len, error_view& e) {
  const auto outer = parse_ip(p, len);
  if (!outer) return translate_status::malformed;
  if (outer->fragment) return translate_status::fragment;
  const bool v6 = is_v6(outer->family);
  if (outer->protocol != icmp_protocol(v6)) return translate_status::unsupported;
  if (outer->l4_length() < icmp_header) return translate_status::malformed;
  if (!is_error_type(p[outer->l4_offset], v6)) return translate_status::unsupported;
  e.outer = *outer;
  e.icmp_at = outer->l4_offset;
  e.quote_at = static_cast<std::uint16_t>(e.icmp_at + icmp_header);
  const unsigned qlen = outer->length - e.quote_at;
  unsigned ql4 = 0;
  if (const auto st = view_quoted_ip(p + e.quote_at, qlen, v6, ql4, e.quoted_protocol); st != translate_status::ok)
    return st;
  return view_l4(p, static_cast<std::uint16_t>(e.quote_at + ql4), qlen - ql4, e.quoted_protocol, v6, false, e.quoted);
}

}  // namespace

translate_status quoted_flow_key(const std::uint8_t* p, std::uint32_t len, flow_key& quoted) noexcept {
  error_view e;
  if (const auto st = view_error(p, len, e); st != translate_status::ok) return st;
  const bool v6 = is_v6(e.outer.family);
  const std::uint8_t* q = p + e.quote_at;
  quoted = make_flow_key(e.outer.family, e.quoted_protocol, q + src_at(v6), load_be16(p + e.quoted.src_port_at),
                         q + dst_at(v6), load_be16(p + e.quoted.dst_port_at));
  return translate_status::ok;
}

namespace {

// Toward the device (`outbound` false): the outer destination and the
// quoted source become `addr`/`port`. Away from it (true): the outer
// source and the quoted destination.
translate_status translate_icmp_error(std::uint8_t* p, std::uint32_t len, const ip_address& device_addr,
                                      std::uint16_t device_port, bool outbound) noexcept {
  error_view e;
  if (const auto st = view_error(p, len, e); st != translate_status::ok) return st;
  if (device_addr.family != e.outer.family) return translate_status::family_mismatch;
  const bool v6 = is_v6(e.outer.family);
  const std::size_t n = address_size(v6);
  std::uint8_t* icmp = p + e.icmp_at;
  std::uint8_t* q = p + e.quote_at;

  // The outer ICMP checksum covers the whole quote, and over IPv6 the
  // outer addresses too: every change below is also added to it.
  checksum_delta outer_icmp;
  const auto patch = [&](std::uint8_t* at, const std::uint8_t* bytes, std::size_t count) {
    outer_icmp.replace(at, bytes, count, static_cast<unsigned>((at - icmp) & 1));
    std::memcpy(at, bytes, count);
  };
  const auto patch16 = [&](std::uint8_t* at, std::uint16_t value) {
    std::uint8_t bytes[2];
    store_be16(bytes, value);
    patch(at, bytes, 2);
  };

  // The outer destination: lopower's tailnet address becomes the device's
  // (outbound: the outer source, the device's, becomes lopower's).
  std::uint8_t* outer_dst = p + (outbound ? src_at(v6) : dst_at(v6));
  checksum_delta outer_address;
  outer_address.replace(outer_dst, device_addr.bytes.data(), n);
  if (v6) outer_icmp = outer_address;
  std::memcpy(outer_dst, device_addr.bytes.data(), n);
  if (!v6) store_be16(p + 10, outer_address.apply(load_be16(p + 10)));

  // The quoted source address and port (outbound: destination), and the
  // quoted checksums they feed.
  std::uint8_t* quoted_src = q + (outbound ? dst_at(v6) : src_at(v6));
  std::uint8_t* quoted_port = p + (outbound ? e.quoted.dst_port_at : e.quoted.src_port_at);
  checksum_delta quoted_address;
  quoted_address.replace(quoted_src, device_addr.bytes.data(), n);
  checksum_delta quoted_l4 = e.quoted.pseudo_header ? quoted_address : checksum_delta{};
  quoted_l4.replace16(load_be16(quoted_port), device_port);
  patch(quoted_src, device_addr.bytes.data(), n);
  patch16(quoted_port, device_port);
  if (!v6) patch16(q + 10, quoted_address.apply(load_be16(q + 10)));
  if (e.quoted.checksum_at != 0) {
    std::uint8_t* at = p + e.quoted.checksum_at;
    const std::uint16_t old = load_be16(at);
    if (!(e.quoted.udp && old == 0)) {
      const std::uint16_t updated = quoted_l4.apply(old);
      patch16(at, e.quoted.udp ? udp_checksum_field(updated) : updated);
    }
  }
  store_be16(icmp + 2, outer_icmp.apply(load_be16(icmp + 2)));
  return translate_status::ok;
}

}  // namespace

translate_status translate_icmp_error_inner(std::uint8_t* p, std::uint32_t len, const ip_address& device_addr,
                                            std::uint16_t device_port) noexcept {
  return translate_icmp_error(p, len, device_addr, device_port, false);
}

translate_status translate_icmp_error_outbound(std::uint8_t* p, std::uint32_t len, const ip_address& our_addr,
                                               std::uint16_t our_port) noexcept {
  return translate_icmp_error(p, len, our_addr, our_port, true);
}

bool decrement_hop_limit(std::uint8_t* p, std::uint32_t len) noexcept {
  const auto ip = parse_ip(p, len);
  if (!ip) return false;
  if (is_v6(ip->family)) {
    if (p[7] <= 1) return false;
    --p[7];
    return true;
  }
  if (p[8] <= 1) return false;
  const std::uint16_t old_word = load_be16(p + 8);  // TTL, protocol
  const auto new_word = static_cast<std::uint16_t>(old_word - 0x100);
  store_be16(p + 8, new_word);
  store_be16(p + 10, update16(load_be16(p + 10), old_word, new_word));
  return true;
}

}  // namespace lopower::splice
