#include "control/tailnet/derp/derp_client.h"

#include <sodium.h>

#include <algorithm>

#include "control/tailnet/controlbase/upgrade.h"
#include "control/tailnet/derp/derp_frames.h"

namespace lopower::tailnet::derp {

namespace {

using clock = std::chrono::steady_clock;

// A Host header value that cannot end the line or smuggle another header.
bool valid_host_header(const std::string& host) noexcept {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f;
  });
}

std::string upgrade_request(const std::string& host_header) {
  return "GET /derp HTTP/1.1\r\nHost: " + host_header +
         "\r\nUser-Agent: lopower\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n";
}

std::span<const std::uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string frame_name(std::uint8_t type) {
  const char* name = to_string(static_cast<frame_type>(type));
  return std::string(name) + " (" + std::to_string(type) + ")";
}

}  // namespace

nlohmann::json client::counters::to_json() const {
  return {{"packets_sent", packets_sent},
          {"bytes_sent", bytes_sent},
          {"packets_received", packets_received},
          {"bytes_received", bytes_received},
          {"send_refused_not_ready", send_refused_not_ready},
          {"send_refused_queue_full", send_refused_queue_full},
          {"send_refused_too_big", send_refused_too_big},
          {"keepalives", keepalives},
          {"pings_answered", pings_answered},
          {"pongs_received", pongs_received},
          {"peer_gone", peer_gone},
          {"unknown_frames", unknown_frames}};
}

client::client(event_loop& loop, const private_key& node_key, stream_factory make_stream, handlers h)
    : loop_(loop),
      node_key_(node_key),
      node_public_(public_from_private(node_key)),
      make_stream_(std::move(make_stream)),
      handlers_(std::move(h)),
      reader_(std::make_unique<frame_reader>()) {}

client::~client() {
  *alive_ = false;
  cancel_deadline();
  stream_.reset();  // closes without calling back
}

result<void> client::connect(const std::string& host, std::uint16_t port, const std::string& host_header,
                             bool preferred) {
  if (!valid_host_header(host_header)) return lopower::fail("derp: bad Host header for " + host);
  shut_down();
  preferred_ = preferred;
  server_key_ = public_key();
  upgrade_request_ = upgrade_request(host_header);
  reply_head_.clear();
  reader_ = std::make_unique<frame_reader>();
  stream_ = make_stream_(byte_stream::handlers{
      .on_connected = [this] { on_connected(); },
      .on_data = [this](std::span<const std::uint8_t> b) { on_data(b); },
      .on_closed = [this](const std::string& reason) { on_stream_closed(reason); },
  });
  phase_ = phase::connecting;
  deadline_ = clock::now() + handshake_timeout_;
  arm_deadline();
  if (auto started = stream_->connect(host, port); !started) {
    shut_down();
    return lopower::fail("connect: " + started.message());
  }
  return {};
}

bool client::send_packet(const public_key& dst, std::span<const std::uint8_t> packet) {
  if (!ready_) {
    ++stats_.send_refused_not_ready;
    return false;
  }
  if (packet.size() > max_packet) {
    ++stats_.send_refused_too_big;
    return false;
  }
  const std::size_t frame_size = frame_header_size + key_size + packet.size();
  if (stream_->queued() + frame_size > max_queued_bytes) {
    ++stats_.send_refused_queue_full;
    return false;
  }
  ++stats_.packets_sent;
  stats_.bytes_sent += packet.size();
  scratch_.clear();
  append_send_packet(scratch_, dst, packet);
  send_frame(scratch_);  // last: a failing send may destroy us
  return true;
}

void client::note_preferred(bool preferred) {
  preferred_ = preferred;
  // Before ClientInfo the server would take it for a handshake error; the
  // handshake sends it then.
  if (phase_ == phase::awaiting_server_info || phase_ == phase::ready) send_frame(note_preferred_frame(preferred));
}

void client::ping(std::function<void(std::chrono::microseconds rtt)> done) {
  if (!ready_) return;
  pending_ping p{{}, clock::now(), std::move(done)};
  randombytes_buf(p.data.data(), p.data.size());
  if (pings_.size() == max_pending_pings) pings_.erase(pings_.begin());
  const auto frame = ping_frame(p.data);
  pings_.push_back(std::move(p));
  send_frame(frame);
}

void client::close() { shut_down(); }

// --- the stream's events ----------------------------------------------------

void client::on_connected() {
  phase_ = phase::upgrading;
  send_frame(as_bytes(upgrade_request_));
}

void client::on_data(std::span<const std::uint8_t> bytes) {
  if (phase_ == phase::upgrading) {
    if (!read_upgrade_reply(bytes)) return;
  } else if (phase_ == phase::awaiting_server_key || phase_ == phase::awaiting_server_info || phase_ == phase::ready) {
    reader_->feed(bytes);
  } else {
    return;
  }
  drain_frames();
}

void client::on_stream_closed(const std::string& reason) {
  fail(reason.empty() ? "server closed" : reason);
}

bool client::read_upgrade_reply(std::span<const std::uint8_t> bytes) {
  reply_head_.insert(reply_head_.end(), bytes.begin(), bytes.end());
  const std::size_t head_size = http_head_size(reply_head_);
  if (head_size == 0 || head_size > max_http_head) {
    if (head_size == 0 && reply_head_.size() <= max_http_head) return false;
    fail("upgrade: response head longer than " + std::to_string(max_http_head) + " bytes");
    return false;
  }
  const std::string_view text(reinterpret_cast<const char*>(reply_head_.data()), head_size);
  const auto head = parse_http_response_head(text);
  if (!head) {
    fail("upgrade: " + head.message());
    return false;
  }
  if (head->status != 101) {
    fail("upgrade: HTTP " + std::to_string(head->status));
    return false;
  }
  // Frames may follow the head in the same read.
  reader_->feed(std::span<const std::uint8_t>(reply_head_).subspan(head_size));
  reply_head_.clear();
  reply_head_.shrink_to_fit();
  phase_ = phase::awaiting_server_key;
  return true;
}

// --- frames -----------------------------------------------------------------

void client::drain_frames() {
  const auto alive = alive_;
  const std::uint64_t generation = generation_;
  for (;;) {
    auto next = reader_->next();
    if (!next) return fail(next.message());
    if (!*next) return;
    if (ready_) deadline_ = clock::now() + read_timeout_;
    const frame f = **next;
    handle_frame(static_cast<std::uint8_t>(f.type), f.body);
    // A handler may have destroyed us, closed, or reconnected.
    if (!*alive || generation_ != generation) return;
  }
}

void client::handle_frame(std::uint8_t type, std::span<const std::uint8_t> body) {
  if (phase_ == phase::awaiting_server_key) {
    if (type != static_cast<std::uint8_t>(frame_type::server_key))
      return fail("handshake: expected ServerKey, got " + frame_name(type));
    return handle_server_key(body);
  }
  switch (static_cast<frame_type>(type)) {
    case frame_type::server_info: return handle_server_info(body);
    case frame_type::recv_packet: return handle_recv_packet(body);
    case frame_type::keep_alive: ++stats_.keepalives; return;
    case frame_type::peer_gone: return handle_peer_gone(body);
    case frame_type::ping: return handle_ping(body);
    case frame_type::pong: return handle_pong(body);
    case frame_type::health:
      if (handlers_.on_health) handlers_.on_health(parse_health(body));
      return;
    case frame_type::restarting: return handle_restarting(body);
    case frame_type::server_key: return;  // repeated after a Fast-Start: the key is known
    default: ++stats_.unknown_frames; return;
  }
}

void client::handle_server_key(std::span<const std::uint8_t> body) {
  auto key = parse_server_key(body);
  if (!key) return fail("handshake: " + key.message());
  server_key_ = *key;
  auto info = client_info_frame(node_key_, node_public_, server_key_);
  if (!info) return fail("handshake: ClientInfo: " + info.message());
  phase_ = phase::awaiting_server_info;
  const auto alive = alive_;
  const std::uint64_t generation = generation_;
  send_frame(*info);
  if (!*alive || generation_ != generation) return;
  if (preferred_) send_frame(note_preferred_frame(true));
}

void client::handle_server_info(std::span<const std::uint8_t> body) {
  if (phase_ != phase::awaiting_server_info) return;  // only the first one means anything
  auto info = open_server_info(body, node_key_, server_key_);
  if (!info) return fail("handshake: " + info.message());
  phase_ = phase::ready;
  ready_ = true;
  // The timer still waits for the handshake deadline: move it to the read
  // deadline, which later frames only ever push back.
  deadline_ = clock::now() + read_timeout_;
  cancel_deadline();
  arm_deadline();
  if (handlers_.on_ready) handlers_.on_ready();
}

void client::handle_recv_packet(std::span<const std::uint8_t> body) {
  auto packet = parse_recv_packet(body);
  if (!packet) return fail(packet.message());
  ++stats_.packets_received;
  stats_.bytes_received += packet->packet.size();
  if (handlers_.on_packet) handlers_.on_packet(packet->src, packet->packet);
}

void client::handle_peer_gone(std::span<const std::uint8_t> body) {
  auto gone = parse_peer_gone(body);
  if (!gone) return fail(gone.message());
  ++stats_.peer_gone;
  if (handlers_.on_peer_gone) handlers_.on_peer_gone(gone->peer, static_cast<peer_gone_reason>(gone->reason));
}

void client::handle_ping(std::span<const std::uint8_t> body) {
  auto data = parse_ping_data(body);
  if (!data) return fail(data.message());
  ++stats_.pings_answered;
  send_frame(pong_frame(*data));
}

void client::handle_pong(std::span<const std::uint8_t> body) {
  auto data = parse_ping_data(body);
  if (!data) return fail(data.message());
  ++stats_.pongs_received;
  const auto it = std::find_if(pings_.begin(), pings_.end(), [&](const pending_ping& p) { return p.data == *data; });
  if (it == pings_.end()) return;  // not ours, or forgotten
  auto done = std::move(it->done);
  const auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - it->sent);
  pings_.erase(it);
  if (done) done(rtt);
}

void client::handle_restarting(std::span<const std::uint8_t> body) {
  auto r = parse_restarting(body);
  if (!r) return fail(r.message());
  if (handlers_.on_restarting) handlers_.on_restarting(r->reconnect_in, r->try_for);
}

// --- the connection's life ------------------------------------------------------

void client::send_frame(std::span<const std::uint8_t> frame) {
  if (stream_ && stream_->open()) stream_->send(frame);
}

void client::fail(const std::string& reason) {
  if (phase_ == phase::idle || phase_ == phase::closed) return;
  shut_down();
  if (handlers_.on_closed) handlers_.on_closed(reason);  // last: it may destroy us
}

void client::shut_down() {
  ++generation_;
  cancel_deadline();
  if (stream_) stream_->close();
  ready_ = false;
  pings_.clear();
  if (phase_ != phase::idle) phase_ = phase::closed;
}

void client::cancel_deadline() {
  if (deadline_timer_ < 0) return;
  loop_.cancel_timer(deadline_timer_);
  deadline_timer_ = -1;
}

void client::arm_deadline() {
  if (deadline_timer_ >= 0) return;
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - clock::now());
  deadline_timer_ = loop_.add_timer(std::max(left, std::chrono::microseconds(1)), std::chrono::microseconds(0),
                                    [this] { on_deadline(); });
}

void client::on_deadline() {
  deadline_timer_ = -1;  // one-shot: the loop already forgot it
  if (phase_ == phase::idle || phase_ == phase::closed) return;
  if (clock::now() < deadline_) return arm_deadline();  // frames came in since: wait for the rest
  fail(ready_ ? "read timeout" : "handshake timeout");
}

}  // namespace lopower::tailnet::derp
