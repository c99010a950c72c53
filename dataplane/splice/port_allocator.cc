#include "dataplane/splice/port_allocator.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace lopower::splice {
namespace {

// The murmur3 64-bit finaliser: a bijection in which every input bit
// reaches every output bit.
std::uint64_t mix64(std::uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

std::uint32_t power_of_two_at_least(std::uint64_t n) {
  std::uint32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Hash-table salts: the offset/home hash and RFC 6056's second hash (the
// counter bucket) must be independent.
constexpr std::uint64_t salt_offset = 0, salt_bucket = 0x5bd1e9955bd1e995ull;

// Backward-shift deletion from a linear-probing table (Knuth, TAOCP 6.4,
// Algorithm R): each later entry of the run moves into the hole unless its
// home slot lies cyclically in (hole, its slot].
template <class Slot, class Home>
void erase_slot(std::vector<Slot>& table, std::uint32_t hole, Home home) {
  const auto mask = static_cast<std::uint32_t>(table.size() - 1);
  for (std::uint32_t j = (hole + 1) & mask; table[j].record_plus_one != 0; j = (j + 1) & mask) {
    const std::uint32_t k = home(table[j]);
    const bool stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (!stays) {
      table[hole] = table[j];
      hole = j;
    }
  }
  table[hole] = Slot{};
}

}  // namespace

destination destination_of(const flow_key& k) noexcept {
  destination d{};
  std::memcpy(d.addr, k.dst, sizeof d.addr);
  const bool icmp = k.protocol == ipproto_icmp || k.protocol == ipproto_icmpv6;
  d.port = icmp ? 0 : k.dst_port;
  d.family = k.family;
  d.protocol = k.protocol;
  return d;
}

std::uint16_t port_allocator::slice_start(std::uint16_t first, std::uint16_t last, std::uint16_t count,
                                          std::uint16_t index) noexcept {
  const std::uint64_t range = std::uint64_t{last} - first + 1;
  return static_cast<std::uint16_t>(first + range * index / count);
}

std::uint16_t port_allocator::slice_owner(std::uint16_t first, std::uint16_t last, std::uint16_t count,
                                          std::uint16_t port) noexcept {
  if (port < first || port > last || count == 0) return count;
  const std::uint64_t range = std::uint64_t{last} - first + 1;
  // The last index whose start, first + floor(range * i / count), is <= port.
  return static_cast<std::uint16_t>(((std::uint64_t{port} - first + 1) * count - 1) / range);
}

port_allocator::port_allocator(const port_allocator_config& c) {
  const auto refuse = [](const std::string& why) { throw std::invalid_argument("port allocator: " + why); };
  if (c.first_port > c.last_port) refuse("first_port above last_port");
  if (c.worker_count == 0 || c.worker_index >= c.worker_count) refuse("worker_index not below worker_count");
  if (std::uint32_t{c.last_port} - c.first_port + 1 < c.worker_count) refuse("fewer ports than workers");
  if (c.max_flows == 0 || c.max_flows > (1u << 28)) refuse("max_flows not in 1..2^28");
  slice_first_ = slice_start(c.first_port, c.last_port, c.worker_count, c.worker_index);
  const std::uint32_t end = c.worker_index + 1u == c.worker_count
                                ? std::uint32_t{c.last_port} + 1
                                : slice_start(c.first_port, c.last_port, c.worker_count,
                                              static_cast<std::uint16_t>(c.worker_index + 1));
  slice_size_ = end - slice_first_;
  excluded_.assign(slice_size_, false);
  for (const std::uint16_t port : c.excluded)
    if (port >= slice_first_ && port < end) excluded_[port - slice_first_] = true;
  usable_ = 0;
  for (std::uint32_t i = 0; i < slice_size_; ++i) usable_ += excluded_[i] ? 0 : 1;
  if (usable_ == 0) refuse("every port of the slice is excluded");
  max_flows_ = c.max_flows;
  seed_ = c.seed;
  records_.resize(max_flows_);
  free_records_.resize(max_flows_);
  for (std::uint32_t i = 0; i < max_flows_; ++i) free_records_[i] = max_flows_ - 1 - i;  // record 0 first
  destinations_.resize(power_of_two_at_least(2ull * max_flows_));
  ports_.resize(power_of_two_at_least(2ull * max_flows_));
  cursors_.resize(power_of_two_at_least(std::max<std::uint32_t>(16, std::min<std::uint32_t>(max_flows_, 65536))));
}

std::uint64_t port_allocator::destination_hash(const destination& d, std::uint64_t salt) const noexcept {
  std::uint64_t w[3] = {};
  std::memcpy(w, &d, sizeof d);
  std::uint64_t h = mix64(seed_ ^ salt);
  for (const std::uint64_t word : w) h = mix64(h ^ word);
  return h;
}

std::uint32_t port_allocator::port_home(std::uint32_t record_plus_one, std::uint32_t port) const noexcept {
  const auto h = mix64(seed_ ^ (std::uint64_t{record_plus_one} << 32 | port));
  return static_cast<std::uint32_t>(h) & static_cast<std::uint32_t>(ports_.size() - 1);
}

std::uint32_t port_allocator::find_record(const destination& d, std::uint32_t hash) const noexcept {
  const auto mask = static_cast<std::uint32_t>(destinations_.size() - 1);
  for (std::uint32_t i = hash & mask; destinations_[i].record_plus_one != 0; i = (i + 1) & mask) {
    const destination_slot& s = destinations_[i];
    if (s.hash == hash && records_[s.record_plus_one - 1].key == d) return s.record_plus_one;
  }
  return 0;
}

std::uint32_t port_allocator::add_record(const destination& d, std::uint32_t hash) noexcept {
  const std::uint32_t index = free_records_.back();
  free_records_.pop_back();
  records_[index] = record{d, 0};
  const auto mask = static_cast<std::uint32_t>(destinations_.size() - 1);
  std::uint32_t i = hash & mask;
  while (destinations_[i].record_plus_one != 0) i = (i + 1) & mask;  // load <= 1/2: an empty slot is near
  destinations_[i] = destination_slot{index + 1, hash};
  return index + 1;
}

void port_allocator::remove_record(std::uint32_t record_plus_one) noexcept {
  const auto mask = static_cast<std::uint32_t>(destinations_.size() - 1);
  const auto hash = static_cast<std::uint32_t>(destination_hash(records_[record_plus_one - 1].key, salt_offset));
  std::uint32_t i = hash & mask;
  while (destinations_[i].record_plus_one != record_plus_one) i = (i + 1) & mask;
  erase_slot(destinations_, i, [mask](const destination_slot& s) { return s.hash & mask; });
  free_records_.push_back(record_plus_one - 1);
}

std::uint32_t port_allocator::find_port(std::uint32_t record_plus_one, std::uint32_t port) const noexcept {
  const auto mask = static_cast<std::uint32_t>(ports_.size() - 1);
  std::uint32_t i = port_home(record_plus_one, port);
  for (; ports_[i].record_plus_one != 0; i = (i + 1) & mask)
    if (ports_[i].record_plus_one == record_plus_one && ports_[i].port == port) return i;
  return i;  // the empty slot that ends the run: where the port would go
}

void port_allocator::remove_port_slot(std::uint32_t slot) noexcept {
  erase_slot(ports_, slot, [this](const port_slot& s) { return port_home(s.record_plus_one, s.port); });
}

port_allocation port_allocator::allocate(const destination& d) noexcept {
  if (used_ == max_flows_) return {allocation_status::full, 0};
  const std::uint64_t h = destination_hash(d, salt_offset);
  const auto hash = static_cast<std::uint32_t>(h);
  std::uint32_t rec = find_record(d, hash);
  if (rec != 0 && records_[rec - 1].used == usable_) return {allocation_status::exhausted, 0};
  if (rec == 0) rec = add_record(d, hash);  // used_ < max_flows_: a record is free

  // RFC 6056 Algorithm 4: offset from one keyed hash, the counter from a
  // table indexed by another, moved past every candidate looked at.
  const auto offset = static_cast<std::uint32_t>((h >> 32) % slice_size_);
  std::uint32_t& cursor = cursors_[destination_hash(d, salt_bucket) & (cursors_.size() - 1)];
  for (std::uint32_t tries = 0; tries < slice_size_; ++tries) {
    const std::uint32_t index = (offset + cursor) % slice_size_;
    cursor = cursor + 1 == slice_size_ ? 0 : cursor + 1;
    ++probes_;
    if (excluded_[index]) continue;
    const std::uint32_t port = slice_first_ + index;
    const std::uint32_t slot = find_port(rec, port);
    if (ports_[slot].record_plus_one != 0) continue;
    ports_[slot] = port_slot{rec, port};
    ++records_[rec - 1].used;
    ++used_;
    return {allocation_status::ok, static_cast<std::uint16_t>(port)};
  }
  // Not reached: the record had fewer than usable_ ports, so one was free.
  if (records_[rec - 1].used == 0) remove_record(rec);
  return {allocation_status::exhausted, 0};
}

bool port_allocator::release(const destination& d, std::uint16_t port) noexcept {
  if (port < slice_first_ || std::uint32_t{port} - slice_first_ >= slice_size_) return false;
  const std::uint32_t rec = find_record(d, static_cast<std::uint32_t>(destination_hash(d, salt_offset)));
  if (rec == 0) return false;
  const std::uint32_t slot = find_port(rec, port);
  if (ports_[slot].record_plus_one == 0) return false;
  remove_port_slot(slot);
  --used_;
  if (--records_[rec - 1].used == 0) remove_record(rec);
  return true;
}

bool port_allocator::in_use(const destination& d, std::uint16_t port) const noexcept {
  const std::uint32_t rec = find_record(d, static_cast<std::uint32_t>(destination_hash(d, salt_offset)));
  return rec != 0 && ports_[find_port(rec, port)].record_plus_one != 0;
}

std::uint32_t port_allocator::used(const destination& d) const noexcept {
  const std::uint32_t rec = find_record(d, static_cast<std::uint32_t>(destination_hash(d, salt_offset)));
  return rec == 0 ? 0 : records_[rec - 1].used;
}

}  // namespace lopower::splice
