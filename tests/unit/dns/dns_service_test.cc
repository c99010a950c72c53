// The DNS service for devices (control/dns/service.*) in memory: a device
// with a session (its handshake done by the test, tests/support/
// wg_test_peer.h) sends its query sealed, as a frame on a net_ring port; the
// real worker decrypts it and hands it up, the service answers, and the
// answer comes back out of the port sealed for the device, where the test
// opens it and reads the DNS message byte by byte. Forwarded names go to a
// UDP socket of the test's own standing in for the upstream resolver; the
// event loop runs until the answer is out (no sleeping, a 5 s limit).
//
// The service also opens a TUN for DNS over TCP; as root the test first
// moves into a network namespace of its own so that interface (and its
// 10.90.0.1) never shows on the host. Unprivileged, the TUN fails and the
// service goes on without TCP, which is not tested here.

#include "control/dns/service.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <sodium.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "control/event_loop.h"
#include "dataplane/classifier.h"
#include "dataplane/inner_packet.h"
#include "dataplane/tailnet_view.h"
#include "tests/support/dataplane_rig.h"
#include "tests/support/eal.h"
#include "tests/support/wg_test_peer.h"
#include "tests/unit/enrollment/temp_dir.h"
#include "tests/unit/netmap/netmap_test_util.h"
#include "tests/unit/splice/packets.h"

namespace lopower {
namespace {

using splice::test::be16;
using splice::test::bytes;
using test_support::sent_frame;
using test_support::test_session;

// Root: a network namespace of our own, loopback up (the fake upstream is
// on 127.0.0.1). Otherwise the host's, where the service's TUN fails.
bool isolate_network() {
  if (::unshare(CLONE_NEWNET) != 0) return false;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  if (fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    ::ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  if (fd >= 0) ::close(fd);
  return true;
}

bool eal_up() {
  static const bool ok = [] {
    isolate_network();
    return test_support::start_eal("dns_service_tests", 512) && sodium_init() >= 0;
  }();
  return ok;
}

// A question for `name`, type `qtype`, ID `id`, RD set (RFC 1035 4.1).
bytes dns_query(std::uint16_t id, const std::string& name, std::uint16_t qtype) {
  bytes q = {static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  std::size_t start = 0;
  while (start < name.size()) {
    const std::size_t dot = name.find('.', start);
    const std::size_t end = dot == std::string::npos ? name.size() : dot;
    q.push_back(static_cast<std::uint8_t>(end - start));
    q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(end));
    start = end + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {static_cast<std::uint8_t>(qtype >> 8), static_cast<std::uint8_t>(qtype), 0, 1});
  return q;
}

// The first answer record's RDATA of type A, after the (one) question.
std::optional<bytes> first_a_record(const bytes& m) {
  std::size_t at = 12;
  while (at < m.size() && m[at] != 0) at += 1u + m[at];  // the question's name
  at += 1 + 4;
  if (be16(&m[6]) == 0 || at + 12 > m.size()) return std::nullopt;
  at += (m[at] & 0xc0) == 0xc0 ? 2 : 0;  // a compressed owner name
  if (be16(&m[at]) != 1 || be16(&m[at + 8]) != 4 || at + 14 > m.size()) return std::nullopt;
  return bytes(m.begin() + static_cast<long>(at + 10), m.begin() + static_cast<long>(at + 14));
}

struct dns_rig {
  enrollment::testing::temp_dir state;
  test_support::dataplane_rig rig;
  config cfg;
  std::optional<enrollment::device_registry> registry;
  std::unique_ptr<wireguard_interface> devices;
  std::unique_ptr<test_support::wg_test_peer> device;
  enrollment::device enrolled;
  event_loop loop;
  std::unique_ptr<dns_service> dns;
  int upstream = -1;  // the fake resolver's socket
  std::uint16_t upstream_port = 0;
  test_session session;
  std::uint64_t counter = 0;

  explicit dns_rig(const std::string& name, bool ipv4_only = false) : rig(name) {
    upstream = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (upstream < 0 || ::bind(upstream, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::getsockname(upstream, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      throw std::runtime_error("no upstream socket");
    upstream_port = ntohs(sa.sin_port);
    cfg.daemon.state_dir = state.path();
    cfg.dns.upstreams = {"127.0.0.1:" + std::to_string(upstream_port)};
    enrollment::registry_config rc;
    rc.state_dir = state.path();
    auto reg = enrollment::device_registry::open(std::move(rc));
    if (!reg) throw std::runtime_error(reg.message());
    registry.emplace(std::move(*reg));
    device = std::make_unique<test_support::wg_test_peer>(registry->server_public_key());
    enrollment::add_options opts;
    opts.public_key = device->static_public().to_base64();
    opts.ipv4_only = ipv4_only;
    auto added = registry->add("esp32", opts);
    if (!added) throw std::runtime_error(added.message());
    enrolled = *added;
    devices = std::make_unique<wireguard_interface>(*rig.dp, cfg, *registry);
    dns = std::make_unique<dns_service>(loop, cfg, *registry, *devices);
    rig.on_control_packet = [this](rte_mbuf* m) {
      if (m->ol_flags & rig.dp->inner_up_flag()) {
        const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
        const auto info = parse_inner(p, m->data_len);
        if (info && is_dns_query(p, *info)) return dns->handle_query_packet(m);
        return rte_pktmbuf_free(m);
      }
      const classify_result r = classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, rig.dp->ports()[0].identity);
      if (r.cls == packet_class::wg_handshake) return devices->handle_packet(m, r, false);
      rte_pktmbuf_free(m);
    };
    rig.on_event = [this](const wg_event& ev) { devices->handle_event(ev); };
    handshake();
  }
  ~dns_rig() {
    dns.reset();
    devices.reset();
    if (upstream >= 0) ::close(upstream);
  }

  void handshake() {
    const auto init = device->initiation(monotonic_ns());
    rig.receive(rig.udp_frame(rig.device_ep, reinterpret_cast<const std::uint8_t*>(&init), sizeof init));
    rig.pump();
    const auto out = rig.sent();
    if (out.size() != 1 || out[0].type != 2) throw std::runtime_error("no handshake response");
    wg::message_handshake_response resp{};
    std::memcpy(&resp, &out[0].bytes[out[0].message_offset], sizeof resp);
    auto keys = device->consume(resp);
    if (!keys) throw std::runtime_error("the response does not check out");
    session = {*keys, 0};
  }

  std::string device_ip() const { return enrolled.ipv4->to_string(); }

  // The device's query from port 5353 to lopower's 10.90.0.1:53, sealed.
  void ask(const bytes& query) {
    const bytes packet = splice::test::ip_packet(false, 17, device_ip().c_str(), "10.90.0.1",
                                                 [&] {
                                                   bytes udp(8);
                                                   splice::test::put16(&udp[0], 5353);
                                                   splice::test::put16(&udp[2], 53);
                                                   splice::test::put16(&udp[4], static_cast<std::uint16_t>(8 + query.size()));
                                                   udp.insert(udp.end(), query.begin(), query.end());
                                                   return udp;
                                                 }());
    rte_mbuf* m = rig.alloc();
    test_support::seal_packet(m, packet, session.keys.send.data(), session.next_counter++, session.keys.remote_index,
                              rig.device_ep);
    rig.receive(m);
    rig.pump();
  }

  // The DNS answers lopower sent the device: each checked as a UDP packet
  // from 10.90.0.1:53 to the device's port 5353, returned as its payload.
  std::vector<bytes> answers() {
    std::vector<bytes> out;
    for (const sent_frame& f : rig.sent()) {
      EXPECT_EQ(f.receiver, session.keys.local_index);
      auto plain = f.open(session.keys.receive.data());
      if (!plain) {
        ADD_FAILURE() << "a frame that does not open with the device's session";
        continue;
      }
      bytes& p = *plain;
      EXPECT_EQ(p[9], 17);
      EXPECT_EQ(bytes(p.begin() + 12, p.begin() + 16), bytes({10, 90, 0, 1}));
      EXPECT_EQ(bytes(p.begin() + 16, p.begin() + 20), bytes(enrolled.ipv4->bytes.begin(), enrolled.ipv4->bytes.begin() + 4));
      EXPECT_EQ(be16(&p[20]), 53);
      EXPECT_EQ(be16(&p[22]), 5353);
      const std::size_t total = be16(&p[2]);
      p.resize(total);
      EXPECT_TRUE(splice::test::ip_checksum_ok(p));
      EXPECT_TRUE(splice::test::l4_checksum_ok(p));
      out.emplace_back(p.begin() + 28, p.end());
    }
    return out;
  }

  std::uint64_t outcome(const char* name) { return dns->status_json()["outcomes"][name].get<std::uint64_t>(); }
};

tailnet::netmap tailnet_with_node5() {
  using tailnet::test::peer_json;
  using tailnet::test::self_json;
  tailnet::netmap nm;
  nm.apply(tailnet::test::parse_ok(nlohmann::json{{"Node", self_json()}, {"Peers", {peer_json(5)}}}));
  return nm;
}

TEST(dns_service, answers_a_tailnet_name_through_the_devices_session) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsa");
  const tailnet::netmap nm = tailnet_with_node5();
  d.dns->update(&nm);
  d.ask(dns_query(0x1234, "node5.tailnet.example", 1));
  const auto answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  const bytes& a = answers[0];
  ASSERT_GE(a.size(), 12u);
  EXPECT_EQ(be16(&a[0]), 0x1234) << "the device's own ID";
  EXPECT_EQ(a[2] & 0x80, 0x80) << "QR";
  EXPECT_EQ(a[3] & 0x0f, 0) << "NOERROR";
  EXPECT_EQ(be16(&a[4]), 1u);
  EXPECT_EQ(be16(&a[6]), 1u);
  EXPECT_EQ(first_a_record(a), bytes({100, 64, 0, 5}));
  EXPECT_EQ(d.outcome("answered"), 1u);
  EXPECT_EQ(d.devices->dataplane_peer("esp32")->rx_packets.load(), 1u);
}

// The service knows which device asked: an --ipv4-only device gets no
// AAAA for a tailnet name (NODATA, counted), and still its A.
TEST(dns_service, ipv4_only_device_gets_no_aaaa_for_a_tailnet_name) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dns4", true);
  ASSERT_FALSE(d.enrolled.ipv6.has_value());
  const tailnet::netmap nm = tailnet_with_node5();
  d.dns->update(&nm);
  d.ask(dns_query(0x6666, "node5.tailnet.example", 28));
  auto answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(be16(&answers[0][0]), 0x6666);
  EXPECT_EQ(answers[0][3] & 0x0f, 0) << "NOERROR";
  EXPECT_EQ(be16(&answers[0][6]), 0u) << "no AAAA";
  EXPECT_EQ(d.outcome("family_filtered"), 1u);
  d.ask(dns_query(0x4444, "node5.tailnet.example", 1));
  answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(first_a_record(answers[0]), bytes({100, 64, 0, 5}));
  EXPECT_EQ(d.outcome("answered"), 1u);
}

TEST(dns_service, unknown_name_under_the_tailnet_suffix_is_nxdomain) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsn");
  const tailnet::netmap nm = tailnet_with_node5();
  d.dns->update(&nm);
  d.ask(dns_query(0x4321, "nope.tailnet.example", 1));
  const auto answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(be16(&answers[0][0]), 0x4321);
  EXPECT_EQ(answers[0][3] & 0x0f, 3) << "NXDOMAIN";
  EXPECT_EQ(be16(&answers[0][6]), 0u);
  EXPECT_EQ(d.outcome("nxdomain"), 1u);
  // After logging out (no netmap), the name is no longer ours: forwarded.
  d.dns->update(nullptr);
  d.ask(dns_query(0x4322, "node5.tailnet.example", 1));
  EXPECT_EQ(d.outcome("forwarded_default"), 1u);
}

// A name that is not the tailnet's goes to the upstream under an ID of the
// service's; the upstream's answer comes back to the device under its own.
TEST(dns_service, forwards_other_names_upstream_and_relays_the_answer) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsf");
  d.ask(dns_query(0x0bad, "example.org", 1));
  EXPECT_TRUE(d.answers().empty()) << "nothing before the upstream answers";
  EXPECT_EQ(d.outcome("forwarded_default"), 1u);
  pollfd pfd{d.upstream, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1) << "the query never reached the upstream";
  std::uint8_t buf[1500];
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  const ssize_t n = ::recvfrom(d.upstream, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
  ASSERT_GT(n, 12);
  bytes forwarded(buf, buf + n);
  const bytes asked = dns_query(0x0bad, "example.org", 1);
  ASSERT_EQ(forwarded.size(), asked.size());
  EXPECT_TRUE(std::equal(forwarded.begin() + 2, forwarded.end(), asked.begin() + 2)) << "the question as the device asked it";
  // The upstream's answer: the question, and one A record 192.0.2.7.
  bytes answer = forwarded;
  answer[2] = 0x81;
  answer[3] = 0x80;
  answer[7] = 1;
  answer.insert(answer.end(), {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7});
  ASSERT_EQ(::sendto(d.upstream, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len),
            static_cast<ssize_t>(answer.size()));
  // Run the event loop until the answer is out (or 5 s).
  std::vector<bytes> answers;
  d.loop.add_timer(std::chrono::milliseconds(1), std::chrono::milliseconds(1), [&] {
    d.rig.pump();
    for (bytes& a : d.answers()) answers.push_back(std::move(a));
    if (!answers.empty()) d.loop.stop();
  });
  d.loop.add_timer(std::chrono::seconds(5), std::chrono::microseconds(0), [&] { d.loop.stop(); });
  d.loop.run();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(be16(&answers[0][0]), 0x0bad) << "the device's ID restored";
  EXPECT_EQ(answers[0][3] & 0x0f, 0);
  EXPECT_EQ(first_a_record(answers[0]), bytes({192, 0, 2, 7}));
  EXPECT_EQ(d.dns->status_json()["upstream_answers"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(d.dns->status_json()["forwarded_in_flight"].get<std::size_t>(), 0u);
}

// Each forwarded query leaves from a socket of its own: a spoofed answer
// must hit the port as well as the ID. An answer with the right ID sent to
// another query's port is refused; a device over its share in flight gets
// SERVFAIL at once.
TEST(dns_service, each_forwarded_query_has_its_own_port_and_a_device_its_share) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsp");
  struct asked {
    bytes message;
    sockaddr_storage from;
    socklen_t from_len;
  };
  std::vector<asked> seen;
  auto read_upstream = [&](std::size_t want) {
    while (seen.size() < want) {
      pollfd pfd{d.upstream, POLLIN, 0};
      if (::poll(&pfd, 1, 5000) != 1) return;
      asked a{};
      a.from_len = sizeof a.from;
      std::uint8_t buf[1500];
      const ssize_t n = ::recvfrom(d.upstream, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&a.from), &a.from_len);
      if (n > 12) a.message.assign(buf, buf + n), seen.push_back(std::move(a));
    }
  };
  d.ask(dns_query(0x1111, "one.example.org", 1));
  d.ask(dns_query(0x2222, "two.example.org", 1));
  read_upstream(2);
  ASSERT_EQ(seen.size(), 2u);
  const auto port_of = [](const asked& a) { return ntohs(reinterpret_cast<const sockaddr_in*>(&a.from)->sin_port); };
  EXPECT_NE(port_of(seen[0]), port_of(seen[1])) << "two queries, two source ports";
  // The first query's answer, sent to the second query's port: refused.
  bytes answer = seen[0].message;
  answer[2] = 0x81;
  answer[3] = 0x80;
  ASSERT_GT(::sendto(d.upstream, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&seen[1].from),
                     seen[1].from_len), 0);
  d.loop.add_timer(std::chrono::milliseconds(1), std::chrono::milliseconds(1), [&] {
    if (d.dns->status_json()["upstream_answers_refused"].get<std::uint64_t>() > 0) d.loop.stop();
  });
  d.loop.add_timer(std::chrono::seconds(5), std::chrono::microseconds(0), [&] { d.loop.stop(); });
  d.loop.run();
  EXPECT_EQ(d.dns->status_json()["upstream_answers_refused"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(d.dns->status_json()["upstream_answers"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(d.dns->status_json()["forwarded_in_flight"].get<std::size_t>(), 2u);
  // The device's share: 64 in flight; the next is refused with SERVFAIL.
  for (unsigned i = 2; i < 64; ++i) d.ask(dns_query(static_cast<std::uint16_t>(0x3000 + i), "many.example.org", 1));
  EXPECT_EQ(d.dns->status_json()["forwarded_in_flight"].get<std::size_t>(), 64u);
  EXPECT_TRUE(d.answers().empty());
  d.ask(dns_query(0x4444, "one.too.many.example.org", 1));
  const auto refused = d.answers();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(be16(&refused[0][0]), 0x4444);
  EXPECT_EQ(refused[0][3] & 0x0f, 2) << "SERVFAIL";
  EXPECT_EQ(d.dns->status_json()["forwards_refused_device_limit"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(d.dns->status_json()["forwarded_in_flight"].get<std::size_t>(), 64u);
}

// A query whose source is no enrolled device's address (the workers'
// cryptokey routing keeps these out; the service checks again): counted,
// never answered.
TEST(dns_service, query_from_an_address_no_device_has_is_counted_and_not_answered) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsu");
  const bytes query = dns_query(0x7777, "example.org", 1);
  bytes udp(8);
  splice::test::put16(&udp[0], 5353);
  splice::test::put16(&udp[2], 53);
  splice::test::put16(&udp[4], static_cast<std::uint16_t>(8 + query.size()));
  udp.insert(udp.end(), query.begin(), query.end());
  const bytes packet = splice::test::ip_packet(false, 17, "10.90.0.77", "10.90.0.1", udp);
  rte_mbuf* m = d.rig.alloc();
  std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(packet.size())), packet.data(), packet.size());
  d.dns->handle_query_packet(m);
  d.rig.pump();
  EXPECT_TRUE(d.rig.sent().empty());
  EXPECT_EQ(d.dns->status_json()["queries_from_unknown_sources"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(d.outcome("forwarded_default"), 0u) << "not looked at";
  pollfd pfd{d.upstream, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "nothing went upstream";
}

// Devices by name under [dns] device_domain: the device's own name, and a
// device enrolled or removed while lopowerd runs is answered (or not) at
// its next query, with no netmap change in between.
TEST(dns_service, device_names_follow_the_registry_live) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsd");
  d.ask(dns_query(0x1001, "ESP32.lopower.internal", 1));
  auto answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(first_a_record(answers[0]), bytes(d.enrolled.ipv4->bytes.begin(), d.enrolled.ipv4->bytes.begin() + 4));

  auto shelf = d.registry->add("shelf", {});
  ASSERT_TRUE(shelf) << shelf.message();
  d.ask(dns_query(0x1002, "shelf.lopower.internal", 1));
  answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(first_a_record(answers[0]), bytes(shelf->ipv4->bytes.begin(), shelf->ipv4->bytes.begin() + 4));

  ASSERT_TRUE(d.registry->remove("shelf"));
  d.ask(dns_query(0x1003, "shelf.lopower.internal", 1));
  answers = d.answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0][3] & 0x0f, 3) << "NXDOMAIN";
  EXPECT_EQ(d.outcome("answered"), 2u);
  EXPECT_EQ(d.outcome("nxdomain"), 1u);
  EXPECT_EQ(d.dns->status_json()["device_domain"], "lopower.internal");
}

// A query to lopower's tailnet address comes from a tailnet peer: with no
// tailnet interface (or a peer that left) it is counted and not answered,
// and never taken for a device's.
TEST(dns_service, tailnet_query_without_its_peer_is_counted_and_not_answered) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnst");
  const bytes query = dns_query(0x7778, "esp32.lopower.internal", 1);
  bytes udp(8);
  splice::test::put16(&udp[0], 40000);
  splice::test::put16(&udp[2], 53);
  splice::test::put16(&udp[4], static_cast<std::uint16_t>(8 + query.size()));
  udp.insert(udp.end(), query.begin(), query.end());
  const bytes packet = splice::test::ip_packet(false, 17, "100.64.0.5", "100.64.0.1", udp);
  for (bool with_interface : {false, true}) {
    wireguard_interface* none = nullptr;
    if (with_interface) d.dns->answer_tailnet_through([&] { return d.devices.get(); });  // no peer with id 4242 there
    else d.dns->answer_tailnet_through([&] { return none; });
    rte_mbuf* m = d.rig.alloc();
    std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(packet.size())), packet.data(), packet.size());
    m->hash.usr = 4242;
    d.dns->handle_query_packet(m);
    d.rig.pump();
    EXPECT_TRUE(d.rig.sent().empty());
  }
  EXPECT_EQ(d.dns->status_json()["queries_from_unknown_sources"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(d.dns->status_json()["tailnet_queries"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(d.outcome("answered"), 0u) << "not looked at";
}

// A tailnet peer asks lopower's tailnet address (lopower as its split-DNS
// resolver for the device domain): its sealed query goes through the real
// worker (the tailnet's filter lets UDP 53 in), up to the service, and the
// answer comes back sealed for that peer on the tailnet interface, from
// lopower's tailnet address: the device's address for a device name,
// REFUSED for a name lopower would forward for a device.
TEST(dns_service, tailnet_peer_gets_device_names_through_its_session) {
  ASSERT_TRUE(eal_up());
  dns_rig d("dnsw");
  const private_key node_key = generate_private_key();
  auto tailnet = std::make_unique<wireguard_interface>(*d.rig.dp, d.cfg.wireguard, node_key, "tailnet peer");
  test_support::wg_test_peer peer(wg::static_identity(node_key).static_public());
  tailnet->add_peer("5", peer.static_public(), [](wg_peer& p) {
    p.tailnet = true;
    p.allowed.store(new allowed_prefixes{{*ip_prefix::parse("100.64.0.5/32")}});
  });
  auto view = std::make_unique<tailnet_view>();
  view->has_v4 = true;
  inet_pton(AF_INET, "100.64.0.1", &view->v4_be);
  filter_match udp53;
  udp53.ip_proto = {17};
  udp53.srcs = {*ip_prefix::parse("100.64.0.5/32")};
  udp53.dsts = {{*ip_prefix::parse("100.64.0.1/32"), {53, 53}}};
  view->filter = {udp53};
  view->routes.add(*ip_prefix::parse("100.64.0.5/32"), tailnet->dataplane_peer("5"));
  view->routes.finish();
  d.rig.dp->publish_tailnet_view(std::move(view));
  d.dns->answer_tailnet_through([&] { return tailnet.get(); });
  const auto devices_handler = d.rig.on_control_packet;
  d.rig.on_control_packet = [&](rte_mbuf* m) {
    if ((m->ol_flags & d.rig.dp->inner_up_flag()) == 0) {
      const classify_result r =
          classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, d.rig.dp->ports()[0].identity);
      if (r.cls == packet_class::wg_handshake && r.to == listener::tailnet) return tailnet->handle_packet(m, r, false);
    }
    devices_handler(m);
  };
  d.rig.on_event = [&](const wg_event& ev) {
    d.devices->handle_event(ev);
    tailnet->handle_event(ev);
  };

  // The peer's handshake (it initiates), then its questions.
  const auto init = peer.initiation(monotonic_ns());
  d.rig.receive(d.rig.udp_frame(d.rig.peer_ep, reinterpret_cast<const std::uint8_t*>(&init), sizeof init));
  d.rig.pump();
  const auto out = d.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  wg::message_handshake_response resp{};
  std::memcpy(&resp, &out[0].bytes[out[0].message_offset], sizeof resp);
  const auto keys = peer.consume(resp);
  ASSERT_TRUE(keys);
  test_session session{*keys, 0};
  const auto ask = [&](std::uint16_t id, const std::string& name) -> std::optional<bytes> {
    const bytes query = dns_query(id, name, 1);
    bytes udp(8);
    splice::test::put16(&udp[0], 40000);
    splice::test::put16(&udp[2], 53);
    splice::test::put16(&udp[4], static_cast<std::uint16_t>(8 + query.size()));
    udp.insert(udp.end(), query.begin(), query.end());
    rte_mbuf* m = d.rig.alloc();
    test_support::seal_packet(m, splice::test::ip_packet(false, 17, "100.64.0.5", "100.64.0.1", udp),
                              session.keys.send.data(), session.next_counter++, session.keys.remote_index,
                              d.rig.peer_ep);
    d.rig.receive(m);
    d.rig.pump();
    const auto sent = d.rig.sent();
    if (sent.size() != 1) return std::nullopt;
    EXPECT_EQ(sent[0].receiver, session.keys.local_index) << "sealed for the peer that asked";
    auto plain = sent[0].open(session.keys.receive.data());
    if (!plain) return std::nullopt;
    bytes& p = *plain;
    EXPECT_EQ(bytes(p.begin() + 12, p.begin() + 16), bytes({100, 64, 0, 1})) << "from lopower's tailnet address";
    EXPECT_EQ(bytes(p.begin() + 16, p.begin() + 20), bytes({100, 64, 0, 5}));
    EXPECT_EQ(be16(&p[20]), 53);
    EXPECT_EQ(be16(&p[22]), 40000);
    p.resize(be16(&p[2]));
    EXPECT_TRUE(splice::test::l4_checksum_ok(p));
    return bytes(p.begin() + 28, p.end());
  };
  const auto answer = ask(0x2001, "esp32.lopower.internal");
  ASSERT_TRUE(answer) << "answered through the peer's session";
  EXPECT_EQ(be16(&(*answer)[0]), 0x2001);
  EXPECT_EQ(first_a_record(*answer), bytes(d.enrolled.ipv4->bytes.begin(), d.enrolled.ipv4->bytes.begin() + 4));
  const auto refused = ask(0x2002, "example.org");
  ASSERT_TRUE(refused);
  EXPECT_EQ((*refused)[3] & 0x0f, 5) << "REFUSED";
  pollfd pfd{d.upstream, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "nothing went upstream for a tailnet peer";
  EXPECT_EQ(d.dns->status_json()["tailnet_queries"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(d.outcome("not_for_tailnet"), 1u);
  d.dns->answer_tailnet_through({});
  tailnet.reset();  // before the dataplane
  d.rig.dp->publish_tailnet_view(nullptr);
}

}  // namespace
}  // namespace lopower
