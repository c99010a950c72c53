// The WireGuard interface (control/wireguard/interface.*) over a real
// dataplane on a net_ring port, on a fake clock (tests/support/fake_clock.h,
// injected with set_clock): a test device runs the handshake engine from
// its side (tests/support/wg_test_peer.h), its frames go in on the port, and
// what lopower sends is read off the port and opened with the device's keys.
// Timers are driven by advancing the clock and calling tick(): nothing sleeps.

#include "control/wireguard/interface.h"

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <sodium.h>

#include <arpa/inet.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "control/ctl/forward_commands.h"
#include "dataplane/classifier.h"
#include "tests/support/dataplane_rig.h"
#include "tests/support/eal.h"
#include "tests/support/fake_clock.h"
#include "tests/support/wg_test_peer.h"
#include "tests/unit/splice/packets.h"

namespace lopower {
namespace {

using namespace std::chrono_literals;
using splice::test::bytes;
using test_support::sent_frame;
using test_support::test_session;

const char* const device_name = "esp32";

bool eal_up() {
  static const bool ok = test_support::start_eal("wg_interface_tests", 512) && sodium_init() >= 0;
  return ok;
}

template <class M>
M message_of(const sent_frame& f) {
  M m{};
  EXPECT_EQ(f.bytes.size() - f.message_offset, sizeof m);
  if (f.bytes.size() - f.message_offset == sizeof m) std::memcpy(&m, &f.bytes[f.message_offset], sizeof m);
  return m;
}

// An interface for devices with one device ("esp32", 10.90.0.2) on a
// dataplane of its own, its clock a fake one.
struct interface_rig {
  test_support::fake_clock clock;
  test_support::dataplane_rig rig;
  private_key server_key = generate_private_key();
  wireguard_config cfg;  // the protocol's times: rekey 120 s, reject 180 s, keepalive 10 s
  std::unique_ptr<wireguard_interface> wg;
  test_support::wg_test_peer device;

  explicit interface_rig(const std::string& name)
      : rig(name),
        wg(std::make_unique<wireguard_interface>(*rig.dp, cfg, server_key, "device")),
        device(wg::static_identity(server_key).static_public()) {
    wg->set_clock(clock.clock());
    wg->add_peer(device_name, device.static_public(), [](wg_peer& p) {
      p.has_v4 = true;
      inet_pton(AF_INET, "10.90.0.2", &p.v4_be);
    });
    rig.on_control_packet = [this](rte_mbuf* m) {
      const classify_result r = classify_frame(rte_pktmbuf_mtod(m, const std::uint8_t*), m->data_len, rig.dp->ports()[0].identity);
      if (r.cls == packet_class::wg_handshake) return wg->handle_packet(m, r, false);
      rte_pktmbuf_free(m);
    };
    rig.on_event = [this](const wg_event& ev) { wg->handle_event(ev); };
    rig.on_staged = [this](const staged_packet& sp) {
      if (!wg->stage(sp)) rte_pktmbuf_free(sp.mbuf);
    };
  }
  ~interface_rig() { wg.reset(); }  // before the dataplane

  wg_peer& dp_peer() { return *wg->dataplane_peer(device_name); }

  // The device initiates; lopower's response gives it the session's keys.
  test_session device_handshake() {
    const auto init = device.initiation(clock.ns());
    rig.receive(rig.udp_frame(rig.device_ep, reinterpret_cast<const std::uint8_t*>(&init), sizeof init));
    rig.pump();
    const auto out = rig.sent();
    EXPECT_EQ(out.size(), 1u);
    if (out.size() != 1 || out[0].type != 2) {
      ADD_FAILURE() << "no handshake response";
      return {};
    }
    auto keys = device.consume(message_of<wg::message_handshake_response>(out[0]));
    EXPECT_TRUE(keys.has_value());
    return keys ? test_session{*keys, 0} : test_session{};
  }

  // lopower's initiation in `out` (exactly one frame, an initiation): the
  // device answers it; the keys of the new session.
  test_session answer(const std::vector<sent_frame>& out) {
    if (out.size() != 1 || out[0].type != 1) {
      ADD_FAILURE() << "expected one initiation from lopower, got " << out.size() << " frame(s)";
      return {};
    }
    wg::message_handshake_response resp{};
    auto keys = device.respond(message_of<wg::message_handshake_initiation>(out[0]), clock.ns(), resp);
    EXPECT_TRUE(keys.has_value());
    rig.receive(rig.udp_frame(rig.device_ep, reinterpret_cast<const std::uint8_t*>(&resp), sizeof resp));
    rig.pump();
    return keys ? test_session{*keys, 0} : test_session{};
  }

  // The device pings lopower (10.90.0.1) through session `s`: what lopower sent back.
  std::vector<sent_frame> ping(test_session& s, std::uint16_t id) {
    const bytes packet = splice::test::ip_packet(false, 1, "10.90.0.2", "10.90.0.1", splice::test::icmp_echo(false, true, id, 32));
    rte_mbuf* m = rig.alloc();
    test_support::seal_packet(m, packet, s.keys.send.data(), s.next_counter++, s.keys.remote_index, rig.device_ep);
    rig.receive(m);
    rig.pump();
    return rig.sent();
  }

  // The echo reply in `f`, opened with session `s`: its ICMP identifier,
  // or -1 when it is not one sealed for `s`.
  static int echo_reply_id(const sent_frame& f, const test_session& s) {
    if (f.type != 4 || f.receiver != s.keys.local_index) return -1;
    const auto plain = f.open(s.keys.receive.data());
    if (!plain || plain->size() < 28 || (*plain)[9] != 1 || (*plain)[20] != 0) return -1;
    return splice::test::be16(&(*plain)[24]);
  }

  // A packet for the device, handed to the interface as a worker stages it.
  bool stage(const bytes& inner) {
    rte_mbuf* m = rig.alloc();
    std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(inner.size())), inner.data(), inner.size());
    m->port = rig.port_id();
    return wg->stage(staged_packet{m, dp_peer().id, 0});
  }

  void tick_after(std::chrono::nanoseconds d) {
    clock.advance(d);
    wg->tick();
    rig.pump();
  }

  std::uint64_t control_drops(drop_reason why) {
    return rig.dp->control_counters().drops[0][static_cast<unsigned>(why)].get();
  }
};

bytes packet_for_device(std::uint16_t marker) {
  return splice::test::ip_packet(false, 17, "100.64.0.5", "10.90.0.2", splice::test::udp_datagram(9000, marker, 40));
}

TEST(wireguard_interface, device_handshake_makes_a_session_that_carries_data_both_ways) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wihs");
  EXPECT_FALSE(f.wg->has_session(device_name));
  test_session k1 = f.device_handshake();
  EXPECT_TRUE(f.wg->has_session(device_name));
  EXPECT_EQ(f.wg->counters().initiations_received, 1u);
  EXPECT_EQ(f.wg->counters().responses_sent, 1u);
  EXPECT_EQ(f.wg->counters().handshakes_completed, 1u);
  EXPECT_EQ(f.wg->handshakes_with(device_name), 1u);
  const auto out = f.ping(k1, 41);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k1), 41);
  EXPECT_EQ(out[0].counter, 0u);
  EXPECT_EQ(f.dp_peer().rx_packets.load(), 1u);
  // The interface's own data (send_data) is sealed with the same session.
  const bytes inner = packet_for_device(7);
  ASSERT_TRUE(f.wg->send_data(device_name, inner));
  f.rig.pump();
  const auto mine = f.rig.sent();
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].receiver, k1.keys.local_index);
  EXPECT_EQ(mine[0].counter, 1u);
  const auto plain = mine[0].open(k1.keys.receive.data());
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(bytes(plain->begin(), plain->begin() + static_cast<long>(inner.size())), inner);
}

// A rekey makes a new keypair; the old one keeps decrypting (as `previous`)
// until the next rekey replaces it.
TEST(wireguard_interface, rekey_makes_a_new_keypair_and_the_old_one_decrypts_until_replaced) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wirk");
  test_session k1 = f.device_handshake();
  auto out = f.ping(k1, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k1), 1);

  // lopower rekeys: an initiation goes out, k1 stays in use meanwhile.
  f.wg->renew_session(device_name);
  f.rig.pump();
  const auto init2 = f.rig.sent();
  out = f.ping(k1, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k1), 2);
  test_session k2 = f.answer(init2);
  EXPECT_EQ(f.wg->counters().handshakes_completed, 2u);
  EXPECT_NE(k2.keys.local_index, k1.keys.local_index);
  // Our own handshake: k2 is current at once, announced with a keepalive.
  out = f.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].receiver, k2.keys.local_index);
  const auto keepalive = out[0].open(k2.keys.receive.data());
  ASSERT_TRUE(keepalive.has_value());
  EXPECT_TRUE(keepalive->empty());
  EXPECT_EQ(f.wg->counters().keepalives_sent, 1u);

  // k1 still decrypts; what goes back is sealed with k2.
  out = f.ping(k1, 3);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k2), 3);
  out = f.ping(k2, 4);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k2), 4);

  // The next rekey: k3 current, k2 previous, k1 gone.
  f.wg->renew_session(device_name);
  f.rig.pump();
  test_session k3 = f.answer(f.rig.sent());
  f.rig.sent();  // its keepalive
  const std::uint64_t unknown = f.rig.worker_drops(drop_reason::wg_unknown_receiver);
  out = f.ping(k1, 5);
  EXPECT_TRUE(out.empty()) << "k1 was replaced and must not decrypt";
  EXPECT_EQ(f.rig.worker_drops(drop_reason::wg_unknown_receiver), unknown + 1);
  out = f.ping(k2, 6);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k3), 6);
}

// With no session, packets for the device wait; when the handshake
// completes they go out first, in order, sealed with the new keypair.
TEST(wireguard_interface, staged_packets_go_out_in_order_sealed_with_the_new_keypair) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wist");
  test_session k1 = f.device_handshake();
  // The device restarted (as far as we know): our sessions go, a new handshake starts.
  f.wg->peer_restarted(device_name);
  EXPECT_FALSE(f.wg->has_session(device_name));
  f.rig.pump();
  const auto init = f.rig.sent();
  for (std::uint16_t i = 1; i <= 3; ++i) EXPECT_TRUE(f.stage(packet_for_device(i)));
  f.rig.pump();
  EXPECT_TRUE(f.rig.sent().empty()) << "nothing can be sent before the handshake completes";
  EXPECT_EQ(f.wg->counters().packets_staged, 3u);
  test_session k2 = f.answer(init);
  const auto out = f.rig.sent();
  ASSERT_EQ(out.size(), 3u) << "the staged packets and no keepalive";
  for (std::uint16_t i = 1; i <= 3; ++i) {
    const sent_frame& s = out[i - 1u];
    EXPECT_EQ(s.receiver, k2.keys.local_index);
    EXPECT_EQ(s.counter, i - 1u) << "staged packets precede anything else on the new keypair";
    const auto plain = s.open(k2.keys.receive.data());
    ASSERT_TRUE(plain.has_value()) << "packet " << i << " is not sealed with the new keypair";
    const bytes expected = packet_for_device(i);
    EXPECT_EQ(bytes(plain->begin(), plain->begin() + static_cast<long>(expected.size())), expected);
    EXPECT_FALSE(s.open(k1.keys.receive.data()).has_value());
  }
  EXPECT_EQ(f.wg->counters().staged_sent, 3u);
  EXPECT_EQ(f.wg->counters().staged_dropped, 0u);
  // The old session is gone for good.
  EXPECT_TRUE(f.ping(k1, 9).empty());
}

// A handshake nobody answers is sent again after REKEY_TIMEOUT (5 s, plus
// up to 333 ms of jitter) and given up after REKEY_ATTEMPT_TIME (90 s),
// taking the packets staged for it along.
TEST(wireguard_interface_timers, handshake_is_retried_then_given_up_with_its_staged_packets) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wirt");
  f.wg->set_peer_endpoint(device_name, f.rig.device_ep);
  EXPECT_TRUE(f.stage(packet_for_device(1)));  // starts the handshake
  f.rig.pump();
  auto out = f.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, 1);
  const auto first = message_of<wg::message_handshake_initiation>(out[0]);
  EXPECT_EQ(f.wg->counters().initiations_sent, 1u);

  f.tick_after(4900ms);
  EXPECT_TRUE(f.rig.sent().empty()) << "retried before REKEY_TIMEOUT";
  f.tick_after(500ms);  // 5.4 s: past 5 s and any jitter
  out = f.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, 1);
  EXPECT_NE(message_of<wg::message_handshake_initiation>(out[0]).sender_index.get(), first.sender_index.get())
      << "each attempt announces an index of its own";
  EXPECT_EQ(f.wg->counters().handshake_retries, 1u);

  // Every 5.4 s another attempt, until 90 s have passed since the first.
  for (int step = 2; step <= 16; ++step) {  // up to 86.4 s
    f.tick_after(5400ms);
    EXPECT_EQ(f.rig.sent().size(), 1u) << "at " << step * 5.4 << " s";
  }
  EXPECT_EQ(f.wg->counters().handshake_retries, 16u);
  EXPECT_EQ(f.wg->counters().handshakes_given_up, 0u);
  EXPECT_EQ(f.wg->counters().staged_dropped, 0u) << "staged packets wait while a handshake is in flight";
  f.tick_after(5400ms);  // 91.8 s
  EXPECT_TRUE(f.rig.sent().empty());
  EXPECT_EQ(f.wg->counters().handshakes_given_up, 1u);
  EXPECT_EQ(f.wg->counters().handshake_retries, 16u);
  EXPECT_EQ(f.wg->counters().staged_dropped, 1u);
  EXPECT_EQ(f.control_drops(drop_reason::wg_staged_gave_up), 1u);
  // Given up: quiet until there is traffic again.
  for (int i = 0; i < 10; ++i) f.tick_after(5s);
  EXPECT_TRUE(f.rig.sent().empty());
  EXPECT_EQ(f.wg->counters().initiations_sent, 17u);
}

// Keypairs expire at REJECT_AFTER_TIME (180 s); with no new session for
// 3 x REJECT_AFTER_TIME every key is forgotten, once.
TEST(wireguard_interface_timers, keypair_expires_and_keys_are_zeroed) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wiex");
  test_session k1 = f.device_handshake();
  f.tick_after(179s);
  EXPECT_TRUE(f.wg->has_session(device_name));
  EXPECT_EQ(f.wg->counters().keypairs_expired, 0u);
  f.tick_after(1s);
  EXPECT_FALSE(f.wg->has_session(device_name));
  EXPECT_EQ(f.wg->counters().keypairs_expired, 1u);
  EXPECT_TRUE(f.ping(k1, 1).empty()) << "an expired keypair is out of the session table";
  EXPECT_TRUE(f.rig.sent().empty()) << "nobody needed a session: no handshake";
  f.tick_after(539s - 180s);
  EXPECT_EQ(f.wg->counters().sessions_zeroed, 0u);
  f.tick_after(1s);
  EXPECT_EQ(f.wg->counters().sessions_zeroed, 1u);
  f.tick_after(600s);
  EXPECT_EQ(f.wg->counters().sessions_zeroed, 1u);
  // The device can come back with a new handshake (the workers take a
  // keypair made this late only if the fake clock is still behind theirs).
  if (f.clock.lead() < 1200s) GTEST_SKIP() << "the TSC is too young for the rest (uptime under 40 minutes)";
  f.clock.advance(1s);
  test_session k2 = f.device_handshake();
  EXPECT_TRUE(f.wg->has_session(device_name));
  const auto out = f.ping(k2, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(interface_rig::echo_reply_id(out[0], k2), 2);
}

// The initiator of the current keypair renews it when it sends on it past
// REKEY_AFTER_TIME (120 s); data sent before that does not.
TEST(wireguard_interface_timers, initiator_rekeys_when_sending_past_rekey_after_time) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wira");
  f.wg->set_peer_endpoint(device_name, f.rig.device_ep);
  f.wg->ensure_session(device_name);
  f.rig.pump();
  test_session k = f.answer(f.rig.sent());
  f.rig.sent();  // the keepalive announcing it
  ASSERT_TRUE(f.wg->has_session(device_name));
  EXPECT_EQ(f.wg->counters().rekeys_started, 0u);
  f.clock.advance(119s);
  f.dp_peer().last_tx_tsc.store(f.clock.tsc());  // data sent now, as a worker stamps it
  f.dp_peer().last_rx_tsc.store(f.clock.tsc());
  f.wg->tick();
  f.rig.pump();
  EXPECT_TRUE(f.rig.sent().empty());
  EXPECT_EQ(f.wg->counters().rekeys_started, 0u);
  f.clock.advance(1s);
  f.dp_peer().last_tx_tsc.store(f.clock.tsc());
  f.dp_peer().last_rx_tsc.store(f.clock.tsc());
  f.wg->tick();
  f.rig.pump();
  EXPECT_EQ(f.wg->counters().rekeys_started, 1u);
  test_session k2 = f.answer(f.rig.sent());
  EXPECT_NE(k2.keys.local_index, k.keys.local_index);
  EXPECT_EQ(f.wg->counters().handshakes_completed, 2u);
}

// Data received and nothing sent back for KEEPALIVE_TIMEOUT (10 s): a
// keepalive. The worker stamps what it received (on the real TSC);
// restamp() puts the stamps on the fake clock.
TEST(wireguard_interface_timers, passive_keepalive_after_keepalive_timeout) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wika");
  test_session k1 = f.device_handshake();
  // A datagram nobody answers (lopower serves nothing on UDP port 9).
  const bytes packet = splice::test::ip_packet(false, 17, "10.90.0.2", "10.90.0.1", splice::test::udp_datagram(5555, 9, 16));
  rte_mbuf* m = f.rig.alloc();
  test_support::seal_packet(m, packet, k1.keys.send.data(), k1.next_counter++, k1.keys.remote_index, f.rig.device_ep);
  f.rig.receive(m);
  f.rig.pump();
  EXPECT_TRUE(f.rig.sent().empty());
  ASSERT_NE(f.dp_peer().last_data_rx_tsc.load(), 0u) << "the worker stamps data it received";
  EXPECT_EQ(f.dp_peer().last_tx_tsc.load(), 0u);
  f.clock.restamp(f.dp_peer());
  f.tick_after(9900ms);
  EXPECT_TRUE(f.rig.sent().empty());
  EXPECT_EQ(f.wg->counters().keepalives_sent, 0u);
  f.tick_after(100ms);
  EXPECT_EQ(f.wg->counters().keepalives_sent, 1u);
  const auto out = f.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].receiver, k1.keys.local_index);
  const auto plain = out[0].open(k1.keys.receive.data());
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->empty()) << "a keepalive carries nothing";
  f.tick_after(10s);
  EXPECT_EQ(f.wg->counters().keepalives_sent, 1u) << "once per packet received";
}

// Data sent and nothing received for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
// (15 s): the peer may have lost the session, a new handshake starts.
TEST(wireguard_interface_timers, unanswered_data_starts_a_handshake_after_15_seconds) {
  ASSERT_TRUE(eal_up());
  interface_rig f("wiun");
  f.device_handshake();
  f.clock.advance(1s);
  f.dp_peer().last_tx_tsc.store(f.clock.tsc());  // sent; the device never answers
  f.wg->tick();
  f.tick_after(14s);
  EXPECT_TRUE(f.rig.sent().empty());
  EXPECT_EQ(f.wg->counters().unanswered_handshakes, 0u);
  f.tick_after(1s);
  EXPECT_EQ(f.wg->counters().unanswered_handshakes, 1u);
  const auto out = f.rig.sent();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, 1);
  EXPECT_TRUE(f.wg->has_session(device_name)) << "the session stays until the new one is made";
}

}  // namespace
}  // namespace lopower

// ---- port forwards (control/ctl/forward_commands) ------------------------

namespace lopower {
namespace {

// Forwards are saved (mode 0600) and read back as they were by the next
// lopowerd; an unknown device, a port forwarded twice and a forward that
// does not exist are refused, saying why.
TEST(forward_service, persists_forwards_and_refuses_what_cannot_be) {
  ASSERT_TRUE(eal_up());
  char dir_template[] = "/tmp/lopower-forwards-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  {
    enrollment::registry_config rc;
    rc.state_dir = dir;
    auto registry = enrollment::device_registry::open(rc);
    ASSERT_TRUE(registry) << registry.message();
    ASSERT_TRUE(registry->add("cam", {}));
    test_support::dataplane_rig rig("fwdsvc");
    const port_forward ssh{"tcp", 2222, "cam", 22};
    const port_forward rtsp{"udp", 5554, "cam", 554};
    {
      forward_service forwards(dir, *registry, *rig.dp);
      EXPECT_TRUE(forwards.list().empty());
      forwards.add(ssh);
      forwards.add(rtsp);
      EXPECT_THROW(forwards.add({"tcp", 2222, "cam", 23}), ctl_command_error);
      EXPECT_THROW(forwards.add({"tcp", 2223, "nosuch", 22}), ctl_command_error);
      EXPECT_THROW(forwards.remove("udp", 2222), ctl_command_error);
    }
    struct stat st{};
    ASSERT_EQ(stat((dir + "/forwards.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    forward_service again(dir, *registry, *rig.dp);
    EXPECT_EQ(again.list(), (std::vector<port_forward>{ssh, rtsp})) << "read back after a restart";
    EXPECT_EQ(again.remove("tcp", 2222), ssh);
    EXPECT_EQ(forward_service(dir, *registry, *rig.dp).list(), std::vector<port_forward>{rtsp});
  }
  std::filesystem::remove_all(dir);
}

// A [[forward]] table is listed, never saved, and cannot be removed by ctl;
// it wins over a saved forward of the same port.
TEST(forward_service, configured_forwards_are_fixed) {
  ASSERT_TRUE(eal_up());
  char dir_template[] = "/tmp/lopower-forwards-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  {
    enrollment::registry_config rc;
    rc.state_dir = dir;
    auto registry = enrollment::device_registry::open(rc);
    ASSERT_TRUE(registry) << registry.message();
    test_support::dataplane_rig rig("fwdcfg");
    {
      forward_service saved(dir, *registry, *rig.dp);
      ASSERT_TRUE(registry->add("cam", {}));
      saved.add({"tcp", 80, "cam", 8080});
    }
    forward_config c;
    c.protocol = "tcp";
    c.port = 80;
    c.device = "door";  // not enrolled: listed, carried once it is
    c.device_port = 81;
    forward_service forwards(dir, *registry, *rig.dp, {c});
    EXPECT_EQ(forwards.list(), (std::vector<port_forward>{{"tcp", 80, "door", 81, true}}));
    EXPECT_THROW(forwards.remove("tcp", 80), ctl_command_error);
    forwards.add({"udp", 53, "cam", 53});
    EXPECT_EQ(forward_service(dir, *registry, *rig.dp).list(), (std::vector<port_forward>{{"udp", 53, "cam", 53}}))
        << "only what ctl added is saved";
  }
  std::filesystem::remove_all(dir);
}

TEST(forward_service, refuses_a_malformed_file) {
  EXPECT_FALSE(forwards_from_json("{}"));
  EXPECT_FALSE(forwards_from_json("{\"forwards\": [{\"protocol\": \"sctp\", \"port\": 1, \"device\": \"a\", \"device_port\": 1}]}"));
  EXPECT_FALSE(forwards_from_json("{\"forwards\": [{\"protocol\": \"tcp\", \"port\": 70000, \"device\": \"a\", \"device_port\": 1}]}"));
  auto ok = forwards_from_json(forwards_to_json({{"udp", 53, "dns", 5353}}));
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, (std::vector<port_forward>{{"udp", 53, "dns", 5353}}));
}

}  // namespace
}  // namespace lopower
