#pragma once
// What this lopowerd is: its release, the git revision it was built from,
// the DPDK it runs on (rte_version()) and the crypto backend. For
// `lopowerd --version` (no EAL: the crypto backends are plain libraries, so
// they are probed as a worker would pick them) and the `version` command
// (the backend the running workers use).

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/ctl/ctl_server.h"
#include "dataplane/dataplane.h"

namespace lopower {

struct crypto_probe {
  std::string name;                    // what `crypto_backend = "auto"` picks here: "ipsec-mb", "libsodium" or "none"
  std::string detail;                  // its describe(): library version, code path
  std::vector<std::string> available;  // every backend that initialises on this CPU, fastest first
};
crypto_probe probe_crypto_backend();

// `lopowerd --version`: "lopowerd 0.1.0\nrevision ...\nDPDK 22.11.11\ncrypto ipsec-mb (...)\n".
std::string version_text(const crypto_probe& crypto);

// {"version", "revision", "dpdk", "crypto_backend", "crypto"}: the `version`
// command's reply; status carries the first three too.
nlohmann::json version_json(std::string_view crypto_backend, std::string_view crypto_detail);

// `version`: the reply above, with the backend of the first worker.
void register_version_command(ctl_server& ctl, const dataplane& dp);

}  // namespace lopower
