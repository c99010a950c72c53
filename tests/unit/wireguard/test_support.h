#pragma once
// Helpers shared by the WireGuard unit tests: hex, a scripted random
// source, an in-memory peer table, and the committed known-answer vectors.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/wireguard/engine/noise_handshake.h"
#include "lopower/keys.h"
#include "tests/unit/test_hex.h"

namespace lopower::wg::test {

using lopower::test_hex::hex;
using lopower::test_hex::unhex;

template <class T>
std::string hex_of(const T& object) {
  return hex(reinterpret_cast<const std::uint8_t*>(&object), sizeof object);
}

template <class K>
K key_from_hex(const std::string& s) {
  auto k = K::from_hex(s);
  if (!k) throw std::invalid_argument("bad key hex: " + s);
  return *k;
}

template <class T>
T message_from_hex(const std::string& s) {
  const auto bytes = unhex(s);
  if (bytes.size() != sizeof(T)) throw std::invalid_argument("message of the wrong size");
  T m;
  std::memcpy(&m, bytes.data(), sizeof m);
  return m;
}

// Hands out scripted byte strings in order; once they run out, a counter
// pattern (deterministic, distinct per call).
class scripted_random final : public random_source {
 public:
  void push(std::vector<std::uint8_t> bytes) { script_.push_back(std::move(bytes)); }
  void push_hex(const std::string& s) { push(unhex(s)); }
  void fill(std::uint8_t* out, std::size_t length) noexcept override {
    if (!script_.empty()) {
      const auto next = std::move(script_.front());
      script_.pop_front();
      EXPECT_EQ(next.size(), length) << "scripted random bytes of the wrong length";
      for (std::size_t i = 0; i < length; ++i) out[i] = i < next.size() ? next[i] : 0;
      return;
    }
    ++calls_;
    for (std::size_t i = 0; i < length; ++i) out[i] = static_cast<std::uint8_t>(calls_ * 131 + i * 7 + 1);
  }

 private:
  std::deque<std::vector<std::uint8_t>> script_;
  unsigned calls_ = 0;
};

// The caller's tables, as small as they get: peers in a vector, found by
// static key or by the local index of their pending initiation.
class peer_table final : public peer_lookup {
 public:
  peer_handshake& add(const static_identity& local, const public_key& remote,
                      const std::optional<key32>& psk = std::nullopt) {
    peers_.push_back(std::make_unique<peer_handshake>(local, remote, psk));
    return *peers_.back();
  }
  peer_handshake* by_static(const public_key& remote_static) override {
    for (auto& p : peers_)
      if (p->remote_static() == remote_static) return p.get();
    return nullptr;
  }
  peer_handshake* by_index(std::uint32_t local_index) override {
    for (auto& p : peers_)
      if (p->local_index() == local_index) return p.get();
    return nullptr;
  }

 private:
  std::vector<std::unique_ptr<peer_handshake>> peers_;
};

inline const nlohmann::json& vectors() {
  static const nlohmann::json doc = [] {
    std::ifstream in(LOPOWER_SOURCE_DIR "/tests/unit/wireguard/vectors.json");
    if (!in) throw std::runtime_error("cannot open tests/unit/wireguard/vectors.json");
    return nlohmann::json::parse(in);
  }();
  return doc;
}

}  // namespace lopower::wg::test
