#include "control/tailnet/netmap/netmap.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <utility>

namespace lopower::tailnet {

namespace {

bool by_id(const node& a, const node& b) { return a.id < b.id; }

// map.go peerChangeDiff: the patch that turns `was` into `n`, when every
// difference is one a patch can carry. nullopt: not patchable (replace the
// node). A patch that is present but empty means "identical".
struct diff_result {
  bool patchable = false;
  bool any = false;  // tailscale's non-nil *PeerChange
  peer_change patch;
};

diff_result peer_change_diff(const node& was, const node& n) {
  diff_result r;
  // Fields a patch cannot carry: any difference means a full replace.
  if (was.id != n.id || was.stable_id != n.stable_id || was.name != n.name || was.user != n.user ||
      was.sharer != n.sharer || !(was.machine == n.machine) || was.addresses != n.addresses ||
      was.allowed_ips != n.allowed_ips || was.has_hostinfo != n.has_hostinfo ||
      (n.has_hostinfo && (was.hostinfo_digest != n.hostinfo_digest || was.hostname != n.hostname)) ||
      was.created != n.created || was.tags != n.tags || was.primary_routes != n.primary_routes ||
      was.machine_authorized != n.machine_authorized || was.unsigned_peer_api_only != n.unsigned_peer_api_only ||
      was.is_wireguard_only != n.is_wireguard_only || was.is_jailed != n.is_jailed || was.expired != n.expired ||
      was.self_v4_masq_addr != n.self_v4_masq_addr || was.self_v6_masq_addr != n.self_v6_masq_addr ||
      was.exit_node_dns_resolvers != n.exit_node_dns_resolvers) {
    return r;
  }
  r.patchable = true;
  peer_change& pc = r.patch;
  pc.id = n.id;
  if (!(was.key == n.key)) {
    r.any = true;
    pc.key = n.key;
  }
  if (was.key_expiry != n.key_expiry) {
    r.any = true;
    pc.key_expiry = n.key_expiry;
  }
  if (was.key_signature != n.key_signature) {
    r.any = true;
    // A clone of an empty signature is nil in Go: a patch that sets nothing.
    if (!n.key_signature.empty()) pc.key_signature = n.key_signature;
  }
  if (!(was.disco_key == n.disco_key)) {
    r.any = true;
    pc.disco_key = n.disco_key;
  }
  if (was.endpoints != n.endpoints) {
    r.any = true;
    // Likewise: no endpoints in the new copy patches nothing.
    if (!n.endpoints.empty()) pc.endpoints = n.endpoints;
  }
  if (was.home_derp != n.home_derp) {
    r.any = true;
    pc.derp_region = n.home_derp;  // 0 patches nothing
  }
  if (was.cap != n.cap) {
    r.any = true;
    pc.cap = n.cap;  // 0 patches nothing
  }
  if (was.capmap != n.capmap) {
    r.any = true;
    pc.capmap = n.capmap;
  }
  if (was.online && n.online && *was.online != *n.online) {
    r.any = true;
    pc.online = n.online;
  }
  if (was.last_seen && n.last_seen && *was.last_seen != *n.last_seen) {
    r.any = true;
    pc.last_seen = n.last_seen;
  }
  return r;
}

template <class Map>
void erase_pair(Map& m, const typename Map::key_type& k, node_id id) {
  auto [it, end] = m.equal_range(k);
  for (; it != end; ++it) {
    if (it->second == id) {
      m.erase(it);
      return;
    }
  }
}

template <class Map>
const node* lowest(const Map& m, const typename Map::key_type& k, const netmap& nm) {
  auto [it, end] = m.equal_range(k);
  if (it == end) return nullptr;
  node_id best = it->second;
  for (++it; it != end; ++it) best = std::min(best, it->second);
  return nm.peer_by_id(best);
}

}  // namespace

std::uint64_t netmap::serial_number::next() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::size_t netmap::addr_hash::operator()(const ip_address& a) const noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ static_cast<std::uint8_t>(a.family);
  for (const auto b : a.bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return static_cast<std::size_t>(h);
}

const node* netmap::peer_by_id(node_id id) const noexcept {
  const auto it = std::lower_bound(peers_.begin(), peers_.end(), id, [](const node& n, node_id v) { return n.id < v; });
  return it != peers_.end() && it->id == id ? &*it : nullptr;
}

node* netmap::find_peer(node_id id) noexcept { return const_cast<node*>(peer_by_id(id)); }

const node* netmap::peer_by_key(const public_key& key) const noexcept { return lowest(by_key_, key, *this); }

const node* netmap::peer_by_address(const ip_address& address) const noexcept {
  return lowest(by_address_, address, *this);
}

const user_profile* netmap::user(user_id id) const noexcept {
  const auto it = users_.find(id);
  return it == users_.end() ? nullptr : &it->second;
}

void netmap::index_peer(const node& n) {
  by_key_.emplace(n.key, n.id);
  for (const auto& a : n.addresses) by_address_.emplace(a.address, n.id);
}

void netmap::unindex_peer(const node& n) {
  erase_pair(by_key_, n.key, n.id);
  for (const auto& a : n.addresses) erase_pair(by_address_, a.address, n.id);
}

void netmap::rebuild_indexes() {
  by_key_.clear();
  by_address_.clear();
  by_key_.reserve(peers_.size());
  by_address_.reserve(peers_.size() * 2);
  for (const auto& n : peers_) index_peer(n);
}

bool netmap::apply_patch(const peer_change& pc) {
  node* p = find_peer(pc.id);
  if (p == nullptr) return false;
  if (pc.derp_region != 0) p->home_derp = pc.derp_region;
  if (pc.cap != 0) p->cap = pc.cap;
  if (pc.endpoints) p->endpoints = *pc.endpoints;
  if (pc.key && !(*pc.key == p->key)) {
    erase_pair(by_key_, p->key, p->id);
    p->key = *pc.key;
    by_key_.emplace(p->key, p->id);
  }
  if (pc.disco_key) p->disco_key = *pc.disco_key;
  if (pc.online) p->online = pc.online;
  if (pc.last_seen) p->last_seen = pc.last_seen;
  if (pc.key_expiry) p->key_expiry = *pc.key_expiry;
  if (pc.key_signature) p->key_signature = *pc.key_signature;
  if (pc.capmap) p->capmap = *pc.capmap;
  return true;
}

netmap_changes netmap::apply(const map_response& resp, timestamp now) {
  if (resp.keep_alive) {
    netmap_changes ch;
    ch.keep_alive = true;
    return ch;
  }
  return apply(map_response(resp), now);
}

netmap_changes netmap::apply(map_response&& r, timestamp now) {
  netmap_changes ch;
  if (r.keep_alive) {
    ch.keep_alive = true;
    return ch;
  }
  if (!self_ && !r.self) {
    ch.error = "initial MapResponse lacked Node";
    return ch;
  }

  // An old server's Capabilities list joins the cap map.
  if (r.self) {
    for (const auto& c : r.self->capabilities) r.self->capmap.try_emplace(c);
  }

  // patchifyPeersChanged: known peers whose changes a patch can carry.
  if (!r.peers_changed.empty()) {
    std::vector<node> kept;
    kept.reserve(r.peers_changed.size());
    for (auto& n : r.peers_changed) {
      const node* was = peer_by_id(n.id);
      if (was == nullptr) {
        kept.push_back(std::move(n));
        continue;
      }
      diff_result d = peer_change_diff(*was, n);
      if (!d.patchable) {
        kept.push_back(std::move(n));
      } else if (d.any) {
        r.peers_changed_patch.push_back(std::move(d.patch));
      }
    }
    r.peers_changed = std::move(kept);
  }

  // removeUnwantedDiscoUpdates: a patch that says an offline peer has a new
  // disco key, without having been seen since what we hold, is stale.
  std::erase_if(r.peers_changed_patch, [this](const peer_change& pc) {
    if (!pc.disco_key || !pc.online || !pc.last_seen) return false;
    const node* existing = peer_by_id(pc.id);
    if (existing == nullptr || *pc.online) return false;
    return existing->last_seen && !(*pc.last_seen > *existing->last_seen);
  });

  // removeUnwantedDiscoUpdatesFromFullNetmapUpdate: the same in a full list.
  for (auto& peer : r.peers) {
    if (peer.disco_key.is_zero()) continue;
    const node* existing = peer_by_id(peer.id);
    if (existing == nullptr || existing->disco_key == peer.disco_key) continue;
    if (peer.online && *peer.online) continue;
    if (!existing->last_seen) continue;
    if (peer.last_seen && *peer.last_seen > *existing->last_seen) continue;
    peer.disco_key = existing->disco_key;
    peer.last_seen = existing->last_seen;
  }

  if (!r.peers.empty()) {
    // The whole list; a repeated ID keeps its last copy, as a Go map would.
    ch.full_peer_list = true;
    std::stable_sort(r.peers.begin(), r.peers.end(), by_id);
    std::vector<node> fresh;
    fresh.reserve(r.peers.size());
    for (std::size_t i = 0; i < r.peers.size(); ++i) {
      if (i + 1 < r.peers.size() && r.peers[i + 1].id == r.peers[i].id) continue;
      fresh.push_back(std::move(r.peers[i]));
    }
    auto o = peers_.begin();
    auto f = fresh.begin();
    while (o != peers_.end() || f != fresh.end()) {
      if (f == fresh.end() || (o != peers_.end() && o->id < f->id)) {
        ch.removed.push_back((o++)->id);
      } else if (o == peers_.end() || f->id < o->id) {
        ch.added.push_back((f++)->id);
      } else {
        if (!(*o == *f)) {
          ch.changed.push_back(f->id);
          if (o->name != f->name || o->addresses != f->addresses) ch.names_changed = true;
        }
        ++o;
        ++f;
      }
    }
    peers_ = std::move(fresh);
    rebuild_indexes();
  } else if (!r.peers_removed.empty() || !r.peers_changed.empty() || !r.peer_seen_change.empty() ||
             !r.online_change.empty() || !r.peers_changed_patch.empty()) {
    // Deltas. Each touched peer's first state is kept to report the net
    // effect of all the steps.
    std::map<node_id, std::optional<node>> before;
    const auto touch = [&](node_id id) {
      if (before.find(id) != before.end()) return;
      const node* p = peer_by_id(id);
      before.emplace(id, p ? std::optional<node>(*p) : std::nullopt);
    };

    if (!r.peers_removed.empty()) {
      std::vector<node_id> gone;
      for (const node_id id : r.peers_removed) {
        if (const node* p = peer_by_id(id)) {
          touch(id);
          unindex_peer(*p);
          gone.push_back(id);
        }
      }
      std::sort(gone.begin(), gone.end());
      std::erase_if(peers_, [&](const node& n) { return std::binary_search(gone.begin(), gone.end(), n.id); });
    }

    if (!r.peers_changed.empty()) {
      std::vector<node> fresh;
      for (auto& n : r.peers_changed) {
        touch(n.id);
        if (node* p = find_peer(n.id)) {
          unindex_peer(*p);
          *p = std::move(n);
          index_peer(*p);
        } else {
          fresh.push_back(std::move(n));
        }
      }
      if (!fresh.empty()) {
        std::stable_sort(fresh.begin(), fresh.end(), by_id);
        std::vector<node> unique;
        unique.reserve(fresh.size());
        for (std::size_t i = 0; i < fresh.size(); ++i) {
          if (i + 1 < fresh.size() && fresh[i + 1].id == fresh[i].id) continue;
          unique.push_back(std::move(fresh[i]));
        }
        const auto mid = static_cast<std::ptrdiff_t>(peers_.size());
        for (auto& n : unique) {
          index_peer(n);
          peers_.push_back(std::move(n));
        }
        std::inplace_merge(peers_.begin(), peers_.begin() + mid, peers_.end(), by_id);
      }
    }

    for (const auto& [id, seen] : r.peer_seen_change) {
      if (node* p = find_peer(id)) {
        touch(id);
        if (seen) {
          p->last_seen = now;
        } else {
          p->last_seen.reset();
        }
      }
    }
    for (const auto& [id, online] : r.online_change) {
      if (node* p = find_peer(id)) {
        touch(id);
        p->online = online;
      }
    }
    for (const auto& pc : r.peers_changed_patch) {
      if (peer_by_id(pc.id) == nullptr) continue;
      touch(pc.id);
      apply_patch(pc);
    }

    for (const auto& [id, old] : before) {
      const node* now_peer = peer_by_id(id);
      if (old && now_peer == nullptr) {
        ch.removed.push_back(id);
      } else if (!old && now_peer != nullptr) {
        ch.added.push_back(id);
      } else if (old && now_peer != nullptr && !(*old == *now_peer)) {
        ch.changed.push_back(id);
        if (old->name != now_peer->name || old->addresses != now_peer->addresses) ch.names_changed = true;
      }
    }
  }

  if (!ch.added.empty() || !ch.removed.empty()) ch.names_changed = true;
  if (r.self) {
    ch.self_changed = !self_ || !(*self_ == *r.self);
    if (!self_ || self_->name != r.self->name || self_->addresses != r.self->addresses) ch.names_changed = true;
    self_ = std::move(*r.self);
  }

  for (auto& up : r.user_profiles) {
    auto it = users_.find(up.id);
    if (it == users_.end() || !(it->second == up)) {
      ch.user_profiles_changed = true;
      users_[up.id] = std::move(up);
    }
  }

  if (r.derp) {
    derp_map dm = std::move(*r.derp);
    // What the new map leaves out, the old one still says.
    if (derp_) {
      if (!dm.regions) {
        dm.regions = derp_->regions;
        dm.omit_default_regions = derp_->omit_default_regions;
      }
      if (!dm.home_params) {
        dm.home_params = derp_->home_params;
      } else if (derp_->home_params && !dm.home_params->region_score) {
        dm.home_params->region_score = derp_->home_params->region_score;
      }
    }
    ch.derp_map_changed = !derp_ || !(*derp_ == dm);
    derp_ = std::move(dm);
  }

  bool filter_sent = false;
  if (r.packet_filter) {
    filter_sent = true;
    named_filters_["base"] = std::move(*r.packet_filter);
  }
  if (r.packet_filters) {
    filter_sent = true;
    const auto star = r.packet_filters->find("*");
    if (star != r.packet_filters->end() && !star->second) named_filters_.clear();
    for (auto& [name, rules] : *r.packet_filters) {
      if (name == "*") continue;
      if (rules) {
        named_filters_[name] = std::move(*rules);
      } else {
        named_filters_.erase(name);
      }
    }
  }
  if (filter_sent) {
    std::vector<filter_rule> concat;
    for (const auto& [name, rules] : named_filters_) concat.insert(concat.end(), rules.begin(), rules.end());
    ch.packet_filter_changed = concat != filter_rules_;
    compiled_filter compiled = compile_filter(concat);
    filter_rules_ = std::move(concat);
    filter_ = std::move(compiled.matches);
    filter_error_ = std::move(compiled.error);
  }

  if (r.dns) {
    ch.dns_changed = !(dns_ == *r.dns);
    dns_ = std::move(*r.dns);
  }
  if (r.collect_services) {
    ch.collect_services_changed = collect_services_ != *r.collect_services;
    collect_services_ = *r.collect_services;
  }
  if (!r.domain.empty()) {
    ch.domain_changed = domain_ != r.domain;
    domain_ = std::move(r.domain);
  }
  if (!r.domain_audit_log_id.empty()) domain_audit_log_id_ = std::move(r.domain_audit_log_id);
  if (r.health) {
    ch.health_changed = health_ != *r.health;
    health_ = std::move(*r.health);
  }

  std::sort(ch.added.begin(), ch.added.end());
  std::sort(ch.removed.begin(), ch.removed.end());
  std::sort(ch.changed.begin(), ch.changed.end());
  return ch;
}

peer_diff diff_peers(const netmap& before, const netmap& after) {
  peer_diff d;
  const auto a = before.peers();
  const auto b = after.peers();
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].id < b[j].id)) {
      d.removed.push_back(a[i++].id);
    } else if (i == a.size() || b[j].id < a[i].id) {
      d.added.push_back(b[j++].id);
    } else {
      if (!(a[i] == b[j])) d.changed.push_back(b[j].id);
      ++i;
      ++j;
    }
  }
  return d;
}

}  // namespace lopower::tailnet
