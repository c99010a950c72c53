#include "control/tailnet/controlbase/h2_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <map>
#include <new>
#include <string_view>
#include <utility>

#include "control/tailnet/controlbase/printable.h"

namespace lopower::tailnet {

static_assert(h2_err_invalid_argument == NGHTTP2_ERR_INVALID_ARGUMENT);
static_assert(h2_err_stream_id_not_available == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE);
static_assert(h2_err_invalid_state == NGHTTP2_ERR_INVALID_STATE);
static_assert(h2_err_start_stream_not_allowed == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED);
static_assert(h2_protocol_error == NGHTTP2_PROTOCOL_ERROR && h2_internal_error == NGHTTP2_INTERNAL_ERROR &&
              h2_flow_control_error == NGHTTP2_FLOW_CONTROL_ERROR && h2_frame_size_error == NGHTTP2_FRAME_SIZE_ERROR &&
              h2_refused_stream == NGHTTP2_REFUSED_STREAM && h2_cancel == NGHTTP2_CANCEL);

namespace {

// A header block (HEADERS + CONTINUATIONs) larger than this on the wire
// fails the connection. HPACK makes the decoded form the bigger one, and
// on_header bounds that per stream; this bounds what a server can make
// nghttp2 decode before then, CONTINUATION floods included (Debian's
// 1.52 also stops at 8 CONTINUATIONs, the CVE-2024-28182 fix).
constexpr std::size_t max_header_block = 256 * 1024;

// Per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts (RFC 9113 6.5.2).
constexpr std::size_t header_field_overhead = 32;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

const std::uint8_t* bytes(const std::string& s) noexcept { return reinterpret_cast<const std::uint8_t*>(s.data()); }

// Fields a request may not carry: ours to set, or forbidden in HTTP/2
// (RFC 9113 8.2.2). "te: trailers" is allowed there, but nothing needs it.
bool reserved_header(std::string_view name) noexcept {
  static constexpr std::array<std::string_view, 8> names = {"host",       "content-length",   "connection",
                                                            "keep-alive", "proxy-connection", "transfer-encoding",
                                                            "upgrade",    "te"};
  return std::find(names.begin(), names.end(), name) != names.end();
}

nghttp2_nv make_nv(const std::string& name, const std::string& value) noexcept {
  // nghttp2 copies both: the strings need not outlive nghttp2_submit_request.
  return {const_cast<std::uint8_t*>(bytes(name)), const_cast<std::uint8_t*>(bytes(value)), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// ++ for the time nghttp2 runs our callbacks.
class depth_guard {
 public:
  explicit depth_guard(int& depth) noexcept : depth_(depth) { ++depth_; }
  ~depth_guard() { --depth_; }
  depth_guard(const depth_guard&) = delete;
  depth_guard& operator=(const depth_guard&) = delete;

 private:
  int& depth_;
};

}  // namespace

const char* h2_strerror(int error) noexcept { return nghttp2_strerror(error); }

struct h2_client::impl {
  struct stream {
    h2_stream_handler handler;
    std::string body;
    std::size_t body_sent = 0;
    int status = 0;                     // of the header block being read
    std::vector<http_header> headers;   // likewise
    std::size_t header_bytes = 0;
    bool responded = false;  // on_response called (or due: a final status came)
    bool ended = false;      // the server's END_STREAM came
    bool muted = false;      // cancelled, or a handler threw: only on_close from now on
  };

  nghttp2_session* session = nullptr;
  h2_limits limits;
  std::map<std::int32_t, std::unique_ptr<stream>> streams;
  std::vector<std::uint8_t> out;  // sent by nghttp2 during feed(), not yet taken
  std::string failure;            // non-empty once failed
  std::uint32_t failure_code = h2_internal_error;  // for on_close of the open streams
  bool goaway_received = false;
  std::uint32_t goaway_error = 0;
  bool shut_down = false;
  int depth = 0;  // > 0 while nghttp2 runs our callbacks
  std::uint64_t ping_acks = 0;
  std::size_t header_block = 0;  // wire bytes of the header block being read
  std::string last_library_error;  // nghttp2's own words, for the failure text

  explicit impl(const h2_limits& l);
  ~impl() { nghttp2_session_del(session); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  bool failed() const noexcept { return !failure.empty(); }
  // The first reason sticks; handlers are closed later, outside nghttp2.
  void set_failed(std::string why, std::uint32_t code) {
    if (failed()) return;
    failure = why.empty() ? std::string("h2: failed") : std::move(why);
    failure_code = code;
  }
  void close_all();
  void drain();

  stream* find(std::int32_t id) noexcept {
    const auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }

  // Calls a handler; one that throws has its stream reset, not the
  // connection, and the exception stops here (never unwinds through C).
  template <class F, class... A>
  void deliver(std::int32_t id, stream& s, const F& fn, A&&... args) {
    if (!fn || s.muted) return;
    try {
      fn(std::forward<A>(args)...);
    } catch (...) {
      s.muted = true;
      (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    }
  }

  // --- nghttp2 callbacks -------------------------------------------------------
  int begin_frame(const nghttp2_frame_hd& hd);
  int begin_headers(const nghttp2_frame& frame);
  int header(const nghttp2_frame& frame, std::string_view name, std::string_view value);
  int frame_recv(const nghttp2_frame& frame);
  int data_chunk(std::int32_t id, std::span<const std::uint8_t> chunk);
  int stream_close(std::int32_t id, std::uint32_t code);
  int frame_send(const nghttp2_frame& frame);
  ssize_t read_body(std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags);

  template <class F>
  static int guarded(void* user_data, F&& call);
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t flags, void* user_data);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int on_data_chunk_recv(nghttp2_session*, std::uint8_t flags, std::int32_t id, const std::uint8_t* data,
                                std::size_t len, void* user_data);
  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user_data);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int on_error(nghttp2_session*, int code, const char* msg, std::size_t len, void* user_data);
  static ssize_t on_read_body(nghttp2_session*, std::int32_t id, std::uint8_t* buf, std::size_t length,
                              std::uint32_t* flags, nghttp2_data_source* source, void* user_data);
};

// --- nghttp2's C callbacks ----------------------------------------------------

// Runs `call` on the impl: stops if the client failed meanwhile (a handler
// called fail()), and lets no exception out into C.
template <class F>
int h2_client::impl::guarded(void* user_data, F&& call) {
  auto* self = static_cast<impl*>(user_data);
  if (self->failed()) return NGHTTP2_ERR_CALLBACK_FAILURE;
  try {
    return call(*self);
  } catch (const std::bad_alloc&) {
    self->set_failed("h2: out of memory", h2_internal_error);
  } catch (...) {
    self->set_failed("h2: unexpected exception in a callback", h2_internal_error);
  }
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int h2_client::impl::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data) {
  return guarded(user_data, [&](impl& m) { return m.begin_frame(*hd); });
}
int h2_client::impl::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return guarded(user_data, [&](impl& m) { return m.begin_headers(*frame); });
}
int h2_client::impl::on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                               std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                               void* user_data) {
  return guarded(user_data, [&](impl& m) {
    return m.header(*frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
                    std::string_view(reinterpret_cast<const char*>(value), valuelen));
  });
}
int h2_client::impl::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return guarded(user_data, [&](impl& m) { return m.frame_recv(*frame); });
}
int h2_client::impl::on_data_chunk_recv(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                                        std::size_t len, void* user_data) {
  return guarded(user_data, [&](impl& m) { return m.data_chunk(id, std::span(data, len)); });
}
int h2_client::impl::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user_data) {
  // Not stopped by a failure: the handler is owed its on_close either way
  // (close_all() then finds it gone).
  auto* self = static_cast<impl*>(user_data);
  try {
    return self->stream_close(id, code);
  } catch (...) {
    self->set_failed("h2: out of memory", h2_internal_error);
  }
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}
int h2_client::impl::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  return guarded(user_data, [&](impl& m) { return m.frame_send(*frame); });
}
int h2_client::impl::on_error(nghttp2_session*, int, const char* msg, std::size_t len, void* user_data) {
  auto* self = static_cast<impl*>(user_data);
  try {
    self->last_library_error.assign(msg, std::min<std::size_t>(len, 200));
  } catch (...) {
    // Only a better error message is lost.
  }
  return 0;
}
ssize_t h2_client::impl::on_read_body(nghttp2_session*, std::int32_t id, std::uint8_t* buf, std::size_t length,
                                      std::uint32_t* flags, nghttp2_data_source*, void* user_data) {
  // Looked up by ID, not through the source pointer: a stream gone from
  // the map cannot be read after free.
  return static_cast<impl*>(user_data)->read_body(id, buf, length, flags);
}

h2_client::impl::impl(const h2_limits& l) : limits(l) {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) throw std::bad_alloc();
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cb, on_error);

  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    throw std::bad_alloc();
  }
  // Until the server's SETTINGS come, nghttp2 would assume no limit.
  nghttp2_option_set_peer_max_concurrent_streams(opt, limits.max_concurrent_streams);
  // Our request heads are a few hundred bytes; refuse to send huge ones.
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  // No server push: PUSH_PROMISE is a protocol error.
  nghttp2_option_set_max_reserved_remote_streams(opt, 0);
  // Automatic WINDOW_UPDATE stays on (no_auto_window_update unset): data
  // is consumed as soon as on_data has it.
  const int rv = nghttp2_session_client_new2(&session, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) throw std::bad_alloc();

  const std::array<nghttp2_settings_entry, 4> settings = {{
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_response_header_bytes, UINT32_MAX))},
  }};
  // Fails only for values beyond the protocol's range (a window past 2^31-1).
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) != 0 ||
      nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                            static_cast<std::int32_t>(std::min<std::uint32_t>(
                                                limits.connection_window, NGHTTP2_MAX_WINDOW_SIZE))) != 0) {
    set_failed("h2: the window sizes are out of range", h2_internal_error);
  }
}

// --- receiving ---------------------------------------------------------------

int h2_client::impl::begin_frame(const nghttp2_frame_hd& hd) {
  if (hd.type == NGHTTP2_HEADERS) header_block = 0;
  if (hd.type == NGHTTP2_HEADERS || hd.type == NGHTTP2_CONTINUATION) {
    header_block += hd.length;
    if (header_block > max_header_block) {
      set_failed("h2: the server sent a header block of more than " + std::to_string(max_header_block) + " bytes",
                 h2_protocol_error);
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }
  return 0;
}

int h2_client::impl::begin_headers(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_HEADERS) return 0;
  if (stream* s = find(frame.hd.stream_id)) {
    s->status = 0;
    s->headers.clear();
    s->header_bytes = 0;
  }
  return 0;
}

int h2_client::impl::header(const nghttp2_frame& frame, std::string_view name, std::string_view value) {
  stream* s = frame.hd.type == NGHTTP2_HEADERS ? find(frame.hd.stream_id) : nullptr;
  if (s == nullptr) return 0;
  s->header_bytes += name.size() + value.size() + header_field_overhead;
  // TEMPORAL_CALLBACK_FAILURE: nghttp2 resets this stream (INTERNAL_ERROR)
  // and skips the rest of the block; the connection goes on.
  if (s->header_bytes > limits.max_response_header_bytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (name == ":status") {
    // nghttp2 (HTTP messaging on) has checked it already: three digits,
    // once, first. Checked again, as it is indexed here.
    if (value.size() != 3 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
  }
  if (s->headers.size() >= limits.max_response_headers) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  s->headers.push_back({std::string(name), std::string(value)});
  return 0;
}

int h2_client::impl::frame_recv(const nghttp2_frame& frame) {
  const std::int32_t id = frame.hd.stream_id;
  switch (frame.hd.type) {
    case NGHTTP2_HEADERS:
      if (stream* s = find(id)) {
        if ((frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) s->ended = true;
        // 1xx heads are skipped; a head after the final one is trailers,
        // which nothing in the control protocol sends: dropped.
        if (!s->responded && s->status >= 200) {
          s->responded = true;
          const std::vector<http_header> headers = std::move(s->headers);
          s->headers.clear();
          deliver(id, *s, s->handler.on_response, s->status, headers);
        }
      }
      break;
    case NGHTTP2_DATA:
      if (stream* s = find(id); s != nullptr && (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) s->ended = true;
      break;
    case NGHTTP2_GOAWAY:
      goaway_received = true;
      goaway_error = frame.goaway.error_code;
      break;
    case NGHTTP2_PING:
      if ((frame.hd.flags & NGHTTP2_FLAG_ACK) != 0) ++ping_acks;
      break;
    default:
      break;
  }
  return 0;
}

int h2_client::impl::data_chunk(std::int32_t id, std::span<const std::uint8_t> chunk) {
  // nghttp2 counts the bytes as consumed on return (automatic WINDOW_UPDATE).
  stream* s = find(id);
  if (s != nullptr && s->responded && !chunk.empty()) deliver(id, *s, s->handler.on_data, chunk);
  return 0;
}

int h2_client::impl::stream_close(std::int32_t id, std::uint32_t code) {
  auto node = streams.extract(id);
  if (node.empty()) return 0;
  stream& s = *node.mapped();
  // NO_ERROR without the server's END_STREAM (RST_STREAM NO_ERROR before
  // it): the body was cut short, which must not pass for a whole one.
  if (code == h2_no_error && !s.ended) code = h2_internal_error;
  if (s.handler.on_close) {
    try {
      s.handler.on_close(code);
    } catch (...) {
      // The stream is gone already; nothing is left to fail.
    }
  }
  return 0;
}

// --- sending -----------------------------------------------------------------

int h2_client::impl::frame_send(const nghttp2_frame& frame) {
  // nghttp2 answers a connection error of the server's with GOAWAY and its
  // code, and ignores everything after: the client has failed.
  if (frame.hd.type == NGHTTP2_GOAWAY && frame.goaway.error_code != NGHTTP2_NO_ERROR) {
    std::string why = "h2: connection error " + std::to_string(frame.goaway.error_code) + " (" +
                      nghttp2_http2_strerror(frame.goaway.error_code) + ")";
    const std::string_view debug(reinterpret_cast<const char*>(frame.goaway.opaque_data), frame.goaway.opaque_data_len);
    if (!debug.empty()) why += ": " + detail::printable(debug, 200);
    else if (!last_library_error.empty()) why += ": " + detail::printable(last_library_error, 200);
    set_failed(std::move(why), frame.goaway.error_code);
  }
  return 0;
}

ssize_t h2_client::impl::read_body(std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
  stream* s = find(id);
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
  const std::size_t n = std::min(length, s->body.size() - s->body_sent);
  if (n > 0) std::memcpy(buf, s->body.data() + s->body_sent, n);
  s->body_sent += n;
  if (s->body_sent == s->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

// Runs nghttp2's sender until it has nothing more, into `out`.
void h2_client::impl::drain() {
  const depth_guard guard(depth);
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) {
      set_failed(std::string("h2: sending: ") + nghttp2_strerror(static_cast<int>(n)), h2_internal_error);
      return;
    }
    if (n == 0) return;
    out.insert(out.end(), data, data + n);
  }
}

// The open streams' handlers hear of the failure, once, and are let go.
// Runs outside nghttp2's callbacks, so that a handler can do no harm there.
void h2_client::impl::close_all() {
  auto doomed = std::move(streams);
  streams.clear();
  for (auto& [id, s] : doomed) {
    if (!s->handler.on_close) continue;
    try {
      s->handler.on_close(failure_code);
    } catch (...) {
      // Nothing is left to fail.
    }
  }
}

// --- the client --------------------------------------------------------------

h2_client::h2_client(const h2_limits& limits) : impl_(std::make_unique<impl>(limits)) {}
h2_client::~h2_client() = default;
h2_client::h2_client(h2_client&& other) noexcept = default;
h2_client& h2_client::operator=(h2_client&& other) noexcept = default;

std::int32_t h2_client::request(const h2_request& req, h2_stream_handler handler) {
  if (!impl_ || impl_->failed()) return h2_err_invalid_state;
  impl& m = *impl_;
  if (m.goaway_received || m.shut_down) return h2_err_start_stream_not_allowed;
  if (nghttp2_check_method(bytes(req.method), req.method.size()) == 0 ||
      nghttp2_check_path(bytes(req.path), req.path.size()) == 0 || req.path.empty() || req.path[0] != '/' ||
      nghttp2_check_authority(bytes(req.authority), req.authority.size()) == 0 || req.authority.empty() ||
      (req.scheme != "https" && req.scheme != "http"))
    return h2_err_invalid_argument;

  // Lowercased names first (nghttp2_nv points into them), then the list.
  std::vector<http_header> fields;
  fields.reserve(req.headers.size() + 1);
  for (const http_header& h : req.headers) {
    std::string name = lowercase(h.name);
    if (name.empty() || name[0] == ':' || reserved_header(name) ||
        nghttp2_check_header_name(bytes(name), name.size()) == 0 ||
        nghttp2_check_header_value_rfc9113(bytes(h.value), h.value.size()) == 0)
      return h2_err_invalid_argument;
    fields.push_back({std::move(name), h.value});
  }
  if (!req.body.empty()) fields.push_back({"content-length", std::to_string(req.body.size())});

  static const std::string method_key = ":method", scheme_key = ":scheme", authority_key = ":authority",
                           path_key = ":path";
  std::vector<nghttp2_nv> nv;
  nv.reserve(4 + fields.size());
  nv.push_back(make_nv(method_key, req.method));
  nv.push_back(make_nv(scheme_key, req.scheme));
  nv.push_back(make_nv(authority_key, req.authority));
  nv.push_back(make_nv(path_key, req.path));
  for (const http_header& f : fields) nv.push_back(make_nv(f.name, f.value));

  auto s = std::make_unique<impl::stream>();
  s->handler = std::move(handler);
  s->body = req.body;
  nghttp2_data_provider provider{};
  provider.read_callback = impl::on_read_body;
  const std::int32_t id =
      nghttp2_submit_request(m.session, nullptr, nv.data(), nv.size(), req.body.empty() ? nullptr : &provider, nullptr);
  if (id < 0) return id;
  m.streams.emplace(id, std::move(s));
  return id;
}

control_result<void> h2_client::feed(std::span<const std::uint8_t> bytes) {
  if (!impl_) return control_fail("h2: the client was moved from");
  impl& m = *impl_;
  if (m.failed()) return control_fail(m.failure);
  // nghttp2 may not be re-entered; the caller feeds these bytes again
  // once the handler has returned.
  if (m.depth > 0) return control_fail("h2: feed() called from a stream handler");
  ssize_t n = 0;
  {
    const depth_guard guard(m.depth);
    n = nghttp2_session_mem_recv(m.session, bytes.data(), bytes.size());
  }
  if (n < 0) {
    std::string why = std::string("h2: ") + nghttp2_strerror(static_cast<int>(n));
    if (!m.last_library_error.empty()) why += ": " + detail::printable(m.last_library_error, 200);
    m.set_failed(std::move(why), n == NGHTTP2_ERR_NOMEM ? h2_internal_error : h2_protocol_error);
  } else if (!m.failed()) {
    // What nghttp2 queued in answer goes out now: a GOAWAY of its own
    // is how a connection error shows.
    m.drain();
  }
  if (m.failed()) {
    m.close_all();
    return control_fail(m.failure);
  }
  return {};
}

void h2_client::take_output(std::vector<std::uint8_t>& out) {
  if (!impl_) return;
  impl& m = *impl_;
  if (m.depth > 0) return;  // nghttp2 cannot send from its callbacks: next call
  if (!m.failed()) m.drain();
  out.insert(out.end(), m.out.begin(), m.out.end());
  m.out.clear();
  if (m.failed()) m.close_all();
}

void h2_client::cancel(std::int32_t stream) {
  if (!impl_ || impl_->failed()) return;
  impl::stream* s = impl_->find(stream);
  if (s == nullptr || s->muted) return;
  s->muted = true;
  (void)nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, stream, NGHTTP2_CANCEL);
}

void h2_client::ping() {
  if (!impl_ || impl_->failed()) return;
  (void)nghttp2_submit_ping(impl_->session, NGHTTP2_FLAG_NONE, nullptr);
}

void h2_client::shutdown() {
  if (!impl_ || impl_->failed() || impl_->shut_down) return;
  impl_->shut_down = true;
  // The last stream ID is the server's, and it opens none.
  (void)nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(impl_->session),
                              NGHTTP2_NO_ERROR, nullptr, 0);
}

void h2_client::fail(std::string why) {
  if (!impl_ || impl_->failed()) return;
  impl_->set_failed(std::move(why), h2_internal_error);
  // From a handler: the streams are closed once nghttp2 has returned.
  if (impl_->depth == 0) impl_->close_all();
}

bool h2_client::alive() const {
  if (!impl_ || impl_->failed() || impl_->goaway_received) return false;
  return nghttp2_session_want_read(impl_->session) != 0 || nghttp2_session_want_write(impl_->session) != 0;
}

bool h2_client::failed() const { return !impl_ || impl_->failed(); }

const std::string& h2_client::failure() const {
  static const std::string moved = "h2: the client was moved from";
  return impl_ ? impl_->failure : moved;
}

bool h2_client::goaway_received() const { return impl_ && impl_->goaway_received; }
std::uint32_t h2_client::goaway_error() const { return impl_ ? impl_->goaway_error : 0; }
std::size_t h2_client::open_streams() const { return impl_ ? impl_->streams.size() : 0; }
std::uint64_t h2_client::ping_acks() const { return impl_ ? impl_->ping_acks : 0; }

}  // namespace lopower::tailnet
