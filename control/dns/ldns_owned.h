#pragma once
// ldns for C++: its header, made safe to include, and its objects owned.
//
// ldns/common.h, unless stdbool.h came first, #defines bool, true and false
// (as _Bool, 1 and 0) for the rest of the translation unit, which breaks
// libstdc++ under clang and quietly turns every true into an int under gcc.
// Include ldns through this header only.

#include <stdbool.h>  // first: see above

#include <ldns/ldns.h>

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace lopower::dns {

struct ldns_free_pkt {
  void operator()(ldns_pkt* p) const noexcept { ldns_pkt_free(p); }
};
struct ldns_free_rr {
  void operator()(ldns_rr* r) const noexcept { ldns_rr_free(r); }
};
struct ldns_free_rdf {
  void operator()(ldns_rdf* r) const noexcept { ldns_rdf_deep_free(r); }
};
struct ldns_free_wire {  // what ldns_pkt2wire hands out (LDNS_FREE is free)
  void operator()(std::uint8_t* p) const noexcept { std::free(p); }
};

using ldns_pkt_ptr = std::unique_ptr<ldns_pkt, ldns_free_pkt>;
using ldns_rr_ptr = std::unique_ptr<ldns_rr, ldns_free_rr>;
using ldns_rdf_ptr = std::unique_ptr<ldns_rdf, ldns_free_rdf>;
using ldns_wire_ptr = std::unique_ptr<std::uint8_t, ldns_free_wire>;

}  // namespace lopower::dns
