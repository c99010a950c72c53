#pragma once
// Which tailnet peer serves as lopower's exit node: the peers offering both
// default routes (approved: they are in the peer's AllowedIPs, as tailscale's
// tsaddr.ContainsExitRoutes asks), online, picked by [egress] exit_nodes.
// Pure functions of the netmap's peers: the tailnet node calls them on each
// netmap that may move the choice.

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "control/tailnet/netmap/map_response.h"

namespace lopower::tailnet {

// Both 0.0.0.0/0 and ::/0 in its AllowedIPs: one alone is no exit node.
bool offers_exit(const node& n);
// Offered, and a peer lopower can send to now (one that does not say
// whether it is online is taken for online).
bool usable_exit(const node& n);
// `what` names `n`: its MagicDNS name (full, with or without the final dot,
// or its first labels), its host name, or one of its tailnet IPs.
bool names_node(const node& n, const std::string& what);

// The exit node to use (0: none): the first usable one `wanted` names, in
// order; with {"auto"}, `current` while it stays usable (no flapping between
// close latencies), else the lowest `latency_ms` (unmeasured last), ties by
// name.
node_id choose_exit_node(std::span<const node> peers, const std::vector<std::string>& wanted, node_id current,
                         const std::function<std::optional<double>(node_id)>& latency_ms);

}  // namespace lopower::tailnet
