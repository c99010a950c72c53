#pragma once
// lopower's DNS server for its devices, at its device-side addresses
// (10.90.0.1, fd7a:115c:a1e0:9909::1) on UDP port 53, answered on the
// control thread: a worker hands each query up, dns::answerer decides
// (MagicDNS names from the netmap, split DNS, forwarding), and the answer
// goes back through the device's WireGuard session. Forwarded queries leave
// through the kernel (lopower's own UDP sockets, over the exception path or
// the host's network) with an ID of ours; the first answer that matches
// the question goes back to the device, and a query nobody answers in time
// gets SERVFAIL.
//
// TCP (for answers too big for UDP, after TC) is not served yet: devices
// that retry over TCP get no answer. It plugs in with a host stack (lwIP)
// on lopower's device-side addresses.

#include <rte_mbuf.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/dns/dns_answerer.h"
#include "control/enrollment/device_registry.h"
#include "control/event_loop.h"
#include "control/tailnet/netmap/netmap.h"
#include "control/wireguard_server.h"

namespace lopower {

class dns_service {
 public:
  dns_service(event_loop& loop, const config& cfg, const enrollment::device_registry& registry,
              wireguard_server& devices);
  ~dns_service();
  dns_service(const dns_service&) = delete;
  dns_service& operator=(const dns_service&) = delete;

  // The tailnet's names and DNS config (nullptr: none, e.g. logged out).
  void update(const tailnet::netmap* nm);
  // A device's query (an inner UDP packet to port 53); takes the mbuf.
  void handle_query_packet(rte_mbuf* m);
  // Expires forwarded queries; call every ~100 ms.
  void tick();
  nlohmann::json status_json() const;

 private:
  struct pending {
    std::string device;
    ip_address device_addr, our_addr;
    std::uint16_t device_port = 0, device_id = 0;
    std::vector<std::uint8_t> sent;  // as sent upstream (our ID)
    std::chrono::steady_clock::time_point deadline;
  };
  void answer(const std::string& device, const ip_address& from, const ip_address& to, std::uint16_t to_port,
              std::span<const std::uint8_t> message);
  void forward(pending p, const std::vector<std::string>& resolvers);
  void on_upstream(int fd);
  std::string device_with_address(const ip_address& a) const;

  event_loop& loop_;
  const config& cfg_;
  const enrollment::device_registry& registry_;
  wireguard_server& devices_;
  std::unique_ptr<dns::answerer> answerer_;
  int sock4_ = -1, sock6_ = -1;
  std::map<std::uint16_t, pending> pending_;  // by our ID
  std::array<std::uint64_t, dns::outcome_count> outcomes_{};
  std::uint64_t upstream_answers_ = 0, upstream_refused_ = 0, timeouts_ = 0, unknown_device_ = 0;
};

}  // namespace lopower
