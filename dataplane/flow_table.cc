#include "dataplane/flow_table.h"

#include <rte_errno.h>
#include <rte_lcore.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace lopower {
namespace {

std::atomic<unsigned> table_serial{0};

struct retired_flow {
  rte_hash* hash;
  flow* f;
  std::int32_t device_pos, tailnet_pos;
  std::function<void(const flow&)> released;
};

void release_flow(void* a, std::uint64_t) {
  auto* r = static_cast<retired_flow*>(a);
  if (r->device_pos >= 0) rte_hash_free_key_with_position(r->hash, r->device_pos);
  if (r->tailnet_pos >= 0) rte_hash_free_key_with_position(r->hash, r->tailnet_pos);
  if (r->released) r->released(*r->f);
  delete r->f;
  delete r;
}

}  // namespace

flow_table::flow_table(unsigned capacity, rcu_domain& rcu) : rcu_(rcu), capacity_(capacity) {
  const std::string name = "lp_flows" + std::to_string(table_serial++);
  rte_hash_parameters params{};
  params.name = name.c_str();
  // Two keys per flow, and a quarter more: a cuckoo table refuses inserts
  // before it is completely full, and the flow limit must be reachable.
  params.entries = capacity * 2 + capacity / 2;
  params.key_len = sizeof(splice::flow_key);
  params.hash_func = splice::flow_key_hash;
  params.socket_id = static_cast<int>(rte_socket_id());
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
  hash_ = rte_hash_create(&params);
  if (hash_ == nullptr) throw std::runtime_error(std::string("cannot create the flow table: ") + rte_strerror(rte_errno));
}

flow_table::~flow_table() {
  // Collected first: for_each reads each flow again at its second key.
  std::vector<flow*> all;
  for_each([&all](flow& f) { all.push_back(&f); });
  for (flow* f : all) delete f;
  rte_hash_free(hash_);
}

flow* flow_table::find(const splice::flow_key& k) const noexcept {
  void* data = nullptr;
  return rte_hash_lookup_data(hash_, &k, &data) >= 0 ? static_cast<flow*>(data) : nullptr;
}

void flow_table::find_bulk(const splice::flow_key* const* keys, unsigned n, flow** out) const noexcept {
  for (unsigned at = 0; at < n; at += RTE_HASH_LOOKUP_BULK_MAX) {
    const unsigned chunk = std::min<unsigned>(n - at, RTE_HASH_LOOKUP_BULK_MAX);
    std::uint64_t hits = 0;
    void* data[RTE_HASH_LOOKUP_BULK_MAX];
    // rte_hash's API takes non-const pointers to the key pointers; it only reads them.
    rte_hash_lookup_bulk_data(hash_, const_cast<const void**>(reinterpret_cast<const void* const*>(keys + at)), chunk,
                              &hits, data);
    for (unsigned i = 0; i < chunk; ++i) out[at + i] = (hits >> i) & 1 ? static_cast<flow*>(data[i]) : nullptr;
  }
}

bool flow_table::insert(flow* f) noexcept {
  if (size() >= capacity_) return false;
  if (rte_hash_add_key_data(hash_, &f->device_key, f) != 0) return false;
  // The device key is published: add the tailnet key only if it is new,
  // else take the device key back at once. No other worker can hold the
  // flow: only the device's packets carry its device key, and RSS keeps a
  // device on one queue -- the creator's.
  if (find(f->tailnet_key) != nullptr || rte_hash_add_key_data(hash_, &f->tailnet_key, f) != 0) {
    const std::int32_t pos = rte_hash_del_key(hash_, &f->device_key);
    if (pos >= 0) rte_hash_free_key_with_position(hash_, pos);
    return false;
  }
  return true;
}

void flow_table::for_each(const std::function<void(flow&)>& fn) const {
  const void* key;
  void* data;
  std::uint32_t iter = 0;
  while (rte_hash_iterate(hash_, &key, &data, &iter) >= 0) {
    auto* f = static_cast<flow*>(data);
    if (static_cast<const splice::flow_key*>(key)->operator==(f->device_key)) fn(*f);
  }
}

void flow_table::erase(flow* f, std::function<void(const flow&)> released) {
  const std::int32_t device_pos = rte_hash_del_key(hash_, &f->device_key);
  const std::int32_t tailnet_pos = rte_hash_del_key(hash_, &f->tailnet_key);
  rcu_.retire(release_flow, new retired_flow{hash_, f, device_pos, tailnet_pos, std::move(released)}, 0);
}

unsigned flow_table::size() const noexcept { return static_cast<unsigned>(rte_hash_count(hash_)) / 2; }

}  // namespace lopower
