#include "control/metrics/http_request.h"

#include <gtest/gtest.h>

namespace lopower::metrics {
namespace {

TEST(HttpRequestHead, ReadsTheRequestLineOfAWholeHead) {
  const auto h = parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n");
  ASSERT_EQ(h.status, head_status::complete);
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/metrics");
}

TEST(HttpRequestHead, AcceptsBareLineFeedsAndHttp10) {
  const auto h = parse_request_head("HEAD /metrics?x=1 HTTP/1.0\n\n");
  ASSERT_EQ(h.status, head_status::complete);
  EXPECT_EQ(h.method, "HEAD");
  EXPECT_EQ(target_path(h.target), "/metrics");
}

TEST(HttpRequestHead, WaitsForTheBlankLine) {
  EXPECT_EQ(parse_request_head("").status, head_status::incomplete);
  EXPECT_EQ(parse_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n").status, head_status::incomplete);
}

TEST(HttpRequestHead, RefusesWhatIsNotARequestLine) {
  for (const char* bad : {"GET\r\n\r\n", "GET /metrics\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n",
                          "GET /me trics HTTP/1.1\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2\r\n\r\n",
                          " /metrics HTTP/1.1\r\n\r\n", "GET /\x01 HTTP/1.1\r\n\r\n"}) {
    const auto h = parse_request_head(bad);
    EXPECT_EQ(h.status, head_status::malformed) << bad;
    EXPECT_FALSE(h.problem.empty()) << bad;
  }
}

TEST(HttpRequestHead, AHeadThatDoesNotEndInTheLimitIsTooLarge) {
  std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(100, 'a');
  EXPECT_EQ(parse_request_head(big, 64).status, head_status::too_large);
  EXPECT_EQ(parse_request_head(big, 4096).status, head_status::incomplete);
  // A blank line past the limit does not count.
  EXPECT_EQ(parse_request_head(big + "\r\n\r\n", 64).status, head_status::too_large);
}

}  // namespace
}  // namespace lopower::metrics
