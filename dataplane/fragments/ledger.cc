#include "dataplane/fragments/ledger.h"

#include <bit>
#include <cstring>

namespace lopower::fragments {
namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// Slots for `n` entries at a load of at most one half.
std::size_t slots_for(std::uint32_t n) { return std::bit_ceil(std::size_t{n < 1 ? 1u : n} * 2); }

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Linear probing's deletion without tombstones: the entries after `slot`
// that may move back (their home is not between the hole and them) fill it.
template <class T, class Home>
void erase_at(std::vector<T>& slots, std::size_t hole, Home home_of) {
  const std::size_t mask = slots.size() - 1;
  for (std::size_t j = (hole + 1) & mask; slots[j].owner != nullptr; j = (j + 1) & mask) {
    const std::size_t home = home_of(slots[j]);
    const bool stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
    if (stays) continue;
    slots[hole] = slots[j];
    hole = j;
  }
  slots[hole] = T{};
}

}  // namespace

ledger::ledger(const ledger_limits& limits, std::uint64_t seed)
    : limits_(limits), seed_(mix(seed)), entries_(slots_for(limits.max_datagrams)), owners_(slots_for(limits.max_datagrams)) {}

std::size_t ledger::home(const datagram_key& key) const noexcept {
  std::uint64_t words[sizeof key / 8];
  std::memcpy(words, &key, sizeof key);
  std::uint64_t h = seed_;
  for (std::uint64_t w : words) h = mix(h ^ w);
  return static_cast<std::size_t>(h) & (entries_.size() - 1);
}

std::size_t ledger::home(const void* owner) const noexcept {
  return static_cast<std::size_t>(mix(seed_ ^ reinterpret_cast<std::uintptr_t>(owner))) & (owners_.size() - 1);
}

std::size_t ledger::find(const datagram_key& key) const noexcept {
  const std::size_t mask = entries_.size() - 1;
  for (std::size_t i = home(key); entries_[i].owner != nullptr; i = (i + 1) & mask)
    if (entries_[i].key == key) return i;
  return npos;
}

ledger::owner_count* ledger::count_of(const void* owner) noexcept {
  const std::size_t mask = owners_.size() - 1;
  for (std::size_t i = home(owner); owners_[i].owner != nullptr; i = (i + 1) & mask)
    if (owners_[i].owner == owner) return &owners_[i];
  return nullptr;
}

std::uint32_t ledger::held_by(const void* owner) const noexcept {
  const owner_count* c = const_cast<ledger*>(this)->count_of(owner);
  return c == nullptr ? 0 : c->count;
}

void ledger::add_owner(const void* owner) noexcept {
  if (owner_count* c = count_of(owner)) {
    ++c->count;
    return;
  }
  const std::size_t mask = owners_.size() - 1;
  std::size_t i = home(owner);
  while (owners_[i].owner != nullptr) i = (i + 1) & mask;
  owners_[i] = {owner, 1};
}

void ledger::remove_owner(const void* owner) noexcept {
  owner_count* c = count_of(owner);
  if (c == nullptr || --c->count != 0) return;
  erase_at(owners_, static_cast<std::size_t>(c - owners_.data()), [this](const owner_count& o) { return home(o.owner); });
}

std::size_t ledger::start(const fragment_view& f, const void* owner, std::uint8_t port, std::uint64_t now) noexcept {
  const std::size_t mask = entries_.size() - 1;
  std::size_t i = home(f.key);
  while (entries_[i].owner != nullptr) i = (i + 1) & mask;
  entry& e = entries_[i];
  e = entry{};
  e.key = f.key;
  e.owner = owner;
  e.start = now;
  e.port = port;
  add_owner(owner);
  ++size_;
  return i;
}

void ledger::erase(std::size_t slot) noexcept {
  remove_owner(entries_[slot].owner);
  --size_;
  erase_at(entries_, slot, [this](const entry& e) { return home(e.key); });
}

bool ledger::forget(const datagram_key& key) noexcept {
  const std::size_t slot = find(key);
  if (slot == npos) return false;
  erase(slot);
  return true;
}

// Where the fragment goes among the pieces held: Linux's order of checks
// (ip_frag_queue): the end first, then duplicates and overlaps.
admission ledger::place(entry& e, const fragment_view& f) noexcept {
  if (e.gave_up) return admission::given_up;
  const std::uint32_t begin = f.offset, end = begin + f.length;
  bool contradicts;
  if (!f.more) {  // the last: the datagram ends here, and nothing held goes beyond
    contradicts = e.total != 0 && end != e.total;
    for (unsigned i = 0; i < e.pieces; ++i) contradicts |= e.pieces_held[i].end > end;
  } else {
    contradicts = e.total != 0 && end > e.total;
  }
  for (unsigned i = 0; i < e.pieces && !contradicts; ++i) {
    const range r = e.pieces_held[i];
    if (r.begin <= begin && end <= r.end) return admission::duplicate;
    contradicts = begin < r.end && r.begin < end;
  }
  const bool first = begin == 0, last = !f.more;
  if (!first && !last && e.middles == max_fragments - 2) contradicts = true;  // no slot left in the table
  if (contradicts) {
    e.gave_up = true;
    return admission::given_up;
  }
  e.pieces_held[e.pieces++] = {static_cast<std::uint16_t>(begin), static_cast<std::uint16_t>(end)};
  if (first) e.has_first = true;
  else if (!last) ++e.middles;
  if (last) e.total = end;
  e.held_bytes += f.length;
  // Disjoint pieces inside [0, total) that add up to it tile it.
  return e.total != 0 && e.held_bytes == e.total ? admission::complete : admission::held;
}

admission_result ledger::admit(const fragment_view& f, const void* owner, std::uint8_t port, std::uint64_t now,
                               std::uint32_t share) noexcept {
  admission_result r;
  std::size_t slot = find(f.key);
  if (slot != npos && timed_out(entries_[slot], now)) {
    r.timed_out_port = entries_[slot].port;
    r.timed_out_fragments = entries_[slot].pieces;
    erase(slot);
    slot = npos;
  }
  if (slot == npos) {
    if (size_ >= limits_.max_datagrams) {
      r.verdict = admission::full;
      return r;
    }
    if (held_by(owner) >= (share != 0 ? share : limits_.per_owner)) {
      r.verdict = admission::owner_limit;
      return r;
    }
    slot = start(f, owner, port, now);
  }
  r.verdict = place(entries_[slot], f);
  if (r.verdict == admission::complete) erase(slot);  // the table hands it over now
  return r;
}

}  // namespace lopower::fragments
