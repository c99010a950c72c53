#pragma once
// `lopower-ctl flows [--device NAME]`: the spliced flows, device side and
// tailnet side, protocol, state, age, idle time and bytes each way.

#include "control/ctl/ctl_server.h"
#include "control/wireguard/interface.h"
#include "dataplane/dataplane.h"

namespace lopower {

void register_flow_commands(ctl_server& ctl, const dataplane& dp, const wireguard_interface& devices);

}  // namespace lopower
