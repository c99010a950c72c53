#include "control/dns/dns_answerer.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "control/dns/ldns_owned.h"
#include "lopower/byte_order.h"
#include "lopower/dns_name.h"
#include "lopower/hex.h"

namespace lopower::dns {

namespace {

using bytes = std::span<const std::uint8_t>;
using wire_name = std::string;

// --- wire constants -----------------------------------------------------------------

constexpr std::uint16_t type_a = LDNS_RR_TYPE_A;
constexpr std::uint16_t type_soa = LDNS_RR_TYPE_SOA;
constexpr std::uint16_t type_ptr = LDNS_RR_TYPE_PTR;
constexpr std::uint16_t type_aaaa = LDNS_RR_TYPE_AAAA;
constexpr std::uint16_t type_opt = LDNS_RR_TYPE_OPT;
constexpr std::uint16_t type_tsig = LDNS_RR_TYPE_TSIG;
constexpr std::uint16_t type_ixfr = LDNS_RR_TYPE_IXFR;
constexpr std::uint16_t type_axfr = LDNS_RR_TYPE_AXFR;
constexpr std::uint16_t type_any = LDNS_RR_TYPE_ANY;
constexpr std::uint16_t class_in = LDNS_RR_CLASS_IN;
constexpr std::uint16_t class_any = LDNS_RR_CLASS_ANY;

constexpr std::uint8_t rcode_formerr = LDNS_RCODE_FORMERR;
constexpr std::uint8_t rcode_servfail = LDNS_RCODE_SERVFAIL;
constexpr std::uint8_t rcode_nxdomain = LDNS_RCODE_NXDOMAIN;
constexpr std::uint8_t rcode_notimp = LDNS_RCODE_NOTIMPL;
constexpr std::uint8_t rcode_refused = LDNS_RCODE_REFUSED;
constexpr std::uint8_t rcode_badvers = 16;  // extended: 1 in the OPT's upper bits, 0 in the header

// Header byte 2: QR opcode(4) AA TC RD; byte 3: RA Z AD CD rcode(4).
constexpr std::uint8_t flag_qr = 0x80;
constexpr std::uint8_t mask_opcode = 0x78;
constexpr std::uint8_t flag_rd = 0x01;
constexpr std::uint8_t flag_ra = 0x80;
constexpr std::uint8_t flag_cd = 0x10;
constexpr std::size_t qdcount_at = 4;

// An RR after the question is at least a root owner and ten bytes, so a
// message of 65535 bytes holds fewer than this many: more answer records
// than this cannot fit even over TCP.
constexpr std::size_t max_records = max_message_size / 11;

// SOA fields for the local zones (RNAME as unbound's local zones have it).
constexpr std::uint32_t soa_serial = 1;
constexpr std::uint32_t soa_refresh = 3600;
constexpr std::uint32_t soa_retry = 1200;
constexpr std::uint32_t soa_expire = 604'800;
constexpr const char* soa_rname = "nobody.invalid.";

std::uint16_t read16(bytes m, std::size_t at) noexcept { return load_be16(m.data() + at); }
std::uint32_t read32(bytes m, std::size_t at) noexcept { return load_be32(m.data() + at); }

// ASCII lowercase over the whole wire form: length bytes are at most 63,
// below 'A', so only label bytes change. DNS names compare this way
// (RFC 4343).
void to_lower(wire_name& n) noexcept {
  for (char& c : n)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
}

wire_name wire_of(const ldns_rdf* dname) {
  const auto* data = ldns_rdf_data(dname);
  wire_name n(reinterpret_cast<const char*>(data), ldns_rdf_size(dname));
  to_lower(n);
  return n;
}

// "ts1.tailnet.test" or "ts1.tailnet.test." (escapes as in zone files) in
// lowercase wire form; nullopt when it is not a domain name.
std::optional<wire_name> wire_from_text(const std::string& text) {
  if (text.empty() || text.find('\0') != std::string::npos) return std::nullopt;
  ldns_rdf_ptr name(ldns_dname_new_frm_str(text.c_str()));
  if (!name) return std::nullopt;
  return wire_of(name.get());
}

// Whether `name` is `suffix` or below it, label by label.
bool is_under(const wire_name& name, const wire_name& suffix) noexcept {
  for (std::size_t at = 0; at < name.size(); at += 1 + static_cast<std::uint8_t>(name[at])) {
    if (name.size() - at == suffix.size() && name.compare(at, std::string::npos, suffix) == 0) return true;
    if (name[at] == 0) break;
  }
  return false;
}

// "4.3.2.1.in-addr.arpa." or the 32 nibbles of ip6.arpa.
std::string reverse_text(const ip_address& a) {
  std::string out;
  if (a.family == ip_family::v4) {
    for (int i = 3; i >= 0; --i) out += std::to_string(a.bytes[static_cast<std::size_t>(i)]) + ".";
    return out + "in-addr.arpa.";
  }
  for (int i = 15; i >= 0; --i) {
    const std::uint8_t b = a.bytes[static_cast<std::size_t>(i)];
    out += hex_digits[b & 15];
    out += '.';
    out += hex_digits[b >> 4];
    out += '.';
  }
  return out + "ip6.arpa.";
}

// --- the query ------------------------------------------------------------------------

struct parsed_query {
  std::uint16_t id = 0;
  bool rd = false;
  bool cd = false;
  ldns_rr_ptr question;  // owner as asked (case kept), type, class
  wire_name name;        // the owner, lowercase
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  bool edns = false;
  std::uint16_t edns_udp_size = 0;
  std::uint8_t edns_version = 0;
  bool edns_do = false;
  std::size_t opt_size_at = 0;  // where the OPT's payload size (its CLASS) is
  bool tsig = false;
  std::size_t end = 0;  // the message's length; bytes after it are ignored
};

// RFC 1035 4.1.4: a compression pointer refers to a prior occurrence of a
// name, so the name it leads to lies wholly before the part that pointed
// to it. ldns follows pointers anywhere, forward too, and into the middle
// of labels; that can read bytes after the message's end, which the
// forwarded copy leaves out. Such names are refused here (BIND refuses
// forward pointers too). Each jump lands lower than the last, so this also
// ends loops.
bool pointers_go_back(bytes m, std::size_t at) noexcept {
  std::size_t start = at;        // where the current run of labels began
  std::size_t limit = m.size();  // and the bytes it may use
  for (std::size_t pos = at; pos < limit;) {
    const std::uint8_t length = m[pos];
    if (length == 0) return true;
    if ((length & 0xc0) == 0xc0) {
      if (pos + 1 >= limit) return false;
      const std::size_t target = static_cast<std::size_t>(length & 0x3f) << 8 | m[pos + 1];
      if (target >= start) return false;
      limit = start;
      start = pos = target;
    } else if ((length & 0xc0) != 0) {
      return false;  // extended label types (RFC 6891 6.1.1 retired them)
    } else {
      pos += 1 + length;
    }
  }
  return false;
}

struct record_frame {
  std::uint16_t type = 0;
  std::uint16_t rrclass = 0;
  std::uint32_t ttl = 0;
  bool root_owner = false;
  bool owner_compressed = false;
  std::size_t rdata_at = 0;
  std::uint16_t rdlength = 0;
};

// One record after the question: the owner by ldns, then the fixed fields
// and RDLENGTH bytes of RDATA, bounded by the message. Advances `pos`.
std::optional<record_frame> next_record(bytes m, std::size_t& pos) {
  record_frame f;
  const std::size_t owner_at = pos;
  if (!pointers_go_back(m, owner_at)) return std::nullopt;
  ldns_rdf* raw = nullptr;
  if (ldns_wire2dname(&raw, m.data(), m.size(), &pos) != LDNS_STATUS_OK) {
    ldns_rdf_deep_free(raw);
    return std::nullopt;
  }
  const ldns_rdf_ptr owner(raw);
  f.root_owner = ldns_rdf_size(owner.get()) == 1;
  f.owner_compressed = pos - owner_at != ldns_rdf_size(owner.get());
  if (pos > m.size() || m.size() - pos < 10) return std::nullopt;
  f.type = read16(m, pos);
  f.rrclass = read16(m, pos + 2);
  f.ttl = read32(m, pos + 4);
  f.rdlength = read16(m, pos + 8);
  pos += 10;
  if (m.size() - pos < f.rdlength) return std::nullopt;
  f.rdata_at = pos;
  pos += f.rdlength;
  return f;
}

// EDNS options: code, length, data; they must fill RDATA exactly (RFC 6891).
bool options_well_formed(bytes m, const record_frame& f) noexcept {
  std::size_t at = 0;
  while (at < f.rdlength) {
    if (f.rdlength - at < 4) return false;
    const std::size_t length = read16(m, f.rdata_at + at + 2);
    at += 4;
    if (f.rdlength - at < length) return false;
    at += length;
  }
  return true;
}

// A query with one question and well-formed records; nullopt otherwise.
// The caller has checked the header's size, QR and opcode.
std::optional<parsed_query> parse_query(bytes m) {
  parsed_query q;
  q.id = read16(m, 0);
  q.rd = (m[2] & flag_rd) != 0;
  q.cd = (m[3] & flag_cd) != 0;
  if (read16(m, qdcount_at) != 1) return std::nullopt;
  std::size_t pos = header_size;
  if (!pointers_go_back(m, pos)) return std::nullopt;
  ldns_rr* raw = nullptr;
  if (ldns_wire2rr(&raw, m.data(), m.size(), &pos, LDNS_SECTION_QUESTION) != LDNS_STATUS_OK) return std::nullopt;
  q.question.reset(raw);
  q.name = wire_of(ldns_rr_owner(q.question.get()));
  q.qtype = static_cast<std::uint16_t>(ldns_rr_get_type(q.question.get()));
  q.qclass = static_cast<std::uint16_t>(ldns_rr_get_class(q.question.get()));

  const std::size_t ancount = read16(m, 6), nscount = read16(m, 8), arcount = read16(m, 10);
  for (std::size_t i = 0; i < ancount + nscount + arcount; ++i) {
    const std::size_t at = pos;
    const auto f = next_record(m, pos);
    if (!f) return std::nullopt;
    const bool additional = i >= ancount + nscount;
    if (f->type == type_tsig) {
      q.tsig = true;
    } else if (f->type == type_opt) {
      // One OPT, in the additional section, owned by the root (RFC 6891 6.1.1).
      if (!additional || q.edns || !f->root_owner || f->owner_compressed || !options_well_formed(m, *f))
        return std::nullopt;
      q.edns = true;
      q.opt_size_at = at + 3;  // root owner (1), TYPE (2)
      q.edns_udp_size = f->rrclass;
      q.edns_version = static_cast<std::uint8_t>(f->ttl >> 16);
      q.edns_do = (f->ttl & 0x8000) != 0;
    }
  }
  q.end = pos;
  return q;
}

// The header alone, for FORMERR and NOTIMP (the question may not parse).
std::vector<std::uint8_t> header_only_reply(bytes m, std::uint8_t rcode) {
  std::vector<std::uint8_t> out(header_size, 0);
  out[0] = m[0];
  out[1] = m[1];
  const bool rd = (m[2] & flag_rd) != 0;
  out[2] = static_cast<std::uint8_t>(flag_qr | (m[2] & mask_opcode) | (rd ? flag_rd : 0));
  out[3] = static_cast<std::uint8_t>((rd ? flag_ra : 0) | (m[3] & flag_cd) | rcode);
  return out;
}

// --- the reply ---------------------------------------------------------------------------

// Header, question and OPT of a reply to `q`; records go in after.
ldns_pkt_ptr reply_packet(const parsed_query& q, std::uint8_t rcode, bool authoritative, bool truncated) {
  ldns_pkt_ptr p(ldns_pkt_new());
  if (!p) return p;
  ldns_pkt_set_id(p.get(), q.id);
  ldns_pkt_set_qr(p.get(), true);
  ldns_pkt_set_opcode(p.get(), LDNS_PACKET_QUERY);
  ldns_pkt_set_aa(p.get(), authoritative);
  ldns_pkt_set_tc(p.get(), truncated);
  ldns_pkt_set_rd(p.get(), q.rd);
  ldns_pkt_set_ra(p.get(), q.rd);  // as tailscale: recursion is offered to whoever asks for it
  ldns_pkt_set_cd(p.get(), q.cd);
  ldns_pkt_set_rcode(p.get(), static_cast<std::uint8_t>(rcode & 0x0f));
  ldns_rr_ptr question(ldns_rr_clone(q.question.get()));
  if (!question || !ldns_pkt_push_rr(p.get(), LDNS_SECTION_QUESTION, question.get())) return nullptr;
  (void)question.release();
  if (q.edns) {
    ldns_pkt_set_edns_udp_size(p.get(), max_udp_size);
    ldns_pkt_set_edns_extended_rcode(p.get(), static_cast<std::uint8_t>(rcode >> 4));
    ldns_pkt_set_edns_version(p.get(), 0);
    ldns_pkt_set_edns_do(p.get(), q.edns_do);
  }
  return p;
}

bool push(ldns_pkt* p, ldns_pkt_section section, ldns_rr_ptr rr) {
  if (!rr || !ldns_pkt_push_rr(p, section, rr.get())) return false;
  (void)rr.release();
  return true;
}

// A record of class IN. Takes the RDATA fields (any of them null when ldns
// ran out of memory: then null).
ldns_rr_ptr make_rr(const ldns_rdf* owner, std::uint16_t type, std::uint32_t ttl,
                    std::initializer_list<ldns_rdf*> rdata) {
  std::vector<ldns_rdf_ptr> owned;
  for (ldns_rdf* r : rdata) owned.emplace_back(r);
  ldns_rr_ptr rr(ldns_rr_new());
  ldns_rdf_ptr name(ldns_rdf_clone(owner));
  if (!rr || !name || std::any_of(owned.begin(), owned.end(), [](const ldns_rdf_ptr& r) { return !r; })) return nullptr;
  ldns_rr_set_owner(rr.get(), name.release());
  ldns_rr_set_type(rr.get(), static_cast<ldns_rr_type>(type));
  ldns_rr_set_class(rr.get(), LDNS_RR_CLASS_IN);
  ldns_rr_set_ttl(rr.get(), ttl);
  for (ldns_rdf_ptr& r : owned) {
    if (!ldns_rr_push_rdf(rr.get(), r.get())) return nullptr;
    (void)r.release();
  }
  return rr;
}

ldns_rdf* dname_rdf(const wire_name& n) { return ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, n.size(), n.data()); }

ldns_rr_ptr address_rr(const ldns_rdf* owner, const ip_address& a) {
  if (a.family == ip_family::v4)
    return make_rr(owner, type_a, answer_ttl, {ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, a.bytes.data())});
  return make_rr(owner, type_aaaa, answer_ttl, {ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, a.bytes.data())});
}

ldns_rr_ptr soa_rr(const wire_name& apex) {
  const ldns_rdf_ptr owner(dname_rdf(apex));
  if (!owner) return nullptr;
  return make_rr(owner.get(), type_soa, negative_ttl,
                 {dname_rdf(apex), ldns_dname_new_frm_str(soa_rname),
                  ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, soa_serial),
                  ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa_refresh),
                  ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa_retry),
                  ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, soa_expire),
                  ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, negative_ttl)});
}

// Empty only when ldns runs out of memory.
std::vector<std::uint8_t> to_wire(const ldns_pkt* p) {
  if (!p) return {};
  std::uint8_t* raw = nullptr;
  std::size_t size = 0;
  const ldns_status status = ldns_pkt2wire(&raw, p, &size);
  const ldns_wire_ptr owned(raw);
  if (status != LDNS_STATUS_OK || !raw) return {};
  return {raw, raw + size};
}

std::size_t answer_limit(const parsed_query& q, transport t) noexcept {
  if (t == transport::tcp) return max_message_size;
  if (!q.edns) return classic_udp_size;
  return std::clamp<std::size_t>(q.edns_udp_size, classic_udp_size, max_udp_size);
}

// An answer that says the record is not there: it carries the zone's SOA,
// so the device knows how long to cache that (RFC 2308).
bool is_negative(outcome why) noexcept {
  return why == outcome::nodata || why == outcome::family_filtered || why == outcome::nxdomain;
}

// A reply with no records (an error, or nothing to say).
std::vector<std::uint8_t> plain_reply(const parsed_query& q, std::uint8_t rcode, bool authoritative) {
  return to_wire(reply_packet(q, rcode, authoritative, false).get());
}

}  // namespace

// --- the zone ----------------------------------------------------------------------------

struct answerer::resolution {
  outcome why = outcome::no_upstream;
  std::uint8_t rcode = 0;
  bool authoritative = false;
  std::vector<const ip_address*> addresses;
  const wire_name* ptr_target = nullptr;
  const wire_name* apex = nullptr;  // the local zone the name is in, if any
  bool soa_answer = false;          // the SOA goes in the answer (else in authority for NODATA and NXDOMAIN)
  const std::vector<std::string>* resolvers = nullptr;
  bool family_filtered = false;     // addresses left out: the device's tunnel cannot carry their family
};

answerer::answerer(const zone& z) : default_resolvers_(z.default_resolvers), ipv4_enabled_(z.ipv4_enabled) {
  // The tailnet's reverse zones are always ours, as tailscale adds them
  // to its routes whenever MagicDNS is on. They are added first, so a
  // split-DNS route for the same suffix does not displace them.
  for (int x = 64; x <= 127; ++x) add_route(std::to_string(x) + ".100.in-addr.arpa.", true, {});
  add_route("0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.", true, {});
  // Before the tailnet's routes: the split-DNS route that sends the
  // tailnet's peers to lopower for the device domain reaches lopower too,
  // and must not make it forward the domain to itself.
  if (!z.device_domain.empty()) {
    device_domain_ = wire_from_text(z.device_domain);
    add_route(z.device_domain, true, {});
  }
  for (const std::string& s : z.local_suffixes) add_route(s, true, {});
  for (const auto& [suffix, resolvers] : z.routes) add_route(suffix, resolvers.empty(), resolvers);

  // Peers first, so their names win the PTR for an address that an extra
  // record also names.
  for (const auto& [name, addresses] : z.names) {
    const auto key = wire_from_text(name);
    if (!key) {
      problems_.push_back("name \"" + name + "\" is not a domain name: skipped");
      continue;
    }
    hosts_.try_emplace(*key);
    for (const ip_address& a : addresses) add_host(*key, a);
  }
  for (const extra_record& r : z.extra) {
    if (r.type != "" && r.type != "A" && r.type != "AAAA") {
      problems_.push_back("extra record \"" + r.name + "\" of type \"" + r.type +
                          "\": only A and AAAA are served: skipped");
      continue;
    }
    const auto address = ip_address::parse(r.value);
    if (!address) {
      problems_.push_back("extra record \"" + r.name + "\": \"" + r.value + "\" is not an IP address: skipped");
      continue;
    }
    const auto key = wire_from_text(r.name);
    if (!key) {
      problems_.push_back("extra record \"" + r.name + "\" is not a domain name: skipped");
      continue;
    }
    add_host(*key, *address);  // the value decides A or AAAA, as in tailscale
  }
  add_devices(z);
  for (const auto& [name, unused] : hosts_) add_interior(name);
  for (const auto& [name, unused] : ptr_) add_interior(name);
}

void answerer::add_route(const std::string& suffix, bool local, const std::vector<std::string>& resolvers) {
  const auto key = wire_from_text(suffix);
  if (!key) {
    problems_.push_back("DNS suffix \"" + suffix + "\" is not a domain name: skipped");
    return;
  }
  routes_.try_emplace(*key, route{local, local ? std::vector<std::string>{} : resolvers});
}

// NAME.<device domain> for each device whose name can be one host-name
// label. Device names are case-sensitive and DNS names are not: names that
// differ only in case would be one DNS name, so none of them is answered.
void answerer::add_devices(const zone& z) {
  if (!device_domain_) return;
  std::map<std::string, unsigned> spellings;  // lowercase name -> devices
  for (const auto& [name, unused] : z.devices) {
    std::string lower = name;
    to_lower(lower);  // ASCII, as DNS compares names
    ++spellings[lower];
  }
  for (const auto& [name, addresses] : z.devices) {
    if (!is_hostname_label(name)) {
      problems_.push_back("device \"" + name + "\" is not answered by name: a DNS label has only letters, digits and "
                          "'-' (not first or last)");
      continue;
    }
    std::string lower = name;
    to_lower(lower);  // ASCII, as DNS compares names
    if (spellings[lower] > 1) {
      problems_.push_back("device \"" + name + "\" is not answered by name: another device's name differs only in case");
      continue;
    }
    const auto key = wire_from_text(name + "." + z.device_domain);
    if (!key) continue;  // too long a name with the domain
    hosts_.try_emplace(*key);
    for (const ip_address& a : addresses) add_host(*key, a);
  }
}

void answerer::add_host(const wire_name& name, const ip_address& address) {
  auto& addresses = hosts_[name];
  if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) addresses.push_back(address);
  if (const auto reverse = wire_from_text(reverse_text(address))) ptr_.try_emplace(*reverse, name);
}

// The names above a known name exist too (empty non-terminals): they get
// NODATA, not NXDOMAIN, which a resolver may take as "nothing below"
// (RFC 8020).
void answerer::add_interior(const wire_name& name) {
  for (std::size_t at = 0; at < name.size() && name[at] != 0;) {
    at += 1 + static_cast<std::uint8_t>(name[at]);
    if (at < name.size() && name[at] != 0) interior_.insert(name.substr(at));
  }
}

const std::pair<const wire_name, answerer::route>* answerer::longest_route(const wire_name& name) const {
  for (std::size_t at = 0; at < name.size(); at += 1 + static_cast<std::uint8_t>(name[at])) {
    if (const auto it = routes_.find(name.substr(at)); it != routes_.end()) return &*it;
    if (name[at] == 0) break;
  }
  return nullptr;
}

// What a tailnet peer may ask: names in the device domain, answered here (a
// split-DNS route below the domain would forward: that is the tailnet's own
// business, not lopower's).
bool answerer::serves_tailnet(const wire_name& name) const {
  if (!device_domain_ || !is_under(name, *device_domain_)) return false;
  const auto* best = longest_route(name);
  return best != nullptr && best->second.local;
}

// The addresses of the asked type (A, AAAA, or both for ANY) that the
// device can use. IPv4 off on the device side leaves A out as if the name
// had none; a device's own family limit is told apart, for the counter.
void answerer::add_addresses(resolution& r, const std::vector<ip_address>& addresses, std::uint16_t qtype,
                             tunnel_families device) const {
  const bool any = qtype == type_any;
  for (const ip_address& a : addresses) {
    const bool v4 = a.family == ip_family::v4;
    const bool asked = v4 ? (qtype == type_a || any) && ipv4_enabled_ : qtype == type_aaaa || any;
    if (!asked) continue;
    if (v4 ? device.ipv4 : device.ipv6) r.addresses.push_back(&a);
    else r.family_filtered = true;
  }
}

answerer::resolution answerer::resolve(const wire_name& name, std::uint16_t qtype, std::uint16_t qclass,
                                       tunnel_families device) const {
  resolution r;
  if (qtype == type_axfr || qtype == type_ixfr) {
    r.why = outcome::refused;
    r.rcode = rcode_refused;
    return r;
  }
  const auto* best = longest_route(name);
  if (best && best->second.local) r.apex = &best->first;
  const auto host = hosts_.find(name);
  const auto ptr = ptr_.find(name);
  const bool known = host != hosts_.end() || ptr != ptr_.end();
  const bool exists = known || (r.apex && (name == *r.apex || interior_.contains(name)));

  if (!exists && !r.apex) {
    static const wire_name onion("\5onion\0", 7);
    if (is_under(name, onion)) {  // RFC 7686: never resolved
      r.why = outcome::nxdomain;
      r.rcode = rcode_nxdomain;
      r.authoritative = true;
      return r;
    }
    if (best) {
      r.why = outcome::forwarded_route;
      r.resolvers = &best->second.resolvers;
    } else if (!default_resolvers_.empty()) {
      r.why = outcome::forwarded_default;
      r.resolvers = &default_resolvers_;
    } else {
      r.why = outcome::no_upstream;
      r.rcode = rcode_servfail;
    }
    return r;
  }

  // Ours: a known name, or a name in a local zone.
  if (qclass != class_in && qclass != class_any) {
    r.why = outcome::refused;
    r.rcode = rcode_refused;
    return r;
  }
  r.authoritative = true;
  const bool any = qtype == type_any;
  if (host != hosts_.end()) add_addresses(r, host->second, qtype, device);
  if (ptr != ptr_.end() && (qtype == type_ptr || any)) r.ptr_target = &ptr->second;
  r.soa_answer = r.apex && name == *r.apex && (qtype == type_soa || any);
  if (!r.addresses.empty() || r.ptr_target || r.soa_answer) {
    r.why = outcome::answered;
  } else if (r.family_filtered) {
    r.why = outcome::family_filtered;
  } else if (exists) {
    r.why = outcome::nodata;
  } else {
    r.why = outcome::nxdomain;
    r.rcode = rcode_nxdomain;
  }
  return r;
}

decision answerer::handle_query(std::span<const std::uint8_t> query, transport t, tunnel_families device,
                                asker who) const {
  decision d;
  if (query.size() < header_size) {
    d.why = outcome::too_short;
    return d;
  }
  if ((query[2] & flag_qr) != 0) {
    d.why = outcome::not_a_query;
    return d;
  }
  d.kind = decision_kind::answer;
  if ((query[2] & mask_opcode) != 0) {
    d.why = outcome::not_implemented;
    d.message = header_only_reply(query, rcode_notimp);
    return d;
  }
  const auto q = parse_query(query);
  if (!q) {
    d.why = outcome::malformed;
    d.message = header_only_reply(query, rcode_formerr);
    return d;
  }
  if (q->tsig) {  // no keys here; and ldns_wire2pkt, used on answers, leaks on two TSIG records
    d.why = outcome::refused;
    d.message = plain_reply(*q, rcode_refused, false);
  } else if (q->edns && q->edns_version != 0) {
    d.why = outcome::bad_version;
    d.message = plain_reply(*q, rcode_badvers, false);
  } else if (who == asker::tailnet_peer && !serves_tailnet(q->name)) {
    d.why = outcome::not_for_tailnet;
    d.message = plain_reply(*q, rcode_refused, false);
  } else {
    const resolution r = resolve(q->name, q->qtype, q->qclass, device);
    d.why = r.why;
    if (r.resolvers) {
      d.kind = decision_kind::forward;
      d.resolvers = *r.resolvers;
      d.message.assign(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(q->end));
      if (q->edns && q->edns_udp_size > max_udp_size) {
        store_be16(d.message.data() + q->opt_size_at, max_udp_size);
      }
      return d;
    }
    const std::size_t limit = answer_limit(*q, t);
    if (r.addresses.size() <= max_records) {
      const ldns_pkt_ptr p = reply_packet(*q, r.rcode, r.authoritative, false);
      const ldns_rdf* owner = ldns_rr_owner(q->question.get());
      bool built = p != nullptr;
      for (const ip_address* a : r.addresses)
        built = built && push(p.get(), LDNS_SECTION_ANSWER, address_rr(owner, *a));
      if (r.ptr_target)
        built = built && push(p.get(), LDNS_SECTION_ANSWER,
                              make_rr(owner, type_ptr, answer_ttl, {dname_rdf(*r.ptr_target)}));
      if (r.soa_answer)
        built = built && push(p.get(), LDNS_SECTION_ANSWER, soa_rr(*r.apex));
      else if (r.apex && is_negative(r.why))
        built = built && push(p.get(), LDNS_SECTION_AUTHORITY, soa_rr(*r.apex));
      if (built) d.message = to_wire(p.get());
    }
    if (d.message.empty() || d.message.size() > limit) {
      // Too big for the transport: TC and no records, as any server
      // does; the device asks again over TCP.
      d.truncated = true;
      d.message = to_wire(reply_packet(*q, r.rcode, r.authoritative, true).get());
    }
  }
  if (d.message.empty()) {  // ldns out of memory: nothing sensible to send
    d.kind = decision_kind::drop;
    d.truncated = false;
  }
  return d;
}

// --- for the forwarding plumbing ------------------------------------------------------

std::optional<std::uint16_t> message_id(std::span<const std::uint8_t> message) noexcept {
  if (message.size() < header_size) return std::nullopt;
  return read16(message, 0);
}

bool set_message_id(std::span<std::uint8_t> message, std::uint16_t id) noexcept {
  if (message.size() < header_size) return false;
  store_be16(message.data(), id);
  return true;
}

bool is_truncated(std::span<const std::uint8_t> message) noexcept {
  return message.size() >= header_size && (message[2] & 0x02) != 0;  // TC: RFC 1035 4.1.1
}

std::string_view to_string(answer_check c) noexcept {
  switch (c) {
    case answer_check::ok: return "ok";
    case answer_check::bad_query: return "bad_query";
    case answer_check::too_short: return "too_short";
    case answer_check::not_a_response: return "not_a_response";
    case answer_check::id_mismatch: return "id_mismatch";
    case answer_check::opcode_mismatch: return "opcode_mismatch";
    case answer_check::question_mismatch: return "question_mismatch";
  }
  return "unknown";
}

namespace {

struct question_key {
  wire_name name;  // lowercase
  std::uint16_t qtype = 0;
  std::uint16_t qclass = 0;
  bool operator==(const question_key&) const = default;
};

// The first question of a message whose header says it has exactly one.
std::optional<question_key> only_question(bytes m) {
  if (read16(m, qdcount_at) != 1) return std::nullopt;
  std::size_t pos = header_size;
  ldns_rdf* raw = nullptr;
  if (ldns_wire2dname(&raw, m.data(), m.size(), &pos) != LDNS_STATUS_OK) {
    ldns_rdf_deep_free(raw);
    return std::nullopt;
  }
  const ldns_rdf_ptr name(raw);
  if (pos > m.size() || m.size() - pos < 4) return std::nullopt;
  return question_key{wire_of(name.get()), read16(m, pos), read16(m, pos + 2)};
}

}  // namespace

answer_check check_upstream_answer(std::span<const std::uint8_t> sent_query, std::span<const std::uint8_t> answer) {
  if (sent_query.size() < header_size || (sent_query[2] & flag_qr) != 0) return answer_check::bad_query;
  const auto asked = only_question(sent_query);
  if (!asked) return answer_check::bad_query;
  if (answer.size() < header_size) return answer_check::too_short;
  if ((answer[2] & flag_qr) == 0) return answer_check::not_a_response;
  if (read16(answer, 0) != read16(sent_query, 0)) return answer_check::id_mismatch;
  if ((answer[2] & mask_opcode) != (sent_query[2] & mask_opcode)) return answer_check::opcode_mismatch;
  const auto answered = only_question(answer);
  if (!answered || !(*answered == *asked)) return answer_check::question_mismatch;
  return answer_check::ok;
}

std::vector<std::uint8_t> servfail_answer(std::span<const std::uint8_t> query) {
  if (query.size() < header_size || (query[2] & (flag_qr | mask_opcode)) != 0) return {};
  const auto q = parse_query(query);
  if (!q) return {};
  return plain_reply(*q, rcode_servfail, false);
}

}  // namespace lopower::dns
