// libFuzzer target: what a client sends to the metrics endpoint, through
// parse_request_head as the server calls it (all bytes so far, growing).
// Nothing may crash or over-read; a complete head's method and target are
// from the input's first line, and feeding the bytes in two pieces never
// changes a verdict the whole input gives once complete.
//
// Built by tests/fuzz.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/metrics/http_request.h"

namespace metrics = lopower::metrics;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const metrics::request_head whole = metrics::parse_request_head(all, 512);
  if (whole.status == metrics::head_status::complete) {
    const std::string_view first_line = all.substr(0, all.find('\n'));
    if (first_line.find(whole.method) != 0) __builtin_trap();
    if (first_line.find(whole.target) == std::string_view::npos) __builtin_trap();
    if (metrics::target_path(whole.target).size() > whole.target.size()) __builtin_trap();
    // A prefix is never complete with another request line.
    for (std::size_t cut = 0; cut < size; cut += 1 + cut / 4) {
      const auto part = metrics::parse_request_head(all.substr(0, cut), 512);
      if (part.status == metrics::head_status::complete && (part.method != whole.method || part.target != whole.target))
        __builtin_trap();
    }
  }
  if (whole.status == metrics::head_status::malformed && whole.problem.empty()) __builtin_trap();
  return 0;
}
