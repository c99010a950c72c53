#include "tools/loadgen/port.h"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace lopower::loadgen {
namespace {

std::runtime_error port_error(std::uint16_t id, const std::string& what, int rc) {
  return std::runtime_error("port " + std::to_string(id) + ": " + what + ": " + std::strerror(rc < 0 ? -rc : rc));
}

const rte_arp_hdr* arp_of(const rte_mbuf* m) {
  if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) return nullptr;
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) return nullptr;
  const auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, sizeof(rte_ether_hdr));
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != 6 || arp->arp_plen != 4)
    return nullptr;
  return arp;
}

}  // namespace

link_port open_port(std::uint16_t id, rte_mempool* pool, double link_timeout_s) {
  if (!rte_eth_dev_is_valid_port(id))
    throw std::runtime_error("no DPDK port " + std::to_string(id) + " (give EAL a --vdev or a PCI device)");
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(id, 1, 1, &conf); rc != 0) throw port_error(id, "configure", rc);
  std::uint16_t rx_desc = 1024, tx_desc = 1024;
  rte_eth_dev_adjust_nb_rx_tx_desc(id, &rx_desc, &tx_desc);
  const int socket = rte_eth_dev_socket_id(id);
  const unsigned socket_id = socket < 0 ? 0u : static_cast<unsigned>(socket);
  if (int rc = rte_eth_rx_queue_setup(id, 0, rx_desc, socket_id, nullptr, pool); rc != 0) throw port_error(id, "RX queue", rc);
  if (int rc = rte_eth_tx_queue_setup(id, 0, tx_desc, socket_id, nullptr); rc != 0) throw port_error(id, "TX queue", rc);
  if (int rc = rte_eth_dev_start(id); rc != 0) throw port_error(id, "start", rc);
  rte_eth_promiscuous_enable(id);  // lopower answers the MAC it saw; some PMDs filter otherwise
  link_port port{id, {}, pool};
  rte_eth_macaddr_get(id, &port.mac);
  const std::uint64_t deadline = rte_get_tsc_cycles() + static_cast<std::uint64_t>(link_timeout_s * rte_get_tsc_hz());
  for (;;) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) break;
    if (rte_get_tsc_cycles() > deadline) throw std::runtime_error("port " + std::to_string(id) + ": link stays down");
    // Sleeping, not rte_delay_ms's busy wait: the memif connection is made
    // by EAL's interrupt threads (ours and lopowerd's), which may share this core.
    rte_delay_us_sleep(10000);
  }
  return port;
}

void close_port(const link_port& port) {
  rte_eth_dev_stop(port.id);
  rte_eth_dev_close(port.id);
}

unsigned send_burst(const link_port& port, rte_mbuf** frames, unsigned n) {
  const unsigned sent = n == 0 ? 0 : rte_eth_tx_burst(port.id, 0, frames, static_cast<std::uint16_t>(n));
  if (sent < n) rte_pktmbuf_free_bulk(frames + sent, n - sent);
  return sent;
}

rte_mbuf* arp_request(const link_port& port, std::uint32_t self_be, std::uint32_t target_be) {
  rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
  if (m == nullptr) return nullptr;
  const auto length = static_cast<std::uint16_t>(sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr));
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, length));
  if (eth == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(&eth->dst_addr, 0xff, sizeof eth->dst_addr);
  eth->src_addr = port.mac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = 6;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = port.mac;
  arp->arp_data.arp_sip = self_be;
  std::memset(&arp->arp_data.arp_tha, 0, sizeof arp->arp_data.arp_tha);
  arp->arp_data.arp_tip = target_be;
  return m;
}

bool answer_arp(rte_mbuf* m, const link_port& port, std::uint32_t self_be) {
  const rte_arp_hdr* seen = arp_of(m);
  if (seen == nullptr || seen->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) || seen->arp_data.arp_tip != self_be)
    return false;
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, sizeof(rte_ether_hdr));
  eth->dst_addr = arp->arp_data.arp_sha;
  eth->src_addr = port.mac;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sha = port.mac;
  arp->arp_data.arp_sip = self_be;
  return true;
}

bool arp_sender_mac(const rte_mbuf* m, std::uint32_t sender_be, rte_ether_addr& mac) {
  const rte_arp_hdr* arp = arp_of(m);
  if (arp == nullptr || arp->arp_data.arp_sip != sender_be) return false;
  mac = arp->arp_data.arp_sha;
  return true;
}

}  // namespace lopower::loadgen
