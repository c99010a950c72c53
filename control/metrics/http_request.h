#pragma once
// The head of an HTTP/1.x request, as the metrics endpoint reads it: the
// request line and nothing else (scrapers send a few headers lopower does not
// need). The bytes come from whoever can reach the port: anything that is not
// a well-formed head is malformed, and a head that does not end within the
// size limit is too large.

#include <cstddef>
#include <string>
#include <string_view>

namespace lopower::metrics {

enum class head_status { incomplete, complete, malformed, too_large };

struct request_head {
  head_status status = head_status::incomplete;
  std::string method;   // "GET", "HEAD", ...
  std::string target;   // "/metrics", "/metrics?x=y"
  std::string problem;  // why it is malformed
};

inline constexpr std::size_t max_request_head = 8192;

// Reads the head at the start of `received` (all bytes so far).
request_head parse_request_head(std::string_view received, std::size_t max_size = max_request_head);

// The path of a target without its query ("/metrics?name[]=x" -> "/metrics").
std::string_view target_path(std::string_view target);

}  // namespace lopower::metrics
