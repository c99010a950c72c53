// The HTTP/2 client against a real HTTP/2 server: nghttp2's own server
// session, in memory, the bytes shuffled between the two by pump(). The
// server checks what it is sent the way a server does (nghttp2's HTTP
// messaging rules), and answers per path.

#include "control/tailnet/controlbase/h2_client.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lopower::tailnet {
namespace {

std::uint8_t pattern_byte(std::size_t i) noexcept { return static_cast<std::uint8_t>((i * 131 + (i >> 16)) & 0xff); }

std::string to_text(std::span<const std::uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// --- the server ---------------------------------------------------------------

class test_server {
 public:
  struct request {
    std::map<std::string, std::string> fields;  // pseudo-headers included
    std::string body;
    bool complete = false;
  };
  // How a response body is produced.
  struct body_source {
    std::string fixed;               // sent as is, then END_STREAM
    std::size_t generated = 0;       // or: this many pattern bytes
    bool streaming = false;          // or: pushed by push(), ended by finish()
    bool finished = false;
    std::size_t offset = 0;
  };

  // Called when a request is complete (its END_STREAM came).
  std::function<void(test_server&, std::int32_t, const request&)> on_request;

  std::map<std::int32_t, request> requests;
  std::vector<std::pair<std::int32_t, std::uint32_t>> resets;  // RST_STREAM from the client
  std::vector<std::int32_t> window_updates;                    // stream of each WINDOW_UPDATE from the client
  std::optional<std::uint32_t> goaway;                         // the client's GOAWAY code
  int headers_frames = 0;

  explicit test_server(std::uint32_t max_concurrent_streams = 100) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      static_cast<test_server*>(u)->requests[f->hd.stream_id];
      return 0;
    });
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
               std::size_t vl, std::uint8_t, void* u) {
          static_cast<test_server*>(u)->requests[f->hd.stream_id].fields[std::string(reinterpret_cast<const char*>(n), nl)] =
              std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t n, void* u) {
          static_cast<test_server*>(u)->requests[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      static_cast<test_server*>(u)->frame_recv(*f);
      return 0;
    });
    nghttp2_session_server_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~test_server() { nghttp2_session_del(session_); }
  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  nghttp2_session* session() { return session_; }

  void feed(std::span<const std::uint8_t> bytes) {
    const auto n = nghttp2_session_mem_recv(session_, bytes.data(), bytes.size());
    if (n < 0 || static_cast<std::size_t>(n) != bytes.size())
      throw std::runtime_error(std::string("server mem_recv: ") + nghttp2_strerror(static_cast<int>(n)));
  }
  std::vector<std::uint8_t> take_output() {
    std::vector<std::uint8_t> out;
    for (;;) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) throw std::runtime_error("server mem_send failed");
      if (n == 0) return out;
      out.insert(out.end(), data, data + n);
    }
  }

  void respond(std::int32_t id, int status, std::vector<std::pair<std::string, std::string>> headers,
               body_source body) {
    const bool has_body = body.streaming || body.generated > 0 || !body.fixed.empty();
    auto& source = bodies_[id];
    source = std::make_unique<body_source>(std::move(body));
    const std::string status_text = std::to_string(status);
    std::vector<nghttp2_nv> nv{nv_of(":status", status_text)};
    for (const auto& [n, v] : headers) nv.push_back(nv_of(n, v));
    nghttp2_data_provider provider{};
    provider.source.ptr = source.get();
    provider.read_callback = read_body;
    if (nghttp2_submit_response(session_, id, nv.data(), nv.size(), has_body ? &provider : nullptr) != 0)
      throw std::runtime_error("submit_response failed");
  }
  // An informational head (1xx) before the response.
  void inform(std::int32_t id, int status) {
    const std::string status_text = std::to_string(status);
    const nghttp2_nv nv[] = {nv_of(":status", status_text)};
    nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, id, nullptr, nv, 1, nullptr);
  }
  void push(std::int32_t id, std::string_view bytes) {
    bodies_.at(id)->fixed.append(bytes);
    nghttp2_session_resume_data(session_, id);
  }
  void finish(std::int32_t id) {
    bodies_.at(id)->finished = true;
    nghttp2_session_resume_data(session_, id);
  }
  void reset(std::int32_t id, std::uint32_t code) { nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code); }
  void send_goaway(std::int32_t last_stream, std::uint32_t code) {
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last_stream, code, nullptr, 0);
  }

 private:
  // Views, so that a literal is not copied into a temporary nghttp2 then reads too late.
  static nghttp2_nv nv_of(std::string_view n, std::string_view v) {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
            reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE};
  }

  void frame_recv(const nghttp2_frame& f) {
    switch (f.hd.type) {
      case NGHTTP2_HEADERS:
        ++headers_frames;
        [[fallthrough]];
      case NGHTTP2_DATA:
        if ((f.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
          request& r = requests[f.hd.stream_id];
          r.complete = true;
          if (on_request) on_request(*this, f.hd.stream_id, r);
        }
        break;
      case NGHTTP2_RST_STREAM: resets.emplace_back(f.hd.stream_id, f.rst_stream.error_code); break;
      case NGHTTP2_WINDOW_UPDATE: window_updates.push_back(f.hd.stream_id); break;
      case NGHTTP2_GOAWAY: goaway = f.goaway.error_code; break;
      default: break;
    }
  }

  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length, std::uint32_t* flags,
                           nghttp2_data_source* source, void*) {
    auto& b = *static_cast<body_source*>(source->ptr);
    if (b.generated > 0) {
      const std::size_t n = std::min(length, b.generated - b.offset);
      for (std::size_t i = 0; i < n; ++i) buf[i] = pattern_byte(b.offset + i);
      b.offset += n;
      if (b.offset == b.generated) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    const std::size_t n = std::min(length, b.fixed.size() - b.offset);
    std::memcpy(buf, b.fixed.data() + b.offset, n);
    b.offset += n;
    if (b.offset == b.fixed.size()) {
      if (!b.streaming || b.finished) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;  // until push() or finish()
      }
    }
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<body_source>> bodies_;
};

// Serves the paths the tests use, once a request is complete.
void serve(test_server& s, std::int32_t id, const test_server::request& r) {
  const std::string& path = r.fields.at(":path");
  if (path == "/echo") {
    s.respond(id, 200, {{"content-type", "application/json"}, {"x-echo-method", r.fields.at(":method")}},
              {.fixed = r.body});
  } else if (path.starts_with("/large/")) {
    s.respond(id, 200, {}, {.generated = std::stoul(path.substr(7))});
  } else if (path == "/stream") {
    s.respond(id, 200, {{"content-type", "application/octet-stream"}}, {.streaming = true});
  } else if (path == "/empty") {
    s.respond(id, 204, {}, {});
  } else if (path == "/informational") {
    s.inform(id, 103);
    s.respond(id, 200, {{"x-final", "yes"}}, {.fixed = "final"});
  } else if (path == "/many-headers") {
    std::vector<std::pair<std::string, std::string>> h;
    for (int i = 0; i < 150; ++i) h.emplace_back("x-h" + std::to_string(i), "v");
    s.respond(id, 200, h, {.fixed = "unseen"});
  } else if (path == "/hold") {
    // No answer: the test does what it wants with the stream.
  } else {
    s.respond(id, 404, {}, {.fixed = "not found"});
  }
}

// --- the client side -----------------------------------------------------------

// What one stream's handlers saw, in order.
struct recorder {
  int status = 0;
  std::vector<http_header> headers;
  std::string body;
  std::vector<std::size_t> chunks;  // sizes of the on_data calls
  std::optional<std::uint32_t> closed;
  int responses = 0, closes = 0;
  bool data_before_response = false, call_after_close = false;

  h2_stream_handler handler() {
    return {
        .on_response =
            [this](int st, const std::vector<http_header>& h) {
              call_after_close |= closed.has_value();
              ++responses;
              status = st;
              headers = h;
            },
        .on_data =
            [this](std::span<const std::uint8_t> chunk) {
              call_after_close |= closed.has_value();
              data_before_response |= responses == 0;
              body += to_text(chunk);
              chunks.push_back(chunk.size());
            },
        .on_close =
            [this](std::uint32_t code) {
              call_after_close |= closed.has_value();
              ++closes;
              closed = code;
            },
    };
  }
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& h : headers)
      if (h.name == name) return h.value;
    return std::nullopt;
  }
  // Checked by every test: the handler contract.
  void expect_sane() const {
    EXPECT_FALSE(data_before_response);
    EXPECT_FALSE(call_after_close);
    EXPECT_LE(responses, 1);
    EXPECT_LE(closes, 1);
  }
};

h2_request post(std::string path, std::string body) {
  return {.method = "POST",
          .path = std::move(path),
          .authority = "127.0.0.1:8080",
          .headers = {{"Content-Type", "application/json"}},
          .body = std::move(body)};
}
h2_request get(std::string path) { return {.method = "GET", .path = std::move(path), .authority = "127.0.0.1:8080"}; }

// Moves bytes both ways until neither side has anything to say. The
// server's bytes reach the client in pieces of `chunk` bytes. Returns the
// client's first feed() failure, if any (then it stops).
std::optional<std::string> pump(h2_client& c, test_server& s, std::size_t chunk = 1 << 20) {
  for (int round = 0; round < 100000; ++round) {
    std::vector<std::uint8_t> up;
    c.take_output(up);
    if (!up.empty()) s.feed(up);
    const auto down = s.take_output();
    for (std::size_t at = 0; at < down.size(); at += chunk) {
      const auto r = c.feed(std::span(down).subspan(at, std::min(chunk, down.size() - at)));
      if (!r) return r.message();
    }
    if (up.empty() && down.empty()) return std::nullopt;
  }
  throw std::runtime_error("pump: no quiet after 100000 rounds");
}

struct fixture : ::testing::Test {
  test_server server;
  h2_client client;
  fixture() { server.on_request = serve; }
};

// --- tests ---------------------------------------------------------------------------

TEST_F(fixture, opens_with_the_preface_settings_and_a_wider_connection_window) {
  std::vector<std::uint8_t> out;
  client.take_output(out);
  const std::string_view preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  ASSERT_GE(out.size(), preface.size() + 9);
  EXPECT_EQ(to_text(std::span(out).first(preface.size())), preface);
  EXPECT_EQ(out[preface.size() + 3], NGHTTP2_SETTINGS);
  server.feed(out);
  ASSERT_EQ(pump(client, server), std::nullopt);
  nghttp2_session* s = server.session();
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_ENABLE_PUSH), 0u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), 4u * 1024 * 1024);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 16u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), max_http_head);
  // The server may send 16 MiB on the connection before it needs a WINDOW_UPDATE.
  EXPECT_EQ(nghttp2_session_get_remote_window_size(s), 16 * 1024 * 1024);
  EXPECT_TRUE(client.alive());
  EXPECT_FALSE(client.failed());
  EXPECT_EQ(client.open_streams(), 0u);
}

TEST_F(fixture, json_post_is_echoed) {
  recorder r;
  const std::string json = R"({"Version":119,"NodeKey":"nodekey:00"})";
  const std::int32_t id = client.request(post("/echo", json), r.handler());
  ASSERT_EQ(id, 1);
  EXPECT_EQ(client.open_streams(), 1u);
  ASSERT_EQ(pump(client, server), std::nullopt);
  // What the server got: a well-formed request (nghttp2 checked it).
  const auto& got = server.requests.at(id);
  EXPECT_EQ(got.fields.at(":method"), "POST");
  EXPECT_EQ(got.fields.at(":path"), "/echo");
  EXPECT_EQ(got.fields.at(":scheme"), "https");
  EXPECT_EQ(got.fields.at(":authority"), "127.0.0.1:8080");
  EXPECT_EQ(got.fields.at("content-type"), "application/json");  // lowercased name
  EXPECT_EQ(got.fields.at("content-length"), std::to_string(json.size()));
  EXPECT_EQ(got.body, json);
  // What the client got.
  r.expect_sane();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("x-echo-method"), "POST");
  EXPECT_EQ(r.body, json);
  EXPECT_EQ(r.closed, h2_no_error);
  EXPECT_EQ(client.open_streams(), 0u);
  EXPECT_TRUE(client.alive());
}

TEST_F(fixture, bytes_fed_one_at_a_time) {
  recorder r;
  const std::string json(5000, 'j');
  client.request(post("/echo", json), r.handler());
  ASSERT_EQ(pump(client, server, 1), std::nullopt);
  r.expect_sane();
  EXPECT_EQ(r.body, json);
  EXPECT_EQ(r.closed, h2_no_error);
}

TEST_F(fixture, get_without_body_and_a_bodyless_response) {
  recorder r, missing;
  client.request(get("/empty"), r.handler());
  client.request(get("/nowhere"), missing.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(server.requests.at(1).fields.count("content-length"), 0u);
  EXPECT_EQ(server.requests.at(1).body, "");
  r.expect_sane();
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.closed, h2_no_error);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "not found");
  EXPECT_EQ(missing.closed, h2_no_error);
}

TEST_F(fixture, informational_heads_are_skipped) {
  recorder r;
  client.request(get("/informational"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  r.expect_sane();
  EXPECT_EQ(r.responses, 1);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-final"), "yes");
  EXPECT_EQ(r.body, "final");
}

// 24 MiB: beyond the stream's 4 MiB window and the connection's 16 MiB,
// so it only arrives whole if WINDOW_UPDATEs keep both open.
TEST_F(fixture, large_response_flows_through_window_updates) {
  constexpr std::size_t size = 24 * 1024 * 1024;
  std::size_t received = 0, chunks = 0;
  bool content_ok = true;
  std::optional<std::uint32_t> closed;
  client.request(get("/large/" + std::to_string(size)),
                 {.on_response = [](int, const std::vector<http_header>&) {},
                  .on_data =
                      [&](std::span<const std::uint8_t> chunk) {
                        for (std::size_t i = 0; i < chunk.size(); ++i)
                          content_ok &= chunk[i] == pattern_byte(received + i);
                        received += chunk.size();
                        ++chunks;
                      },
                  .on_close = [&](std::uint32_t code) { closed = code; }});
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(received, size);
  EXPECT_TRUE(content_ok);
  EXPECT_EQ(closed, h2_no_error);
  EXPECT_GT(chunks, size / 16384 - 1);  // frames of at most 16 KiB, handed over one by one
  const auto updates_for = [&](std::int32_t stream) {
    return std::count(server.window_updates.begin(), server.window_updates.end(), stream);
  };
  EXPECT_GE(updates_for(0), 2);  // one widening the connection, then the refills
  EXPECT_GE(updates_for(1), 4);
}

TEST(h2_client_limits, small_windows_still_carry_a_large_body) {
  test_server server;
  server.on_request = serve;
  h2_client client({.stream_window = 65535, .connection_window = 65535});
  std::size_t received = 0;
  std::optional<std::uint32_t> closed;
  client.request(get("/large/1048576"), {.on_data = [&](std::span<const std::uint8_t> c) { received += c.size(); },
                                         .on_close = [&](std::uint32_t code) { closed = code; }});
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(received, 1048576u);
  EXPECT_EQ(closed, h2_no_error);
  EXPECT_GE(server.window_updates.size(), 16u);
}

TEST_F(fixture, streamed_response_arrives_chunk_by_chunk) {
  recorder r;
  const std::int32_t id = client.request(get("/stream"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  const std::vector<std::string> pieces = {"first map response;", std::string(40000, 'x'), "keepalive"};
  std::string expected;
  for (const auto& p : pieces) {
    server.push(id, p);
    ASSERT_EQ(pump(client, server), std::nullopt);
    expected += p;
    EXPECT_EQ(r.body, expected);  // there as soon as it came, not at the end
    EXPECT_FALSE(r.closed.has_value());
    EXPECT_EQ(client.open_streams(), 1u);
  }
  server.finish(id);
  ASSERT_EQ(pump(client, server), std::nullopt);
  r.expect_sane();
  EXPECT_EQ(r.body, expected);
  EXPECT_EQ(r.closed, h2_no_error);
}

TEST_F(fixture, server_reset_closes_the_stream_with_its_code) {
  recorder reset, other;
  const std::int32_t id = client.request(get("/stream"), reset.handler());
  client.request(post("/echo", "{}"), other.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.push(id, "partial");
  ASSERT_EQ(pump(client, server), std::nullopt);  // nghttp2 sends RST_STREAM ahead of queued DATA
  server.reset(id, NGHTTP2_ENHANCE_YOUR_CALM);
  ASSERT_EQ(pump(client, server), std::nullopt);
  reset.expect_sane();
  EXPECT_EQ(reset.body, "partial");
  EXPECT_EQ(reset.closed, std::uint32_t{NGHTTP2_ENHANCE_YOUR_CALM});
  EXPECT_EQ(other.closed, h2_no_error);
  EXPECT_EQ(other.body, "{}");
  EXPECT_TRUE(client.alive());
  EXPECT_EQ(client.open_streams(), 0u);
}

TEST_F(fixture, reset_with_no_error_before_the_end_is_not_a_clean_end) {
  recorder r;
  const std::int32_t id = client.request(get("/stream"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.push(id, "half a body");
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.reset(id, NGHTTP2_NO_ERROR);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.body, "half a body");
  EXPECT_EQ(r.closed, h2_internal_error);
}

TEST_F(fixture, goaway_refuses_streams_past_its_last_and_new_requests) {
  recorder kept, refused;
  const std::int32_t a = client.request(get("/stream"), kept.handler());
  const std::int32_t b = client.request(get("/stream"), refused.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.send_goaway(a, NGHTTP2_NO_ERROR);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_TRUE(client.goaway_received());
  EXPECT_EQ(client.goaway_error(), h2_no_error);
  EXPECT_FALSE(client.alive());
  EXPECT_FALSE(client.failed());
  EXPECT_EQ(refused.closed, h2_refused_stream);
  EXPECT_FALSE(kept.closed.has_value());
  recorder late;
  EXPECT_EQ(client.request(get("/echo"), late.handler()), h2_err_start_stream_not_allowed);
  // The stream at or below the last ID still finishes.
  server.push(a, "done");
  server.finish(a);
  ASSERT_EQ(pump(client, server), std::nullopt);
  kept.expect_sane();
  refused.expect_sane();
  EXPECT_EQ(kept.body, "done");
  EXPECT_EQ(kept.closed, h2_no_error);
  EXPECT_FALSE(late.closed.has_value());
  (void)b;
}

TEST_F(fixture, garbage_from_the_server_fails_the_client_and_closes_its_streams) {
  recorder r;
  client.request(get("/stream"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  const std::string garbage = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  const auto first = client.feed(std::span(reinterpret_cast<const std::uint8_t*>(garbage.data()), garbage.size()));
  ASSERT_FALSE(first);
  EXPECT_NE(first.message().find("h2:"), std::string::npos);
  EXPECT_TRUE(client.failed());
  EXPECT_FALSE(client.alive());
  EXPECT_EQ(client.failure(), first.message());
  r.expect_sane();
  ASSERT_TRUE(r.closed.has_value());
  EXPECT_NE(*r.closed, h2_no_error);
  EXPECT_EQ(client.open_streams(), 0u);
  // Every later call fails.
  EXPECT_FALSE(client.feed(std::span(reinterpret_cast<const std::uint8_t*>(garbage.data()), 1)));
  recorder late;
  EXPECT_EQ(client.request(get("/echo"), late.handler()), h2_err_invalid_state);
  // The GOAWAY that says why still goes out once, and nothing after it.
  std::vector<std::uint8_t> out;
  client.take_output(out);
  server.feed(out);
  ASSERT_TRUE(server.goaway.has_value());
  EXPECT_EQ(*server.goaway, *r.closed);
  out.clear();
  client.take_output(out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(r.closes, 1);
}

TEST_F(fixture, a_first_frame_other_than_settings_fails_the_client) {
  recorder r;
  client.request(get("/echo"), r.handler());
  // A well-formed frame, but PING is not the server's preface.
  const std::uint8_t ping[] = {0, 0, 8, NGHTTP2_PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  const auto r2 = client.feed(ping);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.message().find("SETTINGS expected"), std::string::npos) << r2.message();
  EXPECT_TRUE(client.failed());
  // The request never left: nghttp2 refuses it (safe to retry elsewhere).
  EXPECT_EQ(r.closed, h2_refused_stream);
  std::vector<std::uint8_t> out;
  client.take_output(out);
  test_server fresh;
  fresh.feed(out);
  EXPECT_EQ(fresh.goaway, std::optional<std::uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_EQ(fresh.headers_frames, 0);
}

TEST_F(fixture, two_concurrent_streams_interleave) {
  recorder a, b;
  const std::int32_t ia = client.request(get("/stream"), a.handler());
  const std::int32_t ib = client.request(get("/stream"), b.handler());
  EXPECT_EQ(ia, 1);
  EXPECT_EQ(ib, 3);
  ASSERT_EQ(pump(client, server), std::nullopt);
  for (int i = 0; i < 5; ++i) {
    server.push(ia, "a" + std::to_string(i));
    server.push(ib, "b" + std::to_string(i));
    ASSERT_EQ(pump(client, server), std::nullopt);
  }
  server.finish(ib);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(b.closed, h2_no_error);
  EXPECT_FALSE(a.closed.has_value());
  server.finish(ia);
  ASSERT_EQ(pump(client, server), std::nullopt);
  a.expect_sane();
  b.expect_sane();
  EXPECT_EQ(a.body, "a0a1a2a3a4");
  EXPECT_EQ(b.body, "b0b1b2b3b4");
  EXPECT_EQ(a.closed, h2_no_error);
}

TEST(h2_client_limits, requests_wait_for_the_servers_stream_limit) {
  test_server narrow(1);
  narrow.on_request = serve;
  h2_client c;
  // Requests sent before the server's SETTINGS came are over its limit:
  // it refuses them (REFUSED_STREAM). Afterwards nghttp2 holds them back.
  ASSERT_EQ(pump(c, narrow), std::nullopt);
  recorder first, second;
  const std::int32_t ia = c.request(get("/stream"), first.handler());
  c.request(post("/echo", "queued"), second.handler());
  ASSERT_EQ(pump(c, narrow), std::nullopt);
  EXPECT_EQ(narrow.requests.size(), 1u);  // the second waits in nghttp2's queue
  narrow.finish(ia);
  ASSERT_EQ(pump(c, narrow), std::nullopt);
  EXPECT_EQ(first.closed, h2_no_error);
  EXPECT_EQ(second.body, "queued");
  EXPECT_EQ(second.closed, h2_no_error);
}

TEST_F(fixture, handlers_may_issue_requests) {
  recorder second, third;
  std::int32_t second_id = 0, third_id = 0;
  const std::int32_t first = client.request(
      get("/echo"),
      {.on_response = [&](int, const std::vector<http_header>&) {
         second_id = client.request(post("/echo", "from on_response"), second.handler());
       },
       .on_close = [&](std::uint32_t) { third_id = client.request(post("/echo", "from on_close"), third.handler()); }});
  ASSERT_EQ(first, 1);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(second_id, 3);
  EXPECT_EQ(third_id, 5);
  EXPECT_EQ(second.body, "from on_response");
  EXPECT_EQ(third.body, "from on_close");
  EXPECT_EQ(second.closed, h2_no_error);
  EXPECT_EQ(third.closed, h2_no_error);
  EXPECT_EQ(client.open_streams(), 0u);
}

TEST_F(fixture, cancel_from_a_handler_stops_delivery) {
  recorder r;
  std::int32_t id = 0;
  id = client.request(get("/stream"), {.on_data =
                                           [&](std::span<const std::uint8_t> c) {
                                             r.body += to_text(c);
                                             client.cancel(id);
                                           },
                                       .on_close = [&](std::uint32_t code) { r.closed = code; }});
  ASSERT_EQ(pump(client, server), std::nullopt);
  // Two DATA frames fed at once: the second comes after the handler cancelled.
  server.push(id, "one");
  auto both = server.take_output();
  server.push(id, "two");
  const auto second = server.take_output();
  both.insert(both.end(), second.begin(), second.end());
  ASSERT_TRUE(client.feed(both));
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.body, "one");
  EXPECT_EQ(r.closed, h2_cancel);
  ASSERT_EQ(server.resets.size(), 1u);
  EXPECT_EQ(server.resets[0], std::make_pair(id, std::uint32_t{NGHTTP2_CANCEL}));
}

TEST_F(fixture, cancel_before_sending_never_reaches_the_server) {
  recorder r;
  ASSERT_EQ(pump(client, server), std::nullopt);
  const std::int32_t id = client.request(post("/echo", "never"), r.handler());
  client.cancel(id);
  client.cancel(id);      // twice: harmless
  client.cancel(id + 2);  // unknown: ignored
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.closed, h2_cancel);
  EXPECT_EQ(server.headers_frames, 0);
  EXPECT_EQ(client.open_streams(), 0u);
  EXPECT_TRUE(client.alive());
}

TEST_F(fixture, a_throwing_handler_resets_only_its_stream) {
  recorder thrower, other;
  h2_stream_handler h = thrower.handler();
  h.on_data = [](std::span<const std::uint8_t>) { throw std::runtime_error("handler bug"); };
  const std::int32_t id = client.request(get("/stream"), h);
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.push(id, "boom");
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.push(id, "ignored");
  ASSERT_EQ(pump(client, server), std::nullopt);
  thrower.expect_sane();
  EXPECT_EQ(thrower.closed, h2_internal_error);
  ASSERT_EQ(server.resets.size(), 1u);
  EXPECT_EQ(server.resets[0].second, std::uint32_t{NGHTTP2_INTERNAL_ERROR});
  EXPECT_TRUE(client.alive());
  client.request(post("/echo", "still fine"), other.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(other.body, "still fine");
}

TEST_F(fixture, throwing_on_response_and_on_close_stays_contained) {
  std::optional<std::uint32_t> closed;
  client.request(post("/echo", "body"), {.on_response = [](int, const std::vector<http_header>&) { throw 42; },
                                .on_data = [](std::span<const std::uint8_t>) { FAIL() << "muted stream got data"; },
                                .on_close = [&](std::uint32_t code) {
                                  closed = code;
                                  throw std::logic_error("and again");
                                }});
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_TRUE(closed.has_value());
  EXPECT_TRUE(client.alive());
}

TEST_F(fixture, too_many_response_headers_reset_the_stream) {
  recorder r, other;
  client.request(get("/many-headers"), r.handler());
  client.request(post("/echo", "ok"), other.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.responses, 0);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.closed, h2_internal_error);
  EXPECT_EQ(other.body, "ok");
  EXPECT_TRUE(client.alive());
}

TEST(h2_client_limits, response_header_bytes_are_bounded) {
  test_server server;
  server.on_request = [](test_server& s, std::int32_t id, const test_server::request&) {
    s.respond(id, 200, {{"x-big", std::string(3000, 'b')}}, {.fixed = "x"});
  };
  h2_client client({.max_response_header_bytes = 2048});
  recorder r;
  client.request(get("/"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.responses, 0);
  EXPECT_EQ(r.closed, h2_internal_error);
}

TEST_F(fixture, destruction_calls_no_handler) {
  int calls = 0;
  {
    h2_client doomed;
    doomed.request(get("/stream"), {.on_response = [&](int, const std::vector<http_header>&) { ++calls; },
                                    .on_data = [&](std::span<const std::uint8_t>) { ++calls; },
                                    .on_close = [&](std::uint32_t) { ++calls; }});
    doomed.request(get("/hold"), {.on_close = [&](std::uint32_t) { ++calls; }});
    ASSERT_EQ(pump(doomed, server), std::nullopt);
    EXPECT_EQ(calls, 1);  // the response head
  }
  EXPECT_EQ(calls, 1);
}

TEST_F(fixture, a_moved_client_carries_on) {
  recorder r;
  client.request(get("/stream"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  h2_client moved = std::move(client);
  server.push(1, "after the move");
  server.finish(1);
  ASSERT_EQ(pump(moved, server), std::nullopt);
  EXPECT_EQ(r.body, "after the move");
  EXPECT_EQ(r.closed, h2_no_error);
  // The moved-from client refuses everything, harmlessly.
  EXPECT_TRUE(client.failed());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(client.alive());
  EXPECT_EQ(client.request(get("/echo"), {}), h2_err_invalid_state);
  EXPECT_FALSE(client.feed({}));
  std::vector<std::uint8_t> out;
  client.take_output(out);
  EXPECT_TRUE(out.empty());
}

TEST_F(fixture, ping_is_acknowledged) {
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(client.ping_acks(), 0u);
  client.ping();
  client.ping();
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(client.ping_acks(), 2u);
}

TEST_F(fixture, shutdown_lets_open_streams_finish) {
  recorder r;
  const std::int32_t id = client.request(get("/stream"), r.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  client.shutdown();
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(server.goaway, std::optional<std::uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_EQ(client.request(get("/echo"), {}), h2_err_start_stream_not_allowed);
  EXPECT_TRUE(client.alive());  // the stream is still open
  server.push(id, "tail");
  server.finish(id);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(r.body, "tail");
  EXPECT_EQ(r.closed, h2_no_error);
  EXPECT_FALSE(client.alive());
  EXPECT_FALSE(client.failed());
}

TEST_F(fixture, feed_and_take_output_from_a_handler_are_refused_harmlessly) {
  std::optional<bool> nested_feed_ok;
  std::size_t nested_output = 99;
  recorder r;
  h2_stream_handler h = r.handler();
  h.on_response = [&](int st, const std::vector<http_header>&) {
    r.status = st;
    const std::uint8_t byte = 0;
    nested_feed_ok = client.feed(std::span(&byte, 1)).ok();
    std::vector<std::uint8_t> out;
    client.take_output(out);
    nested_output = out.size();
  };
  client.request(post("/echo", "body"), h);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(nested_feed_ok, false);
  EXPECT_EQ(nested_output, 0u);
  EXPECT_FALSE(client.failed());
  EXPECT_EQ(r.body, "body");
  EXPECT_EQ(r.closed, h2_no_error);
}

TEST_F(fixture, fail_closes_every_open_stream) {
  recorder a, b;
  client.request(get("/stream"), a.handler());
  client.request(get("/hold"), b.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  client.fail("ts2021: the server closed the connection");
  EXPECT_TRUE(client.failed());
  EXPECT_EQ(client.failure(), "ts2021: the server closed the connection");
  EXPECT_EQ(a.closed, h2_internal_error);
  EXPECT_EQ(b.closed, h2_internal_error);
  EXPECT_EQ(client.open_streams(), 0u);
  const auto r = client.feed({});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.message(), "ts2021: the server closed the connection");
}

TEST_F(fixture, fail_from_a_handler_closes_the_others_after_it_returns) {
  recorder other;
  std::optional<std::uint32_t> own;
  const std::int32_t id = client.request(get("/stream"), {.on_data = [&](std::span<const std::uint8_t>) { client.fail("bad map"); },
                                                          .on_close = [&](std::uint32_t code) { own = code; }});
  client.request(get("/hold"), other.handler());
  ASSERT_EQ(pump(client, server), std::nullopt);
  server.push(id, "x");
  const auto err = pump(client, server);
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(*err, "bad map");
  EXPECT_EQ(own, h2_internal_error);
  EXPECT_EQ(other.closed, h2_internal_error);
}

TEST_F(fixture, bad_requests_are_refused_before_anything_is_sent) {
  recorder r;
  auto bad = get("/echo");
  bad.path = "no-slash";
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad = get("/echo");
  bad.headers = {{"Host", "elsewhere"}};
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad.headers = {{"x-ok", "line\r\nbreak"}};
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad.headers = {{":path", "/other"}};
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad.headers = {{"Transfer-Encoding", "chunked"}};
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad = get("/echo");
  bad.authority = "";
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  bad = get("/echo");
  bad.method = "G T";
  EXPECT_EQ(client.request(bad, r.handler()), h2_err_invalid_argument);
  ASSERT_EQ(pump(client, server), std::nullopt);
  EXPECT_EQ(server.headers_frames, 0);
  EXPECT_EQ(r.closes, 0);
  EXPECT_STRNE(h2_strerror(h2_err_invalid_argument), "");
}

}  // namespace
}  // namespace lopower::tailnet
