#pragma once
// One connection to one DERP server, as tailscaled 1.98 speaks it (protocol
// version 2; ../shared/docs/DERP-EXIT.md section 1): over a byte_stream
// (plain TCP for labs, TLS otherwise -- the caller's factory decides),
//
//   GET /derp, Upgrade: DERP  -> 101 (headers ignored: the key comes in a frame)
//   <- ServerKey  -> ClientInfo (NaCl box to the server key, our node key)
//   [-> NotePreferred(1) when this is the home region]
//   <- ServerInfo (opened with the same box)  => ready
//
// then SendPacket/RecvPacket, KeepAlive, Ping/Pong (answered), PeerGone,
// Health, Restarting; unknown frame types skipped. Everything on the event
// loop; nothing blocks. Sends while not ready, or with more than
// max_queued_bytes waiting in the stream, are refused (false) and counted.
// 120 s without a frame from the server closes the connection.
//
// Handlers may destroy the client (it notices, as byte_stream does).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/event_loop.h"
#include "control/tailnet/client/byte_stream.h"
#include "lopower/keys.h"
#include "lopower/result.h"

namespace lopower::tailnet::derp {

class frame_reader;  // derp_frames.h

// PeerGone reasons.
enum class peer_gone_reason : std::uint8_t { disconnected = 0, not_here = 1 };

class client {
 public:
  using stream_factory = std::function<std::unique_ptr<byte_stream>(byte_stream::handlers)>;
  struct handlers {
    std::function<void()> on_ready;  // ServerInfo in: packets may be sent
    std::function<void(const public_key& src, std::span<const std::uint8_t> packet)> on_packet;
    std::function<void(const public_key& peer, peer_gone_reason)> on_peer_gone;
    // The server goes down: reconnect after `reconnect_in`, keep trying for `try_for`.
    std::function<void(std::chrono::milliseconds reconnect_in, std::chrono::milliseconds try_for)> on_restarting;
    std::function<void(const std::string& problem)> on_health;  // empty: healthy again
    // Once; the connection is dead. `reason` says why ("connect: ...",
    // "upgrade: HTTP 404", "server closed", "read timeout", "tls: ...").
    std::function<void(const std::string& reason)> on_closed;
  };
  struct counters {
    std::uint64_t packets_sent = 0, bytes_sent = 0, packets_received = 0, bytes_received = 0;
    std::uint64_t send_refused_not_ready = 0, send_refused_queue_full = 0, send_refused_too_big = 0;
    std::uint64_t keepalives = 0, pings_answered = 0, pongs_received = 0, peer_gone = 0, unknown_frames = 0;
    nlohmann::json to_json() const;
  };
  static constexpr std::size_t max_queued_bytes = 1 << 20;
  static constexpr std::size_t max_packet = 64 * 1024;

  client(event_loop& loop, const private_key& node_key, stream_factory make_stream, handlers h);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Dials `host` (an IP literal) at `port`; `host_header` is the Host header
  // (the region node's HostName). `preferred`: send NotePreferred(1) right
  // after ClientInfo.
  result<void> connect(const std::string& host, std::uint16_t port, const std::string& host_header, bool preferred);
  // A packet to the node with key `dst` (disco or WireGuard); false when
  // refused (counted).
  bool send_packet(const public_key& dst, std::span<const std::uint8_t> packet);
  void note_preferred(bool preferred);
  // A Ping frame; its Pong (`rtt`) is reported through `done` (once; not
  // called when the connection closes first).
  void ping(std::function<void(std::chrono::microseconds rtt)> done);
  void close();  // without on_closed

  bool ready() const noexcept { return ready_; }
  const public_key& server_key() const noexcept { return server_key_; }
  const counters& stats() const noexcept { return stats_; }

  // Before ServerInfo the whole dial + upgrade + handshake must fit in
  // handshake_timeout (derphttp's 10 s); afterwards any frame, KeepAlive
  // included (every 60-65 s), restarts read_timeout.
  static constexpr std::chrono::seconds handshake_timeout{10};
  static constexpr std::chrono::seconds read_timeout{120};
  // Shorter ones for tests (the handshake one counts from the next connect()).
  void set_timeouts(std::chrono::milliseconds handshake, std::chrono::milliseconds read) {
    handshake_timeout_ = handshake;
    read_timeout_ = read;
  }
  // Pings waiting for their Pong; the oldest is forgotten beyond this.
  static constexpr std::size_t max_pending_pings = 16;

 private:
  enum class phase { idle, connecting, upgrading, awaiting_server_key, awaiting_server_info, ready, closed };
  struct pending_ping {
    std::array<std::uint8_t, 8> data;
    std::chrono::steady_clock::time_point sent;
    std::function<void(std::chrono::microseconds)> done;
  };

  // byte_stream events.
  void on_connected();
  void on_data(std::span<const std::uint8_t> bytes);
  void on_stream_closed(const std::string& reason);
  // Reads the HTTP reply head; true when switched (the rest went to the
  // frame reader), false when more is needed or the connection failed.
  bool read_upgrade_reply(std::span<const std::uint8_t> bytes);
  // Runs every whole frame buffered; stops when a handler destroyed us,
  // closed or reconnected, or the stream failed.
  void drain_frames();
  // One frame: a malformed one closes the connection with the reason.
  void handle_frame(std::uint8_t type, std::span<const std::uint8_t> body);
  void handle_server_key(std::span<const std::uint8_t> body);
  void handle_server_info(std::span<const std::uint8_t> body);
  void handle_recv_packet(std::span<const std::uint8_t> body);
  void handle_peer_gone(std::span<const std::uint8_t> body);
  void handle_ping(std::span<const std::uint8_t> body);
  void handle_pong(std::span<const std::uint8_t> body);
  void handle_restarting(std::span<const std::uint8_t> body);
  // Queues one frame; a failing stream may call back into fail() (and
  // destroy us) before it returns.
  void send_frame(std::span<const std::uint8_t> frame);
  // Closes the stream and reports `reason` once; may destroy us.
  void fail(const std::string& reason);
  void shut_down();
  void arm_deadline();
  void cancel_deadline();
  void on_deadline();

  event_loop& loop_;
  private_key node_key_;
  public_key node_public_;
  stream_factory make_stream_;
  handlers handlers_;
  std::unique_ptr<byte_stream> stream_;
  phase phase_ = phase::idle;
  bool preferred_ = false;
  std::string upgrade_request_;
  std::vector<std::uint8_t> reply_head_;  // the HTTP reply so far
  std::unique_ptr<frame_reader> reader_;  // the frames after the head
  std::vector<std::uint8_t> scratch_;  // one outgoing frame, reused
  std::vector<pending_ping> pings_;
  // The connection's deadline (see read_timeout): one timer, re-armed only
  // when it fires early, so a busy connection costs no timer syscalls.
  event_loop::timer_id deadline_timer_ = -1;
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::milliseconds handshake_timeout_ = handshake_timeout;
  std::chrono::milliseconds read_timeout_ = read_timeout;
  // Shared with each callback: false once the client is destroyed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Bumped by every close and connect: a loop over frames stops when a
  // handler changed the connection under it.
  std::uint64_t generation_ = 0;

  bool ready_ = false;
  public_key server_key_;
  counters stats_;
};

}  // namespace lopower::tailnet::derp
