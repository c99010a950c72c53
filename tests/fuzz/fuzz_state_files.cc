// lopower's state files, as a crash, a disk fault or a hand edit may leave
// them: the tailnet identity (tailnet.json), the device registry
// (devices.json) and the netmap kept on disk (netmap.json). Each parses
// into a consistent state or is refused with a message; nothing crashes.
// A registry that opens holds devices with distinct names, keys and
// addresses, and a refused one is left on disk as it was (never replaced).
// A netmap cache that loads writes back to a text that loads again to the
// same text (what is kept is what is read), and one for another node key
// is never taken.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "control/enrollment/device_registry.h"
#include "control/tailnet/client/identity.h"
#include "control/tailnet/netmap/map_response.h"
#include "control/tailnet/netmap/netmap_cache.h"

namespace {

[[noreturn]] void fail() { __builtin_trap(); }

// Kept for the process (never destroyed): the exit handler still needs it.
const std::string& state_dir() {
  static const std::string* dir = [] {
    auto* d = new std::string(
        (std::filesystem::temp_directory_path() / ("fuzz_state_files." + std::to_string(getpid()))).string());
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(state_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

void check_registry(const std::string& text) {
  const std::string path = state_dir() + "/devices.json";
  std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
  lopower::enrollment::registry_config rc;
  rc.state_dir = state_dir();
  auto reg = lopower::enrollment::device_registry::open(std::move(rc));
  if (!reg) {
    if (reg.message().empty()) fail();
    std::ifstream in(path, std::ios::binary);
    const std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (after != text) fail();  // a refused file is the operator's to look at
    return;
  }
  std::set<std::string> names, keys, addresses;
  for (const auto& d : reg->list()) {
    if (!names.insert(d.name).second) fail();
    if (!keys.insert(d.public_key.to_base64()).second) fail();
    if (d.ipv4 && !addresses.insert(d.ipv4->to_string()).second) fail();
    if (d.ipv6 && !addresses.insert(d.ipv6->to_string()).second) fail();
  }
}

void check_netmap_cache(const std::string& text) {
  using namespace lopower::tailnet;
  // Loaded for the node it names (else the load stops at the key check),
  // and for another.
  const map_parse_result parsed = parse_map_response(text);
  const lopower::public_key own = parsed && parsed.response->self ? parsed.response->self->key : lopower::public_key{};
  lopower::public_key other = own;
  other.data()[0] ^= 1;
  const netmap_cache_load foreign = netmap_from_cache_json(text, other);
  if (foreign.result == netmap_cache_load::outcome::loaded || foreign.map || foreign.message.empty()) fail();
  const netmap_cache_load got = netmap_from_cache_json(text, own);
  if (got.result != netmap_cache_load::outcome::loaded) {
    if (got.message.empty() || got.map) fail();
    return;
  }
  if (!got.map || !got.map->started() || !(got.map->self()->key == own)) fail();
  const std::string kept = netmap_to_cache_json(*got.map);
  const netmap_cache_load again = netmap_from_cache_json(kept, own);
  if (again.result != netmap_cache_load::outcome::loaded) fail();
  if (again.map->peer_count() != got.map->peer_count()) fail();
  if (netmap_to_cache_json(*again.map) != kept) fail();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto id = lopower::tailnet::identity_from_json(text)) {
    // What parses writes back to the same identity.
    auto again = lopower::tailnet::identity_from_json(lopower::tailnet::identity_to_json(*id));
    if (!again || !(again->machine == id->machine) || !(again->node == id->node) ||
        again->logged_out != id->logged_out || again->expire_node.has_value() != id->expire_node.has_value() ||
        again->disco.has_value() != id->disco.has_value() || (id->disco && !(*again->disco == *id->disco)))
      fail();
  } else if (id.message().empty()) {
    fail();
  }
  check_registry(text);
  check_netmap_cache(text);
  return 0;
}
