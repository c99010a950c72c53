#include "tools/loadgen/options.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>

#include "lopower/replay_window.h"

namespace lopower::loadgen {
namespace {

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parse_seconds(std::string_view text, double& out) {
  try {
    std::size_t used = 0;
    out = std::stod(std::string(text), &used);
    return used == text.size() && out >= 0;
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_ipv4(const std::string& text, std::uint32_t& out_be) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  out_be = a.s_addr;
  return true;
}

// "lopower", "tailnet[:PORT]" or "A.B.C.D:PORT".
bool parse_target(const std::string& text, options& o) {
  if (text == "lopower") {
    o.target_lopower = true;
    return true;
  }
  if (text.starts_with("tailnet")) {
    o.target_lopower = false;
    o.target_tailnet = true;
    o.target_port = 7;  // echo's port: nothing listens there, the node answers whatever the port
    return text == "tailnet" || (text[7] == ':' && parse_number(std::string_view(text).substr(8), o.target_port) &&
                                 o.target_port != 0);
  }
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  o.target_lopower = false;
  return parse_ipv4(text.substr(0, colon), o.target_ip_be) &&
         parse_number(std::string_view(text).substr(colon + 1), o.target_port) && o.target_port != 0;
}

bool parse_tailnet_mode(const std::string& text, options& o) {
  o.tailnet.echo = text == "echo";
  return text == "echo" || text == "sink";
}

// The first line of the file: a pre-auth key.
bool read_auth_key(const std::string& path, std::string& key) {
  std::ifstream in(path);
  return std::getline(in, key) && !key.empty();
}

// "64,576,1280" or "imix".
bool parse_sizes(const std::string& text, options& o) {
  if (text == "imix") {
    o.sizes = imix_sizes();
    return true;
  }
  o.sizes.clear();
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::uint16_t size = 0;
    if (!parse_number(rest.substr(0, comma), size) || size < 64 || size > 1420) return false;
    o.sizes.push_back(size);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return !o.sizes.empty();
}

// A pcap replayed once must fit lopower's replay window, with room for the
// keepalives the loadgen sends on the same keypair meanwhile (one per 10 s
// for at most 180 s).
constexpr unsigned max_pcap_packets_per_device = replay_window::window_size - 64;

// --tailnet and --target tailnet go together; the node's UDP port must not be a device's.
bool check_tailnet(options& o) {
  const char* problem = nullptr;
  if (o.target_tailnet && o.tailnet.control_url.empty()) problem = "--target tailnet needs --tailnet";
  else if (!o.tailnet.control_url.empty() && o.tailnet.auth_key.empty()) problem = "--tailnet needs --auth-key-file";
  else if (!o.tailnet.control_url.empty() && !o.pcap_file.empty()) problem = "--tailnet does not go with --write-pcap";
  if (o.tailnet.ip_be == 0) o.tailnet.ip_be = o.local_ip_be;
  if (o.tailnet.port_id == o.port_id) o.tailnet.port_id = -1;
  if (problem == nullptr && !o.tailnet.control_url.empty() && o.tailnet.ip_be == o.local_ip_be &&
      o.tailnet.port_id < 0 &&
      o.tailnet.udp_port >= o.first_udp_port && o.tailnet.udp_port < o.first_udp_port + o.devices)
    problem = "--tailnet-udp-port is one of the devices' UDP ports";
  if (problem != nullptr) std::fprintf(stderr, "lopower-loadgen: %s\n", problem);
  return problem == nullptr;
}

}  // namespace

std::vector<std::uint16_t> imix_sizes() {
  std::vector<std::uint16_t> out;
  // Interleaved rather than 7 x 64 then 4 x 576 ...: the mix holds over any few bursts.
  for (unsigned i = 0; i < 4; ++i) out.insert(out.end(), {64, 576});
  out.insert(out.end(), {64, 64, 64, 1280});
  return out;
}

void print_usage() {
  std::fputs(
      "usage: lopower-loadgen [EAL options] -- --local-ip A.B.C.D [options]\n"
      "  EAL options: e.g. --no-huge --no-pci --file-prefix lg --vdev net_memif0,role=client,socket=/run/x.sock\n"
      "  --ctl-socket PATH      lopowerd's control socket (devices are enrolled through it)\n"
      "  --devices N            devices to play (default 1)\n"
      "  --name-prefix P        device names P-0, P-1, ... (default loadgen)\n"
      "  --keep-devices         leave the devices enrolled at exit\n"
      "  --replace-devices      remove devices of the same names first (an earlier run's: kept, or left by a crash)\n"
      "  --port-id N            DPDK port to use (default 0)\n"
      "  --local-ip A.B.C.D     the devices' outer address, on lopower's link (required)\n"
      "  --first-udp-port P     device i sends WireGuard from P+i (default 40000)\n"
      "  --target lopower|IP:PORT   ICMP echo to lopower's device-side address (default), or UDP to a tailnet peer\n"
      "  --sizes S[,S...]|imix  inner IP packet sizes, 64..1420, sent in turn (imix: 7:4:1 of 64/576/1280)\n"
      "  --flows N              flows per device: distinct source ports / echo identifiers (default 1)\n"
      "  --rate PPS             packets per second over all devices; 0: as fast as the port takes them (default)\n"
      "  --duration S           seconds of traffic (default 10)\n"
      "  --handshake-timeout S  give up when not every device has a session by then (default 30)\n"
      "  --drain S              after the traffic: seconds replies may still arrive (default 1)\n"
      "  --json FILE            the final report, with per-second samples\n"
      "  --write-pcap FILE      write the encrypted device traffic to FILE (for pktgen-dpdk) instead of sending\n"
      "                         it, then keep the session alive until --duration ends (tools/loadgen/README.md)\n"
      "  --pcap-packets N       frames in the pcap (default 8000), at most 8064 per device: inside the replay window\n"
      "  --peers-file FILE      devices and gateway from FILE (TOML, tools/loadgen/peers_file.h) instead of\n"
      "                         enrolling through --ctl-socket: drives any WireGuard gateway (one device per [[device]])\n"
      "  --quiet                no progress line per second\n"
      "  --tailnet CONTROL_URL  run a tailnet node too, registered there, that terminates the flows lopower\n"
      "                         splices onto the tailnet (with --target tailnet[:PORT]; README.md)\n"
      "  --auth-key-file F      the node's pre-auth key (first line of F)\n"
      "  --tailnet-ip A.B.C.D   the node's outer address on the port (default: --local-ip)\n"
      "  --tailnet-udp-port P   the node's UDP port there (default 41641)\n"
      "  --tailnet-port-id N    the node on DPDK port N (e.g. a second --vdev) instead of the devices' port\n"
      "  --lopower-hostname H   lopower's name in the netmap (default lopower)\n"
      "  --tailnet-hostname H   the node's own name (default lopower-loadgen)\n"
      "  --tailnet-mode echo|sink  echo the flows back to the devices (default), or only count them\n"
      "  --busy-poll            never sleep when idle (by default an idle turn sleeps up to 100 us, which\n"
      "                         leaves the core to others but can add as much to a reply's latency)\n",
      stderr);
}

std::optional<options> parse_options(int argc, char** argv) {
  options o;
  bool have_local_ip = false;
  for (int i = 0; i < argc; ++i) {
    const std::string w = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    auto take = [&]() -> std::string {
      ++i;
      return value;
    };
    bool ok = true;
    if (w == "--keep-devices") o.keep_devices = true;
    else if (w == "--replace-devices") o.replace_devices = true;
    else if (w == "--quiet") o.quiet = true;
    else if (w == "--busy-poll") o.busy_poll = true;
    else if (w == "--help" || w == "-h") {
      print_usage();
      return std::nullopt;
    }
    else if (value == nullptr) ok = false;
    else if (w == "--ctl-socket") o.ctl_socket = take();
    else if (w == "--devices") ok = parse_number(take(), o.devices) && o.devices > 0 && o.devices <= 65535;
    else if (w == "--name-prefix") o.name_prefix = take();
    else if (w == "--port-id") ok = parse_number(take(), o.port_id);
    else if (w == "--local-ip") ok = have_local_ip = parse_ipv4(take(), o.local_ip_be);
    else if (w == "--first-udp-port") ok = parse_number(take(), o.first_udp_port) && o.first_udp_port != 0;
    else if (w == "--target") ok = parse_target(take(), o);
    else if (w == "--sizes") ok = parse_sizes(take(), o);
    else if (w == "--flows") ok = parse_number(take(), o.flows) && o.flows > 0 && o.flows <= 16384;
    else if (w == "--rate") ok = parse_number(take(), o.rate_pps);
    else if (w == "--duration") ok = parse_seconds(take(), o.duration_s);
    else if (w == "--handshake-timeout") ok = parse_seconds(take(), o.handshake_timeout_s);
    else if (w == "--drain") ok = parse_seconds(take(), o.drain_s);
    else if (w == "--json") o.json_file = take();
    else if (w == "--write-pcap") o.pcap_file = take();
    else if (w == "--peers-file") o.peers_file = take();
    else if (w == "--tailnet") o.tailnet.control_url = take();
    else if (w == "--auth-key-file") ok = read_auth_key(take(), o.tailnet.auth_key);
    else if (w == "--tailnet-ip") ok = parse_ipv4(take(), o.tailnet.ip_be);
    else if (w == "--tailnet-port-id") ok = parse_number(take(), o.tailnet.port_id) && o.tailnet.port_id >= 0;
    else if (w == "--tailnet-udp-port") ok = parse_number(take(), o.tailnet.udp_port) && o.tailnet.udp_port != 0;
    else if (w == "--lopower-hostname") o.tailnet.lopower_hostname = take();
    else if (w == "--tailnet-hostname") o.tailnet.hostname = take();
    else if (w == "--tailnet-mode") ok = parse_tailnet_mode(take(), o);
    else if (w == "--pcap-packets") ok = parse_number(take(), o.pcap_packets) && o.pcap_packets > 0;
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "lopower-loadgen: bad or unknown argument %s%s%s\n", w.c_str(), value ? " " : "",
                   value ? value : "");
      print_usage();
      return std::nullopt;
    }
  }
  if (!have_local_ip) {
    std::fputs("lopower-loadgen: --local-ip is required\n", stderr);
    return std::nullopt;
  }
  if (!check_tailnet(o)) return std::nullopt;
  if (o.first_udp_port + o.devices - 1 > 65535u) {
    std::fputs("lopower-loadgen: --first-udp-port + --devices goes beyond port 65535\n", stderr);
    return std::nullopt;
  }
  // The devices take the frames in turn: each device's share must fit.
  if ((o.pcap_packets + o.devices - 1) / o.devices > max_pcap_packets_per_device) {
    std::fprintf(stderr, "lopower-loadgen: --pcap-packets allows at most %u frames per device (the replay window)\n",
                 max_pcap_packets_per_device);
    return std::nullopt;
  }
  if (!o.pcap_file.empty() && o.duration_s >= 180)
    std::fputs("lopower-loadgen: note: lopower drops the pcap's frames once its keypair is 180 s old (REJECT_AFTER_TIME)\n",
               stderr);
  return o;
}

}  // namespace lopower::loadgen
