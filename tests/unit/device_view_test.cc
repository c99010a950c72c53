#include "tools/lopower-ctl/device_view.h"

#include <gtest/gtest.h>

#include "tools/lopower-ctl/flow_view.h"

namespace lopower {
namespace {

// The words of wg(8)'s `show` (wireguard-tools src/show.c: pretty_time, ago,
// bytes, every).
TEST(DeviceView, DurationsAsWgSaysThem) {
  EXPECT_EQ(wg_duration(0), "");
  EXPECT_EQ(wg_duration(1), "1 second");
  EXPECT_EQ(wg_duration(2), "2 seconds");
  EXPECT_EQ(wg_duration(60), "1 minute");
  EXPECT_EQ(wg_duration(63), "1 minute, 3 seconds");
  EXPECT_EQ(wg_duration(120), "2 minutes");
  EXPECT_EQ(wg_duration(3600), "1 hour");
  EXPECT_EQ(wg_duration(2 * 3600 + 65), "2 hours, 1 minute, 5 seconds");
  EXPECT_EQ(wg_duration(86400 + 1), "1 day, 1 second");
  EXPECT_EQ(wg_duration(2 * 86400 + 3600), "2 days, 1 hour");
  EXPECT_EQ(wg_duration(365ull * 86400), "1 year");
  EXPECT_EQ(wg_duration(2 * 365ull * 86400 + 86400 + 3600 + 60 + 1), "2 years, 1 day, 1 hour, 1 minute, 1 second");
}

TEST(DeviceView, HandshakeAgoAndKeepalive) {
  EXPECT_EQ(wg_ago(0), "Now");
  EXPECT_EQ(wg_ago(1), "1 second ago");
  EXPECT_EQ(wg_ago(63), "1 minute, 3 seconds ago");
  EXPECT_EQ(wg_ago(7265), "2 hours, 1 minute, 5 seconds ago");
  EXPECT_EQ(wg_keepalive(0), "off");
  EXPECT_EQ(wg_keepalive(1), "every 1 second");
  EXPECT_EQ(wg_keepalive(25), "every 25 seconds");
  EXPECT_EQ(wg_keepalive(60), "every 1 minute");
  EXPECT_EQ(wg_keepalive(65535), "every 18 hours, 12 minutes, 15 seconds");
}

TEST(DeviceView, BytesInWgUnits) {
  EXPECT_EQ(wg_bytes(0), "0 B");
  EXPECT_EQ(wg_bytes(1), "1 B");
  EXPECT_EQ(wg_bytes(1023), "1023 B");
  EXPECT_EQ(wg_bytes(1024), "1.00 KiB");
  EXPECT_EQ(wg_bytes(1239), "1.21 KiB");
  EXPECT_EQ(wg_bytes(1024 * 1024 - 1), "1024.00 KiB");  // as wg: the unit by the exact value, then rounded
  EXPECT_EQ(wg_bytes(1024 * 1024), "1.00 MiB");
  EXPECT_EQ(wg_bytes(3565158), "3.40 MiB");
  EXPECT_EQ(wg_bytes(5ull << 30), "5.00 GiB");
  EXPECT_EQ(wg_bytes(3ull << 40), "3.00 TiB");
  EXPECT_EQ(wg_bytes(2048ull << 40), "2048.00 TiB");  // nothing beyond TiB
  EXPECT_EQ(wg_bytes(UINT64_MAX), "16777216.00 TiB");
}

nlohmann::json sample_device() {
  return nlohmann::json::parse(R"({
    "name": "esp32", "public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "ipv4": "10.90.0.2",
    "ipv6": "fd7a:115c:a1e0:9909::2", "allowed_ips": ["10.90.0.2/32", "fd7a:115c:a1e0:9909::2/128"], "keepalive": 25,
    "wireguard": {"endpoint": "198.18.40.50:38231", "latest_handshake": 1700000000, "seconds_since_handshake": 63,
                  "rx_bytes": 1239, "tx_bytes": 3565158}
  })");
}

TEST(DeviceView, DeviceBlockReadsLikeWgShow) {
  EXPECT_EQ(render_device_block(sample_device(), 0),
            "device: esp32\n"
            "  public key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
            "  allowed ips: 10.90.0.2/32, fd7a:115c:a1e0:9909::2/128\n"
            "  endpoint: 198.18.40.50:38231\n"
            "  latest handshake: 1 minute, 3 seconds ago\n"
            "  transfer: 1.21 KiB received, 3.40 MiB sent\n"
            "  persistent keepalive: every 25 seconds\n");
}

TEST(DeviceView, NeverSeenDevice) {
  const auto d = nlohmann::json::parse(R"({
    "name": "new", "public_key": "k", "ipv4": null, "ipv6": "fd7a:115c:a1e0:9909::3", "keepalive": 0,
    "wireguard": {"endpoint": null, "latest_handshake": 0, "seconds_since_handshake": null, "rx_bytes": 0, "tx_bytes": 0}
  })");
  const std::string out = render_device_block(d, 1700000000);
  EXPECT_NE(out.find("  allowed ips: fd7a:115c:a1e0:9909::3/128\n"), std::string::npos) << out;  // from ipv6: no allowed_ips
  EXPECT_NE(out.find("  endpoint: (none)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  latest handshake: (none)\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  transfer: 0 B received, 0 B sent\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  persistent keepalive: off\n"), std::string::npos) << out;
}

// The effective egress, and whether it is the device's own or the global one.
TEST(DeviceView, EgressOwnOrGlobal) {
  auto d = sample_device();
  d["egress"] = "exit";
  d["own_egress"] = nullptr;
  EXPECT_NE(render_device_block(d, 0).find("  egress: exit (global default)\n"), std::string::npos);
  d["egress"] = "none";
  d["own_egress"] = "none";
  EXPECT_NE(render_device_block(d, 0).find("  egress: none\n"), std::string::npos);
}

TEST(DeviceView, HandshakeAgeFromUnixTimeWhenTheDaemonDoesNotSay) {
  auto d = sample_device();
  d["wireguard"].erase("seconds_since_handshake");
  EXPECT_NE(render_device_block(d, 1700000000 + 7265).find("latest handshake: 2 hours, 1 minute, 5 seconds ago"),
            std::string::npos);
  // A clock that went backwards: "Now" rather than a huge number.
  EXPECT_NE(render_device_block(d, 1700000000 - 5).find("latest handshake: Now"), std::string::npos);
}

TEST(DeviceView, ListHasTheInterfaceHeaderThenBlocks) {
  const auto interface = nlohmann::json::parse(
      R"({"public_key": "S/QUrZThWUf8fdFllltpf17Ze7Pe2E8hbjF6ohCbCFc=", "listen_port": 51820,
          "addresses": ["10.90.0.1", "fd7a:115c:a1e0:9909::1"], "devices": 2})");
  auto second = sample_device();
  second["name"] = "esp33";
  const std::string out = render_device_list(interface, nlohmann::json::array({sample_device(), second}), 0);
  EXPECT_EQ(out.rfind("interface: devices\n"
                      "  public key: S/QUrZThWUf8fdFllltpf17Ze7Pe2E8hbjF6ohCbCFc=\n"
                      "  listening port: 51820\n"
                      "  addresses: 10.90.0.1, fd7a:115c:a1e0:9909::1\n"
                      "  devices: 2\n"
                      "\ndevice: esp32\n",
                      0),
            0u)
      << out;
  EXPECT_NE(out.find("\n\ndevice: esp33\n"), std::string::npos) << out;
}

TEST(DeviceView, ToleratesMissingAndMistypedFields) {
  EXPECT_NO_THROW(render_device_list(nlohmann::json(), nlohmann::json(), 0));
  EXPECT_NO_THROW(render_device_list(nlohmann::json::array(), nlohmann::json::array({1, "x", nullptr}), 0));
  const std::string out = render_device_block(
      nlohmann::json::parse(R"({"name": 5, "wireguard": {"rx_bytes": -1, "tx_bytes": "x", "latest_handshake": -3}})"), 0);
  EXPECT_NE(out.find("transfer: 0 B received, 0 B sent"), std::string::npos) << out;
  EXPECT_NE(out.find("latest handshake: (none)"), std::string::npos) << out;
  EXPECT_NE(out.find("allowed ips: (none)"), std::string::npos) << out;
}

TEST(FlowView, OneLinePerFlowAndTheCount) {
  const auto reply = nlohmann::json::parse(R"({"flows": [
      {"device": "esp32", "protocol": "tcp", "device_side": "10.90.0.2:40000", "destination": "100.64.0.2:80",
       "tailnet_side": "100.64.0.1:20001", "state": "established", "age_seconds": 12, "bytes_out": 300, "bytes_in": 4000}],
      "count": 7, "capacity": 65536, "truncated": false})");
  const std::string out = render_flows(reply);
  EXPECT_NE(out.find("esp32"), std::string::npos);
  EXPECT_NE(out.find("10.90.0.2:40000 -> 100.64.0.2:80"), std::string::npos);
  EXPECT_NE(out.find("established"), std::string::npos);
  EXPECT_NE(out.find("1 listed, 7 flow(s) of 65536\n"), std::string::npos) << out;  // filtered: both counts
  EXPECT_NO_THROW(render_flows(nlohmann::json::array()));
}

}  // namespace
}  // namespace lopower
