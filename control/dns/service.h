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
// TCP (answers too big for UDP, resolvers set to use-vc) goes through the
// host kernel as lopower's TCP stack: a TUN interface in lopowerd's network
// namespace holds the device-side addresses; the workers hand TCP segments
// to port 53 up, the control thread writes them into the TUN, the kernel's
// TCP serves a listening socket of ours, and what the kernel sends back out
// of the TUN goes to the device through its WireGuard session.
//
// Tailnet peers may ask too, at lopower's tailnet address (lopower as their
// split-DNS resolver for [dns] device_domain): a worker hands up their UDP
// queries that the tailnet's packet filter allows, with the peer's
// wg_peer::id in hash.usr; they are answered for the device domain only
// (REFUSED otherwise, never forwarded), back through that peer's session on
// the tailnet interface, the same way as answers to devices.

#include <rte_mbuf.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/dns/dns_answerer.h"
#include "control/dns/upstream_tcp.h"
#include "control/enrollment/device_registry.h"
#include "control/event_loop.h"
#include "control/tailnet/netmap/netmap.h"
#include "control/wireguard/interface.h"

namespace lopower {

class dns_service {
 public:
  dns_service(event_loop& loop, const config& cfg, const enrollment::device_registry& registry,
              wireguard_interface& devices);
  ~dns_service();
  dns_service(const dns_service&) = delete;
  dns_service& operator=(const dns_service&) = delete;

  // The tailnet's names and DNS config (nullptr: none, e.g. logged out).
  void update(const tailnet::netmap* nm);
  // The WireGuard interface toward the tailnet (it comes and goes with the
  // node's key): answers to tailnet peers leave through it.
  void answer_tailnet_through(std::function<wireguard_interface*()> fn) { tailnet_interface_ = std::move(fn); }
  // A query (an inner packet to port 53) from a device, or over UDP from a
  // tailnet peer; takes the mbuf.
  void handle_query_packet(rte_mbuf* m);
  // Expires forwarded queries; call every ~100 ms.
  void tick();
  nlohmann::json status_json() const;

 private:
  struct tcp_conn {
    int fd = -1;
    std::vector<std::uint8_t> in;  // length-prefixed messages as they come
    std::string device;            // whose it is (from the peer's address at accept)
    std::chrono::steady_clock::time_point last_active;
  };
  void make_room_for_tcp(const std::string& device);
  void close_idle_tcp(std::chrono::steady_clock::time_point now);
  // A forwarded query's socket: watched while it lives, closed with it.
  class upstream_socket {
   public:
    upstream_socket(event_loop& loop, int fd, bool v6) : loop_(&loop), fd_(fd), v6_(v6) {}
    upstream_socket(upstream_socket&& o) noexcept : loop_(o.loop_), fd_(std::exchange(o.fd_, -1)), v6_(o.v6_) {}
    upstream_socket& operator=(upstream_socket&& o) noexcept {
      std::swap(loop_, o.loop_);
      std::swap(fd_, o.fd_);
      std::swap(v6_, o.v6_);
      return *this;
    }
    ~upstream_socket();
    int fd() const { return fd_; }
    bool v6() const { return v6_; }

   private:
    event_loop* loop_;
    int fd_;
    bool v6_;
  };
  struct pending {
    std::string device;
    int tcp_fd = -1;  // answered over this connection (else UDP to the device)
    std::uint64_t tcp_serial = 0;
    ip_address device_addr, our_addr;
    std::uint16_t device_port = 0, device_id = 0;
    std::vector<std::uint8_t> sent;  // as sent upstream (our ID)
    std::chrono::steady_clock::time_point deadline;
    std::vector<tailnet::endpoint> asked;  // the resolvers it went to: answers come from one of them
    // Its own UDP sockets (one per family asked), each on a port the kernel
    // picks at random: a spoofed answer must guess the port as well as the ID.
    std::vector<upstream_socket> sockets;
  };
  // Rebuilds the answerer from the netmap's zone and the devices.
  void rebuild_answerer();
  const dns::answerer& current_answerer();
  void handle_tailnet_query(std::uint32_t peer_id, const ip_address& from, const ip_address& to, std::uint16_t from_port,
                            std::span<const std::uint8_t> query);
  // One UDP answer to `peer` of `via` (a device, or a tailnet peer).
  static void answer(wireguard_interface& via, const std::string& peer, const ip_address& from, const ip_address& to,
                     std::uint16_t to_port, std::span<const std::uint8_t> message);
  void forward(pending p, const std::vector<std::string>& resolvers);
  int upstream_fd(pending& q, bool v6);
  pending take(std::map<std::uint16_t, pending>::iterator it);
  void on_upstream(int fd);
  void deliver(pending& q, std::span<const std::uint8_t> message);
  void retry_over_tcp(std::uint16_t id, const tailnet::endpoint& resolver);
  void on_tcp_retry_done(std::uint16_t id, std::optional<std::vector<std::uint8_t>> answer, const std::string& why);
  // TCP through the kernel.
  void open_tcp();
  void on_tun();
  void on_accept(int listener);
  void on_tcp_data(int fd);
  void close_tcp(int fd);
  void send_tcp(int fd, std::span<const std::uint8_t> message);
  std::string device_with_address(const ip_address& a) const;
  dns::tunnel_families families_of(const std::string& device) const;

  event_loop& loop_;
  const config& cfg_;
  const enrollment::device_registry& registry_;
  wireguard_interface& devices_;
  std::function<wireguard_interface*()> tailnet_interface_;
  dns::zone netmap_zone_;                   // what the netmap says; the devices are added from the registry
  std::uint64_t registry_generation_ = 0;  // of the devices in answerer_
  std::unique_ptr<dns::answerer> answerer_;
  std::vector<std::string> told_problems_;  // the answerer's problems already logged
  int tun_ = -1;
  std::string tun_name_;
  std::vector<int> listeners_;
  std::map<int, tcp_conn> conns_;
  std::map<int, std::uint64_t> conn_serial_;  // fd -> which connection holds it now
  std::uint64_t next_serial_ = 1;
  std::uint64_t tcp_queries_ = 0, tcp_idle_closed_ = 0, tcp_evicted_ = 0;
  std::map<std::uint16_t, pending> pending_;  // by our ID
  std::map<std::string, unsigned> in_flight_by_device_;
  std::map<std::uint16_t, std::unique_ptr<dns_upstream_tcp>> tcp_retries_in_flight_;  // by our ID, as pending_
  std::array<std::uint64_t, dns::outcome_count> outcomes_{};
  std::uint64_t upstream_answers_ = 0, upstream_refused_ = 0, timeouts_ = 0, unknown_device_ = 0;
  std::uint64_t tailnet_queries_ = 0;
  std::uint64_t device_limit_ = 0;  // forwards refused: the device had its share in flight
  std::uint64_t tcp_retries_ = 0, tcp_retry_failures_ = 0;
};

}  // namespace lopower
