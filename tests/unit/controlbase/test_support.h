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

#include "tests/unit/test_hex.h"

namespace lopower::tailnet::test {

using lopower::test_hex::hex;
using lopower::test_hex::unhex;

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
