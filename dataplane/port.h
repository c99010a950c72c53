#pragma once
// One configured port: the DPDK ethdev (PCI NIC or virtual device), its
// queues (one RX/TX pair per worker), RSS where the PMD offers it, and the
// exception-path TAP that mirrors it into the host kernel.

#include <rte_ether.h>
#include <rte_mempool.h>

#include <cstdint>
#include <string>

#include "dataplane/classifier.h"
#include "dataplane/worker.h"
#include "lopower/dataplane_config.h"

namespace lopower {

struct port_runtime {
  port_config config;
  std::uint8_t index = 0;            // position in the config
  std::uint16_t port_id = no_port;
  std::uint16_t tap_id = no_port;
  std::uint16_t queues = 0;
  bool probed_by_us = false;         // lopowerd hot-plugged the device, so it removes it at exit
  bool rss = false;
  std::string driver;
  rte_ether_addr mac{};
  port_identity identity;            // what the classifier needs; read by every worker
};

struct port_link {
  bool up = false;
  std::uint32_t speed_mbps = 0;
  bool full_duplex = false;
};

// Probes the device unless EAL already did, configures `queues` queue pairs
// and starts it. Throws std::runtime_error with an operator-facing message
// naming the port and the config key at fault.
void open_port(port_runtime& port, std::uint16_t queues, rte_mempool* pool, std::uint16_t wireguard_port,
               std::uint16_t tailnet_port, const std::string& config_path);

// Creates the TAP (same MAC), starts it with `queues` queue pairs, and gives
// the kernel side the port's MTU, addresses and default routes.
void open_exception_path(port_runtime& port, std::uint16_t queues, rte_mempool* pool);

// Stops and closes both devices; removes what lopowerd hot-plugged (the TAP
// disappears from the kernel). Safe to call twice.
void close_port(port_runtime& port);

port_link link_of(std::uint16_t port_id);
std::string mac_to_string(const rte_ether_addr& mac);

}  // namespace lopower
