#pragma once
// Keys that are hashed and compared as raw bytes (rte_hash's flow keys, the
// port allocator's destinations, the fragment ledger's datagrams): every
// byte defined, no padding. They compare with one memcmp of the whole key,
// a few wide loads: a defaulted operator== compares member by member, and
// GCC emitted the byte arrays among them (addresses) a byte at a time, a
// load, compare and branch each (38 of them in every reply's splice_in).

#include <cstring>
#include <type_traits>

namespace lopower {

template <class Key>
  requires std::has_unique_object_representations_v<Key>
bool same_key_bytes(const Key& a, const Key& b) noexcept {
  return std::memcmp(&a, &b, sizeof(Key)) == 0;
}

}  // namespace lopower
