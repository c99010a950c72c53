#include "control/tailnet/controlbase/upgrade.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/controlbase/printable.h"

namespace lopower::tailnet {
namespace {

constexpr std::string_view crlf = "\r\n";
constexpr std::string_view head_end = "\r\n\r\n";

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 9110 tchar.
bool is_token_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Field values and reason phrases: visible characters, space, tab, obs-text.
bool is_field_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A Host header value that cannot end the line or smuggle another header.
bool valid_host(std::string_view host) noexcept {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

std::string_view as_text(std::span<const std::uint8_t> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

control_result<std::string> decode_chunked(std::string_view body) {
  std::string out;
  for (;;) {
    const auto eol = body.find(crlf);
    if (eol == std::string_view::npos) return control_fail("HTTP: truncated chunk size line");
    std::string_view line = body.substr(0, eol);
    body.remove_prefix(eol + crlf.size());
    if (const auto semi = line.find(';'); semi != std::string_view::npos) line = line.substr(0, semi);  // extensions
    line = trim(line);
    if (line.empty() || line.size() > 8) return control_fail("HTTP: bad chunk size " + detail::printable(line));
    std::size_t size = 0;
    for (const char c : line) {
      int v = -1;
      if (is_digit(c)) v = c - '0';
      else if (lower(c) >= 'a' && lower(c) <= 'f') v = lower(c) - 'a' + 10;
      if (v < 0) return control_fail("HTTP: bad chunk size " + detail::printable(line));
      size = size * 16 + static_cast<std::size_t>(v);
    }
    if (size == 0) return out;  // trailers, if any, are of no interest
    if (body.size() < size + crlf.size()) return control_fail("HTTP: truncated chunk");
    if (body.substr(size, crlf.size()) != crlf) return control_fail("HTTP: chunk not followed by CRLF");
    out.append(body.substr(0, size));
    body.remove_prefix(size + crlf.size());
  }
}

}  // namespace

std::string base64_standard(std::span<const std::uint8_t> bytes) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), variant);
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::string build_key_request(std::string_view host, std::uint16_t capability_version) {
  if (!valid_host(host)) return {};
  std::string r = "GET /key?v=" + std::to_string(capability_version) + " HTTP/1.1\r\n";
  r += "Host: " + std::string(host) + "\r\n";
  r += "Accept: application/json\r\n";
  r += "Connection: close\r\n\r\n";
  return r;
}

std::string build_upgrade_request(std::string_view host, std::span<const std::uint8_t> initiation) {
  if (!valid_host(host)) return {};
  std::string r = "POST " + std::string(upgrade_path) + " HTTP/1.1\r\n";
  r += "Host: " + std::string(host) + "\r\n";
  r += "Upgrade: " + std::string(upgrade_protocol) + "\r\n";
  r += "Connection: upgrade\r\n";
  r += std::string(handshake_header_name) + ": " + base64_standard(initiation) + "\r\n";
  r += "Content-Length: 0\r\n\r\n";
  return r;
}

std::optional<std::string_view> http_response_head::header(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

std::size_t http_head_size(std::span<const std::uint8_t> bytes) noexcept {
  const auto at = as_text(bytes).find(head_end);
  return at == std::string_view::npos ? 0 : at + head_end.size();
}

control_result<http_response_head> parse_http_response_head(std::string_view head) {
  if (head.size() < head_end.size() || head.substr(head.size() - head_end.size()) != head_end)
    return control_fail("HTTP: the response head does not end with an empty line");
  head.remove_suffix(crlf.size());  // leaves every line, the last one included, ending in CRLF

  http_response_head out;
  bool first = true;
  while (!head.empty()) {
    const auto eol = head.find(crlf);
    if (eol == std::string_view::npos) return control_fail("HTTP: malformed response head");  // not reached
    const std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + crlf.size());
    if (!std::all_of(line.begin(), line.end(), is_field_char))
      return control_fail("HTTP: control character in the response head: " + detail::printable(line));
    if (first) {
      first = false;
      // HTTP/1.x SP 3DIGIT [SP reason]
      if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) || line[8] != ' ' ||
          !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) || (line.size() > 12 && line[12] != ' '))
        return control_fail("HTTP: not an HTTP/1.x status line: " + detail::printable(line));
      out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      if (line.size() > 13) out.reason = std::string(line.substr(13));
      continue;
    }
    if (line.empty()) return control_fail("HTTP: malformed response head");  // not reached
    if (line.front() == ' ' || line.front() == '\t')
      return control_fail("HTTP: folded header line: " + detail::printable(line));
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return control_fail("HTTP: header line without a name: " + detail::printable(line));
    const std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char))
      return control_fail("HTTP: bad header name " + detail::printable(name));
    if (out.headers.size() == max_http_headers)
      return control_fail("HTTP: more than " + std::to_string(max_http_headers) + " header lines");
    out.headers.push_back({std::string(name), std::string(trim(line.substr(colon + 1)))});
  }
  if (first) return control_fail("HTTP: empty response head");
  return out;
}

control_result<http_response> parse_http_response(std::string_view whole) {
  const std::size_t head_size =
      http_head_size(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(whole.data()), whole.size()));
  if (head_size == 0) return control_fail("HTTP: the connection closed before the response head was complete");
  auto head = parse_http_response_head(whole.substr(0, head_size));
  if (!head) return head.error();
  std::string_view rest = whole.substr(head_size);
  http_response out;
  out.head = std::move(*head);
  const int status = out.head.status;
  if ((status >= 100 && status < 200) || status == 204 || status == 304) return out;

  if (const auto te = out.head.header("Transfer-Encoding")) {
    if (!iequals(trim(*te), "chunked"))
      return control_fail("HTTP: unsupported Transfer-Encoding " + detail::printable(*te));
    auto body = decode_chunked(rest);
    if (!body) return body.error();
    out.body = std::move(*body);
    return out;
  }
  if (const auto cl = out.head.header("Content-Length")) {
    const std::string_view digits = trim(*cl);
    if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), is_digit))
      return control_fail("HTTP: bad Content-Length " + detail::printable(*cl));
    std::size_t length = 0;
    for (const char c : digits) length = length * 10 + static_cast<std::size_t>(c - '0');
    for (const auto& h : out.head.headers)
      if (iequals(h.name, "Content-Length") && trim(h.value) != digits)
        return control_fail("HTTP: conflicting Content-Length headers");
    if (rest.size() < length)
      return control_fail("HTTP: body of " + std::to_string(rest.size()) + " bytes, Content-Length says " +
                          std::to_string(length));
    out.body = std::string(rest.substr(0, length));
    return out;
  }
  out.body = std::string(rest);
  return out;
}

control_result<bool> upgrade_response_reader::feed(std::span<const std::uint8_t> bytes) {
  if (finished_) return control_fail("ts2021: the upgrade response was already read");
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  // Resume the search a few bytes back: the end marker may straddle chunks.
  const std::size_t from = scanned_ >= head_end.size() - 1 ? scanned_ - (head_end.size() - 1) : 0;
  const auto at = as_text(buf_).find(head_end, from);
  if (at == std::string_view::npos || at + head_end.size() > max_head_) {
    if (buf_.size() <= max_head_) {
      scanned_ = buf_.size();
      return false;
    }
    finished_ = true;
    return control_fail("ts2021: upgrade response head longer than " + std::to_string(max_head_) + " bytes");
  }
  finished_ = true;
  const std::size_t size = at + head_end.size();
  auto head = parse_http_response_head(as_text(buf_).substr(0, size));
  if (!head) return control_fail("ts2021: upgrade response: " + head.message());
  head_ = std::move(*head);
  const std::span<const std::uint8_t> after = std::span<const std::uint8_t>(buf_).subspan(size);
  if (head_.status != 101) {
    std::string message = "ts2021: the server refused the upgrade: HTTP " + std::to_string(head_.status);
    if (!head_.reason.empty()) message += " " + detail::printable(head_.reason);
    if (!after.empty()) message += ": " + detail::printable(as_text(after), 200);
    return control_fail(std::move(message));
  }
  const auto next = head_.header("Upgrade");
  if (!next || !iequals(*next, upgrade_protocol))
    return control_fail("ts2021: the server switched to an unexpected protocol " +
                        detail::printable(next ? *next : std::string_view()));
  surplus_.assign(after.begin(), after.end());
  buf_.clear();
  buf_.shrink_to_fit();
  return true;
}

control_result<server_keys> parse_key_response(std::string_view json) {
  const auto doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return control_fail("/key: the response is not a JSON object: " + detail::printable(json));
  const auto pub = doc.find("publicKey");
  if (pub == doc.end() || !pub->is_string()) return control_fail("/key: no \"publicKey\" string in the response");
  auto noise = parse_machine_key(pub->get_ref<const std::string&>());
  if (!noise) return control_fail("/key: publicKey: " + noise.message());
  if (noise->is_zero()) return control_fail("/key: publicKey is all zero (a server without ts2021)");
  server_keys out;
  out.noise = *noise;
  const auto legacy = doc.find("legacyPublicKey");
  if (legacy != doc.end() && !legacy->is_null()) {
    if (!legacy->is_string()) return control_fail("/key: legacyPublicKey is not a string");
    auto key = parse_machine_key(legacy->get_ref<const std::string&>());
    if (!key) return control_fail("/key: legacyPublicKey: " + key.message());
    out.legacy = *key;
  }
  return out;
}

}  // namespace lopower::tailnet
