// Known answers from an independent implementation (gen_vectors.py:
// noiseprotocol, checked against a second from-the-spec implementation on
// CPython's BLAKE2s, and `cryptography`'s ChaCha20-Poly1305): our initiator
// must produce exactly the vector's initiation, accept the vector's
// response, derive the vector's transport keys and handshake hash, and
// seal and open the vector's records, big-endian nonces and all.

#include <gtest/gtest.h>

#include "control/tailnet/controlbase/noise_ik.h"
#include "control/tailnet/controlbase/record_stream.h"
#include "tests/unit/controlbase/test_support.h"

namespace lopower::tailnet {
namespace {

using test::hex;
using test::key_from_hex;
using test::unhex;

class ts2021_vectors : public ::testing::TestWithParam<std::size_t> {
 protected:
  // at(): a vector missing from the file fails the test (operator[] would not).
  const nlohmann::json& v() const { return test::vectors().at("handshakes").at(GetParam()); }
  std::string s(const char* name) const { return v()[name].get<std::string>(); }
  std::uint16_t version() const { return v()["version"].get<std::uint16_t>(); }

  noise_ik_initiator start() const {
    auto st = noise_ik_initiator::start(key_from_hex<private_key>(s("machine_private")),
                                        key_from_hex<public_key>(s("control_public")), version(),
                                        key_from_hex<private_key>(s("client_ephemeral_private")));
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.message());
    return std::move(st).value();
  }
  transport_keys keys() const {
    auto st = start();
    auto k = st.finish(unhex(s("response")));
    EXPECT_TRUE(k.ok()) << (k.ok() ? "" : k.message());
    return std::move(k).value();
  }
  key32 key(const char* name) const { return key_from_hex<key32>(s(name)); }
};

TEST_P(ts2021_vectors, keys_and_prologue_match) {
  EXPECT_EQ(noise_prologue(version()), s("prologue"));
  EXPECT_EQ(public_from_private(key_from_hex<private_key>(s("machine_private"))).to_hex(), s("machine_public"));
  EXPECT_EQ(public_from_private(key_from_hex<private_key>(s("control_private"))).to_hex(), s("control_public"));
}

TEST_P(ts2021_vectors, initiator_produces_the_initiation) {
  const auto st = start();
  EXPECT_EQ(hex(st.initiation()), s("initiation"));
  // The header, spelled out.
  const auto& m = st.initiation();
  EXPECT_EQ(m[0] << 8 | m[1], version());
  EXPECT_EQ(m[2], msg_type_initiation);
  EXPECT_EQ(m[3], 0);
  EXPECT_EQ(m[4], 96);
  EXPECT_EQ(hex(std::span(m).subspan(5, 32)), s("client_ephemeral_public"));
}

TEST_P(ts2021_vectors, response_gives_the_transport_keys) {
  const auto response = unhex(s("response"));
  ASSERT_EQ(response.size(), response_size);
  const auto size = noise_ik_initiator::reply_size(std::span(response).first(3));
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, response_size);
  const auto k = keys();
  EXPECT_EQ(k.send.to_hex(), s("client_send_key"));
  EXPECT_EQ(k.receive.to_hex(), s("client_receive_key"));
  EXPECT_EQ(k.handshake_hash.to_hex(), s("handshake_hash"));
  EXPECT_EQ(k.peer.to_hex(), s("control_public"));
  EXPECT_EQ(k.version, version());
}

TEST_P(ts2021_vectors, handshake_finishes_once) {
  auto st = start();
  ASSERT_TRUE(st.finish(unhex(s("response"))).ok());
  const auto again = st.finish(unhex(s("response")));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("already"), std::string::npos);
}

TEST_P(ts2021_vectors, writer_seals_the_client_records) {
  const auto k = keys();
  // The consecutive records from nonce 0, through one writer.
  record_writer tx(k.send);
  ASSERT_EQ(v()["client_to_server"].size(), 5u) << "vectors.json: five client records per handshake";
  for (const auto& r : v()["client_to_server"]) {
    const auto nonce = r["nonce"].get<std::uint64_t>();
    const auto plain = unhex(r["plaintext"].get<std::string>());
    std::vector<std::uint8_t> out;
    if (nonce == tx.next_nonce()) {
      ASSERT_EQ(tx.seal_record(plain, out), record_error::none);
    } else {
      record_writer far(k.send, nonce);  // a counter far along: its high bytes go first
      ASSERT_EQ(far.seal_record(plain, out), record_error::none);
      EXPECT_EQ(far.next_nonce(), nonce + 1);
    }
    EXPECT_EQ(hex(out), r["record"].get<std::string>()) << "nonce " << nonce;
  }
}

TEST_P(ts2021_vectors, reader_opens_the_client_records_as_the_server_would) {
  const auto k = keys();
  ASSERT_EQ(v()["client_to_server"].size(), 5u);
  for (const auto& r : v()["client_to_server"]) {
    record_reader rx(k.send, r["nonce"].get<std::uint64_t>());
    std::vector<std::uint8_t> plain;
    ASSERT_EQ(rx.feed(unhex(r["record"].get<std::string>()), plain), record_error::none);
    EXPECT_EQ(hex(plain), r["plaintext"].get<std::string>());
  }
}

// The server's first records, as headscale sends them: the early payload in
// three records (magic, length, JSON), then HTTP/2, then an empty record.
TEST_P(ts2021_vectors, reader_opens_the_server_records_whole_and_byte_by_byte) {
  const auto k = keys();
  std::vector<std::uint8_t> wire, want;
  ASSERT_EQ(v()["server_to_client"].size(), 5u);
  for (const auto& r : v()["server_to_client"]) {
    const auto rec = unhex(r["record"].get<std::string>());
    const auto plain = unhex(r["plaintext"].get<std::string>());
    wire.insert(wire.end(), rec.begin(), rec.end());
    want.insert(want.end(), plain.begin(), plain.end());
  }
  {
    record_reader rx(k.receive);
    std::vector<std::uint8_t> plain;
    ASSERT_EQ(rx.feed(wire, plain), record_error::none);
    EXPECT_EQ(plain, want);
    EXPECT_EQ(rx.records(), v()["server_to_client"].size());
    EXPECT_EQ(rx.buffered(), 0u);
  }
  {
    record_reader rx(k.receive);
    early_payload_reader early;
    std::vector<std::uint8_t> plain, rest;
    for (const std::uint8_t b : wire) {
      ASSERT_EQ(rx.feed(std::span(&b, 1), plain), record_error::none);
      ASSERT_LE(rx.buffered(), max_record_size);
      ASSERT_TRUE(early.feed(plain, rest).ok());
      plain.clear();
    }
    EXPECT_EQ(rx.buffered(), 0u);
    ASSERT_TRUE(early.done());
    ASSERT_TRUE(early.payload().has_value());
    EXPECT_EQ(early.payload()->json, s("early_payload_json"));
    ASSERT_TRUE(early.payload()->node_key_challenge.has_value());
    EXPECT_EQ(early.payload()->node_key_challenge->to_hex(), s("node_key_challenge"));
    // What follows is HTTP/2: a SETTINGS frame (type 4) on stream 0.
    ASSERT_GE(rest.size(), 9u);
    EXPECT_EQ(rest[3], 0x04);
    EXPECT_EQ(hex(rest), v()["server_to_client"][3]["plaintext"].get<std::string>());
  }
}

TEST_P(ts2021_vectors, largest_record_both_ways) {
  const auto k = keys();
  const auto& r = v()["max_record"];
  const auto rec = unhex(r["record"].get<std::string>());
  const auto plain = unhex(r["plaintext"].get<std::string>());
  ASSERT_EQ(rec.size(), max_record_size);
  ASSERT_EQ(plain.size(), max_record_plaintext);
  record_reader rx(k.receive, r["nonce"].get<std::uint64_t>());
  std::vector<std::uint8_t> out;
  ASSERT_EQ(rx.feed(rec, out), record_error::none);
  EXPECT_EQ(out, plain);
  record_writer tx(k.receive, r["nonce"].get<std::uint64_t>());
  std::vector<std::uint8_t> sealed;
  ASSERT_EQ(tx.seal(plain, sealed), record_error::none);
  EXPECT_EQ(sealed, rec);
}

// The Noise spec's ChaChaPoly nonce is little-endian; a record sealed that
// way (by noiseprotocol itself) is not a ts2021 record.
TEST_P(ts2021_vectors, little_endian_nonce_record_is_refused) {
  const auto k = keys();
  const auto& r = v()["little_endian_record"];
  record_reader rx(k.send, r["nonce"].get<std::uint64_t>());
  std::vector<std::uint8_t> out;
  EXPECT_EQ(rx.feed(unhex(r["record"].get<std::string>()), out), record_error::decrypt_failed);
  EXPECT_TRUE(out.empty());
  record_writer tx(k.send, r["nonce"].get<std::uint64_t>());
  std::vector<std::uint8_t> ours;
  ASSERT_EQ(tx.seal(unhex(r["plaintext"].get<std::string>()), ours), record_error::none);
  EXPECT_NE(hex(ours), r["record"].get<std::string>());
}

INSTANTIATE_TEST_SUITE_P(all, ts2021_vectors, ::testing::Range<std::size_t>(0, 3));

TEST(ts2021_vector_file, has_the_cases) { EXPECT_EQ(test::vectors()["handshakes"].size(), 3u); }

}  // namespace
}  // namespace lopower::tailnet
