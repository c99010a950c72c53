// Control-socket requests come from any local client allowed on the socket.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lopower/ctl_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto parsed = lopower::ctl::parse_request(line);
  if (auto* req = std::get_if<lopower::ctl::request>(&parsed)) {
    // What was accepted must encode back to a request the parser accepts.
    std::string again = lopower::ctl::encode_request(*req);
    again.pop_back();
    if (!std::holds_alternative<lopower::ctl::request>(lopower::ctl::parse_request(again))) __builtin_trap();
  }
  return 0;
}
