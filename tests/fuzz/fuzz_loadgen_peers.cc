// lopower-loadgen's --peers-file (tools/loadgen/peers_file.h) is input from
// outside: every defect must become a peers_file_error naming the file,
// never a crash or another exception.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tools/loadgen/peers_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)lopower::loadgen::parse_peers_file(text, "fuzz.toml");
  } catch (const lopower::loadgen::peers_file_error& e) {
    if (std::string_view(e.what()).rfind("fuzz.toml:", 0) != 0) __builtin_trap();  // every message names the file
  }
  return 0;
}
