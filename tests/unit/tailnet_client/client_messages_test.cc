// The coordination client's pure parts: the control URL, the register and
// map request bodies (checked member by member against tailcfg's names),
// the register response parser, and the identity file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "control/tailnet/client/control_connection.h"
#include "control/tailnet/client/control_messages.h"
#include "control/tailnet/client/identity.h"
#include "control/tailnet/controlbase/key_text.h"

namespace lopower::tailnet {
namespace {

TEST(ControlUrl, HostPortAndAuthority) {
  auto u = control_url::parse("http://198.18.40.2:8080");
  ASSERT_TRUE(u) << u.message();
  EXPECT_EQ(u->host, "198.18.40.2");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->authority, "198.18.40.2:8080");
  auto v6 = control_url::parse("http://[fd00:198:18::2]:80/");
  ASSERT_TRUE(v6) << v6.message();
  EXPECT_EQ(v6->host, "fd00:198:18::2");
  EXPECT_EQ(v6->authority, "[fd00:198:18::2]:80");
  auto named = control_url::parse("http://controlplane.example.com");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->port, 80);
  EXPECT_FALSE(named->tls);
}

TEST(ControlUrl, HttpsIsTlsOn443UnlessAPortIsGiven) {
  auto u = control_url::parse("https://controlplane.example.com/");
  ASSERT_TRUE(u) << u.message();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->authority, "controlplane.example.com:443");
  auto lab = control_url::parse("https://198.18.40.2:8443");
  ASSERT_TRUE(lab) << lab.message();
  EXPECT_TRUE(lab->tls);
  EXPECT_EQ(lab->port, 8443);
  EXPECT_EQ(lab->host, "198.18.40.2");
}

TEST(ControlUrl, RefusesWhatItCannotDial) {
  for (const char* bad : {"ftp://x", "x:80", "https://", "https://h:0", "http://", "http://h:0", "http://h:65536", "http://h:8a",
                          "http://h/path", "http://[fd00::1", "http://h\r\nX: y", "http://[::1]x"})
    EXPECT_FALSE(control_url::parse(bad)) << bad;
}

TEST(RegisterRequest, CarriesTheFieldsHeadscaleReads) {
  register_request r;
  r.node_key = public_from_private(generate_private_key());
  r.auth_key = "hskey-auth-xyz";
  r.ephemeral = true;
  r.hostinfo.hostname = "gw1";
  r.hostinfo.request_tags = {"tag:iot"};
  const auto j = nlohmann::json::parse(to_json(r));
  EXPECT_EQ(j["Version"], lopower_capability_version);
  EXPECT_EQ(j["NodeKey"], format_node_key(r.node_key));
  EXPECT_EQ(j["OldNodeKey"], format_node_key(public_key{}));
  EXPECT_EQ(j["Auth"]["AuthKey"], "hskey-auth-xyz");
  EXPECT_EQ(j["Ephemeral"], true);
  EXPECT_EQ(j["Hostinfo"]["Hostname"], "gw1");
  EXPECT_EQ(j["Hostinfo"]["OS"], "linux");
  EXPECT_EQ(j["Hostinfo"]["RequestTags"], nlohmann::json::array({"tag:iot"}));
  EXPECT_FALSE(j.contains("Followup"));
  EXPECT_FALSE(j.contains("Expiry"));
}

// Subnet routes ([inbound] advertise_routes) go in Hostinfo.RoutableIPs of
// the registration and of every map request; none, no member.
TEST(Hostinfo, RoutableIpsOnlyWhenAdvertised) {
  register_request r;
  EXPECT_FALSE(nlohmann::json::parse(to_json(r))["Hostinfo"].contains("RoutableIPs"));
  r.hostinfo.routable_ips = {"10.90.0.0/24", "fd00:90::/64"};
  EXPECT_EQ(nlohmann::json::parse(to_json(r))["Hostinfo"]["RoutableIPs"],
            nlohmann::json::array({"10.90.0.0/24", "fd00:90::/64"}));
  map_request m;
  m.omit_peers = true;
  m.stream = false;
  m.hostinfo = r.hostinfo;
  EXPECT_EQ(nlohmann::json::parse(to_json(m))["Hostinfo"]["RoutableIPs"].size(), 2u);
}

TEST(RegisterRequest, FollowupAndLogoutWithoutAuthKey) {
  register_request r;
  r.followup = "http://hs/register/abc";
  r.expiry = logout_expiry();
  const auto j = nlohmann::json::parse(to_json(r));
  EXPECT_FALSE(j.contains("Auth"));
  EXPECT_EQ(j["Followup"], "http://hs/register/abc");
  EXPECT_EQ(j["Expiry"], "1970-01-01T00:02:03Z");
}

TEST(MapRequest, StreamingAndEndpointUpdate) {
  map_request m;
  m.node_key = public_from_private(generate_private_key());
  m.disco_key = public_from_private(generate_private_key());
  m.endpoints = {*endpoint::parse("198.18.40.1:41641"), *endpoint::parse("[fd00:198:18:40::1]:41641")};
  auto j = nlohmann::json::parse(to_json(m));
  EXPECT_EQ(j["Stream"], true);
  EXPECT_EQ(j["KeepAlive"], true);
  EXPECT_EQ(j["Compress"], "zstd");
  EXPECT_EQ(j["DiscoKey"], format_disco_key(m.disco_key));
  EXPECT_EQ(j["Endpoints"], nlohmann::json::array({"198.18.40.1:41641", "[fd00:198:18:40::1]:41641"}));
  EXPECT_EQ(j["EndpointTypes"], nlohmann::json::array({1, 1}));
  EXPECT_FALSE(j.contains("OmitPeers"));
  m.stream = false;
  m.omit_peers = true;
  j = nlohmann::json::parse(to_json(m));
  EXPECT_EQ(j["Stream"], false);
  EXPECT_EQ(j["KeepAlive"], false);
  EXPECT_EQ(j["OmitPeers"], true);
}

TEST(RegisterResponse, AuthorizedOrLoginUrl) {
  // As headscale 0.29 answers (recorded by tests/interop/test_ts2021.py's probe).
  auto ok = parse_register_response(
      R"({"User":{"ID":1,"LoginName":"smoke","DisplayName":"smoke"},"Login":{"ID":1,"LoginName":"smoke"},)"
      R"("NodeKeyExpired":false,"MachineAuthorized":true,"AuthURL":""})");
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_TRUE(ok->machine_authorized);
  EXPECT_EQ(ok->login_name, "smoke");
  auto url = parse_register_response(R"({"MachineAuthorized":false,"AuthURL":"http://hs:8080/register/Xy"})");
  ASSERT_TRUE(url);
  EXPECT_FALSE(url->machine_authorized);
  EXPECT_EQ(url->auth_url, "http://hs:8080/register/Xy");
}

TEST(RegisterResponse, RefusesMalformed) {
  EXPECT_FALSE(parse_register_response("not json"));
  EXPECT_FALSE(parse_register_response("[1]"));
  EXPECT_FALSE(parse_register_response(R"({"MachineAuthorized":"yes"})"));
  EXPECT_FALSE(parse_register_response(std::string(70000, ' ') + "{}"));
  // Unknown members and nulls are fine.
  EXPECT_TRUE(parse_register_response(R"({"MachineAuthorized":null,"Future":[1,2]})"));
}

class IdentityFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lopower-identity-" + std::to_string(::getpid()) + "-" +
                                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  state_store open() {
    auto s = state_store::open(dir_.string());
    EXPECT_TRUE(s) << s.message();
    return std::move(*s);
  }
  std::filesystem::path dir_;
};

TEST_F(IdentityFile, CreatedOnceThenTheSame) {
  auto store = open();
  auto first = load_or_create_identity(store);
  ASSERT_TRUE(first) << first.message();
  struct stat st{};
  ASSERT_EQ(::stat((dir_ / identity_file_name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = load_or_create_identity(store);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->machine == first->machine);
  EXPECT_TRUE(again->node == first->node);
  EXPECT_FALSE(again->machine == again->node);
}

TEST_F(IdentityFile, RoundTripWithOldKeyAndLogout) {
  identity id{generate_private_key(), generate_private_key(), generate_private_key(), true,
              public_from_private(generate_private_key())};
  auto back = identity_from_json(identity_to_json(id));
  ASSERT_TRUE(back) << back.message();
  EXPECT_TRUE(back->machine == id.machine);
  ASSERT_TRUE(back->old_node);
  EXPECT_TRUE(*back->old_node == *id.old_node);
  EXPECT_TRUE(back->logged_out);
  ASSERT_TRUE(back->expire_node);
  EXPECT_TRUE(*back->expire_node == *id.expire_node);
}

TEST_F(IdentityFile, AFileWithoutTheExpiryFieldStillLoads) {
  identity id{generate_private_key(), generate_private_key(), std::nullopt, false, std::nullopt};
  auto text = identity_to_json(id);
  auto j = nlohmann::json::parse(text);
  j.erase("expire_node_key");
  auto back = identity_from_json(j.dump());
  ASSERT_TRUE(back) << back.message();
  EXPECT_FALSE(back->expire_node);
  j["expire_node_key"] = "privkey:00";
  auto bad = identity_from_json(j.dump());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.message().find("expire_node_key"), std::string::npos) << bad.message();
}

TEST_F(IdentityFile, CorruptFileIsAnErrorNotANewNode) {
  auto store = open();
  ASSERT_TRUE(store.write(identity_file_name, R"({"machine_key":"privkey:zz","node_key":1})"));
  auto id = load_or_create_identity(store);
  ASSERT_FALSE(id);
  EXPECT_NE(id.message().find(identity_file_name), std::string::npos) << id.message();
  EXPECT_NE(id.message().find("machine_key"), std::string::npos) << id.message();
  // The bad file is left for the operator, not replaced.
  auto text = store.read(identity_file_name);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("privkey:zz"), std::string::npos);
}

TEST(IdentityJson, RefusesZeroAndMissingKeys) {
  const std::string zero = "privkey:" + std::string(64, '0');
  EXPECT_FALSE(identity_from_json(R"({"machine_key":")" + zero + R"(","node_key":")" + zero + R"("})"));
  EXPECT_FALSE(identity_from_json("{}"));
  EXPECT_FALSE(identity_from_json("null"));
}

}  // namespace
}  // namespace lopower::tailnet
