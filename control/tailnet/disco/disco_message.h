#pragma once
// Tailscale's disco messages (tailscale disco/disco.go): how peers find a
// direct path to each other. On UDP, and inside DERP, a disco packet is
//
//   magic "TS💬" (54 53 f0 9f 92 ac)  sender's disco public key (32)
//   nonce (24)  NaCl box of the plaintext (16-byte tag first, as
//               crypto_box_easy and Go's nacl/box lay it out)
//
// sealed with the sender's disco private key to the receiver's disco public
// key, and the plaintext is
//
//   [type u8][version u8][body]
//
//   1 ping           tx id (12), then the sender's node key (32) when sent,
//                    then zero padding (probes the path MTU)
//   2 pong           tx id (12), the source the ping came from: IPv6 or
//                    v4-mapped address (16) + port (u16 BE); extra bytes ignored
//   3 call-me-maybe  endpoints, 16-byte address + u16 BE port each
//   4-9              the UDP relay messages, which lopower does not implement
//
// Parsing follows disco.Parse exactly, lax where it is lax: the version byte
// is ignored by ping and pong, bytes after the defined fields are ignored,
// and a call-me-maybe whose version is not 0 or whose body is not a whole
// number of endpoints is an empty call-me-maybe (which still asks for
// pings), not an error. Addresses come out unmapped: ::ffff:a.b.c.d is IPv4.
//
// Pure apart from libsodium: never throws on bad input, never reads past the
// span, and bounds every size by max_packet_size.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lopower/enum_list.h"
#include "lopower/keys.h"
#include "lopower/net_addr.h"
#include "lopower/result.h"

namespace lopower::tailnet::disco {

inline constexpr std::array<std::uint8_t, 6> magic = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};  // "TS💬"
inline constexpr std::size_t nonce_size = 24;
inline constexpr std::size_t box_tag_size = 16;                                       // Poly1305
inline constexpr std::size_t sender_key_offset = magic.size();                        // 6
inline constexpr std::size_t nonce_offset = sender_key_offset + key_size;             // 38
inline constexpr std::size_t packet_header_size = nonce_offset + nonce_size;          // 62: magic, key, nonce
inline constexpr std::size_t box_offset = packet_header_size;
inline constexpr std::size_t message_header_size = 2;                                 // type, version
inline constexpr std::size_t packet_overhead = packet_header_size + box_tag_size;     // 78
inline constexpr std::size_t min_packet_size = packet_overhead + message_header_size;  // 80

// The largest UDP payload over IPv4; DERP carries no more either. Bounds
// what open() accepts and what seal() produces.
inline constexpr std::size_t max_packet_size = 65'507;
inline constexpr std::size_t max_plaintext_size = max_packet_size - packet_overhead;

inline constexpr std::size_t tx_id_size = 12;
inline constexpr std::size_t ping_body_min_size = tx_id_size;                 // old clients send no node key
inline constexpr std::size_t ping_body_with_key_size = tx_id_size + key_size;  // 44
inline constexpr std::size_t endpoint_wire_size = 16 + 2;                     // address, port
inline constexpr std::size_t pong_body_size = tx_id_size + endpoint_wire_size;  // 30
inline constexpr std::size_t max_ping_padding = max_plaintext_size - message_header_size - ping_body_with_key_size;
inline constexpr std::size_t max_call_me_maybe_endpoints =
    (max_plaintext_size - message_header_size) / endpoint_wire_size;

// The plaintext's first byte. 4-9 are tailscale's UDP relay messages.
// X(identifier, value): the enum and the names come from this list.
#define LOPOWER_DISCO_MESSAGE_TYPES(X)                                 \
  X(ping, 0x01)                                                        \
  X(pong, 0x02)                                                        \
  X(call_me_maybe, 0x03)                                               \
  X(bind_udp_relay_endpoint, 0x04)                                     \
  X(bind_udp_relay_endpoint_challenge, 0x05)                           \
  X(bind_udp_relay_endpoint_answer, 0x06)                              \
  X(call_me_maybe_via, 0x07)                                           \
  X(allocate_udp_relay_endpoint_request, 0x08)                         \
  X(allocate_udp_relay_endpoint_response, 0x09)

enum class message_type : std::uint8_t {
#define LOPOWER_DISCO_TYPE_ENUM(id, value) id = value,
  LOPOWER_DISCO_MESSAGE_TYPES(LOPOWER_DISCO_TYPE_ENUM)
#undef LOPOWER_DISCO_TYPE_ENUM
};
// "ping", "bind_udp_relay_endpoint", ...; "unknown" for any other value.
const char* to_string(message_type t) noexcept;

using transaction_id = std::array<std::uint8_t, tx_id_size>;
using nonce = std::array<std::uint8_t, nonce_size>;

// A UDP endpoint as disco carries it. IPv4 is always ip_family::v4, never
// v4-mapped IPv6 (the same shape as the netmap's tailnet::endpoint).
struct ip_port {
  ip_address address;
  std::uint16_t port = 0;

  std::string to_string() const;  // for logs: "192.0.2.1:41641", "[2001:db8::1]:41641"
  friend bool operator==(const ip_port&, const ip_port&) = default;
};

struct ping {
  transaction_id tx_id{};
  // The sender's WireGuard key, unchecked: only the netmap can vouch for it.
  // nullopt when not sent (before tailscale 1.16) or sent as all zero, which
  // tailscale also takes as "none"; an all-zero key is never written.
  std::optional<public_key> node_key;
  // Bytes after the fields: zeros when sent, not checked when received.
  // Counted as disco.go counts them: past the key's 32 bytes whenever the
  // body holds 44 or more, even if the key is zero. So without a key,
  // padding of 32 or more reads back 32 less, in tailscale as here: send a
  // node key with any padding.
  std::size_t padding = 0;
  friend bool operator==(const ping&, const ping&) = default;
};

struct pong {
  transaction_id tx_id{};  // the ping's
  ip_port src;             // where the ping came from, as the ponger saw it
  friend bool operator==(const pong&, const pong&) = default;
};

struct call_me_maybe {
  std::vector<ip_port> endpoints;  // where the sender can be reached; may be empty
  friend bool operator==(const call_me_maybe&, const call_me_maybe&) = default;
};

using message = std::variant<ping, pong, call_me_maybe>;
message_type type_of(const message& m) noexcept;

// Why a packet or plaintext was refused. The failure's message starts with
// to_string() of one of these, then ": " and the detail; parse_error_of()
// reads it back.
// X(identifier): the enum, the names and the count come from this list.
#define LOPOWER_DISCO_PARSE_ERRORS(X)                                                                  \
  X(too_short)        /* shorter than its header, or a ping or pong body shorter than its fields */    \
  X(too_large)        /* beyond max_packet_size */                                                      \
  X(bad_magic)        /* not "TS💬" */                                                                  \
  X(sender_mismatch)  /* the header names another sender than the key given to open() */               \
  X(bad_key)          /* the sender's key is a low-order point: there is no shared key */               \
  X(decrypt_failed)   /* the box does not open: another key, corrupt, or not for us */                  \
  X(unknown_type)     /* a type tailscale does not define (not 1-9) */                                  \
  X(unsupported_type) /* a UDP relay message (4-9), which lopower does not implement */

enum class parse_error : std::uint8_t { LOPOWER_DISCO_PARSE_ERRORS(LOPOWER_ENUM_ENUMERATOR) };
inline constexpr std::size_t parse_error_count = LOPOWER_ENUM_COUNT(LOPOWER_DISCO_PARSE_ERRORS);
inline constexpr std::array<const char*, parse_error_count> parse_error_names{
    LOPOWER_DISCO_PARSE_ERRORS(LOPOWER_ENUM_NAME)};
const char* to_string(parse_error e) noexcept;
// The parse_error a failure from this file names; nullopt for any other failure.
std::optional<parse_error> parse_error_of(const failure& f);

// --- the plaintext (no crypto) ----------------------------------------------

// Decodes [type][version][body] as disco.Parse does (see the top of the file).
result<message> parse_plaintext(std::span<const std::uint8_t> plaintext);
// The bytes disco.Message.AppendMarshal writes, version 0. Empty when the
// message would not fit in max_plaintext_size (too much padding, too many
// endpoints): a plaintext is never empty otherwise.
std::vector<std::uint8_t> encode_plaintext(const message& m);
std::size_t plaintext_size(const message& m) noexcept;  // what encode_plaintext would return, unbounded

// --- the packet ---------------------------------------------------------------

// The magic and at least a whole header (disco.LooksLikeDiscoWrapper): worth
// looking up the sender. WireGuard packets never start with the magic.
bool looks_like_disco(std::span<const std::uint8_t> udp_payload) noexcept;
// The sender's disco public key, when the packet looks like disco.
std::optional<public_key> sender_key(std::span<const std::uint8_t> packet) noexcept;

// The NaCl box key between two disco keys (crypto_box_beforenm, as
// key.DiscoPrivate.Shared): compute once per peer and keep. nullopt when
// `peer` is a low-order point (libsodium refuses the all-zero result).
std::optional<key32> shared_key(const private_key& mine, const public_key& peer) noexcept;

// Checks the header, opens the box and parses the plaintext. The first form
// also checks that the header names `sender`; the second trusts the caller
// to have chosen `shared` by the header's key (sender_key()).
result<message> open(std::span<const std::uint8_t> packet, const private_key& my_private, const public_key& sender);
result<message> open(std::span<const std::uint8_t> packet, const key32& shared);

// A whole packet from us (`my_public` goes in the header) with a fresh
// random nonce. Empty when the message does not fit (see encode_plaintext)
// or, for the first form, when `receiver` is a low-order point.
std::vector<std::uint8_t> seal(const message& m, const private_key& my_private, const public_key& my_public,
                               const public_key& receiver);
std::vector<std::uint8_t> seal(const message& m, const key32& shared, const public_key& my_public);
// The same with the nonce given: for known-answer tests only. A nonce must
// never be used twice with one key.
std::vector<std::uint8_t> seal(const message& m, const key32& shared, const public_key& my_public,
                               const nonce& n);

}  // namespace lopower::tailnet::disco
