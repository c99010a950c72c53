#include "control/tailnet/client/identity.h"

#include <nlohmann/json.hpp>

#include "control/tailnet/controlbase/key_text.h"

namespace lopower::tailnet {

namespace {

result<private_key> key_member(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return fail(std::string(name) + ": missing or not a string");
  auto k = parse_private_key_text(it->get_ref<const std::string&>());
  if (!k) return fail(std::string(name) + ": " + k.message());
  if (k->is_zero()) return fail(std::string(name) + ": all-zero key");
  return std::move(*k);
}

}  // namespace

std::string identity_to_json(const identity& id) {
  nlohmann::json j;
  j["machine_key"] = format_private_key_text(id.machine);
  j["node_key"] = format_private_key_text(id.node);
  j["old_node_key"] = id.old_node ? nlohmann::json(format_private_key_text(*id.old_node)) : nlohmann::json(nullptr);
  j["logged_out"] = id.logged_out;
  j["expire_node_key"] = id.expire_node ? nlohmann::json(format_node_key(*id.expire_node)) : nlohmann::json(nullptr);
  if (id.disco) j["disco_key"] = format_private_key_text(*id.disco);
  std::string text = j.dump(2) + "\n";
  // The json object's copies of the key text are freed with it; wipe them first.
  for (auto& [name, value] : j.items())
    if (value.is_string()) secure_wipe(value.get_ref<std::string&>().data(), value.get_ref<std::string&>().size());
  return text;
}

result<identity> identity_from_json(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  identity id;
  auto machine = key_member(j, "machine_key");
  if (!machine) return machine.error();
  auto node = key_member(j, "node_key");
  if (!node) return node.error();
  id.machine = std::move(*machine);
  id.node = std::move(*node);
  if (auto it = j.find("old_node_key"); it != j.end() && !it->is_null()) {
    auto old = key_member(j, "old_node_key");
    if (!old) return old.error();
    id.old_node = std::move(*old);
  }
  if (auto it = j.find("logged_out"); it != j.end()) {
    if (!it->is_boolean()) return fail("logged_out: not a boolean");
    id.logged_out = it->get<bool>();
  }
  if (auto it = j.find("expire_node_key"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return fail("expire_node_key: not a string");
    auto k = parse_node_key(it->get_ref<const std::string&>());
    if (!k) return fail("expire_node_key: " + k.message());
    id.expire_node = *k;
  }
  if (auto it = j.find("disco_key"); it != j.end() && !it->is_null()) {
    auto disco = key_member(j, "disco_key");
    if (!disco) return disco.error();
    id.disco = std::move(*disco);
  }
  return id;
}

result<void> save_identity(const state_store& store, const identity& id) {
  std::string text = identity_to_json(id);
  auto r = store.write(identity_file_name, text);
  secure_wipe(text.data(), text.size());
  if (!r) return fail(r.message());
  return {};
}

result<identity> load_or_create_identity(const state_store& store) {
  if (!store.exists(identity_file_name)) {
    identity id;
    id.machine = generate_private_key();
    id.node = generate_private_key();
    id.disco = generate_private_key();
    if (auto w = save_identity(store, id); !w) return w.error();
    return id;
  }
  auto text = store.read(identity_file_name);
  if (!text) return fail(text.message());
  auto id = identity_from_json(*text);
  secure_wipe(text->data(), text->size());
  if (!id) return fail(store.path_of(identity_file_name) + ": " + id.message());
  if (!id->disco) {
    id->disco = generate_private_key();
    if (auto w = save_identity(store, *id); !w) return w.error();
  }
  return id;
}

}  // namespace lopower::tailnet
