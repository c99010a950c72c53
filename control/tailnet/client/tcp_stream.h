#pragma once
// A non-blocking TCP connection driven by the control thread's event loop:
// the coordination client's transport to the control server. The kernel
// carries it (over the exception path when the uplink is a DPDK port), so
// nothing here touches the dataplane.
//
// Handlers run on the event loop. Any of them may destroy the stream; the
// stream notices and touches nothing of itself afterwards.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "control/event_loop.h"
#include "lopower/result.h"

namespace lopower::tailnet {

class tcp_stream {
 public:
  struct handlers {
    std::function<void()> on_connected;
    std::function<void(std::span<const std::uint8_t>)> on_data;
    // Once, after which the stream is idle: `reason` is empty when the peer
    // closed cleanly, else what went wrong ("connect: Connection refused").
    std::function<void(const std::string& reason)> on_closed;
  };

  tcp_stream(event_loop& loop, handlers h);
  ~tcp_stream();
  tcp_stream(const tcp_stream&) = delete;
  tcp_stream& operator=(const tcp_stream&) = delete;

  // Starts connecting to `host` (an IP literal or a name, resolved with
  // getaddrinfo: a name costs a blocking lookup on the control thread) and
  // `port`. Fails at once for a name that does not resolve.
  result<void> connect(const std::string& host, std::uint16_t port);

  // Queues bytes; they go out as the socket takes them.
  void send(std::span<const std::uint8_t> bytes);
  // Closes without calling on_closed.
  void close();

  bool connected() const noexcept { return connected_; }
  bool open() const noexcept { return fd_ >= 0; }
  std::size_t queued() const noexcept { return out_.size() - out_sent_; }

 private:
  void on_events(std::uint32_t events);
  void finish_connect();
  void read_all();
  void flush();
  void update_interest();
  void close_with(const std::string& reason);

  event_loop& loop_;
  handlers handlers_;
  int fd_ = -1;
  bool connected_ = false;
  bool want_write_ = false;
  std::vector<std::uint8_t> out_;
  std::size_t out_sent_ = 0;
  // Shared with each handler call: false once the stream is destroyed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower::tailnet
