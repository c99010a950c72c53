#pragma once
// The cipher bound of the run (bench/cipher_bound.h): packets per second
// one core opens and seals at the run's sizes with the run's AEAD backend,
// measured in this process before the traffic, so that a rate the loadgen
// reports can be stated as a share of it on the same machine at the same
// moment. For a size mix, the bound of the mix (time per packet averaged).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lopower::loadgen {

// nullopt when the loadgen was built without Google Benchmark (-Dbench=false).
std::optional<double> cipher_bound_pps(const std::string& backend, const std::vector<std::uint16_t>& sizes);

}  // namespace lopower::loadgen
