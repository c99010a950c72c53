#include "control/tailnet/client/coordination_client.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cmath>

#include "control/log.h"
#include "control/tailnet/controlbase/key_text.h"
#include "control/tailnet/controlbase/printable.h"
#include "control/tailnet/netmap/netmap_cache.h"

namespace lopower::tailnet {

namespace {

constexpr std::size_t max_register_body = 64 * 1024;
constexpr std::size_t max_error_body = 4 * 1024;

std::chrono::microseconds us(std::chrono::milliseconds ms) { return ms; }

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Adds the calling thread's CPU time from here to the end of the scope.
struct cpu_time_into {
  std::uint64_t& total;
  std::uint64_t start = thread_cpu_ns();
  ~cpu_time_into() { total += thread_cpu_ns() - start; }
};

h2_request json_post(const control_url& server, std::string path, std::string body) {
  h2_request r;
  r.method = "POST";
  r.path = std::move(path);
  r.authority = server.authority;
  r.headers = {{"content-type", "application/json"}};
  r.body = std::move(body);
  return r;
}

// The real connection behind control_channel.
class connection_channel final : public control_channel {
 public:
  connection_channel(event_loop& loop, const control_url& server, const private_key& machine,
                     control_connection::handlers h, const std::string& ca_file)
      : conn_(loop, server, machine, std::move(h), ca_file) {}
  void start() override { conn_.start(); }
  std::int32_t request(const h2_request& req, h2_stream_handler handler) override {
    return conn_.request(req, std::move(handler));
  }
  void close() override { conn_.close(); }
  bool is_open() const noexcept override { return conn_.is_open(); }

 private:
  control_connection conn_;
};

// Collects a bounded response body, then hands status and body on.
struct body_collector {
  int status = 0;
  std::string body;
  std::size_t limit;
  bool overflow = false;
};

}  // namespace

const char* to_string(backend_state s) noexcept {
  switch (s) {
    case backend_state::no_state: return "NoState";
    case backend_state::needs_login: return "NeedsLogin";
    case backend_state::starting: return "Starting";
    case backend_state::running: return "Running";
    case backend_state::stopped: return "Stopped";
  }
  return "?";
}

coordination_client::coordination_client(event_loop& loop, coordination_config cfg,
                                         const state_store& store, handlers h)
    : loop_(loop), cfg_(std::move(cfg)), store_(store), handlers_(std::move(h)) {
  auto id = load_or_create_identity(store_);
  if (!id) throw std::runtime_error("tailnet identity: " + id.message());
  identity_ = std::move(*id);
  node_public_ = public_from_private(identity_.node);
  machine_public_ = public_from_private(identity_.machine);
  // The kept key until the server takes a fresh one: identity.h says why.
  disco_private_ = *identity_.disco;
  disco_public_ = public_from_private(disco_private_);
  next_disco_ = generate_private_key();
  backoff_ = std::chrono::milliseconds(0);
}

coordination_client::~coordination_client() {
  flush_netmap_cache();
  *alive_ = false;
  for (event_loop::timer_id* t : {&reconnect_timer_, &watchdog_timer_, &connect_timer_, &cache_.timer})
    if (*t >= 0) loop_.cancel_timer(*t);
  if (conn_) conn_->close();
}

void coordination_client::start() {
  LOG_INFO("tailnet: node %s, machine %s, control %s", format_node_key(node_public_).c_str(),
           format_machine_key(machine_public_).c_str(), cfg_.server.text.c_str());
  if (identity_.logged_out) {
    set_state(backend_state::needs_login);
    LOG_INFO("tailnet: logged out earlier; `lopower-ctl login` registers again");
    if (identity_.expire_node) connect();  // the server has not heard of the logout yet
    return;
  }
  set_state(backend_state::starting);
  load_netmap_cache();
  connect();
}

void coordination_client::set_state(backend_state s) {
  if (s == state_) return;
  LOG_INFO("tailnet: %s -> %s", to_string(state_), to_string(s));
  state_ = s;
  if (handlers_.on_state) handlers_.on_state(s);
}

// --- connection ----------------------------------------------------------------

void coordination_client::connect() {
  drop_connection();
  ++stats_.connects;
  // Only the connection in conn_ may act: one let go may still report its
  // open or close, which must not touch its successor.
  const std::uint64_t generation = ++connection_generation_;
  control_connection::handlers h{[this, generation] {
                                   if (generation == connection_generation_) on_open();
                                 },
                                 [this, generation](const std::string& r) {
                                   if (generation == connection_generation_) on_closed(r);
                                 }};
  if (cfg_.make_channel)
    conn_ = cfg_.make_channel(std::move(h));
  else
    conn_ = std::make_unique<connection_channel>(loop_, cfg_.server, identity_.machine, std::move(h), cfg_.ca_file);
  connect_timer_ = loop_.add_timer(cfg_.connect_timeout, std::chrono::microseconds(0), [this] {
    connect_timer_ = -1;
    reconnect_later("no answer from the control server within " + std::to_string(cfg_.connect_timeout.count()) + " s");
  });
  conn_->start();
}

void coordination_client::drop_connection() {
  if (connect_timer_ >= 0) loop_.cancel_timer(std::exchange(connect_timer_, -1));
  if (watchdog_timer_ >= 0) loop_.cancel_timer(std::exchange(watchdog_timer_, -1));
  map_reader_.reset();
  next_.reset();
  stream_started_ = false;
  request_in_flight_ = false;
  if (!conn_) return;
  // Its handlers may be on the stack: close it now, free it off the stack.
  conn_->close();
  retired_.push_back(std::move(conn_));
  loop_.add_timer(std::chrono::microseconds(1), std::chrono::microseconds(0), [this, alive = alive_] {
    if (*alive) retired_.clear();
  });
}

void coordination_client::on_open() {
  if (connect_timer_ >= 0) loop_.cancel_timer(std::exchange(connect_timer_, -1));
  LOG_DEBUG("tailnet: ts2021 connection open");
  next_request();
}

// What a connection says next: an expiry owed since a logout, then (logged
// in) the register; logged out with nothing owed, it is let go.
void coordination_client::next_request() {
  if (identity_.expire_node) return send_expiry();
  if (identity_.logged_out) return drop_connection();
  send_register("");
}

void coordination_client::on_closed(const std::string& reason) {
  ++stats_.connect_failures;
  reconnect_later(reason);
}

std::chrono::milliseconds coordination_client::jittered(std::chrono::milliseconds base) {
  // +-25%: restarted servers are not hit by every node at the same moment.
  // In integers: uniform_real_distribution goes through long double (x87),
  // which in lopowerd was seen to come out as NaN every other call (a
  // delay of INT64_MIN ms in the log) -- x87 state left dirty by code on
  // the control thread, presumably.
  std::uniform_int_distribution<std::int64_t> jitter(base.count() * 3 / 4, base.count() * 5 / 4);
  return std::chrono::milliseconds(jitter(jitter_));
}

std::chrono::milliseconds coordination_client::next_backoff() {
  backoff_ = backoff_.count() == 0 ? cfg_.backoff_initial : std::min(backoff_ * 2, cfg_.backoff_max);
  return jittered(backoff_);
}

// Not reset by a register: only a map that is applied ends it.
std::chrono::milliseconds coordination_client::next_refused_backoff() {
  refused_backoff_ = refused_backoff_.count() == 0 ? cfg_.refused_map_backoff_initial
                                                   : std::min(refused_backoff_ * 2, cfg_.refused_map_backoff_max);
  return jittered(refused_backoff_);
}

void coordination_client::reconnect_later(const std::string& reason, bool map_refused) {
  drop_connection();
  last_error_ = reason;
  if (identity_.logged_out && !identity_.expire_node) return;
  if (state_ != backend_state::needs_login) set_state(backend_state::starting);
  delay_ = map_refused ? next_refused_backoff() : next_backoff();
  retry_at_ = std::chrono::steady_clock::now() + delay_;
  if (map_refused)
    LOG_WARNING("tailnet: degraded: %s; %s, asking again in %.1f s", reason.c_str(),
                current_ ? "the netmap in force is kept" : "no netmap yet", static_cast<double>(delay_.count()) / 1000.0);
  else
    LOG_WARNING("tailnet: %s; reconnecting in %.1f s", reason.c_str(), static_cast<double>(delay_.count()) / 1000.0);
  if (reconnect_timer_ >= 0) loop_.cancel_timer(reconnect_timer_);
  reconnect_timer_ = loop_.add_timer(us(delay_), std::chrono::microseconds(0), [this] {
    reconnect_timer_ = -1;
    connect();
  });
}

// The map itself was refused (too large, unparsable, refused by the
// netmap): the server would send the same again at once.
void coordination_client::refuse_map(std::string why) {  // a copy: the reader that said why is let go
  degraded_ = why;
  reconnect_later(std::move(why), true);
}

// --- register --------------------------------------------------------------------

register_request coordination_client::make_register_request() const {
  register_request r;
  r.node_key = node_public_;
  if (identity_.old_node) r.old_node_key = public_from_private(*identity_.old_node);
  r.auth_key = cfg_.auth_key;
  r.ephemeral = cfg_.ephemeral;
  r.hostinfo = cfg_.hostinfo;
  return r;
}

void coordination_client::send_register(const std::string& followup) {
  register_request r = make_register_request();
  r.followup = followup;
  auto collected = std::make_shared<body_collector>();
  collected->limit = max_register_body;
  control_channel* conn = conn_.get();
  h2_stream_handler h;
  h.on_response = [collected](int status, const std::vector<http_header>&) { collected->status = status; };
  h.on_data = [collected](std::span<const std::uint8_t> b) {
    if (collected->body.size() + b.size() > collected->limit) return void(collected->overflow = true);
    collected->body.append(reinterpret_cast<const char*>(b.data()), b.size());
  };
  h.on_close = [this, conn, collected](std::uint32_t error) {
    if (conn != conn_.get()) return;  // an old connection's stream
    request_in_flight_ = false;
    // Logged out meanwhile (and maybe in again): the expiry goes first.
    if (identity_.logged_out || identity_.expire_node) return next_request();
    if (error != 0) return reconnect_later("register: stream reset (HTTP/2 error " + std::to_string(error) + ")");
    if (collected->overflow) return reconnect_later("register: response larger than 64 KiB");
    on_register_done(collected->status, collected->body);
  };
  request_in_flight_ = true;
  if (conn_->request(json_post(cfg_.server, "/machine/register", to_json(r)), std::move(h)) < 0) {
    request_in_flight_ = false;
    reconnect_later("register: could not start the request");
  }
}

void coordination_client::on_register_done(int status, const std::string& body) {
  if (status != 200)
    return reconnect_later("register: HTTP " + std::to_string(status) + ": " + detail::printable(body, 200));
  auto resp = parse_register_response(body);
  if (!resp) return reconnect_later("register: " + resp.message());
  if (!resp->error.empty()) return reconnect_later("register refused: " + detail::printable(resp->error, 200));
  if (resp->machine_authorized) {
    login_url_.clear();
    if (identity_.old_node) {  // the server has the new key now
      identity_.old_node.reset();
      if (auto w = save_identity(store_, identity_); !w) LOG_ERROR("tailnet: %s", w.message().c_str());
    }
    LOG_INFO("tailnet: registered%s%s", resp->login_name.empty() ? "" : " as ", resp->login_name.c_str());
    backoff_ = std::chrono::milliseconds(0);
    if (state_ == backend_state::needs_login) set_state(backend_state::starting);
    return start_map_stream();
  }
  if (!resp->auth_url.empty()) {
    if (login_url_ != resp->auth_url) LOG_INFO("tailnet: to log in, visit %s", detail::printable(resp->auth_url, 500).c_str());
    login_url_ = resp->auth_url;
    set_state(backend_state::needs_login);
    // The follow-up request waits until the login is done (or the server gives up).
    return send_register(login_url_);
  }
  reconnect_later("register: neither authorized nor a login URL in the answer");
}

// --- map stream ---------------------------------------------------------------------

map_request coordination_client::make_map_request(bool stream) const {
  map_request m;
  m.node_key = node_public_;
  m.disco_key = next_disco_ ? public_from_private(*next_disco_) : disco_public_;
  m.stream = stream;
  m.omit_peers = !stream;
  m.endpoints = endpoints_;
  m.endpoint_types = endpoint_types_;
  m.hostinfo = cfg_.hostinfo;
  return m;
}

void coordination_client::start_map_stream() {
  map_reader_ = std::make_unique<map_stream_reader>(cfg_.map_limits);
  next_ = std::make_unique<netmap>();
  stream_started_ = false;
  control_channel* conn = conn_.get();
  auto error_body = std::make_shared<body_collector>();
  error_body->limit = max_error_body;
  h2_stream_handler h;
  h.on_response = [this, conn, error_body](int status, const std::vector<http_header>&) {
    if (conn == conn_.get()) error_body->status = status;
  };
  h.on_data = [this, conn, error_body](std::span<const std::uint8_t> b) {
    if (conn != conn_.get()) return;
    if (error_body->status == 200) return on_map_data(b);
    if (error_body->body.size() < error_body->limit)
      error_body->body.append(reinterpret_cast<const char*>(b.data()), std::min(b.size(), error_body->limit));
  };
  h.on_close = [this, conn, error_body](std::uint32_t error) {
    if (conn != conn_.get()) return;
    if (error_body->status != 200)
      return reconnect_later("map: HTTP " + std::to_string(error_body->status) + ": " + detail::printable(error_body->body, 200));
    reconnect_later(error ? "map stream reset (HTTP/2 error " + std::to_string(error) + ")" : "map stream ended");
  };
  if (conn_->request(json_post(cfg_.server, "/machine/map", to_json(make_map_request(true))), std::move(h)) < 0)
    return reconnect_later("map: could not start the request");
  arm_watchdog();
}

void coordination_client::arm_watchdog() {
  if (watchdog_timer_ >= 0) loop_.cancel_timer(watchdog_timer_);
  watchdog_timer_ = loop_.add_timer(cfg_.keepalive_timeout, std::chrono::microseconds(0), [this] {
    watchdog_timer_ = -1;
    ++stats_.stream_timeouts;
    reconnect_later("map stream silent for " + std::to_string(cfg_.keepalive_timeout.count()) + " s");
  });
}

void coordination_client::on_map_data(std::span<const std::uint8_t> bytes) {
  stats_.map_bytes += bytes.size();
  const cpu_time_into timed{stats_.map_cpu_ns};
  if (!map_reader_->feed(bytes)) return refuse_map(map_reader_->error());
  control_channel* conn = conn_.get();
  parse_limits pl;
  pl.max_bytes = cfg_.map_limits.max_message_bytes;
  while (auto resp = map_reader_->next_response(pl)) {
    arm_watchdog();
    if (resp->keep_alive) {
      ++stats_.keepalives;
      continue;
    }
    ++stats_.map_responses;
    netmap& target = stream_started_ ? *current_ : *next_;
    const netmap_changes changes = target.apply(std::move(*resp));
    if (!changes.ok()) return refuse_map("map response refused: " + changes.error);
    bool started_now = false;
    if (!stream_started_) {
      if (!next_->started()) continue;  // no self node yet: not a usable netmap
      if (source_ == netmap_source::cache) LOG_INFO("tailnet: the control server's netmap replaces the cached one");
      if (next_disco_) take_fresh_disco_key();
      current_ = std::move(next_);
      source_ = netmap_source::control;
      stream_started_ = started_now = true;
      backoff_ = refused_backoff_ = std::chrono::milliseconds(0);
      last_error_.clear();
      if (!degraded_.empty()) LOG_INFO("tailnet: no longer degraded: the map was taken");
      degraded_.clear();
      LOG_INFO("tailnet: netmap with %zu peer(s)", current_->peer_count());
      set_state(backend_state::running);
      update_in_flight_ = update_pending_ = false;  // a new stream: nothing of the old connection is in flight
      if (!endpoints_.empty() || cfg_.hostinfo.preferred_derp != 0) send_endpoint_update();
    }
    if (handlers_.on_netmap) handlers_.on_netmap(*current_, changes);
    // A stream's first map is a whole new netmap: on disk at once. Deltas
    // wait for the next write (netmap_cache_changed paces them).
    if (started_now || changes.anything_changed()) netmap_cache_changed(started_now);
    if (conn != conn_.get()) return;  // a handler dropped the connection
  }
  if (map_reader_->failed()) refuse_map(map_reader_->error());
}

void coordination_client::set_endpoints(std::vector<endpoint> endpoints, std::vector<int> types) {
  if (endpoints == endpoints_ && types == endpoint_types_) return;
  endpoints_ = std::move(endpoints);
  endpoint_types_ = std::move(types);
  if (stream_started_) send_endpoint_update();
}

void coordination_client::set_net_info(int preferred_derp, std::map<std::string, double> derp_latency) {
  host_info& h = cfg_.hostinfo;
  if (h.preferred_derp == preferred_derp && h.derp_latency == derp_latency) return;
  // Latencies alone move a little every round: only a new home, or the
  // first latencies, are worth a request of their own.
  const bool worth_sending = h.preferred_derp != preferred_derp || h.derp_latency.empty();
  h.preferred_derp = preferred_derp;
  h.derp_latency = std::move(derp_latency);
  if (stream_started_ && worth_sending) send_endpoint_update();
}

// One update at a time: headscale serves a connection's streams in
// parallel, so two sent together may be applied in either order and the
// older one left standing. A change made meanwhile goes once it answers.
void coordination_client::send_endpoint_update() {
  if (!conn_ || !conn_->is_open()) return;
  if (update_in_flight_) {
    update_pending_ = true;
    return;
  }
  h2_stream_handler h;  // the answer carries nothing we need but its end
  const std::uint64_t generation = connection_generation_;
  h.on_close = [this, alive = alive_, generation](std::uint32_t) {
    if (!*alive || generation != connection_generation_) return;
    update_in_flight_ = false;
    if (std::exchange(update_pending_, false)) send_endpoint_update();
  };
  if (conn_->request(json_post(cfg_.server, "/machine/map", to_json(make_map_request(false))), std::move(h)) >= 0)
    update_in_flight_ = true;
}

// --- logout / login -------------------------------------------------------------------

// A logout is kept on disk first (a new node key, logged out, and the old
// key to expire), then told to the server on a connection of its own, or
// on the one in use once its register has been answered: a logout sent
// beside a register still on its way may be handled before it, and the
// register would then bring the old key back to life.

result<void> coordination_client::logout() {
  if (identity_.logged_out) return {};
  identity next = identity_;
  next.node = generate_private_key();
  next.old_node.reset();
  next.logged_out = true;
  // A key the server never authorized needs no expiry; one still waiting to
  // be expired (an earlier logout) goes first: the key since was never sent.
  if (!next.expire_node && state_ != backend_state::needs_login) next.expire_node = node_public_;
  if (auto w = save_identity(store_, next); !w) return w;
  identity_ = std::move(next);
  node_public_ = public_from_private(identity_.node);
  const bool answer_awaited = request_in_flight_ && conn_ && identity_.expire_node;
  if (!answer_awaited) drop_connection();
  if (reconnect_timer_ >= 0) loop_.cancel_timer(std::exchange(reconnect_timer_, -1));
  if (watchdog_timer_ >= 0) loop_.cancel_timer(std::exchange(watchdog_timer_, -1));
  current_.reset();
  source_ = netmap_source::none;
  // The netmap of a node that is no more: not kept (a later start would
  // ignore it anyway, its node key being another).
  if (cache_.timer >= 0) loop_.cancel_timer(std::exchange(cache_.timer, -1));
  cache_.dirty = false;
  if (auto r = store_.remove(netmap_cache_file_name); !r) LOG_WARNING("tailnet: %s", r.message().c_str());
  login_url_.clear();
  degraded_.clear();
  refused_backoff_ = std::chrono::milliseconds(0);
  set_state(backend_state::needs_login);
  if (handlers_.on_netmap) handlers_.on_netmap(netmap{}, netmap_changes{});
  LOG_INFO("tailnet: logged out");
  backoff_ = std::chrono::milliseconds(0);
  if (identity_.expire_node && !conn_) connect();
  return {};
}

void coordination_client::send_expiry() {
  register_request r;
  r.node_key = *identity_.expire_node;
  r.hostinfo = cfg_.hostinfo;
  r.expiry = logout_expiry();
  control_channel* conn = conn_.get();
  auto status = std::make_shared<int>(0);
  h2_stream_handler h;
  h.on_response = [status](int s, const std::vector<http_header>&) { *status = s; };
  h.on_close = [this, conn, status](std::uint32_t error) {
    if (conn != conn_.get()) return;
    request_in_flight_ = false;
    if (error != 0 || *status == 0) return reconnect_later("logout: stream reset before an answer");
    on_expiry_done(*status);
  };
  request_in_flight_ = true;
  if (conn_->request(json_post(cfg_.server, "/machine/register", to_json(r)), std::move(h)) < 0) {
    request_in_flight_ = false;
    reconnect_later("logout: could not start the request");
  }
}

void coordination_client::on_expiry_done(int status) {
  // Any answer settles it: asking again would get the same one.
  if (status == 200)
    LOG_INFO("tailnet: the server expired %s", format_node_key(*identity_.expire_node).c_str());
  else
    LOG_WARNING("tailnet: the server answered the logout of %s with HTTP %d",
                format_node_key(*identity_.expire_node).c_str(), status);
  identity_.expire_node.reset();
  if (auto w = save_identity(store_, identity_); !w) LOG_ERROR("tailnet: %s", w.message().c_str());
  backoff_ = std::chrono::milliseconds(0);
  last_error_.clear();
  next_request();
}

result<void> coordination_client::login() {
  if (!identity_.logged_out) return fail("not logged out");
  identity_.logged_out = false;
  if (auto w = save_identity(store_, identity_); !w) return w;
  backoff_ = std::chrono::milliseconds(0);
  set_state(backend_state::starting);
  // A connection still telling the server about the logout registers next.
  if (!conn_) {
    if (reconnect_timer_ >= 0) loop_.cancel_timer(std::exchange(reconnect_timer_, -1));
    connect();
  }
  return {};
}

// The server answered a map request that carried the fresh disco key: it
// has it, and peers are being told. Kept first (a restart during a later
// outage must use what peers hold), then in use.
void coordination_client::take_fresh_disco_key() {
  identity next = identity_;
  next.disco = *next_disco_;
  if (auto w = save_identity(store_, next); !w)
    LOG_ERROR("tailnet: the new disco key is not kept: %s", w.message().c_str());
  identity_ = std::move(next);
  disco_private_ = *std::exchange(next_disco_, std::nullopt);
  disco_public_ = public_from_private(disco_private_);
  LOG_INFO("tailnet: disco key %s", format_disco_key(disco_public_).c_str());
  if (handlers_.on_disco_key) handlers_.on_disco_key(disco_private_, disco_public_);
}

// --- the netmap kept on disk ------------------------------------------------------------

void coordination_client::load_netmap_cache() {
  if (!cfg_.netmap_cache) {
    cache_.at_start = "off";
    return;
  }
  if (!store_.exists(netmap_cache_file_name)) return;
  const std::string path = store_.path_of(netmap_cache_file_name);
  auto text = store_.read(netmap_cache_file_name);
  netmap_cache_load got;
  if (text) got = netmap_from_cache_json(*text, node_public_);
  else got.message = text.message();
  if (got.result == netmap_cache_load::outcome::other_node) {
    cache_.at_start = "ignored";
    cache_.start_error = got.message;
    LOG_INFO("tailnet: %s ignored: %s", path.c_str(), got.message.c_str());
    return;
  }
  if (got.result != netmap_cache_load::outcome::loaded) {
    // Never fatal: the server sends a whole netmap anyway, and the next
    // write replaces the file.
    cache_.at_start = "refused";
    // The message may quote the file: no control characters in the log.
    cache_.start_error = got.message.substr(0, 300);
    for (char& c : cache_.start_error)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    LOG_WARNING("tailnet: %s refused, starting without it: %s", path.c_str(), cache_.start_error.c_str());
    return;
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0)
    cache_.loaded_saved_at = timestamp::from_unix(st.st_mtim.tv_sec, static_cast<std::int32_t>(st.st_mtim.tv_nsec));
  current_ = std::move(got.map);
  source_ = netmap_source::cache;
  cache_.at_start = "loaded";
  const double age = cache_.loaded_saved_at
                         ? static_cast<double>(timestamp::now().unix_seconds - cache_.loaded_saved_at->unix_seconds)
                         : 0.0;
  LOG_INFO("tailnet: netmap from %s (saved %.0f s ago): %zu peer(s), in force until the control server's",
           path.c_str(), age, current_->peer_count());
  if (handlers_.on_netmap) handlers_.on_netmap(*current_, got.changes);
}

void coordination_client::netmap_cache_changed(bool at_once) {
  if (!cfg_.netmap_cache || !current_) return;
  cache_.dirty = true;
  if (at_once) {
    if (cache_.timer >= 0) loop_.cancel_timer(std::exchange(cache_.timer, -1));
    return write_netmap_cache();
  }
  if (cache_.timer >= 0) return;  // a write is due already
  // At most one write per interval, and never more than ~5 % of the
  // control thread: a large netmap that takes 100 ms to write waits 2 s.
  const auto spacing = std::max<std::chrono::nanoseconds>(cfg_.netmap_cache_interval, cache_.last_write_cost * 20);
  const auto now = std::chrono::steady_clock::now();
  const auto due = cache_.last_write_end + spacing;
  const auto wait = due > now ? std::chrono::duration_cast<std::chrono::microseconds>(due - now) : std::chrono::microseconds(1);
  cache_.timer = loop_.add_timer(std::max(wait, std::chrono::microseconds(1)), std::chrono::microseconds(0), [this] {
    cache_.timer = -1;
    write_netmap_cache();
  });
}

void coordination_client::write_netmap_cache() {
  if (!cache_.dirty || !current_ || current_->self() == nullptr) return;
  const auto start = std::chrono::steady_clock::now();
  result<void> w;
  try {
    std::string text = netmap_to_cache_json(*current_);
    w = store_.write(netmap_cache_file_name, text);
  } catch (const std::exception& e) {  // out of memory, most likely
    w = fail(std::string("netmap cache: ") + e.what());
  }
  cache_.last_write_end = std::chrono::steady_clock::now();
  cache_.last_write_cost = cache_.last_write_end - start;
  if (!w) {
    // Kept dirty: the next change (or the stop) tries again.
    ++cache_.write_failures;
    if (cache_.last_write_error != w.message()) LOG_WARNING("tailnet: netmap not kept on disk: %s", w.message().c_str());
    cache_.last_write_error = w.message();
    return;
  }
  ++cache_.writes;
  cache_.dirty = false;
  cache_.last_write_error.clear();
  cache_.last_write_at = timestamp::now();
  LOG_DEBUG("tailnet: netmap kept in %s (%.1f ms)", store_.path_of(netmap_cache_file_name).c_str(),
            std::chrono::duration<double, std::milli>(cache_.last_write_cost).count());
}

void coordination_client::flush_netmap_cache() {
  if (cache_.timer >= 0) loop_.cancel_timer(std::exchange(cache_.timer, -1));
  write_netmap_cache();
}

// --- status -----------------------------------------------------------------------------

nlohmann::json coordination_client::status_json() const {
  nlohmann::json j{{"backend_state", to_string(state_)},
                   {"control_url", cfg_.server.text},
                   {"node_key", format_node_key(node_public_)},
                   {"machine_key", format_machine_key(machine_public_)},
                   {"disco_key", format_disco_key(disco_public_)},
                   {"connected", conn_ && conn_->is_open()},
                   {"connects", stats_.connects},
                   {"map_responses", stats_.map_responses},
                   {"keepalives", stats_.keepalives},
                   {"stream_timeouts", stats_.stream_timeouts},
                   {"map_bytes", stats_.map_bytes},
                   {"map_cpu_ms", static_cast<double>(stats_.map_cpu_ns / 1000) / 1000.0}};
  if (!login_url_.empty()) j["auth_url"] = login_url_;
  if (!last_error_.empty()) j["last_error"] = last_error_;
  if (!degraded_.empty()) j["degraded"] = degraded_;
  j["netmap_source"] = source_ == netmap_source::cache     ? nlohmann::json("cache")
                       : source_ == netmap_source::control ? nlohmann::json("control")
                                                           : nlohmann::json();
  nlohmann::json cache{{"file", store_.path_of(netmap_cache_file_name)},
                       {"at_start", cache_.at_start},
                       {"writes", cache_.writes},
                       {"write_failures", cache_.write_failures}};
  if (!cache_.start_error.empty()) cache["error"] = cache_.start_error;
  if (cache_.loaded_saved_at) {
    cache["loaded_saved_at"] = cache_.loaded_saved_at->to_string();
    if (source_ == netmap_source::cache)
      cache["age_seconds"] = static_cast<std::uint64_t>(
          std::max<std::int64_t>(0, timestamp::now().unix_seconds - cache_.loaded_saved_at->unix_seconds));
  }
  if (cache_.last_write_at) cache["last_write"] = cache_.last_write_at->to_string();
  if (!cache_.last_write_error.empty()) cache["last_write_error"] = cache_.last_write_error;
  j["netmap_cache"] = std::move(cache);
  if (reconnect_timer_ >= 0) {
    const auto left = std::chrono::duration<double>(retry_at_ - std::chrono::steady_clock::now()).count();
    j["reconnect_in_seconds"] = std::max(0.0, std::round(left * 10) / 10);
  }
  nlohmann::json eps = nlohmann::json::array();
  for (const endpoint& e : endpoints_) eps.push_back(e.to_string());
  j["endpoints"] = eps;
  return j;
}

}  // namespace lopower::tailnet
