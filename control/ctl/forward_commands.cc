#include "control/ctl/forward_commands.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

#include "control/log.h"

namespace lopower {

namespace {

constexpr const char* file_name = "forwards.json";

std::uint8_t ip_protocol_of(const std::string& protocol) { return protocol == "tcp" ? 6 : 17; }

nlohmann::json forward_json(const port_forward& f) {
  nlohmann::json j{{"protocol", f.protocol}, {"port", f.port}, {"device", f.device}, {"device_port", f.device_port}};
  if (f.configured) j["configured"] = true;
  return j;
}

// Untrusted (a ctl client, a file): each member known and of its type.
port_forward forward_of(const nlohmann::json& j, bool with_device) {
  if (!j.is_object()) throw ctl_command_error("a forward is an object");
  const std::set<std::string> known = with_device ? std::set<std::string>{"protocol", "port", "device", "device_port"}
                                                  : std::set<std::string>{"protocol", "port"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.contains(it.key())) throw ctl_command_error("unknown argument \"" + it.key() + "\"");
  auto port_at = [&j](const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<std::int64_t>() < 1 || it->get<std::int64_t>() > 65535)
      throw ctl_command_error(std::string(key) + ": expected a port 1..65535");
    return static_cast<std::uint16_t>(it->get<std::int64_t>());
  };
  port_forward f;
  auto proto = j.find("protocol");
  if (proto == j.end() || !proto->is_string() || (*proto != "tcp" && *proto != "udp"))
    throw ctl_command_error("protocol: expected \"tcp\" or \"udp\"");
  f.protocol = proto->get<std::string>();
  f.port = port_at("port");
  if (!with_device) return f;
  auto device = j.find("device");
  if (device == j.end() || !device->is_string() || device->get<std::string>().empty())
    throw ctl_command_error("device: expected a device name");
  f.device = device->get<std::string>();
  f.device_port = port_at("device_port");
  return f;
}

}  // namespace

std::string forwards_to_json(const std::vector<port_forward>& forwards) {
  nlohmann::json list = nlohmann::json::array();
  for (const port_forward& f : forwards)
    if (!f.configured) list.push_back(forward_json(f));
  return nlohmann::json{{"forwards", list}}.dump(2) + "\n";
}

result<std::vector<port_forward>> forwards_from_json(std::string_view text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object() || !j.contains("forwards") || !j["forwards"].is_array())
      return fail("expected {\"forwards\": [...]}");
    std::vector<port_forward> out;
    for (const nlohmann::json& f : j["forwards"]) out.push_back(forward_of(f, true));
    return out;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

forward_service::forward_service(const std::string& state_dir, const enrollment::device_registry& registry,
                                 dataplane& dp, const std::vector<forward_config>& configured)
    : store_([&] {
        auto s = state_store::open(state_dir);
        if (!s) throw std::runtime_error(s.message());
        return std::move(*s);
      }()),
      registry_(registry), dp_(dp) {
  if (store_.exists(file_name)) {
    auto text = store_.read(file_name);
    if (!text) throw std::runtime_error(text.message());
    auto loaded = forwards_from_json(*text);
    if (!loaded) throw std::runtime_error(store_.path_of(file_name) + ": " + loaded.message());
    forwards_ = std::move(*loaded);
  }
  for (const forward_config& c : configured) {
    std::erase_if(forwards_, [&c](const port_forward& f) { return f.protocol == c.protocol && f.port == c.port; });
    forwards_.push_back({c.protocol, c.port, c.device, c.device_port, true});
    if (registry_.find(c.device) == nullptr)
      LOG_WARNING("forward %s port %u: no device named %s yet (it is carried once one is enrolled)", c.protocol.c_str(),
                  c.port, c.device.c_str());
  }
  publish();
}

void forward_service::save() {
  auto written = store_.write(file_name, forwards_to_json(forwards_));
  if (!written) throw ctl_command_error("cannot save the forwards: " + written.message());
}

void forward_service::publish() {
  auto table = std::make_unique<forward_table>();
  for (const port_forward& f : forwards_) {
    const enrollment::device* d = registry_.find(f.device);
    if (d == nullptr) continue;  // removed since: nothing to carry to
    forward_entry e;
    e.protocol = ip_protocol_of(f.protocol);
    e.port = f.port;
    e.device_port = f.device_port;
    if (d->ipv4) {
      e.has_v4 = true;
      std::memcpy(&e.device_v4_be, d->ipv4->bytes.data(), 4);
    }
    if (d->ipv6) {
      e.has_v6 = true;
      std::memcpy(e.device_v6, d->ipv6->bytes.data(), 16);
    }
    table->entries.push_back(e);
  }
  dp_.publish_forwards(std::move(table));
}

void forward_service::add(const port_forward& f) {
  if (registry_.find(f.device) == nullptr) throw ctl_command_error("no device named \"" + f.device + "\"");
  for (const port_forward& have : forwards_)
    if (have.protocol == f.protocol && have.port == f.port)
      throw ctl_command_error(f.protocol + " port " + std::to_string(f.port) + " is forwarded already (to " +
                              have.device + ":" + std::to_string(have.device_port) + ")");
  forwards_.push_back(f);
  try {
    save();
  } catch (...) {
    forwards_.pop_back();
    throw;
  }
  publish();
}

port_forward forward_service::remove(const std::string& protocol, std::uint16_t port) {
  auto it = std::find_if(forwards_.begin(), forwards_.end(),
                         [&](const port_forward& f) { return f.protocol == protocol && f.port == port; });
  if (it == forwards_.end()) throw ctl_command_error("no forward of " + protocol + " port " + std::to_string(port));
  if (it->configured)
    throw ctl_command_error(protocol + " port " + std::to_string(port) +
                            " is forwarded by a [[forward]] table of the configuration file: remove it there");
  const port_forward gone = *it;
  forwards_.erase(it);
  try {
    save();
  } catch (...) {
    forwards_.push_back(gone);
    throw;
  }
  publish();  // new connections refused from here on
  dp_.end_forward_flows(ip_protocol_of(protocol), port);
  return gone;
}

void register_forward_commands(ctl_server& ctl, forward_service& forwards) {
  using access = ctl_server::access;
  ctl.handle("forward.add", [&forwards](const nlohmann::json& a) {
    const port_forward f = forward_of(a, true);
    forwards.add(f);
    LOG_INFO("forward %s port %u to %s:%u added", f.protocol.c_str(), f.port, f.device.c_str(), f.device_port);
    return forward_json(f);
  }, access::root_only);
  ctl.handle("forward.list", [&forwards](const nlohmann::json&) {
    nlohmann::json list = nlohmann::json::array();
    for (const port_forward& f : forwards.list()) list.push_back(forward_json(f));
    return nlohmann::json{{"forwards", list}};
  });
  ctl.handle("forward.remove", [&forwards](const nlohmann::json& a) {
    const port_forward key = forward_of(a, false);
    const port_forward gone = forwards.remove(key.protocol, key.port);
    LOG_INFO("forward %s port %u removed", gone.protocol.c_str(), gone.port);
    return forward_json(gone);
  }, access::root_only);
}

}  // namespace lopower
