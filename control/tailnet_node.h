#pragma once
// lopower as a node of its tailnet, as lopowerd runs it: the coordination
// client (identity, register, map stream, netmap) fed from the config, the
// endpoints it announces (the tailnet ports' addresses), and the tailnet
// part of `lopower-ctl status`.

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "control/config.h"
#include "control/enrollment/state_store.h"
#include "control/event_loop.h"
#include "control/tailnet/client/coordination_client.h"
#include "dataplane/dataplane.h"

namespace lopower {

// The pre-auth key: from tailnet.auth_key_file, else $LOPOWER_AUTHKEY
// (then removed from the environment), else none. Throws, naming the file,
// when the file cannot be read or holds no key.
std::string read_auth_key(const tailnet_config& cfg);

class tailnet_node {
 public:
  tailnet_node(event_loop& loop, dataplane& dp, const config& cfg);
  ~tailnet_node();
  tailnet_node(const tailnet_node&) = delete;
  tailnet_node& operator=(const tailnet_node&) = delete;

  void start();
  nlohmann::json status_json() const;
  result<void> logout() { return client_->logout(); }
  result<void> login() { return client_->login(); }
  tailnet::coordination_client& client() { return *client_; }

 private:
  void on_netmap(const tailnet::netmap& nm, const tailnet::netmap_changes& changes);
  std::vector<tailnet::endpoint> local_endpoints() const;

  event_loop& loop_;
  dataplane& dp_;
  const config& cfg_;
  enrollment::state_store store_;
  std::unique_ptr<tailnet::coordination_client> client_;
};

}  // namespace lopower
