#include "control/ctl/tailnet_commands.h"

namespace lopower {

// logout / login: the operator's hold on lopower's tailnet membership.
void register_tailnet_commands(ctl_server& ctl, tailnet_node* node) {
  auto with_node = [node](auto action) {
    return [node, action](const nlohmann::json&) -> nlohmann::json {
      if (node == nullptr) throw ctl_command_error("the tailnet is not configured (tailnet.control_url)");
      if (auto r = action(*node); !r) throw ctl_command_error(r.message());
      return nlohmann::json{{"backend_state", tailnet::to_string(node->client().state())}};
    };
  };
  ctl.handle("logout", with_node([](tailnet_node& n) { return n.logout(); }), ctl_server::access::root_only);
  // ping PEER: started here, its outcome polled (the control socket answers
  // each request at once; a ping takes up to its timeout).
  ctl.handle("tailnet.ping", [node](const nlohmann::json& args) -> nlohmann::json {
    if (node == nullptr) throw ctl_command_error("the tailnet is not configured (tailnet.control_url)");
    if (!args.contains("peer") || !args["peer"].is_string()) throw ctl_command_error("peer: expected a name or IP");
    const auto timeout_ms = args.value("timeout_ms", 5000);
    if (timeout_ms < 100 || timeout_ms > 60000) throw ctl_command_error("timeout_ms: expected 100..60000");
    const std::string mode = args.value("mode", std::string("disco"));
    if (mode != "disco" && mode != "icmp") throw ctl_command_error("mode: expected disco or icmp");
    auto id = node->start_ping(args["peer"].get<std::string>(), std::chrono::milliseconds(timeout_ms),
                               mode == "icmp" ? tailnet_node::ping_mode::icmp : tailnet_node::ping_mode::disco);
    if (!id) throw ctl_command_error(id.message());
    return {{"id", *id}};
  });
  ctl.handle("tailnet.ping_result", [node](const nlohmann::json& args) -> nlohmann::json {
    if (node == nullptr) throw ctl_command_error("the tailnet is not configured (tailnet.control_url)");
    if (!args.contains("id") || !args["id"].is_number_unsigned()) throw ctl_command_error("id: expected a ping id");
    return node->ping_result(args["id"].get<std::uint64_t>());
  });
  ctl.handle("login", with_node([](tailnet_node& n) { return n.login(); }), ctl_server::access::root_only);
  ctl.handle("tailnet.netcheck", [node](const nlohmann::json&) -> nlohmann::json {
    if (node == nullptr) throw ctl_command_error("the tailnet is not configured (tailnet.control_url)");
    return node->netcheck_json();
  });
}

}  // namespace lopower
