#pragma once
// The metrics endpoint: a small HTTP/1.1 server on the control thread's event
// loop. One request per connection (answered, then closed), so a scraper
// costs a connection for milliseconds. Whoever can reach the port can only
// read counters: a bad request gets 400, an unknown path 404, a request that
// is too large or too slow is cut off, and a new connection is always taken
// (the oldest goes when all slots are held), so idle connections cannot keep
// Prometheus out.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "control/event_loop.h"
#include "lopower/net_addr.h"

namespace lopower::metrics {

class http_server {
 public:
  static constexpr unsigned max_connections = 8;
  static constexpr std::chrono::seconds request_timeout{5};

  // Listens on address:port (throws std::runtime_error); `render` makes the
  // body of each GET /metrics.
  http_server(event_loop& loop, const ip_address& address, std::uint16_t port, std::function<std::string()> render);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  std::uint16_t port() const { return port_; }  // the bound one (0 in the config picks one)
  struct counters {
    std::uint64_t scrapes = 0, bad_requests = 0, not_found = 0, timeouts = 0, evicted = 0;
  };
  const counters& stats() const { return stats_; }

 private:
  struct connection;
  void accept_connections();
  void on_event(int fd, std::uint32_t events);
  void respond(connection& c, int status, std::string_view reason, std::string_view type, std::string body, bool head_only);
  void write_some(connection& c);
  void close_connection(int fd);
  void evict_oldest();

  event_loop& loop_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::function<std::string()> render_;
  std::map<int, std::unique_ptr<connection>> connections_;
  std::uint64_t accepted_ = 0;
  counters stats_;
};

}  // namespace lopower::metrics
