#pragma once
// WireGuard on the wire: every message layout and protocol constant
// (whitepaper sections 5.4 and 6), and a parser that accepts a UDP payload
// only if its type, reserved bytes and length are exactly right.
//
// Header-only and dependency-free: the dataplane and the control plane read
// the same definitions. All structs are byte arrays (alignment 1), so a
// pointer into any packet buffer may be viewed as one of them; multi-byte
// fields are little-endian on the wire and read through le32/le64.

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace lopower::wg {

// --- Protocol constants (whitepaper 6.1, 6.4; Linux messages.h) -------------

// REKEY_AFTER_MESSAGES: the initiator starts a new handshake after sending this many.
inline constexpr std::uint64_t rekey_after_messages = std::uint64_t{1} << 60;
// REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1: no counter at or above this is sent or accepted.
inline constexpr std::uint64_t reject_after_messages = ~std::uint64_t{0} - (std::uint64_t{1} << 13);
// REKEY_AFTER_TIME: the initiator of a keypair rekeys when sending on one this old.
inline constexpr std::chrono::seconds rekey_after_time{120};
// REJECT_AFTER_TIME: a keypair this old is used for nothing.
inline constexpr std::chrono::seconds reject_after_time{180};
// REKEY_ATTEMPT_TIME: give up retrying a handshake after this long.
inline constexpr std::chrono::seconds rekey_attempt_time{90};
// REKEY_TIMEOUT: retry an unanswered initiation after this (plus jitter).
inline constexpr std::chrono::seconds rekey_timeout{5};
// Jitter added to each retry, up to a third of a second.
inline constexpr std::chrono::milliseconds rekey_timeout_jitter_max{333};
// KEEPALIVE_TIMEOUT: send a keepalive after receiving data and sending nothing this long.
inline constexpr std::chrono::seconds keepalive_timeout{10};
// COOKIE_REFRESH_TIME: the responder's cookie secret (and so every cookie) lives this long.
inline constexpr std::chrono::seconds cookie_refresh_time{120};
// A cookie is not used for MAC2 in its last seconds, so that it still holds on arrival.
inline constexpr std::chrono::seconds cookie_secret_latency{5};
// At most this many initiations per second are consumed from one peer.
inline constexpr unsigned initiations_per_second = 50;
// REKEY_ATTEMPT_TIME / REKEY_TIMEOUT: initiations sent before giving up.
inline constexpr unsigned max_timer_handshakes = static_cast<unsigned>(rekey_attempt_time / rekey_timeout);

// --- Sizes ------------------------------------------------------------------

inline constexpr std::size_t public_key_size = 32;
inline constexpr std::size_t symmetric_key_size = 32;
inline constexpr std::size_t hash_size = 32;
inline constexpr std::size_t aead_tag_size = 16;
inline constexpr std::size_t timestamp_size = 12;   // TAI64N
inline constexpr std::size_t cookie_size = 16;      // and each MAC
inline constexpr std::size_t cookie_nonce_size = 24;

constexpr std::size_t encrypted_size(std::size_t plain) { return plain + aead_tag_size; }

// --- Wire types -------------------------------------------------------------

// A little-endian field of a wire struct. On a little-endian CPU (x86)
// each access is one unaligned load or store (std::memcpy); GCC left the
// byte-by-byte forms as up to eight of each, ~50 instructions of every
// transport message sent (the counter and the receiver index).
struct le32 {
  std::uint8_t b[4];
  constexpr std::uint32_t get() const noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
      std::uint32_t v;
      std::memcpy(&v, b, sizeof v);
      return v;
    }
    return std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 | std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24;
  }
  constexpr void set(std::uint32_t v) noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
      std::memcpy(b, &v, sizeof v);
      return;
    }
    for (int i = 0; i < 4; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
};

struct le64 {
  std::uint8_t b[8];
  constexpr std::uint64_t get() const noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
      std::uint64_t v;
      std::memcpy(&v, b, sizeof v);
      return v;
    }
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[i];
    return v;
  }
  constexpr void set(std::uint64_t v) noexcept {
    if (!std::is_constant_evaluated() && std::endian::native == std::endian::little) {
      std::memcpy(b, &v, sizeof v);
      return;
    }
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
  }
};

enum class message_type : std::uint8_t {
  invalid = 0,  // never on the wire: what parse_message returns for anything malformed
  handshake_initiation = 1,
  handshake_response = 2,
  handshake_cookie = 3,
  data = 4,
};

// The first four bytes of every message: the type, then three zero bytes
// (a little-endian 32-bit type in the whitepaper).
struct message_header {
  std::uint8_t type;
  std::uint8_t reserved[3];
};

// The two MACs that end every handshake initiation and response.
struct message_macs {
  std::uint8_t mac1[cookie_size];
  std::uint8_t mac2[cookie_size];
};

struct message_handshake_initiation {
  message_header header;
  le32 sender_index;
  std::uint8_t unencrypted_ephemeral[public_key_size];
  std::uint8_t encrypted_static[encrypted_size(public_key_size)];
  std::uint8_t encrypted_timestamp[encrypted_size(timestamp_size)];
  message_macs macs;
};

struct message_handshake_response {
  message_header header;
  le32 sender_index;
  le32 receiver_index;
  std::uint8_t unencrypted_ephemeral[public_key_size];
  std::uint8_t encrypted_nothing[encrypted_size(0)];
  message_macs macs;
};

struct message_handshake_cookie {
  message_header header;
  le32 receiver_index;
  std::uint8_t nonce[cookie_nonce_size];
  std::uint8_t encrypted_cookie[encrypted_size(cookie_size)];
};

// Transport data: this header, then the encrypted packet (padded to 16
// bytes) and its 16-byte tag.
struct message_data {
  message_header header;
  le32 receiver_index;
  le64 counter;
};

static_assert(sizeof(le32) == 4 && alignof(le32) == 1);
static_assert(sizeof(le64) == 8 && alignof(le64) == 1);
static_assert(sizeof(message_header) == 4);
static_assert(sizeof(message_macs) == 32);
static_assert(sizeof(message_handshake_initiation) == 148 && alignof(message_handshake_initiation) == 1);
static_assert(sizeof(message_handshake_response) == 92 && alignof(message_handshake_response) == 1);
static_assert(sizeof(message_handshake_cookie) == 64 && alignof(message_handshake_cookie) == 1);
static_assert(sizeof(message_data) == 16 && alignof(message_data) == 1);

// The smallest transport message: a keepalive (header and a bare tag).
inline constexpr std::size_t message_data_min_size = sizeof(message_data) + aead_tag_size;
// Padding granularity of transport plaintext.
inline constexpr std::size_t message_padding_multiple = 16;

// Transport plaintext padded to the next multiple of 16 (a keepalive stays empty).
constexpr std::size_t padded_size(std::size_t plain) {
  return (plain + message_padding_multiple - 1) / message_padding_multiple * message_padding_multiple;
}
// The size of the transport message sealing `plain` bytes: header, padded
// ciphertext, tag.
constexpr std::size_t message_data_size(std::size_t plain) {
  return sizeof(message_data) + padded_size(plain) + aead_tag_size;
}

// Writes a transport message's header at `out` (16 bytes): type 4, zero
// reserved bytes, the receiver's index and the counter (the nonce). The one
// writer of it: the workers' send stage and the control thread's keepalives
// and pings both call this.
inline void write_data_header(std::uint8_t* out, std::uint32_t receiver_index, std::uint64_t counter) noexcept {
  auto* h = reinterpret_cast<message_data*>(out);
  h->header.type = static_cast<std::uint8_t>(message_type::data);
  h->header.reserved[0] = h->header.reserved[1] = h->header.reserved[2] = 0;
  h->receiver_index.set(receiver_index);
  h->counter.set(counter);
}

// Where the MACs of a handshake message of `length` bytes start: MAC1
// covers everything before it, MAC2 everything before MAC2.
constexpr std::size_t mac1_offset(std::size_t length) { return length - sizeof(message_macs); }
constexpr std::size_t mac2_offset(std::size_t length) { return length - sizeof(message_macs) + cookie_size; }

// --- Parser -----------------------------------------------------------------

// What parse_message found. `type` is invalid unless the payload is exactly
// one well-formed message; the typed accessors return nullptr unless it is
// of their type. The pointers alias the caller's buffer.
struct parsed_message {
  message_type type = message_type::invalid;
  const std::uint8_t* data = nullptr;
  std::size_t length = 0;

  bool valid() const noexcept { return type != message_type::invalid; }
  const message_handshake_initiation* initiation() const noexcept {
    return type == message_type::handshake_initiation ? reinterpret_cast<const message_handshake_initiation*>(data) : nullptr;
  }
  const message_handshake_response* response() const noexcept {
    return type == message_type::handshake_response ? reinterpret_cast<const message_handshake_response*>(data) : nullptr;
  }
  const message_handshake_cookie* cookie_reply() const noexcept {
    return type == message_type::handshake_cookie ? reinterpret_cast<const message_handshake_cookie*>(data) : nullptr;
  }
  const message_data* transport() const noexcept {
    return type == message_type::data ? reinterpret_cast<const message_data*>(data) : nullptr;
  }
  // Transport only: the encrypted packet and its tag, after the header.
  const std::uint8_t* transport_payload() const noexcept { return data + sizeof(message_data); }
  std::size_t transport_payload_length() const noexcept { return length - sizeof(message_data); }
};

// Validates one UDP payload: a known type, zero reserved bytes, and the
// exact size of that type (transport data: at least a header and a tag).
// Reads at most `length` bytes; never throws.
inline parsed_message parse_message(const std::uint8_t* data, std::size_t length) noexcept {
  parsed_message out;
  if (data == nullptr || length < sizeof(message_header)) return out;
  if ((data[1] | data[2] | data[3]) != 0) return out;
  std::size_t expected = 0;
  switch (static_cast<message_type>(data[0])) {
    case message_type::handshake_initiation: expected = sizeof(message_handshake_initiation); break;
    case message_type::handshake_response: expected = sizeof(message_handshake_response); break;
    case message_type::handshake_cookie: expected = sizeof(message_handshake_cookie); break;
    case message_type::data:
      if (length < message_data_min_size) return out;
      expected = length;
      break;
    default: return out;
  }
  if (length != expected) return out;
  out.type = static_cast<message_type>(data[0]);
  out.data = data;
  out.length = length;
  return out;
}

}  // namespace lopower::wg
