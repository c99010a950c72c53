// The netmap at tailnet scale: a MapResponse with 5,000 peers, each a copy of
// a peer headscale really sent (tests/unit/netmap/fixtures, the full map)
// with its ID, keys, addresses, endpoints and names varied.
//   BM_Parse                 JSON text -> map_response
//   BM_ApplyFull             a parsed full map into an empty netmap (moved in)
//   BM_ParseApply            both, as a new stream's first response costs
//   BM_StreamDecodeParse     one zstd frame through map_stream_reader, parsed
//   BM_RefreshSameFull       the same full map again into a netmap holding it
//                            (the diff against 5,000 peers finds nothing)
//   BM_PatchOne              one PeersChangedPatch (endpoints) on 5,000 peers
//   BM_ChangedOne            one PeersChanged (a non-patchable change)
//   BM_JoinLeaveOne          one peer joining, then leaving
// Counters (BM_Parse, BM_ApplyFull, BM_ParseApply): json_bytes;
// peak_heap_bytes, the most heap in use above the starting point during one
// parse (+ apply); kept_heap_bytes, what the result still holds afterwards;
// maxrss_kb of the process.

#include <benchmark/benchmark.h>

#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "control/tailnet/netmap/map_response.h"
#include "control/tailnet/netmap/map_stream_reader.h"
#include "control/tailnet/netmap/netmap.h"

// ---------------------------------------------------------------------------
// Heap accounting: every operator new/delete in the process.

namespace {
std::atomic<std::int64_t> heap_in_use{0};
std::atomic<std::int64_t> heap_peak{0};

void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  const std::int64_t now = heap_in_use.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p))) +
                           static_cast<std::int64_t>(malloc_usable_size(p));
  std::int64_t peak = heap_peak.load(std::memory_order_relaxed);
  while (now > peak && !heap_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}
void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  heap_in_use.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)));
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace {

namespace tn = lopower::tailnet;
using json = nlohmann::json;

constexpr unsigned peer_count = 5000;

std::string hex_key(const char* prefix, unsigned kind, unsigned i) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%s%02x%06x%056x", prefix, kind, i, 0x5eedu);
  return buf;
}

// The recorded full map with its peers replaced by 5,000 variations of the
// first one.
std::string make_full_map() {
  std::ifstream f(std::string(LOPOWER_SOURCE_DIR) + "/tests/unit/netmap/fixtures/charlie_00.json");
  std::stringstream ss;
  ss << f.rdbuf();
  json resp = json::parse(ss.str());
  const json templ = resp["Peers"][0];
  json peers = json::array();
  for (unsigned i = 1; i <= peer_count; ++i) {
    json p = templ;
    const std::string n = std::to_string(i);
    p["ID"] = i;
    p["StableID"] = "n" + n;
    p["Name"] = "peer" + n + ".tailnet.example.";
    p["Key"] = hex_key("nodekey:", 1, i);
    p["DiscoKey"] = hex_key("discokey:", 2, i);
    p["Machine"] = hex_key("mkey:", 3, i);
    const std::string v4 = "100.64." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    char v6[64];
    std::snprintf(v6, sizeof v6, "fd7a:115c:a1e0::%x", i);
    p["Addresses"] = {v4 + "/32", std::string(v6) + "/128"};
    p["AllowedIPs"] = p["Addresses"];
    p["Endpoints"] = {"192.0.2." + std::to_string(i % 250 + 1) + ":" + std::to_string(10000 + i),
                      "198.18." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":41641"};
    p["Hostinfo"]["Hostname"] = "peer" + n;
    peers.push_back(std::move(p));
  }
  resp["Peers"] = std::move(peers);
  return resp.dump();
}

const std::string& full_map() {
  static const std::string text = make_full_map();
  return text;
}

tn::map_response parsed_full() {
  auto r = tn::parse_map_response(full_map());
  if (!r) {
    std::fprintf(stderr, "netmap_bench: %s\n", r.error.c_str());
    std::abort();
  }
  return std::move(*r.response);
}

long maxrss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

void memory_counters(benchmark::State& state, std::int64_t peak, std::int64_t kept) {
  state.counters["json_bytes"] = static_cast<double>(full_map().size());
  state.counters["peers"] = peer_count;
  state.counters["peak_heap_bytes"] = static_cast<double>(peak);
  state.counters["kept_heap_bytes"] = static_cast<double>(kept);
  state.counters["kept_bytes_per_peer"] = static_cast<double>(kept) / peer_count;
  state.counters["maxrss_kb"] = static_cast<double>(maxrss_kb());
}

void BM_Parse(benchmark::State& state) {
  const std::string& text = full_map();
  for (auto _ : state) {
    auto r = tn::parse_map_response(text);
    benchmark::DoNotOptimize(r.response->peers.data());
  }
  // One more, measured.
  const std::int64_t base = heap_in_use.load();
  heap_peak.store(base);
  auto r = tn::parse_map_response(text);
  memory_counters(state, heap_peak.load() - base, heap_in_use.load() - base);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * peer_count));
}
BENCHMARK(BM_Parse)->Unit(benchmark::kMillisecond);

void BM_ApplyFull(benchmark::State& state) {
  const tn::map_response base_resp = parsed_full();
  for (auto _ : state) {
    state.PauseTiming();
    tn::map_response copy = base_resp;
    auto nm = std::make_unique<tn::netmap>();
    state.ResumeTiming();
    auto ch = nm->apply(std::move(copy));
    benchmark::DoNotOptimize(ch.added.data());
    state.PauseTiming();
    nm.reset();
    state.ResumeTiming();
  }
  tn::map_response copy = base_resp;
  const std::int64_t base = heap_in_use.load();
  heap_peak.store(base);
  tn::netmap nm;
  nm.apply(std::move(copy));
  memory_counters(state, heap_peak.load() - base, heap_in_use.load() - base);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * peer_count));
}
BENCHMARK(BM_ApplyFull)->Unit(benchmark::kMillisecond);

void BM_ParseApply(benchmark::State& state) {
  const std::string& text = full_map();
  for (auto _ : state) {
    tn::netmap nm;
    auto r = tn::parse_map_response(text);
    auto ch = nm.apply(std::move(*r.response));
    benchmark::DoNotOptimize(ch.added.data());
  }
  const std::int64_t base = heap_in_use.load();
  heap_peak.store(base);
  {
    tn::netmap nm;
    {
      auto r = tn::parse_map_response(text);
      nm.apply(std::move(*r.response));
    }
    memory_counters(state, heap_peak.load() - base, heap_in_use.load() - base);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * peer_count));
}
BENCHMARK(BM_ParseApply)->Unit(benchmark::kMillisecond);

void BM_StreamDecodeParse(benchmark::State& state) {
  const std::string frame = tn::map_stream_reader::frame(full_map(), true, 1);
  for (auto _ : state) {
    tn::map_stream_reader reader;
    reader.feed(frame);
    auto r = reader.next_response();
    benchmark::DoNotOptimize(r->peers.data());
  }
  state.counters["zstd_frame_bytes"] = static_cast<double>(frame.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * peer_count));
}
BENCHMARK(BM_StreamDecodeParse)->Unit(benchmark::kMillisecond);

tn::netmap full_netmap() {
  tn::netmap nm;
  nm.apply(parsed_full());
  return nm;
}

void BM_RefreshSameFull(benchmark::State& state) {
  const tn::map_response base_resp = parsed_full();
  tn::netmap nm = full_netmap();
  for (auto _ : state) {
    state.PauseTiming();
    tn::map_response copy = base_resp;
    state.ResumeTiming();
    auto ch = nm.apply(std::move(copy));
    if (ch.peers_changed()) state.SkipWithError("a refresh changed peers");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * peer_count));
}
BENCHMARK(BM_RefreshSameFull)->Unit(benchmark::kMillisecond);

tn::map_response delta(const std::string& text) {
  auto r = tn::parse_map_response(text);
  if (!r) std::abort();
  return std::move(*r.response);
}

void BM_PatchOne(benchmark::State& state) {
  tn::netmap nm = full_netmap();
  const tn::map_response a = delta(R"({"PeersChangedPatch":[{"NodeID":2500,"Endpoints":["192.0.2.9:1"]}]})");
  const tn::map_response b = delta(R"({"PeersChangedPatch":[{"NodeID":2500,"Endpoints":["192.0.2.9:2"]}]})");
  bool flip = false;
  for (auto _ : state) {
    auto ch = nm.apply((flip = !flip) ? a : b);
    benchmark::DoNotOptimize(ch.changed.data());
  }
}
BENCHMARK(BM_PatchOne)->Unit(benchmark::kMicrosecond);

void BM_ChangedOne(benchmark::State& state) {
  tn::netmap nm = full_netmap();
  json p = json::parse(full_map())["Peers"][2499];
  p["Tags"] = {"tag:a"};
  const tn::map_response a = delta(json{{"PeersChanged", {p}}}.dump());
  p["Tags"] = {"tag:b"};
  const tn::map_response b = delta(json{{"PeersChanged", {p}}}.dump());
  bool flip = false;
  for (auto _ : state) {
    auto ch = nm.apply((flip = !flip) ? a : b);
    benchmark::DoNotOptimize(ch.changed.data());
  }
}
BENCHMARK(BM_ChangedOne)->Unit(benchmark::kMicrosecond);

void BM_JoinLeaveOne(benchmark::State& state) {
  tn::netmap nm = full_netmap();
  json p = json::parse(full_map())["Peers"][0];
  p["ID"] = 1'000'000;  // a fresh ID, at the end
  const tn::map_response join = delta(json{{"PeersChanged", {p}}}.dump());
  const tn::map_response leave = delta(R"({"PeersRemoved":[1000000]})");
  for (auto _ : state) {
    auto ch1 = nm.apply(join);
    auto ch2 = nm.apply(leave);
    benchmark::DoNotOptimize(ch1.added.data());
    benchmark::DoNotOptimize(ch2.removed.data());
  }
  state.SetLabel("one join + one leave per iteration");
}
BENCHMARK(BM_JoinLeaveOne)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
