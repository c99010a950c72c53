#pragma once
// One ts2021 connection to the coordination server, on the event loop:
//
//   1. GET /key?v=<capver> on its own TCP connection: the server's Noise key;
//   2. a second TCP connection: POST /ts2021 with the Noise initiation in
//      X-Tailscale-Handshake, the 101, the Noise response behind it;
//   3. records both ways; the server's early payload taken off the front;
//      HTTP/2 with prior knowledge inside (h2_client), all requests on it.
//
// http:// or https:// control URLs. Over https, both connections are TLS
// on the URL's port: /key verified (its answer is the key that Noise then
// authenticates the server with), /ts2021 with certificate errors only
// logged (Noise authenticates it), as tailscaled does.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "control/event_loop.h"
#include "control/tailnet/client/tcp_stream.h"
#include "control/tailnet/client/tls_stream.h"
#include "control/tailnet/controlbase/h2_client.h"
#include "control/tailnet/controlbase/noise_ik.h"
#include "control/tailnet/controlbase/record_stream.h"
#include "control/tailnet/controlbase/upgrade.h"
#include "lopower/keys.h"
#include "lopower/result.h"

namespace lopower::tailnet {

// Where the coordination server is: parsed from "http[s]://host[:port][/]".
struct control_url {
  std::string host;         // a name or an IP literal without brackets
  std::uint16_t port = 80;  // 443 for https
  bool tls = false;         // https://
  std::string authority;    // "host:port" as the Host header and :authority want it
  std::string text;         // as configured
  static result<control_url> parse(std::string_view url);
};

class control_connection {
 public:
  struct handlers {
    std::function<void()> on_open;                           // requests may be made now
    std::function<void(const std::string& reason)> on_closed;  // once; the connection is dead
  };

  // `ca_file`: a PEM bundle trusted besides the system roots (https only).
  control_connection(event_loop& loop, control_url server, const private_key& machine, handlers h,
                     std::string ca_file = {});
  ~control_connection();
  control_connection(const control_connection&) = delete;
  control_connection& operator=(const control_connection&) = delete;

  void start();
  // A request on the open connection; the stream id, or -1 when not open.
  std::int32_t request(const h2_request& req, h2_stream_handler handler);
  void cancel(std::int32_t stream);
  // Closes without calling on_closed. May be called from a stream handler;
  // the connection itself must not be destroyed from one (free it later).
  void close();

  bool is_open() const noexcept { return phase_ == phase::open; }
  const std::optional<public_key>& server_key() const noexcept { return server_key_; }
  const std::optional<early_payload>& early() const noexcept { return early_.payload(); }

 private:
  enum class phase : std::uint8_t { idle, fetching_key, upgrading, open, closed };

  enum class certificate : std::uint8_t { must_verify, log_only };  // https only
  std::unique_ptr<byte_stream> new_stream(byte_stream::handlers h, certificate check);
  void fetch_key();
  void on_key_data(std::span<const std::uint8_t> bytes);
  void on_key_closed(const std::string& reason);
  void upgrade();
  void on_upgrade_data(std::span<const std::uint8_t> bytes);
  void on_noise_reply_bytes(std::span<const std::uint8_t> bytes);
  void on_records(std::span<const std::uint8_t> bytes);
  void pump();
  void close_with(const std::string& reason);

  event_loop& loop_;
  control_url server_;
  private_key machine_;
  handlers handlers_;
  std::string ca_file_;
  phase phase_ = phase::idle;

  std::unique_ptr<byte_stream> key_tcp_;
  std::string key_response_;
  std::optional<public_key> server_key_;

  std::unique_ptr<byte_stream> tcp_;
  std::optional<noise_ik_initiator> initiator_;
  upgrade_response_reader upgrade_reader_;
  bool switched_ = false;
  noise_reply_reader reply_;  // the Noise reply as it comes in
  std::optional<record_transport> transport_;
  early_payload_reader early_;
  std::unique_ptr<h2_client> h2_;
  bool feeding_ = false;                   // h2_->feed() is on the stack
  std::unique_ptr<h2_client> closing_h2_;  // closed while feeding: freed once feed() returns
  // Incoming plaintext and HTTP/2 bytes; outgoing HTTP/2 bytes and records.
  // Apart, because a stream handler called while feeding may send.
  std::vector<std::uint8_t> scratch_plain_, scratch_h2_, scratch_out_, scratch_wire_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower::tailnet
