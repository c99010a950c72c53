#pragma once
// DNS for devices (docs DESIGN.md "DNS for devices"): what lopower's DNS
// server at its device-side addresses does with one query. Pure: no sockets,
// no threads, no DPDK. The plumbing receives a query from a device, asks the
// answerer, and either sends the answer back, forwards the query upstream or
// drops it.
//
// What is answered here, as tailscale's resolver does (net/dns/resolver/
// tsdns.go):
//   - the tailnet's names (peers, lopower's own node) and the extra records:
//     A, AAAA and ANY from their addresses, TTL 600; NOERROR with no record
//     (NODATA) when the name has no address of the asked type, for A
//     when the device side has IPv4 off, and for a type the asking device's
//     tunnel cannot carry (an --ipv4-only device asking AAAA, an
//     --ipv6-only one asking A: an address it could not reach would only
//     make it try and time out first);
//   - PTR for every address in that table (NAME.in-addr.arpa / ip6.arpa);
//   - authoritatively, under the local suffixes (the MagicDNS suffix: a
//     `routes` entry with no resolvers, or `local_suffixes`) and the
//     tailnet's reverse zones (X.100.in-addr.arpa for X in 64..127,
//     0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa: 100.64.0.0/10 and
//     fd7a:115c:a1e0::/48): NXDOMAIN for names that do not exist, NODATA for
//     the suffix itself and for names above a known name, each with the
//     zone's SOA in the authority section (negative TTL 60 s);
//   - NXDOMAIN for .onion (RFC 7686);
//   - the enrolled devices under the device domain ([dns] device_domain,
//     "lopower.internal"): NAME.lopower.internal has the device's
//     addresses, with the family rule above. The domain is a local zone
//     like the MagicDNS suffix (NXDOMAIN for a name that is no device, NODATA
//     with its SOA for the domain itself, the SOA when asked) and stays
//     ours even when the tailnet routes it to a resolver (the tailnet's
//     split-DNS route that points its peers at lopower). A device name that
//     is not a host-name label ('.', '_', a leading or trailing '-'), or
//     that differs from another only in case, is not answered.
//
// Tailnet peers may ask too (lopower as their split-DNS resolver for the
// device domain): they get names under the device domain only, and REFUSED
// for everything else (lopower is no open resolver for the tailnet, and the
// tailnet answers its own MagicDNS names).
// A known name is answered wherever it lies, as in tailscale. Everything
// else is forwarded: to the resolvers of the longest matching split-DNS
// route (so a routed suffix below a local one wins), else to the default
// resolvers; SERVFAIL when there are none.
//
// Refusals, never a crash: fewer than 12 bytes or a response (QR set) is
// dropped; an opcode other than QUERY gets NOTIMP; anything that is not one
// well-formed question plus well-formed records (at most one OPT, owned by
// the root; compression pointers only to a prior name, as RFC 1035 4.1.4
// has it) gets FORMERR, header only; bytes after the last record are
// ignored. EDNS versions above 0 get BADVERS; zone transfers, TSIG-signed
// queries and classes other than IN (or ANY) for local names get REFUSED.
//
// Sizes: over UDP an answer is at most 512 bytes, or the EDNS0 payload size
// the query advertises, capped at 1232 (DNS flag day 2020); a bigger answer
// goes out with TC set and no records, and the device asks again over TCP,
// where the limit is 65535. A query with an OPT gets one back (payload size
// 1232, version 0, the DO bit echoed, no options).
//
// The wire format is ldns's: the question is parsed by ldns_wire2rr, every
// name by ldns_wire2dname (compression, label and length limits), and
// answers are written by ldns_pkt2wire (with name compression). Only the
// framing of the records after the question is walked here (owner name by
// ldns, then type, class, TTL, RDLENGTH), and the direction of compression
// pointers checked: ldns_wire2pkt leaks on a query with two TSIG records
// and, for RDATA longer than its type's fields, stops mid-record and
// misreads what follows; ldns follows pointers forward as well.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lopower/enum_list.h"
#include "lopower/net_addr.h"

namespace lopower::dns {

inline constexpr std::uint16_t server_port = 53;
inline constexpr std::size_t header_size = 12;
inline constexpr std::size_t classic_udp_size = 512;     // RFC 1035, a query without EDNS0
inline constexpr std::uint16_t max_udp_size = 1232;      // advertised; the most sent over UDP
inline constexpr std::size_t max_message_size = 65'535;  // over TCP (two-byte length prefix)
inline constexpr std::uint32_t answer_ttl = 600;         // tailscale's defaultTTL
inline constexpr std::uint32_t negative_ttl = 60;        // SOA TTL and MINIMUM: a missing name is cached this long

// tailcfg.DNSRecord: one of the tailnet's ExtraRecords.
struct extra_record {
  std::string name;   // "db.example.com" or "db.example.com."
  std::string type;   // "A", "AAAA" or "" (by the value); others are skipped, as tailscale does
  std::string value;  // "100.64.0.9", "fd7a:115c:a1e0::9"
  friend bool operator==(const extra_record&, const extra_record&) = default;
};

// What the plumbing builds from the netmap and lopower's config. Names and
// suffixes may be in any case, with or without the trailing dot.
struct zone {
  std::vector<std::string> local_suffixes;                   // "tailnet.test.": answered authoritatively
  std::map<std::string, std::vector<ip_address>> names;      // FQDN -> addresses (peers, our node)
  std::vector<extra_record> extra;                           // the DNS config's ExtraRecords
  std::map<std::string, std::vector<std::string>> routes;    // split DNS: suffix -> "ip" or "ip:port"; {} = local
  std::vector<std::string> default_resolvers;                // our upstreams, then the tailnet's resolvers
  bool ipv4_enabled = true;                                  // false: A records are left out
  std::string device_domain;                                 // "lopower.internal": devices by name; "" none
  std::map<std::string, std::vector<ip_address>> devices;    // device name -> its addresses
};

// Who asks: a device (everything above) or a tailnet peer (the device
// domain only).
enum class asker : std::uint8_t { device, tailnet_peer };

enum class transport : std::uint8_t { udp, tcp };

// The address families the asking device's tunnel carries: a device added
// with --ipv4-only or --ipv6-only has an address of one family only.
struct tunnel_families {
  bool ipv4 = true;
  bool ipv6 = true;
};

// Why a query got the decision it got, for counters and logs.
// X(identifier, "description")
#define LOPOWER_DNS_OUTCOMES(X)                                                                           \
  X(answered, "answered from the tailnet's names, their reverse names or the extra records")             \
  X(nodata, "the name exists but has no record of the asked type (NOERROR, no answer)")                  \
  X(family_filtered, "a local name's records of the type are of a family the device can't use (NODATA)") \
  X(nxdomain, "no such name under a local suffix or reverse zone, or .onion (NXDOMAIN)")                 \
  X(forwarded_route, "forwarded to the resolvers of a split-DNS route")                                  \
  X(forwarded_default, "forwarded to the default resolvers")                                             \
  X(no_upstream, "not a local name and no resolver to forward it to (SERVFAIL)")                         \
  X(refused, "zone transfer, TSIG-signed query, or a class other than IN for a local name (REFUSED)")    \
  X(not_for_tailnet, "a tailnet peer asked for a name outside the device domain (REFUSED)")                \
  X(bad_version, "EDNS version other than 0 (BADVERS)")                                                  \
  X(malformed, "not one well-formed question with well-formed records (FORMERR)")                        \
  X(not_implemented, "an opcode other than QUERY (NOTIMP)")                                              \
  X(too_short, "shorter than a DNS header: dropped")                                                     \
  X(not_a_query, "a response (QR set): dropped")

enum class outcome : std::uint8_t { LOPOWER_DNS_OUTCOMES(LOPOWER_ENUM_ENUMERATOR) };

inline constexpr std::size_t outcome_count = LOPOWER_ENUM_COUNT(LOPOWER_DNS_OUTCOMES);

inline constexpr std::array<std::string_view, outcome_count> outcome_names{LOPOWER_DNS_OUTCOMES(LOPOWER_ENUM_NAME)};

inline constexpr std::array<std::string_view, outcome_count> outcome_descriptions{LOPOWER_DNS_OUTCOMES(LOPOWER_ENUM_TEXT)};

constexpr std::string_view name_of(outcome o) { return outcome_names[static_cast<std::size_t>(o)]; }
constexpr std::string_view description_of(outcome o) { return outcome_descriptions[static_cast<std::size_t>(o)]; }

enum class decision_kind : std::uint8_t { answer, forward, drop };

struct decision {
  decision_kind kind = decision_kind::drop;
  // answer:  the reply to send to the device, with the query's ID.
  // forward: the query to send upstream: the device's bytes, less any
  //          trailing bytes, with an EDNS0 payload size above 1232 lowered
  //          to 1232. Set your own ID on it (set_message_id) before sending.
  std::vector<std::uint8_t> message;
  std::vector<std::string> resolvers;  // forward: as configured ("ip", "ip:port", maybe "https://...")
  outcome why = outcome::too_short;
  bool truncated = false;  // answer: TC set, records left out (too big for UDP)
};

// The zone, indexed for lookups. Build one per netmap or config change and
// share it read-only: handle_query is const and keeps no state.
class answerer {
 public:
  answerer() : answerer(zone{}) {}  // no names, no resolvers: SERVFAIL, NXDOMAIN in the reverse zones
  explicit answerer(const zone& z);

  // The decision for one message from a device, as it came: the UDP
  // payload, or over TCP the message without its two-byte length prefix.
  // `device` filters the addresses of local names only: forwarded answers
  // are the upstream's and go back as they come.
  // `who`: a tailnet peer is answered under the device domain only.
  decision handle_query(std::span<const std::uint8_t> query, transport t, tunnel_families device = {},
                        asker who = asker::device) const;

  // Zone entries that were skipped (a name that is not a domain name, an
  // extra record with an unsupported type or a value that is not an
  // address), one sentence each, for the log.
  const std::vector<std::string>& problems() const noexcept { return problems_; }

 private:
  using wire_name = std::string;  // uncompressed wire form, lowercase: the lookup key
  struct route {
    bool local = false;
    std::vector<std::string> resolvers;
  };
  struct resolution;

  void add_route(const std::string& suffix, bool local, const std::vector<std::string>& resolvers);
  void add_devices(const zone& z);
  void add_host(const wire_name& name, const ip_address& address);
  void add_interior(const wire_name& name);
  const std::pair<const wire_name, route>* longest_route(const wire_name& name) const;
  bool serves_tailnet(const wire_name& name) const;
  resolution resolve(const wire_name& name, std::uint16_t qtype, std::uint16_t qclass, tunnel_families device) const;
  void add_addresses(resolution& r, const std::vector<ip_address>& addresses, std::uint16_t qtype,
                     tunnel_families device) const;

  std::unordered_map<wire_name, std::vector<ip_address>> hosts_;
  std::unordered_map<wire_name, wire_name> ptr_;  // reverse name -> the name it points to
  std::unordered_set<wire_name> interior_;        // names above a host or reverse name: they exist
  std::unordered_map<wire_name, route> routes_;   // suffix -> local or resolvers; "\0" is the root
  std::vector<std::string> default_resolvers_;
  std::optional<wire_name> device_domain_;
  bool ipv4_enabled_ = true;
  std::vector<std::string> problems_;
};

// --- for the forwarding plumbing --------------------------------------------------

// The message's ID; nullopt when shorter than a header.
std::optional<std::uint16_t> message_id(std::span<const std::uint8_t> message) noexcept;
// Overwrites the ID in place; false (and nothing written) when shorter than a header.
bool set_message_id(std::span<std::uint8_t> message, std::uint16_t id) noexcept;
// Whether TC is set: the answer was cut to fit a UDP datagram.
bool is_truncated(std::span<const std::uint8_t> message) noexcept;

// Whether an upstream's message answers the query as it was sent (with the
// plumbing's ID): a response, same ID and opcode, one question with the
// same name (compared case-insensitively), type and class. Anything else
// may be spoofed or stale and must be ignored (keep waiting for the real
// answer).
enum class answer_check : std::uint8_t {
  ok,
  bad_query,          // the query itself is not a query with one parseable question
  too_short,          // shorter than a header
  not_a_response,     // QR clear
  id_mismatch,
  opcode_mismatch,
  question_mismatch,  // not exactly one question, unparseable, or another name, type or class
};
std::string_view to_string(answer_check c) noexcept;
answer_check check_upstream_answer(std::span<const std::uint8_t> sent_query, std::span<const std::uint8_t> answer);

// SERVFAIL for a query no upstream answered in time: its ID and question,
// RD echoed, an OPT when it had one. Empty when `query` is not a parseable
// query with one question (handle_query never forwards such a query).
std::vector<std::uint8_t> servfail_answer(std::span<const std::uint8_t> query);

}  // namespace lopower::dns
