#include "control/enrollment/device_registry.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/unit/enrollment/temp_dir.h"

namespace lopower::enrollment {
namespace {

using nlohmann::json;
using testing::mode_of;
using testing::temp_dir;

ip_address addr(const char* text) { return ip_address::parse(text).value(); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

std::string fresh_public_key() { return public_from_private(generate_private_key()).to_base64(); }

class DeviceRegistry : public ::testing::Test {
 protected:
  registry_config config() {
    registry_config c;
    c.state_dir = tmp_ / "state";
    c.clock = [] { return std::int64_t{1735689600}; };
    c.warn = [this](const std::string& w) { warnings_.push_back(w); };
    return c;
  }
  device_registry open(registry_config c) {
    auto r = device_registry::open(std::move(c));
    EXPECT_TRUE(r.ok()) << r.message();
    return std::move(r).value();
  }
  device_registry open() { return open(config()); }
  std::string state_file() const { return tmp_ / "state/devices.json"; }

  // Checks that a failed operation changed nothing: neither the list nor the file.
  void expect_unchanged(const device_registry& reg, const std::vector<std::string>& names, const std::string& file_before) {
    std::vector<std::string> now;
    for (const auto& d : reg.list()) now.push_back(d.name);
    EXPECT_EQ(now, names);
    EXPECT_EQ(slurp(state_file()), file_before);
  }

  temp_dir tmp_;
  std::vector<std::string> warnings_;
};

TEST_F(DeviceRegistry, FirstStartWritesTheServerKeyPrivately) {
  auto reg = open();
  EXPECT_TRUE(reg.list().empty());
  EXPECT_EQ(public_from_private(reg.server_private_key()), reg.server_public_key());
  EXPECT_EQ(mode_of(tmp_ / "state"), 0700);
  EXPECT_EQ(mode_of(state_file()), 0600);
  const json doc = json::parse(slurp(state_file()));
  EXPECT_EQ(doc["version"], 1);
  EXPECT_EQ(doc["server_private_key"], reg.server_private_key().to_base64());
  EXPECT_TRUE(doc["devices"].is_array());
  EXPECT_TRUE(doc["devices"].empty());
}

TEST_F(DeviceRegistry, AddGeneratesAKeyPairAndTheNextAddresses) {
  auto reg = open();
  auto a = reg.add("esp32-kitchen", {});
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->name, "esp32-kitchen");
  ASSERT_TRUE(a->has_private_key());
  EXPECT_EQ(public_from_private(*a->device_private_key), a->public_key);
  // Clamped as WireGuard keys are.
  EXPECT_EQ((*a->device_private_key)[0] & 7, 0);
  EXPECT_EQ((*a->device_private_key)[31] & 0xc0, 0x40);
  EXPECT_EQ(a->ipv4, addr("10.90.0.2"));
  EXPECT_EQ(a->ipv6, addr("fd7a:115c:a1e0:9909::2"));
  EXPECT_EQ(a->keepalive, 25);
  EXPECT_EQ(a->created, 1735689600);
  EXPECT_EQ(a->timestamp_reset_generation, 0u);

  auto b = reg.add("cam", {});
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(b->ipv4, addr("10.90.0.3"));
  EXPECT_EQ(b->ipv6, addr("fd7a:115c:a1e0:9909::3"));
  EXPECT_NE(a->public_key, b->public_key);
  ASSERT_EQ(reg.list().size(), 2u);
  EXPECT_EQ(reg.list()[0].name, "esp32-kitchen");
  EXPECT_EQ(reg.list()[1].name, "cam");
  EXPECT_EQ(mode_of(state_file()), 0600);
}

TEST_F(DeviceRegistry, AGeneratedPrivateKeyIsHandedOutOnceAndNotKept) {
  auto reg = open();
  auto d = reg.add("once", {});
  ASSERT_TRUE(d.ok()) << d.message();
  ASSERT_TRUE(d->has_private_key()) << "add's result carries it, to be shown this once";
  EXPECT_FALSE(reg.find("once")->has_private_key());
  const std::string state = slurp(state_file());
  EXPECT_FALSE(json::parse(state)["devices"][0].contains("private_key"));
  EXPECT_EQ(state.find(d->device_private_key->to_base64()), std::string::npos);
  // Nor after a restart.
  auto again = open();
  EXPECT_FALSE(again.find("once")->has_private_key());
  EXPECT_EQ(again.find("once")->public_key, d->public_key);
}

TEST_F(DeviceRegistry, KeepPrivateKeyKeepsItOnDisk) {
  auto reg = open();
  add_options o;
  o.keep_private_key = true;
  auto d = reg.add("kept", o);
  ASSERT_TRUE(d.ok()) << d.message();
  ASSERT_TRUE(reg.find("kept")->has_private_key());
  EXPECT_EQ(*reg.find("kept")->device_private_key, *d->device_private_key);
  EXPECT_EQ(json::parse(slurp(state_file()))["devices"][0]["private_key"], d->device_private_key->to_base64());
}

TEST_F(DeviceRegistry, WithItsOwnPublicKeyLopowerNeverHoldsThePrivateKey) {
  auto reg = open();
  const std::string pub = fresh_public_key();
  add_options o;
  o.public_key = pub;
  auto d = reg.add("sensor", o);
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_FALSE(d->has_private_key());
  EXPECT_EQ(d->public_key.to_base64(), pub);
  const json doc = json::parse(slurp(state_file()));
  EXPECT_FALSE(doc["devices"][0].contains("private_key"));
  EXPECT_EQ(doc["devices"][0]["public_key"], pub);
}

TEST_F(DeviceRegistry, TheFileIsVersionedAndOrdered) {
  auto reg = open();
  ASSERT_TRUE(reg.add("a", {}).ok());
  const std::string text = slurp(state_file());
  EXPECT_LT(text.find("\"version\": 1"), text.find("\"server_private_key\""));
  EXPECT_LT(text.find("\"server_private_key\""), text.find("\"devices\""));
}

TEST_F(DeviceRegistry, SummaryJsonLeavesThePrivateKeyOut) {
  auto reg = open();
  add_options v6;
  v6.ipv6_only = true;
  const device d = std::move(reg.add("a", v6)).value();
  const json j = device_summary_json(d);
  EXPECT_EQ(j["name"], "a");
  EXPECT_EQ(j["public_key"], d.public_key.to_base64());
  EXPECT_EQ(j["lopower_has_private_key"], true);
  EXPECT_TRUE(j["ipv4"].is_null());
  EXPECT_EQ(j["ipv6"], "fd7a:115c:a1e0:9909::2");
  EXPECT_EQ(j["keepalive"], 25);
  EXPECT_EQ(j["created"], 1735689600);
  EXPECT_EQ(j["timestamp_reset_generation"], 0);
  EXPECT_EQ(j.dump().find(d.device_private_key->to_base64()), std::string::npos);
}

TEST_F(DeviceRegistry, FindListRemove) {
  auto reg = open();
  ASSERT_TRUE(reg.add("a", {}).ok());
  ASSERT_TRUE(reg.add("b", {}).ok());
  ASSERT_TRUE(reg.add("c", {}).ok());
  const device* b = reg.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->ipv4, addr("10.90.0.3"));
  const public_key b_key = b->public_key;
  ASSERT_NE(reg.find_by_public_key(b_key), nullptr);
  EXPECT_EQ(reg.find_by_public_key(b_key)->name, "b");
  EXPECT_EQ(reg.find("B"), nullptr);  // names are case-sensitive

  auto removed = reg.remove("b");
  ASSERT_TRUE(removed.ok()) << removed.message();
  EXPECT_EQ(removed->name, "b");
  EXPECT_EQ(removed->public_key, b_key);
  EXPECT_EQ(reg.find("b"), nullptr);
  EXPECT_EQ(reg.find_by_public_key(b_key), nullptr);
  ASSERT_EQ(reg.list().size(), 2u);
  EXPECT_FALSE(reg.addresses().in_use(addr("10.90.0.3")));

  auto gone = reg.remove("b");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.message(), "no device named \"b\"");

  // The freed addresses go to the next device.
  auto d = reg.add("d", {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ipv4, addr("10.90.0.3"));
  EXPECT_EQ(d->ipv6, addr("fd7a:115c:a1e0:9909::3"));
}

TEST_F(DeviceRegistry, DuplicateNameIsRefusedAndNothingChanges) {
  auto reg = open();
  ASSERT_TRUE(reg.add("esp", {}).ok());
  const std::string before = slurp(state_file());
  auto dup = reg.add("esp", {});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.message(), "device name \"esp\" is taken");
  expect_unchanged(reg, {"esp"}, before);
  EXPECT_EQ(*reg.addresses().next_free(ip_family::v4), addr("10.90.0.3"));
  // Another case is another name.
  EXPECT_TRUE(reg.add("ESP", {}).ok());
}

TEST_F(DeviceRegistry, DuplicatePublicKeyIsRefused) {
  auto reg = open();
  add_options o;
  o.public_key = fresh_public_key();
  ASSERT_TRUE(reg.add("one", o).ok());
  const std::string before = slurp(state_file());
  auto dup = reg.add("two", o);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.message(), "public key is already used by device \"one\"");
  expect_unchanged(reg, {"one"}, before);

  add_options own;
  own.public_key = reg.server_public_key().to_base64();
  EXPECT_FALSE(reg.add("three", own).ok());
}

TEST_F(DeviceRegistry, BadNamesAreRefused) {
  auto reg = open();
  const std::string before = slurp(state_file());
  for (const std::string& bad : std::vector<std::string>{"", "a b", "a/b", "caf\xc3\xa9", "x:y", std::string(33, 'a'), "tab\t", "semi;colon"}) {
    auto r = reg.add(bad, {});
    ASSERT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
    EXPECT_NE(r.message().find("name"), std::string::npos) << r.message();
  }
  EXPECT_EQ(reg.add("", {}).message(), "a device name must not be empty");
  expect_unchanged(reg, {}, before);
  for (const std::string& good : std::vector<std::string>{"A.b-c_9", std::string(32, 'z'), "-", "..", "0"})
    EXPECT_TRUE(reg.add(good, {}).ok()) << good;
}

TEST_F(DeviceRegistry, BadKeysAreRefused) {
  auto reg = open();
  const std::string before = slurp(state_file());
  const std::string good = fresh_public_key();
  const std::vector<std::string> bad = {
      "",
      good.substr(0, 43),
      good + "=",
      "!" + good.substr(1),                              // not base64
      good.substr(0, 42) + "==",                         // 31 bytes
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",    // all zeros
      good.substr(0, 43) + " ",                          // trailing space
  };
  for (const auto& k : bad) {
    add_options o;
    o.public_key = k;
    auto r = reg.add("dev", o);
    ASSERT_FALSE(r.ok()) << "accepted key \"" << k << "\"";
    EXPECT_EQ(r.message().rfind("public key ", 0), 0u) << r.message();
  }
  add_options short_key;
  short_key.public_key = "abc";
  EXPECT_EQ(reg.add("dev", short_key).message().rfind("public key is not 44 characters of base64", 0), 0u);
  expect_unchanged(reg, {}, before);
}

TEST_F(DeviceRegistry, Ipv4OnlyAndIpv6Only) {
  auto reg = open();
  add_options v4;
  v4.ipv4_only = true;
  auto a = reg.add("esp", v4);
  ASSERT_TRUE(a.ok()) << a.message();
  EXPECT_EQ(a->ipv4, addr("10.90.0.2"));
  EXPECT_FALSE(a->ipv6.has_value());

  add_options v6;
  v6.ipv6_only = true;
  auto b = reg.add("phone", v6);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_FALSE(b->ipv4.has_value());
  EXPECT_EQ(b->ipv6, addr("fd7a:115c:a1e0:9909::2"));

  const std::string before = slurp(state_file());
  add_options both;
  both.ipv4_only = both.ipv6_only = true;
  EXPECT_EQ(reg.add("x", both).message(), "--ipv4-only and --ipv6-only exclude each other");
  expect_unchanged(reg, {"esp", "phone"}, before);
}

TEST_F(DeviceRegistry, Ipv4Off) {
  auto c = config();
  c.ipv4_prefix.reset();
  auto reg = open(c);
  EXPECT_FALSE(reg.server_ipv4().has_value());
  auto d = reg.add("dev", {});
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_FALSE(d->ipv4.has_value());
  EXPECT_EQ(d->ipv6, addr("fd7a:115c:a1e0:9909::2"));
  add_options v4;
  v4.ipv4_only = true;
  auto r = reg.add("esp", v4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("IPv4 is off"), std::string::npos) << r.message();
}

TEST_F(DeviceRegistry, Keepalive) {
  auto c = config();
  c.default_keepalive = 15;
  auto reg = open(c);
  EXPECT_EQ(reg.add("default", {})->keepalive, 15);
  add_options o;
  o.keepalive = 0;
  EXPECT_EQ(reg.add("off", o)->keepalive, 0);
  o.keepalive = 65535;
  EXPECT_EQ(reg.add("max", o)->keepalive, 65535);
  const std::string before = slurp(state_file());
  o.keepalive = 65536;
  EXPECT_FALSE(reg.add("big", o).ok());
  o.keepalive = -1;
  EXPECT_FALSE(reg.add("neg", o).ok());
  expect_unchanged(reg, {"default", "off", "max"}, before);
}

TEST_F(DeviceRegistry, ExhaustedPrefixChangesNothing) {
  auto c = config();
  c.ipv4_prefix = *ip_prefix::parse("10.90.0.0/30");  // room for one device
  auto reg = open(c);
  ASSERT_TRUE(reg.add("first", {}).ok());
  const std::string before = slurp(state_file());
  auto r = reg.add("second", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), "no free IPv4 address left in 10.90.0.0/30");
  expect_unchanged(reg, {"first"}, before);
  EXPECT_EQ(reg.find("second"), nullptr);
  EXPECT_EQ(reg.addresses().used(ip_family::v6), 1u);  // the IPv6 address was not taken either
  // An IPv6-only device still fits.
  add_options v6;
  v6.ipv6_only = true;
  auto third = reg.add("third", v6);
  ASSERT_TRUE(third.ok()) << third.message();
  EXPECT_EQ(third->ipv6, addr("fd7a:115c:a1e0:9909::3"));
}

TEST_F(DeviceRegistry, AFailedWriteChangesNothingInMemory) {
  auto reg = open();
  ASSERT_TRUE(reg.add("a", {}).ok());
  const std::string before = slurp(state_file());
  write_test_hooks hooks;
  hooks.crash_after_bytes = 10;  // the write stops with an error
  reg.store_for_testing().set_test_hooks(hooks);
  EXPECT_FALSE(reg.add("b", {}).ok());
  EXPECT_FALSE(reg.remove("a").ok());
  EXPECT_FALSE(reg.reset_timestamp("a").ok());
  expect_unchanged(reg, {"a"}, before);
  EXPECT_EQ(reg.find("a")->timestamp_reset_generation, 0u);
  EXPECT_FALSE(reg.addresses().in_use(addr("10.90.0.3")));

  reg.store_for_testing().clear_test_hooks();
  auto b = reg.add("b", {});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->ipv4, addr("10.90.0.3"));
}

TEST_F(DeviceRegistry, ResetTimestampBumpsTheGeneration) {
  auto reg = open();
  ASSERT_TRUE(reg.add("clockless", {}).ok());
  auto r1 = reg.reset_timestamp("clockless");
  ASSERT_TRUE(r1.ok()) << r1.message();
  EXPECT_EQ(r1->timestamp_reset_generation, 1u);
  EXPECT_EQ(reg.reset_timestamp("clockless")->timestamp_reset_generation, 2u);
  EXPECT_EQ(reg.find("clockless")->timestamp_reset_generation, 2u);
  EXPECT_EQ(reg.reset_timestamp("nope").message(), "no device named \"nope\"");
  auto again = open();
  EXPECT_EQ(again.find("clockless")->timestamp_reset_generation, 2u);
}

TEST_F(DeviceRegistry, RestartKeepsEverything) {
  public_key server_public;
  std::string server_private;
  std::vector<device> before;
  {
    auto reg = open();
    server_public = reg.server_public_key();
    server_private = reg.server_private_key().to_base64();
    ASSERT_TRUE(reg.add("a", {}).ok());
    add_options own;
    own.public_key = fresh_public_key();
    own.keepalive = 0;
    ASSERT_TRUE(reg.add("b", own).ok());
    add_options v4;
    v4.ipv4_only = true;
    ASSERT_TRUE(reg.add("c", v4).ok());
    ASSERT_TRUE(reg.add("d", {}).ok());
    ASSERT_TRUE(reg.remove("a").ok());
    ASSERT_TRUE(reg.reset_timestamp("c").ok());
    before = reg.list();
  }
  auto reg = open();
  EXPECT_EQ(reg.server_public_key(), server_public);
  EXPECT_EQ(reg.server_private_key().to_base64(), server_private);
  ASSERT_EQ(reg.list().size(), before.size());
  for (std::size_t i = 0; i < before.size(); ++i) {
    const device& x = before[i];
    const device& y = reg.list()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.public_key, y.public_key);
    EXPECT_EQ(x.device_private_key, y.device_private_key);
    EXPECT_EQ(x.ipv4, y.ipv4);
    EXPECT_EQ(x.ipv6, y.ipv6);
    EXPECT_EQ(x.keepalive, y.keepalive);
    EXPECT_EQ(x.created, y.created);
    EXPECT_EQ(x.timestamp_reset_generation, y.timestamp_reset_generation);
  }
  EXPECT_FALSE(reg.find("b")->has_private_key());
  EXPECT_EQ(reg.find("c")->timestamp_reset_generation, 1u);
  // Addresses in use came back too: "a"'s freed .2 is next, .3 is "b"'s.
  auto e = reg.add("e", {});
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ipv4, addr("10.90.0.2"));
  EXPECT_EQ(e->ipv6, addr("fd7a:115c:a1e0:9909::2"));
  auto f = reg.add("f", {});
  EXPECT_EQ(f->ipv4, addr("10.90.0.6"));
  EXPECT_EQ(f->ipv6, addr("fd7a:115c:a1e0:9909::5"));  // "c" had no IPv6: "d" has ::4
  EXPECT_TRUE(warnings_.empty());
}

// A device's own egress mode is kept across restarts; one that follows
// the global mode has no "egress" in the file at all, as files written
// before egress existed, which load as such.
TEST_F(DeviceRegistry, EgressRoundTripsAndOlderFilesWithoutItLoad) {
  {
    auto reg = open();
    add_options exit_mode;
    exit_mode.egress = egress_mode::exit;
    ASSERT_TRUE(reg.add("own", exit_mode).ok());
    ASSERT_TRUE(reg.add("global", {}).ok());
    EXPECT_EQ(device_summary_json(*reg.find("own"))["own_egress"], "exit");
    EXPECT_TRUE(device_summary_json(*reg.find("global"))["own_egress"].is_null());
  }
  const json doc = json::parse(slurp(state_file()));
  EXPECT_EQ(doc["devices"][0].value("egress", ""), "exit");
  EXPECT_FALSE(doc["devices"][1].contains("egress")) << "a device on the global mode writes none";
  {
    auto reg = open();
    EXPECT_EQ(reg.find("own")->egress, egress_mode::exit);
    EXPECT_EQ(reg.find("global")->egress, std::nullopt);
    EXPECT_EQ(reg.find("global")->effective_egress(egress_mode::exit), egress_mode::exit);
    EXPECT_EQ(reg.find("own")->effective_egress(egress_mode::none), egress_mode::exit);
    // Changed live, persisted at once; back to the global mode.
    auto set = reg.set_egress("global", egress_mode::none);
    ASSERT_TRUE(set.ok()) << set.message();
    EXPECT_EQ(set->egress, egress_mode::none);
    ASSERT_TRUE(reg.set_egress("own", std::nullopt).ok());
    EXPECT_EQ(reg.set_egress("nope", egress_mode::exit).message(), "no device named \"nope\"");
  }
  auto reg = open();
  EXPECT_EQ(reg.find("global")->egress, egress_mode::none);
  EXPECT_EQ(reg.find("own")->egress, std::nullopt);
  EXPECT_FALSE(json::parse(slurp(state_file()))["devices"][0].contains("egress"));
  EXPECT_EQ(mode_of(state_file()), 0600);
}

TEST_F(DeviceRegistry, AFailedEgressWriteChangesNothing) {
  auto reg = open();
  ASSERT_TRUE(reg.add("a", {}).ok());
  const std::string before = slurp(state_file());
  write_test_hooks hooks;
  hooks.crash_after_bytes = 10;
  reg.store_for_testing().set_test_hooks(hooks);
  EXPECT_FALSE(reg.set_egress("a", egress_mode::exit).ok());
  expect_unchanged(reg, {"a"}, before);
  EXPECT_EQ(reg.find("a")->egress, std::nullopt);
}

TEST_F(DeviceRegistry, ALooseStateDirectoryIsTightenedWithAWarning) {
  ASSERT_EQ(::mkdir((tmp_ / "state").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((tmp_ / "state").c_str(), 0755), 0);
  auto reg = open();
  EXPECT_EQ(mode_of(tmp_ / "state"), 0700);
  ASSERT_EQ(warnings_.size(), 1u);
}

TEST_F(DeviceRegistry, CorruptedFilesAreErrorsAndAreNotReplaced) {
  add_options kept;  // private keys in the file too, to corrupt
  kept.keep_private_key = true;
  { auto reg = open(); ASSERT_TRUE(reg.add("a", kept).ok()); ASSERT_TRUE(reg.add("b", kept).ok()); }
  const std::string good = slurp(state_file());
  const json doc = json::parse(good);

  const auto expect_error = [&](const std::string& content, const std::string& needle) {
    spit(state_file(), content);
    auto r = device_registry::open(config());
    ASSERT_FALSE(r.ok()) << "loaded: " << content.substr(0, 200);
    EXPECT_NE(r.message().find(needle), std::string::npos) << r.message();
    EXPECT_NE(r.message().find(state_file()), std::string::npos) << r.message();
    EXPECT_EQ(slurp(state_file()), content);  // left as it was for the operator
  };

  expect_error("", "not valid JSON");
  expect_error(good.substr(0, good.size() / 2), "not valid JSON");
  expect_error("[1,2]", "corrupted");
  expect_error("{}", "\"version\"");
  {
    json j = doc;
    j["version"] = 2;
    expect_error(j.dump(), "version 2");
  }
  {
    json j = doc;
    j["version"] = "1";
    expect_error(j.dump(), "version \"1\"");
  }
  {
    json j = doc;
    j.erase("server_private_key");
    expect_error(j.dump(), "server_private_key");
  }
  {
    json j = doc;
    j["devices"] = json::object();
    expect_error(j.dump(), "\"devices\" is not an array");
  }
  {
    json j = doc;
    j["devices"][1]["name"] = "a";
    expect_error(j.dump(), "appears twice");
  }
  {
    json j = doc;
    j["devices"][1]["name"] = "bad name";
    expect_error(j.dump(), "corrupted");
  }
  {
    json j = doc;
    j["devices"][1]["public_key"] = "nope";
    expect_error(j.dump(), "public key");
  }
  {
    json j = doc;
    j["devices"][1]["public_key"] = j["devices"][0]["public_key"];
    expect_error(j.dump(), "corrupted");
  }
  {
    json j = doc;
    j["devices"][1]["private_key"] = j["devices"][0]["private_key"];
    expect_error(j.dump(), "does not belong");
  }
  {
    json j = doc;
    j["devices"][1]["ipv4"] = "10.90.0.2";
    expect_error(j.dump(), "as another device does");
  }
  {
    json j = doc;
    j["devices"][1]["ipv6"] = "10.90.0.9";
    expect_error(j.dump(), "not an IPv6 address");
  }
  {
    json j = doc;
    j["devices"][1]["keepalive"] = 70000;
    expect_error(j.dump(), "out of range");
  }
  {
    json j = doc;
    j["devices"][1].erase("created");
    expect_error(j.dump(), "\"created\"");
  }
  {
    json j = doc;
    j["devices"][1]["egress"] = "internet";
    expect_error(j.dump(), "\"egress\" is not one of");
  }
  {
    json j = doc;
    j["devices"][1]["egress"] = 1;
    expect_error(j.dump(), "\"egress\" is not a string");
  }
}

TEST_F(DeviceRegistry, DevicesOutsideAChangedPrefixAreKeptWithAWarning) {
  { auto reg = open(); ASSERT_TRUE(reg.add("a", {}).ok()); }
  auto c = config();
  c.ipv4_prefix = *ip_prefix::parse("10.91.0.0/24");
  auto reg = open(c);
  ASSERT_NE(reg.find("a"), nullptr);
  EXPECT_EQ(reg.find("a")->ipv4, addr("10.90.0.2"));
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("10.90.0.2"), std::string::npos) << warnings_[0];
  EXPECT_EQ(reg.add("b", {})->ipv4, addr("10.91.0.2"));
}

}  // namespace
}  // namespace lopower::enrollment
