// The handshake's refusals: bad control keys, bad replies, error messages.

#include <gtest/gtest.h>

#include "control/tailnet/controlbase/noise_ik.h"
#include "tests/unit/controlbase/test_support.h"

namespace lopower::tailnet {
namespace {

using test::key_from_hex;
using test::unhex;

const nlohmann::json& vec() { return test::vectors()["handshakes"][0]; }
std::string vs(const char* name) { return vec()[name].get<std::string>(); }

noise_ik_initiator start_vector() {
  auto st = noise_ik_initiator::start(key_from_hex<private_key>(vs("machine_private")),
                                      key_from_hex<public_key>(vs("control_public")), 119,
                                      key_from_hex<private_key>(vs("client_ephemeral_private")));
  EXPECT_TRUE(st.ok());
  return std::move(st).value();
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(noise_ik, prologue_is_prefix_and_decimal_version) {
  EXPECT_EQ(noise_prologue(0), "Tailscale Control Protocol v0");
  EXPECT_EQ(noise_prologue(119), "Tailscale Control Protocol v119");
  EXPECT_EQ(noise_prologue(65535), "Tailscale Control Protocol v65535");
}

TEST(noise_ik, fresh_ephemeral_each_start) {
  const private_key machine = generate_private_key();
  const public_key control = public_from_private(generate_private_key());
  auto a = noise_ik_initiator::start(machine, control, 119);
  auto b = noise_ik_initiator::start(machine, control, 119);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->initiation(), b->initiation());
  EXPECT_TRUE(std::equal(a->initiation().begin(), a->initiation().begin() + 5, b->initiation().begin()));
  EXPECT_EQ(a->version(), 119);
}

TEST(noise_ik, low_order_control_keys_are_refused) {
  const private_key machine = generate_private_key();
  for (const char* bad : {"0000000000000000000000000000000000000000000000000000000000000000",
                          "0100000000000000000000000000000000000000000000000000000000000000",
                          "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"}) {
    const auto st = noise_ik_initiator::start(machine, key_from_hex<public_key>(bad), 119);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_TRUE(contains(st.message(), "all-zero DH")) << st.message();
  }
}

TEST(noise_ik, reply_size_reads_the_header) {
  using bytes = std::vector<std::uint8_t>;
  EXPECT_EQ(*noise_ik_initiator::reply_size(bytes{0x02, 0x00, 0x30}), 51u);
  EXPECT_EQ(*noise_ik_initiator::reply_size(bytes{0x03, 0x00, 0x0a}), 13u);
  EXPECT_EQ(*noise_ik_initiator::reply_size(bytes{0x03, 0x00, 0x00}), 3u);
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x02, 0x00, 0x2f}).ok());  // 47
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x02, 0xff, 0xff}).ok());
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x03, 0x10, 0x00}).ok());  // 4096 bytes of error text
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x04, 0x00, 0x30}).ok());
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x01, 0x00, 0x60}).ok());
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{0x02, 0x00}).ok());
  EXPECT_FALSE(noise_ik_initiator::reply_size(bytes{}).ok());
}

// The reader control_connection takes the reply with: a byte at a time or
// all at once, exactly the reply is taken and the records after it are left.
TEST(noise_ik, reply_reader_takes_exactly_the_reply) {
  using bytes = std::vector<std::uint8_t>;
  bytes wire = {0x02, 0x00, 0x30};
  wire.resize(51, 0xaa);
  wire.insert(wire.end(), {0x04, 0x00, 0x01, 0x7f});  // a record after it
  noise_reply_reader all;
  EXPECT_EQ(*all.feed(wire), 51u);
  EXPECT_TRUE(all.whole());
  EXPECT_EQ(bytes(all.reply().begin(), all.reply().end()), bytes(wire.begin(), wire.begin() + 51));
  EXPECT_EQ(*all.feed(wire), 0u) << "nothing more once whole";

  noise_reply_reader piecewise;
  std::size_t taken = 0;
  for (std::size_t i = 0; i < wire.size(); ++i) taken += *piecewise.feed(std::span(wire).subspan(i, 1));
  EXPECT_EQ(taken, 51u);
  EXPECT_TRUE(piecewise.whole());

  noise_reply_reader refused;
  EXPECT_EQ(*refused.feed(bytes{0x04, 0x00}), 2u) << "a header is 3 bytes";
  EXPECT_FALSE(refused.whole());
  const auto third = refused.feed(bytes{0x30});
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(contains(third.message(), "unexpected handshake reply type 4")) << third.message();
}

TEST(noise_ik, server_error_message_is_quoted) {
  auto st = start_vector();
  std::vector<std::uint8_t> reply = {0x03, 0x00, 0x0b};
  for (const char c : std::string_view("bad\x01version")) reply.push_back(static_cast<std::uint8_t>(c));
  ASSERT_EQ(reply.size(), 14u);
  const auto k = st.finish(reply);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(contains(k.message(), "server error: \"bad\\x01version\"")) << k.message();
}

TEST(noise_ik, reply_of_the_wrong_size_is_refused) {
  auto response = unhex(vs("response"));
  response.push_back(0);
  auto st = start_vector();
  EXPECT_FALSE(st.finish(response).ok());
  const auto good = unhex(vs("response"));
  auto st2 = start_vector();
  EXPECT_FALSE(st2.finish(std::span(good).first(50)).ok());
}

TEST(noise_ik, tampered_response_does_not_authenticate) {
  const auto good = unhex(vs("response"));
  for (const std::size_t at : {std::size_t{3}, std::size_t{20}, std::size_t{35}, std::size_t{50}}) {
    auto bad = good;
    bad[at] ^= 0x01;
    auto st = start_vector();
    const auto k = st.finish(bad);
    ASSERT_FALSE(k.ok()) << at;
  }
  auto bad = good;
  bad[50] ^= 0x80;
  auto st = start_vector();
  EXPECT_TRUE(contains(st.finish(bad).message(), "does not authenticate"));
}

// The response of a server with another static key (or to another
// initiation) does not authenticate.
TEST(noise_ik, response_to_another_initiation_is_refused) {
  const auto& other = test::vectors()["handshakes"][1];
  auto st = start_vector();
  EXPECT_FALSE(st.finish(unhex(other["response"].get<std::string>())).ok());
}

TEST(noise_ik, zero_server_ephemeral_is_refused) {
  auto reply = unhex(vs("response"));
  std::fill(reply.begin() + 3, reply.begin() + 35, 0);
  auto st = start_vector();
  const auto k = st.finish(reply);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(contains(k.message(), "all-zero DH (ee)")) << k.message();
}

}  // namespace
}  // namespace lopower::tailnet
