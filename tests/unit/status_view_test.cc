#include "tools/lopower-ctl/status_view.h"

#include <gtest/gtest.h>

namespace lopower {
namespace {

nlohmann::json sample_status() {
  return nlohmann::json::parse(R"({
    "version": "0.1.0", "revision": "6853647abcde-dirty", "dpdk": "DPDK 22.11.11", "pid": 42, "uptime_seconds": 3725,
    "ports": [{"name": "lan", "role": "both", "mac": "02:00:00:00:00:01", "device": "net_tap0", "driver": "net_tap",
               "link": {"up": true}, "addresses": ["198.18.0.1/24"], "exception_path": {"tap": "lp-lan"},
               "rx_packets": 17, "rx_bytes": 1338, "tx_packets": 25, "tx_bytes": 2360, "to_kernel": 17, "from_kernel": 25,
               "drops": {"malformed_udp": 3, "wg_malformed": 0}}],
    "lcores": [{"lcore": 0, "role": "control"}, {"lcore": 1, "role": "worker", "queue": 0, "rx_packets": 17,
                "polls": 100, "busy_polls": 9, "sleeps": 50,
                "busy_cycles": 500000000, "tsc_hz": 2000000000}],
    "packet_pool": {"size": 4095, "in_use": 37},
    "neighbours": [{"port": "lan", "ip": "198.18.0.2", "mac": "02:00:00:00:00:02", "age_seconds": 1}],
    "wireguard": {"listen_port": 51820, "public_key": "S/QUrZThWUf8fdFllltpf17Ze7Pe2E8hbjF6ohCbCFc=",
                  "crypto_backend": "ipsec-mb", "devices": 2,
                  "handshakes": {"handshakes_completed": 5, "cookie_replies_sent": 7, "invalid_mac1": 1,
                                 "handshake_errors": 2, "rate_limited": 3, "packets_staged": 4, "staged_sent": 3,
                                 "staged_dropped": 1, "handshake_retries": 2, "unanswered_handshakes": 1}}
  })");
}

TEST(StatusView, ShowsPortsLcoresDropsAndNeighbours) {
  const std::string out = render_status(sample_status());
  EXPECT_NE(out.find("lopowerd 0.1.0 (6853647abcde-dirty)  DPDK 22.11.11  pid 42"), std::string::npos) << out;
  EXPECT_NE(out.find("up 01:02:05"), std::string::npos);
  EXPECT_NE(out.find("lan"), std::string::npos);
  EXPECT_NE(out.find("link up"), std::string::npos);
  EXPECT_NE(out.find("198.18.0.1/24"), std::string::npos);
  EXPECT_NE(out.find("exception path lp-lan"), std::string::npos);
  EXPECT_NE(out.find("rx 17 pkts 1338 bytes"), std::string::npos);
  EXPECT_NE(out.find("drops malformed_udp 3"), std::string::npos);
  EXPECT_EQ(out.find("wg_malformed"), std::string::npos);  // zero counters are not listed
  EXPECT_NE(out.find("busy 9/100 polls (0.250 s)"), std::string::npos);
  EXPECT_NE(out.find("198.18.0.2"), std::string::npos);
  EXPECT_NE(out.find("crypto ipsec-mb  devices 2  handshakes 5  cookie replies 7  refused 6"), std::string::npos);
  EXPECT_NE(out.find("packet pool: 37 of 4095 buffers in use"), std::string::npos);
  EXPECT_NE(out.find("sessions: staged 4 (sent 3, dropped 1)  retries 2  unanswered 1"), std::string::npos);
}

TEST(StatusView, ShowsACachedNetmapAndARefusedCache) {
  nlohmann::json s = sample_status();
  s["tailnet"] = nlohmann::json::parse(R"({
    "backend_state": "Starting", "control_url": "http://198.18.40.2:8080", "connected": false,
    "node_key": "nodekey:ab", "netmap_source": "cache",
    "netmap_cache": {"at_start": "loaded", "age_seconds": 125, "writes": 0, "write_failures": 0},
    "self": {"name": "lopower.tailnet.test.", "addresses": ["100.64.0.3"]}, "peers": []
  })");
  std::string out = render_status(s);
  EXPECT_NE(out.find("tailnet: Starting (cached netmap, saved 00:02:05 ago)  lopower.tailnet.test."), std::string::npos)
      << out;
  s["tailnet"]["netmap_source"] = "control";
  s["tailnet"]["netmap_cache"] = {{"at_start", "refused"}, {"error", "MapResponse is not valid JSON"},
                                  {"last_write_error", "disk full"}};
  out = render_status(s);
  EXPECT_EQ(out.find("cached netmap"), std::string::npos) << out;
  EXPECT_NE(out.find("netmap cache refused at start: MapResponse is not valid JSON"), std::string::npos) << out;
  EXPECT_NE(out.find("netmap cache not written: disk full"), std::string::npos) << out;
}

TEST(StatusView, ShowsEgressAndTheExitNodes) {
  auto s = sample_status();
  s["egress"] = nlohmann::json::parse(R"({"mode": "exit", "exit_nodes": ["ex1", "ex2"],
    "exit_node": {"name": "ex2.lab.example.", "ip": "100.64.0.3"},
    "offered": [{"name": "ex1.lab.example.", "ip": "100.64.0.2", "online": false, "in_use": false},
                {"name": "ex2.lab.example.", "ip": "100.64.0.3", "online": true, "in_use": true}]})");
  const std::string out = render_status(s);
  EXPECT_NE(out.find("egress: exit  exit nodes wanted ex1, ex2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  exit node in use: ex2.lab.example. 100.64.0.3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  offered: ex1.lab.example. 100.64.0.2  offline\n"), std::string::npos) << out;
  EXPECT_NE(out.find("  offered: ex2.lab.example. 100.64.0.3  online  in use\n"), std::string::npos) << out;
  s["egress"]["exit_node"] = nullptr;
  EXPECT_NE(render_status(s).find("  exit node in use: none\n"), std::string::npos);
}

TEST(StatusView, ShowsTheUplinkAndItsGatewayNeighbour) {
  nlohmann::json s = sample_status();
  s["uplink"] = {{"port", "up"},         {"address", {"192.0.2.2/24"}}, {"nat_ports", "20000-29999"},
                 {"gateway4", "192.0.2.1"}, {"gateway4_neighbour", "02:aa:00:00:00:01"},
                 {"gateway6", "fe80::1"}, {"gateway6_neighbour", nullptr},     {"flows", 3u}};
  const std::string out = render_status(s);
  EXPECT_NE(out.find("uplink (NAT): port up  address 192.0.2.2/24  NAT ports 20000-29999  flows 3"), std::string::npos) << out;
  EXPECT_NE(out.find("gateway4 192.0.2.1  neighbour 02:aa:00:00:00:01"), std::string::npos) << out;
  EXPECT_NE(out.find("gateway6 fe80::1  neighbour unknown (asking)"), std::string::npos) << out;
  s["uplink"] = nullptr;
  EXPECT_EQ(render_status(s).find("uplink (NAT)"), std::string::npos);
}

TEST(StatusView, ShowsAdvertisedRoutesAndTheirApproval) {
  nlohmann::json s = sample_status();
  s["tailnet"] = nlohmann::json::parse(R"({
    "backend_state": "Running", "control_url": "http://198.18.40.2:8080", "connected": true, "node_key": "nodekey:ab",
    "routes": [{"prefix": "10.90.0.0/24", "approved": true}, {"prefix": "fd00:90::/64", "approved": false}],
    "peers": []
  })");
  const std::string out = render_status(s);
  EXPECT_NE(out.find("route 10.90.0.0/24 (approved)"), std::string::npos) << out;
  EXPECT_NE(out.find("route fd00:90::/64 (not approved in the last full netmap)"), std::string::npos) << out;
}

TEST(StatusView, ToleratesMissingAndMistypedFields) {
  EXPECT_NO_THROW(render_status(nlohmann::json::object()));
  EXPECT_NO_THROW(render_status(nlohmann::json::array()));
  EXPECT_NO_THROW(render_status(nlohmann::json::parse(R"({"ports": 5, "lcores": [1, "x"], "neighbours": {}})")));
  EXPECT_NO_THROW(render_status(nlohmann::json::parse(R"({"ports": [{"link": 3, "drops": [1], "addresses": "x"}]})")));
}

}  // namespace
}  // namespace lopower
