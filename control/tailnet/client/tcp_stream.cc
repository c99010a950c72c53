#include "control/tailnet/client/tcp_stream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "lopower/net_addr.h"

namespace lopower::tailnet {

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
constexpr auto resolve_poll = std::chrono::milliseconds(10);
}

// A name being resolved: the resolver thread fills it and sets `done`; the
// stream polls it from the event loop. Shared, so that a stream closed
// meanwhile leaves the thread something to write to.
struct tcp_stream::resolution {
  std::string host;
  std::uint16_t port = 0;
  std::atomic<bool> done{false};
  int rc = 0;
  sockaddr_storage addr{};
  socklen_t addr_length = 0;
};

tcp_stream::tcp_stream(event_loop& loop, handlers h) : loop_(loop), handlers_(std::move(h)) {}

tcp_stream::~tcp_stream() {
  *alive_ = false;
  close();
}

result<void> tcp_stream::connect(const std::string& host, std::uint16_t port) {
  close();
  const std::string what = host + ":" + std::to_string(port);
  if (auto ip = ip_address::parse(host)) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (ip->family == ip_family::v4) {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(port);
      std::memcpy(&sa->sin_addr, ip->bytes.data(), 4);
      len = sizeof(sockaddr_in);
    } else {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(port);
      std::memcpy(&sa->sin6_addr, ip->bytes.data(), 16);
      len = sizeof(sockaddr_in6);
    }
    return dial(reinterpret_cast<const sockaddr*>(&ss), len, what);
  }
  resolve(host, port);
  return {};
}

void tcp_stream::resolve(const std::string& host, std::uint16_t port) {
  auto r = std::make_shared<resolution>();
  r->host = host;
  r->port = port;
  resolving_ = r;
  std::thread([r] {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    r->rc = getaddrinfo(r->host.c_str(), std::to_string(r->port).c_str(), &hints, &found);
    if (r->rc == 0) {
      std::memcpy(&r->addr, found->ai_addr, found->ai_addrlen);
      r->addr_length = found->ai_addrlen;
      freeaddrinfo(found);
    }
    r->done.store(true, std::memory_order_release);
  }).detach();
  resolve_timer_ = loop_.add_timer(resolve_poll, resolve_poll, [this] { check_resolution(); });
}

void tcp_stream::check_resolution() {
  if (!resolving_ || !resolving_->done.load(std::memory_order_acquire)) return;
  const std::shared_ptr<resolution> r = std::move(resolving_);
  loop_.cancel_timer(std::exchange(resolve_timer_, -1));
  const std::string what = r->host + ":" + std::to_string(r->port);
  if (r->rc != 0) return close_with("resolve " + r->host + ": " + gai_strerror(r->rc));
  if (auto d = dial(reinterpret_cast<const sockaddr*>(&r->addr), r->addr_length, what); !d) close_with(d.message());
}

result<void> tcp_stream::dial(const sockaddr* addr, unsigned addr_length, const std::string& what) {
  const int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small records, answered at once
  const int rc = ::connect(fd, addr, addr_length);
  const int err = errno;
  if (rc != 0 && err != EINPROGRESS) {
    ::close(fd);
    return fail("connect " + what + ": " + std::strerror(err));
  }
  fd_ = fd;
  want_write_ = true;  // writable = connected (or failed)
  loop_.watch(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, [this](std::uint32_t ev) { on_events(ev); });
  return {};
}

void tcp_stream::send(std::span<const std::uint8_t> bytes) {
  if (fd_ < 0 || bytes.empty()) return;
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  if (connected_) flush();
}

void tcp_stream::close() {
  if (resolve_timer_ >= 0) loop_.cancel_timer(std::exchange(resolve_timer_, -1));
  resolving_.reset();  // the thread finishes into its own copy
  if (fd_ < 0) return;
  loop_.unwatch(fd_);
  ::close(fd_);
  fd_ = -1;
  connected_ = false;
  out_.clear();
  out_sent_ = 0;
}

void tcp_stream::close_with(const std::string& reason) {
  close();
  if (handlers_.on_closed) handlers_.on_closed(reason);  // last: it may destroy us
}

void tcp_stream::on_events(std::uint32_t events) {
  auto alive = alive_;
  if (!connected_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    finish_connect();
    if (!*alive || !connected_) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    read_all();
    if (!*alive || fd_ < 0) return;
  }
  if (events & EPOLLOUT) flush();
}

void tcp_stream::finish_connect() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return close_with(std::string("connect: ") + std::strerror(err));
  connected_ = true;
  auto alive = alive_;
  if (handlers_.on_connected) handlers_.on_connected();
  if (!*alive || fd_ < 0) return;
  flush();
}

void tcp_stream::read_all() {
  auto alive = alive_;
  std::uint8_t buf[read_chunk];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      if (handlers_.on_data) handlers_.on_data(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
      if (!*alive || fd_ < 0) return;
      continue;
    }
    if (n == 0) return close_with("");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    return close_with(std::string("recv: ") + std::strerror(errno));
  }
}

void tcp_stream::flush() {
  while (out_sent_ < out_.size()) {
    const ssize_t n = ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
    if (n > 0) {
      out_sent_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return close_with(std::string("send: ") + std::strerror(errno));
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  }
  update_interest();
}

void tcp_stream::update_interest() {
  const bool want = out_sent_ < out_.size();
  if (want == want_write_ || fd_ < 0) return;
  want_write_ = want;
  loop_.modify(fd_, EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0u));
}

}  // namespace lopower::tailnet
