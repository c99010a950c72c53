#include "dataplane/port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>

#include <arpa/inet.h>

#include <cstring>
#include <functional>
#include <stdexcept>

#include "dataplane/kernel_interface.h"

namespace lopower {
namespace {

std::runtime_error port_error(const port_runtime& port, const std::string& path, const std::string& key,
                              const std::string& what) {
  return std::runtime_error(path + ":" + std::to_string(port.config.line) + ": port[" + std::to_string(port.index + 1) +
                            "]." + key + ": " + what);
}

// "net_af_packet0,iface=x" is known to ethdev as "net_af_packet0"; a PCI
// address is its own name.
std::string device_name(const std::string& device) { return device.substr(0, device.find(',')); }

std::uint16_t probe(port_runtime& port, const std::string& path) {
  const std::string name = device_name(port.config.device);
  std::uint16_t id;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) == 0) return id;  // EAL's command line already had it
  const int rc = rte_dev_probe(port.config.device.c_str());
  if (rc != 0 && rc != -EEXIST)
    throw port_error(port, path, "device", "cannot probe \"" + port.config.device + "\": " + std::strerror(-rc) +
                                               " (a PCI device needs EAL without --no-pci and a DPDK-bound driver)");
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
    throw port_error(port, path, "device", "\"" + port.config.device + "\" was probed but is not an Ethernet device");
  port.probed_by_us = rc == 0;
  return id;
}

rte_eth_conf port_conf(port_runtime& port, const rte_eth_dev_info& info, std::uint16_t queues) {
  rte_eth_conf conf{};
  // Spread UDP flows over the workers by 5-tuple: each WireGuard peer's
  // packets then stay on one lcore, in order.
  const std::uint64_t wanted = RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP;
  const std::uint64_t offered = info.flow_type_rss_offloads & wanted;
  if (queues > 1 && offered != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = offered;
    port.rss = true;
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  return conf;
}

void setup_queues(std::uint16_t id, std::uint16_t queues, std::uint16_t rx_desc, std::uint16_t tx_desc, rte_mempool* pool,
                  const std::function<std::runtime_error(const std::string&)>& fail) {
  const int socket = rte_eth_dev_socket_id(id);
  for (std::uint16_t q = 0; q < queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(id, q, rx_desc, static_cast<unsigned>(socket), nullptr, pool); rc != 0)
      throw fail("RX queue " + std::to_string(q) + ": " + std::strerror(-rc));
    if (int rc = rte_eth_tx_queue_setup(id, q, tx_desc, static_cast<unsigned>(socket), nullptr); rc != 0)
      throw fail("TX queue " + std::to_string(q) + ": " + std::strerror(-rc));
  }
}

void fill_identity(port_runtime& port, std::uint16_t wireguard_port, std::uint16_t tailnet_port, const std::string& path) {
  for (const ip_prefix& p : port.config.addresses)
    if (!port.identity.add_address(p.address))
      throw port_error(port, path, "addresses",
                       "at most " + std::to_string(port_identity::max_addresses) + " addresses per family on one port");
  const bool devices = serves_devices(port.config.role);
  const bool tailnet = serves_tailnet(port.config.role);
  port.identity.device_port_be = devices ? htons(wireguard_port) : 0;
  port.identity.tailnet_port_be = tailnet ? htons(tailnet_port) : 0;
  port.identity.uplink = port.config.role == port_role::uplink;
  port.identity.nat_first_port = port.config.nat_first_port;
  port.identity.nat_last_port = port.config.nat_last_port;
}

}  // namespace

std::string mac_to_string(const rte_ether_addr& mac) {
  char buf[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(buf, sizeof buf, &mac);
  return buf;
}

void open_port(port_runtime& port, std::uint16_t queues, rte_mempool* pool, std::uint16_t wireguard_port,
               std::uint16_t tailnet_port, const std::string& config_path) {
  port.port_id = probe(port, config_path);
  port.queues = queues;
  auto fail = [&](const std::string& what) { return port_error(port, config_path, "device", what); };
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(port.port_id, &info) != 0) throw fail("cannot read device info");
  port.driver = info.driver_name != nullptr ? info.driver_name : "?";
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    throw fail("device offers " + std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
               " queue pair(s) but there are " + std::to_string(queues) +
               " worker lcores (one queue pair per worker; give the device more queues, e.g. qpairs=N for "
               "net_af_packet, or fewer lcores in dpdk.lcores)");
  const rte_eth_conf conf = port_conf(port, info, queues);
  if (int rc = rte_eth_dev_configure(port.port_id, queues, queues, &conf); rc != 0)
    throw fail(std::string("cannot configure: ") + std::strerror(-rc));
  std::uint16_t rx_desc = port.config.rx_descriptors, tx_desc = port.config.tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port.port_id, &rx_desc, &tx_desc);
  setup_queues(port.port_id, queues, rx_desc, tx_desc, pool, fail);
  if (int rc = rte_eth_dev_set_mtu(port.port_id, port.config.mtu); rc != 0 && rc != -ENOTSUP)
    throw port_error(port, config_path, "mtu", "device refused MTU " + std::to_string(port.config.mtu) + ": " + std::strerror(-rc));
  if (int rc = rte_eth_dev_start(port.port_id); rc != 0) throw fail(std::string("cannot start: ") + std::strerror(-rc));
  // IPv6 neighbour discovery needs solicited-node multicast.
  rte_eth_allmulticast_enable(port.port_id);
  rte_eth_macaddr_get(port.port_id, &port.mac);
  fill_identity(port, wireguard_port, tailnet_port, config_path);
}

void open_exception_path(port_runtime& port, std::uint16_t queues, rte_mempool* pool) {
  const std::string vdev = "net_tap_" + port.config.name;
  const std::string args = vdev + ",iface=" + port.config.tap_name + ",mac=" + mac_to_string(port.mac);
  auto fail = [&](const std::string& what) {
    return std::runtime_error("port " + port.config.name + ": exception path TAP " + port.config.tap_name + ": " + what);
  };
  if (int rc = rte_dev_probe(args.c_str()); rc != 0) throw fail(std::string("cannot create: ") + std::strerror(-rc));
  if (rte_eth_dev_get_port_by_name(vdev.c_str(), &port.tap_id) != 0) throw fail("created but not found");
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port.tap_id, queues, queues, &conf); rc != 0)
    throw fail(std::string("cannot configure: ") + std::strerror(-rc));
  setup_queues(port.tap_id, queues, 512, 512, pool, fail);
  rte_eth_dev_set_mtu(port.tap_id, port.config.mtu);
  if (int rc = rte_eth_dev_start(port.tap_id); rc != 0) throw fail(std::string("cannot start: ") + std::strerror(-rc));
  const kernel_interface kif(port.config.tap_name);
  kif.set_up();
  for (const ip_prefix& p : port.config.addresses) kif.add_address(p);
  // A metric per port keeps several ports' default routes from colliding.
  const unsigned metric = 100 + port.index;
  if (port.config.gateway4) kif.add_default_route(*port.config.gateway4, metric);
  if (port.config.gateway6) kif.add_default_route(*port.config.gateway6, metric);
}

void close_port(port_runtime& port) {
  if (port.tap_id != no_port) {
    // Closing the TAP deletes the kernel interface; removing the virtual
    // device frees its name for a later instance.
    rte_eth_dev_stop(port.tap_id);
    rte_eth_dev_close(port.tap_id);
    rte_eal_hotplug_remove("vdev", ("net_tap_" + port.config.name).c_str());
    port.tap_id = no_port;
  }
  if (port.port_id != no_port) {
    rte_eth_dev_stop(port.port_id);
    rte_eth_dev_close(port.port_id);
    if (port.probed_by_us && port.config.device.rfind("net_", 0) == 0)
      rte_eal_hotplug_remove("vdev", device_name(port.config.device).c_str());
    port.port_id = no_port;
  }
}

port_link link_of(std::uint16_t port_id) {
  rte_eth_link link{};
  port_link out;
  if (rte_eth_link_get_nowait(port_id, &link) != 0) return out;
  out.up = link.link_status == RTE_ETH_LINK_UP;
  out.speed_mbps = link.link_speed;
  out.full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
  return out;
}

}  // namespace lopower
