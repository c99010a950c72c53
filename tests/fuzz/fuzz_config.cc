// The config file is operator input: every defect must become a config_error
// with a message, never a crash or another exception.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)lopower::parse_config(text, "fuzz.toml");
  } catch (const lopower::config_error& e) {
    if (std::string_view(e.what()).rfind("fuzz.toml", 0) != 0) __builtin_trap();  // every message names the file
  }
  return 0;
}
