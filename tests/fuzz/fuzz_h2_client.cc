// libFuzzer target: the HTTP/2 client (h2_client), which takes whatever
// the control server sends inside the ts2021 records.
//
// A fresh client submits one POST (stream 1) and its output is taken; the
// input is then fed as the server's bytes in three chunks (cut at a third
// and two thirds, so a captured server stream in the corpus stays one), and
// the output is taken again. The handlers re-enter the client as real ones
// do: a response head issues a second request, a chunk starting with 'C'
// cancels its stream. Every step checks the handler contract (no data
// before the head, nothing after on_close, on_close once, none after the
// client is gone) and the client's bookkeeping; a violated invariant traps.
//
// Built by tests/fuzz (not by tests/unit/controlbase/meson.build). Seeds:
// tests/fuzz/corpus/fuzz_h2_client, server streams recorded from nghttp2's
// server answering this very request.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "control/tailnet/controlbase/h2_client.h"

namespace tb = lopower::tailnet;

namespace {

struct stream_state {
  bool responded = false;
  bool closed = false;
};

struct harness {
  tb::h2_client client;
  std::vector<std::unique_ptr<stream_state>> streams;
  std::size_t open = 0;       // accepted, not yet closed
  bool gone = false;          // the client was destroyed
  std::size_t requests = 0;   // issued from handlers

  std::int32_t submit(const tb::h2_request& req) {
    streams.push_back(std::make_unique<stream_state>());
    stream_state* s = streams.back().get();
    auto id = std::make_shared<std::int32_t>(0);
    *id = client.request(req, {
        .on_response =
            [this, s](int status, const std::vector<tb::http_header>& headers) {
              if (gone || s->closed || s->responded) __builtin_trap();
              if (status < 200 || status > 999 || headers.size() > tb::max_http_headers) __builtin_trap();
              s->responded = true;
              if (requests++ < 2) submit({.method = "GET", .path = "/again", .authority = "control"});
            },
        .on_data =
            [this, s, id](std::span<const std::uint8_t> chunk) {
              if (gone || s->closed || !s->responded || chunk.empty()) __builtin_trap();
              if (chunk[0] == 'C') client.cancel(*id);
            },
        .on_close =
            [this, s](std::uint32_t) {
              if (gone || s->closed) __builtin_trap();
              s->closed = true;
              --open;
            },
    });
    if (*id > 0) ++open;
    return *id;
  }

  void check() const {
    if (client.open_streams() != open) __builtin_trap();
    if (client.failed() && (open != 0 || client.alive())) __builtin_trap();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto h = std::make_unique<harness>();
  const std::int32_t first = h->submit({.method = "POST",
                                        .path = "/machine/register",
                                        .authority = "control",
                                        .headers = {{"content-type", "application/json"}},
                                        .body = R"({"Version":119})"});
  if (first != 1) __builtin_trap();
  std::vector<std::uint8_t> out;
  h->client.take_output(out);
  if (out.size() < 24) __builtin_trap();  // the preface at least
  h->check();

  const std::span<const std::uint8_t> input(data, size);
  const std::size_t cuts[] = {0, size / 3, 2 * size / 3, size};
  for (int i = 0; i < 3; ++i) {
    const auto r = h->client.feed(input.subspan(cuts[i], cuts[i + 1] - cuts[i]));
    if (r.ok() == h->client.failed()) __builtin_trap();
    h->check();
    h->client.take_output(out);
    h->check();
    if (!r.ok()) {
      if (h->client.feed(input.first(size > 0 ? 1 : 0)).ok()) __builtin_trap();  // failed for good
      break;
    }
  }
  if (out.size() > 64 * 1024 * 1024) __builtin_trap();  // answers stay in proportion

  // Whatever is still open goes without a word: a handler called now traps.
  h->gone = true;
  h->client = tb::h2_client();
  return 0;
}
