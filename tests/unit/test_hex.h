#pragma once
// Hex for test vectors: lopower/hex.h, with a typo in a vector failing the
// test loudly (an exception) instead of handing back nullopt.

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lopower/hex.h"

namespace lopower::test_hex {

inline std::vector<std::uint8_t> unhex(std::string_view s) {
  auto bytes = from_hex(s);
  if (!bytes) throw std::invalid_argument("bad hex in a test vector: " + std::string(s));
  return std::move(*bytes);
}

inline std::string hex(std::span<const std::uint8_t> bytes) { return to_hex(bytes); }
inline std::string hex(const std::uint8_t* p, std::size_t n) { return to_hex({p, n}); }

}  // namespace lopower::test_hex
