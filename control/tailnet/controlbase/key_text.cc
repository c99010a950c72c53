#include "control/tailnet/controlbase/key_text.h"

#include <array>

#include "control/tailnet/controlbase/printable.h"
#include "lopower/hex.h"

namespace lopower::tailnet {
namespace {

// The type prefix of `text` for an error message: everything up to and
// including the first ':' (when there is one early on).
std::string_view prefix_seen(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon > 16) return {};
  return text.substr(0, colon + 1);
}

// Decodes the 64 hex digits after `prefix` into `out`. `secret`: say
// nothing about the text beyond its shape.
template <class Key>
control_result<Key> parse_hex_key(std::string_view text, std::string_view prefix, std::string_view what, bool secret) {
  const std::string name(what);
  if (text.substr(0, prefix.size()) != prefix) {
    const auto seen = prefix_seen(text);
    if (secret || seen.empty())
      return control_fail(name + ": want the prefix \"" + std::string(prefix) + "\"");
    return control_fail(name + ": want the prefix \"" + std::string(prefix) + "\", got " + detail::printable(seen));
  }
  const std::string_view digits = text.substr(prefix.size());
  if (digits.size() != 2 * key_size) {
    return control_fail(name + ": " + std::to_string(digits.size()) + " hex digits after \"" + std::string(prefix) +
                        "\", want " + std::to_string(2 * key_size));
  }
  std::array<std::uint8_t, key_size> bytes{};
  for (std::size_t i = 0; i < key_size; ++i) {
    const int hi = hex_digit_value(digits[2 * i]);
    const int lo = hex_digit_value(digits[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      secure_wipe(bytes.data(), bytes.size());
      return control_fail(name + ": not a hex digit at position " +
                          std::to_string(prefix.size() + 2 * i + (hi < 0 ? 0 : 1)));
    }
    bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  Key key(bytes);
  secure_wipe(bytes.data(), bytes.size());
  return key;
}

std::string hex_text(std::string_view prefix, const std::uint8_t* bytes) {
  return std::string(prefix) + to_hex(std::span(bytes, key_size));
}

}  // namespace

std::string_view key_text_prefix(key_text_kind kind) noexcept {
  switch (kind) {
    case key_text_kind::machine: return machine_key_text_prefix;
    case key_text_kind::node: return node_key_text_prefix;
    case key_text_kind::disco: return disco_key_text_prefix;
    case key_text_kind::challenge: return challenge_key_text_prefix;
  }
  return {};
}

std::string_view key_text_name(key_text_kind kind) noexcept {
  switch (kind) {
    case key_text_kind::machine: return "machine key";
    case key_text_kind::node: return "node key";
    case key_text_kind::disco: return "disco key";
    case key_text_kind::challenge: return "challenge key";
  }
  return "key";
}

std::string format_key_text(key_text_kind kind, const public_key& key) {
  return hex_text(key_text_prefix(kind), key.data());
}

std::string format_private_key_text(const private_key& key) { return hex_text(private_key_text_prefix, key.data()); }

control_result<public_key> parse_key_text(key_text_kind kind, std::string_view text) {
  return parse_hex_key<public_key>(text, key_text_prefix(kind), key_text_name(kind), false);
}

control_result<private_key> parse_private_key_text(std::string_view text) {
  return parse_hex_key<private_key>(text, private_key_text_prefix, "private key", true);
}

}  // namespace lopower::tailnet
