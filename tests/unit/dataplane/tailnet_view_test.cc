// tailnet_view::route: the most specific of the peers' AllowedIPs takes a
// destination, whatever the prefix's length (not only whole bytes), and a
// prefix of one family never takes an address of the other.
#include "dataplane/tailnet_view.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

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
    // node.cc's order: longest first, so the first match is the most specific
    std::stable_sort(view.routes.begin(), view.routes.end(),
                     [](const tailnet_route& a, const tailnet_route& b) { return a.prefix.length > b.prefix.length; });
  }
  void add(const char* prefix, wg_peer* peer) { view.routes.push_back({*ip_prefix::parse(prefix), peer}); }

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
  const tailnet_view empty;
  const ip_address a = *ip_address::parse("100.64.7.9");
  EXPECT_EQ(empty.route(false, a.bytes.data()), nullptr);
}

}  // namespace
}  // namespace lopower
