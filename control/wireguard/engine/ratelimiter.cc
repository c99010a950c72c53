#include "control/wireguard/engine/ratelimiter.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "control/wireguard/engine/primitives.h"

namespace lopower::wg {

ratelimiter::ratelimiter(std::size_t max_entries) : max_entries_(std::max<std::size_t>(max_entries, 1)) {
  crypto::init();
  // Load at most one half keeps linear probes short.
  std::size_t capacity = 2;
  while (capacity < 2 * max_entries_) capacity *= 2;
  slots_.resize(capacity);
  mask_ = capacity - 1;
  crypto_shorthash_keygen(hash_key_);
}

std::size_t ratelimiter::home(std::uint64_t key, bool ipv6) const noexcept {
  std::uint8_t input[9];
  std::memcpy(input, &key, 8);
  input[8] = ipv6 ? 6 : 4;
  std::uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, input, sizeof input, hash_key_);
  std::uint64_t h;
  std::memcpy(&h, out, sizeof h);
  return static_cast<std::size_t>(h) & mask_;
}

// Linear-probing deletion without tombstones: pull later members of the
// probe run back into the hole when their home allows it.
void ratelimiter::erase(std::size_t slot) noexcept {
  std::size_t hole = slot;
  std::size_t next = slot;
  for (;;) {
    next = (next + 1) & mask_;
    if (!slots_[next].used) break;
    const std::size_t want = home(slots_[next].key, slots_[next].ipv6);
    // The entry at `next` may move to `hole` unless its home lies
    // cyclically in (hole, next].
    const bool stays = hole <= next ? (hole < want && want <= next) : (hole < want || want <= next);
    if (stays) continue;
    slots_[hole] = slots_[next];
    hole = next;
  }
  slots_[hole] = entry{};
  --count_;
}

void ratelimiter::expire(std::uint64_t now_ns) {
  last_expiry_ns_ = now_ns;
  for (std::size_t i = 0; i < slots_.size();) {
    // erase() may pull another entry into slot i: look at it again.
    if (slots_[i].used && now_ns - slots_[i].last_ns > idle_expiry_ns)
      erase(i);
    else
      ++i;
  }
}

bool ratelimiter::allow(const std::uint8_t* ip, bool ipv6, std::uint64_t now_ns) {
  if (ip == nullptr) return false;
  if (now_ns - last_expiry_ns_ >= idle_expiry_ns) expire(now_ns);

  std::uint64_t key = 0;
  std::memcpy(&key, ip, ipv6 ? 8 : 4);  // IPv6: the /64 only

  std::size_t i = home(key, ipv6);
  for (; slots_[i].used; i = (i + 1) & mask_) {
    entry& e = slots_[i];
    if (e.key != key || e.ipv6 != ipv6) continue;
    // Credit accrues with time, capped at the burst; each message costs
    // one packet's worth.
    const std::uint64_t elapsed = now_ns >= e.last_ns ? now_ns - e.last_ns : 0;
    const std::uint64_t tokens = std::min(tokens_max_ns, e.tokens + std::min(elapsed, tokens_max_ns));
    e.last_ns = now_ns;
    const bool ok = tokens >= packet_cost_ns;
    e.tokens = ok ? tokens - packet_cost_ns : tokens;
    return ok;
  }
  if (count_ >= max_entries_) return false;
  slots_[i] = entry{key, now_ns, tokens_max_ns - packet_cost_ns, true, ipv6};
  ++count_;
  return true;
}

}  // namespace lopower::wg
