#include "control/metrics/collector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string_view>
#include <set>
#include <sstream>

namespace lopower::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

metrics_input sample_input() {
  metrics_input in;
  in.now_unix = 1'000'000;
  in.build = {"0.1.0", "abc123", "DPDK 22.11.0", "ipsec-mb avx512"};
  in.status = nlohmann::json::parse(R"({
    "uptime_seconds": 42,
    "ports": [{"name": "lan", "rx_packets": 10, "rx_bytes": 1000, "tx_packets": 7, "tx_bytes": 700, "rx_missed": 1,
               "rx_errors": 0, "tx_errors": 2, "link": {"up": true},
               "classes": {"wg_transport": 9, "dns": 1}, "drops": {"wg_replay": 4, "port_tx_full": 0}}],
    "lcores": [{"lcore": 0, "role": "control"}, {"lcore": 1, "role": "worker", "polls": 100, "busy_polls": 25,
                                                                      "busy_cycles": 3000000000, "tsc_hz": 2000000000}],
    "packet_pool": {"size": 8191, "in_use": 512},
    "wireguard": {"handshakes": {"initiations_received": 3, "errors": {"mac1_invalid": 2}}},
    "tailnet": {"backend_state": "Running", "map_responses": 5, "connects": 3,
                "peers": [{"name": "ts1.tailnet.test", "node_key": "nodekey:ab", "allowed_ips": ["100.64.0.2/32"],
                           "path": "direct 192.0.2.1:41641", "latency_ms": 1.5, "last_handshake_seconds": 10,
                           "rx_bytes": 11, "tx_bytes": 22},
                          {"name": "far", "path": "derp(1) home"}],
                "derp": {"home": 1, "connections": {"1": {"connected": true}, "2": {"connected": false}}}},
    "dns": {"outcomes": {"answered_local": 6}, "forwards_refused_device_limit": 1},
    "control_socket": {"served": 8, "refused": 0, "evicted": 1}})");
  in.devices = nlohmann::json::parse(R"([
    {"name": "esp32", "public_key": "PUB=", "ipv4": "10.90.0.2", "ipv6": "fd7a::2",
     "wireguard": {"endpoint": "192.0.2.9:4500", "latest_handshake": 999990, "rx_bytes": 300, "tx_bytes": 400,
                   "rx_packets": 3, "tx_packets": 4}},
    {"name": "never", "public_key": "P2=", "ipv4": null, "ipv6": "fd7a::3", "wireguard": null}])");
  in.flows = {{{"tcp", "established"}, 2}, {{"udp", "active"}, 1}};
  in.flows_expired = 9;
  in.lcore_busy_ratio = {{1, 0.25}};
  return in;
}

TEST(Collector, RendersEachSourceUnderItsName) {
  const std::string t = render_prometheus(sample_input());
  for (const char* line : {
           "lopower_build_info{version=\"0.1.0\",revision=\"abc123\",dpdk=\"DPDK 22.11.0\",crypto_backend=\"ipsec-mb avx512\"} 1",
           "lopower_port_rx_bytes_total{port=\"lan\"} 1000",
           "lopower_port_errors_total{port=\"lan\",direction=\"tx\"} 2",
           "lopower_port_link_up{port=\"lan\"} 1",
           "lopower_packets_by_class_total{port=\"lan\",class=\"wg_transport\"} 9",
           "lopower_drops_total{port=\"lan\",reason=\"wg_replay\"} 4",
           "lopower_drops_total{port=\"lan\",reason=\"port_tx_full\"} 0",
           "lopower_lcore_busy_polls_total{lcore=\"1\",role=\"worker\"} 25",
           "lopower_lcore_busy_seconds_total{lcore=\"1\",role=\"worker\"} 1.5",
           "lopower_lcore_busy_ratio{lcore=\"1\"} 0.25",
           "lopower_packet_pool_in_use 512",
           "lopower_devices 2",
           "wireguard_received_bytes_total{interface=\"devices\",public_key=\"PUB=\",allowed_ips=\"10.90.0.2/32,fd7a::2/128\",friendly_name=\"esp32\"} 300",
           "wireguard_sent_bytes_total{interface=\"tailnet\",public_key=\"nodekey:ab\",allowed_ips=\"100.64.0.2/32\",friendly_name=\"ts1.tailnet.test\"} 22",
           "wireguard_latest_handshake_seconds{interface=\"tailnet\",public_key=\"nodekey:ab\",allowed_ips=\"100.64.0.2/32\",friendly_name=\"ts1.tailnet.test\"} 999990",
           "wireguard_latest_handshake_seconds{interface=\"devices\",public_key=\"P2=\",allowed_ips=\"fd7a::3/128\",friendly_name=\"never\"} 0",
           "lopower_device_handshake_age_seconds{device=\"esp32\"} 10",
           "lopower_device_endpoint_info{device=\"esp32\",endpoint=\"192.0.2.9:4500\"} 1",
           "lopower_handshakes_total{interface=\"devices\",result=\"mac1_invalid\"} 2",
           "lopower_tailnet_backend_state{state=\"Running\"} 1",
           "lopower_tailnet_peer_path{peer=\"ts1.tailnet.test\",path=\"direct\"} 1",
           "lopower_tailnet_peer_path{peer=\"far\",path=\"derp\"} 1",
           "lopower_tailnet_peer_latency_seconds{peer=\"ts1.tailnet.test\"} 0.0015",
           "lopower_tailnet_control_reconnects_total 2",
           "lopower_derp_home_region 1",
           "lopower_derp_connected{region=\"2\"} 0",
           "lopower_flows{protocol=\"tcp\",state=\"established\"} 2",
           "lopower_flows_expired_total 9",
           "lopower_dns_queries_total{outcome=\"refused_device_limit\"} 1",
           "lopower_control_socket_requests_total{result=\"evicted\"} 1"})
    EXPECT_THAT(t, HasSubstr(std::string(line) + "\n"));
  // A device that never shook hands has no age, and no endpoint.
  EXPECT_THAT(t, Not(HasSubstr("lopower_device_handshake_age_seconds{device=\"never\"}")));
  EXPECT_THAT(t, Not(HasSubstr("lopower_device_endpoint_info{device=\"never\"")));
}

// Metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':').
bool valid_name(std::string_view n, bool label) {
  if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && (label || c != ':')) return false;
  return true;
}

// `{name="value",...}` at the start of `s`: its length, or 0 when malformed.
std::size_t labels_length(std::string_view s) {
  std::size_t i = 1;
  while (i < s.size() && s[i] != '}') {
    const std::size_t eq = s.find("=\"", i);
    if (eq == std::string_view::npos || !valid_name(s.substr(i, eq - i), true)) return 0;
    i = eq + 2;
    while (i < s.size() && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    if (i >= s.size()) return 0;
    ++i;
    if (i < s.size() && s[i] == ',') ++i;
  }
  return i < s.size() ? i + 1 : 0;
}

// Every sample line is `name{labels} value` under a family declared once,
// directly above its samples (what the format requires of a scrape).
void expect_well_formed(const std::string& text) {
  std::set<std::string> families;
  std::string current;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(families.insert(current).second) << "family declared twice: " << current;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    const std::size_t name_end = line.find_first_of("{ ");
    ASSERT_NE(name_end, std::string::npos) << line;
    EXPECT_EQ(line.substr(0, name_end), current) << line;
    EXPECT_TRUE(valid_name(line.substr(0, name_end), false)) << line;
    std::size_t at = name_end;
    if (line[at] == '{') {
      const std::size_t n = labels_length(std::string_view(line).substr(at));
      ASSERT_NE(n, 0u) << line;
      at += n;
    }
    ASSERT_LT(at, line.size()) << line;
    ASSERT_EQ(line[at], ' ') << line;
    const std::string value = line.substr(at + 1);
    if (value == "NaN" || value == "+Inf" || value == "-Inf") continue;
    std::size_t used = 0;
    EXPECT_NO_THROW((void)std::stod(value, &used)) << line;
    EXPECT_EQ(used, value.size()) << line;
  }
}

TEST(Collector, OutputIsWellFormed) { expect_well_formed(render_prometheus(sample_input())); }

TEST(Collector, SurvivesMissingAndMistypedFields) {
  metrics_input in;
  for (const char* status : {"null", "{}", "[]", R"({"ports": 3, "lcores": {"a": 1}, "tailnet": [], "dns": "x"})",
                             R"({"ports": [{"name": 7, "drops": [1], "classes": null, "link": 1}],
                                 "tailnet": {"peers": [{"name": null, "last_handshake_seconds": "x"}], "derp": {"connections": []}}})"}) {
    in.status = nlohmann::json::parse(status);
    for (const char* devices : {"null", "[]", R"([{"name": 1, "wireguard": []}, 5])"}) {
      in.devices = nlohmann::json::parse(devices);
      std::string text;
      ASSERT_NO_THROW(text = render_prometheus(in)) << status << " / " << devices;
      expect_well_formed(text);
    }
  }
}

}  // namespace
}  // namespace lopower::metrics
