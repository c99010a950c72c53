#pragma once
// lopower-loadgen's command line: the words after EAL's (`--` separates
// them, as in every DPDK program).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lopower::loadgen {

struct options {
  std::string ctl_socket = "/run/lopower/lopower.sock";
  unsigned devices = 1;
  std::string name_prefix = "loadgen";
  bool keep_devices = false;        // leave them enrolled at exit
  bool replace_devices = false;     // a device of the same name (an earlier run's) is removed first
  std::uint16_t port_id = 0;        // the DPDK port (after EAL: its --vdev or PCI device)
  std::uint32_t local_ip_be = 0;    // the devices' outer IPv4 address, on lopower's link
  std::uint16_t first_udp_port = 40000;  // device i sends WireGuard from first_udp_port + i
  // Traffic: ICMP echo to lopower's own device-side address, or UDP to a tailnet peer.
  bool target_lopower = true;
  std::uint32_t target_ip_be = 0;
  std::uint16_t target_port = 0;
  std::vector<std::uint16_t> sizes{64};  // inner IP packet sizes, sent in this repeating order
  unsigned flows = 1;                    // per device: distinct inner source ports (ICMP: echo identifiers)
  std::uint64_t rate_pps = 0;            // 0: as fast as the port takes them
  double duration_s = 10;
  double handshake_timeout_s = 30;
  double drain_s = 1;                    // after the last packet: how long replies may still come
  std::string json_file;
  std::string pcap_file;                 // --write-pcap: write the traffic instead of sending it
  unsigned pcap_packets = 8000;
  bool quiet = false;                    // no progress lines
  bool busy_poll = false;                // never sleep on an idle turn (latency to the microsecond, a core spent)
  // --peers-file: devices and gateway from this file (peers_file.h), not enrolled through --ctl-socket.
  std::string peers_file;
  // --tailnet: the loadgen's own tailnet node (tailnet/tailnet_node.h) terminates the spliced flows.
  struct tailnet_side {
    std::string control_url;               // empty: no node
    std::string auth_key;                  // read from --auth-key-file
    std::string lopower_hostname = "lopower";
    std::string hostname = "lopower-loadgen";
    std::uint32_t ip_be = 0;               // the node's outer address on the port (default: --local-ip)
    std::uint16_t udp_port = 41641;
    int port_id = -1;                      // --tailnet-port-id: a DPDK port of its own (-1: the devices')
    bool echo = true;                      // --tailnet-mode echo|sink
  } tailnet;
  bool target_tailnet = false;           // --target tailnet[:PORT]: UDP to the node's tailnet address
};

// Parses argv (the words after `--`); nullopt after a message on stderr.
std::optional<options> parse_options(int argc, char** argv);
void print_usage();

// "7:4:1" of 64/576/1280 as a repeating order of 12 sizes.
std::vector<std::uint16_t> imix_sizes();

}  // namespace lopower::loadgen
