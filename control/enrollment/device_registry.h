#pragma once
// The device side's identity (lopower's WireGuard key toward devices) and the
// enrolled devices, persisted in `<state_dir>/devices.json`:
//
//   {"version": 1,
//    "server_private_key": "<base64>",
//    "devices": [{"name": "esp1", "public_key": "<base64>", "private_key": "<base64>",
//                 "ipv4": "10.90.0.2", "ipv6": "fd7a:115c:a1e0:9909::2",
//                 "keepalive": 25, "created": 1735689600,
//                 "timestamp_reset_generation": 0, "egress": "exit"}, ...]}
//
// ("private_key", "ipv4" and "ipv6" are left out when the device has none;
// "egress" when the device follows [egress] mode: files written before
// egress existed load as such.)
//
// Every operation validates first, then writes the new state, and only then
// changes memory: on any error nothing has changed, in memory or on disk.
// Not thread-safe: the control thread owns it.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "control/enrollment/address_allocator.h"
#include "control/enrollment/keys.h"
#include "control/enrollment/result.h"
#include "control/state_store.h"
#include "lopower/egress_mode.h"
#include "lopower/net_addr.h"

namespace lopower::enrollment {

inline constexpr std::string_view devices_file_name = "devices.json";
inline constexpr int devices_file_version = 1;
inline constexpr std::size_t max_device_name_length = 32;
inline constexpr std::uint16_t default_keepalive_seconds = 25;

struct device {
  std::string name;
  lopower::public_key public_key;
  // Absent when the device generated its own key (`--public-key`): lopower
  // never had it.
  std::optional<private_key> device_private_key;
  std::optional<ip_address> ipv4;
  std::optional<ip_address> ipv6;
  std::uint16_t keepalive = default_keepalive_seconds;  // seconds; 0 = off
  std::int64_t created = 0;                             // unix seconds
  // Bumped by reset-timestamp: the WireGuard server accepts this device's
  // next handshake even if its TAI64N timestamp is lower than the last one.
  std::uint64_t timestamp_reset_generation = 0;
  // Its own egress mode; absent: the global [egress] mode.
  std::optional<egress_mode> egress;

  bool has_private_key() const { return device_private_key.has_value(); }
  egress_mode effective_egress(egress_mode global_default) const { return egress.value_or(global_default); }
};

struct registry_config {
  std::string state_dir;
  std::optional<ip_prefix> ipv4_prefix = ip_prefix{ip_address::v4(0x0a5a0000), 24};  // absent: IPv4 off
  ip_prefix ipv6_prefix = *ip_prefix::parse("fd7a:115c:a1e0:9909::/64");
  std::uint16_t default_keepalive = default_keepalive_seconds;  // [devices] keepalive
  warning_fn warn;                          // operator-facing warnings (may be empty)
  std::function<std::int64_t()> clock;      // unix seconds; empty: the system clock
};

struct add_options {
  std::optional<std::string> public_key;  // base64 as typed (`--public-key`); lopower generates a key pair without it
  bool ipv4_only = false;
  bool ipv6_only = false;
  std::optional<std::int64_t> keepalive;  // `--keepalive S`, 0..65535; the config's default without it
  // A key pair lopower generates is shown once (in add's result) and only
  // its public half is kept, as if the device had run `wg genkey` itself;
  // `--keep-private-key` keeps it for a later `device show --qr`.
  bool keep_private_key = false;
  std::optional<egress_mode> egress;  // `--egress MODE`; absent (or `default`): the global mode
};

// Device names: 1..32 characters of [A-Za-z0-9_.-], case-sensitive.
bool valid_device_name(std::string_view name);
// The error for a name that is not valid; empty for a valid one.
std::string device_name_problem(std::string_view name);

// What `device list --json` and `device show --json` print about a device:
// everything but its private key ({"name", "public_key", "lopower_has_private_key",
// "ipv4", "ipv6" (null when absent), "keepalive", "created",
// "timestamp_reset_generation", "own_egress" (the device's own mode, null
// when it follows the global one)}).
nlohmann::json device_summary_json(const device& d);

class device_registry {
 public:
  // Loads `<state_dir>/devices.json`, or on first start generates the server
  // key and writes it. A corrupted file, or one of an unknown version, is an
  // error (never silently replaced). Devices whose addresses lie outside the
  // configured prefixes (the config changed) are kept with a warning.
  static result<device_registry> open(registry_config config);

  device_registry(device_registry&&) = default;
  device_registry& operator=(device_registry&&) = default;

  // Enrolls a device: validates the name, key and options, allocates its
  // addresses, persists, and returns it.
  result<device> add(std::string_view name, const add_options& options);
  // Removes a device and frees its addresses; returns what was removed.
  result<device> remove(std::string_view name);
  // Lets the device's next handshake through with a lower timestamp; returns
  // the device with its new generation.
  result<device> reset_timestamp(std::string_view name);
  // Gives the device its own egress mode, or (nullopt) returns it to the
  // global one; returns the device as it is now.
  result<device> set_egress(std::string_view name, std::optional<egress_mode> egress);

  // Pointers stay valid until the next add or remove.
  const device* find(std::string_view name) const;
  const device* find_by_public_key(const public_key& key) const;
  // In enrollment order.
  const std::vector<device>& list() const { return devices_; }
  // Changes with every add and remove: what is built from the list (the
  // DNS answerer's device names) knows when to build again.
  std::uint64_t generation() const { return generation_; }

  const private_key& server_private_key() const { return server_key_; }
  const public_key& server_public_key() const { return server_public_; }
  std::optional<ip_address> server_ipv4() const { return addresses_.server_ipv4(); }
  ip_address server_ipv6() const { return addresses_.server_ipv6(); }
  const address_allocator& addresses() const { return addresses_; }
  std::string state_file_path() const { return store_.path_of(devices_file_name); }

  // Tests only: makes the next writes fail or "crash".
  state_store& store_for_testing() { return store_; }

 private:
  device_registry(registry_config config, state_store store, address_allocator addresses)
      : config_(std::move(config)), store_(std::move(store)), addresses_(std::move(addresses)) {}

  result<void> load(const std::string& text);
  result<void> persist(const std::vector<device>& devices) const;
  std::int64_t now() const;

  registry_config config_;
  state_store store_;
  address_allocator addresses_;
  private_key server_key_;
  public_key server_public_;
  std::vector<device> devices_;
  std::uint64_t generation_ = 0;
};

}  // namespace lopower::enrollment
