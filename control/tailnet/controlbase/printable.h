#pragma once
// Quoting untrusted bytes in an error message: printable ASCII as is, the
// rest as \xNN, cut at `limit` bytes with "..." so that a hostile peer can
// neither flood the log nor put control characters in it. Private to
// controlbase.

#include <cstddef>
#include <string>
#include <string_view>

#include "lopower/hex.h"

namespace lopower::tailnet::detail {

inline std::string printable(std::string_view bytes, std::size_t limit = 64) {
  std::string out = "\"";
  const std::size_t n = bytes.size() < limit ? bytes.size() : limit;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex_digits[c >> 4];
      out += hex_digits[c & 15];
    }
  }
  out += '"';
  if (bytes.size() > limit) out += "...";
  return out;
}

}  // namespace lopower::tailnet::detail
