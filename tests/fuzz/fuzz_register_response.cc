// The body of a /machine/register answer comes from the control server.
// Whatever it holds, the parser answers with a value or an error, and a
// value is what the JSON said.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/tailnet/client/control_messages.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto r = lopower::tailnet::parse_register_response(body);
  if (r && r->machine_authorized && body.find("true") == std::string_view::npos) __builtin_trap();
  return 0;
}
