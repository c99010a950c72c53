// tailnet_view::route: the most specific of the peers' AllowedIPs takes a
// destination, whatever the prefix's length (not only whole bytes), host
// and subnet routes alike (each length's prefixes found by binary search);
// a prefix of one family never takes an address of the other; a default
// route never; of two peers claiming one prefix the first added. And
// thousands of random routes of every length against a bit-by-bit longest
// match, as reference.
#include "dataplane/tailnet_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/wg_session.h"

namespace lopower {
namespace {

struct routes_rig {
  wg_peer wide, narrow, odd, v6;
  tailnet_view view;

  routes_rig() {
    add("100.64.0.0/10", &wide);
    add("100.64.7.0/24", &narrow);
    add("10.1.2.128/25", &odd);  // a prefix ending inside a byte
    add("fd7a:115c:a1e0::/48", &v6);
    view.routes.finish();
  }
  void add(const char* prefix, wg_peer* peer) { view.routes.add(*ip_prefix::parse(prefix), peer); }

  wg_peer* route(const std::string& address) const {
    const ip_address a = *ip_address::parse(address);
    return view.route(a.family == ip_family::v6, a.bytes.data());
  }
};

TEST(tailnet_view_route, takes_the_most_specific_prefix) {
  const routes_rig r;
  EXPECT_EQ(r.route("100.64.7.9"), &r.narrow);
  EXPECT_EQ(r.route("100.64.8.9"), &r.wide);
  EXPECT_EQ(r.route("100.127.255.255"), &r.wide);
  EXPECT_EQ(r.route("100.128.0.1"), nullptr);
}

TEST(tailnet_view_route, honours_prefixes_that_end_inside_a_byte) {
  const routes_rig r;
  EXPECT_EQ(r.route("10.1.2.128"), &r.odd);
  EXPECT_EQ(r.route("10.1.2.255"), &r.odd);
  EXPECT_EQ(r.route("10.1.2.127"), nullptr);
  EXPECT_EQ(r.route("10.1.3.128"), nullptr);
}

TEST(tailnet_view_route, keeps_the_families_apart) {
  const routes_rig r;
  EXPECT_EQ(r.route("fd7a:115c:a1e0:0:1::5"), &r.v6);
  EXPECT_EQ(r.route("fd7a:115c:a1e1::5"), nullptr);
  // An IPv6 address whose first bytes spell an IPv4 route's prefix.
  EXPECT_EQ(r.route("6440:709::1"), nullptr);
  EXPECT_EQ(r.route("100.64.7.9"), &r.narrow);
}

TEST(tailnet_view_route, finds_nothing_in_an_empty_view) {
  tailnet_view empty;
  const ip_address a = *ip_address::parse("100.64.7.9");
  const ip_address b = *ip_address::parse("fd7a:115c:a1e0::5");
  EXPECT_EQ(empty.route(false, a.bytes.data()), nullptr);
  EXPECT_EQ(empty.route(true, b.bytes.data()), nullptr);
  empty.routes.finish();
  EXPECT_EQ(empty.route(false, a.bytes.data()), nullptr);
  EXPECT_EQ(empty.route(true, b.bytes.data()), nullptr);
}

// A peer's own address (a host route) against a subnet route holding it,
// added in either order.
TEST(tailnet_view_route, a_host_route_beats_the_subnet_holding_it) {
  for (const bool host_first : {true, false}) {
    routes_rig r;
    wg_peer host4, host6, subnet4, subnet6;
    if (host_first) {
      r.add("100.64.7.9/32", &host4);
      r.add("fd7a:115c:a1e0::5/128", &host6);
    }
    r.add("100.64.7.0/25", &subnet4);
    r.add("fd7a:115c:a1e0::/64", &subnet6);
    if (!host_first) {
      r.add("100.64.7.9/32", &host4);
      r.add("fd7a:115c:a1e0::5/128", &host6);
    }
    r.view.routes.finish();
    EXPECT_EQ(r.route("100.64.7.9"), &host4);
    EXPECT_EQ(r.route("100.64.7.8"), &subnet4);
    EXPECT_EQ(r.route("100.64.7.200"), &r.narrow);  // past the /25: the rig's /24
    EXPECT_EQ(r.route("fd7a:115c:a1e0::5"), &host6);
    EXPECT_EQ(r.route("fd7a:115c:a1e0::4"), &subnet6);
    EXPECT_EQ(r.route("fd7a:115c:a1e0:1::5"), &r.v6);  // past the /64: the rig's /48
  }
}

// Host routes of one family are never taken by an address of the other
// whose first bytes are the same.
TEST(tailnet_view_route, a_host_route_keeps_to_its_family) {
  const ip_address v4 = *ip_address::parse("100.64.7.9");
  const ip_address v6_spelling = *ip_address::parse("6440:709::");  // v4's bytes, then zeros
  wg_peer four, six;
  tailnet_view only_v4, only_v6, both;
  only_v4.routes.add(*ip_prefix::parse("100.64.7.9/32"), &four);
  only_v6.routes.add(*ip_prefix::parse("6440:709::/128"), &six);
  both.routes.add(*ip_prefix::parse("100.64.7.9/32"), &four);
  both.routes.add(*ip_prefix::parse("6440:709::/128"), &six);
  for (tailnet_view* view : {&only_v4, &only_v6, &both}) view->routes.finish();
  EXPECT_EQ(only_v4.route(true, v6_spelling.bytes.data()), nullptr);
  EXPECT_EQ(only_v6.route(false, v4.bytes.data()), nullptr);
  EXPECT_EQ(both.route(true, v6_spelling.bytes.data()), &six);
  EXPECT_EQ(both.route(false, v4.bytes.data()), &four);
  const ip_address other_v6 = *ip_address::parse("6440:709::1");
  EXPECT_EQ(both.route(true, other_v6.bytes.data()), nullptr);
}

// A default route is the exit node's (egress decides), never a route's.
TEST(tailnet_view_route, never_takes_a_default_route) {
  tailnet_view view;
  wg_peer exit, host;
  view.routes.add(*ip_prefix::parse("0.0.0.0/0"), &exit);
  view.routes.add(*ip_prefix::parse("::/0"), &exit);
  view.routes.add(*ip_prefix::parse("100.64.0.5/32"), &host);
  view.routes.finish();
  EXPECT_EQ(view.routes.size(), 1u);
  for (const char* address : {"8.8.8.8", "100.64.0.6", "2001:db8::1"}) {
    const ip_address a = *ip_address::parse(address);
    EXPECT_EQ(view.route(a.family == ip_family::v6, a.bytes.data()), nullptr) << address;
  }
}

// Two peers claiming one prefix: the first added keeps it (node.cc adds in
// node ID order), also when the second comes in a later finish (a copied
// view, as the multi-worker benchmark makes).
TEST(tailnet_view_route, of_two_peers_claiming_a_prefix_the_first_added_wins) {
  routes_rig r;
  wg_peer first, second, later;
  for (const char* prefix : {"100.64.0.5/32", "fd7a:115c:a1e0::5/128", "10.9.0.0/16"}) {
    r.add(prefix, &first);
    r.add(prefix, &second);
  }
  r.view.routes.finish();
  EXPECT_EQ(r.route("100.64.0.5"), &first);
  EXPECT_EQ(r.route("fd7a:115c:a1e0::5"), &first);
  EXPECT_EQ(r.route("10.9.1.1"), &first);
  tailnet_view copy = r.view;
  for (const char* prefix : {"100.64.0.5/32", "fd7a:115c:a1e0::5/128", "10.9.0.0/16"})
    copy.routes.add(*ip_prefix::parse(prefix), &later);
  copy.routes.add(*ip_prefix::parse("100.64.0.6/32"), &later);
  copy.routes.finish();
  for (const char* address : {"100.64.0.5", "fd7a:115c:a1e0::5", "10.9.1.1"}) {
    const ip_address a = *ip_address::parse(address);
    EXPECT_EQ(copy.route(a.family == ip_family::v6, a.bytes.data()), &first) << address;
  }
  const ip_address added = *ip_address::parse("100.64.0.6");
  EXPECT_EQ(copy.route(false, added.bytes.data()), &later);
}

// --- random routes against the reference -----------------------------------

// The view's old lookup, kept as the reference: every route in the order
// added, the longest prefix holding the address, the first added of equal
// length; default routes never. Bits compared one by one.
struct reference_routes {
  std::vector<std::pair<ip_prefix, wg_peer*>> routes;

  static bool holds(const ip_prefix& p, const ip_address& a) {
    if (p.address.family != a.family) return false;
    for (unsigned bit = 0; bit < p.length; ++bit) {
      const unsigned byte = bit / 8, shift = 7 - bit % 8;
      if ((p.address.bytes[byte] >> shift & 1) != (a.bytes[byte] >> shift & 1)) return false;
    }
    return true;
  }
  wg_peer* route(const ip_address& a) const {
    const std::pair<ip_prefix, wg_peer*>* best = nullptr;
    for (const auto& r : routes)
      if (r.first.length != 0 && holds(r.first, a) && (best == nullptr || r.first.length > best->first.length)) best = &r;
    return best ? best->second : nullptr;
  }
};

// Addresses from a few dense ranges, so that routes overlap and collide.
struct random_addresses {
  std::mt19937_64 rng;

  explicit random_addresses(std::uint64_t seed) : rng(seed) {}
  unsigned below(unsigned n) { return static_cast<unsigned>(rng() % n); }
  ip_address any(bool ipv6) {
    ip_address a;
    a.family = ipv6 ? ip_family::v6 : ip_family::v4;
    const std::uint64_t r = rng();
    if (!ipv6) {
      const std::uint8_t base[4] = {100, 64, 0, 0};  // a dense /20, or anywhere
      std::copy(base, base + 4, a.bytes.begin());
      a.bytes[2] = static_cast<std::uint8_t>(r >> 8 & 0x0f);
      a.bytes[3] = static_cast<std::uint8_t>(r);
      if (below(8) == 0)
        for (unsigned i = 0; i < 4; ++i) a.bytes[i] = static_cast<std::uint8_t>(r >> (16 + 8 * i));
    } else {
      const std::uint8_t base[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
      std::copy(base, base + 16, a.bytes.begin());
      a.bytes[14] = static_cast<std::uint8_t>(r >> 8 & 0x0f);
      a.bytes[15] = static_cast<std::uint8_t>(r);
      if (below(8) == 0)
        for (unsigned i = 0; i < 16; ++i) a.bytes[i] = static_cast<std::uint8_t>(rng());
      else if (below(4) == 0)  // the IPv4 range's bytes spelled as IPv6
        a.bytes = {100, 64, a.bytes[14], a.bytes[15]};
    }
    return a;
  }
  // Mostly host routes, as tailnets have; the rest subnets, long ones, and
  // now and then one from /8 (shorter would hold every destination), or a
  // /0 (which must be left out).
  ip_prefix route(bool ipv6) {
    const unsigned width = ipv6 ? 128 : 32;
    const unsigned pick = below(10);
    unsigned length = width;
    if (pick >= 7) length = width - 1 - below(16);
    if (pick == 9) length = below(10) == 0 ? 0 : 8 + below(width - 8);
    return {any(ipv6), static_cast<std::uint8_t>(length)};
  }
};

TEST(tailnet_view_route, agrees_with_the_linear_scan_on_random_routes) {
  constexpr unsigned route_count = 5000, destination_count = 10000;
  random_addresses random(20261206);
  const auto peers = std::make_unique<wg_peer[]>(route_count);
  reference_routes reference;
  tailnet_view view;
  for (unsigned i = 0; i < route_count; ++i) {
    ip_prefix p = random.route(random.below(2) == 1);
    if (i > 0 && random.below(20) == 0) p = reference.routes[random.below(i)].first;  // claimed again
    reference.routes.emplace_back(p, &peers[i]);
    view.routes.add(p, &peers[i]);
    if (i == route_count / 2) view.routes.finish();  // in two batches, as a copied view
  }
  view.routes.finish();
  unsigned routed = 0;
  for (unsigned i = 0; i < destination_count; ++i) {
    ip_address dst = random.any(random.below(2) == 1);
    if (random.below(2) == 0) dst = reference.routes[random.below(route_count)].first.address;  // a route's own
    wg_peer* expected = reference.route(dst);
    routed += expected != nullptr;
    ASSERT_EQ(view.route(dst.family == ip_family::v6, dst.bytes.data()), expected) << dst.to_string();
  }
  EXPECT_GT(routed, destination_count / 3);  // the destinations did meet routes
  EXPECT_LT(routed, destination_count);  // and missed some
}

}  // namespace
}  // namespace lopower
