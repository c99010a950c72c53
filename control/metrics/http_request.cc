#include "control/metrics/http_request.h"

#include <algorithm>

namespace lopower::metrics {
namespace {

request_head malformed(std::string problem) {
  request_head h;
  h.status = head_status::malformed;
  h.problem = std::move(problem);
  return h;
}

// RFC 9110 token characters (a method is a token).
bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Visible ASCII only: no spaces, controls or bytes above 0x7e in a target.
bool is_target_char(char c) { return c > 0x20 && c < 0x7f; }

// Where the head ends (just past its blank line), or npos. Bare LF line ends
// are accepted, as RFC 9112 §2.2 allows a recipient to.
std::size_t head_end(std::string_view s) {
  for (std::size_t i = s.find('\n'); i != std::string_view::npos; i = s.find('\n', i + 1)) {
    if (i + 1 < s.size() && s[i + 1] == '\n') return i + 2;
    if (i + 2 < s.size() && s[i + 1] == '\r' && s[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

}  // namespace

request_head parse_request_head(std::string_view received, std::size_t max_size) {
  const std::size_t end = head_end(received.substr(0, std::min(received.size(), max_size)));
  if (end == std::string_view::npos) {
    request_head h;
    h.status = received.size() >= max_size ? head_status::too_large : head_status::incomplete;
    return h;
  }
  std::string_view line = received.substr(0, received.find('\n'));
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return malformed("request line is not METHOD TARGET VERSION");
  const std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                         version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) return malformed("bad method");
  if (target.empty() || target.front() != '/' || !std::all_of(target.begin(), target.end(), is_target_char))
    return malformed("bad target");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return malformed("not HTTP/1.0 or HTTP/1.1");
  request_head h;
  h.status = head_status::complete;
  h.method = method;
  h.target = target;
  return h;
}

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace lopower::metrics
