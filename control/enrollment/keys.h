#pragma once
// What enrollment adds to the key type of lopower/keys.h: reading a key an
// operator typed (or the state file holds) with an error that says what is
// wrong with it, and wiping secret text.

#include <string>
#include <string_view>

#include "control/enrollment/result.h"
#include "lopower/keys.h"

namespace lopower::enrollment {

// Parses a key an operator typed: exactly 44 characters of standard base64
// (trailing whitespace is not trimmed here) that decode to 32 bytes, not all
// zero. `what` names the key in the message ("public key").
result<public_key> parse_public_key(std::string_view text, std::string_view what = "public key");
// The same for a private key (the state file's); `what` names it.
result<private_key> parse_private_key(std::string_view text, std::string_view what);

// Overwrites a buffer that held secret text.
void wipe(std::string& s);

}  // namespace lopower::enrollment
