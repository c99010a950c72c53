#include "tools/loadgen/peers_file.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace lopower::loadgen {
namespace {

// Two real keys' text forms: any 32 bytes are a valid Curve25519 key here.
const std::string key_a = "YPoi6gW9sV6JzZVCMB4d1fXYA9c5MEBVtN/5dYqGxXE=";
const std::string key_b = "8FfU1Kq3jk/3BXFW/5bFyIGdQ0Pj+gJLVYZCyUBv2Uk=";

std::string good_file() {
  return "[gateway]\n"
         "public_key = \"" + key_a + "\"\n"
         "endpoint = \"198.18.40.70:51820\"\n"
         "inner_ip = \"10.91.0.1\"\n"
         "\n"
         "[[device]]\n"
         "private_key = \"" + key_b + "\"\n"
         "address = \"10.91.0.2\"\n"
         "\n"
         "[[device]]\n"
         "private_key = \"" + key_a + "\"\n"
         "address = \"10.91.0.3\"\n";
}

std::uint32_t be(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

// The message of the error parsing `text` throws; "" when it parses.
std::string refusal(const std::string& text) {
  try {
    parse_peers_file(text, "peers.toml");
  } catch (const peers_file_error& e) {
    return e.what();
  }
  return "";
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

TEST(LoadgenPeersFile, ReadsGatewayAndDevicesInOrder) {
  const static_peers p = parse_peers_file(good_file(), "peers.toml");
  EXPECT_EQ(p.gateway_key.to_base64(), key_a);
  EXPECT_EQ(p.gateway_endpoint_ip_be, be("198.18.40.70"));
  EXPECT_EQ(p.gateway_endpoint_port, 51820);
  EXPECT_EQ(p.gateway_inner_ip_be, be("10.91.0.1"));
  ASSERT_EQ(p.devices.size(), 2u);
  EXPECT_EQ(p.devices[0].key.to_base64(), key_b);
  EXPECT_EQ(p.devices[0].inner_ip_be, be("10.91.0.2"));
  EXPECT_EQ(p.devices[1].inner_ip_be, be("10.91.0.3"));
}

TEST(LoadgenPeersFile, RefusalsNameFileLineAndKey) {
  EXPECT_EQ(refusal(replaced(good_file(), "198.18.40.70:51820", "198.18.40.70")),
            "peers.toml:3: gateway.endpoint: expected A.B.C.D:PORT");
  EXPECT_EQ(refusal(replaced(good_file(), "198.18.40.70:51820", "198.18.40.70:0")),
            "peers.toml:3: gateway.endpoint: port must be 1..65535");
  EXPECT_EQ(refusal(replaced(good_file(), "198.18.40.70:51820", "gw:51820")),
            "peers.toml:3: gateway.endpoint: not an IPv4 address before the port");
  EXPECT_EQ(refusal(replaced(good_file(), "\"10.91.0.3\"", "\"10.91.0\"")),
            "peers.toml:12: device[1].address: not an IPv4 address");
  EXPECT_EQ(refusal(replaced(good_file(), "\"10.91.0.3\"", "3")), "peers.toml:12: device[1].address: expected a string");
  EXPECT_EQ(refusal(replaced(good_file(), key_b, "c2hvcnQ=")),
            "peers.toml:7: device[0].private_key: not a base64 WireGuard key (44 characters)");
  EXPECT_EQ(refusal(replaced(good_file(), "inner_ip = \"10.91.0.1\"\n", "")), "peers.toml:1: gateway.inner_ip: missing");
  EXPECT_EQ(refusal("[gateway]\npublic_key = \"" + key_a + "\"\nendpoint = \"1.2.3.4:5\"\ninner_ip = \"1.1.1.1\"\n"),
            "peers.toml:1: device: missing: at least one [[device]]");
  EXPECT_EQ(refusal("gateway = 1\n"), "peers.toml:1: gateway: expected a table [gateway]");
  EXPECT_EQ(refusal("[gateway\n").rfind("peers.toml:1: (syntax): ", 0), 0u);
}

TEST(LoadgenPeersFile, MissingFileIsRefusedByName) {
  try {
    load_peers_file("/nonexistent/peers.toml");
    FAIL() << "no error";
  } catch (const peers_file_error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/peers.toml: cannot be read");
  }
}

}  // namespace
}  // namespace lopower::loadgen
