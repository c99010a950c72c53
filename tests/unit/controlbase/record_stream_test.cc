// Record framing, the incremental reader's refusals and bounds, nonce
// limits, and the early payload.

#include <gtest/gtest.h>

#include <random>

#include "control/tailnet/controlbase/record_stream.h"
#include "tests/unit/controlbase/test_support.h"

namespace lopower::tailnet {
namespace {

using test::bytes_of;
using test::hex;

key32 fixed_key(std::uint8_t seed) {
  key32 k;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed + 7 * i);
  return k;
}

std::vector<std::uint8_t> pattern(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 31 + 5);
  return v;
}

std::vector<std::uint8_t> seal_all(const key32& key, std::initializer_list<std::vector<std::uint8_t>> pieces,
                                   std::uint64_t nonce = 0) {
  record_writer tx(key, nonce);
  std::vector<std::uint8_t> out;
  for (const auto& p : pieces) EXPECT_EQ(tx.seal_record(p, out), record_error::none);
  return out;
}

TEST(record_nonce, is_big_endian_after_four_zero_bytes) {
  EXPECT_EQ(hex(record_nonce(0)), "000000000000000000000000");
  EXPECT_EQ(hex(record_nonce(1)), "000000000000000000000001");
  EXPECT_EQ(hex(record_nonce(0x0102030405060708)), "000000000102030405060708");
}

TEST(record_writer, frames_one_record) {
  record_writer tx(fixed_key(1));
  std::vector<std::uint8_t> out;
  ASSERT_EQ(tx.seal_record(bytes_of("hello"), out), record_error::none);
  ASSERT_EQ(out.size(), 3u + 5u + 16u);
  EXPECT_EQ(out[0], 0x04);
  EXPECT_EQ(out[1] << 8 | out[2], 21);
  EXPECT_EQ(tx.next_nonce(), 1u);
}

TEST(record_writer, empty_write_sends_nothing_but_an_empty_record_is_legal) {
  record_writer tx(fixed_key(1));
  std::vector<std::uint8_t> out;
  ASSERT_EQ(tx.seal({}, out), record_error::none);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(tx.next_nonce(), 0u);
  ASSERT_EQ(tx.seal_record({}, out), record_error::none);
  EXPECT_EQ(out.size(), 19u);
  record_reader rx(fixed_key(1));
  std::vector<std::uint8_t> plain;
  ASSERT_EQ(rx.feed(out, plain), record_error::none);
  EXPECT_TRUE(plain.empty());
  EXPECT_EQ(rx.records(), 1u);
}

TEST(record_writer, splits_large_writes_at_4077_bytes) {
  const auto data = pattern(10000);
  record_writer tx(fixed_key(2));
  std::vector<std::uint8_t> out;
  ASSERT_EQ(tx.seal(data, out), record_error::none);
  EXPECT_EQ(tx.next_nonce(), 3u);
  // 4077 + 4077 + 1846 bytes of plaintext.
  std::size_t at = 0;
  for (const std::size_t plain : {std::size_t{4077}, std::size_t{4077}, std::size_t{1846}}) {
    ASSERT_LT(at + 3, out.size());
    EXPECT_EQ(out[at], 0x04);
    EXPECT_EQ(std::size_t(out[at + 1] << 8 | out[at + 2]), plain + 16);
    at += 3 + plain + 16;
  }
  EXPECT_EQ(at, out.size());
  record_reader rx(fixed_key(2));
  std::vector<std::uint8_t> back;
  ASSERT_EQ(rx.feed(out, back), record_error::none);
  EXPECT_EQ(back, data);
}

TEST(record_writer, refuses_an_oversized_single_record) {
  record_writer tx(fixed_key(1));
  std::vector<std::uint8_t> out;
  EXPECT_EQ(tx.seal_record(pattern(max_record_plaintext + 1), out), record_error::too_large);
  EXPECT_TRUE(out.empty());
  ASSERT_EQ(tx.seal_record(pattern(max_record_plaintext), out), record_error::none);
  EXPECT_EQ(out.size(), max_record_size);
}

TEST(record_writer, stops_before_the_invalid_nonce) {
  record_writer tx(fixed_key(3), exhausted_nonce - 1);
  std::vector<std::uint8_t> out;
  ASSERT_EQ(tx.seal(bytes_of("last"), out), record_error::none);
  EXPECT_EQ(tx.next_nonce(), exhausted_nonce);
  out.clear();
  EXPECT_EQ(tx.seal(bytes_of("one more"), out), record_error::nonce_exhausted);
  EXPECT_EQ(tx.seal_record({}, out), record_error::nonce_exhausted);
  EXPECT_TRUE(out.empty());
  // Two records needed, one nonce left: nothing is written.
  record_writer tx2(fixed_key(3), exhausted_nonce - 1);
  EXPECT_EQ(tx2.seal(pattern(max_record_plaintext + 1), out), record_error::nonce_exhausted);
  EXPECT_TRUE(out.empty());
}

TEST(record_reader, takes_bytes_in_any_chunking) {
  const key32 key = fixed_key(4);
  const auto wire = seal_all(key, {bytes_of("alpha"), {}, pattern(4077), pattern(100), bytes_of("omega")});
  std::vector<std::uint8_t> want;
  for (const auto& p : {bytes_of("alpha"), pattern(4077), pattern(100), bytes_of("omega")})
    want.insert(want.end(), p.begin(), p.end());

  // One byte at a time.
  {
    record_reader rx(key);
    std::vector<std::uint8_t> plain;
    for (const std::uint8_t b : wire) {
      ASSERT_EQ(rx.feed(std::span(&b, 1), plain), record_error::none);
      ASSERT_LT(rx.buffered(), max_record_size);
    }
    EXPECT_EQ(plain, want);
    EXPECT_EQ(rx.records(), 5u);
  }
  // Random chunks (fixed seed), several runs.
  std::mt19937 rng(12345);
  for (int run = 0; run < 50; ++run) {
    record_reader rx(key);
    std::vector<std::uint8_t> plain;
    std::size_t at = 0;
    while (at < wire.size()) {
      const std::size_t n = std::min<std::size_t>(wire.size() - at, 1 + rng() % 5000);
      ASSERT_EQ(rx.feed(std::span(wire).subspan(at, n), plain), record_error::none);
      at += n;
    }
    EXPECT_EQ(plain, want);
    EXPECT_EQ(rx.buffered(), 0u);
  }
}

TEST(record_reader, keeps_a_partial_record_bounded) {
  const key32 key = fixed_key(5);
  const auto wire = seal_all(key, {pattern(4077)});
  ASSERT_EQ(wire.size(), 4096u);
  record_reader rx(key);
  std::vector<std::uint8_t> plain;
  ASSERT_EQ(rx.feed(std::span(wire).first(4095), plain), record_error::none);
  EXPECT_EQ(rx.buffered(), 4095u);
  EXPECT_TRUE(plain.empty());
  ASSERT_EQ(rx.feed(std::span(wire).subspan(4095), plain), record_error::none);
  EXPECT_EQ(rx.buffered(), 0u);
  EXPECT_EQ(plain.size(), 4077u);
}

TEST(record_reader, refuses_other_message_types_at_the_header) {
  for (const std::uint8_t type : {0x00, 0x01, 0x02, 0x03, 0x05, 0xff}) {
    record_reader rx(fixed_key(6));
    std::vector<std::uint8_t> plain;
    const std::vector<std::uint8_t> header = {type, 0x00, 0x20};
    EXPECT_EQ(rx.feed(header, plain), record_error::wrong_type) << int(type);
    EXPECT_EQ(rx.feed(header, plain), record_error::stream_failed);
  }
}

TEST(record_reader, refuses_oversized_records_before_buffering_them) {
  record_reader rx(fixed_key(6));
  std::vector<std::uint8_t> plain;
  // 3 + 4094 = 4097 bytes: one too many.
  EXPECT_EQ(rx.feed(std::vector<std::uint8_t>{0x04, 0x0f, 0xfe}, plain), record_error::too_large);
  EXPECT_EQ(rx.buffered(), 0u);
  record_reader rx2(fixed_key(6));
  // Header split over two calls.
  EXPECT_EQ(rx2.feed(std::vector<std::uint8_t>{0x04, 0xff}, plain), record_error::none);
  EXPECT_EQ(rx2.feed(std::vector<std::uint8_t>{0xff}, plain), record_error::too_large);
  // 3 + 4093 is the largest: accepted as a header (then waits for the rest).
  record_reader rx3(fixed_key(6));
  EXPECT_EQ(rx3.feed(std::vector<std::uint8_t>{0x04, 0x0f, 0xfd}, plain), record_error::none);
  EXPECT_EQ(rx3.buffered(), 3u);
}

TEST(record_reader, refuses_records_shorter_than_a_tag) {
  for (const std::uint8_t length : {0, 1, 15}) {
    record_reader rx(fixed_key(6));
    std::vector<std::uint8_t> plain;
    std::vector<std::uint8_t> rec = {0x04, 0x00, length};
    rec.resize(3 + length, 0xaa);
    EXPECT_EQ(rx.feed(rec, plain), record_error::too_short) << int(length);
  }
}

TEST(record_reader, refuses_garbled_records_and_stays_failed) {
  const key32 key = fixed_key(7);
  auto wire = seal_all(key, {bytes_of("first"), bytes_of("second"), bytes_of("third")});
  wire[24 + 3 + 2] ^= 0x40;  // inside the second record's ciphertext
  record_reader rx(key);
  std::vector<std::uint8_t> plain;
  EXPECT_EQ(rx.feed(wire, plain), record_error::decrypt_failed);
  EXPECT_EQ(plain, bytes_of("first"));  // what came before the bad record stays
  EXPECT_TRUE(rx.failed());
  EXPECT_EQ(rx.failure(), record_error::decrypt_failed);
  EXPECT_EQ(rx.feed(seal_all(key, {bytes_of("x")}, 2), plain), record_error::stream_failed);
  EXPECT_EQ(plain, bytes_of("first"));
}

TEST(record_reader, refuses_reordered_and_replayed_records) {
  const key32 key = fixed_key(8);
  const auto r0 = seal_all(key, {bytes_of("zero")}, 0);
  const auto r1 = seal_all(key, {bytes_of("one")}, 1);
  {
    record_reader rx(key);
    std::vector<std::uint8_t> plain;
    EXPECT_EQ(rx.feed(r1, plain), record_error::decrypt_failed);
  }
  {
    record_reader rx(key);
    std::vector<std::uint8_t> plain;
    ASSERT_EQ(rx.feed(r0, plain), record_error::none);
    EXPECT_EQ(rx.feed(r0, plain), record_error::decrypt_failed);
  }
  {
    // The other direction's key does not open it either.
    record_reader rx(fixed_key(9));
    std::vector<std::uint8_t> plain;
    EXPECT_EQ(rx.feed(r0, plain), record_error::decrypt_failed);
  }
}

TEST(record_reader, stops_before_the_invalid_nonce) {
  const key32 key = fixed_key(10);
  record_reader rx(key, exhausted_nonce - 1);
  std::vector<std::uint8_t> plain;
  ASSERT_EQ(rx.feed(seal_all(key, {bytes_of("last")}, exhausted_nonce - 1), plain), record_error::none);
  EXPECT_EQ(plain, bytes_of("last"));
  EXPECT_EQ(rx.feed(seal_all(key, {bytes_of("never")}, 0), plain), record_error::nonce_exhausted);
}

TEST(record_transport, keys_each_direction) {
  transport_keys keys;
  keys.send = fixed_key(11);
  keys.receive = fixed_key(12);
  record_transport t(keys);
  std::vector<std::uint8_t> out, plain;
  ASSERT_EQ(t.tx.seal(bytes_of("up"), out), record_error::none);
  record_reader server_rx(keys.send);
  ASSERT_EQ(server_rx.feed(out, plain), record_error::none);
  EXPECT_EQ(plain, bytes_of("up"));
  EXPECT_EQ(t.rx.feed(seal_all(keys.receive, {bytes_of("down")}), plain), record_error::none);
  EXPECT_EQ(plain, bytes_of("updown"));
}

// --- early payload -------------------------------------------------------------

std::vector<std::uint8_t> early(std::string_view json) {
  std::vector<std::uint8_t> out = {0xff, 0xff, 0xff, 'T', 'S'};
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(json.size() >> shift));
  out.insert(out.end(), json.begin(), json.end());
  return out;
}

const std::string challenge_hex = "4e1ab2fa64b4b3bd4ec0b5ee22c97fb2e5e8ae5b47a8dfd4302b1b84ae4a2c1f";
const std::string headscale_like = R"({"nodeKeyChallenge":"chalpub:)" + challenge_hex + R"("})";

TEST(early_payload, parsed_then_the_rest_passes_through) {
  auto stream = early(headscale_like);
  const std::vector<std::uint8_t> settings = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  stream.insert(stream.end(), settings.begin(), settings.end());
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{9}, stream.size()}) {
    early_payload_reader r;
    std::vector<std::uint8_t> rest;
    for (std::size_t at = 0; at < stream.size(); at += chunk) {
      const auto piece = std::span(stream).subspan(at, std::min(chunk, stream.size() - at));
      ASSERT_TRUE(r.feed(piece, rest).ok()) << chunk;
    }
    ASSERT_TRUE(r.done());
    ASSERT_TRUE(r.payload().has_value());
    EXPECT_EQ(r.payload()->json, headscale_like);
    ASSERT_TRUE(r.payload()->node_key_challenge.has_value());
    EXPECT_EQ(r.payload()->node_key_challenge->to_hex(), challenge_hex);
    EXPECT_EQ(rest, settings) << chunk;
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(early_payload, absent_the_first_nine_bytes_are_http2) {
  const std::vector<std::uint8_t> stream = {0, 0, 0x18, 4, 0, 0, 0, 0, 0, 0, 5, 0, 0x10, 0, 0};
  early_payload_reader r;
  std::vector<std::uint8_t> rest;
  ASSERT_TRUE(r.feed(std::span(stream).first(8), rest).ok());
  EXPECT_FALSE(r.done());
  EXPECT_TRUE(rest.empty());
  ASSERT_TRUE(r.feed(std::span(stream).subspan(8), rest).ok());
  EXPECT_TRUE(r.done());
  EXPECT_FALSE(r.payload().has_value());
  EXPECT_EQ(rest, stream);
  // Almost the magic is not the magic.
  early_payload_reader r2;
  std::vector<std::uint8_t> near = {0xff, 0xff, 0xff, 'T', 'T', 0, 0, 0, 0};
  std::vector<std::uint8_t> rest2;
  ASSERT_TRUE(r2.feed(near, rest2).ok());
  EXPECT_TRUE(r2.done());
  EXPECT_EQ(rest2, near);
}

TEST(early_payload, refuses_a_length_beyond_the_limit) {
  std::vector<std::uint8_t> header = {0xff, 0xff, 0xff, 'T', 'S', 0x00, 0xa0, 0x00, 0x00};  // 10 MiB
  early_payload_reader r;
  std::vector<std::uint8_t> rest;
  const auto e = r.feed(header, rest);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("10485760"), std::string::npos) << e.message();
  EXPECT_TRUE(r.failed());
  EXPECT_FALSE(r.feed(header, rest).ok());
  EXPECT_EQ(r.buffered(), 0u);
  // A smaller limit applies too.
  early_payload_reader small(16);
  EXPECT_FALSE(small.feed(early(headscale_like), rest).ok());
}

TEST(early_payload, refuses_bad_json) {
  for (const std::string_view json : {std::string_view(""), std::string_view("{"), std::string_view("[]"),
                                      std::string_view("42"), std::string_view(R"({"nodeKeyChallenge":5})"),
                                      std::string_view(R"({"nodeKeyChallenge":""})"),
                                      std::string_view(R"({"nodeKeyChallenge":"nodekey:00"})"),
                                      std::string_view(R"({} trailing)")}) {
    early_payload_reader r;
    std::vector<std::uint8_t> rest;
    EXPECT_FALSE(r.feed(early(json), rest).ok()) << json;
    EXPECT_TRUE(rest.empty());
  }
}

TEST(early_payload, accepts_what_go_accepts) {
  for (const std::string_view json : {std::string_view("null"), std::string_view("{}"),
                                      std::string_view(R"({"nodeKeyChallenge":null,"future":[1,2]})")}) {
    const auto p = parse_early_payload_json(json);
    ASSERT_TRUE(p.ok()) << json << ": " << p.message();
    EXPECT_FALSE(p->node_key_challenge.has_value());
  }
}

}  // namespace
}  // namespace lopower::tailnet
