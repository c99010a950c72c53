#pragma once
// lopower's identity on the tailnet, kept in the state directory so that a
// restarted lopowerd is the same node: the machine key (ts2021), the node
// key (WireGuard to peers), the node key it replaced (OldNodeKey, for
// a key rotation the server has not acknowledged yet), and the node key
// an operator logged out of until the server has been told to expire it.
//
// The file `tailnet.json` (mode 0600, written atomically) holds
//   {"machine_key":"privkey:...","node_key":"privkey:...","old_node_key":"privkey:..."|null,
//    "logged_out":false,"expire_node_key":"nodekey:..."|null,"disco_key":"privkey:..."}
//
// The disco key is kept too: the one the control server last took from us,
// which is what peers hold. tailscaled makes a fresh one at each start and
// lets the server tell its peers; lopower keeps the last netmap on disk
// (netmap_cache.h) to come back during a control outage, and a fresh key
// then would reach no peer -- the server that tells them is the one that
// is down -- so their tailscaled would ignore our disco pings, sealed with
// a key their netmap does not hold, and no direct path would form. So a
// start uses the kept key, announces a fresh one in its map request, and
// switches to it (and keeps it here) once the server's first map shows it
// was taken (coordination_client). Peers then learn of the restart as from
// a restarted tailscaled, a new disco key, and renew their sessions at
// once. A file from before (no "disco_key") gets one made and written.

#include <optional>
#include <string>

#include "control/state_store.h"
#include "lopower/keys.h"
#include "lopower/result.h"

namespace lopower::tailnet {

inline constexpr const char* identity_file_name = "tailnet.json";

struct identity {
  private_key machine;
  private_key node;
  std::optional<private_key> old_node;  // set while a rotation is unconfirmed
  bool logged_out = false;              // the operator logged out: do not register by ourselves
  // Logged out of, not yet expired by the server: told on the next connection.
  std::optional<public_key> expire_node;
  std::optional<private_key> disco;  // absent only in a file from before it was kept
};

// The stored identity, or a fresh one (keys generated, written) when the
// file does not exist; a stored one without a disco key gets one (written). A file that exists but does not parse is an error
// naming the file: lopowerd refuses to start rather than become a new node.
result<identity> load_or_create_identity(const state_store& store);

result<void> save_identity(const state_store& store, const identity& id);

// The JSON text of the file (private keys inside: the caller wipes it).
std::string identity_to_json(const identity& id);
result<identity> identity_from_json(std::string_view text);

}  // namespace lopower::tailnet
