#include "control/dns_upstream_tcp.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/socket_address.h"

namespace lopower {

result<std::unique_ptr<dns_upstream_tcp>> dns_upstream_tcp::start(event_loop& loop, const ip_address& server,
                                                                   std::uint16_t port,
                                                                   std::span<const std::uint8_t> query, done_fn done) {
  if (query.size() > 0xffff) return fail("a DNS message is at most 65535 bytes");
  sockaddr_storage sa;
  const socklen_t len = socket_address(server, port, sa);
  const int fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    ::close(fd);
    return fail("connect " + server.to_string() + ": " + std::strerror(err));
  }
  return std::unique_ptr<dns_upstream_tcp>(new dns_upstream_tcp(loop, fd, query, std::move(done)));
}

dns_upstream_tcp::dns_upstream_tcp(event_loop& loop, int fd, std::span<const std::uint8_t> query, done_fn done)
    : loop_(loop), fd_(fd), done_(std::move(done)) {
  out_.reserve(2 + query.size());
  out_.push_back(static_cast<std::uint8_t>(query.size() >> 8));
  out_.push_back(static_cast<std::uint8_t>(query.size()));
  out_.insert(out_.end(), query.begin(), query.end());
  // Writable once connected (or failed): the query goes then.
  loop_.watch(fd_, EPOLLOUT | EPOLLIN | EPOLLRDHUP, [this](std::uint32_t events) { on_events(events); });
}

dns_upstream_tcp::~dns_upstream_tcp() { close(); }

void dns_upstream_tcp::close() {
  if (fd_ < 0) return;
  loop_.unwatch(fd_);
  ::close(fd_);
  fd_ = -1;
}

void dns_upstream_tcp::on_events(std::uint32_t events) {
  if (sent_ < out_.size()) {
    if (events & EPOLLERR) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      return finish(std::nullopt, std::string("connect: ") + std::strerror(err != 0 ? err : ECONNRESET));
    }
    if ((events & EPOLLOUT) && !send_query()) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) read_answer();
}

bool dns_upstream_tcp::send_query() {
  while (sent_ < out_.size()) {
    const ssize_t n = ::send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    finish(std::nullopt, std::string("send: ") + std::strerror(errno));
    return false;
  }
  loop_.modify(fd_, EPOLLIN | EPOLLRDHUP);  // all sent: only the answer is awaited
  return true;
}

void dns_upstream_tcp::read_answer() {
  std::uint8_t buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return finish(std::nullopt, n == 0 ? "closed before the whole answer" : std::string("recv: ") + std::strerror(errno));
    in_.insert(in_.end(), buf, buf + n);
    if (in_.size() < 2) continue;
    const std::size_t size = static_cast<std::size_t>(in_[0] << 8 | in_[1]);
    if (in_.size() < 2 + size) continue;
    return finish(std::vector<std::uint8_t>(in_.begin() + 2, in_.begin() + 2 + static_cast<std::ptrdiff_t>(size)), "");
  }
}

void dns_upstream_tcp::finish(std::optional<std::vector<std::uint8_t>> answer, const std::string& why) {
  close();
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(answer), why);  // last: it may destroy us
}

}  // namespace lopower
