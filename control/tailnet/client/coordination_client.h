#pragma once
// The coordination client: lopower as a node of a tailnet, on the control
// thread (tailscale's controlclient, direct.go and auto.go, in one state
// machine):
//
//   connect (ts2021) -> register -> [NeedsLogin: show the URL, follow it up]
//     -> map long-poll (zstd frames) -> netmap kept current -> Running
//
// Every connection registers first, with the persisted node key: the server
// finds the node it already knows (a restart is the same node, never a new
// one) and answers at once. Anything that ends the connection -- server
// down, a refused request, two minutes without a keep-alive -- schedules a
// reconnect after a capped exponential backoff with jitter; the last netmap
// stays in force meanwhile, so the dataplane keeps forwarding.
//
// The netmap is per map stream (as tailscale's mapSession): a new stream
// builds a fresh one and replaces the old once its first full response is in.
//
// A map the client refuses -- over the size limits (map_stream_reader,
// parse_map_response), unparsable, refused by the netmap -- would come back
// the same on the next stream: the client is then degraded (status_json()
// says why, e.g. "map response of N bytes exceeds the limit of M"), keeps
// the netmap in force, and asks again after a backoff of its own (a minute,
// doubling to 15), which a successful register does not reset. The first
// map of a stream that is applied ends it.
//
// The netmap in force is kept on disk (netmap_cache.h: `netmap.json`, 0600,
// written atomically by state_store): at once when a stream's first full map
// is in, after deltas at most once per `netmap_cache_interval` (longer when
// writing it takes long: a large tailnet's map is not rewritten on every
// peer that comes online), and at a clean stop. A start that finds one for
// its node key applies it before connecting -- `netmap_source` is "cache"
// until the server's first map replaces it -- so a lopowerd restarted
// during a control outage still has its peers. A damaged cache, or one of
// another node key, is logged, shown in the status and ignored.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/state_store.h"
#include "control/event_loop.h"
#include "control/tailnet/client/control_connection.h"
#include "control/tailnet/client/control_messages.h"
#include "control/tailnet/client/identity.h"
#include "control/tailnet/netmap/map_stream_reader.h"
#include "control/tailnet/netmap/netmap.h"

namespace lopower::tailnet {

// tailscale's ipn.State names, which operators know from `tailscale status`.
enum class backend_state : std::uint8_t { no_state, needs_login, starting, running, stopped };
const char* to_string(backend_state s) noexcept;

// What the client needs of a ts2021 connection: a control_connection, or a
// fake control server in the unit tests. The handlers are those given to
// the factory (on_open once open, on_closed once when it dies).
class control_channel {
 public:
  virtual ~control_channel() = default;
  virtual void start() = 0;
  // A request on the open connection; the stream id, or -1 when not open.
  virtual std::int32_t request(const h2_request& req, h2_stream_handler handler) = 0;
  // Closes without calling on_closed (may be called from a stream handler).
  virtual void close() = 0;
  virtual bool is_open() const noexcept = 0;
};
using channel_factory = std::function<std::unique_ptr<control_channel>(control_connection::handlers)>;

struct coordination_config {
  control_url server;
  std::string ca_file;  // https: a PEM bundle trusted besides the system roots
  host_info hostinfo;
  bool ephemeral = false;
  std::string auth_key;  // secret: never logged
  std::chrono::seconds keepalive_timeout{120};
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::seconds connect_timeout{30};
  // After a refused map (see above): the first wait, doubling up to the max.
  std::chrono::milliseconds refused_map_backoff_initial{60000};
  std::chrono::milliseconds refused_map_backoff_max{15 * 60000};
  // The map stream's limits; parse_map_response's follows max_message_bytes.
  map_stream_reader::limits map_limits;
  // The netmap kept on disk: off for tests that want none; the least time
  // between two writes after deltas.
  bool netmap_cache = true;
  std::chrono::milliseconds netmap_cache_interval{5000};
  channel_factory make_channel;  // empty: control_connection
};

class coordination_client {
 public:
  struct handlers {
    // A netmap was applied (first full one of a stream included).
    std::function<void(const netmap& nm, const netmap_changes& changes)> on_netmap;
    std::function<void(backend_state)> on_state;
    // The disco key changed (identity.h: once per start, when the server
    // has taken the fresh one); called before that map's on_netmap.
    std::function<void(const private_key&, const public_key&)> on_disco_key;
  };

  // Loads (or creates) the identity in `store`; throws when the stored one is
  // unreadable, naming the file.
  coordination_client(event_loop& loop, coordination_config cfg, const state_store& store,
                      handlers h);
  ~coordination_client();
  coordination_client(const coordination_client&) = delete;
  coordination_client& operator=(const coordination_client&) = delete;

  // Connects (unless the operator logged out earlier).
  void start();
  // Marks the node logged out on disk first (what the operator was told
  // holds across a crash), then tells the server (Expiry in the past) and
  // disconnects; until the server has answered, every start and reconnect
  // tells it again. The next login uses a fresh node key, as tailscale does.
  result<void> logout();
  // After a logout: register again.
  result<void> login();
  // The endpoints peers should try; sent now when connected (a non-streaming
  // map request) and in every later map request.
  void set_endpoints(std::vector<endpoint> endpoints, std::vector<int> types = {});
  // NetInfo: the home DERP region and the latencies measured to each
  // ("999-v4" -> seconds); sent like the endpoints when they change.
  void set_net_info(int preferred_derp, std::map<std::string, double> derp_latency);

  backend_state state() const noexcept { return state_; }
  const std::string& login_url() const noexcept { return login_url_; }
  const std::string& last_error() const noexcept { return last_error_; }
  // Why the last map was refused, until a map of a later stream is applied
  // (empty: not degraded).
  const std::string& degraded() const noexcept { return degraded_; }
  // The wait before the reconnect now scheduled (zero: none scheduled).
  std::chrono::milliseconds reconnect_delay() const noexcept { return reconnect_timer_ >= 0 ? delay_ : std::chrono::milliseconds(0); }
  // The netmap in force (the last complete one), or nullptr before the first.
  const netmap* current() const noexcept { return current_.get(); }
  // Where the netmap in force came from: the cache on disk until the
  // server's first map.
  enum class netmap_source : std::uint8_t { none, cache, control };
  netmap_source source() const noexcept { return source_; }
  // Writes the netmap in force to disk now, if it changed since the last
  // write (lopowerd's clean stop; the destructor does it too).
  void flush_netmap_cache();
  const private_key& node_private() const noexcept { return identity_.node; }
  const public_key& node_public() const noexcept { return node_public_; }
  const private_key& disco_private() const noexcept { return disco_private_; }
  const public_key& disco_public() const noexcept { return disco_public_; }
  const public_key& machine_public() const noexcept { return machine_public_; }

  struct counters {
    std::uint64_t connects = 0, connect_failures = 0, map_responses = 0, keepalives = 0, stream_timeouts = 0;
    // Map stream bytes as received (compressed), and the control thread's
    // CPU time spent on them: decoding, parsing, merging and every handler
    // a netmap runs (WireGuard peers, the workers' view, disco, DNS names).
    std::uint64_t map_bytes = 0, map_cpu_ns = 0;
  };
  const counters& stats() const noexcept { return stats_; }
  nlohmann::json status_json() const;

 private:
  void connect();
  void on_open();
  void on_closed(const std::string& reason);
  void next_request();
  void send_expiry();
  void on_expiry_done(int status);
  void send_register(const std::string& followup);
  void on_register_done(int status, const std::string& body);
  void start_map_stream();
  void on_map_data(std::span<const std::uint8_t> bytes);
  void send_endpoint_update();
  void reconnect_later(const std::string& reason, bool map_refused = false);
  void refuse_map(std::string why);
  void drop_connection();
  void take_fresh_disco_key();
  void load_netmap_cache();
  void netmap_cache_changed(bool at_once);
  void write_netmap_cache();
  void arm_watchdog();
  void set_state(backend_state s);
  std::chrono::milliseconds next_backoff();
  std::chrono::milliseconds next_refused_backoff();
  std::chrono::milliseconds jittered(std::chrono::milliseconds base);
  map_request make_map_request(bool stream) const;
  register_request make_register_request() const;

  event_loop& loop_;
  coordination_config cfg_;
  const state_store& store_;
  handlers handlers_;
  identity identity_;
  public_key node_public_, machine_public_;
  private_key disco_private_;  // in use: what peers hold
  public_key disco_public_;
  std::optional<private_key> next_disco_;  // announced in map requests, in use once the server took it

  backend_state state_ = backend_state::no_state;
  std::string login_url_;
  std::string last_error_;
  std::string degraded_;
  std::vector<endpoint> endpoints_;
  std::vector<int> endpoint_types_;

  std::unique_ptr<control_channel> conn_;
  std::vector<std::unique_ptr<control_channel>> retired_;  // freed off the call stack
  std::uint64_t connection_generation_ = 0;  // of conn_; older connections' events are ignored
  bool request_in_flight_ = false;          // a register (or logout) on conn_ not yet answered
  std::unique_ptr<map_stream_reader> map_reader_;
  std::unique_ptr<netmap> next_;     // the stream's netmap before its first full response
  std::unique_ptr<netmap> current_;  // in force
  bool stream_started_ = false;
  bool update_in_flight_ = false;  // a non-streaming map request (endpoints, NetInfo) not yet answered
  bool update_pending_ = false;    // and a change made since, to send once it is

  event_loop::timer_id reconnect_timer_ = -1;
  event_loop::timer_id watchdog_timer_ = -1;
  event_loop::timer_id connect_timer_ = -1;
  std::chrono::milliseconds backoff_{0};
  std::chrono::milliseconds refused_backoff_{0};  // while degraded
  std::chrono::milliseconds delay_{0};            // of the reconnect scheduled
  std::chrono::steady_clock::time_point retry_at_{};
  std::mt19937 jitter_{std::random_device{}()};
  counters stats_;

  netmap_source source_ = netmap_source::none;
  struct cache_state {
    std::string at_start = "none";  // none, loaded, refused, ignored, off
    std::string start_error;        // why refused or ignored
    std::optional<timestamp> loaded_saved_at;  // the file's time, when loaded
    bool dirty = false;             // current_ differs from what is on disk
    std::uint64_t writes = 0, write_failures = 0;
    std::string last_write_error;
    std::optional<timestamp> last_write_at;
    std::chrono::steady_clock::time_point last_write_end{};
    std::chrono::nanoseconds last_write_cost{0};
    event_loop::timer_id timer = -1;
  } cache_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lopower::tailnet
