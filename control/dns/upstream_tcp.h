#pragma once
// One DNS query over TCP to an upstream resolver, on the control thread's
// event loop: the query with its two-byte length (RFC 7766 §8), the answer
// likewise, over a tailnet::tcp_stream. A device that asked over TCP must
// get a whole answer; when the upstream's UDP answer came back truncated
// (TC), the query goes again this way, as a forwarding resolver (dnsmasq,
// unbound) does.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/event_loop.h"
#include "control/tailnet/client/tcp_stream.h"
#include "lopower/net_addr.h"
#include "lopower/result.h"

namespace lopower {

class dns_upstream_tcp {
 public:
  // Called once: the answer as it came (not checked against the query), or
  // nullopt and why. The owner may destroy the exchange from here.
  using done_fn = std::function<void(std::optional<std::vector<std::uint8_t>> answer, const std::string& why)>;

  // Starts the exchange; fails at once when no connection could be started.
  static result<std::unique_ptr<dns_upstream_tcp>> start(event_loop& loop, const ip_address& server, std::uint16_t port,
                                                         std::span<const std::uint8_t> query, done_fn done);
  dns_upstream_tcp(const dns_upstream_tcp&) = delete;
  dns_upstream_tcp& operator=(const dns_upstream_tcp&) = delete;

 private:
  dns_upstream_tcp(event_loop& loop, done_fn done);
  void on_data(std::span<const std::uint8_t> bytes);
  void finish(std::optional<std::vector<std::uint8_t>> answer, const std::string& why);

  tailnet::tcp_stream stream_;
  std::vector<std::uint8_t> in_;  // the framed answer as it comes
  done_fn done_;
};

}  // namespace lopower
