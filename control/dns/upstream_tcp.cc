#include "control/dns/upstream_tcp.h"

#include "control/dns/tcp_framing.h"

namespace lopower {

result<std::unique_ptr<dns_upstream_tcp>> dns_upstream_tcp::start(event_loop& loop, const ip_address& server,
                                                                   std::uint16_t port,
                                                                   std::span<const std::uint8_t> query, done_fn done) {
  const auto framed = dns::frame_tcp_message(query);
  if (!framed) return fail("a DNS message is at most 65535 bytes");
  std::unique_ptr<dns_upstream_tcp> x(new dns_upstream_tcp(loop, std::move(done)));
  // An IP literal: getaddrinfo takes it as it is, no lookup.
  if (auto c = x->stream_.connect(server.to_string(), port); !c) return fail(c.message());
  x->stream_.send(*framed);  // queued until connected
  return x;
}

dns_upstream_tcp::dns_upstream_tcp(event_loop& loop, done_fn done)
    : stream_(loop, tailnet::tcp_stream::handlers{
                        nullptr, [this](std::span<const std::uint8_t> bytes) { on_data(bytes); },
                        [this](const std::string& reason) {
                          finish(std::nullopt, reason.empty() ? "closed before the whole answer" : reason);
                        }}),
      done_(std::move(done)) {}

void dns_upstream_tcp::on_data(std::span<const std::uint8_t> bytes) {
  in_.insert(in_.end(), bytes.begin(), bytes.end());
  if (auto answer = dns::take_tcp_message(in_)) finish(std::move(answer), "");
}

void dns_upstream_tcp::finish(std::optional<std::vector<std::uint8_t>> answer, const std::string& why) {
  stream_.close();
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(answer), why);  // last: it may destroy us (tcp_stream allows it)
}

}  // namespace lopower
