#include "lopower/ctl_protocol.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace lopower::ctl {
namespace {

// Rejects nesting deeper than max_nesting before the JSON parser sees it, so
// a hostile request cannot make the daemon recurse.
bool nesting_within_limit(std::string_view text) {
  unsigned depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') {
      if (++depth > max_nesting) return false;
    } else if ((c == '}' || c == ']') && depth > 0) --depth;
  }
  return true;
}

class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  ~fd_guard() { if (fd_ >= 0) ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

void wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  pollfd p{fd, events, 0};
  const int rc = ::poll(&p, 1, static_cast<int>(std::max<long>(0, left.count())));
  if (rc == 0) throw std::runtime_error("lopowerd did not answer in time");
  if (rc < 0) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
}

}  // namespace

std::variant<request, std::string> parse_request(std::string_view line) {
  if (line.size() > max_request_bytes) return std::string("request too large");
  if (!nesting_within_limit(line)) return std::string("request nested too deeply");
  const nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::string("request is not valid JSON");
  if (!doc.is_object()) return std::string("request must be a JSON object");
  auto cmd = doc.find("command");
  if (cmd == doc.end() || !cmd->is_string() || cmd->get_ref<const std::string&>().empty())
    return std::string("request needs a \"command\" string");
  request r;
  r.command = cmd->get<std::string>();
  if (auto args = doc.find("args"); args != doc.end()) {
    if (!args->is_object()) return std::string("\"args\" must be a JSON object");
    r.args = *args;
  }
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (it.key() != "command" && it.key() != "args") return "unknown request field \"" + it.key() + "\"";
  return r;
}

std::string encode_request(const request& r) {
  return nlohmann::json{{"command", r.command}, {"args", r.args}}.dump() + "\n";
}

std::string encode_ok(const nlohmann::json& result) {
  return nlohmann::json{{"ok", true}, {"result", result}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string encode_error(std::string_view message) {
  return nlohmann::json{{"ok", false}, {"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

nlohmann::json call(const std::string& socket_path, const request& r, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  // Non-blocking: a daemon that stopped accepting (its backlog full) makes
  // connect fail with EAGAIN instead of hanging; retried until the deadline.
  fd_guard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED)
      throw unavailable("lopowerd is not running (nothing listens on " + socket_path + ")");
    if (errno != EAGAIN && errno != EINTR)
      throw std::runtime_error("cannot connect to " + socket_path + ": " + std::strerror(errno));
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("lopowerd did not accept the connection in time (busy or stopped?)");
    ::poll(nullptr, 0, 10);
  }
  const std::string out = encode_request(r);
  for (std::size_t sent = 0; sent < out.size();) {
    wait_for(fd.get(), POLLOUT, deadline);
    const ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n < 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    sent += static_cast<std::size_t>(n);
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    wait_for(fd.get(), POLLIN, deadline);
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
    if (n == 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > max_reply_bytes) throw std::runtime_error("reply too large");
  }
  nlohmann::json doc = nlohmann::json::parse(reply, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("ok"))
    throw std::runtime_error("garbled reply from lopowerd");
  return doc;
}

}  // namespace lopower::ctl
