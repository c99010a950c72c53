// libFuzzer target: what the control server answers in HTTP/1.1 before
// ts2021 begins — the 101 (or a refusal) read in chunks, a whole /key
// response, its JSON, and key text. Every parser answers or refuses; none
// may crash, over-read, or hold more than its bound.
//
// Built by tests/fuzz (not by tests/unit/controlbase/meson.build).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/controlbase/upgrade.h"

namespace tb = lopower::tailnet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> input(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());

  // The upgrade response, in chunks of 1 + data[0] % 64 bytes, under a small
  // head limit so that the limit is reached too.
  tb::upgrade_response_reader r(512);
  const std::size_t chunk = 1 + data[0] % 64;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    const auto piece = input.subspan(at, std::min(chunk, input.size() - at));
    const auto done = r.feed(piece);
    if (!done.ok() || *done) {
      if (done.ok()) {
        if (r.head().status != 101) __builtin_trap();
        if (r.surplus().size() > input.size()) __builtin_trap();
      }
      if (r.feed(piece).ok()) __builtin_trap();  // finished either way
      break;
    }
  }

  if (const auto resp = tb::parse_http_response(text); resp.ok()) {
    if (resp->body.size() > text.size()) __builtin_trap();
    if (resp->head.headers.size() > tb::max_http_headers) __builtin_trap();
    (void)tb::parse_key_response(resp->body);
  }
  if (const auto k = tb::parse_key_response(text); k.ok() && k->noise.is_zero()) __builtin_trap();
  (void)tb::parse_http_response_head(text);
  for (const auto kind : {tb::key_text_kind::machine, tb::key_text_kind::node, tb::key_text_kind::disco}) {
    if (const auto k = tb::parse_key_text(kind, text); k.ok() && tb::format_key_text(kind, *k).size() != text.size())
      __builtin_trap();
  }
  (void)tb::parse_private_key_text(text);
  return 0;
}
