#pragma once
// EAL for tests: one lcore (or the `lcores` given, for a benchmark's workers), no hugepages, no PCI, no shared files, and a
// --file-prefix of the program's name and pid, so test processes run side
// by side (and beside a lopowerd) without meeting. Unprivileged is enough.
// `hugepages` (benchmarks, on request): EAL's memory from hugepages, as in
// production; needs root and reserved hugepages.

#include <rte_eal.h>

#include <unistd.h>

#include <string>
#include <vector>

namespace lopower::test_support {

// Once per process; false when EAL refused to start.
inline bool start_eal(const char* program, unsigned memory_mb = 256, const char* lcores = "0",
                      bool hugepages = false) {
  static const bool ok = [program, memory_mb, lcores, hugepages] {
    // EAL may keep pointers into its arguments: they live as long as the process.
    static std::vector<std::string> args = {program,
                                     "-l",
                                     lcores,
                                     // --huge-unlink: files unlinked once mapped, none left in
                                     // /dev/hugepages holding pages after the run.
                                     hugepages ? "--huge-unlink" : "--no-huge",
                                     "--no-pci",
                                     "--no-shconf",
                                     "--no-telemetry",
                                     "--file-prefix=" + std::string(program) + "_" + std::to_string(getpid()),
                                     "-m",
                                     std::to_string(memory_mb),
                                     "--log-level=lib.eal:error",
                                     "--log-level=user1:error"};
    static std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0;
  }();
  return ok;
}

}  // namespace lopower::test_support
