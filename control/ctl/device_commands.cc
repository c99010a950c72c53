#include "control/ctl/device_commands.h"

#include <algorithm>
#include <ctime>
#include <set>

#include "control/enrollment/wg_quick_config.h"
#include "control/log.h"

namespace lopower {
namespace {

// Arguments are untrusted: every key must be known and of the right type.
class arguments {
 public:
  arguments(const nlohmann::json& args, std::set<std::string> known) : args_(args) {
    for (auto it = args.begin(); it != args.end(); ++it)
      if (!known.contains(it.key())) throw ctl_command_error("unknown argument \"" + it.key() + "\"");
  }
  std::string name() const {
    auto it = args_.find("name");
    if (it == args_.end() || !it->is_string()) throw ctl_command_error("a device NAME is required");
    return it->get<std::string>();
  }
  std::optional<std::string> text(const char* key) const {
    auto it = args_.find(key);
    if (it == args_.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw ctl_command_error(std::string("\"") + key + "\" must be a string");
    return it->get<std::string>();
  }
  bool flag(const char* key) const {
    auto it = args_.find(key);
    if (it == args_.end()) return false;
    if (!it->is_boolean()) throw ctl_command_error(std::string("\"") + key + "\" must be true or false");
    return it->get<bool>();
  }
  std::optional<std::int64_t> integer(const char* key) const {
    auto it = args_.find(key);
    if (it == args_.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer()) throw ctl_command_error(std::string("\"") + key + "\" must be an integer");
    return it->get<std::int64_t>();
  }

 private:
  const nlohmann::json& args_;
};

// `--egress`: "default" (nullopt: the global [egress] mode) or a mode.
std::optional<egress_mode> egress_choice(const std::string& text, const config& cfg) {
  if (text == "default") return std::nullopt;
  const auto mode = egress_mode_named(text);
  if (!mode) throw ctl_command_error("--egress " + text + ": expected default, none, exit or uplink");
  // As [egress] mode: only a port with role uplink can send it out.
  if (*mode == egress_mode::uplink && cfg.uplink_port() == nullptr)
    throw ctl_command_error("--egress uplink needs a [[port]] with role uplink, which this lopower does not have");
  return mode;
}

template <class T>
const T& value_or_refuse(const enrollment::result<T>& r) {
  if (!r) throw ctl_command_error(r.message());
  return r.value();
}

class device_commands {
 public:
  device_commands(enrollment::device_registry& registry, wireguard_interface& server, const config& cfg)
      : registry_(registry), server_(server), cfg_(cfg) {}

  // The config text for `d`, or why there is none (no usable endpoint, or
  // lopower does not hold the device's key... which still renders, with a
  // placeholder the text explains).
  std::string config_text(const enrollment::device& d) const {
    enrollment::wg_quick_options opts;
    opts.mtu = cfg_.devices.mtu;
    opts.route_all_ipv4 = cfg_.devices.route_all_ipv4;
    // Beyond the tailnet: what the device's egress can carry, per family
    // (an uplink without an IPv6 address carries IPv4 only).
    const egress_mode egress = d.effective_egress(cfg_.egress.mode);
    const port_config* uplink = cfg_.uplink_port();
    const bool uplink_v6 = uplink != nullptr && std::any_of(uplink->addresses.begin(), uplink->addresses.end(),
                                                            [](const ip_prefix& a) { return a.address.family == ip_family::v6; });
    opts.default_route_v4 = egress == egress_mode::exit || egress == egress_mode::uplink;
    opts.default_route_v6 = egress == egress_mode::exit || (egress == egress_mode::uplink && uplink_v6);
    if (cfg_.devices.device_to_device) {
      if (cfg_.devices.ipv4_prefix) opts.device_prefixes.push_back(*cfg_.devices.ipv4_prefix);
      opts.device_prefixes.push_back(cfg_.devices.ipv6_prefix);
    }
    opts.endpoint = cfg_.devices.endpoint;
    const enrollment::server_addresses addrs{registry_.server_ipv4(), registry_.server_ipv6()};
    return value_or_refuse(enrollment::render_wg_quick_config(d, registry_.server_public_key(), addrs, opts));
  }

  // The registry's summary and the live session, with what `wg show`
  // shows in machine-friendly form: the allowed IPs (the device's addresses,
  // as host routes) and how many seconds ago the latest handshake was (null
  // when there has been none).
  nlohmann::json describe(const enrollment::device& d) const {
    nlohmann::json j = enrollment::device_summary_json(d);
    nlohmann::json allowed = nlohmann::json::array();
    if (d.ipv4) allowed.push_back(d.ipv4->to_string() + "/32");
    if (d.ipv6) allowed.push_back(d.ipv6->to_string() + "/128");
    j["allowed_ips"] = allowed;
    // What its traffic beyond the tailnet gets now: its own mode or the global one.
    j["egress"] = name_of(d.effective_egress(server_.default_egress()));
    nlohmann::json wg = server_.device_json(d.name);
    if (wg.is_object()) {
      const std::int64_t at = wg.value("latest_handshake", std::int64_t{0});
      wg["seconds_since_handshake"] = at > 0 ? nlohmann::json(std::max<std::int64_t>(0, std::time(nullptr) - at)) : nlohmann::json();
    }
    j["wireguard"] = wg;
    return j;
  }

  // lopower's side of the devices' tunnels, as the `interface:` part of `wg show`.
  nlohmann::json interface_json() const {
    nlohmann::json addrs = nlohmann::json::array();
    if (const auto v4 = registry_.server_ipv4()) addrs.push_back(v4->to_string());
    addrs.push_back(registry_.server_ipv6().to_string());
    return {{"public_key", registry_.server_public_key().to_base64()},
            {"listen_port", cfg_.wireguard.listen_port},
            {"addresses", addrs},
            {"devices", registry_.list().size()}};
  }

  nlohmann::json add(const nlohmann::json& raw) {
    const arguments args(raw, {"name", "public_key", "ipv4_only", "ipv6_only", "keepalive", "keep_private_key", "egress"});
    // Refuse before anything is saved: a device whose config cannot be printed is no use.
    value_or_refuse(enrollment::parse_endpoint(cfg_.devices.endpoint));
    enrollment::add_options opts;
    opts.public_key = args.text("public_key");
    opts.ipv4_only = args.flag("ipv4_only");
    opts.ipv6_only = args.flag("ipv6_only");
    opts.keepalive = args.integer("keepalive");
    opts.keep_private_key = args.flag("keep_private_key");
    if (auto e = args.text("egress")) opts.egress = egress_choice(*e, cfg_);
    // `d` carries the private key this once; the registry keeps what it was told to.
    const enrollment::device d = value_or_refuse(registry_.add(args.name(), opts));
    const enrollment::device& kept = *registry_.find(d.name);
    server_.add_device(kept);
    LOG_INFO("device %s enrolled", d.name.c_str());
    nlohmann::json out = describe(kept);
    out["config"] = config_text(d);
    out["shown_once"] = d.has_private_key() && !kept.has_private_key();
    return out;
  }

  // The devices as an array; with "with_interface", {"interface", "devices"}.
  nlohmann::json list(const nlohmann::json& raw) const {
    const arguments args(raw, {"with_interface"});
    nlohmann::json out = nlohmann::json::array();
    for (const enrollment::device& d : registry_.list()) out.push_back(describe(d));
    if (!args.flag("with_interface")) return out;
    return {{"interface", interface_json()}, {"devices", out}};
  }

  nlohmann::json show(const nlohmann::json& raw) const {
    const arguments args(raw, {"name"});
    const enrollment::device* d = registry_.find(args.name());
    if (d == nullptr) throw ctl_command_error("no device named \"" + args.name() + "\"");
    nlohmann::json out = describe(*d);
    out["config"] = config_text(*d);
    return out;
  }

  nlohmann::json remove(const nlohmann::json& raw) {
    const arguments args(raw, {"name"});
    const enrollment::device d = value_or_refuse(registry_.remove(args.name()));
    server_.remove_device(d.name);  // its sessions end now
    LOG_INFO("device %s removed", d.name.c_str());
    return enrollment::device_summary_json(d);
  }

  // `device set NAME --egress MODE`: persisted, then the live device follows at once.
  nlohmann::json set(const nlohmann::json& raw) {
    const arguments args(raw, {"name", "egress"});
    const auto text = args.text("egress");
    if (!text) throw ctl_command_error("nothing to set (expected --egress default|none|exit|uplink)");
    const enrollment::device d = value_or_refuse(registry_.set_egress(args.name(), egress_choice(*text, cfg_)));
    server_.set_device_egress(d);
    LOG_INFO("device %s: egress %s%s", d.name.c_str(), name_of(d.effective_egress(server_.default_egress())),
             d.egress ? "" : " (the global mode)");
    return describe(d);
  }

  nlohmann::json reset_timestamp(const nlohmann::json& raw) {
    const arguments args(raw, {"name"});
    const enrollment::device d = value_or_refuse(registry_.reset_timestamp(args.name()));
    server_.reset_timestamp(d.name);
    LOG_INFO("device %s: next handshake accepted whatever its timestamp", d.name.c_str());
    return enrollment::device_summary_json(d);
  }

 private:
  enrollment::device_registry& registry_;
  wireguard_interface& server_;
  const config& cfg_;
};

}  // namespace

void register_device_commands(ctl_server& ctl, enrollment::device_registry& registry, wireguard_interface& server,
                              const config& cfg) {
  auto cmds = std::make_shared<device_commands>(registry, server, cfg);
  using access = ctl_server::access;
  // show prints the device's config: with a kept private key, its credentials.
  ctl.handle("device.add", [cmds](const nlohmann::json& a) { return cmds->add(a); }, access::root_only);
  ctl.handle("device.list", [cmds](const nlohmann::json& a) { return cmds->list(a); });
  ctl.handle("device.show", [cmds](const nlohmann::json& a) { return cmds->show(a); }, access::root_only);
  ctl.handle("device.remove", [cmds](const nlohmann::json& a) { return cmds->remove(a); }, access::root_only);
  ctl.handle("device.set", [cmds](const nlohmann::json& a) { return cmds->set(a); }, access::root_only);
  ctl.handle("device.reset-timestamp", [cmds](const nlohmann::json& a) { return cmds->reset_timestamp(a); },
             access::root_only);
}

}  // namespace lopower
