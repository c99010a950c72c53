#pragma once
// Tailscale's text forms of keys (types/key in tailscale): a type prefix and
// 64 hex digits, lowercase when written, either case when read.
//
//   mkey:      machine public key (the control protocol's Noise static key)
//   nodekey:   node public key (WireGuard static key, DERP identity)
//   discokey:  disco public key
//   chalpub:   node-key challenge (the early payload of ts2021)
//   privkey:   a private key (machine or node), in state files
//
// The parsers take the whole text (no whitespace) and say what is wrong in
// their error; an error about a private key never repeats the text.

#include <cstdint>
#include <string>
#include <string_view>

#include "control/tailnet/controlbase/control_result.h"
#include "lopower/keys.h"

namespace lopower::tailnet {

enum class key_text_kind : std::uint8_t { machine, node, disco, challenge };

inline constexpr std::string_view machine_key_text_prefix = "mkey:";
inline constexpr std::string_view node_key_text_prefix = "nodekey:";
inline constexpr std::string_view disco_key_text_prefix = "discokey:";
inline constexpr std::string_view challenge_key_text_prefix = "chalpub:";
inline constexpr std::string_view private_key_text_prefix = "privkey:";

// "mkey:", "nodekey:", "discokey:" or "chalpub:".
std::string_view key_text_prefix(key_text_kind kind) noexcept;
// "machine key", "node key", "disco key" or "challenge key".
std::string_view key_text_name(key_text_kind kind) noexcept;

// Prefix + 64 lowercase hex digits.
std::string format_key_text(key_text_kind kind, const public_key& key);
// "privkey:" + 64 lowercase hex digits. The caller wipes the string when done.
std::string format_private_key_text(const private_key& key);

// Exactly the kind's prefix and 64 hex digits (either case). An all-zero key
// is returned as such: whether it is acceptable is the caller's decision
// (the legacy key of /key is all zero, for one).
control_result<public_key> parse_key_text(key_text_kind kind, std::string_view text);
// Exactly "privkey:" and 64 hex digits.
control_result<private_key> parse_private_key_text(std::string_view text);

inline std::string format_machine_key(const public_key& k) { return format_key_text(key_text_kind::machine, k); }
inline std::string format_node_key(const public_key& k) { return format_key_text(key_text_kind::node, k); }
inline std::string format_disco_key(const public_key& k) { return format_key_text(key_text_kind::disco, k); }
inline control_result<public_key> parse_machine_key(std::string_view t) { return parse_key_text(key_text_kind::machine, t); }
inline control_result<public_key> parse_node_key(std::string_view t) { return parse_key_text(key_text_kind::node, t); }
inline control_result<public_key> parse_disco_key(std::string_view t) { return parse_key_text(key_text_kind::disco, t); }

}  // namespace lopower::tailnet
