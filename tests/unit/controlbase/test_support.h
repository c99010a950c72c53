#pragma once
// Helpers shared by the controlbase tests: hex, and the committed
// known-answer vectors (gen_vectors.py).

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lopower::tailnet::test {

inline std::vector<std::uint8_t> unhex(std::string_view s) {
  if (s.size() % 2 != 0) throw std::invalid_argument("odd hex length");
  std::vector<std::uint8_t> out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<std::uint8_t>(std::stoul(std::string(s.substr(2 * i, 2)), nullptr, 16));
  return out;
}

inline std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

inline std::vector<std::uint8_t> bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

template <class K>
K key_from_hex(std::string_view s) {
  const auto bytes = unhex(s);
  if (bytes.size() != 32) throw std::invalid_argument("a key is 32 bytes");
  return K::from_bytes(bytes.data());
}

inline const nlohmann::json& vectors() {
  static const nlohmann::json doc = [] {
    std::ifstream in(LOPOWER_SOURCE_DIR "/tests/unit/controlbase/vectors.json");
    if (!in) throw std::runtime_error("cannot open tests/unit/controlbase/vectors.json");
    return nlohmann::json::parse(in);
  }();
  return doc;
}

}  // namespace lopower::tailnet::test
