#include "control/enrollment/wg_quick_config.h"

#include <gtest/gtest.h>

namespace lopower::enrollment {
namespace {

ip_address addr(const char* text) { return ip_address::parse(text).value(); }

template <class Key>
Key fixed_key(std::uint8_t seed) {
  Key k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + i);
  return k;
}

class WgQuickConfig : public ::testing::Test {
 protected:
  WgQuickConfig() {
    dev.name = "esp";
    dev.device_private_key = fixed_key<private_key>(1);
    dev.public_key = public_from_private(*dev.device_private_key);
    dev.ipv4 = addr("10.90.0.2");
    dev.ipv6 = addr("fd7a:115c:a1e0:9909::2");
    dev.keepalive = 25;
    server.ipv4 = addr("10.90.0.1");
    server.ipv6 = addr("fd7a:115c:a1e0:9909::1");
    options.endpoint = "gw.example.com:51820";
  }
  std::string render() {
    auto r = render_wg_quick_config(dev, server_key, server, options);
    EXPECT_TRUE(r.ok()) << r.message();
    return r.ok() ? *r : std::string();
  }
  std::string line(const std::string& text, const std::string& key) {
    const auto at = text.find("\n" + key + " = ");
    if (at == std::string::npos) return "<missing>";
    const auto start = at + key.size() + 4;
    return text.substr(start, text.find('\n', start) - start);
  }

  device dev;
  public_key server_key = fixed_key<public_key>(100);
  server_addresses server;
  wg_quick_options options;
};

TEST_F(WgQuickConfig, DualStack) {
  const std::string expected =
      "[Interface]\n"
      "PrivateKey = " + dev.device_private_key->to_base64() + "\n"
      "Address = 10.90.0.2/32, fd7a:115c:a1e0:9909::2/128\n"
      "DNS = 10.90.0.1, fd7a:115c:a1e0:9909::1\n"
      "MTU = 1420\n"
      "\n"
      "[Peer]\n"
      "PublicKey = " + server_key.to_base64() + "\n"
      "AllowedIPs = 10.90.0.1/32, fd7a:115c:a1e0:9909::1/128, 100.64.0.0/10, fd7a:115c:a1e0::/48\n"
      "Endpoint = gw.example.com:51820\n"
      "PersistentKeepalive = 25\n";
  EXPECT_EQ(render(), expected);
}

TEST_F(WgQuickConfig, KeyIsTheStandardBase64) {
  // 32 bytes 0x64..0x83, as `wg` would print them.
  EXPECT_EQ(server_key.to_base64(), "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=");
}

TEST_F(WgQuickConfig, Ipv4OffHasNoIpv4AnyWhere) {
  server.ipv4.reset();  // IPv4 off: even a device that still has an IPv4 address gets none
  options.route_all_ipv4 = true;
  const std::string text = render();
  EXPECT_EQ(line(text, "Address"), "fd7a:115c:a1e0:9909::2/128");
  EXPECT_EQ(line(text, "DNS"), "fd7a:115c:a1e0:9909::1");
  EXPECT_EQ(line(text, "AllowedIPs"), "fd7a:115c:a1e0:9909::1/128, fd7a:115c:a1e0::/48");
  EXPECT_EQ(text.find("10.90."), std::string::npos);
  EXPECT_EQ(text.find("100.64."), std::string::npos);
  EXPECT_EQ(text.find("0.0.0.0"), std::string::npos);
}

TEST_F(WgQuickConfig, Ipv6OnlyDevice) {
  dev.ipv4.reset();
  options.route_all_ipv4 = true;
  const std::string text = render();
  EXPECT_EQ(line(text, "Address"), "fd7a:115c:a1e0:9909::2/128");
  EXPECT_EQ(line(text, "AllowedIPs"), "fd7a:115c:a1e0:9909::1/128, fd7a:115c:a1e0::/48");
}

TEST_F(WgQuickConfig, Ipv4OnlyDeviceGetsOnlyIpv4) {
  dev.ipv6.reset();
  const std::string text = render();
  EXPECT_EQ(line(text, "Address"), "10.90.0.2/32");
  EXPECT_EQ(line(text, "DNS"), "10.90.0.1");
  EXPECT_EQ(line(text, "AllowedIPs"), "10.90.0.1/32, 100.64.0.0/10");
  EXPECT_EQ(text.find("fd7a"), std::string::npos);
}

TEST_F(WgQuickConfig, RouteAllIpv4) {
  options.route_all_ipv4 = true;
  EXPECT_EQ(line(render(), "AllowedIPs"),
            "10.90.0.1/32, fd7a:115c:a1e0:9909::1/128, 100.64.0.0/10, fd7a:115c:a1e0::/48, 0.0.0.0/0");
  dev.ipv6.reset();  // the ESP32 case
  EXPECT_EQ(line(render(), "AllowedIPs"), "10.90.0.1/32, 100.64.0.0/10, 0.0.0.0/0");
}

// A device whose egress reaches beyond the tailnet routes that family's
// default into the tunnel; with device_to_device allowed, the devices'
// prefixes of the families it has.
TEST_F(WgQuickConfig, EgressAndDeviceToDeviceRoutes) {
  options.default_route_v4 = true;
  options.default_route_v6 = true;
  EXPECT_EQ(line(render(), "AllowedIPs"),
            "10.90.0.1/32, fd7a:115c:a1e0:9909::1/128, 100.64.0.0/10, fd7a:115c:a1e0::/48, 0.0.0.0/0, ::/0");
  options.default_route_v6 = false;  // an uplink with IPv4 only
  options.device_prefixes = {*ip_prefix::parse("10.90.0.0/24"), *ip_prefix::parse("fd7a:115c:a1e0:9909::/64")};
  EXPECT_EQ(line(render(), "AllowedIPs"),
            "10.90.0.1/32, fd7a:115c:a1e0:9909::1/128, 100.64.0.0/10, fd7a:115c:a1e0::/48, 10.90.0.0/24, "
            "fd7a:115c:a1e0:9909::/64, 0.0.0.0/0");
  dev.ipv6.reset();
  EXPECT_EQ(line(render(), "AllowedIPs"), "10.90.0.1/32, 100.64.0.0/10, 10.90.0.0/24, 0.0.0.0/0");
}

TEST_F(WgQuickConfig, KeepaliveZeroIsLeftOut) {
  dev.keepalive = 0;
  const std::string text = render();
  EXPECT_EQ(text.find("PersistentKeepalive"), std::string::npos);
  const std::string last = "Endpoint = gw.example.com:51820\n";
  ASSERT_GE(text.size(), last.size());
  EXPECT_EQ(text.substr(text.size() - last.size()), last);
  dev.keepalive = 7;
  EXPECT_EQ(line(render(), "PersistentKeepalive"), "7");
}

TEST_F(WgQuickConfig, MtuFromTheOptions) {
  options.mtu = 1280;
  EXPECT_EQ(line(render(), "MTU"), "1280");
}

TEST_F(WgQuickConfig, WithoutThePrivateKeyAPlaceholderSaysSo) {
  dev.device_private_key.reset();
  const std::string text = render();
  EXPECT_EQ(line(text, "PrivateKey"), "<the device's private key>");
  const auto key_line = text.find("PrivateKey = ");
  const auto comment = text.rfind("# ", key_line);
  ASSERT_NE(comment, std::string::npos);
  EXPECT_NE(text.substr(comment, key_line - comment).find("on the device"), std::string::npos) << text;
  EXPECT_EQ(text.find(fixed_key<private_key>(1).to_base64()), std::string::npos);
}

TEST_F(WgQuickConfig, MissingEndpointNamesTheKey) {
  options.endpoint.clear();
  auto r = render_wg_quick_config(dev, server_key, server, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("devices.endpoint"), std::string::npos) << r.message();
  EXPECT_NE(r.message().find("not set"), std::string::npos) << r.message();
}

TEST_F(WgQuickConfig, InvalidEndpointsAreRefused) {
  for (const char* bad : {"gw.example.com", "gw.example.com:", ":51820", "gw.example.com:0", "gw.example.com:65536",
                          "gw.example.com:518200", "gw.example.com:51a", "fd00::1:51820", "[fd00::1]", "[fd00::1]51820",
                          "[10.0.0.1]:51820", "[fd00::zz]:51820", "gw_example.com:51820", "-gw.example.com:51820",
                          "gw..example.com:51820", "1.2.3.999:51820", "host name:51820", "gw.example.com:+5"}) {
    options.endpoint = bad;
    auto r = render_wg_quick_config(dev, server_key, server, options);
    ASSERT_FALSE(r.ok()) << "accepted " << bad;
    EXPECT_NE(r.message().find("devices.endpoint"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(bad), std::string::npos) << r.message();
  }
}

TEST_F(WgQuickConfig, GoodEndpoints) {
  for (const char* good : {"gw.example.com:51820", "gw:1", "198.18.0.1:65535", "[fd00::1]:51820",
                           "[2001:db8::7]:443", "gw.example.com.:51820", "a-b.c0:51820"}) {
    options.endpoint = good;
    EXPECT_EQ(line(render(), "Endpoint"), good);
  }
  const auto ep = parse_endpoint("[2001:db8::7]:443");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->host, "[2001:db8::7]");
  EXPECT_EQ(ep->port, 443);
}

TEST_F(WgQuickConfig, ADeviceWithNoServedAddressIsAnError) {
  dev.ipv6.reset();
  server.ipv4.reset();
  auto r = render_wg_quick_config(dev, server_key, server, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("esp"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace lopower::enrollment
