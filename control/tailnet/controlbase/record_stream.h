#pragma once
// The ts2021 transport after the handshake (tailscale control/controlbase
// conn.go): a byte stream cut into records
//
//   [0x04][u16 BE length][ciphertext = ChaCha20-Poly1305(plaintext) + 16-byte tag]
//
// at most 4096 bytes each on the wire (so at most 4077 bytes of plaintext),
// no associated data, and a nonce of 4 zero bytes and the record counter
// BIG-endian (the Noise spec and WireGuard put it little-endian). Each
// direction counts from 0 under its own key; counter 2^64-1 is never used.
// Empty records are legal.
//
// Then, first in the server's plaintext, an optional early payload
// (control/ts2021/conn.go):
//
//   ff ff ff 'T' 'S'  [u32 BE length]  JSON of tailcfg.EarlyNoise
//
// which headscale always sends; without its magic, the same 9 bytes are
// the header of the server's first HTTP/2 frame.
//
// Pure: the caller moves bytes between these and the socket.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lopower/enum_list.h"
#include "control/tailnet/controlbase/control_result.h"
#include "control/tailnet/controlbase/noise_ik.h"
#include "lopower/keys.h"

namespace lopower::tailnet {

inline constexpr std::size_t max_record_size = 4096;  // header included
inline constexpr std::size_t record_tag_size = 16;
inline constexpr std::size_t max_record_ciphertext = max_record_size - message_header_size;    // 4093
inline constexpr std::size_t max_record_plaintext = max_record_ciphertext - record_tag_size;   // 4077
// The one counter value never used: a cipher that reaches it is exhausted.
inline constexpr std::uint64_t exhausted_nonce = ~std::uint64_t{0};

// Why a record was refused. After any of these the stream is out of step
// with the peer and is never read again: close the connection.
// X(identifier): the enum, the names and the count come from this list.
#define LOPOWER_RECORD_ERRORS(X)                                                              \
  X(none)                                                                                     \
  X(wrong_type)      /* a message type other than 0x04 */                                     \
  X(too_large)       /* header + length beyond 4096 bytes */                                  \
  X(too_short)       /* shorter than the 16-byte tag */                                       \
  X(decrypt_failed)  /* the tag does not authenticate (corrupt, replayed or reordered) */      \
  X(nonce_exhausted) /* 2^64-1 records in this direction */                                   \
  X(stream_failed)   /* an earlier record failed */

enum class record_error : std::uint8_t { LOPOWER_RECORD_ERRORS(LOPOWER_ENUM_ENUMERATOR) };
inline constexpr std::size_t record_error_count = LOPOWER_ENUM_COUNT(LOPOWER_RECORD_ERRORS);
inline constexpr std::array<const char*, record_error_count> record_error_names{
    LOPOWER_RECORD_ERRORS(LOPOWER_ENUM_NAME)};
const char* to_string(record_error e) noexcept;

// The 12-byte ChaCha20-Poly1305 nonce of record `counter`:
// 4 zero bytes, then the counter big-endian.
std::array<std::uint8_t, 12> record_nonce(std::uint64_t counter) noexcept;

// Seals outgoing bytes into records.
class record_writer {
 public:
  // `next_nonce` other than 0: for tests that need a counter far along.
  explicit record_writer(const key32& key, std::uint64_t next_nonce = 0) noexcept;

  // Appends the records carrying `plain` to `out`, cut into pieces of at
  // most max_record_plaintext bytes; nothing for empty `plain` (as Go's
  // Conn.Write). When the counter cannot cover every piece, appends nothing
  // and fails (nonce_exhausted) from then on.
  record_error seal(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out);
  // Exactly one record (empty `plain` allowed), at most max_record_plaintext.
  record_error seal_record(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out);

  std::uint64_t next_nonce() const noexcept { return nonce_; }

 private:
  key32 key_;
  std::uint64_t nonce_;
};

// Opens incoming records from bytes as they come off the socket, in chunks
// of any size. Holds at most one incomplete record (max_record_size bytes).
class record_reader {
 public:
  explicit record_reader(const key32& key, std::uint64_t next_nonce = 0) noexcept;

  // Appends to `plain` the plaintext of every whole record in `bytes` (and
  // before it, the record completed by it); keeps a trailing part record
  // for the next call. On the first bad record, returns why: the plaintext
  // of the records before it stays in `plain`, the rest of `bytes` is
  // dropped, and every later call fails with stream_failed.
  record_error feed(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>& plain);

  std::size_t buffered() const noexcept { return have_; }  // bytes of an incomplete record
  std::uint64_t next_nonce() const noexcept { return nonce_; }
  std::uint64_t records() const noexcept { return records_; }  // records opened
  bool failed() const noexcept { return failed_ != record_error::none; }
  record_error failure() const noexcept { return failed_; }

 private:
  record_error fail(record_error e) noexcept;
  record_error check_header(const std::uint8_t* header) noexcept;
  record_error open(std::span<const std::uint8_t> record, std::vector<std::uint8_t>& plain);

  key32 key_;
  std::uint64_t nonce_;
  std::uint64_t records_ = 0;
  std::array<std::uint8_t, max_record_size> buf_{};
  std::size_t have_ = 0;  // bytes in buf_
  std::size_t need_ = 0;  // size of the record in buf_, once its header is in
  record_error failed_ = record_error::none;
};

// Both directions of a client connection, keyed by the handshake.
struct record_transport {
  explicit record_transport(const transport_keys& keys) : tx(keys.send), rx(keys.receive) {}
  record_writer tx;
  record_reader rx;
};

// --- the early payload -----------------------------------------------------

inline constexpr std::array<std::uint8_t, 5> early_payload_magic = {0xff, 0xff, 0xff, 'T', 'S'};
inline constexpr std::size_t early_payload_header_size = 9;  // magic + u32 BE length; also an HTTP/2 frame header
// Tailscale's client takes up to 10 MiB; the payload is one key (about 90
// bytes). 64 KiB leaves room for fields to come and bounds what we hold.
inline constexpr std::size_t default_max_early_payload = 64 * 1024;

struct early_payload {
  std::string json;                             // as received
  std::optional<public_key> node_key_challenge; // "nodeKeyChallenge" ("chalpub:..."), when given
};

// The JSON of tailcfg.EarlyNoise: an object (other members ignored) or
// null; nodeKeyChallenge, when present and not null, a valid "chalpub:" key.
control_result<early_payload> parse_early_payload_json(std::string_view json);

// Takes the server's plaintext in order and separates the early payload
// from the HTTP/2 stream after it.
class early_payload_reader {
 public:
  explicit early_payload_reader(std::size_t max_json = default_max_early_payload) : max_json_(max_json) {}

  // Everything in `plain` that is not the early payload goes to `rest`
  // (when the server sent none: the whole stream, the first 9 bytes
  // included once they are in). Fails on a length beyond max_json or JSON
  // that does not parse; fails again on every later call.
  control_result<void> feed(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& rest);

  // Decided: either a payload was read, or the stream had none.
  bool done() const noexcept { return state_ == state::passthrough; }
  bool failed() const noexcept { return state_ == state::failed; }
  // The payload, once done(); nullopt when the server sent none.
  const std::optional<early_payload>& payload() const noexcept { return payload_; }
  std::size_t buffered() const noexcept { return header_have_ + body_.size(); }

 private:
  enum class state : std::uint8_t { header, body, passthrough, failed };

  std::size_t max_json_;
  state state_ = state::header;
  std::array<std::uint8_t, early_payload_header_size> header_{};
  std::size_t header_have_ = 0;
  std::size_t body_length_ = 0;
  std::string body_;
  std::optional<early_payload> payload_;
  std::string error_;
};

}  // namespace lopower::tailnet
