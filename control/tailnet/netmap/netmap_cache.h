#pragma once
// The netmap kept on disk (`<state_dir>/netmap.json`), so that a lopowerd
// restarted while the control server is unreachable still has its peers.
//
// The file is one MapResponse, as the server would send the first response
// of a stream: the self node, the whole peer list, the DERP map, the DNS
// config, the named packet filters, the user profiles, the domain. It is
// read back with parse_map_response (the one parser, fuzzed) and applied to
// a fresh netmap with netmap::apply (the same checks as a server's map), so
// a file a crash, a full disk or a hand edit damaged is refused, never half
// taken. What the netmap does not keep is not written: of a node's
// Hostinfo, only the host name (the digest of the rest comes out different,
// which only a comparison with the server's copy would see); PingRequest,
// ControlTime and the other per-response fields.
//
// A cache whose self node has another node key than ours (the node
// registered again, or logged out since) is ignored: its addresses and
// peers belong to another node.

#include <memory>
#include <string>
#include <string_view>

#include "control/tailnet/netmap/netmap.h"
#include "lopower/keys.h"

namespace lopower::tailnet {

inline constexpr const char* netmap_cache_file_name = "netmap.json";

// The MapResponse JSON text of `nm` (which must have a self node).
std::string netmap_to_cache_json(const netmap& nm);

struct netmap_cache_load {
  enum class outcome : std::uint8_t {
    loaded,      // `map` holds the netmap
    refused,     // unparsable, or refused by the netmap; `message` says why
    other_node,  // another node key's; `message` says whose
  };
  outcome result = outcome::refused;
  std::unique_ptr<netmap> map;
  netmap_changes changes;  // what applying it changed (everything: a fresh netmap)
  std::string message;
};

// Reads a cache written by netmap_to_cache_json for the node `node_key`.
// Never throws.
netmap_cache_load netmap_from_cache_json(std::string_view text, const public_key& node_key);

}  // namespace lopower::tailnet
