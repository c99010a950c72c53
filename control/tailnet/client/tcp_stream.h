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
#include "control/tailnet/client/byte_stream.h"
#include "lopower/result.h"

struct sockaddr;

namespace lopower::tailnet {

class tcp_stream final : public byte_stream {
 public:

  tcp_stream(event_loop& loop, handlers h);
  ~tcp_stream() override;
  tcp_stream(const tcp_stream&) = delete;
  tcp_stream& operator=(const tcp_stream&) = delete;

  // Starts connecting to `host` and `port`. An IP literal is dialled at
  // once; a name is resolved first on a thread of its own (getaddrinfo
  // blocks), so the control thread never waits: a name that does not
  // resolve ends in on_closed("resolve NAME: ...").
  result<void> connect(const std::string& host, std::uint16_t port) override;

  // Queues bytes; they go out as the socket takes them.
  void send(std::span<const std::uint8_t> bytes) override;
  // Closes without calling on_closed.
  void close() override;

  bool connected() const noexcept override { return connected_; }
  bool open() const noexcept override { return fd_ >= 0 || resolving_ != nullptr; }
  std::size_t queued() const noexcept override { return out_.size() - out_sent_; }

 private:
  struct resolution;
  result<void> dial(const sockaddr* addr, unsigned addr_length, const std::string& what);
  void resolve(const std::string& host, std::uint16_t port);
  void check_resolution();
  void on_events(std::uint32_t events);
  void finish_connect();
  void read_all();
  void flush();
  void update_interest();
  void close_with(const std::string& reason);

  event_loop& loop_;
  handlers handlers_;
  int fd_ = -1;
  std::shared_ptr<resolution> resolving_;  // shared with the resolver thread
  event_loop::timer_id resolve_timer_ = -1;
  bool connected_ = false;
  bool want_write_ = false;
  std::vector<std::uint8_t> out_;
  std::size_t out_sent_ = 0;
  // Shared with each handler call: false once the stream is destroyed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower::tailnet
