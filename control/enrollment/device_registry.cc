#include "control/enrollment/device_registry.h"

#include <algorithm>
#include <ctime>
#include <limits>

#include <nlohmann/json.hpp>

namespace lopower::enrollment {

using nlohmann::json;

namespace {

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

// Overwrites every string in a JSON document (the private keys in it) before
// it is freed.
template <class Json>
void wipe_strings(Json& j) {
  if (j.is_string()) {
    wipe(j.template get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& child : j) wipe_strings(child);
  }
}

// Written in this key order (ordered_json), so the file reads top-down.
nlohmann::ordered_json device_to_json(const device& d) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["name"] = d.name;
  j["public_key"] = d.public_key.to_base64();
  if (d.device_private_key) j["private_key"] = d.device_private_key->to_base64();
  if (d.ipv4) j["ipv4"] = d.ipv4->to_string();
  if (d.ipv6) j["ipv6"] = d.ipv6->to_string();
  j["keepalive"] = d.keepalive;
  j["created"] = d.created;
  j["timestamp_reset_generation"] = d.timestamp_reset_generation;
  if (d.egress) j["egress"] = name_of(*d.egress);
  return j;
}

// Reads one field of the state file, or says what is wrong with it.
class field_reader {
 public:
  field_reader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  std::string problem;  // set by the first failure

  const json* find(std::string_view key, bool required) {
    const auto it = object_.find(key);
    if (it == object_.end()) {
      if (required) note("has no " + quote(key));
      return nullptr;
    }
    return &*it;
  }

  std::optional<std::string> string(std::string_view key, bool required = true) {
    const json* v = find(key, required);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      note(quote(key) + " is not a string");
      return std::nullopt;
    }
    return v->get<std::string>();
  }

  template <class Int>
  std::optional<Int> integer(std::string_view key, std::int64_t min, std::uint64_t max) {
    const json* v = find(key, true);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) {
      note(quote(key) + " is not an integer");
      return std::nullopt;
    }
    if (v->is_number_unsigned()) {
      const auto u = v->get<std::uint64_t>();
      if ((min <= 0 || u >= static_cast<std::uint64_t>(min)) && u <= max) return static_cast<Int>(u);
    } else {
      const auto s = v->get<std::int64_t>();
      if (s >= min && (s < 0 || static_cast<std::uint64_t>(s) <= max)) return static_cast<Int>(s);
    }
    note(quote(key) + " is out of range");
    return std::nullopt;
  }

  void note(const std::string& what) {
    if (problem.empty()) problem = where_ + " " + what;
  }

 private:
  const json& object_;
  std::string where_;
};

}  // namespace

json device_summary_json(const device& d) {
  json j = json::object();
  j["name"] = d.name;
  j["public_key"] = d.public_key.to_base64();
  j["lopower_has_private_key"] = d.has_private_key();
  j["ipv4"] = d.ipv4 ? json(d.ipv4->to_string()) : json(nullptr);
  j["ipv6"] = d.ipv6 ? json(d.ipv6->to_string()) : json(nullptr);
  j["keepalive"] = d.keepalive;
  j["created"] = d.created;
  j["timestamp_reset_generation"] = d.timestamp_reset_generation;
  j["own_egress"] = d.egress ? json(name_of(*d.egress)) : json(nullptr);
  return j;
}

bool valid_device_name(std::string_view name) {
  return !name.empty() && name.size() <= max_device_name_length && std::all_of(name.begin(), name.end(), name_char);
}

std::string device_name_problem(std::string_view name) {
  if (valid_device_name(name)) return {};
  if (name.empty()) return "a device name must not be empty";
  if (name.size() > max_device_name_length)
    return "device name " + quote(name) + " is too long (" + std::to_string(name.size()) + " characters; at most 32)";
  return "device name " + quote(name) + " has characters other than A-Z a-z 0-9 _ . -";
}

result<device_registry> device_registry::open(registry_config config) {
  auto allocator = address_allocator::create(config.ipv4_prefix, config.ipv6_prefix);
  if (!allocator) return allocator.error();
  auto store = state_store::open(config.state_dir, config.warn);
  if (!store) return store.error();

  device_registry registry(std::move(config), std::move(*store), std::move(*allocator));
  if (registry.store_.exists(devices_file_name)) {
    auto text = registry.store_.read(devices_file_name);
    if (!text) return text.error();
    const auto loaded = registry.load(*text);
    wipe(*text);
    if (!loaded) return loaded.error();
    return registry;
  }

  // First start: lopower's device-side key, written before anything uses it.
  registry.server_key_ = generate_private_key();
  registry.server_public_ = public_from_private(registry.server_key_);
  if (auto written = registry.persist({}); !written) return written.error();
  return registry;
}

std::int64_t device_registry::now() const {
  if (config_.clock) return config_.clock();
  return static_cast<std::int64_t>(std::time(nullptr));
}

result<void> device_registry::load(const std::string& text) {
  const std::string file = state_file_path();
  const auto corrupted = [&](const std::string& what) {
    return fail("state file " + file + " is corrupted: " + what +
                " (lopower will not start over by itself: restore the file from a backup, or move it away "
                "to start with no devices and a new server key)");
  };

  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // The position only: the library's message quotes the text, which may be a key.
    return corrupted("it is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception&) {
    return corrupted("it is not valid JSON");
  }
  struct doc_wiper {
    json& j;
    ~doc_wiper() { wipe_strings(j); }
  } wiper{doc};

  if (!doc.is_object()) return corrupted("it is not a JSON object");
  field_reader top(doc, "the file");
  const json* version = top.find("version", true);
  if (version == nullptr) return corrupted(top.problem);
  if (!version->is_number_integer() || version->get<std::int64_t>() != devices_file_version)
    return fail("state file " + file + " has version " + version->dump() + ", which this lopower does not read (it reads version " +
                std::to_string(devices_file_version) + "); was it written by a newer lopower?");

  auto server_text = top.string("server_private_key");
  if (!server_text) return corrupted(top.problem);
  auto server = parse_private_key(*server_text, "server_private_key");
  wipe(*server_text);
  if (!server) return corrupted(server.message());
  const public_key server_public = public_from_private(*server);

  const json* list = top.find("devices", true);
  if (list == nullptr) return corrupted(top.problem);
  if (!list->is_array()) return corrupted("\"devices\" is not an array");

  address_allocator addresses = addresses_;
  std::vector<device> devices;
  std::vector<std::string> warnings;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json& entry = (*list)[i];
    const std::string where = "device " + std::to_string(i + 1);
    if (!entry.is_object()) return corrupted(where + " is not a JSON object");
    field_reader f(entry, where);
    device d;
    const auto name = f.string("name");
    if (!name) return corrupted(f.problem);
    if (!valid_device_name(*name)) return corrupted(where + ": " + device_name_problem(*name));
    if (std::any_of(devices.begin(), devices.end(), [&](const device& o) { return o.name == *name; }))
      return corrupted("device name " + quote(*name) + " appears twice");
    d.name = *name;
    const std::string who = "device " + quote(d.name);

    const auto pub = f.string("public_key");
    if (!pub) return corrupted(f.problem);
    auto pub_key = parse_public_key(*pub, who + "'s public key");
    if (!pub_key) return corrupted(pub_key.message());
    d.public_key = *pub_key;
    if (std::any_of(devices.begin(), devices.end(), [&](const device& o) { return o.public_key == d.public_key; }))
      return corrupted(who + " has the public key of another device");

    if (auto priv = f.string("private_key", false)) {
      auto priv_key = parse_private_key(*priv, who + "'s private key");
      wipe(*priv);
      if (!priv_key) return corrupted(priv_key.message());
      d.device_private_key = std::move(*priv_key);
      if (public_from_private(*d.device_private_key) != d.public_key)
        return corrupted(who + "'s private key does not belong to its public key");
    } else if (!f.problem.empty()) {
      return corrupted(f.problem);
    }

    for (const ip_family family : {ip_family::v4, ip_family::v6}) {
      const char* key = family == ip_family::v4 ? "ipv4" : "ipv6";
      const auto text_addr = f.string(key, false);
      if (!f.problem.empty()) return corrupted(f.problem);
      if (!text_addr) continue;
      const auto addr = ip_address::parse(*text_addr);
      if (!addr || addr->family != family)
        return corrupted(who + "'s " + quote(key) + " is not an " + (family == ip_family::v4 ? "IPv4" : "IPv6") + " address");
      (family == ip_family::v4 ? d.ipv4 : d.ipv6) = addr;
      if (std::any_of(devices.begin(), devices.end(), [&](const device& o) { return o.ipv4 == addr || o.ipv6 == addr; }))
        return corrupted(who + " has " + addr->to_string() + ", as another device does");
      if (addresses.is_device_address(*addr)) {
        if (auto r = addresses.reserve(*addr); !r) return corrupted(who + ": " + r.message());
      } else if (family == ip_family::v4 && !addresses.ipv4_enabled()) {
        warnings.push_back(who + " has the IPv4 address " + addr->to_string() +
                           ", but IPv4 is off: its config no longer carries IPv4");
      } else {
        const ip_prefix& p = family == ip_family::v4 ? *addresses.ipv4_prefix() : addresses.ipv6_prefix();
        warnings.push_back(who + " keeps " + addr->to_string() + ", which is not a device address in " + p.to_string() +
                           " (the device prefix changed?); remove and re-add the device to give it a new one");
      }
    }

    const auto keepalive = f.integer<std::uint16_t>("keepalive", 0, 65535);
    const auto created = f.integer<std::int64_t>("created", 0, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    const auto generation = f.integer<std::uint64_t>("timestamp_reset_generation", 0,
                                                            std::numeric_limits<std::uint64_t>::max());
    if (!keepalive || !created || !generation) return corrupted(f.problem);
    d.keepalive = *keepalive;
    d.created = *created;
    d.timestamp_reset_generation = *generation;
    if (auto mode = f.string("egress", false)) {
      d.egress = egress_mode_named(*mode);
      if (!d.egress) return corrupted(who + "'s \"egress\" is not one of \"none\", \"exit\", \"uplink\"");
    } else if (!f.problem.empty()) {
      return corrupted(f.problem);
    }
    if (d.public_key == server_public) return corrupted(who + " has lopower's own public key");
    devices.push_back(std::move(d));
  }

  server_key_ = std::move(*server);
  server_public_ = server_public;
  addresses_ = std::move(addresses);
  devices_ = std::move(devices);
  if (config_.warn)
    for (const auto& w : warnings) config_.warn(w);
  return {};
}

result<void> device_registry::persist(const std::vector<device>& devices) const {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  doc["version"] = devices_file_version;
  doc["server_private_key"] = server_key_.to_base64();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& d : devices) list.push_back(device_to_json(d));
  doc["devices"] = std::move(list);
  std::string text = doc.dump(2) + "\n";
  wipe_strings(doc);
  auto written = store_.write(devices_file_name, text);
  wipe(text);
  return written;
}

result<device> device_registry::add(std::string_view name, const add_options& options) {
  if (!valid_device_name(name)) return fail(device_name_problem(name));
  if (find(name) != nullptr) return fail("device name " + quote(name) + " is taken");

  if (options.ipv4_only && options.ipv6_only) return fail("--ipv4-only and --ipv6-only exclude each other");
  if (options.ipv4_only && !addresses_.ipv4_enabled())
    return fail("IPv4 is off in the config ([devices] ipv4 = false): a device cannot be IPv4-only");
  std::uint16_t keepalive = config_.default_keepalive;
  if (options.keepalive) {
    if (*options.keepalive < 0 || *options.keepalive > 65535)
      return fail("keepalive " + std::to_string(*options.keepalive) + " is out of range (0..65535 seconds; 0 turns it off)");
    keepalive = static_cast<std::uint16_t>(*options.keepalive);
  }

  device d;
  d.name = std::string(name);
  d.keepalive = keepalive;
  d.egress = options.egress;
  if (options.public_key) {
    auto key = parse_public_key(*options.public_key);
    if (!key) return key.error();
    d.public_key = *key;
    if (d.public_key == server_public_) return fail("public key is lopower's own; give the device's public key");
  } else {
    d.device_private_key = generate_private_key();
    d.public_key = public_from_private(*d.device_private_key);
  }
  if (const device* other = find_by_public_key(d.public_key))
    return fail("public key is already used by device " + quote(other->name));

  if (!options.ipv6_only && addresses_.ipv4_enabled()) {
    auto v4 = addresses_.next_free(ip_family::v4);
    if (!v4) return v4.error();
    d.ipv4 = *v4;
  }
  if (!options.ipv4_only) {
    auto v6 = addresses_.next_free(ip_family::v6);
    if (!v6) return v6.error();
    d.ipv6 = *v6;
  }
  d.created = now();

  std::vector<device> next = devices_;
  next.push_back(d);
  if (!options.keep_private_key) next.back().device_private_key.reset();  // add's result is the only copy
  if (auto written = persist(next); !written) return written.error();

  // Written: now memory follows. reserve() cannot fail for addresses next_free() gave.
  if (d.ipv4) (void)addresses_.reserve(*d.ipv4);
  if (d.ipv6) (void)addresses_.reserve(*d.ipv6);
  devices_ = std::move(next);
  ++generation_;
  return d;
}

result<device> device_registry::remove(std::string_view name) {
  const auto it = std::find_if(devices_.begin(), devices_.end(), [&](const device& d) { return d.name == name; });
  if (it == devices_.end()) return fail("no device named " + quote(name));
  const auto index = static_cast<std::size_t>(it - devices_.begin());
  std::vector<device> next = devices_;
  next.erase(next.begin() + static_cast<std::ptrdiff_t>(index));
  if (auto written = persist(next); !written) return written.error();

  device removed = std::move(devices_[index]);
  if (removed.ipv4) addresses_.release(*removed.ipv4);
  if (removed.ipv6) addresses_.release(*removed.ipv6);
  devices_ = std::move(next);
  ++generation_;
  return removed;
}

result<device> device_registry::reset_timestamp(std::string_view name) {
  const auto it = std::find_if(devices_.begin(), devices_.end(), [&](const device& d) { return d.name == name; });
  if (it == devices_.end()) return fail("no device named " + quote(name));
  std::vector<device> next = devices_;
  device& d = next[static_cast<std::size_t>(it - devices_.begin())];
  ++d.timestamp_reset_generation;
  device updated = d;
  if (auto written = persist(next); !written) return written.error();
  devices_ = std::move(next);
  return updated;
}

result<device> device_registry::set_egress(std::string_view name, std::optional<egress_mode> egress) {
  const auto it = std::find_if(devices_.begin(), devices_.end(), [&](const device& d) { return d.name == name; });
  if (it == devices_.end()) return fail("no device named " + quote(name));
  std::vector<device> next = devices_;
  device& d = next[static_cast<std::size_t>(it - devices_.begin())];
  d.egress = egress;
  device updated = d;
  if (auto written = persist(next); !written) return written.error();
  devices_ = std::move(next);
  return updated;
}

const device* device_registry::find(std::string_view name) const {
  const auto it = std::find_if(devices_.begin(), devices_.end(), [&](const device& d) { return d.name == name; });
  return it == devices_.end() ? nullptr : &*it;
}

const device* device_registry::find_by_public_key(const public_key& key) const {
  const auto it = std::find_if(devices_.begin(), devices_.end(), [&](const device& d) { return d.public_key == key; });
  return it == devices_.end() ? nullptr : &*it;
}

}  // namespace lopower::enrollment
