#include "dataplane/neighbour_table.h"

#include <rte_errno.h>
#include <rte_lcore.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lopower {
namespace {

// The MAC travels as the hash entry's data pointer itself: six bytes fit in
// it, so an update is one atomic store and readers never chase a pointer.
std::uintptr_t pack(const std::uint8_t* mac) {
  std::uintptr_t v = 0;
  std::memcpy(&v, mac, 6);
  return v;
}

std::atomic<unsigned> table_serial{0};

}  // namespace

neighbour_table::key neighbour_table::make_key(std::uint16_t port_id, ip_family family, const std::uint8_t* ip) {
  key k{};
  k.port_id = port_id;
  k.family = static_cast<std::uint8_t>(family);
  std::memcpy(k.ip, ip, family == ip_family::v4 ? 4 : 16);
  return k;
}

neighbour_table::neighbour_table(unsigned capacity) : capacity_(capacity) {
  const std::string name = "lopower_nbr" + std::to_string(table_serial++);
  rte_hash_parameters params{};
  params.name = name.c_str();
  params.entries = capacity;
  params.key_len = sizeof(key);
  params.socket_id = static_cast<int>(rte_socket_id());
  // Lock-free readers. A deleted key's slot is not reused until freed
  // (no_free_on_del, implied by LF): forget() frees it at once while the
  // control thread is the only reader, after a grace period once workers
  // read the table too.
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  hash_ = rte_hash_create(&params);
  if (hash_ == nullptr) throw std::runtime_error(std::string("cannot create the neighbour table: ") + rte_strerror(rte_errno));
}

neighbour_table::~neighbour_table() { rte_hash_free(hash_); }

bool neighbour_table::learn(const neighbour_note& note, std::uint64_t now_ms) {
  const key k = make_key(note.port, note.family, note.ip);
  if (mirror_.size() >= capacity_ && !contains(note.port, note.family, note.ip)) {
    auto oldest = std::min_element(mirror_.begin(), mirror_.end(),
                                   [](const auto& a, const auto& b) { return a.second.updated_ms < b.second.updated_ms; });
    forget(oldest->first);
  }
  if (rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(pack(note.mac))) != 0) return false;
  entry e{};
  e.port_id = note.port;
  e.ip.family = note.family;
  std::memcpy(e.ip.bytes.data(), note.ip, note.family == ip_family::v4 ? 4 : 16);
  std::memcpy(e.mac.addr_bytes, note.mac, 6);
  e.updated_ms = now_ms;
  mirror_[{e.port_id, static_cast<int>(e.ip.family), e.ip.bytes}] = e;
  return true;
}

bool neighbour_table::contains(std::uint16_t port_id, ip_family family, const std::uint8_t* ip) const {
  std::array<std::uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), ip, family == ip_family::v4 ? 4 : 16);
  return mirror_.contains({port_id, static_cast<int>(family), bytes});
}

void neighbour_table::forget(const mirror_key& mk) {
  const auto& [port_id, family, bytes] = mk;
  const key k = make_key(port_id, static_cast<ip_family>(family), bytes.data());
  const std::int32_t position = rte_hash_del_key(hash_, &k);
  if (position >= 0 && rcu_ == nullptr) rte_hash_free_key_with_position(hash_, position);
  if (position >= 0 && rcu_ != nullptr)
    rcu_->retire([](void* hash, std::uint64_t pos) { rte_hash_free_key_with_position(static_cast<rte_hash*>(hash), static_cast<std::int32_t>(pos)); },
                 hash_, static_cast<std::uint64_t>(position));
  mirror_.erase(mk);
}

std::size_t neighbour_table::expire(std::uint64_t now_ms, std::uint64_t max_age_ms) {
  std::vector<mirror_key> old;
  for (const auto& [k, e] : mirror_)
    if (now_ms - e.updated_ms >= max_age_ms) old.push_back(k);
  for (const mirror_key& k : old) forget(k);
  return old.size();
}

bool neighbour_table::lookup(std::uint16_t port_id, const ip_address& ip, rte_ether_addr* mac) const noexcept {
  const key k = make_key(port_id, ip.family, ip.bytes.data());
  void* data = nullptr;
  if (rte_hash_lookup_data(hash_, &k, &data) < 0) return false;
  const auto v = reinterpret_cast<std::uintptr_t>(data);
  std::memcpy(mac->addr_bytes, &v, 6);
  return true;
}

std::vector<neighbour_table::entry> neighbour_table::entries() const {
  std::vector<entry> out;
  out.reserve(mirror_.size());
  for (const auto& [k, e] : mirror_) out.push_back(e);
  return out;
}

}  // namespace lopower
