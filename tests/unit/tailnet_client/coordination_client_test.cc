// The coordination client's state machine against a fake control server
// (a control_channel that answers on the event loop): a map over the size
// limits makes the client degraded -- status says why, in the reader's
// words -- and it asks again after a backoff that grows from one refusal to
// the next (a successful register does not reset it), keeping the netmap in
// force meanwhile; a later map that is taken ends it. The netmap kept on
// disk: written when a stream's first map is in and, paced, after deltas;
// in force at the next start before any server answers; a damaged one or
// one of another node key ignored.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/event_loop.h"
#include "control/state_store.h"
#include "control/tailnet/client/coordination_client.h"
#include "control/tailnet/netmap/map_stream_reader.h"
#include "control/tailnet/netmap/netmap_cache.h"
#include "lopower/byte_order.h"
#include "lopower/hex.h"

namespace lopower::tailnet {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

std::string key_text(const char* prefix, std::uint8_t fill, unsigned n) {
  std::array<std::uint8_t, 32> k;
  k.fill(fill);
  store_be16(k.data(), static_cast<std::uint16_t>(n));
  return std::string(prefix) + to_hex(k);
}

json node_json(unsigned n) {
  return json{{"ID", n},
              {"StableID", std::to_string(n)},
              {"Name", "node" + std::to_string(n) + ".tailnet.example."},
              {"User", 1},
              {"Key", key_text("nodekey:", 0xa1, n)},
              {"DiscoKey", key_text("discokey:", 0xd1, n)},
              {"Addresses", {"100.64." + std::to_string(n / 250) + "." + std::to_string(n % 250 + 1) + "/32"}},
              {"Hostinfo", {{"Hostname", "node" + std::to_string(n)}}},
              {"MachineAuthorized", true}};
}

// A full map with the self node and `peers` peers.
std::string full_map(unsigned peers) {
  json j{{"Node", node_json(60000)}, {"Peers", json::array()}};
  for (unsigned i = 1; i <= peers; ++i) j["Peers"].push_back(node_json(i));
  return j.dump();
}

// A full map whose self node has `self` as its key; a delta adding peer n.
std::string full_map_for(const public_key& self, unsigned peers) {
  json j = json::parse(full_map(peers));
  j["Node"]["Key"] = "nodekey:" + self.to_hex();
  return j.dump();
}
std::string peer_added(unsigned n) { return json{{"PeersChanged", {node_json(n)}}}.dump(); }

std::string le32(std::uint32_t v) {
  std::uint8_t b[4];
  store_le32(b, v);
  return std::string(reinterpret_cast<const char*>(b), 4);
}

// The server's side: what each map stream sends (one entry per stream, in
// order; the last one repeats), and what it was asked.
struct fake_server {
  event_loop& loop;
  std::deque<std::vector<std::string>> streams;  // bodies as sent on the wire (framed)
  int connects = 0, registers = 0, map_streams = 0;
  std::vector<std::chrono::steady_clock::time_point> connect_times;
  std::function<void()> after_body;  // after each body the client was given
  std::chrono::steady_clock::time_point body_given_at;  // just before the last body was given
  bool silent = false;  // connections never open (the server is down)
};

class fake_channel final : public control_channel {
 public:
  fake_channel(fake_server& srv, control_connection::handlers h) : srv_(srv), h_(std::move(h)) {}
  ~fake_channel() override { *alive_ = false; }

  void start() override {
    ++srv_.connects;
    srv_.connect_times.push_back(std::chrono::steady_clock::now());
    if (srv_.silent) return;
    later([this] {
      open_ = true;
      h_.on_open();
    });
  }

  std::int32_t request(const h2_request& req, h2_stream_handler handler) override {
    if (!open_) return -1;
    const std::int32_t id = next_id_ += 2;
    auto hp = std::make_shared<h2_stream_handler>(std::move(handler));
    if (req.path == "/machine/register") {
      ++srv_.registers;
      later([this, hp] {
        const std::string body = R"({"MachineAuthorized":true,"Login":{"LoginName":"test"}})";
        hp->on_response(200, {});
        hp->on_data(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
        if (open_) hp->on_close(0);
      });
    } else if (req.path == "/machine/map" && json::parse(req.body).value("Stream", false)) {
      ++srv_.map_streams;
      std::vector<std::string> bodies = srv_.streams.front();
      if (srv_.streams.size() > 1) srv_.streams.pop_front();
      later([this, hp, bodies] {
        hp->on_response(200, {});
        for (const std::string& b : bodies) {
          if (!open_) return;  // the client let go
          srv_.body_given_at = std::chrono::steady_clock::now();
          hp->on_data(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
          if (srv_.after_body) srv_.after_body();
        }
      });
    } else {  // a non-streaming map request: its end is all the client reads
      later([this, hp] {
        hp->on_response(200, {});
        if (open_) hp->on_close(0);
      });
    }
    return id;
  }

  void close() override { open_ = false; }
  bool is_open() const noexcept override { return open_; }

 private:
  template <class F>
  void later(F fn) {
    srv_.loop.add_timer(1us, 0us, [alive = alive_, fn = std::move(fn)] {
      if (*alive) fn();
    });
  }

  fake_server& srv_;
  control_connection::handlers h_;
  bool open_ = false;
  std::int32_t next_id_ = -1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

class CoordinationClient : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lopower-coord-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto s = state_store::open(dir_.string());
    ASSERT_TRUE(s) << s.message();
    store_ = std::make_unique<state_store>(std::move(*s));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Ordinary reconnects after 5 ms; a refused map waits 40 ms, doubling to 160.
  coordination_config config(fake_server& srv) {
    coordination_config c;
    c.server = *control_url::parse("http://127.0.0.1:9");  // never dialled: the fake answers
    c.backoff_initial = 5ms;
    c.backoff_max = 5ms;
    c.refused_map_backoff_initial = 40ms;
    c.refused_map_backoff_max = 160ms;
    c.map_limits.max_message_bytes = 64 * 1024;
    c.map_limits.max_frame_bytes = 32 * 1024;
    c.make_channel = [&srv](control_connection::handlers h) { return std::make_unique<fake_channel>(srv, std::move(h)); };
    return c;
  }

  // Runs the loop until `done` or a generous deadline.
  static void run_until(event_loop& loop, const std::function<bool()>& done, std::chrono::milliseconds deadline = 20s) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    const auto t = loop.add_timer(1ms, 1ms, [&] {
      if (done() || std::chrono::steady_clock::now() > end) loop.stop();
    });
    loop.run();
    loop.cancel_timer(t);
  }

  std::filesystem::path dir_;
  std::unique_ptr<state_store> store_;
};

struct refusal {
  std::string degraded;
  std::chrono::milliseconds delay;
  json status;
  std::size_t peers_in_force;
  std::chrono::steady_clock::time_point at;  // just before the refused body was given
};

TEST_F(CoordinationClient, AnOversizedMapIsADegradedStateWithABackoffThatGrows) {
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  const std::string big_json = full_map(1000);  // ~200 KB of JSON: over the 64 KiB limit
  ASSERT_GT(big_json.size(), 64u * 1024);
  const std::string big = map_stream_reader::frame(big_json);
  ASSERT_LT(big.size(), 32u * 1024) << "compressed, it is under the frame limit";
  srv.streams = {{map_stream_reader::frame(full_map(3)), big},  // a good map, then one too large
                 {big},
                 {big},
                 {map_stream_reader::frame(full_map(5))}};  // the tailnet shrank
  std::size_t peers_seen = 0;
  coordination_client client(loop, config(srv), *store_,
                             {[&](const netmap& nm, const netmap_changes&) { peers_seen = nm.peer_count(); }, {}});
  std::vector<refusal> refusals;
  srv.after_body = [&] {
    if (!client.degraded().empty() && client.reconnect_delay().count() > 0 &&
        static_cast<int>(refusals.size()) < srv.map_streams)
      refusals.push_back({client.degraded(), client.reconnect_delay(), client.status_json(),
                          client.current() ? client.current()->peer_count() : 0, srv.body_given_at});
  };
  client.start();
  run_until(loop, [&] { return srv.map_streams >= 4 && client.state() == backend_state::running; });

  ASSERT_EQ(refusals.size(), 3u) << "streams " << srv.map_streams;
  const std::string why = "map response of " + std::to_string(big_json.size()) + " bytes exceeds the limit of 65536";
  for (std::size_t i = 0; i < refusals.size(); ++i) {
    const refusal& r = refusals[i];
    SCOPED_TRACE("refusal " + std::to_string(i + 1));
    EXPECT_EQ(r.degraded, why);
    EXPECT_EQ(r.status.value("degraded", ""), why);
    EXPECT_EQ(r.status.value("last_error", ""), why);
    EXPECT_EQ(r.status.value("backend_state", ""), "Starting");
    EXPECT_TRUE(r.status.contains("reconnect_in_seconds"));
    EXPECT_EQ(r.peers_in_force, 3u) << "the netmap in force is kept";
    // 40, 80, 160 ms (+-25 %): not the 5 ms of an ordinary reconnect, and
    // not reset by the register that came between.
    const auto base = 40ms * (1 << i);
    EXPECT_GE(r.delay, base * 3 / 4);
    EXPECT_LE(r.delay, base * 5 / 4);
  }
  // Each reconnect came no sooner than its refusal's wait after the body
  // that was refused (timers never fire early; the wait starts while the
  // client reads the body, after `at`).
  ASSERT_GE(srv.connect_times.size(), 4u);
  for (std::size_t i = 0; i < refusals.size(); ++i)
    EXPECT_GE(srv.connect_times[i + 1] - refusals[i].at, refusals[i].delay - 1ms);
  EXPECT_EQ(srv.registers, 4) << "one register per connection, no more";

  // The map that fits ends it.
  EXPECT_EQ(client.state(), backend_state::running);
  EXPECT_EQ(client.degraded(), "");
  EXPECT_FALSE(client.status_json().contains("degraded"));
  EXPECT_EQ(peers_seen, 5u);
}

TEST_F(CoordinationClient, AFrameOverTheLimitIsRefusedFromItsLength) {
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  // Only the length prefix is sent: the reader refuses before any body.
  srv.streams = {{le32(40000)}, {map_stream_reader::frame(full_map(2))}};
  coordination_client client(loop, config(srv), *store_, {});
  std::string degraded;
  std::chrono::milliseconds delay{0};
  srv.after_body = [&] {
    if (degraded.empty() && !client.degraded().empty()) {
      degraded = client.degraded();
      delay = client.reconnect_delay();
    }
  };
  client.start();
  run_until(loop, [&] { return client.state() == backend_state::running; });
  EXPECT_EQ(degraded, "map response of 40000 bytes (compressed) exceeds the limit of 32768");
  EXPECT_GE(delay, 30ms);
  EXPECT_EQ(client.state(), backend_state::running);
  EXPECT_EQ(client.degraded(), "");
  ASSERT_NE(client.current(), nullptr);
  EXPECT_EQ(client.current()->peer_count(), 2u);
}

TEST_F(CoordinationClient, AMapThatDoesNotDecodeIsRefusedToo) {
  // Whatever the server sent would come back the same: degraded, and the
  // long wait, not the ordinary 5 ms.
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  srv.streams = {{std::string("\x05\x00\x00\x00", 4) + "xxxxx"}};  // not zstd
  coordination_client client(loop, config(srv), *store_, {});
  client.start();
  run_until(loop, [&] { return !client.degraded().empty(); });
  EXPECT_NE(client.degraded().find("zstd"), std::string::npos) << client.degraded();
  EXPECT_GE(client.reconnect_delay(), 30ms);
}

}  // namespace
}  // namespace lopower::tailnet

namespace lopower::tailnet {
namespace {

class NetmapCache : public CoordinationClient {
 protected:
  json cache_status(const coordination_client& c) { return c.status_json()["netmap_cache"]; }
  std::size_t peers_on_disk() {
    auto text = store_->read(netmap_cache_file_name);
    EXPECT_TRUE(text) << text.message();
    return text ? json::parse(*text)["Peers"].size() : 0;
  }
};

TEST_F(NetmapCache, IsWrittenThenInForceAtTheNextStartBeforeTheServerAnswers) {
  public_key disco;
  {
    event_loop loop;
    fake_server srv{loop, {}, 0, 0, 0, {}, {}};
    coordination_config cfg = config(srv);
    cfg.netmap_cache_interval = 50ms;
    coordination_client client(loop, cfg, *store_, {});
    srv.streams = {{map_stream_reader::frame(full_map_for(client.node_public(), 3)),
                    map_stream_reader::frame(peer_added(4)), map_stream_reader::frame(peer_added(5))}};
    const public_key kept_before = client.disco_public();
    client.start();
    // The first map at once; the two deltas in one later write.
    run_until(loop, [&] { return cache_status(client)["writes"] == 2; });
    // The server took the fresh disco key the map request carried: in use
    // and kept from now on.
    EXPECT_NE(client.disco_public(), kept_before);
    disco = client.disco_public();
    EXPECT_EQ(cache_status(client)["writes"], 2);
    EXPECT_EQ(client.source(), coordination_client::netmap_source::control);
    EXPECT_EQ(client.status_json()["netmap_source"], "control");
    EXPECT_EQ(cache_status(client)["at_start"], "none");
    EXPECT_EQ(peers_on_disk(), 5u);
  }
  struct stat st{};
  ASSERT_EQ(::stat(store_->path_of(netmap_cache_file_name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Started again while the server is down: the netmap is there at once.
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  srv.silent = true;
  std::size_t peers_seen = 0;
  coordination_client client(loop, config(srv), *store_,
                             {[&](const netmap& nm, const netmap_changes&) { peers_seen = nm.peer_count(); }, {}});
  EXPECT_EQ(client.disco_public(), disco) << "the disco key is kept: peers still hold it";
  client.start();
  EXPECT_EQ(client.disco_public(), disco) << "and stays in use while the server does not answer";
  EXPECT_EQ(peers_seen, 5u);
  EXPECT_EQ(client.source(), coordination_client::netmap_source::cache);
  EXPECT_EQ(client.state(), backend_state::starting);
  const json status = client.status_json();
  EXPECT_EQ(status["netmap_source"], "cache");
  EXPECT_EQ(status["netmap_cache"]["at_start"], "loaded");
  EXPECT_TRUE(status["netmap_cache"].contains("age_seconds")) << status.dump();
  EXPECT_TRUE(status["netmap_cache"].contains("loaded_saved_at")) << status.dump();
  EXPECT_EQ(srv.connects, 1) << "and it connects as ever";
}

TEST_F(NetmapCache, TheServersFirstMapReplacesTheCachedOne) {
  {
    event_loop loop;
    fake_server srv{loop, {}, 0, 0, 0, {}, {}};
    coordination_client client(loop, config(srv), *store_, {});
    srv.streams = {{map_stream_reader::frame(full_map_for(client.node_public(), 3))}};
    client.start();
    run_until(loop, [&] { return cache_status(client)["writes"] == 1; });
  }
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  std::vector<std::size_t> seen;
  coordination_client client(loop, config(srv), *store_,
                             {[&](const netmap& nm, const netmap_changes&) { seen.push_back(nm.peer_count()); }, {}});
  srv.streams = {{map_stream_reader::frame(full_map_for(client.node_public(), 2))}};
  client.start();
  run_until(loop, [&] { return client.state() == backend_state::running && cache_status(client)["writes"] == 1; });
  EXPECT_EQ(seen, (std::vector<std::size_t>{3, 2})) << "the cached netmap, then the server's";
  EXPECT_EQ(client.source(), coordination_client::netmap_source::control);
  EXPECT_FALSE(cache_status(client).contains("age_seconds"));
  EXPECT_EQ(peers_on_disk(), 2u);
}

TEST_F(NetmapCache, ADamagedFileIsRefusedAndReplacedNeverFatal) {
  ASSERT_TRUE(store_->write(netmap_cache_file_name, R"({"Node":{"ID":1,"Key":"nodekey:12)"));
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  std::size_t calls = 0;
  coordination_client client(loop, config(srv), *store_, {[&](const netmap&, const netmap_changes&) { ++calls; }, {}});
  srv.streams = {{map_stream_reader::frame(full_map_for(client.node_public(), 2))}};
  client.start();
  EXPECT_EQ(calls, 0u);
  EXPECT_EQ(client.source(), coordination_client::netmap_source::none);
  const json c = cache_status(client);
  EXPECT_EQ(c["at_start"], "refused");
  EXPECT_EQ(c["error"].get<std::string>(), "MapResponse is not valid JSON");
  run_until(loop, [&] { return cache_status(client)["writes"] == 1; });
  EXPECT_EQ(client.state(), backend_state::running);
  EXPECT_EQ(peers_on_disk(), 2u) << "the next write replaced it";
}

TEST_F(NetmapCache, AFileOfAnotherNodeKeyIsIgnored) {
  // full_map's self node has a key of its own, not the client's.
  ASSERT_TRUE(store_->write(netmap_cache_file_name, full_map(4)));
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  srv.silent = true;
  std::size_t calls = 0;
  coordination_client client(loop, config(srv), *store_, {[&](const netmap&, const netmap_changes&) { ++calls; }, {}});
  client.start();
  EXPECT_EQ(calls, 0u);
  EXPECT_EQ(client.current(), nullptr);
  const json c = cache_status(client);
  EXPECT_EQ(c["at_start"], "ignored");
  EXPECT_NE(c["error"].get<std::string>().find("not ours"), std::string::npos) << c.dump();
}

TEST_F(NetmapCache, ALogoutRemovesIt) {
  event_loop loop;
  fake_server srv{loop, {}, 0, 0, 0, {}, {}};
  coordination_client client(loop, config(srv), *store_, {});
  srv.streams = {{map_stream_reader::frame(full_map_for(client.node_public(), 1))}};
  client.start();
  run_until(loop, [&] { return cache_status(client)["writes"] == 1; });
  ASSERT_TRUE(store_->exists(netmap_cache_file_name));
  ASSERT_TRUE(client.logout());
  EXPECT_FALSE(store_->exists(netmap_cache_file_name));
  EXPECT_EQ(client.status_json()["netmap_source"], nullptr);
}

}  // namespace
}  // namespace lopower::tailnet
