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

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>

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
}

// Everything after EAL is up; the exit code.
int run_loadgen(const lopower::loadgen::options& o) {
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
  fleet devices(o, port, *aead);
  int rc = 1;
  try {
    devices.enrol();
    run r(o, port, devices, *aead, stop_requested);
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
