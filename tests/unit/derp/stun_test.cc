// STUN: the binding request byte for byte (its FINGERPRINT checked against
// zlib.crc32, computed independently in Python), and the response parser on
// the reply derper really sent, IPv6, the MAPPED-ADDRESS fallback, bytes
// past the header's length, and truncated or malformed input.
//
// The vectors were computed with:
//   python3 -c "import zlib; b=bytes.fromhex('000100142112a442'+'0102030405060708090a0b0c'
//               +'80220008')+b'tailnode'; print(hex(zlib.crc32(b)^0x5354554e))"   -> 0xb32c370f

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control/tailnet/stun/stun.h"
#include "tests/unit/test_hex.h"

namespace lopower::tailnet::stun {
namespace {

using bytes = std::vector<std::uint8_t>;
using lopower::test_hex::hex;
using lopower::test_hex::unhex;

constexpr transaction_id txid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
const std::string txid_hex = "0102030405060708090a0b0c";

TEST(Stun, BindingRequestBytes) {
  const auto request = binding_request(txid);
  EXPECT_EQ(hex(request),
            "0001" "0014" "2112a442" + txid_hex +   // header: length 20 counts both attributes
            "80220008" "7461696c6e6f6465"           // SOFTWARE "tailnode"
            "80280004" "b32c370f");                 // FINGERPRINT: zlib.crc32(first 32) ^ 0x5354554e
}

TEST(Stun, TransactionIdsAreRandom) { EXPECT_NE(new_transaction_id(), new_transaction_id()); }

TEST(Stun, DerperExampleResponse) {
  // DERP-EXIT.md section 3: 127.0.0.1:39554 as derper answered.
  const bytes response = unhex("0101000c2112a442" + txid_hex + "002000080001bb905e12a443");
  EXPECT_TRUE(is_binding_response(response));
  const auto r = parse_binding_response(response);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->txid, txid);
  EXPECT_EQ(r->address.to_string(), "127.0.0.1");
  EXPECT_EQ(r->port, 39554);
}

TEST(Stun, IPv6XorUsesTheTransactionId) {
  // [2001:db8::1]:41641, XORed with cookie ‖ txid (computed in Python).
  const bytes response = unhex("010100182112a442" + txid_hex + "00200014000283bb0113a9fa0102030405060708090a0b0d");
  const auto r = parse_binding_response(response);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address.family, ip_family::v6);
  EXPECT_EQ(r->address.to_string(), "2001:db8::1");
  EXPECT_EQ(r->port, 41641);
}

TEST(Stun, AlternateXorAttributeType) {
  const bytes response = unhex("0101000c2112a442" + txid_hex + "802000080001bb905e12a443");
  const auto r = parse_binding_response(response);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->port, 39554);
}

TEST(Stun, MappedAddressFallback) {
  // MAPPED-ADDRESS 192.0.2.7:3478, plain, with SOFTWARE (padded) before it.
  const bytes response = unhex("010100142112a442" + txid_hex + "80220003616263ff" "000100080001" "0d96c0000207");
  const auto r = parse_binding_response(response);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address.to_string(), "192.0.2.7");
  EXPECT_EQ(r->port, 3478);
}

TEST(Stun, XorWinsOverMappedInEitherOrder) {
  const std::string mapped = "000100080001" "0d96c0000207";
  const std::string xored = "002000080001bb905e12a443";
  for (const auto& attrs : {mapped + xored, xored + mapped}) {
    const bytes response = unhex("010100182112a442" + txid_hex + attrs);
    const auto r = parse_binding_response(response);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->address.to_string(), "127.0.0.1");
  }
}

TEST(Stun, V4MappedIPv6ComesOutAsIPv4) {
  // MAPPED-ADDRESS family 2 holding ::ffff:10.1.2.3, port 5.
  const bytes response = unhex("010100182112a442" + txid_hex + "00010014" "00020005" "00000000000000000000ffff0a010203");
  const auto r = parse_binding_response(response);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->address.family, ip_family::v4);
  EXPECT_EQ(r->address.to_string(), "10.1.2.3");
}

TEST(Stun, BytesPastTheHeaderLengthAreIgnored) {
  const bytes response = unhex("0101000c2112a442" + txid_hex + "002000080001bb905e12a443" "deadbeef00");
  EXPECT_TRUE(parse_binding_response(response).has_value());
}

TEST(Stun, TruncatedInputIsRefused) {
  const bytes whole = unhex("0101000c2112a442" + txid_hex + "002000080001bb905e12a443");
  for (std::size_t n = 0; n < whole.size(); ++n) {
    const bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(parse_binding_response(cut).has_value()) << n;
    EXPECT_FALSE(is_binding_response(cut)) << n;
  }
}

TEST(Stun, MalformedResponsesAreRefused) {
  const std::string head = "2112a442" + txid_hex;
  // A request, an error response, another cookie.
  EXPECT_FALSE(parse_binding_response(unhex("0001000c" + head + "002000080001bb905e12a443")));
  EXPECT_FALSE(parse_binding_response(unhex("0111000c" + head + "002000080001bb905e12a443")));
  EXPECT_FALSE(parse_binding_response(unhex("0101000c2112a443" + txid_hex + "002000080001bb905e12a443")));
  // An attribute longer than what is left.
  EXPECT_FALSE(parse_binding_response(unhex("0101000c" + head + "002000090001bb905e12a443")));
  // A family that is neither 1 nor 2.
  EXPECT_FALSE(parse_binding_response(unhex("0101000c" + head + "002000080003bb905e12a443")));
  // XOR-MAPPED-ADDRESS too short for its family.
  EXPECT_FALSE(parse_binding_response(unhex("0101000c" + head + "002000080002bb905e12a443")));
  // A header length that is not a multiple of 4 leaves a stub attribute.
  EXPECT_FALSE(parse_binding_response(unhex("0101000e" + head + "002000080001bb905e12a4430000")));
  // No address at all.
  EXPECT_FALSE(parse_binding_response(unhex("01010008" + head + "80220004" "61626364")));
  EXPECT_FALSE(parse_binding_response(unhex("01010000" + head)));
}

TEST(Stun, IsBindingResponseIsCheap) {
  EXPECT_TRUE(is_binding_response(unhex("01010000" "2112a442" + txid_hex)));
  // The length must fit in what arrived.
  EXPECT_FALSE(is_binding_response(unhex("01010004" "2112a442" + txid_hex)));
  // A request of ours is not a response.
  EXPECT_FALSE(is_binding_response(binding_request(txid)));
}

}  // namespace
}  // namespace lopower::tailnet::stun
