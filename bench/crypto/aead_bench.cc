// Transport AEAD cost per packet, per backend: bursts of 32 packets of 64,
// 128, 512 and 1420 bytes of payload (1420 = WireGuard's default MTU less its
// overhead), each packet with its own key slot (4 peers' keys interleaved) and
// counter, as a worker sees them.
//   BM_EncryptDecrypt  seal the burst, then open it (one round trip; the tag
//                      check passes, so the data is back to plaintext)
//   BM_Encrypt         seal only (the data is re-sealed in place each time:
//                      the cost is the same whatever the bytes are)
//   BM_Decrypt         open only (a sealed copy is restored first, outside
//                      the timing, so every open verifies)
// items = packets, bytes = payload bytes (so bytes_per_second is goodput).
// No DPDK, no EAL.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/crypto/aead_batch.h"

namespace {

using namespace lopower::crypto;

constexpr unsigned burst_size = 32;

struct burst_fixture {
  std::vector<std::uint8_t> keys;      // 4 keys
  std::vector<std::uint8_t> buffers;   // burst_size packets of (length + tag), 64-byte aligned strides
  std::vector<std::uint8_t> sealed;    // a sealed copy of `buffers`
  std::vector<aead_op> ops;
  std::size_t stride;

  burst_fixture(aead_backend& backend, std::uint32_t length) : keys(4 * key_size), ops(burst_size) {
    std::mt19937_64 rng(length);
    for (auto& k : keys) k = static_cast<std::uint8_t>(rng());
    stride = (length + tag_size + 63) / 64 * 64;
    buffers.resize(stride * burst_size);
    for (auto& b : buffers) b = static_cast<std::uint8_t>(rng());
    for (unsigned i = 0; i < burst_size; ++i) {
      std::uint8_t* data = buffers.data() + i * stride;
      ops[i] = aead_op{data, length, data + length, keys.data() + (i % 4) * key_size, 1000 + i, false};
    }
    backend.encrypt_burst(ops.data(), burst_size);
    sealed = buffers;
  }
  bool all_ok() const {
    for (const aead_op& op : ops)
      if (!op.ok) return false;
    return true;
  }
};

std::unique_ptr<aead_backend> backend_or_skip(benchmark::State& state, const std::string& name) {
  auto b = make_backend(name);
  if (b == nullptr) state.SkipWithError((name + " is not available on this machine").c_str());
  return b;
}

void set_counters(benchmark::State& state, std::uint32_t length) {
  const auto packets = static_cast<std::int64_t>(state.iterations()) * burst_size;
  state.SetItemsProcessed(packets);
  state.SetBytesProcessed(packets * length);
  // Time per packet, and the payload rate in Gbit/s ("Gbit=x/s"; a round
  // trip counts each packet once).
  state.counters["ns/pkt"] = benchmark::Counter(static_cast<double>(packets),
                                                benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Gbit"] = benchmark::Counter(static_cast<double>(packets) * length * 8 / 1e9,
                                              benchmark::Counter::kIsRate);
}

void BM_EncryptDecrypt(benchmark::State& state, const std::string& name) {
  auto backend = backend_or_skip(state, name);
  if (backend == nullptr) return;
  const auto length = static_cast<std::uint32_t>(state.range(0));
  burst_fixture f(*backend, length);
  f.buffers = f.sealed;
  backend->decrypt_burst(f.ops.data(), burst_size);  // back to plaintext
  for (auto _ : state) {
    backend->encrypt_burst(f.ops.data(), burst_size);
    backend->decrypt_burst(f.ops.data(), burst_size);
    benchmark::DoNotOptimize(f.ops.data());
    benchmark::ClobberMemory();
  }
  if (!f.all_ok()) state.SkipWithError("a round trip failed to verify");
  set_counters(state, length);
}

void BM_Encrypt(benchmark::State& state, const std::string& name) {
  auto backend = backend_or_skip(state, name);
  if (backend == nullptr) return;
  const auto length = static_cast<std::uint32_t>(state.range(0));
  burst_fixture f(*backend, length);
  for (auto _ : state) {
    backend->encrypt_burst(f.ops.data(), burst_size);
    benchmark::DoNotOptimize(f.ops.data());
    benchmark::ClobberMemory();
  }
  if (!f.all_ok()) state.SkipWithError("encrypt refused an op");
  set_counters(state, length);
}

void BM_Decrypt(benchmark::State& state, const std::string& name) {
  auto backend = backend_or_skip(state, name);
  if (backend == nullptr) return;
  const auto length = static_cast<std::uint32_t>(state.range(0));
  burst_fixture f(*backend, length);
  bool all_ok = true;
  for (auto _ : state) {
    state.PauseTiming();
    std::memcpy(f.buffers.data(), f.sealed.data(), f.buffers.size());
    state.ResumeTiming();
    backend->decrypt_burst(f.ops.data(), burst_size);
    benchmark::DoNotOptimize(f.ops.data());
    benchmark::ClobberMemory();
    all_ok = all_ok && f.all_ok();
  }
  if (!all_ok) state.SkipWithError("an open failed to verify");
  set_counters(state, length);
}

void register_all() {
  for (const std::string& name : {std::string("ipsec-mb"), std::string("libsodium")}) {
    for (auto* fn : {&BM_EncryptDecrypt, &BM_Encrypt, &BM_Decrypt}) {
      const char* fn_name = fn == &BM_EncryptDecrypt ? "BM_EncryptDecrypt" : fn == &BM_Encrypt ? "BM_Encrypt" : "BM_Decrypt";
      benchmark::RegisterBenchmark((std::string(fn_name) + "/" + name).c_str(), fn, name)
          ->ArgName("bytes")
          ->Arg(64)
          ->Arg(128)
          ->Arg(512)
          ->Arg(1420);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const std::string& n : available_backends()) {
    auto b = make_backend(n);
    std::printf("backend %-10s %s\n", n.c_str(), b->describe().c_str());
  }
  std::printf("burst: %u packets; items = packets, bytes = payload bytes\n", burst_size);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
