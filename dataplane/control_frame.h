#pragma once
// A frame a worker passes up to the control thread (handshakes, disco,
// STUN) carries the classifier's verdict with it, in an mbuf dynamic field
// written by the receive stage (stage_receive.cc): the control thread reads
// it instead of classifying the frame again.

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstring>
#include <type_traits>

#include "dataplane/classifier.h"

namespace lopower {

static_assert(std::is_trivially_copyable_v<classify_result>);

// Each worker has one ring up to the control thread per class of frame, and
// the control thread drains each with a budget of its own, so a flood of
// one class cannot push another out (a DNS flood does not cost a device its
// handshake, nor forged initiations a device its DNS).
enum class up_ring : std::uint8_t {
  handshakes,  // initiations and responses worth answering (handshake_guard.h: proven)
  unproven,    // under load, those without a cookie, and cookie replies: answered with cookies only
  path,        // disco and STUN
  inner,       // lopower's own inner packets: device DNS queries, replies to its pings
};
inline constexpr std::size_t up_ring_count = 4;

// The field's offset in every mbuf. Registered on first use (with EAL up;
// registering is idempotent, every caller gets the same field); throws
// std::runtime_error when the mbuf has no dynamic room left.
int classify_result_field();

inline void store_classify_result(rte_mbuf* m, int field, const classify_result& r) noexcept {
  std::memcpy(RTE_MBUF_DYNFIELD(m, field, void*), &r, sizeof r);
}
// What the worker that received `m` classified it as.
inline classify_result stored_classify_result(const rte_mbuf* m, int field) noexcept {
  classify_result r;
  std::memcpy(&r, RTE_MBUF_DYNFIELD(m, field, const void*), sizeof r);
  return r;
}

}  // namespace lopower
