#include "control/tailnet/client/control_connection.h"

#include <charconv>

#include "control/tailnet/client/control_messages.h"
#include "control/tailnet/controlbase/printable.h"

namespace lopower::tailnet {

namespace {

constexpr std::size_t max_key_response = 16 * 1024;

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

result<control_url> control_url::parse(std::string_view url) {
  control_url u;
  u.text = std::string(url);
  constexpr std::string_view http = "http://", https = "https://";
  std::string_view rest;
  if (url.starts_with(http)) {
    rest = url.substr(http.size());
  } else if (url.starts_with(https)) {
    rest = url.substr(https.size());
    u.tls = true;
    u.port = 443;
  } else {
    return fail("control_url must start with http:// or https://");
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") return fail("control_url must not have a path");
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest, port_text;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("control_url: unclosed '[' in the host");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("control_url: junk after the IPv6 address");
      port_text = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
  }
  if (host.empty()) return fail("control_url: no host");
  for (char c : host)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' || c == '_'))
      return fail("control_url: bad character in the host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return fail("control_url: bad port");
    u.port = static_cast<std::uint16_t>(port);
  }
  u.host = std::string(host);
  const bool v6 = u.host.find(':') != std::string::npos;
  u.authority = (v6 ? "[" + u.host + "]" : u.host) + ":" + std::to_string(u.port);
  return u;
}

control_connection::control_connection(event_loop& loop, control_url server, const private_key& machine,
                                       handlers h, std::string ca_file)
    : loop_(loop),
      server_(std::move(server)),
      machine_(machine),
      handlers_(std::move(h)),
      ca_file_(std::move(ca_file)) {}

control_connection::~control_connection() {
  *alive_ = false;
  close();
}

void control_connection::start() {
  if (phase_ != phase::idle) return;
  fetch_key();
}

void control_connection::close_with(const std::string& reason) {
  if (phase_ == phase::closed) return;
  close();
  if (handlers_.on_closed) handlers_.on_closed(reason);
}

void control_connection::close() {
  phase_ = phase::closed;
  if (key_tcp_) key_tcp_->close();
  if (tcp_) tcp_->close();
  // Freeing the h2 client runs no handler, but a handler may be what
  // closes us, from inside h2_->feed(): nghttp2 is still on the stack then
  // and its session must outlive the call. on_records frees it after.
  if (feeding_) closing_h2_ = std::move(h2_);
  else h2_.reset();
}

// An https:// server is reached over TLS on its port for both requests.
// tailscaled tries plain port 80 first for /ts2021 (Noise needs no TLS),
// but a server with TLS, headscale's included, serves nothing there; TLS
// on the configured port always works and is one code path.
std::unique_ptr<byte_stream> control_connection::new_stream(byte_stream::handlers h, certificate check) {
  if (!server_.tls) return std::make_unique<tcp_stream>(loop_, std::move(h));
  tls_options tls;
  tls.server_name = server_.host;
  tls.ca_file = ca_file_;
  // /key must verify: its answer is the Noise key that authenticates all
  // the rest. /ts2021 is authenticated by that Noise handshake, so there a
  // bad certificate is only logged, and no ALPN is offered (as tailscaled).
  if (check == certificate::must_verify) tls.alpn = {"http/1.1"};
  else tls.log_only_verify_errors = true;
  return std::make_unique<tls_stream>(loop_, std::move(tls), std::move(h));
}

// --- 1. the server's key ----------------------------------------------------

void control_connection::fetch_key() {
  phase_ = phase::fetching_key;
  byte_stream::handlers h{[this] {
                             const std::string req = build_key_request(server_.authority, lopower_capability_version);
                             key_tcp_->send(as_bytes(req));
                           },
                           [this](std::span<const std::uint8_t> b) { on_key_data(b); },
                           [this](const std::string& reason) { on_key_closed(reason); }};
  key_tcp_ = new_stream(std::move(h), certificate::must_verify);
  if (auto r = key_tcp_->connect(server_.host, server_.port); !r) close_with(r.message());
}

void control_connection::on_key_data(std::span<const std::uint8_t> bytes) {
  if (key_response_.size() + bytes.size() > max_key_response) return close_with("GET /key: response larger than 16 KiB");
  key_response_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void control_connection::on_key_closed(const std::string& reason) {
  if (!reason.empty()) return close_with("GET /key: " + reason);
  auto resp = parse_http_response(key_response_);
  key_response_.clear();
  if (!resp) return close_with("GET /key: " + resp.message());
  if (resp->head.status != 200)
    return close_with("GET /key: HTTP " + std::to_string(resp->head.status) + " " + detail::printable(resp->body.substr(0, 200)));
  auto keys = parse_key_response(resp->body);
  if (!keys) return close_with("GET /key: " + keys.message());
  server_key_ = keys->noise;
  // Not from inside the stream's own handler: it would be destroyed under itself.
  loop_.add_timer(std::chrono::microseconds(1), std::chrono::microseconds(0),
                  [this, alive = alive_] {
                    if (*alive && phase_ == phase::fetching_key) upgrade();
                  });
}

// --- 2. the upgrade and the Noise handshake -----------------------------------

void control_connection::upgrade() {
  key_tcp_.reset();
  phase_ = phase::upgrading;
  auto init = noise_ik_initiator::start(machine_, *server_key_, lopower_capability_version);
  if (!init) return close_with("ts2021: " + init.message());
  initiator_.emplace(std::move(*init));
  byte_stream::handlers h{[this] {
                             const std::string req = build_upgrade_request(server_.authority, initiator_->initiation());
                             tcp_->send(as_bytes(req));
                           },
                           [this](std::span<const std::uint8_t> b) {
                             if (phase_ == phase::open) on_records(b);
                             else on_upgrade_data(b);
                           },
                           [this](const std::string& reason) {
                             close_with(reason.empty() ? "control server closed the connection" : reason);
                           }};
  tcp_ = new_stream(std::move(h), certificate::log_only);
  if (auto r = tcp_->connect(server_.host, server_.port); !r) close_with(r.message());
}

void control_connection::on_upgrade_data(std::span<const std::uint8_t> bytes) {
  if (switched_) return on_noise_reply_bytes(bytes);
  auto done = upgrade_reader_.feed(bytes);
  if (!done) return close_with("ts2021 upgrade: " + done.message());
  if (!*done) return;
  switched_ = true;
  on_noise_reply_bytes(upgrade_reader_.surplus());
}

void control_connection::on_noise_reply_bytes(std::span<const std::uint8_t> bytes) {
  // Take exactly the reply; what follows it is the first records.
  const auto used = reply_.feed(bytes);
  if (!used) return close_with("ts2021 handshake: " + used.message());
  if (!reply_.whole()) return;
  auto keys = initiator_->finish(reply_.reply());
  initiator_.reset();
  if (!keys) return close_with("ts2021 handshake: " + keys.message());
  transport_.emplace(*keys);
  h2_ = std::make_unique<h2_client>();
  phase_ = phase::open;
  auto alive = alive_;
  pump();
  if (handlers_.on_open) handlers_.on_open();
  if (!*alive || phase_ != phase::open) return;
  if (*used < bytes.size()) on_records(bytes.subspan(*used));
}

// --- 3. records and HTTP/2 --------------------------------------------------------

void control_connection::on_records(std::span<const std::uint8_t> bytes) {
  scratch_plain_.clear();
  if (const record_error e = transport_->rx.feed(bytes, scratch_plain_); e != record_error::none)
    return close_with(std::string("ts2021 record: ") + to_string(e));
  scratch_h2_.clear();
  if (auto r = early_.feed(scratch_plain_, scratch_h2_); !r) return close_with("ts2021 early payload: " + r.message());
  if (scratch_h2_.empty()) return;
  auto alive = alive_;
  feeding_ = true;
  auto fed = h2_->feed(scratch_h2_);
  if (!*alive) return;
  feeding_ = false;
  closing_h2_.reset();
  if (phase_ != phase::open) return;
  if (!fed) return close_with("HTTP/2: " + fed.message());
  pump();
}

std::int32_t control_connection::request(const h2_request& req, h2_stream_handler handler) {
  if (phase_ != phase::open) return -1;
  const std::int32_t id = h2_->request(req, std::move(handler));
  pump();
  return id;
}

void control_connection::cancel(std::int32_t stream) {
  if (phase_ != phase::open) return;
  h2_->cancel(stream);
  pump();
}

void control_connection::pump() {
  if (phase_ != phase::open || !h2_) return;
  scratch_out_.clear();
  h2_->take_output(scratch_out_);
  if (scratch_out_.empty()) return;
  scratch_wire_.clear();
  if (const record_error e = transport_->tx.seal(scratch_out_, scratch_wire_); e != record_error::none)
    return close_with(std::string("ts2021 record: ") + to_string(e));
  tcp_->send(scratch_wire_);
}

}  // namespace lopower::tailnet
