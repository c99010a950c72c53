#include "control/metrics/telemetry.h"

#include <rte_telemetry.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace lopower::metrics {
namespace {

using clock = std::chrono::steady_clock;

// How long a request keeps the control thread refreshing, and how old a
// snapshot may be before a request waits for a new one.
constexpr auto interest_span = std::chrono::seconds(30);
constexpr auto stale_after = std::chrono::seconds(2);

struct shared_snapshot {
  std::mutex lock;
  std::condition_variable published;
  nlohmann::json data;
  clock::time_point taken{};
  clock::time_point last_request{};
};

shared_snapshot& snapshot() {
  static shared_snapshot s;  // lives as long as DPDK's telemetry thread may call us
  return s;
}

void add_value(rte_tel_data* d, const std::string& name, const nlohmann::json& v) {
  if (v.is_boolean()) rte_tel_data_add_dict_u64(d, name.c_str(), v.get<bool>() ? 1 : 0);
  else if (v.is_number_unsigned()) rte_tel_data_add_dict_u64(d, name.c_str(), v.get<std::uint64_t>());
  else if (v.is_number_integer()) rte_tel_data_add_dict_int(d, name.c_str(), static_cast<int>(v.get<std::int64_t>()));
  else if (v.is_number()) rte_tel_data_add_dict_u64(d, name.c_str(), static_cast<std::uint64_t>(v.get<double>()));
  else if (v.is_string()) rte_tel_data_add_dict_string(d, name.c_str(), v.get<std::string>().substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
}

// A JSON object as a telemetry dict; objects inside become containers (one
// level: DPDK does not nest deeper). Past RTE_TEL_MAX_DICT_ENTRIES, entries
// are left out (the metrics endpoint has them all).
void fill_dict(rte_tel_data* d, const nlohmann::json& obj, bool nested) {
  rte_tel_data_start_dict(d);
  for (const auto& [key, value] : obj.items()) {
    const std::string name = key.substr(0, RTE_TEL_MAX_STRING_LEN - 1);
    if (!value.is_object()) {
      add_value(d, name, value);
      continue;
    }
    if (nested) continue;
    rte_tel_data* inner = rte_tel_data_alloc();
    if (inner == nullptr) continue;
    fill_dict(inner, value, true);
    if (rte_tel_data_add_dict_container(d, name.c_str(), inner, 0) != 0) rte_tel_data_free(inner);
  }
}

int answer(const char* cmd, const char*, rte_tel_data* d) {
  const std::string_view command = cmd;
  const std::string key(command.substr(command.rfind('/') + 1));
  shared_snapshot& s = snapshot();
  std::unique_lock guard(s.lock);
  s.last_request = clock::now();
  if (clock::now() - s.taken > stale_after)
    s.published.wait_for(guard, stale_after, [&] { return clock::now() - s.taken <= stale_after; });
  const auto it = s.data.find(key);
  fill_dict(d, it != s.data.end() ? *it : nlohmann::json::object(), false);
  return 0;
}

struct command {
  const char* name;
  const char* help;
};
constexpr command commands[] = {
    {"/lopower/ports", "lopower: per port NIC and worker counters. Takes no parameters"},
    {"/lopower/drops", "lopower: dropped packets by reason, all ports. Takes no parameters"},
    {"/lopower/devices", "lopower: per device traffic and latest handshake. Takes no parameters"},
    {"/lopower/tailnet", "lopower: tailnet node state and per peer path. Takes no parameters"},
    {"/lopower/flows", "lopower: spliced flows by protocol and state. Takes no parameters"},
    {"/lopower/dns", "lopower: device DNS queries by outcome. Takes no parameters"},
};

}  // namespace

void register_telemetry_commands() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (const command& c : commands) rte_telemetry_register_cmd(c.name, answer, c.help);
  });
}

bool telemetry_wanted() {
  shared_snapshot& s = snapshot();
  std::lock_guard guard(s.lock);
  return clock::now() - s.last_request < interest_span;
}

void publish_telemetry(nlohmann::json data) {
  shared_snapshot& s = snapshot();
  {
    std::lock_guard guard(s.lock);
    s.data = std::move(data);
    s.taken = clock::now();
  }
  s.published.notify_all();
}

}  // namespace lopower::metrics
