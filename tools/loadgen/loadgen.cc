// lopower-loadgen: plays N WireGuard devices against lopowerd over a DPDK
// port (memif, net_af_packet or a real NIC) and measures what comes back.
//
//   lopower-loadgen [EAL options] -- --local-ip A.B.C.D [options]   (--help lists them)
//
// tools/loadgen/README.md describes it, its JSON report and --write-pcap.

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "tools/loadgen/cipher_bound.h"
#include "tools/loadgen/run.h"

namespace {

std::atomic<bool> stop_requested{false};

void request_stop(int) { stop_requested.store(true); }

std::string ipv4_text(std::uint32_t be) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, &be, buf, sizeof buf) != nullptr ? buf : "?";
}

nlohmann::json setup_json(const lopower::loadgen::options& o, const lopower::crypto::aead_backend& aead) {
  rte_eth_dev_info info{};
  rte_eth_dev_info_get(o.port_id, &info);
  return {{"devices", o.devices},
          {"target", o.target_lopower ? std::string("lopower") : ipv4_text(o.target_ip_be) + ":" + std::to_string(o.target_port)},
          {"sizes", o.sizes},
          {"flows", o.flows},
          {"rate_pps", o.rate_pps},
          {"duration_s", o.duration_s},
          {"port_driver", info.driver_name != nullptr ? info.driver_name : "?"},
          {"aead", aead.describe()},
          {"pcap", o.pcap_file}};
}

bool write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  return static_cast<bool>(out);
}

// The bound, and the share of it delivered (the packets lopower opened and
// sealed, one core's worth of cryptography each), in the report and on stderr.
void add_cipher_bound(nlohmann::json& report, const std::optional<double>& bound) {
  if (!bound) {
    report["cipher_bound_pps"] = nullptr;
    return;
  }
  const double delivered = report["delivered"]["pps"].get<double>();
  report["cipher_bound_pps"] = *bound;
  report["delivered_share_of_bound"] = delivered / *bound;
  std::fprintf(stderr, "cipher bound %.0f pps (one core opening and sealing these sizes): delivered %.1f %% of it\n",
               *bound, 100.0 * delivered / *bound);
  if (!report.contains("tailnet")) return;
  // Through the splice lopower opens and seals every packet of both directions.
  const double moved = report["tailnet"]["lopower_moved_pps"].get<double>();
  report["tailnet"]["lopower_share_of_bound"] = moved / *bound;
  std::fprintf(stderr, "lopower moved %.0f pps both ways: %.1f %% of the bound\n", moved, 100.0 * moved / *bound);
}

std::string text_of(const lopower::loadgen::udp_endpoint& e) {
  std::uint32_t be = 0;
  std::memcpy(&be, e.ip, 4);
  return ipv4_text(be);
}

// The node's keys: a fresh node per run (it registers as ephemeral), removed at exit.
std::string tailnet_state_dir() { return "/tmp/lopower-loadgen-" + std::to_string(getpid()); }

// --tailnet: the node registered and lopower in its netmap; --target
// tailnet then sends to the node's tailnet IPv4 address. nullptr after a message.
std::unique_ptr<lopower::loadgen::tailnet_node> start_tailnet_node(lopower::loadgen::options& o) {
  using namespace lopower::loadgen;
  tailnet_node_options n;
  n.control_url = o.tailnet.control_url;
  n.auth_key = o.tailnet.auth_key;
  n.hostname = o.tailnet.hostname;
  n.lopower_hostname = o.tailnet.lopower_hostname;
  n.state_dir = tailnet_state_dir();
  std::memcpy(n.local.ip, &o.tailnet.ip_be, 4);
  n.local.port = o.tailnet.udp_port;
  n.start_timeout_ms = static_cast<std::uint32_t>(o.handshake_timeout_s * 1000);
  auto node = std::make_unique<tailnet_node>(n);
  std::string error;
  if (!node->start(error)) {
    std::fprintf(stderr, "lopower-loadgen: tailnet node: %s\n", error.c_str());
    return nullptr;
  }
  for (const udp_endpoint& a : node->own_addresses())
    if (!a.ipv6 && o.target_tailnet) std::memcpy(&o.target_ip_be, a.ip, 4);
  if (o.target_tailnet && o.target_ip_be == 0) {
    std::fputs("lopower-loadgen: tailnet node: no IPv4 tailnet address\n", stderr);
    return nullptr;
  }
  if (!o.quiet) {
    const auto own = node->own_addresses();
    std::fprintf(stderr, "lopower-loadgen: tailnet node %s registered, %s in its netmap\n",
                 own.empty() ? "?" : text_of(own.front()).c_str(), o.tailnet.lopower_hostname.c_str());
  }
  return node;
}

// Everything after EAL is up; the exit code.
int run_loadgen(lopower::loadgen::options o) {
  using namespace lopower::loadgen;
  rte_mempool* pool = rte_pktmbuf_pool_create("loadgen", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == nullptr) {
    std::fprintf(stderr, "lopower-loadgen: cannot create the mbuf pool (give EAL more memory: -m)\n");
    return 1;
  }
  auto aead = lopower::crypto::make_fastest_backend();
  if (!aead) {
    std::fputs("lopower-loadgen: no AEAD backend initialises on this CPU\n", stderr);
    return 1;
  }
  // Before any traffic: the measurement must not compete with it.
  const std::optional<double> bound = cipher_bound_pps(std::string(aead->name()), o.sizes);
  const link_port port = open_port(o.port_id, pool, 30);
  std::unique_ptr<tailnet_node> node;
  std::unique_ptr<tailnet_path> node_path;
  std::optional<link_port> node_port;
  if (!o.tailnet.control_url.empty()) {
    if (!(node = start_tailnet_node(o))) {
      std::error_code ignored;
      std::filesystem::remove_all(tailnet_state_dir(), ignored);
      close_port(port);
      return 1;
    }
    if (o.tailnet.port_id >= 0) node_port = open_port(static_cast<std::uint16_t>(o.tailnet.port_id), pool, 30);
    node_path = std::make_unique<tailnet_path>(o, node_port ? *node_port : port, node_port.has_value(), *aead, *node,
                                               o.devices);
  }
  fleet devices(o, port, *aead);
  int rc = 1;
  try {
    devices.enrol();
    run r(o, port, devices, *aead, stop_requested, node_path.get());
    if (r.find_lopower() && r.establish_sessions()) {
      if (o.pcap_file.empty()) {
        r.send_traffic();
        rc = 0;
      } else if (r.write_pcap()) {
        r.keep_session();
        rc = 0;
      }
    }
    r.print_summary();
    nlohmann::json report = r.report_json(setup_json(o, *aead));
    add_cipher_bound(report, bound);
    if (!o.json_file.empty() && !write_json(o.json_file, report)) {
      std::fprintf(stderr, "lopower-loadgen: cannot write %s\n", o.json_file.c_str());
      rc = 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopower-loadgen: %s\n", e.what());
  }
  devices.remove_all();
  node_path.reset();
  if (node_port) close_port(*node_port);
  if (node) {
    node->stop();
    std::error_code ignored;
    std::filesystem::remove_all(tailnet_state_dir(), ignored);
  }
  close_port(port);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const int eal_words = rte_eal_init(argc, argv);
  if (eal_words < 0) {
    std::fprintf(stderr, "lopower-loadgen: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
    lopower::loadgen::print_usage();
    return 2;
  }
  // EAL leaves the program name in front of the words it did not take.
  const auto opts = lopower::loadgen::parse_options(argc - eal_words - 1, argv + eal_words + 1);
  if (!opts) {
    rte_eal_cleanup();
    return 2;
  }
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  int rc = 1;
  try {
    rc = run_loadgen(*opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopower-loadgen: %s\n", e.what());
  }
  rte_eal_cleanup();
  return rc;
}
