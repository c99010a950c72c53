#pragma once
// Host names as DNS carries them (RFC 1123 2.1, RFC 952): labels of letters,
// digits and hyphens, 1..63 characters, neither starting nor ending with a
// hyphen; a name is at most 253 characters (255 on the wire) without its
// trailing dot. The config checks `[dns] device_domain` with these, and the
// DNS answerer which device names can be labels under it.

#include <cstddef>
#include <string_view>

namespace lopower {

inline constexpr std::size_t max_dns_label_length = 63;
inline constexpr std::size_t max_dns_name_length = 253;

constexpr bool is_hostname_label(std::string_view label) noexcept {
  if (label.empty() || label.size() > max_dns_label_length) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (const char c : label) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !digit && c != '-') return false;
  }
  return true;
}

// "lopower.internal" or "lopower.internal.": one or more host-name labels.
constexpr bool is_hostname(std::string_view name) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > max_dns_name_length) return false;
  for (;;) {
    const std::size_t dot = name.find('.');
    if (!is_hostname_label(name.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

}  // namespace lopower
