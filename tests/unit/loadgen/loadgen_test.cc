#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "tools/loadgen/options.h"
#include "tools/loadgen/report.h"

namespace lopower::loadgen {
namespace {

std::optional<options> parse(std::vector<std::string> words) {
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  return parse_options(static_cast<int>(argv.size()), argv.data());
}

TEST(LoadgenOptions, ReadsTargetSizesAndRate) {
  auto o = parse({"--local-ip", "10.77.0.2", "--target", "100.64.0.5:7", "--sizes", "64,1280", "--rate", "1000",
                  "--devices", "8", "--flows", "3"});
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->target_lopower);
  EXPECT_EQ(o->target_port, 7);
  EXPECT_EQ(o->sizes, (std::vector<std::uint16_t>{64, 1280}));
  EXPECT_EQ(o->rate_pps, 1000u);
  EXPECT_EQ(o->devices, 8u);
  EXPECT_EQ(o->flows, 3u);
}

TEST(LoadgenOptions, RefusesWhatCannotWork) {
  EXPECT_FALSE(parse({"--devices", "4"}));                                   // no --local-ip
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--sizes", "63"}));         // no room for the probe
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--target", "lopower:x"}));
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--rate"}));                // value missing
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--first-udp-port", "65535", "--devices", "2"}));
}

TEST(LoadgenOptions, PcapFramesFitEachDevicesReplayWindow) {
  EXPECT_TRUE(parse({"--local-ip", "10.77.0.2", "--pcap-packets", "8064"}));
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--pcap-packets", "8065"}));
  EXPECT_TRUE(parse({"--local-ip", "10.77.0.2", "--pcap-packets", "16128", "--devices", "2"}));
}

TEST(LoadgenOptions, TailnetNodeAndItsTarget) {
  const std::string key_file = ::testing::TempDir() + "loadgen-authkey";
  std::ofstream(key_file) << "hskey-auth-123\n";
  auto o = parse({"--local-ip", "10.77.0.2", "--tailnet", "http://127.0.0.1:8080", "--auth-key-file", key_file,
                  "--target", "tailnet:9", "--tailnet-mode", "sink"});
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->target_tailnet);
  EXPECT_FALSE(o->target_lopower);
  EXPECT_EQ(o->target_port, 9);
  EXPECT_EQ(o->tailnet.auth_key, "hskey-auth-123");
  EXPECT_EQ(o->tailnet.ip_be, o->local_ip_be);  // the same outer address by default
  EXPECT_FALSE(o->tailnet.echo);
  auto d = parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file, "--target", "tailnet"});
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->tailnet.echo);
  EXPECT_EQ(d->target_port, 7);
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--target", "tailnet"}));                        // no --tailnet
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x"}));                      // no key
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", "/nonexistent"}));
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file,
                      "--tailnet-mode", "mirror"}));
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file,
                      "--tailnet-udp-port", "40001", "--devices", "4"}));  // a device's port
  auto own = parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file,
                    "--tailnet-udp-port", "40001", "--devices", "4", "--tailnet-port-id", "1", "--tailnet-ip", "10.78.0.2"});
  ASSERT_TRUE(own);  // on a port of its own, the devices' UDP ports are no concern
  EXPECT_EQ(own->tailnet.port_id, 1);
  auto same = parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file,
                     "--tailnet-port-id", "0"});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->tailnet.port_id, -1);  // the devices' port: shared
  EXPECT_FALSE(parse({"--local-ip", "10.77.0.2", "--tailnet", "http://x", "--auth-key-file", key_file,
                      "--target", "tailnet:"}));
}

TEST(LoadgenOptions, ImixIsSevenFourOne) {
  const std::vector<std::uint16_t> mix = imix_sizes();
  EXPECT_EQ(std::count(mix.begin(), mix.end(), 64), 7);
  EXPECT_EQ(std::count(mix.begin(), mix.end(), 576), 4);
  EXPECT_EQ(std::count(mix.begin(), mix.end(), 1280), 1);
}

TEST(LatencyHistogram, PercentilesWithinTheBucketPrecision) {
  latency_histogram h;
  for (std::uint64_t ns = 1; ns <= 100000; ++ns) h.record(ns);
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), 100000u);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 100000;
    EXPECT_LE(static_cast<double>(h.percentile(q)), exact + 1) << q;
    EXPECT_GE(static_cast<double>(h.percentile(q)), exact * 0.96) << q;  // a bucket is 1/32 of its power of two
  }
}

TEST(LatencyHistogram, EmptySmallAndHugeValues) {
  latency_histogram h;
  EXPECT_EQ(h.percentile(0.5), 0u);
  h.record(0);
  h.record(31);
  h.record(~std::uint64_t{0});
  EXPECT_EQ(h.percentile(0), 0u);
  EXPECT_EQ(h.max(), ~std::uint64_t{0});
  EXPECT_GT(h.percentile(1), std::uint64_t{1} << 63);
}

TEST(LatencyHistogram, MergeAddsCounts) {
  latency_histogram a, b;
  a.record(1000);
  b.record(2000);
  b.record(3000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 3000u);
}

TEST(RunReport, DeliveredAndLostAddUpToOffered) {
  run_report r(false);
  r.now().offered_packets = 100;
  r.now().offered_bytes = 6400;
  r.now().delivered_packets = 97;
  r.now().delivered_bytes = 6208;
  r.now().latency.record(5000);
  r.close_second(1.0, 1.0);
  const nlohmann::json j = r.final_json(1.0, {}, nlohmann::json::array(), receive_drops{});
  EXPECT_EQ(j["lost"], 3);
  EXPECT_EQ(j["offered"]["packets"], 100);
  EXPECT_EQ(j["delivered"]["bps"], 6208.0 * 8);
  ASSERT_EQ(j["samples"].size(), 1u);
  EXPECT_EQ(j["samples"][0]["offered_pps"], 100.0);
  for (const char* key : {"p50", "p90", "p99", "p99.9", "max", "samples"}) EXPECT_TRUE(j["latency_ns"].contains(key)) << key;
}

}  // namespace
}  // namespace lopower::loadgen
