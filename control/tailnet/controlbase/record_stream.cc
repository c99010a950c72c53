#include "control/tailnet/controlbase/record_stream.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/controlbase/printable.h"
#include "control/wireguard/engine/primitives.h"
#include "lopower/byte_order.h"

namespace lopower::tailnet {
namespace {

namespace crypto = lopower::wg::crypto;

// The WireGuard primitives put the counter into the nonce little-endian;
// handing them the byte-swapped counter puts it there big-endian, as
// ts2021 wants: byte 4+i of the nonce is then bits 8*(7-i).. of `counter`.
std::uint64_t swap_bytes(std::uint64_t v) noexcept {
  std::uint8_t b[8];
  store_be64(b, v);
  return load_le64(b);
}

}  // namespace

const char* to_string(record_error e) noexcept { return name_in(record_error_names, e, "unknown"); }

std::array<std::uint8_t, 12> record_nonce(std::uint64_t counter) noexcept {
  std::array<std::uint8_t, 12> nonce{};
  store_be64(&nonce[4], counter);
  return nonce;
}

// --- writer ------------------------------------------------------------------

record_writer::record_writer(const key32& key, std::uint64_t next_nonce) noexcept : key_(key), nonce_(next_nonce) {
  crypto::init();
}

record_error record_writer::seal_record(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out) {
  if (plain.size() > max_record_plaintext) return record_error::too_large;
  if (nonce_ == exhausted_nonce) return record_error::nonce_exhausted;
  const std::size_t length = plain.size() + record_tag_size;
  const std::size_t at = out.size();
  out.resize(at + message_header_size + length);
  out[at] = msg_type_record;
  store_be16(&out[at + 1], static_cast<std::uint16_t>(length));
  crypto::aead_encrypt(out.data() + at + message_header_size, plain, {}, swap_bytes(nonce_), key_.data());
  ++nonce_;
  return record_error::none;
}

record_error record_writer::seal(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& out) {
  const std::uint64_t pieces = (plain.size() + max_record_plaintext - 1) / max_record_plaintext;
  if (pieces > exhausted_nonce - nonce_) {
    nonce_ = exhausted_nonce;  // as Go's Conn: a failed write ends the stream
    return record_error::nonce_exhausted;
  }
  out.reserve(out.size() + plain.size() + pieces * (message_header_size + record_tag_size));
  while (!plain.empty()) {
    const std::size_t n = std::min(plain.size(), max_record_plaintext);
    const record_error e = seal_record(plain.first(n), out);
    if (e != record_error::none) return e;  // not reached: checked above
    plain = plain.subspan(n);
  }
  return record_error::none;
}

// --- reader ------------------------------------------------------------------

record_reader::record_reader(const key32& key, std::uint64_t next_nonce) noexcept : key_(key), nonce_(next_nonce) {
  crypto::init();
}

record_error record_reader::fail(record_error e) noexcept {
  failed_ = e;
  key_.wipe();
  have_ = 0;
  need_ = 0;
  return e;
}

// The header alone decides whether the record can be good: refuse at once
// rather than buffer up to 64 KiB of a record that never will be.
record_error record_reader::check_header(const std::uint8_t* header) noexcept {
  if (header[0] != msg_type_record) return record_error::wrong_type;
  const std::size_t length = load_be16(header + 1);
  if (message_header_size + length > max_record_size) return record_error::too_large;
  if (length < record_tag_size) return record_error::too_short;
  return record_error::none;
}

record_error record_reader::open(std::span<const std::uint8_t> record, std::vector<std::uint8_t>& plain) {
  if (nonce_ == exhausted_nonce) return record_error::nonce_exhausted;
  const auto cipher = record.subspan(message_header_size);
  const std::size_t at = plain.size();
  plain.resize(at + cipher.size() - record_tag_size);
  const bool ok = crypto::aead_decrypt(plain.data() + at, cipher, {}, swap_bytes(nonce_), key_.data());
  ++nonce_;
  if (!ok) {
    plain.resize(at);
    return record_error::decrypt_failed;
  }
  ++records_;
  return record_error::none;
}

record_error record_reader::feed(std::span<const std::uint8_t> bytes, std::vector<std::uint8_t>& plain) {
  if (failed()) return record_error::stream_failed;
  while (!bytes.empty()) {
    if (have_ == 0 && bytes.size() >= message_header_size) {
      // Fast path: whole records straight from the caller's bytes.
      if (const record_error e = check_header(bytes.data()); e != record_error::none) return fail(e);
      const std::size_t size = message_header_size + load_be16(bytes.data() + 1);
      if (bytes.size() >= size) {
        if (const record_error e = open(bytes.first(size), plain); e != record_error::none) return fail(e);
        bytes = bytes.subspan(size);
        continue;
      }
    }
    // Slow path: gather one record in buf_.
    if (have_ < message_header_size) {
      const std::size_t n = std::min(message_header_size - have_, bytes.size());
      std::memcpy(buf_.data() + have_, bytes.data(), n);
      have_ += n;
      bytes = bytes.subspan(n);
      if (have_ < message_header_size) break;
      if (const record_error e = check_header(buf_.data()); e != record_error::none) return fail(e);
      need_ = message_header_size + load_be16(buf_.data() + 1);
    }
    const std::size_t n = std::min(need_ - have_, bytes.size());
    std::memcpy(buf_.data() + have_, bytes.data(), n);
    have_ += n;
    bytes = bytes.subspan(n);
    if (have_ == need_) {
      const record_error e = open(std::span<const std::uint8_t>(buf_.data(), need_), plain);
      have_ = 0;
      need_ = 0;
      if (e != record_error::none) return fail(e);
    }
  }
  return record_error::none;
}

// --- early payload -------------------------------------------------------------

control_result<early_payload> parse_early_payload_json(std::string_view json) {
  const auto doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return control_fail("ts2021: early payload is not JSON: " + detail::printable(json));
  early_payload out;
  out.json = std::string(json);
  if (doc.is_null()) return out;  // Go's client takes null as "no payload"
  if (!doc.is_object()) return control_fail("ts2021: early payload is not a JSON object: " + detail::printable(json));
  const auto it = doc.find("nodeKeyChallenge");
  if (it != doc.end() && !it->is_null()) {
    if (!it->is_string()) return control_fail("ts2021: early payload: nodeKeyChallenge is not a string");
    auto key = parse_key_text(key_text_kind::challenge, it->get_ref<const std::string&>());
    if (!key) return control_fail("ts2021: early payload: " + key.message());
    out.node_key_challenge = *key;
  }
  return out;
}

control_result<void> early_payload_reader::feed(std::span<const std::uint8_t> plain, std::vector<std::uint8_t>& rest) {
  if (state_ == state::failed) return control_fail(error_);
  const auto failing = [this](std::string message) -> control_result<void> {
    state_ = state::failed;
    error_ = std::move(message);
    body_.clear();
    body_.shrink_to_fit();
    return control_fail(error_);
  };
  if (state_ == state::header) {
    const std::size_t n = std::min(early_payload_header_size - header_have_, plain.size());
    if (n > 0) std::memcpy(header_.data() + header_have_, plain.data(), n);
    header_have_ += n;
    plain = plain.subspan(n);
    if (header_have_ < early_payload_header_size) return {};
    if (!std::equal(early_payload_magic.begin(), early_payload_magic.end(), header_.begin())) {
      // No early payload: these 9 bytes began the HTTP/2 stream.
      rest.insert(rest.end(), header_.begin(), header_.end());
      header_have_ = 0;
      state_ = state::passthrough;
    } else {
      const std::size_t length = load_be32(&header_[5]);
      header_have_ = 0;
      if (length > max_json_)
        return failing("ts2021: early payload of " + std::to_string(length) + " bytes (at most " +
                       std::to_string(max_json_) + ")");
      body_length_ = length;
      body_.reserve(length);
      state_ = state::body;
    }
  }
  if (state_ == state::body) {
    const std::size_t n = std::min(body_length_ - body_.size(), plain.size());
    if (n > 0) body_.append(reinterpret_cast<const char*>(plain.data()), n);
    plain = plain.subspan(n);
    if (body_.size() < body_length_) return {};
    auto parsed = parse_early_payload_json(body_);
    if (!parsed) return failing(parsed.message());
    payload_ = std::move(*parsed);
    body_.clear();
    body_.shrink_to_fit();
    state_ = state::passthrough;
  }
  rest.insert(rest.end(), plain.begin(), plain.end());
  return {};
}

}  // namespace lopower::tailnet
