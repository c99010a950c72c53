#pragma once
// The HTTP/2 client (RFC 9113) that the coordination client runs inside the
// ts2021 records (record_stream.h), on nghttp2. Pure: bytes in, bytes out;
// the caller seals take_output() into records and feeds what it opens.
//
// Protocol facts this rests on:
//
//   - Prior knowledge, no TLS, no Upgrade: the client opens with the 24-byte
//     preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" and a SETTINGS frame, which
//     nghttp2 queues at construction. The server's first frame must be a
//     SETTINGS frame. headscale 0.29 (Go's x/net/http2) sends it right after
//     the early payload: MAX_CONCURRENT_STREAMS 250, INITIAL_WINDOW_SIZE and
//     MAX_FRAME_SIZE 1 MiB, NO_RFC7540_PRIORITIES 1; then a WINDOW_UPDATE
//     taking the connection window to 1 MiB, then the ACK of ours.
//   - Flow control: every DATA byte counts against a window of its stream and
//     one of the connection, 65535 bytes each until the receiver grows them.
//     A full MapResponse can be megabytes, and the map long-poll is one
//     stream that never ends: we announce 4 MiB per stream and widen the
//     connection's to 16 MiB (Go's transport: 4 MiB and 1 GiB). nghttp2 sends
//     WINDOW_UPDATE as received bytes are handed to on_data, so the server is
//     paced by how fast we consume, and nothing is buffered here.
//   - A stream ends cleanly when the server's END_STREAM has come; RST_STREAM
//     and GOAWAY carry an error code (section 7). GOAWAY's last stream ID
//     says which of our streams the server will still finish; the others
//     close as REFUSED_STREAM, and no new stream may start.
//   - Tailscale's client sends POST https://<host>/machine/... with
//     content-type: application/json (control/ts2021); :scheme is "https"
//     although the bytes travel in Noise, not TLS.
//
// Every handler of a stream that request() accepted gets exactly one
// on_close, unless the client is destroyed first: destruction calls no
// handler. Handlers may call request(), cancel(), ping(), shutdown() and
// fail() on the client (nghttp2 takes submissions from its callbacks);
// feed() from a handler fails and take_output() from a handler appends
// nothing, both without harm: the bytes wait for the next call. A handler
// must not destroy or move the client. A handler that throws has its stream
// reset (INTERNAL_ERROR): it gets no more on_response or on_data, only its
// on_close.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "control/tailnet/controlbase/control_result.h"
#include "control/tailnet/controlbase/upgrade.h"  // http_header

namespace lopower::tailnet {

// Error codes of RST_STREAM and GOAWAY (RFC 9113 section 7), as on_close
// reports them.
inline constexpr std::uint32_t h2_no_error = 0x0;
inline constexpr std::uint32_t h2_protocol_error = 0x1;
inline constexpr std::uint32_t h2_internal_error = 0x2;
inline constexpr std::uint32_t h2_flow_control_error = 0x3;
inline constexpr std::uint32_t h2_frame_size_error = 0x6;
inline constexpr std::uint32_t h2_refused_stream = 0x7;
inline constexpr std::uint32_t h2_cancel = 0x8;

// What request() returns instead of a stream ID (nghttp2's error numbers).
inline constexpr int h2_err_invalid_argument = -501;        // a bad method, path, authority or header
inline constexpr int h2_err_stream_id_not_available = -509; // 2^30 streams used: open a new connection
inline constexpr int h2_err_invalid_state = -519;           // the client failed (or was moved from)
inline constexpr int h2_err_start_stream_not_allowed = -516; // GOAWAY received, or shutdown()
// Text for an error number of request().
const char* h2_strerror(int error) noexcept;

struct h2_request {
  std::string method = "GET";
  std::string path = "/";
  std::string authority;  // host[:port]
  std::string scheme = "https";
  // Names are sent lowercased. Refused: pseudo-headers (":..."), host,
  // content-length (set from the body) and the connection-specific ones
  // HTTP/2 forbids (connection, keep-alive, proxy-connection,
  // transfer-encoding, upgrade, te).
  std::vector<http_header> headers;
  std::string body;  // sent with END_STREAM; empty: the HEADERS frame ends the request
};

struct h2_stream_handler {
  // The final response head (1xx are skipped); `headers` without pseudo-headers.
  std::function<void(int status, const std::vector<http_header>& headers)> on_response;
  // Body bytes as they come: each call is one DATA frame's payload (never
  // empty), valid only during the call.
  std::function<void(std::span<const std::uint8_t> chunk)> on_data;
  // The stream is over: h2_no_error when the whole response came (the
  // server's END_STREAM), else why not. Last call for this stream.
  std::function<void(std::uint32_t error_code)> on_close;
};

struct h2_limits {
  std::uint32_t stream_window = 4 * 1024 * 1024;       // SETTINGS_INITIAL_WINDOW_SIZE
  std::uint32_t connection_window = 16 * 1024 * 1024;  // stream 0's window
  // Streams the server may open (none: push is off) and, until the
  // server's SETTINGS say otherwise, streams of ours in flight; further
  // requests wait in nghttp2's queue.
  std::uint32_t max_concurrent_streams = 16;
  // A response head with more fields, or more bytes (name + value + 32 per
  // field, as SETTINGS_MAX_HEADER_LIST_SIZE counts), resets its stream
  // (INTERNAL_ERROR). Sizes as upgrade.h bounds an HTTP/1.1 head.
  std::size_t max_response_headers = max_http_headers;
  std::size_t max_response_header_bytes = max_http_head;
};

class h2_client {
 public:
  // Queues the preface, SETTINGS (ENABLE_PUSH 0, INITIAL_WINDOW_SIZE,
  // MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE) and the WINDOW_UPDATE that
  // widens the connection window: take_output() has them at once.
  explicit h2_client(const h2_limits& limits = {});
  ~h2_client();
  h2_client(h2_client&& other) noexcept;
  h2_client& operator=(h2_client&& other) noexcept;
  h2_client(const h2_client&) = delete;
  h2_client& operator=(const h2_client&) = delete;

  // Queues a request: its stream ID (odd, > 0), or an h2_err_* (< 0), in
  // which case no handler is ever called.
  std::int32_t request(const h2_request& req, h2_stream_handler handler);

  // The server's bytes, in chunks of any size. Handlers run from here.
  // A protocol error fails the client: the error comes back now and from
  // every later call, open streams get on_close (the GOAWAY's code, or
  // PROTOCOL_ERROR), and take_output() still hands out that GOAWAY.
  control_result<void> feed(std::span<const std::uint8_t> bytes);

  // Appends everything nghttp2 wants sent. Handlers may run from here too
  // (a stream closes once its RST_STREAM is out).
  void take_output(std::vector<std::uint8_t>& out);

  // RST_STREAM CANCEL: no more on_response/on_data; on_close(h2_cancel)
  // once it is sent. Unknown or closed streams are ignored.
  void cancel(std::int32_t stream);
  void ping();      // the server answers; see ping_acks()
  void shutdown();  // GOAWAY NO_ERROR: open streams finish, no new ones
  // The connection under the client is gone (EOF, a bad record): the
  // client fails with `why`, open streams get on_close(INTERNAL_ERROR).
  void fail(std::string why);

  // Not failed, no GOAWAY from the server, and nghttp2 still wants to read
  // or write (after shutdown(): until the last stream closes).
  bool alive() const;
  bool failed() const;
  const std::string& failure() const;  // why, once failed()
  bool goaway_received() const;
  std::uint32_t goaway_error() const;   // the server's GOAWAY code, once received
  std::size_t open_streams() const;     // requests whose on_close is yet to come
  std::uint64_t ping_acks() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace lopower::tailnet
