#include "control/tailnet/exit_nodes.h"

#include <algorithm>
#include <limits>

namespace lopower::tailnet {

bool offers_exit(const node& n) {
  const auto has = [&n](ip_family f) {
    return std::any_of(n.allowed_ips.begin(), n.allowed_ips.end(),
                       [f](const ip_prefix& p) { return p.length == 0 && p.address.family == f; });
  };
  return has(ip_family::v4) && has(ip_family::v6);
}

bool usable_exit(const node& n) { return offers_exit(n) && !n.expired && !n.key.is_zero() && n.online.value_or(true); }

bool names_node(const node& n, const std::string& what) {
  if (auto ip = ip_address::parse(what))
    return std::any_of(n.addresses.begin(), n.addresses.end(), [&ip](const ip_prefix& a) { return a.address == *ip; });
  const std::string bare = n.name.empty() || n.name.back() != '.' ? n.name : n.name.substr(0, n.name.size() - 1);
  return what == n.name || what == bare || what == n.hostname || bare.rfind(what + ".", 0) == 0;
}

node_id choose_exit_node(std::span<const node> peers, const std::vector<std::string>& wanted, node_id current,
                         const std::function<std::optional<double>(node_id)>& latency_ms) {
  const bool automatic = wanted.size() == 1 && wanted[0] == "auto";
  if (!automatic) {
    for (const std::string& w : wanted)
      for (const node& n : peers)
        if (usable_exit(n) && names_node(n, w)) return n.id;
    return 0;
  }
  const node* best = nullptr;
  double best_ms = 0;
  for (const node& n : peers) {
    if (!usable_exit(n)) continue;
    if (n.id == current) return current;
    const double ms = latency_ms(n.id).value_or(std::numeric_limits<double>::infinity());
    if (best == nullptr || ms < best_ms || (ms == best_ms && n.name < best->name)) {
      best = &n;
      best_ms = ms;
    }
  }
  return best ? best->id : 0;
}

}  // namespace lopower::tailnet
