#include "tools/lopower-ctl/top_view.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace lopower {
namespace {

using json = nlohmann::json;

// One port, one worker, `n` devices; counters scaled by `t` (seconds since
// the daemon started), so that two samples differ by known rates.
top_sample sample_at(std::uint64_t t, unsigned n_devices = 3) {
  top_sample s;
  s.status = json::parse(R"({
    "version": "0.1.0", "revision": "6853647abcde-dirty", "pid": 42,
    "tailnet": {"backend_state": "Running", "peers": [{"online": true}, {"online": false}]},
    "wireguard": {"devices": 3}, "packet_pool": {"size": 4095, "in_use": 37}
  })");
  s.status["uptime_seconds"] = t;
  // lan: 1000 packets/s and 125000 bytes/s (1 Mbit/s) in, 500 packets/s and 25000 bytes/s out.
  s.status["ports"] = json::array({{{"name", "lan"},
                                    {"rx_packets", 1000 * t},
                                    {"rx_bytes", 125000 * t},
                                    {"tx_packets", 500 * t},
                                    {"tx_bytes", 25000 * t},
                                    {"drops", {{"splice_no_flow", 10 * t}, {"wg_malformed", 2}, {"port_tx_full", t > 10 ? 3 : 0}}}}});
  // Worker 1: a quarter of its polls busy.
  s.status["lcores"] = json::array({{{"lcore", 0}, {"role", "control"}},
                                    {{"lcore", 1}, {"role", "worker"}, {"polls", 1000 * t}, {"busy_polls", 250 * t}}});
  s.devices = json::array();
  for (unsigned i = 0; i < n_devices; ++i) {
    // dev0 is idle, dev1 moves 2048 bytes/s in, dev2 (and later) 1024*i bytes/s out.
    const std::uint64_t rx = i == 1 ? 2048 * t : 0, tx = i >= 2 ? 1024 * i * t : 0;
    s.devices.push_back({{"name", "dev" + std::to_string(i)}, {"wireguard", {{"rx_bytes", rx}, {"tx_bytes", tx}}}});
  }
  return s;
}

void expect_fits(const std::vector<std::string>& lines, unsigned width, unsigned height) {
  EXPECT_LE(lines.size(), height);
  for (const std::string& l : lines) {
    EXPECT_LE(l.size(), width) << l;
    EXPECT_TRUE(std::all_of(l.begin(), l.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) << l;
  }
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

const std::string* line_with(const std::vector<std::string>& lines, const std::string& text) {
  for (const std::string& l : lines)
    if (l.find(text) != std::string::npos) return &l;
  return nullptr;
}

TEST(TopView, RatesFromTwoSamples) {
  const top_sample a = sample_at(10), b = sample_at(12);
  const auto lines = render_top(&a, b, 2.0, 80, 24);
  expect_fits(lines, 80, 24);
  const std::string all = joined(lines);
  EXPECT_NE(all.find("lopowerd 0.1.0 (6853647abcde-dirty)  up 00:00:12  rates over 2.0 s"), std::string::npos) << all;
  EXPECT_NE(all.find("tailnet Running  devices 3  peers 2 (1 online)  pool 37 of 4095"), std::string::npos) << all;
  const std::string* lan = line_with(lines, "lan ");
  ASSERT_NE(lan, nullptr) << all;
  EXPECT_NE(lan->find("1.00k"), std::string::npos) << *lan;        // rx packets/s
  EXPECT_NE(lan->find("1.00 Mbit/s"), std::string::npos) << *lan;  // rx bit/s
  EXPECT_NE(lan->find("500"), std::string::npos) << *lan;          // tx packets/s
  EXPECT_NE(lan->find("200 kbit/s"), std::string::npos) << *lan;   // tx bit/s
  const std::string* worker = line_with(lines, "[##");
  ASSERT_NE(worker, nullptr) << all;
  EXPECT_NE(worker->find("  1 [###.......]  25%"), std::string::npos) << *worker;
  // Under 10%, in tenths.
  top_sample c = b;
  c.status["lcores"][1]["polls"] = 1000 * 12 + 2000;
  c.status["lcores"][1]["busy_polls"] = 250 * 12 + 10;
  const auto quiet_lines = render_top(&b, c, 2.0, 80, 24);
  const std::string* quiet = line_with(quiet_lines, "[.");
  ASSERT_NE(quiet, nullptr);
  EXPECT_NE(quiet->find("  1 [..........] 0.5%"), std::string::npos) << *quiet;
}

TEST(TopView, BusiestDevicesFirst) {
  const top_sample a = sample_at(10), b = sample_at(12);
  const auto lines = render_top(&a, b, 2.0, 80, 24);
  auto row = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("DEVICE", 0) == 0; });
  ASSERT_NE(row, lines.end()) << joined(lines);
  // dev2 sends 2048 bytes/s, dev1 receives 2048 bytes/s (a tie, kept in order), dev0 is idle.
  ASSERT_LT(row + 3, lines.end());
  EXPECT_EQ(row[1].rfind("dev1", 0), 0u) << joined(lines);
  EXPECT_NE(row[1].find("2.00 KiB/s"), std::string::npos) << row[1];
  EXPECT_EQ(row[2].rfind("dev2", 0), 0u) << joined(lines);
  EXPECT_EQ(row[3].rfind("dev0", 0), 0u) << joined(lines);
  EXPECT_NE(row[3].find("0 B/s"), std::string::npos) << row[3];
}

TEST(TopView, OnlyRisingDropsWithTheirRate) {
  const top_sample a = sample_at(10), b = sample_at(12);
  const auto lines = render_top(&a, b, 2.0, 80, 24);
  const std::string all = joined(lines);
  const std::string* no_flow = line_with(lines, "splice_no_flow");
  ASSERT_NE(no_flow, nullptr) << all;
  EXPECT_NE(no_flow->find(" 10 "), std::string::npos) << *no_flow;  // 20 in 2 s
  EXPECT_NE(no_flow->find("120"), std::string::npos) << *no_flow;   // the total
  const std::string* tx_full = line_with(lines, "port_tx_full");
  ASSERT_NE(tx_full, nullptr) << all;
  EXPECT_NE(tx_full->find("1.5"), std::string::npos) << *tx_full;  // 0 -> 3 in 2 s
  EXPECT_EQ(all.find("wg_malformed"), std::string::npos) << all;  // did not rise
  // Nothing rose: said in one line.
  const auto quiet = render_top(&b, b, 2.0, 80, 24);
  EXPECT_NE(joined(quiet).find("DROPS rising: none"), std::string::npos) << joined(quiet);
}

TEST(TopView, FirstFrameHasNoRatesAndNoDivisionByZero) {
  const top_sample b = sample_at(12);
  for (const auto& lines : {render_top(nullptr, b, 1.0, 80, 24), render_top(&b, b, 0.0, 80, 24)}) {
    expect_fits(lines, 80, 24);
    const std::string all = joined(lines);
    EXPECT_EQ(all.find("nan"), std::string::npos) << all;
    EXPECT_EQ(all.find("inf"), std::string::npos) << all;
    EXPECT_NE(all.find("from the next frame"), std::string::npos) << all;
    const std::string* lan = line_with(lines, "lan ");
    ASSERT_NE(lan, nullptr) << all;
    EXPECT_NE(lan->find(" - "), std::string::npos) << *lan;
  }
  // Counters that went back (a restarted daemon) are no rate, not 2^64.
  const top_sample later = sample_at(1000);
  const auto lines = render_top(&later, b, 1.0, 80, 24);
  const std::string* lan = line_with(lines, "lan ");
  ASSERT_NE(lan, nullptr);
  EXPECT_NE(lan->find("0 bit/s"), std::string::npos) << *lan;
}

TEST(TopView, FitsWhateverTheDaemonHas) {
  // Many ports, workers, devices and rising drops: every section is cut to fit.
  top_sample a = sample_at(10, 40), b = sample_at(12, 40);
  for (top_sample* s : {&a, &b}) {
    json port = s->status["ports"][0];
    for (int i = 0; i < 6; ++i) {
      port["name"] = "port" + std::to_string(i);
      s->status["ports"].push_back(port);
    }
    for (int i = 0; i < 12; ++i) {
      json l = s->status["lcores"][1];
      l["lcore"] = i + 2;
      s->status["lcores"].push_back(l);
      s->status["ports"][0]["drops"]["reason_" + std::to_string(i)] = s == &a ? 0 : i + 1;
    }
  }
  for (auto [w, h] : {std::pair{80u, 24u}, std::pair{120u, 50u}, std::pair{40u, 10u}, std::pair{20u, 3u}}) {
    const auto lines = render_top(&a, b, 2.0, w, h);
    expect_fits(lines, w, h);
  }
  const auto lines = render_top(&a, b, 2.0, 80, 24);
  ASSERT_EQ(lines.size(), 24u) << joined(lines);
  // The busiest devices keep their rows; the rest is counted.
  const std::string* head = line_with(lines, "DEVICE (+");
  ASSERT_NE(head, nullptr) << joined(lines);
  EXPECT_GE(std::count_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("dev", 0) == 0; }), 5)
      << joined(lines);
  EXPECT_NE(joined(lines).find("dev39"), std::string::npos) << joined(lines);  // the busiest of them
}

TEST(TopView, ToleratesMissingAndMistypedFields) {
  top_sample empty;
  EXPECT_NO_THROW(render_top(nullptr, empty, 1.0, 80, 24));
  EXPECT_NO_THROW(render_top(&empty, empty, 1.0, 80, 24));
  top_sample odd;
  odd.status = json::parse(R"({"ports": [5, {"name": 3, "drops": [1]}], "lcores": {"x": 1}, "tailnet": []})");
  odd.devices = json::parse(R"([1, {"wireguard": 2}, {"name": "d", "wireguard": {"rx_bytes": -5}}])");
  EXPECT_NO_THROW(render_top(&odd, odd, 1.0, 80, 24));
  EXPECT_NO_THROW(render_top(&empty, odd, 1.0, 0, 0));
}

TEST(TopView, Rates) {
  EXPECT_EQ(si_rate(0), "0");
  EXPECT_EQ(si_rate(-1), "0");
  EXPECT_EQ(si_rate(1.5), "1.5");
  EXPECT_EQ(si_rate(999), "999");
  EXPECT_EQ(si_rate(1000), "1.00k");
  EXPECT_EQ(si_rate(12345), "12.3k");
  EXPECT_EQ(si_rate(999999), "1.00M");
  EXPECT_EQ(bit_rate(950), "950 bit/s");
  EXPECT_EQ(bit_rate(1e9), "1.00 Gbit/s");
}

}  // namespace
}  // namespace lopower
