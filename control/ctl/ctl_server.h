#pragma once
// The control socket lopower-ctl talks to: a UNIX stream socket private to
// root (or a configured group), one JSON request and one JSON reply per
// connection. Malformed, oversized, slow or too many clients get an error
// reply or are cut off; none of them can hurt the daemon, and none can lock
// the operator out: a new connection is always taken, and when the server is
// full (or the connecting user holds its share) the oldest unanswered
// connection (that user's own first) is let go to make room.

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "control/event_loop.h"
#include "lopower/ctl_protocol.h"

namespace lopower {

// A command handler returns the result, or throws ctl_command_error whose
// message goes back to the operator.
class ctl_command_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
using ctl_handler = std::function<nlohmann::json(const nlohmann::json& args)>;

class ctl_server {
 public:
  static constexpr unsigned max_clients = 32;
  static constexpr unsigned max_clients_per_user = 8;
  static constexpr std::chrono::seconds client_timeout{5};

  // Creates the socket's directory if needed, refuses to start when another
  // daemon answers on the path, and listens. Throws std::runtime_error.
  ctl_server(event_loop& loop, std::string path, const std::string& group);
  ~ctl_server();
  ctl_server(const ctl_server&) = delete;
  ctl_server& operator=(const ctl_server&) = delete;

  // Who may run a command. With a ctl_group, its members reach the socket
  // too: they may look (status, lists, pings), but only root changes state
  // or sees secrets (device keys and configs, login).
  enum class access { anyone, root_only };
  void handle(const std::string& command, ctl_handler handler, access who = access::anyone);
  const std::string& path() const { return path_; }

  // Requests answered / refused since start, connections let go for room.
  std::uint64_t served() const { return served_; }
  std::uint64_t refused() const { return refused_; }
  std::uint64_t evicted() const { return evicted_; }

 private:
  struct client;
  void accept_clients();
  void on_readable(client& c);
  void on_writable(client& c);
  void discard_input(client& c);
  void answer(client& c, std::string reply);
  std::string dispatch(std::string_view line, uid_t uid);
  void drop_client(int fd);
  void make_room_for(uid_t uid);
  void evict(int fd);

  event_loop& loop_;
  std::string path_;
  int listen_fd_ = -1;
  struct command_entry {
    ctl_handler handler;
    access who;
  };
  std::map<std::string, command_entry> handlers_;
  std::map<int, std::unique_ptr<client>> clients_;
  std::uint64_t served_ = 0, refused_ = 0, evicted_ = 0;
  std::uint64_t accepted_ = 0;  // orders clients by age
};

}  // namespace lopower
