#include "control/dns/service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "control/dns/tcp_framing.h"
#include "control/log.h"
#include "control/socket_address.h"
#include "control/tailnet/netmap/map_response.h"
#include "dataplane/inner_packet.h"
#include "dataplane/kernel_interface.h"
#include "lopower/byte_order.h"

namespace lopower {

namespace {

constexpr auto forward_timeout = std::chrono::seconds(4);
// DNS over TCP (RFC 7766 §6.2.3): a connection idle this long is closed, and
// the connections are bounded in all and per device. A new connection is
// always taken: when a bound is reached, the least recently active one (the
// device's own first) is closed, so idle connections cannot lock devices out.
constexpr auto tcp_idle_timeout = std::chrono::seconds(10);
constexpr std::size_t max_tcp_connections = 256;
constexpr std::size_t max_tcp_connections_per_device = 16;
constexpr std::size_t max_pending = 4096;  // forwarded queries in flight; beyond: SERVFAIL at once
constexpr unsigned max_pending_per_device = 64;  // one device's share of them

int open_udp(int family) {
  const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (family == AF_INET6) {
    const int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  return fd;  // bound on first send, to a port the kernel picks
}

// "198.18.0.53", "198.18.0.53:5353", "[fd00::53]:53"; nullopt for what is
// not a plain UDP resolver (DoH "https://..." is not spoken yet).
std::optional<tailnet::endpoint> resolver_endpoint(const std::string& text) {
  if (auto a = ip_address::parse(text)) return tailnet::endpoint{*a, 53};
  return tailnet::endpoint::parse(text);
}

std::optional<tailnet::endpoint> endpoint_of(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&sa);
    return tailnet::endpoint{ip_address::from_bytes(false, reinterpret_cast<const std::uint8_t*>(&s4->sin_addr)),
                             ntohs(s4->sin_port)};
  }
  if (sa.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    return tailnet::endpoint{ip_address::from_bytes(true, reinterpret_cast<const std::uint8_t*>(&s6->sin6_addr)),
                             ntohs(s6->sin6_port)};
  }
  return std::nullopt;
}

}  // namespace

dns_service::dns_service(event_loop& loop, const config& cfg, const enrollment::device_registry& registry,
                         wireguard_interface& devices)
    : loop_(loop), cfg_(cfg), registry_(registry), devices_(devices) {
  update(nullptr);
  try {
    open_tcp();
  } catch (const std::exception& e) {
    LOG_WARNING("dns: no DNS over TCP for devices: %s", e.what());
  }
}

dns_service::~dns_service() {
  while (!conns_.empty()) close_tcp(conns_.begin()->first);
  for (int fd : listeners_) {
    loop_.unwatch(fd);
    ::close(fd);
  }
  if (tun_ >= 0) {
    loop_.unwatch(tun_);
    ::close(tun_);  // the kernel removes the interface with it
  }
  pending_.clear();  // their sockets go with them, while the loop is still there
}

dns_service::upstream_socket::~upstream_socket() {
  if (fd_ < 0) return;
  loop_->unwatch(fd_);
  ::close(fd_);
}

void dns_service::update(const tailnet::netmap* nm) {
  dns::zone z;
  z.ipv4_enabled = cfg_.devices.ipv4_prefix.has_value();
  z.default_resolvers = cfg_.dns.upstreams;
  const tailnet::node* self = nm ? nm->self() : nullptr;
  if (self != nullptr) {
    auto add_node = [&z](const tailnet::node& n) {
      if (n.name.empty()) return;
      auto& addrs = z.names[n.name];
      for (const ip_prefix& p : n.addresses) addrs.push_back(p.address);
    };
    add_node(*self);
    for (const tailnet::node& p : nm->peers()) add_node(p);
    // The MagicDNS suffix: what follows the first label of our own name,
    // and every split-DNS route the tailnet answers locally.
    if (const auto dot = self->name.find('.'); dot != std::string::npos && dot + 1 < self->name.size())
      z.local_suffixes.push_back(self->name.substr(dot + 1));
    for (const auto& [suffix, resolvers] : nm->dns().routes) {
      if (resolvers.empty()) {
        z.local_suffixes.push_back(suffix);
        continue;
      }
      auto& list = z.routes[suffix];
      for (const auto& r : resolvers) list.push_back(r.addr);
    }
    for (const auto& r : nm->dns().resolvers) z.default_resolvers.push_back(r.addr);
    for (const auto& e : nm->dns().extra_records) z.extra.push_back({e.name, e.type, e.value});
  }
  netmap_zone_ = std::move(z);
  rebuild_answerer();
}

void dns_service::rebuild_answerer() {
  dns::zone z = netmap_zone_;
  z.device_domain = cfg_.dns.device_domain;
  for (const enrollment::device& d : registry_.list()) {
    auto& addresses = z.devices[d.name];
    if (d.ipv4) addresses.push_back(*d.ipv4);
    if (d.ipv6) addresses.push_back(*d.ipv6);
  }
  registry_generation_ = registry_.generation();
  answerer_ = std::make_unique<dns::answerer>(z);
  // Rebuilt on every netmap: a problem is told once, not at each rebuild.
  for (const std::string& problem : answerer_->problems())
    if (std::find(told_problems_.begin(), told_problems_.end(), problem) == told_problems_.end())
      LOG_WARNING("dns: %s", problem.c_str());
  told_problems_ = answerer_->problems();
}

// Devices enrolled or removed since the answerer was built are answered
// (or not) from the next query on.
const dns::answerer& dns_service::current_answerer() {
  if (registry_.generation() != registry_generation_) rebuild_answerer();
  return *answerer_;
}

std::string dns_service::device_with_address(const ip_address& a) const {
  for (const enrollment::device& d : registry_.list())
    if ((d.ipv4 && *d.ipv4 == a) || (d.ipv6 && *d.ipv6 == a)) return d.name;
  return {};
}

// The families the device has an address of: an answer of the other
// family would name an address its tunnel cannot carry.
dns::tunnel_families dns_service::families_of(const std::string& device) const {
  const enrollment::device* d = registry_.find(device);
  if (d == nullptr) return {};
  return {d->ipv4.has_value(), d->ipv6.has_value()};
}

void dns_service::handle_query_packet(rte_mbuf* m) {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const auto info = parse_inner(p, m->data_len);
  if (!info || !is_dns_query(p, *info)) return rte_pktmbuf_free(m);
  if (info->protocol == IPPROTO_TCP) {  // the kernel's TCP answers, through our listener
    if (tun_ >= 0 && ::write(tun_, p, info->length) < 0) LOG_DEBUG("dns: TUN write: %s", std::strerror(errno));
    return rte_pktmbuf_free(m);
  }
  const bool v6 = info->ipv6;
  const ip_address from = ip_address::from_bytes(v6, info->src), to = ip_address::from_bytes(v6, info->dst);
  const std::uint16_t from_port = load_be16(p + info->l4_offset);
  const std::span<const std::uint8_t> query(p + info->l4_offset + 8, info->length - info->l4_offset - 8u);
  // Workers hand up devices' queries to the device-side addresses only, and
  // tailnet peers' to lopower's tailnet addresses only.
  if (to != registry_.server_ipv6() && to != registry_.server_ipv4()) {
    handle_tailnet_query(m->hash.usr, from, to, from_port, query);
    return rte_pktmbuf_free(m);
  }
  const std::string device = device_with_address(from);
  if (device.empty()) {
    ++unknown_device_;
    return rte_pktmbuf_free(m);
  }
  dns::decision d = current_answerer().handle_query(query, dns::transport::udp, families_of(device));
  ++outcomes_[static_cast<std::size_t>(d.why)];
  if (d.kind == dns::decision_kind::answer) answer(devices_, device, to, from, from_port, d.message);
  else if (d.kind == dns::decision_kind::forward) {
    pending q{device, -1, 0, from, to, from_port, dns::message_id(query).value_or(0), std::move(d.message),
              std::chrono::steady_clock::now() + forward_timeout};
    forward(std::move(q), d.resolvers);
  }
  rte_pktmbuf_free(m);
}

// A tailnet peer's question, answered for the device domain only (never
// forwarded), back through the session it came in on.
void dns_service::handle_tailnet_query(std::uint32_t peer_id, const ip_address& from, const ip_address& to,
                                       std::uint16_t from_port, std::span<const std::uint8_t> query) {
  wireguard_interface* tailnet = tailnet_interface_ ? tailnet_interface_() : nullptr;
  const std::string peer = tailnet != nullptr ? tailnet->name_of_id(peer_id) : std::string();
  if (peer.empty()) {  // the peer left (or lopower logged out) while its query was on the ring
    ++unknown_device_;
    return;
  }
  ++tailnet_queries_;
  const dns::decision d = current_answerer().handle_query(query, dns::transport::udp, {}, dns::asker::tailnet_peer);
  ++outcomes_[static_cast<std::size_t>(d.why)];
  if (d.kind == dns::decision_kind::answer) answer(*tailnet, peer, to, from, from_port, d.message);
}

void dns_service::answer(wireguard_interface& via, const std::string& peer, const ip_address& from,
                         const ip_address& to, std::uint16_t to_port, std::span<const std::uint8_t> message) {
  std::vector<std::uint8_t> packet(48 + message.size());
  const std::uint16_t len = write_udp_packet(packet.data(), from, 53, to, to_port, message);
  if (len != 0) via.send_data(peer, std::span<const std::uint8_t>(packet.data(), len));
}

void dns_service::forward(pending q, const std::vector<std::string>& resolvers) {
  if (in_flight_by_device_[q.device] >= max_pending_per_device) {
    ++device_limit_;
    dns::set_message_id(q.sent, q.device_id);
    return deliver(q, dns::servfail_answer(q.sent));
  }
  std::uint16_t id = 0;
  do id = static_cast<std::uint16_t>(randombytes_random()); while (pending_.contains(id));
  const bool room = pending_.size() < max_pending && dns::set_message_id(q.sent, id);
  bool sent = false;
  for (const std::string& r : resolvers) {
    const auto ep = room ? resolver_endpoint(r) : std::nullopt;
    if (!ep) continue;
    sockaddr_storage sa;
    const socklen_t len = socket_address(ep->address, ep->port, sa);
    const int fd = upstream_fd(q, ep->address.family == ip_family::v6);
    if (fd >= 0 && sendto(fd, q.sent.data(), q.sent.size(), 0, reinterpret_cast<sockaddr*>(&sa), len) >= 0) {
      sent = true;
      q.asked.push_back(*ep);
    }
  }
  if (!sent) {
    ++outcomes_[static_cast<std::size_t>(dns::outcome::no_upstream)];
    std::vector<std::uint8_t> original = q.sent;
    dns::set_message_id(original, q.device_id);
    return deliver(q, dns::servfail_answer(original));
  }
  ++in_flight_by_device_[q.device];
  pending_.emplace(id, std::move(q));
}

// The query's socket for the family, opened on first use.
int dns_service::upstream_fd(pending& q, bool v6) {
  for (const upstream_socket& s : q.sockets)
    if (s.v6() == v6) return s.fd();
  const int fd = open_udp(v6 ? AF_INET6 : AF_INET);
  if (fd < 0) return -1;
  q.sockets.emplace_back(loop_, fd, v6);
  loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t) { on_upstream(fd); });
  return fd;
}

dns_service::pending dns_service::take(std::map<std::uint16_t, pending>::iterator it) {
  pending q = std::move(it->second);
  pending_.erase(it);
  if (auto n = in_flight_by_device_.find(q.device); n != in_flight_by_device_.end() && --n->second == 0)
    in_flight_by_device_.erase(n);
  return q;
}

void dns_service::deliver(pending& q, std::span<const std::uint8_t> message) {
  if (q.tcp_fd < 0) return answer(devices_, q.device, q.our_addr, q.device_addr, q.device_port, message);
  auto serial = conn_serial_.find(q.tcp_fd);
  if (serial != conn_serial_.end() && serial->second == q.tcp_serial) send_tcp(q.tcp_fd, message);
}

void dns_service::on_upstream(int fd) {
  std::uint8_t buf[65536];
  for (;;) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) return;
    const std::span<std::uint8_t> msg(buf, static_cast<std::size_t>(n));
    const auto id = dns::message_id(msg);
    auto it = id ? pending_.find(*id) : pending_.end();
    const auto sender = endpoint_of(from);
    const bool its_socket = it != pending_.end() && std::any_of(it->second.sockets.begin(), it->second.sockets.end(),
                                                                  [fd](const upstream_socket& s) { return s.fd() == fd; });
    if (!its_socket || !sender ||
        std::find(it->second.asked.begin(), it->second.asked.end(), *sender) == it->second.asked.end() ||
        dns::check_upstream_answer(it->second.sent, msg) != dns::answer_check::ok) {
      ++upstream_refused_;  // spoofed, late, or for a query we no longer wait on
      continue;
    }
    ++upstream_answers_;
    if (it->second.tcp_fd >= 0 && dns::is_truncated(msg)) {
      retry_over_tcp(*id, *sender);
      continue;
    }
    pending q = take(it);
    dns::set_message_id(msg, q.device_id);
    deliver(q, msg);
    return;  // q's sockets, this one among them, close with it
  }
}

// The device asked over TCP and must get the whole answer: the resolver
// that cut it is asked again over TCP (within a fresh timeout).
void dns_service::retry_over_tcp(std::uint16_t id, const tailnet::endpoint& resolver) {
  pending& q = pending_.at(id);
  q.asked.clear();  // no more UDP answers for it
  q.deadline = std::chrono::steady_clock::now() + forward_timeout;
  ++tcp_retries_;
  auto started = dns_upstream_tcp::start(
      loop_, resolver.address, resolver.port, q.sent,
      [this, id](std::optional<std::vector<std::uint8_t>> answer, const std::string& why) {
        on_tcp_retry_done(id, std::move(answer), why);
      });
  if (!started) return on_tcp_retry_done(id, std::nullopt, started.message());
  tcp_retries_in_flight_[id] = std::move(*started);
}

void dns_service::on_tcp_retry_done(std::uint16_t id, std::optional<std::vector<std::uint8_t>> answer,
                                    const std::string& why) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  pending q = take(it);
  if (answer && dns::check_upstream_answer(q.sent, *answer) == dns::answer_check::ok) {
    dns::set_message_id(*answer, q.device_id);
    deliver(q, *answer);
  } else {
    ++tcp_retry_failures_;
    LOG_DEBUG("dns: TCP retry to the upstream: %s", answer ? "an answer to another question" : why.c_str());
    dns::set_message_id(q.sent, q.device_id);
    deliver(q, dns::servfail_answer(q.sent));
  }
  tcp_retries_in_flight_.erase(id);  // may be the caller: it returns at once
}

void dns_service::tick() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    ++timeouts_;
    const std::uint16_t id = it->first;
    pending q = take(it++);
    dns::set_message_id(q.sent, q.device_id);
    deliver(q, dns::servfail_answer(q.sent));
    tcp_retries_in_flight_.erase(id);
  }
  close_idle_tcp(now);
}

// --- TCP through the kernel -------------------------------------------------------------

void dns_service::open_tcp() {
  tun_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (tun_ < 0) throw std::runtime_error(std::string("/dev/net/tun: ") + std::strerror(errno));
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  tun_name_ = "lpdns" + std::to_string(::getpid() % 1000000);
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", tun_name_.c_str());
  if (ioctl(tun_, TUNSETIFF, &ifr) != 0) throw std::runtime_error(std::string("TUNSETIFF: ") + std::strerror(errno));
  kernel_interface kif(tun_name_);
  std::vector<ip_address> ours;
  if (cfg_.devices.ipv4_prefix) {
    ip_prefix p = *cfg_.devices.ipv4_prefix;
    p.address.bytes[3] |= 1;  // lopower's own: the first host of the device prefix
    kif.add_address(p);
    ours.push_back(p.address);
  }
  ip_prefix p6 = cfg_.devices.ipv6_prefix;
  p6.address.bytes[15] |= 1;
  kif.add_address(p6);
  ours.push_back(p6.address);
  kif.set_up();
  loop_.watch(tun_, EPOLLIN, [this](std::uint32_t) { on_tun(); });
  for (const ip_address& a : ours) {
    const bool v6 = a.family == ip_family::v6;
    const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_FREEBIND : IP_FREEBIND, &one, sizeof one);
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_storage sa;
    const socklen_t len = socket_address(a, 53, sa);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd, 64) != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error("listen on " + a.to_string() + ":53: " + std::strerror(err));
    }
    listeners_.push_back(fd);
    loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t) { on_accept(fd); });
  }
  LOG_INFO("dns: TCP on port 53 through kernel interface %s", tun_name_.c_str());
}

// What the kernel sends to a device: it goes through the device's session.
void dns_service::on_tun() {
  std::uint8_t buf[2048];
  for (;;) {
    const ssize_t n = ::read(tun_, buf, sizeof buf);
    if (n <= 0) return;
    const auto info = parse_inner(buf, static_cast<std::uint32_t>(n));
    if (!info) continue;
    const std::string device = device_with_address(ip_address::from_bytes(info->ipv6, info->dst));
    if (!device.empty()) devices_.send_data(device, std::span<const std::uint8_t>(buf, info->length));
  }
}

void dns_service::on_accept(int listener) {
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    const auto peer = endpoint_of(sa);
    std::string device = peer ? device_with_address(peer->address) : std::string();
    make_room_for_tcp(device);
    conns_[fd] = tcp_conn{fd, {}, std::move(device), std::chrono::steady_clock::now()};
    conn_serial_[fd] = next_serial_++;
    loop_.watch(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t) { on_tcp_data(fd); });
  }
}

void dns_service::on_tcp_data(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  std::uint8_t buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    return close_tcp(fd);
  }
  it->second.last_active = std::chrono::steady_clock::now();
  auto& in = it->second.in;
  in.insert(in.end(), buf, buf + n);
  // The peer of this connection is a device: the kernel knows its address.
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  const auto peer_ep = endpoint_of(sa);
  if (!peer_ep) return close_tcp(fd);
  const ip_address peer = peer_ep->address;
  const std::string device = device_with_address(peer);
  // Several queries may come in one segment. Answering one may close the
  // connection (a client that stopped reading, or an immediate SERVFAIL
  // that could not be sent): then `in` is gone, and so are the rest.
  while (auto query = dns::take_tcp_message(in)) {
    ++tcp_queries_;
    dns::decision d = current_answerer().handle_query(*query, dns::transport::tcp, families_of(device));
    ++outcomes_[static_cast<std::size_t>(d.why)];
    if (d.kind == dns::decision_kind::answer) send_tcp(fd, d.message);
    else if (d.kind == dns::decision_kind::forward) {
      pending q{device, fd, conn_serial_[fd], peer, peer, 0, dns::message_id(*query).value_or(0), std::move(d.message),
                std::chrono::steady_clock::now() + forward_timeout};
      forward(std::move(q), d.resolvers);
    } else {
      return close_tcp(fd);
    }
    if (!conns_.contains(fd)) return;
  }
}

void dns_service::send_tcp(int fd, std::span<const std::uint8_t> message) {
  const auto framed = dns::frame_tcp_message(message);
  // Answers are small and the kernel's buffer is empty between them: a
  // short write means a client that stopped reading, which is closed.
  if (!framed || ::send(fd, framed->data(), framed->size(), MSG_NOSIGNAL) != static_cast<ssize_t>(framed->size()))
    close_tcp(fd);
}

// Closes the least recently active connection of `device` when it holds its
// share, else the least recently active of all when all are taken.
void dns_service::make_room_for_tcp(const std::string& device) {
  const auto oldest = [&](bool same_device) {
    auto pick = conns_.end();
    for (auto it = conns_.begin(); it != conns_.end(); ++it)
      if ((!same_device || it->second.device == device) &&
          (pick == conns_.end() || it->second.last_active < pick->second.last_active))
        pick = it;
    return pick;
  };
  const auto held = static_cast<std::size_t>(
      std::count_if(conns_.begin(), conns_.end(), [&](const auto& c) { return c.second.device == device; }));
  auto victim = held >= max_tcp_connections_per_device ? oldest(true)
                : conns_.size() >= max_tcp_connections ? oldest(false)
                                                        : conns_.end();
  if (victim == conns_.end()) return;
  ++tcp_evicted_;
  close_tcp(victim->first);
}

void dns_service::close_idle_tcp(std::chrono::steady_clock::time_point now) {
  std::vector<int> idle;
  for (const auto& [fd, c] : conns_)
    if (now - c.last_active >= tcp_idle_timeout) idle.push_back(fd);
  tcp_idle_closed_ += idle.size();
  for (int fd : idle) close_tcp(fd);
}

void dns_service::close_tcp(int fd) {
  if (conns_.erase(fd) == 0) return;
  conn_serial_.erase(fd);
  loop_.unwatch(fd);
  ::close(fd);
}

nlohmann::json dns_service::status_json() const {
  nlohmann::json outcomes;
  for (std::size_t i = 0; i < dns::outcome_count; ++i) outcomes[std::string(dns::outcome_names[i])] = outcomes_[i];
  return {{"upstreams", cfg_.dns.upstreams},
          {"device_domain", cfg_.dns.device_domain},
          {"tailnet_queries", tailnet_queries_},
          {"outcomes", outcomes},
          {"forwarded_in_flight", pending_.size()},
          {"upstream_answers", upstream_answers_},
          {"upstream_answers_refused", upstream_refused_},
          {"upstream_timeouts", timeouts_},
          {"upstream_tcp_retries", tcp_retries_},
          {"upstream_tcp_retry_failures", tcp_retry_failures_},
          {"queries_from_unknown_sources", unknown_device_},
          {"forwards_refused_device_limit", device_limit_},
          {"tcp", tun_ >= 0 ? nlohmann::json{{"interface", tun_name_},
                                               {"queries", tcp_queries_},
                                               {"connections", conns_.size()},
                                               {"closed_idle", tcp_idle_closed_},
                                               {"closed_for_room", tcp_evicted_}}
                            : nlohmann::json(nullptr)}};
}

}  // namespace lopower
