// tcp_stream on a real event loop against a listener on loopback: an IP
// literal is dialled at once; a name is resolved off the control thread
// ("localhost" comes from /etc/hosts: no DNS query leaves the machine) and
// then dialled; either way the bytes arrive.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "control/event_loop.h"
#include "control/tailnet/client/tcp_stream.h"

namespace lopower::tailnet {
namespace {

struct listener {
  int fd = -1;
  std::uint16_t port = 0;
  listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      ADD_FAILURE() << "cannot listen on loopback";
    port = ntohs(a.sin_port);
  }
  ~listener() { ::close(fd); }
};

// Connects to `host`, sends "hello", and returns what the listener read;
// the listener then closes, which ends the loop.
std::string hello_through(const std::string& host, listener& l) {
  event_loop loop;
  std::string received, close_reason = "(not closed)";
  tcp_stream s(loop, {[&] { s.send(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>("hello"), 5)); },
                      {},
                      [&](const std::string& why) {
                        close_reason = why;
                        loop.stop();
                      }});
  std::thread server([&] {
    const int c = accept(l.fd, nullptr, nullptr);
    if (c < 0) return;
    char buf[5] = {};
    const ssize_t n = recv(c, buf, sizeof buf, MSG_WAITALL);
    if (n > 0) received.assign(buf, static_cast<std::size_t>(n));
    ::close(c);  // the stream then sees the close
  });
  const auto r = s.connect(host, l.port);
  EXPECT_TRUE(r) << r.message();
  EXPECT_TRUE(s.open()) << "open while connecting (or resolving)";
  loop.add_timer(std::chrono::seconds(10), std::chrono::microseconds(0), [&] { loop.stop(); });
  loop.run();
  s.close();
  shutdown(l.fd, SHUT_RDWR);  // an accept still waiting (the stream never connected) returns
  server.join();
  EXPECT_EQ(close_reason, "") << "closed cleanly by the listener";
  return received;
}

TEST(tcp_stream, dials_an_ip_literal) {
  listener l;
  EXPECT_EQ(hello_through("127.0.0.1", l), "hello");
}

TEST(tcp_stream, resolves_a_name_without_blocking_then_dials_it) {
  listener l;
  EXPECT_EQ(hello_through("localhost", l), "hello");
}

TEST(tcp_stream, closed_while_resolving_touches_nothing_afterwards) {
  event_loop loop;
  bool closed = false;
  {
    tcp_stream s(loop, {{}, {}, [&](const std::string&) { closed = true; }});
    ASSERT_TRUE(s.connect("localhost", 9));
    // Destroyed at once: the resolver thread still finishes, into its own copy.
  }
  loop.add_timer(std::chrono::milliseconds(200), std::chrono::microseconds(0), [&] { loop.stop(); });
  loop.run();
  EXPECT_FALSE(closed);
}

}  // namespace
}  // namespace lopower::tailnet
