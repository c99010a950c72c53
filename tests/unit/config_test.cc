#include "control/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace lopower {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A valid port at lines 1..4; tests append keys at line 5 and beyond.
const std::string kPort =
    "[[port]]\n"
    "name = \"lan\"\n"
    "device = \"net_null0\"\n"
    "addresses = [\"10.0.0.1/24\"]\n";

// The message parse_config throws for `text`, or "" when it accepts it.
std::string error_of(const std::string& text) {
  try {
    parse_config(text, "t.toml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

// A second port named "p2" whose extra lines follow line 1 of its table.
std::string second_port(const std::string& extra = "") {
  return "[[port]]\nname = \"p2\"\ndevice = \"net_null1\"\naddresses = [\"10.0.1.1/24\"]\n" + extra;
}

TEST(Config, GoodConfigWithEveryKey) {
  const std::string text = R"([daemon]
state_dir = "/tmp/lp-state"
ctl_socket = "/tmp/lp.sock"
ctl_group = "wheel"
log_level = "debug"
core_dumps = true

[dpdk]
lcores = "0,2,4-5"
main_lcore = 2
no_huge = true
in_memory = false
no_pci = true
file_prefix = "lp1"
memory_mb = 256
extra_args = ["--log-level=8", "--vdev=net_null9"]

[dataplane]
burst_size = 64
mbufs = 4096
mbuf_cache = 128
idle = "poll"
idle_sleep_max_us = 50
idle_hold_us = 200
tx_drain_us = 20
ring_size = 512

[wireguard]
listen_port = 5000

[tailnet]
listen_port = 6000

[[port]]
name = "dev"
device = "0000:01:00.0"
role = "devices"
addresses = ["192.168.1.1/24", "fd00::1/64"]
gateway4 = "192.168.1.254"
gateway6 = "fd00::fe"
mtu = 9000
tap_name = "tap.dev"
exception_path = false
rx_descriptors = 512
tx_descriptors = 2048

[[port]]
name = "net_2"
device = "net_af_packet0,iface=veth0"
role = "tailnet"
addresses = ["198.18.0.2/30"]
)";
  const config cfg = parse_config(text, "good.toml");
  EXPECT_EQ(cfg.path, "good.toml");
  EXPECT_EQ(cfg.daemon.state_dir, "/tmp/lp-state");
  EXPECT_EQ(cfg.daemon.ctl_socket, "/tmp/lp.sock");
  EXPECT_EQ(cfg.daemon.ctl_group, "wheel");
  EXPECT_EQ(cfg.daemon.log_level, "debug");
  EXPECT_TRUE(cfg.daemon.core_dumps);

  EXPECT_EQ(cfg.dpdk.lcores, "0,2,4-5");
  EXPECT_THAT(cfg.dpdk.lcore_list, ElementsAre(0u, 2u, 4u, 5u));
  EXPECT_EQ(cfg.dpdk.main_lcore, 2u);
  EXPECT_EQ(cfg.main_lcore(), 2u);
  EXPECT_THAT(cfg.worker_lcores(), ElementsAre(0u, 4u, 5u));
  EXPECT_TRUE(cfg.dpdk.no_huge);
  EXPECT_FALSE(cfg.dpdk.in_memory);
  EXPECT_TRUE(cfg.dpdk.no_pci);
  EXPECT_EQ(cfg.dpdk.file_prefix, "lp1");
  EXPECT_EQ(cfg.dpdk.memory_mb, 256u);
  EXPECT_THAT(cfg.dpdk.extra_args, ElementsAre("--log-level=8", "--vdev=net_null9"));
  EXPECT_EQ(cfg.dpdk.line, 8);

  EXPECT_EQ(cfg.dataplane.burst_size, 64);
  EXPECT_EQ(cfg.dataplane.mbufs, 4096u);
  EXPECT_EQ(cfg.dataplane.mbuf_cache, 128);
  EXPECT_EQ(cfg.dataplane.idle, idle_policy::poll);
  EXPECT_EQ(cfg.dataplane.idle_sleep_max_us, 50u);
  EXPECT_EQ(cfg.dataplane.idle_hold_us, 200u);
  EXPECT_EQ(cfg.dataplane.tx_drain_us, 20u);
  EXPECT_EQ(cfg.dataplane.ring_size, 512u);
  EXPECT_EQ(cfg.wireguard.listen_port, 5000);
  EXPECT_EQ(cfg.tailnet.listen_port, 6000);

  ASSERT_EQ(cfg.ports.size(), 2u);
  const port_config& dev = cfg.ports[0];
  EXPECT_EQ(dev.name, "dev");
  EXPECT_EQ(dev.device, "0000:01:00.0");
  EXPECT_EQ(dev.role, port_role::devices);
  ASSERT_EQ(dev.addresses.size(), 2u);
  EXPECT_EQ(dev.addresses[0].to_string(), "192.168.1.1/24");
  EXPECT_EQ(dev.addresses[1].to_string(), "fd00::1/64");
  EXPECT_EQ(dev.gateway4->to_string(), "192.168.1.254");
  EXPECT_EQ(dev.gateway6->to_string(), "fd00::fe");
  EXPECT_EQ(dev.mtu, 9000);
  EXPECT_EQ(dev.tap_name, "tap.dev");
  EXPECT_FALSE(dev.exception_path);
  EXPECT_EQ(dev.rx_descriptors, 512);
  EXPECT_EQ(dev.tx_descriptors, 2048);
  EXPECT_EQ(dev.line, 34);

  const port_config& net = cfg.ports[1];
  EXPECT_EQ(net.name, "net_2");
  EXPECT_EQ(net.role, port_role::tailnet);
  EXPECT_EQ(net.tap_name, "lp-net_2");
  EXPECT_FALSE(net.gateway4.has_value());
  EXPECT_FALSE(net.gateway6.has_value());
  EXPECT_EQ(net.line, 47);
}

TEST(Config, DefaultsWhenTablesAbsent) {
  const config cfg = parse_config(kPort, "min.toml");
  EXPECT_EQ(cfg.daemon.state_dir, "/var/lib/lopower");
  EXPECT_EQ(cfg.daemon.ctl_socket, "/run/lopower/lopower.sock");
  EXPECT_EQ(cfg.daemon.ctl_group, "");
  EXPECT_EQ(cfg.daemon.log_level, "info");
  EXPECT_FALSE(cfg.daemon.core_dumps) << "a dump would hold the keys";
  EXPECT_EQ(cfg.dpdk.lcores, "0-1");
  EXPECT_THAT(cfg.dpdk.lcore_list, ElementsAre(0u, 1u));
  EXPECT_FALSE(cfg.dpdk.main_lcore.has_value());
  EXPECT_EQ(cfg.main_lcore(), 0u);
  EXPECT_THAT(cfg.worker_lcores(), ElementsAre(1u));
  EXPECT_FALSE(cfg.dpdk.no_huge);
  EXPECT_TRUE(cfg.dpdk.in_memory);
  EXPECT_FALSE(cfg.dpdk.no_pci);
  EXPECT_EQ(cfg.dpdk.file_prefix, "");
  EXPECT_EQ(cfg.dpdk.memory_mb, 0u);
  EXPECT_TRUE(cfg.dpdk.extra_args.empty());
  EXPECT_EQ(cfg.dataplane.burst_size, 32);
  EXPECT_EQ(cfg.dataplane.mbufs, 16383u);
  EXPECT_EQ(cfg.dataplane.mbuf_cache, 256);
  EXPECT_EQ(cfg.dataplane.idle, idle_policy::adaptive);
  EXPECT_EQ(cfg.dataplane.idle_sleep_max_us, 1000u);
  EXPECT_EQ(cfg.dataplane.idle_hold_us, 500u);
  EXPECT_EQ(cfg.dataplane.tx_drain_us, 100u);
  EXPECT_EQ(cfg.dataplane.ring_size, 1024u);
  EXPECT_EQ(cfg.wireguard.listen_port, 51820);
  EXPECT_EQ(cfg.tailnet.listen_port, 41641);
  ASSERT_EQ(cfg.ports.size(), 1u);
  const port_config& p = cfg.ports[0];
  EXPECT_EQ(p.role, port_role::both);
  EXPECT_EQ(p.mtu, 1500);
  EXPECT_EQ(p.tap_name, "lp-lan");
  EXPECT_TRUE(p.exception_path);
  EXPECT_EQ(p.rx_descriptors, 1024);
  EXPECT_EQ(p.tx_descriptors, 1024);
  EXPECT_EQ(p.line, 1);
}

TEST(Config, EmptyTablesKeepDefaults) {
  const config cfg = parse_config("[daemon]\n[dpdk]\n[dataplane]\n[wireguard]\n[tailnet]\n" + kPort, "t.toml");
  EXPECT_THAT(cfg.dpdk.lcore_list, ElementsAre(0u, 1u));
  EXPECT_EQ(cfg.dpdk.line, 2);
  EXPECT_EQ(cfg.dataplane.burst_size, 32);
}

// The workers judge their own handshake backlog against the same threshold.
TEST(Config, HandshakeLoadThresholdReachesTheWorkers) {
  EXPECT_EQ(dataplane_settings_of(parse_config(kPort, "t.toml")).handshake_load_threshold, 64u);
  EXPECT_EQ(dataplane_settings_of(parse_config("[wireguard]\nhandshake_load_threshold = 9\n" + kPort, "t.toml"))
                .handshake_load_threshold,
            9u);
}

TEST(Config, DeviceDnsPacing) {
  EXPECT_EQ(parse_config(kPort, "t.toml").dns.device_query_rate, 200u);
  EXPECT_EQ(parse_config("[dns]\ndevice_query_rate = 0\n" + kPort, "t.toml").dns.device_query_rate, 0u);
  EXPECT_EQ(dataplane_settings_of(parse_config("[dns]\ndevice_query_rate = 50\n" + kPort, "t.toml")).dns_device_query_rate,
            50u);
  EXPECT_THAT(error_of("[dns]\ndevice_query_rate = -1\n" + kPort), StartsWith("t.toml:2: dns.device_query_rate:"));
  EXPECT_THAT(error_of("[dns]\ndevice_query_rate = 1000001\n" + kPort), StartsWith("t.toml:2: dns.device_query_rate:"));
}

TEST(Config, DeviceDomain) {
  EXPECT_EQ(parse_config(kPort, "t.toml").dns.device_domain, "lopower.internal");
  EXPECT_EQ(parse_config("[dns]\ndevice_domain = \"\"\n" + kPort, "t.toml").dns.device_domain, "");
  EXPECT_EQ(parse_config("[dns]\ndevice_domain = \"Devices.Example.\"\n" + kPort, "t.toml").dns.device_domain,
            "Devices.Example.");
  EXPECT_EQ(parse_config("[dns]\ndevice_domain = \"lan\"\n" + kPort, "t.toml").dns.device_domain, "lan");
  for (const char* bad : {"a..b", ".lopower", "-x.internal", "x-.internal", "under_score.internal", "sp ace", ".",
                          "a/b"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(error_of(std::string("[dns]\nupstreams = []\ndevice_domain = \"") + bad + "\"\n" + kPort),
                StartsWith("t.toml:3: dns.device_domain: \"" + std::string(bad) + "\" is not a DNS name"));
  }
  EXPECT_THAT(error_of("[dns]\ndevice_domain = \"" + std::string(64, 'a') + ".internal\"\n" + kPort),
              StartsWith("t.toml:2: dns.device_domain:"));
  EXPECT_THAT(error_of("[dns]\ndevice_domain = 5\n" + kPort), StartsWith("t.toml:2: dns.device_domain:"));
}

TEST(Config, EgressDefaultsToNoneAndAuto) {
  const config cfg = parse_config(kPort, "t.toml");
  EXPECT_EQ(cfg.egress.mode, egress_mode::none);
  EXPECT_THAT(cfg.egress.exit_nodes, ElementsAre("auto"));
}

TEST(Config, EgressThroughExitNodesInOrder) {
  const config cfg =
      parse_config("[egress]\nmode = \"exit\"\nexit_nodes = [\"ex1\", \"ex2.tail.example\", \"100.64.0.7\", \"fd7a:115c:a1e0::7\"]\n" + kPort,
                   "t.toml");
  EXPECT_EQ(cfg.egress.mode, egress_mode::exit);
  EXPECT_THAT(cfg.egress.exit_nodes, ElementsAre("ex1", "ex2.tail.example", "100.64.0.7", "fd7a:115c:a1e0::7"));
  EXPECT_EQ(parse_config("[egress]\nmode = \"none\"\n" + kPort, "t.toml").egress.mode, egress_mode::none);
}

TEST(Config, EgressRefusals) {
  EXPECT_THAT(error_of("[egress]\nmode = \"internet\"\n" + kPort),
              StartsWith("t.toml:2: egress.mode: \"internet\" is not a valid value (expected one of \"none\", \"exit\", \"uplink\")"));
  EXPECT_THAT(error_of("[egress]\nmode = \"uplink\"\n" + kPort),
              AllOf(StartsWith("t.toml:2: egress.mode:"), HasSubstr("needs a [[port]] with role uplink")));
  EXPECT_THAT(error_of("[egress]\nmode = 1\n" + kPort), StartsWith("t.toml:2: egress.mode: expected a string"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = []\n" + kPort), StartsWith("t.toml:2: egress.exit_nodes: empty"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = \"ex1\"\n" + kPort),
              StartsWith("t.toml:2: egress.exit_nodes: expected an array of strings"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = [\"auto\", \"ex1\"]\n" + kPort),
              StartsWith("t.toml:2: egress.exit_nodes: \"auto\" stands alone"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = [\"ex 1\"]\n" + kPort),
              StartsWith("t.toml:2: egress.exit_nodes: \"ex 1\" is not a tailnet peer name or IP"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = [\"\"]\n" + kPort), StartsWith("t.toml:2: egress.exit_nodes: \"\" is not"));
  EXPECT_THAT(error_of("[egress]\nexit_nodes = [\"ex1\", \"ex1\"]\n" + kPort),
              StartsWith("t.toml:2: egress.exit_nodes: \"ex1\" appears twice"));
  EXPECT_THAT(error_of("[egress]\nmode = \"exit\"\nexit_node = [\"ex1\"]\n" + kPort),
              StartsWith("t.toml:3: egress.exit_node: unknown key (expected one of \"mode\", \"exit_nodes\")"));
  EXPECT_THAT(error_of("egress = 1\n" + kPort), StartsWith("t.toml:1: egress: expected a table [egress]"));
}

TEST(Config, InboundRoutes) {
  const config defaults = parse_config(kPort, "t.toml");
  EXPECT_FALSE(defaults.inbound.advertise_routes);
  EXPECT_TRUE(defaults.inbound.snat);
  EXPECT_FALSE(dataplane_settings_of(defaults).inbound_routes);
  const config on = parse_config("[inbound]\nadvertise_routes = true\nsnat = false\n" + kPort, "t.toml");
  EXPECT_TRUE(on.inbound.advertise_routes);
  EXPECT_FALSE(on.inbound.snat);
  EXPECT_TRUE(dataplane_settings_of(on).inbound_routes);
  EXPECT_FALSE(dataplane_settings_of(on).inbound_snat);
  EXPECT_EQ(error_of("[inbound]\nadvertise_routes = \"yes\"\n" + kPort),
            "t.toml:2: inbound.advertise_routes: expected a boolean (true or false), got string");
  EXPECT_THAT(error_of("[inbound]\nsnat = 1\n" + kPort), StartsWith("t.toml:2: inbound.snat: expected a boolean"));
  EXPECT_THAT(error_of("[inbound]\nadvertise = true\n" + kPort),
              StartsWith("t.toml:2: inbound.advertise: unknown key (expected one of \"advertise_routes\", \"snat\")"));
}

TEST(Config, Forwards) {
  EXPECT_TRUE(parse_config(kPort, "t.toml").forwards.empty());
  const std::string two = "[[forward]]\nprotocol = \"tcp\"\nport = 2222\ndevice = \"cam\"\ndevice_port = 22\n"
                          "[[forward]]\nprotocol = \"udp\"\nport = 2222\ndevice = \"cam\"\ndevice_port = 22\n";
  const config cfg = parse_config(kPort + two, "t.toml");
  ASSERT_EQ(cfg.forwards.size(), 2u);
  EXPECT_EQ(cfg.forwards[0].protocol, "tcp");
  EXPECT_EQ(cfg.forwards[0].port, 2222);
  EXPECT_EQ(cfg.forwards[0].device, "cam");
  EXPECT_EQ(cfg.forwards[0].device_port, 22);
  EXPECT_EQ(cfg.forwards[0].line, 5);
  EXPECT_EQ(cfg.forwards[1].protocol, "udp");
  const std::string fwd = "[[forward]]\n";
  EXPECT_THAT(error_of(kPort + fwd + "protocol = \"sctp\"\nport = 1\ndevice = \"a\"\ndevice_port = 1\n"),
              StartsWith("t.toml:6: forward[1].protocol: \"sctp\" is not a valid value (expected one of \"tcp\", \"udp\")"));
  EXPECT_THAT(error_of(kPort + fwd + "protocol = \"tcp\"\nport = 0\ndevice = \"a\"\ndevice_port = 1\n"),
              StartsWith("t.toml:7: forward[1].port: 0 is out of range"));
  EXPECT_THAT(error_of(kPort + fwd + "protocol = \"tcp\"\nport = 1\ndevice_port = 1\n"),
              StartsWith("t.toml:5: forward[1].device: missing"));
  EXPECT_THAT(error_of(kPort + fwd + "protocol = \"tcp\"\nport = 1\ndevice = \"a\"\n"),
              StartsWith("t.toml:5: forward[1].device_port: missing"));
  EXPECT_THAT(error_of(kPort + fwd + "protocol = \"tcp\"\nport = 1\ndevice = \"a\"\ndevice_port = 1\nhost = 1\n"),
              StartsWith("t.toml:10: forward[1].host: unknown key"));
  EXPECT_THAT(error_of(kPort + two + fwd + "protocol = \"tcp\"\nport = 2222\ndevice = \"b\"\ndevice_port = 1\n"),
              StartsWith("t.toml:17: forward[3].port: tcp port 2222 is already forwarded by forward[1]"));
  EXPECT_THAT(error_of(kPort + "[forward]\nport = 1\n"), StartsWith("t.toml:5: forward: expected an array of tables [[forward]]"));
}

TEST(Config, DeviceToDevice) {
  EXPECT_FALSE(parse_config(kPort, "t.toml").devices.device_to_device);
  EXPECT_FALSE(parse_config("[devices]\ndevice_to_device = \"deny\"\n" + kPort, "t.toml").devices.device_to_device);
  const config allow = parse_config("[devices]\ndevice_to_device = \"allow\"\n" + kPort, "t.toml");
  EXPECT_TRUE(allow.devices.device_to_device);
  EXPECT_TRUE(dataplane_settings_of(allow).device_to_device);
  EXPECT_EQ(error_of("[devices]\ndevice_to_device = \"permit\"\n" + kPort),
            "t.toml:2: devices.device_to_device: \"permit\" is not a valid value (expected one of \"deny\", \"allow\")");
  EXPECT_THAT(error_of("[devices]\ndevice_to_device = true\n" + kPort),
              StartsWith("t.toml:2: devices.device_to_device: expected a string, got boolean"));
}

TEST(Config, UnknownKey) {
  EXPECT_EQ(error_of("[dataplane]\nburst_size = 8\nburst_sise = 3\n" + kPort),
            "t.toml:3: dataplane.burst_sise: unknown key (expected one of \"burst_size\", \"mbufs\", \"mbuf_cache\", "
            "\"idle\", \"idle_sleep_max_us\", \"idle_hold_us\", \"tx_drain_us\", \"ring_size\", \"max_flows\", "
            "\"max_flows_per_device\", \"neighbour_timeout\")");
  EXPECT_THAT(error_of(kPort + "colour = \"red\"\n"), StartsWith("t.toml:5: port[1].colour: unknown key"));
  EXPECT_THAT(error_of("log_level = \"info\"\n" + kPort), StartsWith("t.toml:1: log_level: unknown key"));
}

TEST(Config, UnknownTable) {
  const std::string msg = error_of(kPort + "[dataplan]\nburst_size = 8\n");
  EXPECT_THAT(msg, StartsWith("t.toml:5: dataplan: unknown table (expected one of the tables \"daemon\""));
  EXPECT_THAT(msg, HasSubstr("\"dataplane\""));
  EXPECT_THAT(error_of("[dpdk.extra]\nx = 1\n" + kPort), StartsWith("t.toml:1: dpdk.extra: unknown key"));
}

TEST(Config, WrongType) {
  EXPECT_EQ(error_of("[dataplane]\nburst_size = \"32\"\n" + kPort),
            "t.toml:2: dataplane.burst_size: expected an integer 1..256, got string");
  EXPECT_EQ(error_of("[dataplane]\nburst_size = 32.0\n" + kPort),
            "t.toml:2: dataplane.burst_size: expected an integer 1..256, got float");
  EXPECT_THAT(error_of("[dpdk]\nno_huge = 1\n" + kPort),
              StartsWith("t.toml:2: dpdk.no_huge: expected a boolean (true or false), got integer"));
  EXPECT_THAT(error_of("[daemon]\nlog_level = 3\n" + kPort), StartsWith("t.toml:2: daemon.log_level: expected a string, got integer"));
  EXPECT_THAT(error_of("[dpdk]\nextra_args = [\"a\", 2]\n" + kPort),
              StartsWith("t.toml:2: dpdk.extra_args: expected a string in the array, got integer"));
  EXPECT_THAT(error_of("dataplane = 3\n" + kPort), StartsWith("t.toml:1: dataplane: expected a table [dataplane], got integer"));
  EXPECT_THAT(error_of("[port]\nname = \"x\"\n"), StartsWith("t.toml:1: port: expected an array of tables [[port]], got table"));
  EXPECT_THAT(error_of(kPort + "addresses2 = 1\n"), HasSubstr("unknown key"));
  EXPECT_THAT(error_of("[[port]]\nname = \"lan\"\ndevice = \"d\"\naddresses = \"10.0.0.1/24\"\n"),
              StartsWith("t.toml:4: port[1].addresses: expected an array of \"address/length\" strings, got string"));
  EXPECT_THAT(error_of("[daemon]\nlog_level = \"verbose\"\n" + kPort),
              StartsWith("t.toml:2: daemon.log_level: \"verbose\" is not a valid value (expected one of \"error\""));
  EXPECT_THAT(error_of(kPort + "role = \"all\"\n"), HasSubstr("t.toml:5: port[1].role: \"all\" is not a valid value"));
}

TEST(Config, IntegerOutOfRange) {
  EXPECT_EQ(error_of("[dataplane]\nburst_size = 300\n" + kPort),
            "t.toml:2: dataplane.burst_size: 300 is out of range (expected an integer 1..256)");
  EXPECT_THAT(error_of("[dataplane]\nburst_size = 0\n" + kPort), HasSubstr("0 is out of range"));
  // Far beyond the uint16_t field: checked as int64 before any narrowing.
  EXPECT_THAT(error_of(kPort + "mtu = 9223372036854775807\n"),
              StartsWith("t.toml:5: port[1].mtu: 9223372036854775807 is out of range (expected an integer 576..9000)"));
  EXPECT_THAT(error_of(kPort + "mtu = -9223372036854775808\n"), HasSubstr("is out of range"));
  EXPECT_THAT(error_of("[wireguard]\nlisten_port = 65536\n" + kPort),
              StartsWith("t.toml:2: wireguard.listen_port: 65536 is out of range (expected an integer 1..65535)"));
  EXPECT_THAT(error_of("[dataplane]\nmbufs = 1000\n" + kPort), HasSubstr("dataplane.mbufs: 1000 is out of range"));
  EXPECT_THAT(error_of("[dataplane]\nring_size = 100\n" + kPort),
              HasSubstr("dataplane.ring_size: 100 is not a power of two (expected an integer 64..65536, a power of two)"));
}

TEST(Config, MissingPortAndMissingKeys) {
  EXPECT_EQ(error_of("[dataplane]\n"), "t.toml:1: port: no [[port]] table (expected at least one)");
  EXPECT_THAT(error_of("port = []\n"), StartsWith("t.toml:1: port: is empty"));
  EXPECT_THAT(error_of("[dataplane]\n\n[[port]]\ndevice = \"d\"\naddresses = [\"10.0.0.1/24\"]\n"),
              StartsWith("t.toml:3: port[1].name: missing"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\naddresses = [\"10.0.0.1/24\"]\n"), StartsWith("t.toml:1: port[1].device: missing"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\n"), StartsWith("t.toml:1: port[1].addresses: missing"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = []\n"),
              StartsWith("t.toml:4: port[1].addresses: is empty (expected at least one"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"\"\naddresses = [\"10.0.0.1/24\"]\n"),
              StartsWith("t.toml:3: port[1].device: is empty"));
}

TEST(Config, BadAddress) {
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.300/24\"]\n"),
              StartsWith("t.toml:4: port[1].addresses: \"10.0.0.300/24\" is not a valid IP address (expected \"address/length\""));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1\"]\n"),
              StartsWith("t.toml:4: port[1].addresses: \"10.0.0.1\" has no prefix length"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1/24\", 7]\n"),
              StartsWith("t.toml:4: port[1].addresses: expected a string in the array, got integer"));
}

TEST(Config, BadPrefixLength) {
  EXPECT_EQ(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1/33\"]\n"),
            "t.toml:4: port[1].addresses: \"10.0.0.1/33\" has a bad prefix length (expected 1..32 for IPv4)");
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"fd00::1/129\"]\n"),
              HasSubstr("\"fd00::1/129\" has a bad prefix length (expected 1..128 for IPv6)"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1/x\"]\n"), HasSubstr("bad prefix length"));
}

TEST(Config, ZeroPrefixLength) {
  EXPECT_EQ(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\n  \"10.0.0.1/24\",\n  \"fd00::1/0\",\n]\n"),
            "t.toml:6: port[1].addresses: \"fd00::1/0\" has prefix length /0, which is not allowed (expected 1..128 for IPv6)");
}

TEST(Config, SpecialAddresses) {
  const auto with = [](const std::string& a) {
    return error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"" + a + "\"]\n");
  };
  EXPECT_THAT(with("224.0.0.1/24"), HasSubstr("\"224.0.0.1/24\" is a multicast address (expected a unicast interface address)"));
  EXPECT_THAT(with("ff02::1/64"), HasSubstr("is a multicast address"));
  EXPECT_THAT(with("0.0.0.0/8"), HasSubstr("is the unspecified address"));
  EXPECT_THAT(with("::/64"), HasSubstr("is the unspecified address"));
  EXPECT_THAT(with("127.0.0.1/8"), HasSubstr("is a loopback address"));
  EXPECT_THAT(with("::1/128"), HasSubstr("is a loopback address"));
  EXPECT_EQ(with("fe80::2/64"), "");  // link-local interface addresses are fine
}

TEST(Config, DuplicateAddress) {
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1/24\", \"10.0.0.1/16\"]\n"),
              StartsWith("t.toml:4: port[1].addresses: address 10.0.0.1 is listed twice"));
  EXPECT_THAT(error_of(kPort + "[[port]]\nname = \"b\"\ndevice = \"e\"\naddresses = [\"10.0.0.1/24\"]\n"),
              StartsWith("t.toml:8: port[2].addresses: address 10.0.0.1 is already used by port[1]"));
}

TEST(Config, DuplicatePortName) {
  EXPECT_EQ(error_of(kPort + "\n[[port]]\nname = \"lan\"\ndevice = \"e\"\naddresses = [\"10.0.1.1/24\"]\n"),
            "t.toml:7: port[2].name: \"lan\" is already the name of port[1] (expected unique names)");
  EXPECT_THAT(error_of("[[port]]\nname = \"a.b\"\n"),
              StartsWith("t.toml:2: port[1].name: \"a.b\" is not a valid port name (expected 1..12 of [A-Za-z0-9_-])"));
  EXPECT_THAT(error_of("[[port]]\nname = \"abcdefghijklm\"\n"), HasSubstr("is not a valid port name"));
  EXPECT_THAT(error_of("[[port]]\nname = \"\"\n"), HasSubstr("is not a valid port name"));
}

TEST(Config, DuplicateDevice) {
  EXPECT_EQ(error_of(kPort + "[[port]]\nname = \"b\"\ndevice = \"net_null0\"\naddresses = [\"10.0.1.1/24\"]\n"),
            "t.toml:7: port[2].device: \"net_null0\" is already the device of port[1] (expected unique devices)");
}

TEST(Config, TapName) {
  EXPECT_EQ(error_of(kPort + "tap_name = \"a-very-long-tap-name\"\n"),
            "t.toml:5: port[1].tap_name: \"a-very-long-tap-name\" is not a valid interface name (expected 1..15 of [A-Za-z0-9_.-])");
  EXPECT_THAT(error_of(kPort + "tap_name = \"a b\"\n"), HasSubstr("is not a valid interface name"));
  EXPECT_THAT(error_of(kPort + "tap_name = \"..\"\n"), HasSubstr("is not a valid interface name"));
  // An explicit tap_name clashing with the second port's default one.
  EXPECT_THAT(error_of(kPort + "tap_name = \"lp-p2\"\n" + second_port()),
              StartsWith("t.toml:6: port[2].tap_name: \"lp-p2\" is already the tap_name of port[1]"));
  EXPECT_EQ(error_of(kPort + "tap_name = \"exactly15chars_\"\n"), "");
}

TEST(Config, GatewayOutsidePrefix) {
  EXPECT_EQ(error_of(kPort + "gateway4 = \"10.0.1.1\"\n"),
            "t.toml:5: port[1].gateway4: 10.0.1.1 is not inside any of the port's IPv4 prefixes "
            "(expected an address on the port's IPv4 subnet)");
  EXPECT_THAT(error_of(kPort + "gateway4 = \"10.0.0.1\"\n"),
              StartsWith("t.toml:5: port[1].gateway4: 10.0.0.1 is the port's own address"));
  EXPECT_THAT(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"fd00::1/64\"]\ngateway6 = \"fd01::1\"\n"),
              StartsWith("t.toml:5: port[1].gateway6: fd01::1 is not inside any of the port's IPv6 prefixes"));
  EXPECT_THAT(error_of(kPort + "gateway4 = \"10.0.0.300\"\n"), HasSubstr("\"10.0.0.300\" is not a valid IP address"));
  EXPECT_THAT(error_of(kPort + "gateway4 = \"224.0.0.9\"\n"), HasSubstr("is a multicast address"));
  // Link-local IPv6 routers need no covering prefix, even on an IPv4-only port.
  EXPECT_EQ(error_of(kPort + "gateway6 = \"fe80::1\"\n"), "");
  EXPECT_EQ(error_of(kPort + "gateway4 = \"10.0.0.254\"\n"), "");
}

TEST(Config, GatewayWrongFamily) {
  EXPECT_EQ(error_of(kPort + "gateway4 = \"fd00::1\"\n"),
            "t.toml:5: port[1].gateway4: \"fd00::1\" is an IPv6 address (expected an IPv4 address)");
  EXPECT_EQ(error_of(kPort + "gateway6 = \"10.0.0.2\"\n"),
            "t.toml:5: port[1].gateway6: \"10.0.0.2\" is an IPv4 address (expected an IPv6 address)");
}

TEST(Config, NoDevicesRole) {
  EXPECT_EQ(error_of(kPort + "role = \"tailnet\"\n"),
            "t.toml:1: port.role: no port serves devices (expected at least one [[port]] with role \"devices\" or \"both\")");
}

TEST(Config, NoTailnetRole) {
  EXPECT_EQ(error_of(kPort + "role = \"devices\"\n" + second_port("role = \"devices\"\n")),
            "t.toml:1: port.role: no port serves the tailnet (expected at least one [[port]] with role \"tailnet\" or \"both\")");
  EXPECT_EQ(error_of(kPort + "role = \"devices\"\n" + second_port("role = \"tailnet\"\n")), "");
}

TEST(Config, UplinkRoleAndNatPorts) {
  const std::string uplink = "role = \"uplink\"\ngateway4 = \"10.0.1.254\"\n";
  EXPECT_EQ(error_of(kPort + second_port(uplink)), "");
  EXPECT_EQ(error_of(kPort + second_port(uplink + "nat_ports = \"20000-20999\"\n")), "");
  EXPECT_THAT(error_of(kPort + second_port(uplink + "nat_ports = \"30000-40000\"\n")),
              StartsWith("t.toml:11: port[2].nat_ports: \"30000-40000\" overlaps the kernel's ephemeral ports"));
  EXPECT_THAT(error_of(kPort + second_port(uplink + "nat_ports = \"2000-x\"\n")),
              StartsWith("t.toml:11: port[2].nat_ports: \"2000-x\" is not a port range"));
  EXPECT_THAT(error_of(kPort + second_port(uplink + "nat_ports = \"900-1000\"\n")), HasSubstr("is not a port range"));
  EXPECT_THAT(error_of(kPort + "nat_ports = \"20000-20100\"\n"),
              StartsWith("t.toml:5: port[1].nat_ports: is for ports with role \"uplink\" only"));
  // One uplink at most; an uplink is not a devices or tailnet port.
  EXPECT_THAT(error_of(kPort + second_port(uplink) +
                       "[[port]]\nname = \"p3\"\ndevice = \"net_null2\"\naddresses = [\"10.0.2.1/24\"]\nrole = \"uplink\"\n"),
              StartsWith("t.toml:11: port.role: \"uplink\" is already the role of port \"p2\""));
  EXPECT_THAT(error_of(kPort + "role = \"uplink\"\n"), HasSubstr("no port serves devices"));
}

// Egress and the uplink: without a mode, a box with an uplink port uses it;
// a mode given is kept; "uplink" without such a port is refused at its line.
TEST(Config, EgressDefaultsToTheUplinkWhenThereIsOne) {
  const std::string uplink = second_port("role = \"uplink\"\ngateway4 = \"10.0.1.254\"\n");
  EXPECT_EQ(parse_config(kPort + uplink, "t.toml").egress.mode, egress_mode::uplink);
  EXPECT_EQ(parse_config("[egress]\nmode = \"none\"\n" + kPort + uplink, "t.toml").egress.mode, egress_mode::none);
  EXPECT_EQ(parse_config("[egress]\nmode = \"exit\"\n" + kPort + uplink, "t.toml").egress.mode, egress_mode::exit);
  EXPECT_EQ(parse_config("[egress]\nmode = \"uplink\"\n" + kPort + uplink, "t.toml").egress.mode, egress_mode::uplink);
  EXPECT_EQ(parse_config(kPort, "t.toml").egress.mode, egress_mode::none);
  EXPECT_THAT(error_of("[egress]\nexit_nodes = [\"ex1\"]\nmode = \"uplink\"\n" + kPort),
              AllOf(StartsWith("t.toml:3: egress.mode:"), HasSubstr("needs a [[port]] with role uplink")));
}

TEST(Config, EqualListenPorts) {
  EXPECT_THAT(error_of("[wireguard]\nlisten_port = 4000\n[tailnet]\nlisten_port = 4000\n" + kPort),
              StartsWith("t.toml:4: tailnet.listen_port: 4000 is used by both wireguard.listen_port and tailnet.listen_port"));
  EXPECT_THAT(error_of("[wireguard]\nlisten_port = 41641\n" + kPort), StartsWith("t.toml:2: wireguard.listen_port: 41641 is used by both"));
}

TEST(Config, SingleLcore) {
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"3\"\n" + kPort),
            "t.toml:2: dpdk.lcores: \"3\" has 1 lcore (expected at least 2: the main lcore and at least one worker)");
  EXPECT_THAT(error_of("[dpdk]\nlcores = \"2,2-2\"\n" + kPort), HasSubstr("has 1 lcore"));
}

TEST(Config, LcoreListExpansion) {
  const config cfg = parse_config("[dpdk]\nlcores = \"5,1-3,2\"\n" + kPort, "t.toml");
  EXPECT_THAT(cfg.dpdk.lcore_list, ElementsAre(1u, 2u, 3u, 5u));
  EXPECT_EQ(cfg.main_lcore(), 1u);
  EXPECT_THAT(cfg.worker_lcores(), ElementsAre(2u, 3u, 5u));
  EXPECT_THAT(parse_config("[dpdk]\nlcores = \"0-127\"\n" + kPort, "t.toml").dpdk.lcore_list.size(), 128u);
}

TEST(Config, MainLcoreNotInList) {
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"0-1\"\nmain_lcore = 5\n" + kPort),
            "t.toml:3: dpdk.main_lcore: lcore 5 is not in dpdk.lcores \"0-1\" (expected one of its lcores)");
  EXPECT_THAT(error_of("[dpdk]\nmain_lcore = 128\n" + kPort), HasSubstr("dpdk.main_lcore: 128 is out of range (expected an integer 0..127)"));
}

TEST(Config, BadLcoresSyntax) {
  const std::string expected = " is not a valid lcore list (expected ids 0..127 as \"0-1\" or \"0,2,4-5\")";
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"0-\"\n" + kPort), "t.toml:2: dpdk.lcores: \"0-\"" + expected);
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"a\"\n" + kPort), "t.toml:2: dpdk.lcores: \"a\"" + expected);
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"3-1\"\n" + kPort),
            "t.toml:2: dpdk.lcores: range 3-1 is reversed (expected low-high, e.g. \"0-1\")");
  EXPECT_EQ(error_of("[dpdk]\nlcores = \"0,128\"\n" + kPort),
            "t.toml:2: dpdk.lcores: lcore 128 is out of range (expected 0..127)");
  EXPECT_THAT(error_of("[dpdk]\nlcores = \"99999999999999999999\"\n" + kPort), HasSubstr("is out of range"));
  for (const char* bad : {"", ",", "0,", ",1", "0-1-2", "0 - 1", "-1", "0@1", "(0,1)", "0x1-2", "+1,2"}) {
    EXPECT_THAT(error_of(std::string("[dpdk]\nlcores = \"") + bad + "\"\n" + kPort), HasSubstr(expected)) << bad;
  }
}

TEST(Config, MtuTooSmallForIpv6) {
  EXPECT_EQ(error_of("[[port]]\nname = \"a\"\ndevice = \"d\"\naddresses = [\"10.0.0.1/24\", \"fd00::1/64\"]\nmtu = 1000\n"),
            "t.toml:5: port[1].mtu: 1000 is below 1280, the IPv6 minimum, and the port has IPv6 address fd00::1/64 "
            "(expected 1280..9000)");
  EXPECT_EQ(error_of(kPort + "mtu = 600\n"), "");  // IPv4 only: 576 is the floor
  EXPECT_THAT(error_of(kPort + "mtu = 575\n"), HasSubstr("port[1].mtu: 575 is out of range (expected an integer 576..9000)"));
}

TEST(Config, DescriptorsNotPowerOfTwo) {
  EXPECT_EQ(error_of(kPort + "rx_descriptors = 1000\n"),
            "t.toml:5: port[1].rx_descriptors: 1000 is not a power of two (expected an integer 64..16384, a power of two)");
  EXPECT_THAT(error_of(kPort + "tx_descriptors = 32\n"), HasSubstr("port[1].tx_descriptors: 32 is out of range"));
  EXPECT_THAT(error_of(kPort + "tx_descriptors = 32768\n"), HasSubstr("32768 is out of range"));
}

TEST(Config, DaemonAndDpdkStrings) {
  EXPECT_THAT(error_of("[daemon]\nctl_socket = \"run/x.sock\"\n" + kPort),
              StartsWith("t.toml:2: daemon.ctl_socket: \"run/x.sock\" is not an absolute path"));
  EXPECT_THAT(error_of("[daemon]\nctl_socket = \"/" + std::string(120, 'x') + "\"\n" + kPort),
              HasSubstr("daemon.ctl_socket: path is 121 bytes long (expected at most 107)"));
  EXPECT_THAT(error_of("[daemon]\nstate_dir = \"\"\n" + kPort), HasSubstr("daemon.state_dir: must not be empty"));
  EXPECT_THAT(error_of("[daemon]\nctl_group = \"a\\nb\"\n" + kPort),
              StartsWith("t.toml:2: daemon.ctl_group: \"a\\x0ab\" contains a control character"));
  EXPECT_THAT(error_of("[dpdk]\nfile_prefix = \"../x\"\n" + kPort), HasSubstr("dpdk.file_prefix: \"../x\" is not a valid prefix"));
  EXPECT_THAT(error_of("[dpdk]\nextra_args = [\"-l\", \"0-3\"]\n" + kPort),
              StartsWith("t.toml:2: dpdk.extra_args: \"-l\" is not allowed here"));
  EXPECT_THAT(error_of("[dpdk]\nextra_args = [\"--main-lcore=1\"]\n" + kPort), HasSubstr("is not allowed here"));
  EXPECT_THAT(error_of("[dpdk]\nextra_args = [\"--\"]\n" + kPort), HasSubstr("is not allowed here"));
  EXPECT_EQ(error_of("[dpdk]\nextra_args = [\"--log-level=debug\"]\n" + kPort), "");
}

TEST(Config, TomlSyntaxError) {
  const std::string msg = error_of(kPort + "mtu = = 1500\n");
  EXPECT_THAT(msg, StartsWith("t.toml:5:7: TOML syntax error: "));
  EXPECT_THAT(error_of("[[port]]\nname = \"unterminated\n"), StartsWith("t.toml:2:"));
  EXPECT_THAT(error_of(kPort + "name = \"again\"\n"), HasSubstr("TOML syntax error"));  // redefinition
}

TEST(Config, MissingFile) {
  try {
    load_config_file("/nonexistent/lopower.toml");
    FAIL() << "no exception";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/lopower.toml: cannot read: No such file or directory");
  }
  try {
    load_config_file("/");
    FAIL() << "no exception";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "/: cannot read: Is a directory");
  }
}

TEST(Config, LoadFileUsesPathInMessages) {
  const std::string path = ::testing::TempDir() + "lopower_config_test.toml";
  std::ofstream(path) << kPort << "mtu = 1\n";
  try {
    load_config_file(path);
    FAIL() << "no exception";
  } catch (const config_error& e) {
    EXPECT_THAT(e.what(), StartsWith(path + ":5: port[1].mtu: 1 is out of range"));
  }
  std::remove(path.c_str());
}

TEST(Config, AFileLargerThanAConfigIsRefusedUnread) {
  const std::string path = ::testing::TempDir() + "lopower_config_big.toml";
  {
    std::ofstream f(path);
    f << kPort;
    f << std::string(max_config_bytes, '#') << "\n";
  }
  try {
    load_config_file(path);
    FAIL() << "no exception";
  } catch (const config_error& e) {
    EXPECT_THAT(e.what(), StartsWith(path + ": larger than 1024 KiB"));
  }
  std::remove(path.c_str());
}

TEST(Config, PathsAreAbsolute) {
  EXPECT_THAT(error_of("[daemon]\nstate_dir = \"var/lib/lopower\"\n" + kPort),
              StartsWith("t.toml:2: daemon.state_dir: \"var/lib/lopower\" is not an absolute path"));
  EXPECT_THAT(error_of("[tailnet]\ncontrol_url = \"http://198.18.0.2:8080\"\nauth_key_file = \"authkey\"\n" + kPort),
              StartsWith("t.toml:3: tailnet.auth_key_file: \"authkey\" is not an absolute path"));
}

// --check-config (and start-up) report what only the machine can show.
TEST(Config, EnvironmentProblemsNameTheKey) {
  const std::string key = ::testing::TempDir() + "lopower_authkey_test";
  auto with = [&](const std::string& group, const std::string& key_file) {
    return parse_config("[daemon]\nctl_group = \"" + group + "\"\n[tailnet]\ncontrol_url = \"http://198.18.0.2:8080\"\n" +
                            "auth_key_file = \"" + key_file + "\"\n" + kPort,
                        "t.toml");
  };
  std::remove(key.c_str());
  auto problems = environment_problems(with("no-such-group-lopower", key));
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0], "t.toml: daemon.ctl_group: no group named \"no-such-group-lopower\"");
  EXPECT_EQ(problems[1], "t.toml: tailnet.auth_key_file: " + key + ": No such file or directory");
  std::ofstream(key).close();
  problems = environment_problems(with("root", key));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], HasSubstr("is empty"));
  std::ofstream(key) << "tskey-auth-x\n";
  EXPECT_TRUE(environment_problems(with("root", key)).empty());
  EXPECT_THAT(environment_problems(with("root", "/")).at(0), HasSubstr("is not a regular file"));
  std::remove(key.c_str());
}

TEST(Config, EnvironmentProblemsCaFile) {
  const std::string ca = ::testing::TempDir() + "lopower_ca_test.pem";
  auto with = [&](const std::string& ca_file) {
    return parse_config("[tailnet]\ncontrol_url = \"https://198.18.0.2:8443\"\nca_file = \"" + ca_file + "\"\n" + kPort,
                        "t.toml");
  };
  std::remove(ca.c_str());
  auto problems = environment_problems(with(ca));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "t.toml: tailnet.ca_file: " + ca + ": No such file or directory");
  std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n";
  EXPECT_TRUE(environment_problems(with(ca)).empty());
  EXPECT_THAT(environment_problems(with("/")).at(0), HasSubstr("tailnet.ca_file: / is not a regular file"));
  std::remove(ca.c_str());
}

TEST(Config, EalArgumentsTypical) {
  const config cfg = parse_config(
      "[dpdk]\nlcores = \"0-3\"\nmain_lcore = 1\nfile_prefix = \"lp\"\nmemory_mb = 2048\nextra_args = [\"--log-level=7\"]\n" + kPort,
      "t.toml");
  EXPECT_THAT(eal_arguments(cfg, "lopowerd"),
              ElementsAre("lopowerd", "-l", "0-3", "--main-lcore", "1", "--in-memory", "--file-prefix", "lp", "-m", "2048",
                          "--log-level=7"));
}

TEST(Config, EalArgumentsDefaultsAndNoHuge) {
  EXPECT_THAT(eal_arguments(parse_config(kPort, "t.toml"), "/usr/sbin/lopowerd"),
              ElementsAre("/usr/sbin/lopowerd", "-l", "0-1", "--in-memory"));
  const config cfg = parse_config("[dpdk]\nno_huge = true\nin_memory = false\nno_pci = true\n" + kPort, "t.toml");
  EXPECT_THAT(eal_arguments(cfg, "lopowerd"), ElementsAre("lopowerd", "-l", "0-1", "--no-huge", "--no-pci", "-m", "512"));
  const config isolated = parse_config("[dpdk]\nno_huge = true\n" + kPort, "t.toml");
  EXPECT_THAT(eal_arguments(isolated, "lopowerd"), ElementsAre("lopowerd", "-l", "0-1", "--no-huge", "--no-shconf", "-m", "512"));
}

TEST(Config, ToString) {
  EXPECT_STREQ(to_string(port_role::devices), "devices");
  EXPECT_STREQ(to_string(port_role::tailnet), "tailnet");
  EXPECT_STREQ(to_string(port_role::both), "both");
  EXPECT_STREQ(to_string(idle_policy::poll), "poll");
  EXPECT_STREQ(to_string(idle_policy::adaptive), "adaptive");
}

TEST(Config, ExampleFileLoads) {
  const config cfg = load_config_file(LOPOWER_SOURCE_DIR "/configs/lopower.example.toml");
  ASSERT_EQ(cfg.ports.size(), 2u);
  EXPECT_EQ(cfg.ports[0].role, port_role::devices);
  EXPECT_EQ(cfg.ports[1].role, port_role::tailnet);
  EXPECT_THAT(cfg.worker_lcores(), ElementsAre(1u, 2u));
}

// A small deterministic mutation fuzz over the example: every outcome must be
// a config or a config_error (ASan/UBSan catch the rest).
TEST(Config, MutatedExampleNeverCrashes) {
  std::ifstream in(LOPOWER_SOURCE_DIR "/configs/lopower.example.toml");
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string base = buf.str();
  ASSERT_FALSE(base.empty());
  std::mt19937 rng(12345);
  int accepted = 0, refused = 0;
  const std::string alphabet = "0123456789-,./:[]{}=\"'#\n -.e+xabf_";
  for (int round = 0; round < 3000; ++round) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % text.size();
      const char c = rng() % 8 == 0 ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
      if (rng() % 3 == 0) {
        text.erase(pos, 1 + rng() % 8);
      } else {
        text.insert(pos, 1 + rng() % 3, c);
      }
      if (text.empty()) text = "x";
    }
    try {
      parse_config(text, "fuzz.toml");
      ++accepted;
    } catch (const config_error&) {
      ++refused;
    }
  }
  // Both outcomes happened: the mutations reach past the parser's first check.
  EXPECT_GT(accepted, 0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(accepted + refused, 3000);
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

TEST(ConfigDevices, DefaultsMatchTheOriginal) {
  const config cfg = parse_config(kPort, "t.toml");
  ASSERT_TRUE(cfg.devices.ipv4_prefix);
  EXPECT_EQ(cfg.devices.ipv4_prefix->to_string(), "10.90.0.0/24");
  EXPECT_EQ(cfg.devices.ipv6_prefix.to_string(), "fd7a:115c:a1e0:9909::/64");
  EXPECT_EQ(cfg.devices.mtu, 1420);
  EXPECT_EQ(cfg.devices.keepalive, 25);
  EXPECT_FALSE(cfg.devices.route_all_ipv4);
  EXPECT_TRUE(cfg.devices.endpoint.empty());
  EXPECT_EQ(cfg.wireguard.crypto_backend, "auto");
  EXPECT_EQ(cfg.wireguard.rekey_after_seconds, 120u);
  EXPECT_EQ(cfg.wireguard.reject_after_seconds, 180u);
}

TEST(ConfigDevices, AllKeys) {
  const config cfg = parse_config(
      "[wireguard]\ncrypto_backend = \"libsodium\"\nrekey_after_seconds = 5\nreject_after_seconds = 9\n"
      "keepalive_timeout_seconds = 2\nhandshake_load_threshold = 8\n"
      "[devices]\nipv4_prefix = \"10.91.0.0/28\"\nipv6_prefix = \"fd00:1::/96\"\nendpoint = \"gw.example:51820\"\n"
      "mtu = 1280\nroute_all_ipv4 = true\nkeepalive = 0\n" + kPort,
      "t.toml");
  EXPECT_EQ(cfg.wireguard.crypto_backend, "libsodium");
  EXPECT_EQ(cfg.wireguard.rekey_after_seconds, 5u);
  EXPECT_EQ(cfg.wireguard.handshake_load_threshold, 8u);
  EXPECT_EQ(cfg.devices.ipv4_prefix->to_string(), "10.91.0.0/28");
  EXPECT_EQ(cfg.devices.ipv6_prefix.to_string(), "fd00:1::/96");
  EXPECT_EQ(cfg.devices.endpoint, "gw.example:51820");
  EXPECT_TRUE(cfg.devices.route_all_ipv4);
  EXPECT_EQ(cfg.devices.keepalive, 0);
}

TEST(ConfigDevices, Ipv4CanBeTurnedOff) {
  EXPECT_FALSE(parse_config("[devices]\nipv4 = false\n" + kPort, "t.toml").devices.ipv4_prefix);
}

TEST(ConfigDevices, EndpointsAccepted) {
  for (const char* e : {"198.18.0.1:51820", "[fd00:198:18::1]:51820", "lopower.example.net:1"})
    EXPECT_EQ(parse_config(std::string("[devices]\nendpoint = \"") + e + "\"\n" + kPort, "t.toml").devices.endpoint, e);
}

TEST(ConfigDevices, BadInputRefusedWithKey) {
  EXPECT_THAT(error_of("[devices]\nendpoint = \"no-port\"\n" + kPort), StartsWith("t.toml:2: devices.endpoint: \"no-port\" is not a usable endpoint"));
  EXPECT_THAT(error_of("[devices]\nendpoint = \"fd00::1:51820\"\n" + kPort), HasSubstr("devices.endpoint"));
  EXPECT_THAT(error_of("[devices]\nendpoint = \"h:70000\"\n" + kPort), HasSubstr("devices.endpoint"));
  EXPECT_THAT(error_of("[devices]\nipv4_prefix = \"10.90.0.1/24\"\n" + kPort), HasSubstr("host bits set (expected the network, e.g. \"10.90.0.0/24\")"));
  EXPECT_THAT(error_of("[devices]\nipv4_prefix = \"fd00::/64\"\n" + kPort), HasSubstr("devices.ipv4_prefix"));
  EXPECT_THAT(error_of("[devices]\nipv4_prefix = \"10.0.0.0/31\"\n" + kPort), HasSubstr("wrong length"));
  EXPECT_THAT(error_of("[devices]\nipv6_prefix = \"fd00::/48\"\n" + kPort), HasSubstr("devices.ipv6_prefix"));
  EXPECT_THAT(error_of("[devices]\nmtu = 1000\n" + kPort), HasSubstr("devices.mtu"));
  EXPECT_THAT(error_of("[devices]\nport = 1\n" + kPort), HasSubstr("devices.port: unknown key"));
  EXPECT_THAT(error_of("[wireguard]\ncrypto_backend = \"aesni\"\n" + kPort), HasSubstr("wireguard.crypto_backend"));
  EXPECT_THAT(error_of("[wireguard]\nrekey_after_seconds = 10\nreject_after_seconds = 10\n" + kPort),
              HasSubstr("wireguard.reject_after_seconds: 10 must be greater than rekey_after_seconds (10)"));
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

TEST(Config, FlowLimits) {
  const std::string port = "[[port]]\nname = \"lan\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n";
  const config c = parse_config("[dataplane]\nmax_flows = 1000\nmax_flows_per_device = 10\n" + port, "t.toml");
  EXPECT_EQ(c.dataplane.max_flows, 1000u);
  EXPECT_EQ(c.dataplane.max_flows_per_device, 10u);
  try {
    (void)parse_config("[dataplane]\nmax_flows = 100\nmax_flows_per_device = 200\n" + port, "t.toml");
    FAIL() << "a per-device limit above the total was accepted";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("t.toml:3: dataplane.max_flows_per_device: 200 is more than max_flows (100)"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, TailnetTable) {
  const std::string port = "[[port]]\nname = \"lan\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n";
  const config c = parse_config(
      "[tailnet]\ncontrol_url = \"http://198.18.0.2:8080\"\nhostname = \"gw-1\"\nadvertise_tags = [\"tag:iot\"]\n"
      "ephemeral = true\naccept_routes = true\nadvertise_endpoints = [\"203.0.113.7:41641\", \"[2001:db8::7]:41641\"]\n" +
          port,
      "t.toml");
  EXPECT_EQ(c.tailnet.control_url, "http://198.18.0.2:8080");
  EXPECT_EQ(c.tailnet.hostname, "gw-1");
  EXPECT_EQ(c.tailnet.advertise_tags, std::vector<std::string>{"tag:iot"});
  EXPECT_TRUE(c.tailnet.ephemeral);
  EXPECT_TRUE(c.tailnet.accept_routes);
  EXPECT_EQ(c.tailnet.advertise_endpoints.size(), 2u);
  const config tls = parse_config(
      "[tailnet]\ncontrol_url = \"https://198.18.0.2:8443\"\nca_file = \"/etc/lopower/ca.pem\"\n" + port, "t.toml");
  EXPECT_EQ(tls.tailnet.control_url, "https://198.18.0.2:8443");
  EXPECT_EQ(tls.tailnet.ca_file, "/etc/lopower/ca.pem");
  for (const char* bad : {"control_url = \"ftp://x\"", "ca_file = \"ca.pem\"", "hostname = \"no spaces\"", "advertise_tags = [\"iot\"]",
                          "advertise_endpoints = [\"example.com:41641\"]", "ephemeral = 1"}) {
    try {
      (void)parse_config(std::string("[tailnet]\n") + bad + "\n" + port, "t.toml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config_error& e) {
      EXPECT_NE(std::string(e.what()).find("t.toml:2: tailnet."), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lopower

namespace lopower {
namespace {

TEST(Config, DerpTable) {
  const std::string port = "[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n";
  const config none = parse_config(port, "t.toml");
  EXPECT_TRUE(none.derp.enabled) << "DERP is on unless turned off";
  EXPECT_FALSE(none.derp.plain_http);
  const config c = parse_config("[derp]\nenabled = false\nplain_http = true\nmap_file = \"/etc/lopower/derp.json\"\n" + port,
                                "t.toml");
  EXPECT_FALSE(c.derp.enabled);
  EXPECT_TRUE(c.derp.plain_http);
  EXPECT_EQ(c.derp.map_file, "/etc/lopower/derp.json");
  for (const char* bad : {"map_file = \"derp.json\"", "plain_http = \"yes\"", "regions = 1"}) {
    try {
      (void)parse_config(std::string("[derp]\n") + bad + "\n" + port, "t.toml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config_error& e) {
      EXPECT_NE(std::string(e.what()).find("t.toml:2: derp."), std::string::npos) << e.what();
    }
  }
}

TEST(Config, MetricsTable) {
  const std::string port = "[[port]]\nname = \"p\"\ndevice = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n";
  EXPECT_FALSE(parse_config(port, "t.toml").metrics.enabled()) << "no endpoint unless asked for";
  const config v4 = parse_config("[metrics]\nlisten = \"127.0.0.1:9586\"\n" + port, "t.toml");
  EXPECT_TRUE(v4.metrics.enabled());
  EXPECT_EQ(v4.metrics.address.to_string(), "127.0.0.1");
  EXPECT_EQ(v4.metrics.port, 9586);
  const config v6 = parse_config("[metrics]\nlisten = \"[::1]:9100\"\n" + port, "t.toml");
  EXPECT_EQ(v6.metrics.address.to_string(), "::1");
  EXPECT_EQ(v6.metrics.port, 9100);
  for (const char* bad : {"listen = \"localhost:9586\"", "listen = \"127.0.0.1\"", "listen = \"127.0.0.1:0\"",
                          "listen = \"127.0.0.1:70000\"", "listen = \"::1:9586\"", "listen = 9586", "port = 1"}) {
    try {
      (void)parse_config(std::string("[metrics]\n") + bad + "\n" + port, "t.toml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const config_error& e) {
      EXPECT_NE(std::string(e.what()).find("t.toml:2: metrics."), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lopower
