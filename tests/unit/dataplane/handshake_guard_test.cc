// The workers' handshake check (dataplane/handshake_guard.h) on frames the
// classifier took for handshakes: junk MAC1 dropped, real initiations
// through, and under load only those with the cookie lopower handed their
// source counted as proven. Messages are made by the real engine.

#include "dataplane/handshake_guard.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "control/wireguard/engine/cookie.h"
#include "control/wireguard/engine/noise_handshake.h"
#include "control/wireguard/engine/tai64n.h"
#include "tests/unit/frame_builder.h"

namespace lopower {
namespace {

using namespace lopower::test;
constexpr std::uint64_t now = 1'000'000'000'000;

struct handshake_guard_fixture : ::testing::Test {
  wg::static_identity device{generate_private_key()};
  wg::static_identity lopower{generate_private_key()};
  wg::peer_handshake device_for_lopower{device, lopower.static_public()};
  wg::cookie_maker maker{lopower.static_public()};
  wg::cookie_checker checker;
  port_identity port;
  handshake_guard guard;
  std::uint32_t next_index = 1;
  std::int64_t clock_ns = 1'700'000'000LL * 1'000'000'000LL;

  void SetUp() override {
    port.add_address(*ip_address::parse("198.18.0.1"));
    port.device_port_be = htons(51820);
    port.tailnet_port_be = htons(41641);
    guard.devices.known = true;
    guard.devices.mac1_key = lopower.mac1_key();
    guard.devices.cookie_secret = checker.secret(now);
  }
  wg::message_handshake_initiation initiation() {
    wg::message_handshake_initiation m;
    clock_ns += 1'000'000'000;
    EXPECT_EQ(wg::create_initiation(m, device_for_lopower, device, next_index++, wg::tai64n_now(clock_ns),
                                    wg::system_random()),
              wg::handshake_error::none);
    EXPECT_TRUE(maker.add_macs(m, now));
    return m;
  }
  // The message in a frame from 198.18.0.2:40000 (frame_builder's source) to the device port.
  static bytes frame_of(const void* message, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(message);
    return udp4("198.18.0.1", 51820, bytes(p, p + size));
  }
  handshake_verdict judge(const bytes& f, bool under_load, const handshake_guard* g) {
    const classify_result r = classify_frame(f.data(), static_cast<std::uint32_t>(f.size()), port);
    EXPECT_EQ(r.cls, packet_class::wg_handshake);
    return judge_handshake(f.data(), r, g, under_load);
  }
  handshake_verdict judge(const bytes& f, bool under_load) { return judge(f, under_load, &guard); }
};

TEST_F(handshake_guard_fixture, JunkNeverLeavesTheWorker) {
  bytes junk = wg_message(1, 148);
  for (std::size_t i = 4; i < junk.size(); ++i) junk[i] = static_cast<std::uint8_t>(i * 7);
  EXPECT_EQ(judge(udp4("198.18.0.1", 51820, junk), false), handshake_verdict::junk);
  EXPECT_EQ(judge(udp4("198.18.0.1", 51820, junk), true), handshake_verdict::junk);
  // A real initiation for some other key is junk to lopower as well.
  auto m = initiation();
  m.macs.mac1[3] ^= 0x40;
  EXPECT_EQ(judge(frame_of(&m, sizeof m), false), handshake_verdict::junk);
}

TEST_F(handshake_guard_fixture, RealInitiationsGoUpAndUnderLoadNeedTheirCookie) {
  const auto first = initiation();
  const bytes f = frame_of(&first, sizeof first);
  EXPECT_EQ(judge(f, false), handshake_verdict::proven);
  EXPECT_EQ(judge(f, true), handshake_verdict::unproven) << "no cookie yet";

  // lopower's cookie reply (for 198.18.0.2:40000), then the device tries again.
  wg::message_handshake_cookie reply;
  ASSERT_TRUE(checker.create_reply(reply, lopower, reinterpret_cast<const std::uint8_t*>(&first), sizeof first,
                                   wg::packet_source::v4(std::array<std::uint8_t, 4>{198, 18, 0, 2}.data(), 40000), now));
  ASSERT_TRUE(maker.consume_reply(reply, now));
  const auto second = initiation();
  EXPECT_EQ(judge(frame_of(&second, sizeof second), true), handshake_verdict::proven);

  // The cookie is the secret's: after the secret changes, it proves nothing.
  handshake_guard renewed = guard;
  renewed.devices.cookie_secret = key32{};
  EXPECT_EQ(judge(frame_of(&second, sizeof second), true, &renewed), handshake_verdict::unproven);
  // And it is bound to the source: a frame from elsewhere is not proven.
  bytes moved = frame_of(&second, sizeof second);
  moved[14 + 12 + 3] ^= 1;  // IPv4 source's last byte
  EXPECT_EQ(judge(moved, true), handshake_verdict::unproven);
}

TEST_F(handshake_guard_fixture, WithoutKeysTheControlThreadDecides) {
  const auto m = initiation();
  EXPECT_EQ(judge(frame_of(&m, sizeof m), false, nullptr), handshake_verdict::unproven);
  handshake_guard none;
  EXPECT_EQ(judge(frame_of(&m, sizeof m), false, &none), handshake_verdict::unproven);
  // Cookie replies have no MACs: the control thread checks them against the peer they answer.
  EXPECT_EQ(judge(udp4("198.18.0.1", 51820, wg_message(3, 64)), false), handshake_verdict::unproven);
}

// The worker's own look at its rings: past the threshold it is under load at
// once, for `hold` cycles after the backlog was last seen past it; the
// control thread's flag counts as well; threshold 0 leaves only the flag.
TEST(handshake_load, PastTheThresholdHoldsThenLetsGo) {
  handshake_load l{.threshold = 8, .hold = 1000};
  EXPECT_FALSE(l.under_load(100, 8, false)) << "at the threshold: not yet";
  EXPECT_TRUE(l.under_load(100, 9, false));
  EXPECT_TRUE(l.under_load(1099, 0, false)) << "held after the backlog drained";
  EXPECT_FALSE(l.under_load(1100, 0, false));
  EXPECT_TRUE(l.under_load(1100, 0, true)) << "the control thread says so";
  handshake_load off{};
  EXPECT_FALSE(off.under_load(100, 100000, false));
  EXPECT_TRUE(off.under_load(100, 0, true));
}

}  // namespace
}  // namespace lopower
