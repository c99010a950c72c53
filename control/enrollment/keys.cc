#include "control/enrollment/keys.h"

namespace lopower::enrollment {

namespace {

template <class Key>
result<Key> parse_key(std::string_view text, std::string_view what) {
  const std::string prefix(what);
  if (text.size() != key_base64_length)
    return fail(prefix + " is not 44 characters of base64 (it has " + std::to_string(text.size()) + ")");
  auto key = Key::from_base64(text);
  if (!key) return fail(prefix + " is not 44 characters of base64 (it does not decode to 32 bytes)");
  if (key->is_zero()) return fail(prefix + " is all zeros, which is not a usable key");
  return std::move(*key);
}

}  // namespace

result<public_key> parse_public_key(std::string_view text, std::string_view what) {
  return parse_key<public_key>(text, what);
}

result<private_key> parse_private_key(std::string_view text, std::string_view what) {
  return parse_key<private_key>(text, what);
}

void wipe(std::string& s) {
  secure_wipe(s.data(), s.size());
  s.clear();
}

}  // namespace lopower::enrollment
