#pragma once
// main() of the benchmarks that run workers: EAL as the unit tests start it
// (tests/support/eal.h: one lcore, no hugepages, a private file prefix),
// libsodium, then Google Benchmark.

#include <benchmark/benchmark.h>
#include <sodium.h>

#include "tests/support/eal.h"

namespace lopower::bench {

inline int run_benchmarks(int argc, char** argv, const char* program, unsigned memory_mb, const char* lcores = "0") {
  if (!test_support::start_eal(program, memory_mb, lcores)) return 1;
  if (sodium_init() < 0) return 1;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace lopower::bench
