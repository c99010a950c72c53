#include "control/metrics/http_server.h"
#include "control/metrics/http_request.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

namespace lopower::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int connect_to(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) ADD_FAILURE() << "connect";
  return fd;
}

// Sends `request` and reads until the server closes.
std::string exchange(int fd, const std::string& request) {
  if (!request.empty() && send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) ADD_FAILURE() << "send";
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return reply;
}

// Runs the server's loop while `client` runs on a thread; returns its result.
template <class F>
auto with_server(F client) {
  event_loop loop;
  http_server server(loop, *ip_address::parse("127.0.0.1"), 0, [] { return std::string(20000, 'x') + "\nend\n"; });
  auto result = std::async(std::launch::async, client, server.port());
  loop.add_timer(std::chrono::milliseconds(5), std::chrono::milliseconds(5), [&] {
    if (result.wait_for(std::chrono::seconds(0)) == std::future_status::ready) loop.stop();
  });
  loop.run();
  return std::make_pair(result.get(), server.stats());
}

TEST(HttpServer, AnswersAScrapeWithTheRenderedBody) {
  auto [reply, stats] = with_server([](std::uint16_t port) {
    return exchange(connect_to(port), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  });
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(reply, HasSubstr("Content-Length: 20005\r\n"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\n" + std::string(20000, 'x') + "\nend\n"));
  EXPECT_EQ(stats.scrapes, 1u);
}

TEST(HttpServer, RefusesWhatIsNotAScrape) {
  auto [replies, stats] = with_server([](std::uint16_t port) {
    std::vector<std::string> out;
    for (const char* r : {"GET /nothing HTTP/1.1\r\n\r\n", "POST /metrics HTTP/1.1\r\n\r\n", "BREW\r\n\r\n",
                          "HEAD /metrics HTTP/1.0\r\n\r\n"})
      out.push_back(exchange(connect_to(port), r));
    return out;
  });
  EXPECT_THAT(replies[0], StartsWith("HTTP/1.1 404 "));
  EXPECT_THAT(replies[1], StartsWith("HTTP/1.1 405 "));
  EXPECT_THAT(replies[2], StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(replies[3], StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(replies[3], ::testing::EndsWith("\r\n\r\n"));  // HEAD: no body
  EXPECT_EQ(stats.bad_requests, 1u);
  EXPECT_EQ(stats.not_found, 1u);
}

TEST(HttpServer, AnOversizedHeadIsCutOff) {
  auto [reply, stats] = with_server([](std::uint16_t port) {
    // Exactly the limit: the server has read all of it when it answers
    // (unread bytes at close would reset the connection under the reply).
    std::string head = "GET /metrics HTTP/1.1\r\nX: ";
    head.resize(max_request_head, 'a');
    return exchange(connect_to(port), head);
  });
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 431 "));
  EXPECT_EQ(stats.bad_requests, 1u);
}

TEST(HttpServer, IdleConnectionsCannotLockAScraperOut) {
  auto [reply, stats] = with_server([](std::uint16_t port) {
    std::vector<int> idle;
    for (unsigned i = 0; i < 2 * http_server::max_connections; ++i) idle.push_back(connect_to(port));
    std::string r = exchange(connect_to(port), "GET /metrics HTTP/1.1\r\n\r\n");
    for (int fd : idle) close(fd);
    return r;
  });
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_GE(stats.evicted, http_server::max_connections);
}

TEST(HttpServer, ABusyPortIsAClearError) {
  event_loop loop;
  http_server first(loop, *ip_address::parse("127.0.0.1"), 0, [] { return std::string(); });
  try {
    http_server second(loop, *ip_address::parse("127.0.0.1"), first.port(), [] { return std::string(); });
    FAIL() << "a second server bound the same port";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("metrics.listen"));
  }
}

}  // namespace
}  // namespace lopower::metrics
