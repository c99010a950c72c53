#include "tools/loadgen/cipher_bound.h"

#include <map>

#if LOPOWER_LOADGEN_CIPHER_BOUND
#include "bench/cipher_bound.h"
#endif

namespace lopower::loadgen {

std::optional<double> cipher_bound_pps(const std::string& backend, const std::vector<std::uint16_t>& sizes) {
#if LOPOWER_LOADGEN_CIPHER_BOUND
  std::map<std::uint16_t, double> bound_of_size;
  double seconds_per_packet = 0;
  for (std::uint16_t size : sizes) {
    auto [it, fresh] = bound_of_size.try_emplace(size, 0.0);
    if (fresh) it->second = bench::cipher_bound_pps(backend, bench::sealed_length(size), 0.1);
    seconds_per_packet += 1.0 / it->second;
  }
  return static_cast<double>(sizes.size()) / seconds_per_packet;
#else
  (void)backend;
  (void)sizes;
  return std::nullopt;
#endif
}

}  // namespace lopower::loadgen
