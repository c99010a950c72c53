#include "control/ctl/ctl_server.h"

#include <grp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "control/log.h"
#include "lopower/keys.h"

namespace lopower {

struct ctl_server::client {
  int fd = -1;
  std::string in;
  std::string out;
  std::size_t out_sent = 0;
  bool answered = false;  // reply sent: input is now read and discarded until the client closes
  event_loop::timer_id deadline = -1;
  uid_t uid = 0;            // the peer's, from SO_PEERCRED
  std::uint64_t order = 0;  // accept order: lower is older
};

namespace {

std::runtime_error sys_error(const std::string& what) { return std::runtime_error(what + ": " + std::strerror(errno)); }

uid_t peer_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return static_cast<uid_t>(-1);
  return cred.uid;
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("control socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// A socket file left by a crashed daemon is removed; one that still answers
// belongs to a running daemon and is left alone.
void clear_stale_socket(const std::string& path) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
  const sockaddr_un addr = unix_address(path);
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool alive = connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  close(probe);
  if (alive) throw std::runtime_error("another lopowerd is already listening on " + path);
  unlink(path.c_str());
}

void make_private_dir(const std::filesystem::path& dir, gid_t group, bool grouped) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
    chmod(dir.c_str(), grouped ? 0750 : 0700);
    if (grouped && chown(dir.c_str(), 0, group) != 0) throw sys_error("chown " + dir.string());
  }
}

}  // namespace

ctl_server::ctl_server(event_loop& loop, std::string path, const std::string& group) : loop_(loop), path_(std::move(path)) {
  gid_t gid = 0;
  if (!group.empty()) {
    const struct group* g = getgrnam(group.c_str());
    if (g == nullptr) throw std::runtime_error("daemon.ctl_group: no group named \"" + group + "\"");
    gid = g->gr_gid;
  }
  make_private_dir(std::filesystem::path(path_).parent_path(), gid, !group.empty());
  clear_stale_socket(path_);
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw sys_error("socket");
  const sockaddr_un addr = unix_address(path_);
  // The socket is created with no access for anyone but us, then opened up
  // to the group: there is no moment when others could connect.
  const mode_t old_umask = umask(0177);
  const int rc = bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old_umask);
  if (rc != 0) throw sys_error("bind " + path_);
  if (!group.empty()) {
    if (chown(path_.c_str(), 0, gid) != 0) throw sys_error("chown " + path_);
    chmod(path_.c_str(), 0660);
  }
  if (listen(listen_fd_, 16) != 0) throw sys_error("listen " + path_);
  loop_.watch(listen_fd_, EPOLLIN, [this](std::uint32_t) { accept_clients(); });
}

ctl_server::~ctl_server() {
  while (!clients_.empty()) drop_client(clients_.begin()->first);
  if (listen_fd_ >= 0) {
    loop_.unwatch(listen_fd_);
    close(listen_fd_);
    unlink(path_.c_str());
  }
}

void ctl_server::handle(const std::string& command, ctl_handler handler, access who) {
  handlers_[command] = {std::move(handler), who};
}

void ctl_server::accept_clients() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    const uid_t uid = peer_uid(fd);
    make_room_for(uid);
    auto c = std::make_unique<client>();
    c->fd = fd;
    c->uid = uid;
    c->order = ++accepted_;
    client* raw = c.get();
    clients_[fd] = std::move(c);
    raw->deadline = loop_.add_timer(client_timeout, {}, [this, fd] {
      ++refused_;
      LOG_DEBUG("control client timed out");
      drop_client(fd);
    });
    loop_.watch(fd, EPOLLIN, [this, raw](std::uint32_t events) {
      if (events & EPOLLOUT) on_writable(*raw);
      else on_readable(*raw);
    });
  }
}

// The newcomer always gets in: a user at its share loses its own oldest
// connection, a full server its oldest overall. Whoever holds connections
// open cannot keep the operator's next one out.
void ctl_server::make_room_for(uid_t uid) {
  const client* oldest_of_user = nullptr;
  const client* oldest = nullptr;
  unsigned of_user = 0;
  for (const auto& [fd, c] : clients_) {
    if (oldest == nullptr || c->order < oldest->order) oldest = c.get();
    if (c->uid != uid) continue;
    ++of_user;
    if (oldest_of_user == nullptr || c->order < oldest_of_user->order) oldest_of_user = c.get();
  }
  if (of_user >= max_clients_per_user) return evict(oldest_of_user->fd);
  if (clients_.size() >= max_clients) evict(oldest->fd);
}

void ctl_server::evict(int fd) {
  ++evicted_;
  LOG_DEBUG("control client let go for a newer one");
  const std::string busy = ctl::encode_error("too many control connections: the oldest was let go; try again");
  (void)!send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  drop_client(fd);
}

void ctl_server::on_readable(client& c) {
  char buf[4096];
  if (c.answered) return discard_input(c);
  for (;;) {
    const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // end of request (or error): answer what arrived, if anything
      if (n < 0 || c.in.empty()) return drop_client(c.fd);
      return answer(c, dispatch(c.in, c.uid));
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    if (auto nl = c.in.find('\n'); nl != std::string::npos) return answer(c, dispatch(std::string_view(c.in).substr(0, nl), c.uid));
    if (c.in.size() > ctl::max_request_bytes) {
      ++refused_;
      return answer(c, ctl::encode_error("request too large (limit " + std::to_string(ctl::max_request_bytes) + " bytes)"));
    }
  }
}

std::string ctl_server::dispatch(std::string_view line, uid_t uid) {
  auto parsed = ctl::parse_request(line);
  if (auto* err = std::get_if<std::string>(&parsed)) {
    ++refused_;
    return ctl::encode_error(*err);
  }
  const ctl::request& req = std::get<ctl::request>(parsed);
  auto it = handlers_.find(req.command);
  if (it == handlers_.end()) {
    ++refused_;
    return ctl::encode_error("unknown command \"" + req.command + "\"");
  }
  if (it->second.who == access::root_only && uid != 0) {
    ++refused_;
    return ctl::encode_error("\"" + req.command + "\" changes lopower or shows secrets: root only (the control group may look, not change)");
  }
  try {
    std::string reply = ctl::encode_ok(it->second.handler(req.args));
    ++served_;
    return reply;
  } catch (const ctl_command_error& e) {
    ++refused_;
    return ctl::encode_error(e.what());
  } catch (const std::exception& e) {
    ++refused_;
    LOG_ERROR("control command %s failed: %s", req.command.c_str(), e.what());
    return ctl::encode_error(std::string("internal error: ") + e.what());
  }
}

void ctl_server::answer(client& c, std::string reply) {
  c.out = std::move(reply);
  c.out_sent = 0;
  loop_.unwatch(c.fd);
  client* raw = &c;
  loop_.watch(c.fd, EPOLLOUT, [this, raw](std::uint32_t) { on_writable(*raw); });
  on_writable(c);
}

void ctl_server::on_writable(client& c) {
  while (c.out_sent < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;
    c.out_sent += static_cast<std::size_t>(n);
  }
  if (c.out_sent < c.out.size()) return drop_client(c.fd);
  // Closing with unread input would reset the connection and could destroy
  // the reply in flight (say, to an oversized request): half-close instead
  // and discard what the client still sends, until it closes or times out.
  shutdown(c.fd, SHUT_WR);
  c.answered = true;
  loop_.unwatch(c.fd);
  client* raw = &c;
  loop_.watch(c.fd, EPOLLIN, [this, raw](std::uint32_t) { on_readable(*raw); });
}

void ctl_server::discard_input(client& c) {
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return drop_client(c.fd);
  }
}

void ctl_server::drop_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  loop_.unwatch(fd);
  loop_.cancel_timer(it->second->deadline);
  close(fd);
  // A reply may have carried a device's config and private key.
  secure_wipe(it->second->out.data(), it->second->out.size());
  clients_.erase(it);
}

}  // namespace lopower
