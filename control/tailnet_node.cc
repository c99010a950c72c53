#include "control/tailnet_node.h"

#include <cstdlib>

#include "control/log.h"
#include "control/tailnet/controlbase/key_text.h"
#include "lopower_build_config.h"

namespace lopower {

namespace {

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

enrollment::state_store open_store(const config& cfg) {
  auto s = enrollment::state_store::open(cfg.daemon.state_dir);
  if (!s) throw std::runtime_error(s.message());
  return std::move(*s);
}

tailnet::coordination_config coordination_from(const config& cfg) {
  tailnet::coordination_config c;
  auto url = tailnet::control_url::parse(cfg.tailnet.control_url);
  if (!url) throw config_error(cfg.path + ":" + std::to_string(cfg.tailnet.line) + ": tailnet.control_url: " + url.message());
  c.server = std::move(*url);
  c.hostinfo.hostname = cfg.tailnet.hostname;
  c.hostinfo.ipn_version = std::string("lopower ") + LOPOWER_VERSION;
  c.hostinfo.request_tags = cfg.tailnet.advertise_tags;
  c.ephemeral = cfg.tailnet.ephemeral;
  c.auth_key = read_auth_key(cfg.tailnet);
  return c;
}

nlohmann::json prefixes_json(const std::vector<ip_prefix>& ps, bool addresses_only) {
  nlohmann::json a = nlohmann::json::array();
  for (const ip_prefix& p : ps) a.push_back(addresses_only ? p.address.to_string() : p.to_string());
  return a;
}

}  // namespace

std::string read_auth_key(const tailnet_config& cfg) {
  if (!cfg.auth_key_file.empty()) {
    auto text = enrollment::read_file(cfg.auth_key_file);
    if (!text) throw std::runtime_error("tailnet.auth_key_file: " + text.message());
    std::string key = trim(std::move(*text));
    if (key.empty()) throw std::runtime_error("tailnet.auth_key_file: " + cfg.auth_key_file + " holds no key");
    return key;
  }
  if (const char* env = std::getenv("LOPOWER_AUTHKEY"); env != nullptr && *env != '\0') {
    std::string key = trim(env);
    unsetenv("LOPOWER_AUTHKEY");  // nothing started later inherits it
    return key;
  }
  return {};
}

tailnet_node::tailnet_node(event_loop& loop, dataplane& dp, const config& cfg)
    : loop_(loop), dp_(dp), cfg_(cfg), store_(open_store(cfg)) {
  client_ = std::make_unique<tailnet::coordination_client>(
      loop_, coordination_from(cfg), store_,
      tailnet::coordination_client::handlers{
          [this](const tailnet::netmap& nm, const tailnet::netmap_changes& ch) { on_netmap(nm, ch); }, {}});
}

tailnet_node::~tailnet_node() = default;

void tailnet_node::start() {
  client_->set_endpoints(local_endpoints());
  client_->start();
}

std::vector<tailnet::endpoint> tailnet_node::local_endpoints() const {
  std::vector<tailnet::endpoint> out;
  if (!cfg_.tailnet.advertise_endpoints.empty()) {
    for (const std::string& text : cfg_.tailnet.advertise_endpoints)
      if (auto e = tailnet::endpoint::parse(text)) out.push_back(*e);
    return out;
  }
  for (const port_runtime& p : dp_.ports()) {
    if (p.config.role == port_role::devices) continue;
    for (const ip_prefix& a : p.config.addresses) out.push_back({a.address, cfg_.tailnet.listen_port});
  }
  return out;
}

void tailnet_node::on_netmap(const tailnet::netmap& nm, const tailnet::netmap_changes& changes) {
  if (changes.peers_changed())
    LOG_INFO("tailnet: peers +%zu -%zu ~%zu (now %zu)", changes.added.size(), changes.removed.size(),
             changes.changed.size(), nm.peer_count());
}

nlohmann::json tailnet_node::status_json() const {
  nlohmann::json j = client_->status_json();
  const tailnet::netmap* nm = client_->current();
  nlohmann::json peers = nlohmann::json::array();
  if (nm != nullptr && nm->self() != nullptr) {
    const tailnet::node& self = *nm->self();
    j["self"] = {{"name", self.name},
                 {"id", self.id},
                 {"addresses", prefixes_json(self.addresses, true)},
                 {"key_expiry", self.key_expiry.is_zero() ? nlohmann::json() : nlohmann::json(self.key_expiry.to_string())},
                 {"expired", self.expired}};
    j["tailnet"] = nm->domain();
    for (const tailnet::node& p : nm->peers()) {
      nlohmann::json eps = nlohmann::json::array();
      for (const auto& e : p.endpoints) eps.push_back(e.to_string());
      peers.push_back({{"name", p.name},
                       {"id", p.id},
                       {"hostname", p.hostname},
                       {"node_key", tailnet::format_node_key(p.key)},
                       {"addresses", prefixes_json(p.addresses, true)},
                       {"allowed_ips", prefixes_json(p.allowed_ips, false)},
                       {"online", p.online ? nlohmann::json(*p.online) : nlohmann::json()},
                       {"endpoints", eps},
                       {"home_derp", p.home_derp}});
    }
  }
  j["peers"] = peers;
  return j;
}

}  // namespace lopower
