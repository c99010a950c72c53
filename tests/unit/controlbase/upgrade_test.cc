// The HTTP/1.1 around ts2021: the requests we write, and the responses we
// accept and refuse.

#include <gtest/gtest.h>
#include <sodium.h>

#include "control/tailnet/controlbase/upgrade.h"
#include "tests/unit/controlbase/test_support.h"

namespace lopower::tailnet {
namespace {

using test::bytes_of;
using test::unhex;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

const std::string switching =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Connection: upgrade\r\n"
    "Upgrade: tailscale-control-protocol\r\n"
    "\r\n";

TEST(base64_standard, rfc4648_examples) {
  EXPECT_EQ(base64_standard({}), "");
  EXPECT_EQ(base64_standard(bytes_of("f")), "Zg==");
  EXPECT_EQ(base64_standard(bytes_of("fo")), "Zm8=");
  EXPECT_EQ(base64_standard(bytes_of("foo")), "Zm9v");
  EXPECT_EQ(base64_standard(bytes_of("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64_standard(std::vector<std::uint8_t>{0xfb, 0xff}), "+/8=");  // standard alphabet, not URL-safe
}

TEST(upgrade_request, is_what_controlhttp_sends) {
  const auto init = unhex(test::vectors()["handshakes"][0]["initiation"].get<std::string>());
  const std::string req = build_upgrade_request("127.0.0.1:8080", init);
  const std::string b64 = base64_standard(init);
  EXPECT_EQ(b64.size(), 136u);
  EXPECT_EQ(req,
            "POST /ts2021 HTTP/1.1\r\n"
            "Host: 127.0.0.1:8080\r\n"
            "Upgrade: tailscale-control-protocol\r\n"
            "Connection: upgrade\r\n"
            "X-Tailscale-Handshake: " + b64 + "\r\n"
            "Content-Length: 0\r\n\r\n");
  // The header decodes (standard alphabet, padded) to the initiation.
  std::vector<std::uint8_t> back(init.size() + 8);
  std::size_t n = 0;
  ASSERT_EQ(sodium_base642bin(back.data(), back.size(), b64.data(), b64.size(), nullptr, &n, nullptr,
                              sodium_base64_VARIANT_ORIGINAL),
            0);
  back.resize(n);
  EXPECT_EQ(back, init);
}

TEST(upgrade_request, refuses_hosts_that_could_inject_headers) {
  const std::vector<std::uint8_t> init(101, 0);
  EXPECT_TRUE(build_upgrade_request("", init).empty());
  EXPECT_TRUE(build_upgrade_request("a b", init).empty());
  EXPECT_TRUE(build_upgrade_request("host\r\nEvil: 1", init).empty());
  EXPECT_TRUE(build_key_request(std::string_view("h\0st", 4), 119).empty());
  EXPECT_FALSE(build_upgrade_request("[fd00::1]:8080", init).empty());
}

TEST(key_request, asks_for_the_capability_version) {
  EXPECT_EQ(build_key_request("127.0.0.1:8080", 119),
            "GET /key?v=119 HTTP/1.1\r\n"
            "Host: 127.0.0.1:8080\r\n"
            "Accept: application/json\r\n"
            "Connection: close\r\n\r\n");
}

TEST(upgrade_response, switched_with_the_noise_reply_behind_it) {
  std::vector<std::uint8_t> wire = bytes_of(switching);
  const std::vector<std::uint8_t> noise = {0x02, 0x00, 0x30, 0xaa, 0xbb};
  wire.insert(wire.end(), noise.begin(), noise.end());
  // Whole.
  {
    upgrade_response_reader r;
    const auto done = r.feed(wire);
    ASSERT_TRUE(done.ok()) << done.message();
    EXPECT_TRUE(*done);
    EXPECT_EQ(r.head().status, 101);
    EXPECT_EQ(r.head().reason, "Switching Protocols");
    EXPECT_EQ(std::vector<std::uint8_t>(r.surplus().begin(), r.surplus().end()), noise);
    EXPECT_FALSE(r.feed(noise).ok());  // once
  }
  // A byte at a time: the end of the head straddles every boundary.
  {
    upgrade_response_reader r;
    std::size_t i = 0;
    for (; i < wire.size(); ++i) {
      const auto done = r.feed(std::span(wire).subspan(i, 1));
      ASSERT_TRUE(done.ok()) << done.message();
      if (*done) break;
    }
    EXPECT_EQ(i, switching.size() - 1);
    EXPECT_TRUE(r.surplus().empty());
  }
}

TEST(upgrade_response, header_names_and_values_ignore_case) {
  upgrade_response_reader r;
  const auto done =
      r.feed(bytes_of("HTTP/1.1 101 \r\nupgrade:   Tailscale-Control-Protocol  \r\nDate: x\r\nconnection: Upgrade\r\n\r\n"));
  ASSERT_TRUE(done.ok()) << done.message();
  EXPECT_TRUE(*done);
  EXPECT_EQ(r.head().header("UPGRADE").value(), "Tailscale-Control-Protocol");
  EXPECT_EQ(r.head().header("date").value(), "x");
  EXPECT_FALSE(r.head().header("X-Missing").has_value());
}

TEST(upgrade_response, refusal_quotes_status_and_body) {
  upgrade_response_reader r;
  const auto done = r.feed(bytes_of(
      "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n\r\n"
      "unknown next protocol\n"));
  ASSERT_FALSE(done.ok());
  EXPECT_TRUE(contains(done.message(), "HTTP 400")) << done.message();
  EXPECT_TRUE(contains(done.message(), "Bad Request")) << done.message();
  EXPECT_TRUE(contains(done.message(), "unknown next protocol\\x0a")) << done.message();
  EXPECT_FALSE(r.feed(bytes_of("more")).ok());
}

TEST(upgrade_response, refuses_another_protocol) {
  for (const char* head : {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                           "HTTP/1.1 101 Switching Protocols\r\n\r\n",
                           "HTTP/1.1 200 OK\r\nUpgrade: tailscale-control-protocol\r\n\r\n"}) {
    upgrade_response_reader r;
    EXPECT_FALSE(r.feed(bytes_of(head)).ok()) << head;
  }
}

TEST(upgrade_response, refuses_malformed_heads) {
  for (const char* head : {"HTTP/2.0 101 Switching\r\n\r\n", "HTTP/1.1 1O1 x\r\n\r\n", "HTTP/1.1 101x\r\n\r\n",
                           "HTTP/1.1 10\r\n\r\n", "\r\n\r\n", "ICY 200 OK\r\n\r\n",
                           "HTTP/1.1 101 ok\r\nUpgrade: tailscale-control-protocol\r\n folded\r\n\r\n",
                           "HTTP/1.1 101 ok\r\nUp grade: tailscale-control-protocol\r\n\r\n",
                           "HTTP/1.1 101 ok\r\n: no name\r\n\r\n", "HTTP/1.1 101 ok\r\nno colon\r\n\r\n",
                           "HTTP/1.1 101 ok\r\nUpgrade: tailscale-control-protocol\nX: y\r\n\r\n",
                           "HTTP/1.1 101 ok\r\nX: a\x01b\r\nUpgrade: tailscale-control-protocol\r\n\r\n"}) {
    upgrade_response_reader r;
    const auto done = r.feed(bytes_of(head));
    EXPECT_FALSE(done.ok()) << head;
  }
}

TEST(upgrade_response, refuses_endless_heads) {
  upgrade_response_reader r(256);
  std::string junk = "HTTP/1.1 101 Switching Protocols\r\n";
  ASSERT_FALSE(r.feed(bytes_of(junk)).value());
  const std::string line = "X-Filler: 0123456789012345678901234567890123456789\r\n";
  control_result<bool> done = false;
  for (int i = 0; i < 10 && done.ok(); ++i) done = r.feed(bytes_of(line));
  ASSERT_FALSE(done.ok());
  EXPECT_TRUE(contains(done.message(), "longer than 256")) << done.message();
  // Too many header lines, within the size limit.
  std::string many = "HTTP/1.1 101 ok\r\n";
  for (std::size_t i = 0; i <= max_http_headers; ++i) many += "A: b\r\n";
  many += "\r\n";
  upgrade_response_reader r2;
  EXPECT_FALSE(r2.feed(bytes_of(many)).ok());
}

TEST(http_response, content_length_body) {
  const auto r = parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!").ok());
}

TEST(http_response, chunked_body) {
  const auto r = parse_http_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->body, "hello, world!!!");
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n").ok());
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").ok());
}

TEST(http_response, body_to_the_end_and_truncated_heads) {
  const auto r = parse_http_response("HTTP/1.0 200 OK\r\n\r\n{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "{}");
  EXPECT_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n").ok());
  EXPECT_FALSE(parse_http_response("").ok());
}

const std::string noise_hex = "6d2a1a24bfda4a54b2e2f2a1e7cbd0e31f0c60ab8be6a5ae3f8b1e0fc1ed4a33";

TEST(key_response, headscale_form) {
  const auto k = parse_key_response(R"({"legacyPublicKey":"mkey:)" + std::string(64, '0') +
                                    R"(","publicKey":"mkey:)" + noise_hex + "\"}\n");
  ASSERT_TRUE(k.ok()) << k.message();
  EXPECT_EQ(k->noise.to_hex(), noise_hex);
  ASSERT_TRUE(k->legacy.has_value());
  EXPECT_TRUE(k->legacy->is_zero());
  const auto without = parse_key_response(R"({"publicKey":"mkey:)" + noise_hex + R"(","legacyPublicKey":null})");
  ASSERT_TRUE(without.ok());
  EXPECT_FALSE(without->legacy.has_value());
}

TEST(key_response, refusals) {
  for (const std::string& json :
       {std::string("{}"), std::string("[]"), std::string("not json"), std::string(R"({"publicKey":7})"),
        R"({"publicKey":"nodekey:)" + noise_hex + "\"}", R"({"publicKey":"mkey:)" + std::string(64, '0') + "\"}",
        R"({"publicKey":"mkey:)" + noise_hex + R"(","legacyPublicKey":1})",
        R"({"publicKey":"mkey:)" + noise_hex + R"(","legacyPublicKey":"mkey:12"})"}) {
    EXPECT_FALSE(parse_key_response(json).ok()) << json;
  }
  const auto zero = parse_key_response(R"({"publicKey":"mkey:)" + std::string(64, '0') + "\"}");
  EXPECT_TRUE(contains(zero.message(), "all zero")) << zero.message();
}

}  // namespace
}  // namespace lopower::tailnet
