#include "control/metrics/http_server.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "control/log.h"
#include "control/metrics/exposition.h"
#include "control/metrics/http_request.h"
#include "control/socket_address.h"

namespace lopower::metrics {

struct http_server::connection {
  int fd = -1;
  std::string in, out;
  std::size_t sent = 0;
  bool responding = false;
  std::uint64_t order = 0;
  event_loop::timer_id deadline = -1;
};

namespace {

constexpr std::string_view index_page =
    "lopower metrics: GET /metrics (Prometheus text format)\n";

std::uint16_t bound_port(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return 0;
  if (sa.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
}

}  // namespace

http_server::http_server(event_loop& loop, const ip_address& address, std::uint16_t port, std::function<std::string()> render)
    : loop_(loop), render_(std::move(render)) {
  sockaddr_storage sa;
  const socklen_t len = socket_address(address, port, sa);
  listen_fd_ = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (listen_fd_ < 0 || setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(listen_fd_, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (listen_fd_ >= 0) close(listen_fd_);
    throw std::runtime_error("metrics.listen: cannot listen on " + address.to_string() + " port " + std::to_string(port) +
                             ": " + why);
  }
  port_ = bound_port(listen_fd_);
  loop_.watch(listen_fd_, EPOLLIN, [this](std::uint32_t) { accept_connections(); });
}

http_server::~http_server() {
  while (!connections_.empty()) close_connection(connections_.begin()->first);
  loop_.unwatch(listen_fd_);
  close(listen_fd_);
}

void http_server::accept_connections() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a connection that went away meanwhile
    if (connections_.size() >= max_connections) evict_oldest();
    auto c = std::make_unique<connection>();
    c->fd = fd;
    c->order = ++accepted_;
    c->deadline = loop_.add_timer(request_timeout, {}, [this, fd] {
      connections_.at(fd)->deadline = -1;  // fired: nothing to cancel
      ++stats_.timeouts;
      close_connection(fd);
    });
    connections_.emplace(fd, std::move(c));
    loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t events) { on_event(fd, events); });
  }
}

void http_server::evict_oldest() {
  auto oldest = connections_.begin();
  for (auto it = connections_.begin(); it != connections_.end(); ++it)
    if (it->second->order < oldest->second->order) oldest = it;
  ++stats_.evicted;
  close_connection(oldest->first);
}

void http_server::on_event(int fd, std::uint32_t events) {
  connection& c = *connections_.at(fd);
  if (c.responding) return write_some(c);  // EPOLLOUT: the rest of the answer
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & (EPOLLERR | EPOLLHUP))) return close_connection(fd);
  if (n < 0) return;
  c.in.append(buf, static_cast<std::size_t>(n));
  const request_head h = parse_request_head(c.in);
  switch (h.status) {
    case head_status::incomplete: return;
    case head_status::too_large:
      ++stats_.bad_requests;
      return respond(c, 431, "Request Header Fields Too Large", "text/plain", "request head too large\n", false);
    case head_status::malformed:
      ++stats_.bad_requests;
      return respond(c, 400, "Bad Request", "text/plain", h.problem + "\n", false);
    case head_status::complete: break;
  }
  const bool head = h.method == "HEAD";
  if (h.method != "GET" && !head) return respond(c, 405, "Method Not Allowed", "text/plain", "GET only\n", false);
  const std::string_view path = target_path(h.target);
  if (path == "/metrics") {
    ++stats_.scrapes;
    return respond(c, 200, "OK", content_type, render_(), head);
  }
  if (path == "/") return respond(c, 200, "OK", "text/plain", std::string(index_page), head);
  ++stats_.not_found;
  respond(c, 404, "Not Found", "text/plain", "not found: GET /metrics\n", head);
}

void http_server::respond(connection& c, int status, std::string_view reason, std::string_view type, std::string body,
                          bool head_only) {
  c.out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\nContent-Type: " + std::string(type) +
          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n" +
          (status == 405 ? "Allow: GET, HEAD\r\n" : "") + "\r\n";
  if (!head_only) c.out += body;
  c.responding = true;
  c.in.clear();
  write_some(c);
}

void http_server::write_some(connection& c) {
  const int fd = c.fd;
  while (c.sent < c.out.size()) {
    const ssize_t n = send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return loop_.modify(fd, EPOLLOUT);
    if (n <= 0) return close_connection(fd);
    c.sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  close_connection(fd);
}

void http_server::close_connection(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  if (it->second->deadline >= 0) loop_.cancel_timer(it->second->deadline);
  loop_.unwatch(fd);
  close(fd);
  connections_.erase(it);
}

}  // namespace lopower::metrics
