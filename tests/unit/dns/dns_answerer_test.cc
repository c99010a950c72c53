// The DNS answerer: MagicDNS names, reverse zones, extra records, split-DNS
// routing, refusals, truncation and EDNS0, the ID and answer-matching
// helpers.
//
// Queries are built and answers read with ldns (which the answerer also
// uses), and, so that a bug shared by both cannot hide, a few known answers
// are written out by hand, byte by byte, from RFC 1035 section 4.1.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/dns/dns_answerer.h"
#include "control/dns/ldns_owned.h"

namespace lopower::dns {
namespace {

using bytes = std::vector<std::uint8_t>;

using pkt_ptr = ldns_pkt_ptr;

// --- ldns -----------------------------------------------------------------------

bytes to_wire(const ldns_pkt* p) {
  std::uint8_t* raw = nullptr;
  std::size_t size = 0;
  const ldns_status s = ldns_pkt2wire(&raw, p, &size);
  const ldns_wire_ptr owned(raw);
  if (s != LDNS_STATUS_OK) throw std::runtime_error("ldns_pkt2wire");
  return bytes(raw, raw + size);
}

struct query_options {
  std::uint16_t id = 0x1234;
  std::uint16_t qclass = LDNS_RR_CLASS_IN;
  bool edns = false;
  std::uint16_t udp_size = 0;
  bool do_bit = false;
  std::uint8_t edns_version = 0;
};

bytes query(const std::string& name, ldns_rr_type type, const query_options& o = {}) {
  ldns_rdf* owner = ldns_dname_new_frm_str(name.c_str());
  if (!owner) throw std::runtime_error("bad name " + name);
  pkt_ptr p(ldns_pkt_query_new(owner, type, static_cast<ldns_rr_class>(o.qclass), LDNS_RD));
  ldns_pkt_set_id(p.get(), o.id);
  if (o.edns) {
    ldns_pkt_set_edns_udp_size(p.get(), o.udp_size);
    ldns_pkt_set_edns_do(p.get(), o.do_bit);
    ldns_pkt_set_edns_version(p.get(), o.edns_version);
  }
  return to_wire(p.get());
}

pkt_ptr parse(const bytes& wire) {
  ldns_pkt* raw = nullptr;
  const ldns_status s = ldns_wire2pkt(&raw, wire.data(), wire.size());
  pkt_ptr p(raw);
  if (s != LDNS_STATUS_OK) ADD_FAILURE() << "ldns cannot parse the answer: " << ldns_get_errorstr_by_id(s);
  return p;
}

// "ts1.tailnet.test. 600 IN A 100.101.102.103", one per record.
std::vector<std::string> records(const ldns_rr_list* list) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
    char* text = ldns_rr2str(ldns_rr_list_rr(list, i));
    std::string s(text);
    std::free(text);
    for (char& c : s)
      if (c == '\t') c = ' ';
    while (!s.empty() && s.back() == '\n') s.pop_back();
    out.push_back(s);
  }
  return out;
}

ip_address ip(std::string_view text) {
  auto a = ip_address::parse(text);
  if (!a) throw std::runtime_error("bad address");
  return *a;
}

zone test_zone() {
  zone z;
  z.local_suffixes = {"tailnet.test."};
  z.names["ts1.tailnet.test."] = {ip("100.101.102.103"), ip("fd7a:115c:a1e0::1")};
  z.names["TS2.Tailnet.Test"] = {ip("100.64.0.2")};  // any case, no trailing dot
  z.names["v6only.tailnet.test."] = {ip("fd7a:115c:a1e0::6")};
  z.names["deep.sub.tailnet.test."] = {ip("100.64.0.7")};
  for (int i = 1; i <= 40; ++i) z.names["big.tailnet.test."].push_back(ip("100.64.1." + std::to_string(i)));
  for (int i = 1; i <= 80; ++i) z.names["huge.tailnet.test."].push_back(ip("fd7a:115c:a1e0::2:" + std::to_string(i)));
  z.extra = {{"db.example.com", "", "100.64.0.9"},
             {"v6.example.com.", "AAAA", "fd7a:115c:a1e0::9"},
             {"mail.example.com", "MX", "10 mx.example.com."},
             {"bad.example.com", "A", "not-an-address"}};
  z.routes["corp.example."] = {"10.0.0.53"};
  z.routes["eng.corp.example"] = {"10.0.1.53:5353"};
  z.routes["split.tailnet.test."] = {"10.9.9.9"};
  z.routes["ts.net."] = {};  // local, as a MagicDNS suffix comes from the netmap
  z.default_resolvers = {"9.9.9.9", "[2620:fe::fe]:53"};
  return z;
}

const answerer& test_answerer() {
  static const answerer a(test_zone());
  return a;
}

decision ask(const bytes& q, transport t = transport::udp) { return test_answerer().handle_query(q, t); }

std::uint16_t rcode_of(const decision& d) {
  const pkt_ptr p = parse(d.message);
  if (!p) return 0xffff;
  return static_cast<std::uint16_t>(ldns_pkt_get_rcode(p.get()) | ldns_pkt_edns_extended_rcode(p.get()) << 4);
}

// --- known answers, by hand ------------------------------------------------------------

// RFC 1035 4.1: header (ID, flags, QD AN NS AR counts), question (labels,
// QTYPE, QCLASS), then RRs (name or pointer, TYPE, CLASS, TTL, RDLENGTH,
// RDATA).
const bytes ts1_a_query = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // ID, RD, QD=1
    3, 't', 's', '1', 7, 't', 'a', 'i', 'l', 'n', 'e', 't', 4, 't', 'e', 's', 't', 0,
    0x00, 0x01, 0x00, 0x01,  // A, IN
};

TEST(DnsKnownAnswer, ARecordIsExactly) {
  const bytes expected = {
      0x12, 0x34, 0x85, 0x80,  // ID; QR AA RD; RA, NOERROR
      0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
      3, 't', 's', '1', 7, 't', 'a', 'i', 'l', 'n', 'e', 't', 4, 't', 'e', 's', 't', 0,
      0x00, 0x01, 0x00, 0x01,
      0xc0, 0x0c,              // pointer to the question's name
      0x00, 0x01, 0x00, 0x01,  // A, IN
      0x00, 0x00, 0x02, 0x58,  // TTL 600
      0x00, 0x04, 100, 101, 102, 103,
  };
  const decision d = ask(ts1_a_query);
  EXPECT_EQ(d.kind, decision_kind::answer);
  EXPECT_EQ(d.why, outcome::answered);
  EXPECT_FALSE(d.truncated);
  EXPECT_EQ(d.message, expected);
}

TEST(DnsKnownAnswer, PtrRecordIsExactly) {
  const bytes name = {3, '1', '0', '3', 3, '1', '0', '2', 3, '1', '0', '1', 3, '1', '0', '0',
                      7, 'i', 'n', '-', 'a', 'd', 'd', 'r', 4, 'a', 'r', 'p', 'a', 0};
  bytes q = {0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  q.insert(q.end(), name.begin(), name.end());
  q.insert(q.end(), {0x00, 0x0c, 0x00, 0x01});  // PTR, IN
  bytes expected = {0xbe, 0xef, 0x85, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
  expected.insert(expected.end(), name.begin(), name.end());
  expected.insert(expected.end(), {0x00, 0x0c, 0x00, 0x01,                    // question
                                   0xc0, 0x0c, 0x00, 0x0c, 0x00, 0x01,        // PTR, IN
                                   0x00, 0x00, 0x02, 0x58, 0x00, 18,          // TTL 600, RDLENGTH
                                   3, 't', 's', '1', 7, 't', 'a', 'i', 'l', 'n', 'e', 't', 4, 't', 'e', 's', 't', 0});
  EXPECT_EQ(ask(q).message, expected);
}

TEST(DnsKnownAnswer, FormerrIsTheHeaderAlone) {
  bytes q = ts1_a_query;
  q.resize(20);  // the name is cut short
  const bytes expected = {0x12, 0x34, 0x81, 0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  const decision d = ask(q);
  EXPECT_EQ(d.kind, decision_kind::answer);
  EXPECT_EQ(d.why, outcome::malformed);
  EXPECT_EQ(d.message, expected);
}

TEST(DnsKnownAnswer, NotimpEchoesTheOpcode) {
  bytes q = ts1_a_query;
  q[2] = 0x20 | 0x01;  // opcode 4 (NOTIFY), RD
  const bytes expected = {0x12, 0x34, 0xa1, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  const decision d = ask(q);
  EXPECT_EQ(d.why, outcome::not_implemented);
  EXPECT_EQ(d.message, expected);
  q[2] = 0x78;  // opcode 15, no RD
  EXPECT_EQ(ask(q).message, (bytes{0x12, 0x34, 0xf8, 0x04, 0, 0, 0, 0, 0, 0, 0, 0}));
}

// --- names ------------------------------------------------------------------------------

TEST(DnsNames, AAaaaAndAny) {
  {
    const decision d = ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_AAAA));
    EXPECT_EQ(d.why, outcome::answered);
    const pkt_ptr p = parse(d.message);
    EXPECT_TRUE(ldns_pkt_aa(p.get()));
    EXPECT_EQ(records(ldns_pkt_answer(p.get())),
              std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
    EXPECT_EQ(ldns_pkt_nscount(p.get()), 0);
  }
  {
    const decision d = ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_ANY));
    const pkt_ptr p = parse(d.message);
    EXPECT_EQ(records(ldns_pkt_answer(p.get())),
              (std::vector<std::string>{"ts1.tailnet.test. 600 IN A 100.101.102.103",
                                        "ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"}));
  }
}

TEST(DnsNames, CaseInsensitiveAndTheQuestionEchoedAsAsked) {
  const decision d = ask(query("Ts1.TAILNET.test.", LDNS_RR_TYPE_A));
  EXPECT_EQ(d.why, outcome::answered);
  const pkt_ptr p = parse(d.message);
  EXPECT_EQ(records(ldns_pkt_question(p.get())), std::vector<std::string>{"Ts1.TAILNET.test. IN A"});
  EXPECT_EQ(records(ldns_pkt_answer(p.get())), std::vector<std::string>{"Ts1.TAILNET.test. 600 IN A 100.101.102.103"});
  // A zone name given in capitals and without the trailing dot.
  const pkt_ptr p2 = parse(ask(query("ts2.tailnet.test.", LDNS_RR_TYPE_A)).message);
  EXPECT_EQ(records(ldns_pkt_answer(p2.get())), std::vector<std::string>{"ts2.tailnet.test. 600 IN A 100.64.0.2"});
}

TEST(DnsNames, NxdomainUnderTheSuffixWithItsSoa) {
  const decision d = ask(query("nope.tailnet.test.", LDNS_RR_TYPE_A));
  EXPECT_EQ(d.kind, decision_kind::answer);
  EXPECT_EQ(d.why, outcome::nxdomain);
  const pkt_ptr p = parse(d.message);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NXDOMAIN);
  EXPECT_TRUE(ldns_pkt_aa(p.get()));
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
  EXPECT_EQ(records(ldns_pkt_authority(p.get())),
            std::vector<std::string>{
                "tailnet.test. 60 IN SOA tailnet.test. nobody.invalid. 1 3600 1200 604800 60"});
  // Below a known name too, and under a suffix that came as a route with no resolvers.
  EXPECT_EQ(ask(query("x.ts1.tailnet.test.", LDNS_RR_TYPE_A)).why, outcome::nxdomain);
  EXPECT_EQ(ask(query("anything.ts.net.", LDNS_RR_TYPE_AAAA)).why, outcome::nxdomain);
}

TEST(DnsNames, NodataWhenTheNameExists) {
  for (const auto& [name, type] : std::vector<std::pair<std::string, ldns_rr_type>>{
           {"v6only.tailnet.test.", LDNS_RR_TYPE_A},
           {"ts1.tailnet.test.", LDNS_RR_TYPE_MX},
           {"ts1.tailnet.test.", LDNS_RR_TYPE_TXT},
           {"sub.tailnet.test.", LDNS_RR_TYPE_A},  // above deep.sub.tailnet.test.: exists, empty
           {"tailnet.test.", LDNS_RR_TYPE_A},      // the suffix itself
       }) {
    SCOPED_TRACE(name);
    const decision d = ask(query(name, type));
    EXPECT_EQ(d.why, outcome::nodata);
    const pkt_ptr p = parse(d.message);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
    EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
    EXPECT_EQ(ldns_pkt_nscount(p.get()), 1);  // the SOA
  }
}

TEST(DnsNames, SoaAtTheSuffix) {
  const decision d = ask(query("TAILNET.test.", LDNS_RR_TYPE_SOA));
  EXPECT_EQ(d.why, outcome::answered);
  const pkt_ptr p = parse(d.message);
  // MNAME too reads as asked: ldns compresses names case-insensitively, so
  // it points at the question's bytes. Names compare without case anyway.
  EXPECT_EQ(records(ldns_pkt_answer(p.get())),
            std::vector<std::string>{
                "TAILNET.test. 60 IN SOA TAILNET.test. nobody.invalid. 1 3600 1200 604800 60"});
}

TEST(DnsNames, Ipv4OffLeavesOutA) {
  zone z = test_zone();
  z.ipv4_enabled = false;
  const answerer a(z);
  const decision d = a.handle_query(query("ts1.tailnet.test.", LDNS_RR_TYPE_A), transport::udp);
  EXPECT_EQ(d.why, outcome::nodata);
  EXPECT_EQ(ldns_pkt_ancount(parse(d.message).get()), 0);
  const pkt_ptr aaaa = parse(a.handle_query(query("ts1.tailnet.test.", LDNS_RR_TYPE_AAAA), transport::udp).message);
  EXPECT_EQ(records(ldns_pkt_answer(aaaa.get())),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
  const pkt_ptr any = parse(a.handle_query(query("ts1.tailnet.test.", LDNS_RR_TYPE_ANY), transport::udp).message);
  EXPECT_EQ(records(ldns_pkt_answer(any.get())),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
}

// A device whose tunnel carries one family (--ipv4-only, --ipv6-only) gets
// no tailnet address of the other: NODATA with the zone's SOA, counted
// apart. Names that are forwarded are not touched.
constexpr tunnel_families ipv4_only{true, false};
constexpr tunnel_families ipv6_only{false, true};
constexpr tunnel_families dual_stack{};

decision ask_as(tunnel_families device, const std::string& name, ldns_rr_type type) {
  return test_answerer().handle_query(query(name, type), transport::udp, device);
}

std::vector<std::string> answer_records(const decision& d) { return records(ldns_pkt_answer(parse(d.message).get())); }

void expect_family_filtered(const decision& d) {
  EXPECT_EQ(d.why, outcome::family_filtered);
  const pkt_ptr p = parse(d.message);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);
  EXPECT_TRUE(ldns_pkt_aa(p.get()));
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
  EXPECT_EQ(records(ldns_pkt_authority(p.get())),
            std::vector<std::string>{
                "tailnet.test. 60 IN SOA tailnet.test. nobody.invalid. 1 3600 1200 604800 60"});
}

TEST(DnsDeviceFamilies, Ipv4OnlyDeviceGetsNoAaaa) {
  expect_family_filtered(ask_as(ipv4_only, "ts1.tailnet.test.", LDNS_RR_TYPE_AAAA));
  const decision a = ask_as(ipv4_only, "ts1.tailnet.test.", LDNS_RR_TYPE_A);
  EXPECT_EQ(a.why, outcome::answered);
  EXPECT_EQ(answer_records(a), std::vector<std::string>{"ts1.tailnet.test. 600 IN A 100.101.102.103"});
  EXPECT_EQ(answer_records(ask_as(ipv4_only, "ts1.tailnet.test.", LDNS_RR_TYPE_ANY)),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN A 100.101.102.103"});
}

TEST(DnsDeviceFamilies, Ipv6OnlyDeviceGetsNoA) {
  expect_family_filtered(ask_as(ipv6_only, "ts1.tailnet.test.", LDNS_RR_TYPE_A));
  const decision aaaa = ask_as(ipv6_only, "ts1.tailnet.test.", LDNS_RR_TYPE_AAAA);
  EXPECT_EQ(aaaa.why, outcome::answered);
  EXPECT_EQ(answer_records(aaaa), std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
  EXPECT_EQ(answer_records(ask_as(ipv6_only, "ts1.tailnet.test.", LDNS_RR_TYPE_ANY)),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
  // Extra records are the tailnet's too; outside a local zone, no SOA.
  const decision extra = ask_as(ipv6_only, "db.example.com.", LDNS_RR_TYPE_A);
  EXPECT_EQ(extra.why, outcome::family_filtered);
  EXPECT_EQ(ldns_pkt_ancount(parse(extra.message).get()), 0);
  EXPECT_EQ(ldns_pkt_nscount(parse(extra.message).get()), 0);
}

TEST(DnsDeviceFamilies, DualStackDeviceGetsBoth) {
  EXPECT_EQ(answer_records(ask_as(dual_stack, "ts1.tailnet.test.", LDNS_RR_TYPE_A)),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN A 100.101.102.103"});
  EXPECT_EQ(answer_records(ask_as(dual_stack, "ts1.tailnet.test.", LDNS_RR_TYPE_AAAA)),
            std::vector<std::string>{"ts1.tailnet.test. 600 IN AAAA fd7a:115c:a1e0::1"});
  EXPECT_EQ(ask_as(dual_stack, "ts1.tailnet.test.", LDNS_RR_TYPE_ANY).why, outcome::answered);
}

// What the name lacks anyway stays plain NODATA or NXDOMAIN: the filter
// explains only answers it emptied.
TEST(DnsDeviceFamilies, MissingRecordsAreNotCountedAsFiltered) {
  EXPECT_EQ(ask_as(ipv4_only, "v6only.tailnet.test.", LDNS_RR_TYPE_A).why, outcome::nodata);
  EXPECT_EQ(ask_as(ipv6_only, "ts2.tailnet.test.", LDNS_RR_TYPE_AAAA).why, outcome::nodata);
  EXPECT_EQ(ask_as(ipv6_only, "nope.tailnet.test.", LDNS_RR_TYPE_A).why, outcome::nxdomain);
  EXPECT_EQ(ask_as(ipv4_only, "ts1.tailnet.test.", LDNS_RR_TYPE_PTR).why, outcome::nodata);
}

TEST(DnsDeviceFamilies, ForwardedNamesAreUntouched) {
  for (const tunnel_families device : {ipv4_only, ipv6_only}) {
    for (const ldns_rr_type type : {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA}) {
      const bytes q = query("www.example.org.", type);
      const decision d = test_answerer().handle_query(q, transport::udp, device);
      EXPECT_EQ(d.kind, decision_kind::forward);
      EXPECT_EQ(d.why, outcome::forwarded_default);
      EXPECT_EQ(d.message, q) << "the device's query, as it asked it";
    }
  }
  EXPECT_EQ(ask_as(ipv6_only, "host.corp.example.", LDNS_RR_TYPE_A).why, outcome::forwarded_route);
}

TEST(DnsNames, ExtraRecords) {
  const pkt_ptr p = parse(ask(query("DB.example.com.", LDNS_RR_TYPE_A)).message);
  EXPECT_EQ(records(ldns_pkt_answer(p.get())), std::vector<std::string>{"DB.example.com. 600 IN A 100.64.0.9"});
  const pkt_ptr v6 = parse(ask(query("v6.example.com.", LDNS_RR_TYPE_AAAA)).message);
  EXPECT_EQ(records(ldns_pkt_answer(v6.get())),
            std::vector<std::string>{"v6.example.com. 600 IN AAAA fd7a:115c:a1e0::9"});
  // Not under a local suffix: NODATA without an SOA; and siblings are forwarded.
  const decision nodata = ask(query("db.example.com.", LDNS_RR_TYPE_AAAA));
  EXPECT_EQ(nodata.why, outcome::nodata);
  EXPECT_EQ(ldns_pkt_nscount(parse(nodata.message).get()), 0);
  EXPECT_EQ(ask(query("www.example.com.", LDNS_RR_TYPE_A)).why, outcome::forwarded_default);
  // The MX record and the bad value were reported and skipped.
  EXPECT_EQ(test_answerer().problems().size(), 2U);
  EXPECT_EQ(ask(query("mail.example.com.", LDNS_RR_TYPE_MX)).why, outcome::forwarded_default);
}

TEST(DnsNames, ZoneEdges) {
  zone z;
  z.names["bare.tailnet.test."] = {};                      // a node without addresses: exists
  z.names["bad..name"] = {ip("100.64.0.1")};               // not a domain name
  z.names[std::string(64, 'x') + ".tailnet.test."] = {};   // a label too long
  z.routes["tailnet.test"] = {};
  z.extra = {{"alias.example.com", "", "100.64.0.2"},      // names an address a peer has: the peer keeps the PTR
             {"alias.example.com", "A", "100.64.0.3"}};    // the same name twice: both addresses
  z.names["peer.tailnet.test."] = {ip("100.64.0.2")};
  const answerer a(z);
  EXPECT_EQ(a.problems().size(), 2U);
  EXPECT_EQ(a.handle_query(query("bare.tailnet.test.", LDNS_RR_TYPE_A), transport::udp).why, outcome::nodata);
  const pkt_ptr ptr =
      parse(a.handle_query(query("2.0.64.100.in-addr.arpa.", LDNS_RR_TYPE_PTR), transport::udp).message);
  EXPECT_EQ(records(ldns_pkt_answer(ptr.get())),
            std::vector<std::string>{"2.0.64.100.in-addr.arpa. 600 IN PTR peer.tailnet.test."});
  const pkt_ptr alias = parse(a.handle_query(query("alias.example.com.", LDNS_RR_TYPE_A), transport::udp).message);
  EXPECT_EQ(ldns_pkt_ancount(alias.get()), 2);

  // Nothing at all: no upstream, but the tailnet's reverse zones are still ours.
  const answerer empty;
  EXPECT_EQ(empty.handle_query(query("example.org.", LDNS_RR_TYPE_A), transport::udp).why, outcome::no_upstream);
  EXPECT_EQ(empty.handle_query(query("1.0.64.100.in-addr.arpa.", LDNS_RR_TYPE_PTR), transport::udp).why,
            outcome::nxdomain);
}

TEST(DnsNames, OnionIsNeverResolved) {
  const decision d = ask(query("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion.", LDNS_RR_TYPE_A));
  EXPECT_EQ(d.why, outcome::nxdomain);
  EXPECT_EQ(rcode_of(d), LDNS_RCODE_NXDOMAIN);
}

// --- reverse -------------------------------------------------------------------------------

TEST(DnsReverse, PtrV4AndV6) {
  const pkt_ptr v4 = parse(ask(query("103.102.101.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).message);
  EXPECT_EQ(records(ldns_pkt_answer(v4.get())),
            std::vector<std::string>{"103.102.101.100.in-addr.arpa. 600 IN PTR ts1.tailnet.test."});
  const std::string v6name = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.";
  const decision d6 = ask(query(v6name, LDNS_RR_TYPE_PTR));
  EXPECT_EQ(d6.why, outcome::answered);
  const pkt_ptr v6 = parse(d6.message);
  EXPECT_EQ(records(ldns_pkt_answer(v6.get())), std::vector<std::string>{v6name + " 600 IN PTR ts1.tailnet.test."});
  // Upper-case nibbles, and the extra records' addresses.
  std::string upper = v6name;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(ask(query(upper, LDNS_RR_TYPE_PTR)).why, outcome::answered);
  const pkt_ptr extra = parse(ask(query("9.0.64.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).message);
  EXPECT_EQ(records(ldns_pkt_answer(extra.get())),
            std::vector<std::string>{"9.0.64.100.in-addr.arpa. 600 IN PTR db.example.com."});
}

TEST(DnsReverse, UnknownAddressesInTheTailnetRangesAreNxdomain) {
  const decision v4 = ask(query("200.0.64.100.in-addr.arpa.", LDNS_RR_TYPE_PTR));
  EXPECT_EQ(v4.why, outcome::nxdomain);
  EXPECT_EQ(records(ldns_pkt_authority(parse(v4.message).get())),
            std::vector<std::string>{
                "64.100.in-addr.arpa. 60 IN SOA 64.100.in-addr.arpa. nobody.invalid. 1 3600 1200 604800 60"});
  EXPECT_EQ(ask(query("1.1.1.127.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::nxdomain);  // not an address
  EXPECT_EQ(ask(query("8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
                      LDNS_RR_TYPE_PTR)).why,
            outcome::nxdomain);
  // Above a known address: exists. Outside the ranges: forwarded.
  EXPECT_EQ(ask(query("101.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::nodata);
  EXPECT_EQ(ask(query("102.101.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::nodata);
  EXPECT_EQ(ask(query("8.8.8.8.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::forwarded_default);
  EXPECT_EQ(ask(query("1.0.0.128.100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::forwarded_default);
  EXPECT_EQ(ask(query("100.in-addr.arpa.", LDNS_RR_TYPE_PTR)).why, outcome::forwarded_default);
}

// --- forwarding ---------------------------------------------------------------------------

TEST(DnsForward, SplitDnsLongestSuffixWins) {
  struct want {
    std::string name;
    std::vector<std::string> resolvers;
    outcome why;
  };
  for (const want& w : std::vector<want>{
           {"host.corp.example.", {"10.0.0.53"}, outcome::forwarded_route},
           {"CORP.example.", {"10.0.0.53"}, outcome::forwarded_route},
           {"a.b.eng.corp.example.", {"10.0.1.53:5353"}, outcome::forwarded_route},
           {"x.split.tailnet.test.", {"10.9.9.9"}, outcome::forwarded_route},  // longer than the local suffix
           {"notcorp.example.", {"9.9.9.9", "[2620:fe::fe]:53"}, outcome::forwarded_default},  // labels, not bytes
           {"example.", {"9.9.9.9", "[2620:fe::fe]:53"}, outcome::forwarded_default},
           {".", {"9.9.9.9", "[2620:fe::fe]:53"}, outcome::forwarded_default},
       }) {
    SCOPED_TRACE(w.name);
    const bytes q = query(w.name, LDNS_RR_TYPE_A);
    const decision d = ask(q);
    EXPECT_EQ(d.kind, decision_kind::forward);
    EXPECT_EQ(d.why, w.why);
    EXPECT_EQ(d.resolvers, w.resolvers);
    EXPECT_EQ(d.message, q);  // as the device sent it
  }
}

TEST(DnsForward, RootRouteAndNoUpstream) {
  zone z;
  z.routes["."] = {"192.0.2.1"};
  const decision d = answerer(z).handle_query(query("example.org.", LDNS_RR_TYPE_A), transport::udp);
  EXPECT_EQ(d.why, outcome::forwarded_route);
  EXPECT_EQ(d.resolvers, std::vector<std::string>{"192.0.2.1"});

  const decision none = answerer(zone{}).handle_query(query("example.org.", LDNS_RR_TYPE_A), transport::udp);
  EXPECT_EQ(none.kind, decision_kind::answer);
  EXPECT_EQ(none.why, outcome::no_upstream);
  EXPECT_EQ(rcode_of(none), LDNS_RCODE_SERVFAIL);
}

TEST(DnsForward, LargeEdnsSizeCappedAndTrailingBytesLeftOut) {
  query_options o;
  o.edns = true;
  o.udp_size = 4096;
  const bytes q = query("www.example.org.", LDNS_RR_TYPE_A, o);
  bytes padded = q;
  padded.insert(padded.end(), {0xde, 0xad});
  const decision d = ask(padded);
  ASSERT_EQ(d.kind, decision_kind::forward);
  ASSERT_EQ(d.message.size(), q.size());
  const pkt_ptr p = parse(d.message);
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 1232);
  // Only those two bytes changed.
  std::size_t differ = 0;
  for (std::size_t i = 0; i < q.size(); ++i) differ += q[i] != d.message[i];
  EXPECT_EQ(differ, 2U);

  o.udp_size = 1232;
  const bytes small = query("www.example.org.", LDNS_RR_TYPE_A, o);
  EXPECT_EQ(ask(small).message, small);
}

TEST(DnsForward, OtherClassesForwardedButRefusedForLocalNames) {
  query_options chaos;
  chaos.qclass = LDNS_RR_CLASS_CH;
  EXPECT_EQ(ask(query("version.bind.", LDNS_RR_TYPE_TXT, chaos)).why, outcome::forwarded_default);
  const decision d = ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_A, chaos));
  EXPECT_EQ(d.why, outcome::refused);
  EXPECT_EQ(rcode_of(d), LDNS_RCODE_REFUSED);
  query_options any_class;
  any_class.qclass = LDNS_RR_CLASS_ANY;
  EXPECT_EQ(ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_A, any_class)).why, outcome::answered);
}

TEST(DnsForward, ZoneTransfersRefused) {
  EXPECT_EQ(ask(query("tailnet.test.", LDNS_RR_TYPE_AXFR), transport::tcp).why, outcome::refused);
  EXPECT_EQ(ask(query("example.org.", LDNS_RR_TYPE_IXFR)).why, outcome::refused);
}

// --- refusals -------------------------------------------------------------------------------

TEST(DnsRefusals, ShortAndResponsesDropped) {
  EXPECT_EQ(ask({}).kind, decision_kind::drop);
  const decision d = ask(bytes(ts1_a_query.begin(), ts1_a_query.begin() + 11));
  EXPECT_EQ(d.kind, decision_kind::drop);
  EXPECT_EQ(d.why, outcome::too_short);
  EXPECT_TRUE(d.message.empty());
  bytes response = ts1_a_query;
  response[2] |= 0x80;
  EXPECT_EQ(ask(response).kind, decision_kind::drop);
  EXPECT_EQ(ask(response).why, outcome::not_a_query);
  // Our own answer sent back to us (a loop) is dropped too.
  EXPECT_EQ(ask(ask(ts1_a_query).message).why, outcome::not_a_query);
}

TEST(DnsRefusals, Formerr) {
  const auto formerr = [](const bytes& q) {
    const decision d = ask(q);
    EXPECT_EQ(d.kind, decision_kind::answer);
    EXPECT_EQ(d.why, outcome::malformed);
    EXPECT_EQ(d.message.size(), header_size);
    EXPECT_EQ(rcode_of(d), LDNS_RCODE_FORMERR);
  };
  bytes header_only(ts1_a_query.begin(), ts1_a_query.begin() + 12);
  header_only[5] = 0;  // QDCOUNT 0
  formerr(header_only);
  bytes two_questions = ts1_a_query;
  two_questions[5] = 2;
  formerr(two_questions);  // says two, has one
  two_questions.insert(two_questions.end(), ts1_a_query.begin() + 12, ts1_a_query.end());
  formerr(two_questions);  // has two
  for (std::size_t cut = 12; cut < ts1_a_query.size(); ++cut)
    formerr(bytes(ts1_a_query.begin(), ts1_a_query.begin() + static_cast<std::ptrdiff_t>(cut)));
  // A compression pointer to itself, one past the end, one forward (into
  // bytes after the question, which the fuzzer found: the forwarded copy
  // leaves them out), and a loop through an earlier label.
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1});
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 200, 0, 1, 0, 1});
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0xc0, 20, 0, 1, 0, 1, 1, 'b', 0});
  // Back, but into the middle of the question, from where the name runs on
  // past the pointer into the bytes after the message (the fuzzer again):
  // from 16, labels of 1 (at 16), 1 (at 18, holding the pointer's 0xc0),
  // then 16 (the pointer's own 16, running over the record and 6 trailing
  // bytes), then the root. ldns reads that name; it is refused.
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1,
           1, 'a', 0, 0x00, 0x01, 0x00, 0x01,                         // question at 12: a. A IN
           0xc0, 16, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x00,  // record at 19, owner -> 16
           'z', 'z', 'z', 'z', 'z', 'z', 0});                         // trailing
  {
    // A record owner pointing back at the question's name is fine (any
    // compressor writes that); pointing at itself is not.
    bytes q = query("www.example.org.", LDNS_RR_TYPE_A);
    q[11] = 1;
    bytes good = q;
    good.insert(good.end(), {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x04, 1, 2, 3, 4});
    EXPECT_EQ(ask(good).why, outcome::forwarded_default);
    bytes self = q;
    const auto at = static_cast<std::uint8_t>(self.size());
    self.insert(self.end(), {0xc0, at, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x04, 1, 2, 3, 4});
    formerr(self);
  }
  // A label longer than 63, an extended label type.
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64, 'a', 0, 0, 1, 0, 1});
  formerr({0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1});
  // An additional record counted but missing, and one whose RDLENGTH runs past the end.
  bytes missing = ts1_a_query;
  missing[11] = 1;
  formerr(missing);
  bytes overlong = missing;
  overlong.insert(overlong.end(), {0, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0x00, 0x05, 1, 2, 3, 4});
  formerr(overlong);
  // Two OPT records; an OPT owned by a name; an OPT whose options overrun it.
  const bytes opt = {0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x00};
  bytes two_opts = ts1_a_query;
  two_opts[11] = 2;
  two_opts.insert(two_opts.end(), opt.begin(), opt.end());
  two_opts.insert(two_opts.end(), opt.begin(), opt.end());
  formerr(two_opts);
  bytes named_opt = ts1_a_query;
  named_opt[11] = 1;
  named_opt.insert(named_opt.end(), {0xc0, 0x0c, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x00});
  formerr(named_opt);
  bytes bad_options = ts1_a_query;
  bad_options[11] = 1;
  bad_options.insert(bad_options.end(),
                     {0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x06, 0x00, 0x0a, 0x00, 0x08, 1, 2});
  formerr(bad_options);
}

TEST(DnsRefusals, WellFormedRecordsAfterTheQuestionAreAccepted) {
  // A cookie option (RFC 7873) in the OPT: fine, forwarded as is.
  bytes q = query("www.example.org.", LDNS_RR_TYPE_A);
  q[11] = 1;
  q.insert(q.end(),
           {0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8});
  const decision d = ask(q);
  EXPECT_EQ(d.why, outcome::forwarded_default);
  EXPECT_EQ(d.message, q);
}

TEST(DnsRefusals, TsigRefused) {
  bytes q = ts1_a_query;
  q[11] = 2;
  const bytes tsig = {0, 0x00, 0xfa, 0x00, 0xff, 0, 0, 0, 0, 0x00, 0x02, 0xaa, 0xbb};  // type 250, class ANY
  q.insert(q.end(), tsig.begin(), tsig.end());
  q.insert(q.end(), tsig.begin(), tsig.end());
  const decision d = ask(q);
  EXPECT_EQ(d.why, outcome::refused);
  EXPECT_EQ(rcode_of(d), LDNS_RCODE_REFUSED);
}

TEST(DnsRefusals, BadEdnsVersion) {
  query_options o;
  o.edns = true;
  o.udp_size = 1232;
  o.edns_version = 1;
  const decision d = ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_A, o));
  EXPECT_EQ(d.why, outcome::bad_version);
  const pkt_ptr p = parse(d.message);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), 0);
  EXPECT_EQ(ldns_pkt_edns_extended_rcode(p.get()), 1);  // 16, BADVERS
  EXPECT_EQ(ldns_pkt_edns_version(p.get()), 0);
}

// --- sizes and EDNS0 -----------------------------------------------------------------------------

TEST(DnsSizes, BigAnswerTruncatedOverUdpOnly) {
  const bytes q = query("big.tailnet.test.", LDNS_RR_TYPE_A);
  const decision udp = ask(q);
  EXPECT_EQ(udp.kind, decision_kind::answer);
  EXPECT_TRUE(udp.truncated);
  EXPECT_LE(udp.message.size(), 512U);
  const pkt_ptr p = parse(udp.message);
  EXPECT_TRUE(ldns_pkt_tc(p.get()));
  EXPECT_TRUE(is_truncated(udp.message));  // what the forwarding plumbing reads
  EXPECT_EQ(ldns_pkt_qdcount(p.get()), 1);
  EXPECT_EQ(ldns_pkt_ancount(p.get()) + ldns_pkt_nscount(p.get()) + ldns_pkt_arcount(p.get()), 0);
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_NOERROR);

  const decision tcp = ask(q, transport::tcp);
  EXPECT_FALSE(tcp.truncated);
  EXPECT_GT(tcp.message.size(), 512U);
  const pkt_ptr all = parse(tcp.message);
  EXPECT_FALSE(ldns_pkt_tc(all.get()));
  EXPECT_FALSE(is_truncated(tcp.message));
  EXPECT_FALSE(is_truncated(bytes{0x12, 0x34, 0x82}));  // shorter than a header
  EXPECT_EQ(ldns_pkt_ancount(all.get()), 40);
}

TEST(DnsSizes, EdnsSizeHonouredAndCapped) {
  const auto with_size = [](std::string name, std::uint16_t size, bool do_bit = false) {
    query_options o;
    o.edns = true;
    o.udp_size = size;
    o.do_bit = do_bit;
    return ask(query(name, name.starts_with("huge") ? LDNS_RR_TYPE_AAAA : LDNS_RR_TYPE_A, o));
  };
  // 40 A records are 685 bytes with the OPT.
  const decision fits = with_size("big.tailnet.test.", 1232, true);
  EXPECT_FALSE(fits.truncated);
  EXPECT_LE(fits.message.size(), 1232U);
  const pkt_ptr p = parse(fits.message);
  EXPECT_EQ(ldns_pkt_ancount(p.get()), 40);
  EXPECT_TRUE(ldns_pkt_edns(p.get()));
  EXPECT_EQ(ldns_pkt_edns_udp_size(p.get()), 1232);
  EXPECT_TRUE(ldns_pkt_edns_do(p.get()));

  const decision small = with_size("big.tailnet.test.", 600);
  EXPECT_TRUE(small.truncated);
  const pkt_ptr ps = parse(small.message);
  EXPECT_TRUE(ldns_pkt_tc(ps.get()));
  EXPECT_TRUE(ldns_pkt_edns(ps.get()));  // the OPT stays
  EXPECT_FALSE(ldns_pkt_edns_do(ps.get()));

  EXPECT_TRUE(with_size("big.tailnet.test.", 100).truncated);  // below 512 counts as 512
  EXPECT_FALSE(with_size("big.tailnet.test.", 4096).truncated);
  // 80 AAAA records (2.3 KB): beyond the 1232 cap whatever is advertised, fine over TCP.
  EXPECT_TRUE(with_size("huge.tailnet.test.", 4096).truncated);
  query_options o;
  o.edns = true;
  o.udp_size = 4096;
  const decision tcp = ask(query("huge.tailnet.test.", LDNS_RR_TYPE_AAAA, o), transport::tcp);
  EXPECT_FALSE(tcp.truncated);
  EXPECT_EQ(ldns_pkt_ancount(parse(tcp.message).get()), 80);
}

TEST(DnsSizes, NoOptWithoutOne) {
  const pkt_ptr p = parse(ask(query("ts1.tailnet.test.", LDNS_RR_TYPE_A)).message);
  EXPECT_FALSE(ldns_pkt_edns(p.get()));
  EXPECT_EQ(ldns_pkt_arcount(p.get()), 0);
}

// --- the forwarding helpers ---------------------------------------------------------------

bytes upstream_answer_to(const bytes& sent) {
  bytes a = sent;
  a[2] |= 0x80;
  return a;
}

TEST(DnsHelpers, MessageId) {
  bytes q = ts1_a_query;
  EXPECT_EQ(message_id(q), 0x1234);
  EXPECT_TRUE(set_message_id(q, 0xabcd));
  EXPECT_EQ(q[0], 0xab);
  EXPECT_EQ(q[1], 0xcd);
  EXPECT_EQ(message_id(q), 0xabcd);
  bytes short_one(11, 0);
  EXPECT_FALSE(message_id(short_one));
  EXPECT_FALSE(set_message_id(short_one, 1));
  EXPECT_EQ(short_one, bytes(11, 0));
}

TEST(DnsHelpers, UpstreamAnswerMustMatchTheQuestion) {
  const decision d = ask(query("www.example.org.", LDNS_RR_TYPE_AAAA));
  ASSERT_EQ(d.kind, decision_kind::forward);
  bytes sent = d.message;
  ASSERT_TRUE(set_message_id(sent, 0x7777));

  EXPECT_EQ(check_upstream_answer(sent, upstream_answer_to(sent)), answer_check::ok);
  // A real answer, with records, and the name in another case (0x20).
  query_options o;
  o.id = 0x7777;
  {
    bytes answer = query("WWW.Example.ORG.", LDNS_RR_TYPE_AAAA, o);
    answer[2] |= 0x80;
    EXPECT_EQ(check_upstream_answer(sent, answer), answer_check::ok);
  }
  bytes other_id = upstream_answer_to(sent);
  other_id[1] ^= 1;
  EXPECT_EQ(check_upstream_answer(sent, other_id), answer_check::id_mismatch);
  EXPECT_EQ(check_upstream_answer(sent, sent), answer_check::not_a_response);
  EXPECT_EQ(check_upstream_answer(sent, bytes(sent.begin(), sent.begin() + 11)), answer_check::too_short);
  const auto as_answer = [&](const std::string& name, ldns_rr_type type, std::uint16_t qclass = LDNS_RR_CLASS_IN) {
    query_options a = o;
    a.qclass = qclass;
    return upstream_answer_to(query(name, type, a));
  };
  EXPECT_EQ(check_upstream_answer(sent, as_answer("www.example.net.", LDNS_RR_TYPE_AAAA)),
            answer_check::question_mismatch);
  EXPECT_EQ(check_upstream_answer(sent, as_answer("www.example.org.", LDNS_RR_TYPE_A)),
            answer_check::question_mismatch);
  EXPECT_EQ(check_upstream_answer(sent, as_answer("www.example.org.", LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_CH)),
            answer_check::question_mismatch);
  bytes no_question = upstream_answer_to(sent);
  no_question.resize(header_size);
  no_question[5] = 0;
  EXPECT_EQ(check_upstream_answer(sent, no_question), answer_check::question_mismatch);
  bytes other_opcode = upstream_answer_to(sent);
  other_opcode[2] |= 0x10;
  EXPECT_EQ(check_upstream_answer(sent, other_opcode), answer_check::opcode_mismatch);
  EXPECT_EQ(check_upstream_answer(bytes(5, 0), upstream_answer_to(sent)), answer_check::bad_query);
  EXPECT_EQ(to_string(answer_check::id_mismatch), "id_mismatch");
}

TEST(DnsHelpers, ServfailAnswer) {
  query_options o;
  o.edns = true;
  o.udp_size = 4096;
  const bytes q = query("www.example.org.", LDNS_RR_TYPE_A, o);
  const bytes s = servfail_answer(q);
  const pkt_ptr p = parse(s);
  EXPECT_EQ(ldns_pkt_id(p.get()), 0x1234);
  EXPECT_TRUE(ldns_pkt_qr(p.get()));
  EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_SERVFAIL);
  EXPECT_EQ(records(ldns_pkt_question(p.get())), std::vector<std::string>{"www.example.org. IN A"});
  EXPECT_TRUE(ldns_pkt_edns(p.get()));
  EXPECT_EQ(check_upstream_answer(q, s), answer_check::ok);
  EXPECT_TRUE(servfail_answer(bytes(ts1_a_query.begin(), ts1_a_query.begin() + 20)).empty());
  EXPECT_TRUE(servfail_answer(upstream_answer_to(q)).empty());
}

TEST(DnsHelpers, OutcomeNames) {
  EXPECT_EQ(name_of(outcome::forwarded_route), "forwarded_route");
  EXPECT_EQ(name_of(outcome::not_a_query), "not_a_query");
  EXPECT_FALSE(description_of(outcome::malformed).empty());
}

// --- robustness ------------------------------------------------------------------------------

// Mutations of valid queries: whatever comes in, an answer is a response
// with the query's ID that ldns reads, within the transport's limit, and it
// answers the question when it has one; a forward carries resolvers.
TEST(DnsRobustness, MutatedQueries) {
  std::mt19937 rng(1234);
  query_options o;
  o.edns = true;
  o.udp_size = 1400;
  const std::vector<bytes> seeds = {ts1_a_query, query("big.tailnet.test.", LDNS_RR_TYPE_A, o),
                                    query("9.0.64.100.in-addr.arpa.", LDNS_RR_TYPE_PTR),
                                    query("www.corp.example.", LDNS_RR_TYPE_AAAA, o)};
  for (int i = 0; i < 20000; ++i) {
    bytes m = seeds[static_cast<std::size_t>(i) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !m.empty(); ++e) {
      switch (rng() % 4) {
        case 0: m[rng() % m.size()] = static_cast<std::uint8_t>(rng()); break;
        case 1: m.resize(rng() % (m.size() + 1)); break;
        case 2:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(rng() % m.size()), static_cast<std::uint8_t>(rng()));
          break;
        default: m[rng() % m.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
      }
    }
    const transport t = (i & 1) ? transport::tcp : transport::udp;
    const decision d = ask(m, t);
    switch (d.kind) {
      case decision_kind::drop:
        ASSERT_TRUE(m.size() < header_size || (m[2] & 0x80));
        break;
      case decision_kind::forward:
        ASSERT_FALSE(d.resolvers.empty());
        ASSERT_LE(d.message.size(), m.size());
        ASSERT_EQ(ask(d.message, t).kind, decision_kind::forward);
        break;
      case decision_kind::answer: {
        ASSERT_GE(d.message.size(), header_size);
        ASSERT_LE(d.message.size(), t == transport::udp ? 1232U : 65535U);
        ASSERT_EQ(message_id(d.message), message_id(m));
        ASSERT_TRUE(d.message[2] & 0x80);
        if (d.message[5] == 1) {
          ASSERT_EQ(check_upstream_answer(m, d.message), answer_check::ok);
        }
        ldns_pkt* raw = nullptr;
        const ldns_status s = ldns_wire2pkt(&raw, d.message.data(), d.message.size());
        const pkt_ptr owned(raw);
        ASSERT_EQ(s, LDNS_STATUS_OK);
        break;
      }
    }
  }
}

// --- devices by name, and tailnet peers asking ------------------------------------------

// The tailnet's zone plus four devices under lopower.internal (one of each
// kind, one whose name cannot be a label, two differing only in case), and
// the split-DNS route the tailnet gets for the device domain, pointing at
// lopower itself.
zone device_zone(std::string domain = "lopower.internal") {
  zone z = test_zone();
  z.device_domain = std::move(domain);
  z.devices["esp32"] = {ip("10.90.0.2"), ip("fd7a:115c:a1e0:9909::2")};
  z.devices["Sensor-4"] = {ip("10.90.0.4")};            // --ipv4-only
  z.devices["v6dev"] = {ip("fd7a:115c:a1e0:9909::5")};  // --ipv6-only
  z.devices["shelf.2"] = {ip("10.90.0.6")};             // '.': not one label
  z.devices["under_score"] = {ip("10.90.0.7")};
  z.devices["Twin"] = {ip("10.90.0.8")};
  z.devices["twin"] = {ip("10.90.0.9")};
  z.routes["lopower.internal"] = {"100.64.0.1"};
  return z;
}

decision ask_in(const answerer& a, const std::string& name, ldns_rr_type type, tunnel_families device = {},
                asker who = asker::device) {
  return a.handle_query(query(name, type), transport::udp, device, who);
}

TEST(DnsDeviceNames, BothFamiliesAnyCaseWithOrWithoutTheDot) {
  const answerer a(device_zone());
  EXPECT_EQ(answer_records(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_A)),
            std::vector<std::string>{"esp32.lopower.internal. 600 IN A 10.90.0.2"});
  EXPECT_EQ(answer_records(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_AAAA)),
            std::vector<std::string>{"esp32.lopower.internal. 600 IN AAAA fd7a:115c:a1e0:9909::2"});
  const decision upper = ask_in(a, "ESP32.LoPower.Internal", LDNS_RR_TYPE_A);  // ldns adds the root
  EXPECT_EQ(upper.why, outcome::answered);
  EXPECT_EQ(answer_records(upper), std::vector<std::string>{"ESP32.LoPower.Internal. 600 IN A 10.90.0.2"});
  EXPECT_TRUE(ldns_pkt_aa(parse(upper.message).get()));
  // A device name in capitals is asked in any case too.
  EXPECT_EQ(answer_records(ask_in(a, "sensor-4.lopower.internal.", LDNS_RR_TYPE_A)),
            std::vector<std::string>{"sensor-4.lopower.internal. 600 IN A 10.90.0.4"});
  // The domain written with its dot in the config is the same domain.
  const answerer dotted(device_zone("LOPOWER.internal."));
  EXPECT_EQ(ask_in(dotted, "esp32.lopower.internal.", LDNS_RR_TYPE_A).why, outcome::answered);
}

TEST(DnsDeviceNames, TheFamilyRuleOfTheAskingDevice) {
  const answerer a(device_zone());
  const decision v6_asks_a = ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_A, ipv6_only);
  EXPECT_EQ(v6_asks_a.why, outcome::family_filtered);
  EXPECT_EQ(ldns_pkt_ancount(parse(v6_asks_a.message).get()), 0);
  EXPECT_EQ(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_AAAA, ipv4_only).why, outcome::family_filtered);
  EXPECT_EQ(answer_records(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_ANY, ipv4_only)),
            std::vector<std::string>{"esp32.lopower.internal. 600 IN A 10.90.0.2"});
  EXPECT_EQ(answer_records(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_AAAA, ipv6_only)),
            std::vector<std::string>{"esp32.lopower.internal. 600 IN AAAA fd7a:115c:a1e0:9909::2"});
}

TEST(DnsDeviceNames, NodataNxdomainAndTheDomainItself) {
  const answerer a(device_zone());
  const auto expect_negative = [&](const std::string& name, ldns_rr_type type, outcome why, ldns_pkt_rcode rcode) {
    SCOPED_TRACE(name);
    const decision d = ask_in(a, name, type);
    EXPECT_EQ(d.kind, decision_kind::answer);
    EXPECT_EQ(d.why, why);
    const pkt_ptr p = parse(d.message);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), rcode);
    EXPECT_TRUE(ldns_pkt_aa(p.get()));
    EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
    EXPECT_EQ(records(ldns_pkt_authority(p.get())),
              std::vector<std::string>{
                  "lopower.internal. 60 IN SOA lopower.internal. nobody.invalid. 1 3600 1200 604800 60"});
  };
  expect_negative("sensor-4.lopower.internal.", LDNS_RR_TYPE_AAAA, outcome::nodata, LDNS_RCODE_NOERROR);
  expect_negative("v6dev.lopower.internal.", LDNS_RR_TYPE_A, outcome::nodata, LDNS_RCODE_NOERROR);
  expect_negative("lopower.internal.", LDNS_RR_TYPE_A, outcome::nodata, LDNS_RCODE_NOERROR);
  expect_negative("nosuch.lopower.internal.", LDNS_RR_TYPE_A, outcome::nxdomain, LDNS_RCODE_NXDOMAIN);
  expect_negative("x.esp32.lopower.internal.", LDNS_RR_TYPE_A, outcome::nxdomain, LDNS_RCODE_NXDOMAIN);
  // Names that cannot be one label, and names that differ only in case, are not answered.
  expect_negative("2.lopower.internal.", LDNS_RR_TYPE_A, outcome::nxdomain, LDNS_RCODE_NXDOMAIN);
  expect_negative("under_score.lopower.internal.", LDNS_RR_TYPE_A, outcome::nxdomain, LDNS_RCODE_NXDOMAIN);
  expect_negative("twin.lopower.internal.", LDNS_RR_TYPE_A, outcome::nxdomain, LDNS_RCODE_NXDOMAIN);
  EXPECT_EQ(ask_in(a, "lopower.internal.", LDNS_RR_TYPE_SOA).why, outcome::answered);
  const auto device_problems = std::count_if(a.problems().begin(), a.problems().end(), [](const std::string& p) {
    return p.starts_with("device \"");
  });
  EXPECT_EQ(device_problems, 4) << "shelf.2, under_score, Twin and twin are logged";
}

// The tailnet's split-DNS route for the domain (to lopower's own address)
// must not make lopower forward its own domain to itself.
TEST(DnsDeviceNames, TheDomainStaysOursDespiteTheTailnetsRoute) {
  const answerer a(device_zone());
  EXPECT_EQ(ask_in(a, "nosuch.lopower.internal.", LDNS_RR_TYPE_A).kind, decision_kind::answer);
}

TEST(DnsDeviceNames, OffWhenTheDomainIsEmpty) {
  const answerer a(device_zone(""));
  const decision d = ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_A);
  EXPECT_EQ(d.kind, decision_kind::forward) << "an ordinary name again: the tailnet's route for it";
  EXPECT_EQ(d.why, outcome::forwarded_route);
  EXPECT_EQ(ask_in(a, "esp32.lopower.internal.", LDNS_RR_TYPE_A, {}, asker::tailnet_peer).why,
            outcome::not_for_tailnet);
}

// Live: the service builds a new answerer when devices come and go (a new
// zone); the old one answered as before, the new one at once.
TEST(DnsDeviceNames, DevicesAddedAndRemoved) {
  zone z = device_zone();
  const answerer before(z);
  z.devices["newcomer"] = {ip("10.90.0.10")};
  z.devices.erase("esp32");
  const answerer after(z);
  EXPECT_EQ(ask_in(before, "newcomer.lopower.internal.", LDNS_RR_TYPE_A).why, outcome::nxdomain);
  EXPECT_EQ(answer_records(ask_in(after, "newcomer.lopower.internal.", LDNS_RR_TYPE_A)),
            std::vector<std::string>{"newcomer.lopower.internal. 600 IN A 10.90.0.10"});
  EXPECT_EQ(ask_in(after, "esp32.lopower.internal.", LDNS_RR_TYPE_A).why, outcome::nxdomain);
}

TEST(DnsTailnetAskers, DeviceDomainOnly) {
  const answerer a(device_zone());
  const auto tailnet_asks = [&](const std::string& name, ldns_rr_type type) {
    return ask_in(a, name, type, {}, asker::tailnet_peer);
  };
  EXPECT_EQ(answer_records(tailnet_asks("esp32.lopower.internal.", LDNS_RR_TYPE_A)),
            std::vector<std::string>{"esp32.lopower.internal. 600 IN A 10.90.0.2"});
  EXPECT_EQ(answer_records(tailnet_asks("ESP32.lopower.internal.", LDNS_RR_TYPE_AAAA)),
            std::vector<std::string>{"ESP32.lopower.internal. 600 IN AAAA fd7a:115c:a1e0:9909::2"});
  EXPECT_EQ(tailnet_asks("nosuch.lopower.internal.", LDNS_RR_TYPE_A).why, outcome::nxdomain);
  EXPECT_EQ(tailnet_asks("lopower.internal.", LDNS_RR_TYPE_A).why, outcome::nodata);
  // Everything else: REFUSED, never forwarded, MagicDNS names and reverse names included.
  for (const auto& [name, type] : std::vector<std::pair<std::string, ldns_rr_type>>{
           {"www.example.org.", LDNS_RR_TYPE_A},
           {"host.corp.example.", LDNS_RR_TYPE_A},
           {"ts1.tailnet.test.", LDNS_RR_TYPE_A},
           {"db.example.com.", LDNS_RR_TYPE_A},
           {"2.0.90.10.in-addr.arpa.", LDNS_RR_TYPE_PTR},
           {"internal.", LDNS_RR_TYPE_A},
           {"xlopower.internal.", LDNS_RR_TYPE_A},
       }) {
    SCOPED_TRACE(name);
    const decision d = tailnet_asks(name, type);
    EXPECT_EQ(d.kind, decision_kind::answer);
    EXPECT_EQ(d.why, outcome::not_for_tailnet);
    const pkt_ptr p = parse(d.message);
    EXPECT_EQ(ldns_pkt_get_rcode(p.get()), LDNS_RCODE_REFUSED);
    EXPECT_EQ(ldns_pkt_ancount(p.get()), 0);
    EXPECT_EQ(ldns_pkt_id(p.get()), 0x1234);
  }
  // A devices asking the same is answered or forwarded as ever.
  EXPECT_EQ(ask_in(a, "ts1.tailnet.test.", LDNS_RR_TYPE_A).why, outcome::answered);
  EXPECT_EQ(ask_in(a, "www.example.org.", LDNS_RR_TYPE_A).kind, decision_kind::forward);
}

// A split-DNS route the tailnet sets below the device domain forwards for
// devices; a tailnet peer is not forwarded for.
TEST(DnsTailnetAskers, NeverForwarded) {
  zone z = device_zone();
  z.routes["corp.lopower.internal."] = {"10.0.0.53"};
  const answerer a(z);
  EXPECT_EQ(ask_in(a, "x.corp.lopower.internal.", LDNS_RR_TYPE_A).kind, decision_kind::forward);
  EXPECT_EQ(ask_in(a, "x.corp.lopower.internal.", LDNS_RR_TYPE_A, {}, asker::tailnet_peer).why,
            outcome::not_for_tailnet);
}

}  // namespace
}  // namespace lopower::dns
