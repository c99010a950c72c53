#pragma once
// main() of the benchmarks that run workers: EAL as the unit tests start it
// (tests/support/eal.h: one lcore, no hugepages, a private file prefix),
// libsodium, then Google Benchmark.
//
// LOPOWER_BENCH_HUGEPAGES=1 runs the EAL on hugepages instead (as lopowerd
// runs in production): reserve them first, e.g.
//   echo 512 > /proc/sys/vm/nr_hugepages   (and mount hugetlbfs on /dev/hugepages)
// The default stays --no-huge, so `tools/test bench` runs on a fresh machine.

#include <benchmark/benchmark.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "tests/support/eal.h"

namespace lopower::bench {

inline int run_benchmarks(int argc, char** argv, const char* program, unsigned memory_mb, const char* lcores = "0") {
  const char* huge = std::getenv("LOPOWER_BENCH_HUGEPAGES");
  const bool hugepages = huge != nullptr && std::strcmp(huge, "1") == 0;
  if (!test_support::start_eal(program, memory_mb, lcores, hugepages)) return 1;
  if (sodium_init() < 0) return 1;
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("eal_memory", hugepages ? "hugepages" : "4 KiB pages (--no-huge)");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace lopower::bench
