// The worker's tailnet route lookup (tailnet_view::route), which every
// packet a device sends onto the tailnet goes through, on tailnets of 1,
// 1 000 and 5 000 peers: each peer's /32 and /128 (its AllowedIPs) and, as
// with accept_routes, subnet routes among them: (subnets=0) a few, one /24
// every 500 peers, at least one; (subnets=1) every peer a site router, with
// a /24 and a /64 of its own, and every 100th a /16 and a /48 besides.
//   BM_RouteLookup            the view as published (tailnet_routes: per
//                             family and prefix length, a sorted array
//                             searched by halves, longest length first)
//   BM_RouteLookupLinearScan  the view's first lookup over the same routes:
//                             every route, longest prefix first, in one
//                             scan (kept here as the baseline, same run)
// Destinations, both families, peers in random order: (dest=0) a peer's own
// address; (dest=1) an address no route holds, as a device using an exit
// node sends most of its traffic (the lookup misses, then egress); (dest=2)
// an address inside a peer's subnet (with subnets=0, the few there are).
// Prints "vs_one_peer": lookups/s over the 1-peer case's of that lookup.
//   ninja -C <build> bench/route_bench && <build>/bench/route_bench

#include <benchmark/benchmark.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/tailnet_view.h"
#include "dataplane/wg_session.h"

namespace {

using namespace lopower;

constexpr unsigned destination_count = 4096;  // a power of two

struct destination {
  bool ipv6;
  std::uint8_t bytes[16];
};

// A route as the first lookup kept it: its prefix as two masked words, one
// scan over all of them, longest first.
struct scanned_route {
  std::uint64_t masked[2]{}, mask[2]{};
  unsigned length;
  bool ipv6;
  wg_peer* peer;

  scanned_route(const ip_prefix& p, wg_peer* to)
      : length(p.length), ipv6(p.address.family == ip_family::v6), peer(to) {
    std::uint8_t mask_bytes[16]{}, masked_bytes[16]{};
    unsigned bits = p.length;
    for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
      const unsigned take = bits >= 8 ? 8 : bits;
      mask_bytes[i] = static_cast<std::uint8_t>(0xff00u >> take);
      masked_bytes[i] = static_cast<std::uint8_t>(p.address.bytes[i] & mask_bytes[i]);
      bits -= take;
    }
    std::memcpy(mask, mask_bytes, sizeof mask);
    std::memcpy(masked, masked_bytes, sizeof masked);
  }
  bool holds(bool v6, const std::uint64_t dst[2]) const noexcept {
    return v6 == ipv6 && (dst[0] & mask[0]) == masked[0] && (dst[1] & mask[1]) == masked[1];
  }
};

// A tailnet of `peers` peers: the view, the same routes as the former
// lookup kept them, and destinations.
struct tailnet_of_peers {
  std::unique_ptr<wg_peer[]> peers;
  tailnet_view view;
  std::vector<scanned_route> linear;  // longest prefixes first
  std::vector<destination> destinations;

  tailnet_of_peers(unsigned count, unsigned dest, bool site_routers) : peers(std::make_unique<wg_peer[]>(count)) {
    for (unsigned i = 0; i < count; ++i) {
      add(ip_address::v4(0x64400000u + i + 1), 32, &peers[i]);  // 100.64.0.0/10
      add(v6_of(i), 128, &peers[i]);
      if (site_routers) {
        add(subnet_v4(i), 24, &peers[i]);  // 10.x.y.0/24
        add(subnet_v6(i), 64, &peers[i]);  // fd00:0:x:y::/64
        if (i % 100 == 0) {
          add(ip_address::v4(0xac000000u | (16u + i / 100) << 16), 16, &peers[i]);  // 172.(16+).0.0/16
          ip_address wide = *ip_address::parse("fd01::");
          wide.bytes[4] = static_cast<std::uint8_t>(i / 100 >> 8);
          wide.bytes[5] = static_cast<std::uint8_t>(i / 100);
          add(wide, 48, &peers[i]);  // fd01:0:x::/48
        }
      } else if (i % 500 == 0) {
        add(subnet_v4(i), 24, &peers[i]);
      }
    }
    view.routes.finish();
    std::stable_sort(linear.begin(), linear.end(),
                     [](const scanned_route& a, const scanned_route& b) { return a.length > b.length; });
    std::mt19937 rng(1);
    for (unsigned d = 0; d < destination_count; ++d) {
      unsigned peer = rng() % count;
      if (!site_routers && dest == 2) peer -= peer % 500;  // a peer with a subnet
      const bool ipv6 = d % 2 == 1 && !(dest == 2 && !site_routers);  // subnets=0 has v4 subnets only
      ip_address a;
      if (dest == 0) {
        a = ipv6 ? v6_of(peer) : ip_address::v4(0x64400000u + peer + 1);
      } else if (dest == 1) {  // beyond every route (198.51.100.x, 2001:db8::x)
        a = ipv6 ? *ip_address::parse("2001:db8::" + std::to_string(peer % 9999 + 1))
                 : ip_address::v4(0xc6336400u + peer % 256);
      } else {  // a host inside the peer's subnet
        a = ipv6 ? subnet_v6(peer) : subnet_v4(peer);
        a.bytes[ipv6 ? 15 : 3] = static_cast<std::uint8_t>(1 + rng() % 254);
      }
      destination dst{ipv6, {}};
      std::memcpy(dst.bytes, a.bytes.data(), 16);
      destinations.push_back(dst);
    }
  }

  static ip_address v6_of(unsigned i) {
    ip_address a = *ip_address::parse("fd7a:115c:a1e0::");
    a.bytes[12] = static_cast<std::uint8_t>(i >> 24);
    a.bytes[13] = static_cast<std::uint8_t>(i >> 16);
    a.bytes[14] = static_cast<std::uint8_t>(i >> 8);
    a.bytes[15] = static_cast<std::uint8_t>(i + 1);
    return a;
  }
  static ip_address subnet_v4(unsigned i) { return ip_address::v4(0x0a000000u + (i << 8)); }
  static ip_address subnet_v6(unsigned i) {
    ip_address a = *ip_address::parse("fd00::");
    a.bytes[4] = static_cast<std::uint8_t>(i >> 8);
    a.bytes[5] = static_cast<std::uint8_t>(i);
    return a;
  }
  void add(const ip_address& a, unsigned length, wg_peer* peer) {
    const ip_prefix p{a, static_cast<std::uint8_t>(length)};
    view.routes.add(p, peer);
    linear.emplace_back(p, peer);
  }
};

// The view's first lookup, verbatim but for its route type.
wg_peer* linear_route(const std::vector<scanned_route>& routes, bool ipv6, const std::uint8_t* dst) noexcept {
  std::uint64_t words[2]{};
  std::memcpy(words, dst, ipv6 ? 16 : 4);
  for (const scanned_route& r : routes)
    if (r.holds(ipv6, words)) return r.peer;
  return nullptr;
}

// CPU time, as items/s counts it: the machine's other load stays out.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::map<std::string, double>& base_rates() {
  static std::map<std::string, double> rates;
  return rates;
}

// Lookups round-robin over the destinations; items/s = lookups/s.
template <class Lookup>
void lookups(benchmark::State& state, const char* name, Lookup lookup) {
  const auto peer_count = static_cast<unsigned>(state.range(0));
  const auto dest = static_cast<unsigned>(state.range(1));
  const tailnet_of_peers t(peer_count, dest, state.range(2) != 0);
  std::size_t i = 0, routed = 0;
  const double start = thread_cpu_seconds();
  for (auto _ : state) {
    wg_peer* peer = lookup(t, t.destinations[i]);
    benchmark::DoNotOptimize(peer);
    routed += peer != nullptr;
    i = (i + 1) & (destination_count - 1);
  }
  const double seconds = thread_cpu_seconds() - start;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["routed"] = static_cast<double>(routed) / static_cast<double>(state.iterations());
  state.counters["routes"] = static_cast<double>(t.linear.size());
  // The 1-peer case runs first (registration order): the others' ratio to it.
  const double rate = static_cast<double>(state.iterations()) / seconds;
  const std::string key = std::string(name) + "/" + std::to_string(state.range(1)) + "/" + std::to_string(state.range(2));
  if (peer_count == 1)
    base_rates()[key] = rate;
  else if (base_rates().contains(key))
    state.counters["vs_one_peer"] = rate / base_rates()[key];
}

void BM_RouteLookup(benchmark::State& state) {
  lookups(state, "view", [](const tailnet_of_peers& t, const destination& d) { return t.view.route(d.ipv6, d.bytes); });
}
void BM_RouteLookupLinearScan(benchmark::State& state) {
  lookups(state, "linear", [](const tailnet_of_peers& t, const destination& d) { return linear_route(t.linear, d.ipv6, d.bytes); });
}
BENCHMARK(BM_RouteLookup)->ArgNames({"peers", "dest", "subnets"})->ArgsProduct({{1, 1000, 5000}, {0, 1, 2}, {0, 1}});
BENCHMARK(BM_RouteLookupLinearScan)->ArgNames({"peers", "dest", "subnets"})->ArgsProduct({{1, 1000, 5000}, {0, 1, 2}, {0, 1}});

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
