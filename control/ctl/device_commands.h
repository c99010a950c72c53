#pragma once
// The `lopower-ctl device ...` commands on the daemon side: enrollment in
// the registry (persisted before anything else changes) and the matching
// change to the live WireGuard server (no restart).

#include "control/config.h"
#include "control/ctl/ctl_server.h"
#include "control/wireguard/interface.h"
#include "control/enrollment/device_registry.h"

namespace lopower {

void register_device_commands(ctl_server& ctl, enrollment::device_registry& registry, wireguard_interface& server,
                              const config& cfg);

}  // namespace lopower
