#pragma once
// Arrays the workers index on every packet (the flow and session tables'
// direct slots), in DPDK's memory rather than the C++ heap: on hugepages
// where lopowerd runs on them (a lookup among many entries is then no TLB
// miss: the heap's 4 KiB pages put each of 50 000 flows' slots on a page of
// its own), and on the NUMA node of the lcore that made them. Under
// --no-huge (tests, benchmarks by default) DPDK's memory is 4 KiB pages too.

#include <rte_common.h>
#include <rte_malloc.h>

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace lopower {

struct dpdk_free {
  void operator()(void* p) const noexcept { rte_free(p); }
};

// Elements are value-initialised (zero) and never destroyed: only types
// that need no destructor.
template <class T>
using dpdk_array = std::unique_ptr<T[], dpdk_free>;

// `n` zeroed elements of T from DPDK's heap on `socket`, cache-line
// aligned; throws (naming `what`) when DPDK's memory cannot hold them.
template <class T>
dpdk_array<T> make_dpdk_array(std::size_t n, int socket, const char* what) {
  static_assert(std::is_trivially_destructible_v<T>, "a dpdk_array frees its memory without destroying its elements");
  void* p = rte_zmalloc_socket(what, n * sizeof(T), RTE_CACHE_LINE_SIZE, socket);
  if (p == nullptr)
    throw std::runtime_error(std::string("DPDK's memory cannot hold the ") + what + " (" +
                             std::to_string(n * sizeof(T) >> 10) + " KiB): give the EAL more memory");
  dpdk_array<T> a(static_cast<T*>(p));
  std::uninitialized_value_construct_n(a.get(), n);
  return a;
}

}  // namespace lopower
