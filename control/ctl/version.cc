#include "control/ctl/version.h"

#include <rte_version.h>

#include "dataplane/crypto/aead_batch.h"
#include "lopower/build_info.h"

namespace lopower {

crypto_probe probe_crypto_backend() {
  crypto_probe p;
  p.available = crypto::available_backends();
  if (auto b = crypto::make_fastest_backend()) {
    p.name = std::string(b->name());
    p.detail = b->describe();
  } else {
    p.name = "none";
  }
  return p;
}

std::string version_text(const crypto_probe& crypto) {
  std::string out = std::string("lopowerd ") + build_version() + "\nrevision " + build_revision() + "\n" + rte_version() +
                    "\ncrypto " + crypto.name;
  if (!crypto.detail.empty()) out += " (" + crypto.detail + ")";
  if (crypto.available.size() > 1) {
    out += ", available:";
    for (const std::string& a : crypto.available) out += " " + a;
  }
  return out + "\n";
}

nlohmann::json version_json(std::string_view crypto_backend, std::string_view crypto_detail) {
  return {{"version", build_version()},
          {"revision", build_revision()},
          {"dpdk", rte_version()},
          {"crypto_backend", crypto_backend},
          {"crypto", crypto_detail}};
}

void register_version_command(ctl_server& ctl, const dataplane& dp) {
  // The workers made their backends when they were created: describe the
  // same kind once, here, rather than reaching into a worker's.
  const std::string name = dp.workers().empty() ? "none" : std::string(dp.workers()[0]->crypto_backend());
  const auto backend = crypto::make_backend(name);
  const std::string detail = backend ? backend->describe() : "";
  ctl.handle("version", [name, detail](const nlohmann::json& args) {
    if (!args.empty()) throw ctl_command_error("version takes no arguments");
    return version_json(name, detail);
  });
}

}  // namespace lopower
