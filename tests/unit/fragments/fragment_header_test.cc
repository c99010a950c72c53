// Reading fragment headers: what is a fragment, where it lies, which
// fragments no sender makes, atomic fragments, and who may cut what up.
#include "dataplane/fragments/fragment_header.h"

#include <gtest/gtest.h>

#include "tests/unit/fragments/fragment_packets.h"

namespace lopower::fragments {
namespace {

using test::bytes;
using test::fragment;
using test::udp_packet;

fragment_kind kind_of(const bytes& p, fragment_view* out = nullptr) {
  fragment_view v;
  const fragment_kind k = inspect(p.data(), static_cast<std::uint16_t>(p.size()), v);
  if (out != nullptr) *out = v;
  return k;
}

TEST(FragmentHeader, WholePacketsAreNotFragments) {
  for (bool v6 : {false, true}) {
    const bytes p = udp_packet(v6, 100);
    EXPECT_EQ(kind_of(p), fragment_kind::whole) << v6;
    EXPECT_FALSE(is_fragment(p.data(), v6));
  }
  bytes df = splice::test::ip_packet(false, 17, "10.90.0.2", "100.64.0.5", splice::test::udp_datagram(1, 2, 10));
  ASSERT_EQ(df[6], 0x40);  // DF alone says nothing about fragments
  EXPECT_EQ(kind_of(df), fragment_kind::whole);
}

TEST(FragmentHeader, Ipv4FirstMiddleAndLast) {
  const bytes whole = udp_packet(false, 1392);
  fragment_view v;
  ASSERT_EQ(kind_of(fragment(whole, 0, 1256, true, 0xbeef), &v), fragment_kind::fragment);
  EXPECT_EQ(v.offset, 0);
  EXPECT_EQ(v.length, 1256);
  EXPECT_TRUE(v.more);
  EXPECT_EQ(v.header_length, 20);
  EXPECT_EQ(v.key.id, 0xbeefu);
  EXPECT_EQ(v.key.family, ip_family::v4);
  EXPECT_EQ(std::vector<std::uint8_t>(v.key.src, v.key.src + 4), (bytes{10, 90, 0, 2}));
  EXPECT_EQ(std::vector<std::uint8_t>(v.key.dst, v.key.dst + 4), (bytes{100, 64, 0, 5}));
  for (int i = 4; i < 16; ++i) EXPECT_EQ(v.key.src[i] | v.key.dst[i], 0) << "bytes past an IPv4 address stay zero";
  ASSERT_EQ(kind_of(fragment(whole, 1256, 144, false, 0xbeef), &v), fragment_kind::fragment);
  EXPECT_EQ(v.offset, 1256);
  EXPECT_EQ(v.length, 144);
  EXPECT_FALSE(v.more);
  EXPECT_TRUE(is_fragment(fragment(whole, 1256, 144, false).data(), false));
}

TEST(FragmentHeader, Ipv6FragmentHeaderRightAfterTheFixedHeader) {
  const bytes whole = udp_packet(true, 1392);
  fragment_view v;
  ASSERT_EQ(kind_of(fragment(whole, 1232, 168, false, 0x12345678), &v), fragment_kind::fragment);
  EXPECT_EQ(v.offset, 1232);
  EXPECT_EQ(v.length, 168);
  EXPECT_FALSE(v.more);
  EXPECT_EQ(v.header_length, 48);
  EXPECT_EQ(v.key.id, 0x12345678u);
  EXPECT_EQ(v.key.family, ip_family::v6);
  EXPECT_EQ(v.key.src[15], 2);
  EXPECT_EQ(v.key.dst[15], 5);
}

TEST(FragmentHeader, FragmentsNoSenderMakesAreMalformed) {
  for (bool v6 : {false, true}) {
    const bytes whole = udp_packet(v6, 200);
    EXPECT_EQ(kind_of(fragment(whole, 8, 0, true)), fragment_kind::malformed) << v6 << " empty";
    EXPECT_EQ(kind_of(fragment(whole, 0, 12, true)), fragment_kind::malformed) << v6 << " not a multiple of 8 before the last";
    EXPECT_EQ(kind_of(fragment(whole, 16, 13, false)), fragment_kind::fragment) << v6 << " the last may be any size";
  }
  // Reaching past what an IP length field can hold once put together.
  const bytes v4 = udp_packet(false, 200);
  bytes far = fragment(v4, 0, 96, false);
  test::set_ipv4_field(far, 6, static_cast<std::uint16_t>(65480 / 8));
  EXPECT_EQ(kind_of(far), fragment_kind::malformed);
  const bytes v6 = udp_packet(true, 200);
  bytes far6 = fragment(v6, 0, 96, false);
  test::put16(&far6.at(42), 65440);
  EXPECT_EQ(kind_of(far6), fragment_kind::malformed);
  test::put16(&far6.at(42), 65432);  // 65432 + 96 = 65528: fits
  EXPECT_EQ(kind_of(far6), fragment_kind::fragment);
  // A Fragment header that does not fit in the packet.
  bytes cut_short = fragment(v6, 0, 96, true);
  cut_short.resize(44);
  test::put16(&cut_short.at(4), 4);
  EXPECT_EQ(kind_of(cut_short), fragment_kind::malformed);
}

TEST(FragmentHeader, AtomicFragmentIsTheWholeDatagramOnceItsHeaderGoes) {
  const bytes whole = udp_packet(true, 300);
  bytes atomic = fragment(whole, 0, 300 + 8, false, 77);
  fragment_view v;
  ASSERT_EQ(kind_of(atomic, &v), fragment_kind::atomic);
  EXPECT_EQ(v.key.id, 77u);
  strip_atomic_fragment_header(atomic.data());
  const bytes stripped(atomic.begin() + 8, atomic.end());
  EXPECT_EQ(stripped, whole);
}

TEST(FragmentHeader, WhoMayBeCutUp) {
  const bytes no_df = udp_packet(false, 100);
  bytes df = no_df;
  df.at(6) = 0x40;
  EXPECT_TRUE(may_fragment(no_df.data(), false, false));
  EXPECT_FALSE(may_fragment(df.data(), false, false));
  EXPECT_FALSE(may_fragment(df.data(), false, true)) << "DF holds even on a reassembled packet";
  const bytes v6 = udp_packet(true, 100);
  EXPECT_FALSE(may_fragment(v6.data(), true, false)) << "IPv6 is never cut in transit";
  EXPECT_TRUE(may_fragment(v6.data(), true, true)) << "what came in pieces may go out in pieces";
}

}  // namespace
}  // namespace lopower::fragments
