// lopower's state files, as a crash, a disk fault or a hand edit may leave
// them: the tailnet identity (tailnet.json) and the device registry
// (devices.json). Either parses into a consistent state or is refused with
// a message; nothing crashes. A registry that opens holds devices with
// distinct names, keys and addresses, and a refused one is left on disk as
// it was (never replaced).
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto id = lopower::tailnet::identity_from_json(text)) {
    // What parses writes back to the same identity.
    auto again = lopower::tailnet::identity_from_json(lopower::tailnet::identity_to_json(*id));
    if (!again || !(again->machine == id->machine) || !(again->node == id->node) ||
        again->logged_out != id->logged_out || again->expire_node.has_value() != id->expire_node.has_value())
      fail();
  } else if (id.message().empty()) {
    fail();
  }
  check_registry(text);
  return 0;
}
