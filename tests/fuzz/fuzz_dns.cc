// libFuzzer target: the DNS answerer, which takes whatever a device sends to
// port 53, and the upstream-answer matcher, which takes whatever arrives on
// the forwarding sockets.
//
// The input is used three ways:
//   as a query      answered over UDP and over TCP with a small fixed zone:
//                   dropped only when shorter than a header or a response;
//                   an answer is a response with the query's ID that ldns
//                   reads back, within the transport's limit, and matches
//                   the query when it carries a question; a forward names
//                   resolvers, is no longer than the input and is forwarded
//                   again when asked again;
//   per device      asked by an --ipv4-only and an --ipv6-only device: the
//                   same kind of decision, the same forward, and an answer
//                   ldns reads back (the family filter only empties answers);
//   by a tailnet peer  never forwarded; answered as a device is for the
//                   device domain, else REFUSED (not_for_tailnet);
//   for SERVFAIL    when one is made, it matches the query;
//   split in two    a query and an upstream answer for the matcher.
// A violated invariant traps.
//
// Built by tests/fuzz (not by tests/unit/dns/meson.build).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "control/dns/dns_answerer.h"
#include "control/dns/ldns_owned.h"

namespace dns = lopower::dns;

namespace {

lopower::ip_address ip(const char* text) { return *lopower::ip_address::parse(text); }

const dns::answerer& fixed_answerer() {
  static const dns::answerer a = [] {
    dns::zone z;
    z.local_suffixes = {"tailnet.test."};
    z.names["ts1.tailnet.test."] = {ip("100.101.102.103"), ip("fd7a:115c:a1e0::1")};
    z.names["deep.sub.tailnet.test."] = {ip("100.64.0.7")};
    for (int i = 1; i <= 40; ++i) z.names["big.tailnet.test."].push_back(ip(("100.64.1." + std::to_string(i)).c_str()));
    z.extra = {{"db.example.com", "", "100.64.0.9"}};
    z.routes["corp.example."] = {"10.0.0.53"};
    z.routes["ts.net."] = {};
    z.default_resolvers = {"9.9.9.9"};
    // Devices by name, with the tailnet's split-DNS route for their domain
    // (to lopower itself) and one below it.
    z.device_domain = "lopower.internal";
    z.devices["esp32"] = {ip("10.90.0.2"), ip("fd7a:115c:a1e0:9909::2")};
    z.devices["v4only"] = {ip("10.90.0.3")};
    z.devices["bad_name"] = {ip("10.90.0.4")};
    z.routes["lopower.internal."] = {"100.64.0.1"};
    z.routes["sub.lopower.internal."] = {"10.0.0.53"};
    return dns::answerer(z);
  }();
  return a;
}

bool ldns_reads(std::span<const std::uint8_t> m) {
  ldns_pkt* raw = nullptr;
  const bool ok = ldns_wire2pkt(&raw, m.data(), m.size()) == LDNS_STATUS_OK;
  const dns::ldns_pkt_ptr owned(raw);
  return ok;
}

void check_decision(std::span<const std::uint8_t> query, dns::transport t) {
  const dns::decision d = fixed_answerer().handle_query(query, t);
  const bool droppable = query.size() < dns::header_size || (query[2] & 0x80) != 0;
  switch (d.kind) {
    case dns::decision_kind::drop:
      if (!droppable) __builtin_trap();
      return;
    case dns::decision_kind::forward: {
      if (droppable || d.resolvers.empty() || d.message.size() > query.size() || d.message.size() < dns::header_size)
        __builtin_trap();
      const dns::decision again = fixed_answerer().handle_query(d.message, t);
      if (again.kind != dns::decision_kind::forward || again.message != d.message) __builtin_trap();
      return;
    }
    case dns::decision_kind::answer: {
      const std::size_t limit = t == dns::transport::udp ? dns::max_udp_size : dns::max_message_size;
      if (droppable || d.message.size() < dns::header_size || d.message.size() > limit) __builtin_trap();
      if (dns::message_id(d.message) != dns::message_id(query) || (d.message[2] & 0x80) == 0) __builtin_trap();
      if (!ldns_reads(d.message)) __builtin_trap();
      const bool has_question = d.message[4] == 0 && d.message[5] == 1;
      if (has_question && dns::check_upstream_answer(query, d.message) != dns::answer_check::ok) __builtin_trap();
      return;
    }
  }
}

// A device's address families change what is answered for local names,
// never whether the query is answered, forwarded or dropped.
void check_device_families(std::span<const std::uint8_t> query) {
  const dns::decision any = fixed_answerer().handle_query(query, dns::transport::udp);
  for (const dns::tunnel_families device : {dns::tunnel_families{true, false}, dns::tunnel_families{false, true}}) {
    const dns::decision d = fixed_answerer().handle_query(query, dns::transport::udp, device);
    if (d.kind != any.kind) __builtin_trap();
    if (d.kind == dns::decision_kind::forward && (d.message != any.message || d.resolvers != any.resolvers))
      __builtin_trap();
    if (d.kind == dns::decision_kind::answer && !ldns_reads(d.message)) __builtin_trap();
  }
}

// A tailnet peer is never forwarded for: it gets what a device gets for
// names in the device domain, REFUSED for the rest.
void check_tailnet_asker(std::span<const std::uint8_t> query) {
  const dns::decision device = fixed_answerer().handle_query(query, dns::transport::udp);
  const dns::decision d =
      fixed_answerer().handle_query(query, dns::transport::udp, {}, dns::asker::tailnet_peer);
  if (d.kind == dns::decision_kind::forward) __builtin_trap();
  if ((d.kind == dns::decision_kind::drop) != (device.kind == dns::decision_kind::drop)) __builtin_trap();
  if (d.kind != dns::decision_kind::answer || !ldns_reads(d.message)) return;
  if (device.kind == dns::decision_kind::forward && d.why != dns::outcome::not_for_tailnet) __builtin_trap();
  if (d.why == dns::outcome::not_for_tailnet) {
    if ((d.message[3] & 0x0f) != LDNS_RCODE_REFUSED || dns::message_id(d.message) != dns::message_id(query))
      __builtin_trap();
  } else if (d.message != device.message) {
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  check_decision(input, dns::transport::udp);
  check_decision(input, dns::transport::tcp);
  check_device_families(input);
  check_tailnet_asker(input);

  const std::vector<std::uint8_t> servfail = dns::servfail_answer(input);
  if (!servfail.empty() && dns::check_upstream_answer(input, servfail) != dns::answer_check::ok) __builtin_trap();

  if (size > 1) {
    const std::size_t split = 1 + data[0] % (size - 1);  // 1 .. size-1
    (void)dns::check_upstream_answer(input.subspan(1, split - 1), input.subspan(split));
  }
  return 0;
}
