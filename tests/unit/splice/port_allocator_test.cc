// The tailnet-side port allocator: no collisions toward one destination
// across many devices, exhaustion and reuse, worker slices, exclusions,
// determinism, and a long random run against a plain std::map model.
#include "dataplane/splice/port_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <stdexcept>

#include "tests/unit/splice/packets.h"

namespace lopower::splice {
namespace {

destination dest(const char* address, std::uint16_t port, std::uint8_t protocol = ipproto_tcp) {
  const ip_address a = test::addr(address);
  destination d{};
  std::memcpy(d.addr, a.bytes.data(), 16);
  d.port = port;
  d.family = a.family;
  d.protocol = protocol;
  return d;
}

port_allocator_config small(std::uint16_t first, std::uint16_t last, std::uint32_t max_flows = 1000) {
  port_allocator_config c;
  c.first_port = first;
  c.last_port = last;
  c.max_flows = max_flows;
  c.seed = 42;
  return c;
}

TEST(PortAllocator, DevicesWithTheSameSourcePortToOneServiceNeverCollide) {
  // 5,000 devices, all using source port 40000 toward the same two
  // services: every flow gets its own tailnet-side port per service.
  port_allocator_config c;
  c.max_flows = 20000;
  c.seed = 7;
  port_allocator a(c);
  const destination web = dest("100.64.0.5", 443), dns = dest("100.64.0.5", 53, ipproto_udp);
  std::set<std::uint16_t> web_ports, dns_ports;
  for (int device = 0; device < 5000; ++device) {
    for (auto [d, seen] : {std::pair{web, &web_ports}, std::pair{dns, &dns_ports}}) {
      const port_allocation p = a.allocate(d);
      ASSERT_EQ(p.status, allocation_status::ok) << device;
      EXPECT_GE(p.port, 1024);
      EXPECT_TRUE(seen->insert(p.port).second) << "port " << p.port << " handed out twice toward one destination";
    }
  }
  EXPECT_EQ(a.used(), 10000u);
  EXPECT_EQ(a.used(web), 5000u);
  // Below half the range in use, probing stays cheap (1 / (1 - load)).
  EXPECT_LT(static_cast<double>(a.probes()) / a.used(), 2.0);
}

TEST(PortAllocator, DestinationsDifferingInAnyFieldAreIndependent) {
  port_allocator a(small(2000, 2000));  // one port: each destination can have it once
  const destination base = dest("100.64.0.5", 443);
  destination other_port = base, other_proto = base, other_addr = dest("100.64.0.6", 443);
  other_port.port = 444;
  other_proto.protocol = ipproto_udp;
  const destination v6 = dest("fd7a:115c:a1e0::5", 443);
  for (const destination& d : {base, other_port, other_proto, other_addr, v6}) {
    const port_allocation p = a.allocate(d);
    EXPECT_EQ(p.status, allocation_status::ok);
    EXPECT_EQ(p.port, 2000);
  }
  EXPECT_EQ(a.allocate(base).status, allocation_status::exhausted);
}

TEST(PortAllocator, ExhaustionThenReleaseAndReuse) {
  port_allocator a(small(2000, 2099));
  const destination d = dest("100.64.0.5", 443);
  std::set<std::uint16_t> ports;
  for (int i = 0; i < 100; ++i) {
    const port_allocation p = a.allocate(d);
    ASSERT_EQ(p.status, allocation_status::ok) << i;
    EXPECT_GE(p.port, 2000);
    EXPECT_LE(p.port, 2099);
    ports.insert(p.port);
  }
  EXPECT_EQ(ports.size(), 100u);
  const std::uint64_t probes = a.probes();
  EXPECT_EQ(a.allocate(d).status, allocation_status::exhausted);
  EXPECT_EQ(a.probes(), probes) << "a full destination is refused without probing";
  // Another destination still has the whole range.
  EXPECT_EQ(a.allocate(dest("100.64.0.6", 443)).status, allocation_status::ok);
  // A released port is the only free one, so it comes back.
  ASSERT_TRUE(a.release(d, 2042));
  EXPECT_FALSE(a.in_use(d, 2042));
  const port_allocation again = a.allocate(d);
  ASSERT_EQ(again.status, allocation_status::ok);
  EXPECT_EQ(again.port, 2042);
  EXPECT_TRUE(a.in_use(d, 2042));
}

TEST(PortAllocator, AReleasedPortIsNotReusedTowardTheSameDestinationAtOnce) {
  // The cursor moves on: the next connection to the same service does not
  // land on the 4-tuple the peer may hold in TIME-WAIT.
  port_allocator a(small(1024, 65535));
  const destination d = dest("100.64.0.5", 443);
  const port_allocation first = a.allocate(d);
  ASSERT_TRUE(a.release(d, first.port));
  for (int i = 0; i < 1000; ++i) {
    const port_allocation p = a.allocate(d);
    ASSERT_EQ(p.status, allocation_status::ok);
    EXPECT_NE(p.port, first.port) << i;
    ASSERT_TRUE(a.release(d, p.port));
  }
  EXPECT_EQ(a.used(), 0u);
}

TEST(PortAllocator, MaxFlowsIsAHardLimit) {
  port_allocator a(small(1024, 65535, 10));
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(a.allocate(dest("100.64.0.5", static_cast<std::uint16_t>(i + 1))).status, allocation_status::ok);
  EXPECT_EQ(a.allocate(dest("100.64.0.5", 99)).status, allocation_status::full);
  EXPECT_EQ(a.allocate(dest("100.64.0.5", 1)).status, allocation_status::full);
  const destination one = dest("100.64.0.5", 3);
  std::uint16_t held = 0;
  for (std::uint32_t p = 1024; p <= 65535; ++p)
    if (a.in_use(one, static_cast<std::uint16_t>(p))) held = static_cast<std::uint16_t>(p);
  ASSERT_NE(held, 0);
  ASSERT_TRUE(a.release(one, held));
  EXPECT_EQ(a.allocate(dest("100.64.0.5", 99)).status, allocation_status::ok);
}

TEST(PortAllocator, ReleaseOnlyWhatIsHeld) {
  port_allocator a(small(3000, 3009));
  const destination d = dest("100.64.0.5", 443);
  const port_allocation p = a.allocate(d);
  ASSERT_EQ(p.status, allocation_status::ok);
  EXPECT_FALSE(a.release(dest("100.64.0.6", 443), p.port)) << "another destination";
  EXPECT_FALSE(a.release(d, static_cast<std::uint16_t>(p.port == 3000 ? 3001 : 3000))) << "a port not held";
  EXPECT_FALSE(a.release(d, 80)) << "outside the slice";
  EXPECT_TRUE(a.release(d, p.port));
  EXPECT_FALSE(a.release(d, p.port)) << "twice";
  EXPECT_EQ(a.used(), 0u);
  EXPECT_EQ(a.used(d), 0u);
}

TEST(PortAllocator, WorkerSlicesAreDisjointAndCoverTheRange) {
  for (std::uint16_t count : {1, 2, 3, 7, 8, 64}) {
    std::uint32_t next = 1024;
    for (std::uint16_t w = 0; w < count; ++w) {
      port_allocator_config c = small(1024, 65535, 4);
      c.worker_index = w;
      c.worker_count = count;
      const port_allocator a(c);
      EXPECT_EQ(a.slice_first(), next) << count << "/" << w;
      EXPECT_LE(a.slice_last() - a.slice_first() + 1u, 64512u / count + 1) << "even slices";
      EXPECT_EQ(port_allocator::slice_owner(1024, 65535, count, a.slice_first()), w);
      EXPECT_EQ(port_allocator::slice_owner(1024, 65535, count, a.slice_last()), w);
      next = a.slice_last() + 1u;
    }
    EXPECT_EQ(next, 65536u) << count;
    EXPECT_EQ(port_allocator::slice_owner(1024, 65535, count, 1023), count);
  }
}

TEST(PortAllocator, WorkersNeverHandOutTheSamePort) {
  std::set<std::uint16_t> all;
  const destination d = dest("100.64.0.5", 443);
  for (std::uint16_t w = 0; w < 4; ++w) {
    port_allocator_config c = small(5000, 5099, 200);
    c.worker_index = w;
    c.worker_count = 4;
    port_allocator a(c);
    for (;;) {
      const port_allocation p = a.allocate(d);
      if (p.status != allocation_status::ok) break;
      EXPECT_EQ(port_allocator::slice_owner(5000, 5099, 4, p.port), w);
      EXPECT_TRUE(all.insert(p.port).second) << p.port;
    }
  }
  EXPECT_EQ(all.size(), 100u);
}

TEST(PortAllocator, ExcludedPortsAreNeverHandedOut) {
  port_allocator_config c = small(4000, 4009);
  c.excluded = {4003, 4007, 4003, 9999};
  port_allocator a(c);
  EXPECT_EQ(a.ports_per_destination(), 8u);
  const destination d = dest("100.64.0.5", 443);
  std::set<std::uint16_t> got;
  for (int i = 0; i < 8; ++i) {
    const port_allocation p = a.allocate(d);
    ASSERT_EQ(p.status, allocation_status::ok);
    got.insert(p.port);
  }
  EXPECT_EQ(got.count(4003) + got.count(4007), 0u);
  EXPECT_EQ(a.allocate(d).status, allocation_status::exhausted);
}

TEST(PortAllocator, DeterministicGivenTheSeed) {
  const auto run = [](std::uint64_t seed) {
    port_allocator_config c;
    c.seed = seed;
    c.max_flows = 100;
    port_allocator a(c);
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 50; ++i) ports.push_back(a.allocate(dest("100.64.0.5", static_cast<std::uint16_t>(i % 5))).port);
    return ports;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

TEST(PortAllocator, ConfigurationErrorsAreRefused) {
  const auto make = [](port_allocator_config c) { port_allocator a(c); };
  port_allocator_config c = small(2000, 1999);
  EXPECT_THROW(make(c), std::invalid_argument);
  c = small(1024, 65535);
  c.worker_index = 2;
  c.worker_count = 2;
  EXPECT_THROW(make(c), std::invalid_argument);
  c.worker_count = 0;
  c.worker_index = 0;
  EXPECT_THROW(make(c), std::invalid_argument);
  c = small(1024, 1026);
  c.worker_count = 4;  // fewer ports than workers
  EXPECT_THROW(make(c), std::invalid_argument);
  c = small(1024, 65535, 0);
  EXPECT_THROW(make(c), std::invalid_argument);
  c = small(7, 8);
  c.excluded = {7, 8};
  EXPECT_THROW(make(c), std::invalid_argument);
  EXPECT_NO_THROW(make(small(0, 65535)));
}

TEST(PortAllocator, DestinationOfATailnetSideKey) {
  const std::uint8_t lopower[4] = {100, 64, 0, 1}, peer[4] = {100, 64, 0, 5};
  const flow_key tcp = make_flow_key(ip_family::v4, ipproto_tcp, lopower, 5000, peer, 443);
  EXPECT_EQ(destination_of(tcp), dest("100.64.0.5", 443));
  const flow_key echo = make_flow_key(ip_family::v4, ipproto_icmp, lopower, 77, peer, 77);
  EXPECT_EQ(destination_of(echo), dest("100.64.0.5", 0, ipproto_icmp));
}

// Long random runs of allocations and releases over a few destinations,
// checked against a std::map of what should be held: this is what
// exercises the tables' backward-shift deletion, with small tables (16
// slots for 8 flows) so that probe runs wrap round the end often.
void random_run(std::uint16_t ports, std::uint32_t max_flows, std::size_t destinations, int steps, int check_every) {
  port_allocator a(small(10000, static_cast<std::uint16_t>(10000 + ports - 1), max_flows));
  std::mt19937 rng(9);
  std::vector<destination> dests;
  for (std::size_t i = 0; i < destinations; ++i)
    dests.push_back(dest(i % 2 ? "fd7a:115c:a1e0::5" : "100.64.0.5", static_cast<std::uint16_t>(i)));
  std::map<int, std::set<std::uint16_t>> model;
  std::size_t total = 0;
  for (int step = 0; step < steps; ++step) {
    const int di = static_cast<int>(rng() % dests.size());
    const destination& d = dests[static_cast<std::size_t>(di)];
    auto& held = model[di];
    if (rng() % 100 < 55) {
      const port_allocation p = a.allocate(d);
      if (total == max_flows) {
        ASSERT_EQ(p.status, allocation_status::full);
      } else if (held.size() == ports) {
        ASSERT_EQ(p.status, allocation_status::exhausted);
      } else {
        ASSERT_EQ(p.status, allocation_status::ok) << step;
        ASSERT_TRUE(held.insert(p.port).second) << "duplicate " << p.port << " at step " << step;
        ++total;
      }
    } else if (!held.empty()) {
      auto it = held.begin();
      std::advance(it, static_cast<long>(rng() % held.size()));
      ASSERT_TRUE(a.release(d, *it)) << step;
      held.erase(it);
      --total;
    }
    if (step % check_every == 0) {
      ASSERT_EQ(a.used(), total);
      for (std::size_t i = 0; i < dests.size(); ++i) {
        ASSERT_EQ(a.used(dests[i]), model[static_cast<int>(i)].size());
        for (std::uint16_t port : model[static_cast<int>(i)]) ASSERT_TRUE(a.in_use(dests[i], port));
      }
    }
  }
}

TEST(PortAllocator, RandomRunAgreesWithAModel) { random_run(200, 600, 6, 200000, 997); }
TEST(PortAllocator, RandomRunWithTinyTablesAgreesWithAModel) { random_run(4, 8, 5, 100000, 1); }

}  // namespace
}  // namespace lopower::splice
