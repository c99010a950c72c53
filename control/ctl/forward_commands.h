#pragma once
// Port forwards (`lopower-ctl forward add|list|remove`): a TCP or UDP port
// on lopower's tailnet address carried to a device's port. Persisted in
// `<state_dir>/forwards.json` (written atomically, mode 0600, before the
// workers see a change) and published to the dataplane's forward table.

#include <cstdint>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/ctl/ctl_server.h"
#include "control/enrollment/device_registry.h"
#include "control/state_store.h"
#include "dataplane/dataplane.h"
#include "lopower/result.h"

namespace lopower {

struct port_forward {
  std::string protocol;  // "tcp" or "udp"
  std::uint16_t port = 0;
  std::string device;
  std::uint16_t device_port = 0;
  bool configured = false;  // a [[forward]] table: fixed while lopowerd runs, never saved
  bool operator==(const port_forward&) const = default;
};

// The forwards as saved: JSON text, and back (refusing what is malformed).
std::string forwards_to_json(const std::vector<port_forward>& forwards);
result<std::vector<port_forward>> forwards_from_json(std::string_view text);

class forward_service {
 public:
  // Loads `<state_dir>/forwards.json` (none: no forwards), takes the
  // configuration's [[forward]] tables (which win over a saved forward of
  // the same port) and publishes them. A forward to a device not enrolled
  // carries nothing until it is.
  forward_service(const std::string& state_dir, const enrollment::device_registry& registry, dataplane& dp,
                  const std::vector<forward_config>& configured = {});

  // Refuses an unknown device, a duplicate port or bad values (the message
  // says which); saved, then published.
  void add(const port_forward& f);
  // The forward removed; new connections are refused at once and the
  // flows it opened end. Refuses one that does not exist.
  port_forward remove(const std::string& protocol, std::uint16_t port);
  const std::vector<port_forward>& list() const { return forwards_; }
  // Again from the registry's device addresses (after a device changed).
  void publish();

 private:
  void save();
  state_store store_;
  const enrollment::device_registry& registry_;
  dataplane& dp_;
  std::vector<port_forward> forwards_;
};

void register_forward_commands(ctl_server& ctl, forward_service& forwards);

}  // namespace lopower
