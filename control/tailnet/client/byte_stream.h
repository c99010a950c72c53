#pragma once
// A non-blocking byte stream on the control thread's event loop: what the
// coordination client, the DNS forwarder and the DERP client talk over.
// tcp_stream is plain TCP; tls_stream is TLS (OpenSSL) over one.
//
// Handlers run on the event loop. Any of them may destroy the stream; the
// stream notices and touches nothing of itself afterwards.

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "lopower/result.h"

namespace lopower::tailnet {

class byte_stream {
 public:
  struct handlers {
    std::function<void()> on_connected;  // TLS: after the handshake and its checks
    std::function<void(std::span<const std::uint8_t>)> on_data;
    // Once, after which the stream is idle: `reason` is empty when the peer
    // closed cleanly, else what went wrong ("connect: Connection refused",
    // "tls: certificate verify failed: ...").
    std::function<void(const std::string& reason)> on_closed;
  };

  virtual ~byte_stream() = default;
  // Starts connecting to `host` (an IP literal or a name) and `port`. Fails
  // at once for a name that does not resolve.
  virtual result<void> connect(const std::string& host, std::uint16_t port) = 0;
  // Queues bytes; they go out as the connection takes them.
  virtual void send(std::span<const std::uint8_t> bytes) = 0;
  // Closes without calling on_closed.
  virtual void close() = 0;
  virtual bool connected() const noexcept = 0;
  virtual bool open() const noexcept = 0;
  // Bytes accepted by send() and not yet handed to the kernel.
  virtual std::size_t queued() const noexcept = 0;
};

}  // namespace lopower::tailnet
