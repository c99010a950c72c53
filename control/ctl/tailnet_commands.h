#pragma once
// The tailnet's commands on the control socket: logout, login, and
// tailnet.ping / tailnet.ping_result. Without a tailnet (node == nullptr)
// each answers that the tailnet is not configured.

#include "control/ctl/ctl_server.h"
#include "control/tailnet/node.h"

namespace lopower {

void register_tailnet_commands(ctl_server& ctl, tailnet_node* node);

}  // namespace lopower
