#pragma once
// An in-memory byte_stream for driving derp::client without sockets: the
// test (or fuzz target) plays the server by calling the handlers the client
// gave, and reads what the client sent.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "control/tailnet/client/byte_stream.h"

namespace lopower::tailnet::test_support {

class fake_stream final : public byte_stream {
 public:
  struct state {
    handlers h;
    std::string host;
    std::uint16_t port = 0;
    std::vector<std::uint8_t> sent;
    std::size_t queued = 0;  // what queued() answers
    bool open = false;
    bool connected = false;
    int closes = 0;
    bool fail_connect = false;
  };

  // `s` outlives the stream (the test keeps it); the stream dies with the client.
  fake_stream(state& s, handlers h) : s_(s) { s_.h = std::move(h); }

  result<void> connect(const std::string& host, std::uint16_t port) override {
    if (s_.fail_connect) return fail("resolve " + host + ": no such host");
    s_.host = host;
    s_.port = port;
    s_.open = true;
    return {};
  }
  void send(std::span<const std::uint8_t> bytes) override { s_.sent.insert(s_.sent.end(), bytes.begin(), bytes.end()); }
  void close() override {
    if (s_.open) ++s_.closes;
    s_.open = false;
    s_.connected = false;
  }
  bool connected() const noexcept override { return s_.connected; }
  bool open() const noexcept override { return s_.open; }
  std::size_t queued() const noexcept override { return s_.queued; }

 private:
  state& s_;
};

}  // namespace lopower::tailnet::test_support
