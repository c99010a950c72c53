// The coordination server's map stream: its framing, zstd bodies and JSON
// MapResponses, merged into a netmap. The server is authenticated, but a bug
// there (or in the transport) must not become one here: every input ends in
// a parsed response or a reason, and the netmap keeps its invariants.
//
// The first byte picks the mode:
//   0, 1  NUL-separated JSON documents, applied in turn to a netmap that
//         already holds a self node and a few peers;
//   2     a raw (uncompressed) map stream, fed in uneven chunks;
//   3     a zstd map stream, fed in uneven chunks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/tailnet/netmap/map_response.h"
#include "control/tailnet/netmap/map_stream_reader.h"
#include "control/tailnet/netmap/netmap.h"

namespace tn = lopower::tailnet;

namespace {

// A started session: self node 100, peers 1-3 (one of each kind of
// address), so that deltas in the input have something to act on.
constexpr std::string_view seed_response = R"({"Node":{"ID":100,"StableID":"100","Name":"self.t.example.",
"Key":"nodekey:0100000000000000000000000000000000000000000000000000000000000000",
"Addresses":["100.64.0.100/32"]},
"Peers":[
{"ID":1,"Key":"nodekey:0000000000000000000000000000000000000000000000000000000000000001",
 "DiscoKey":"discokey:0000000000000000000000000000000000000000000000000000000000000001",
 "Addresses":["100.64.0.1/32","fd7a:115c:a1e0::1/128"],"Endpoints":["192.0.2.1:41641"],"HomeDERP":1,
 "Online":false,"LastSeen":"2026-01-01T00:00:00Z","Hostinfo":{"Hostname":"one"}},
{"ID":2,"Key":"nodekey:0000000000000000000000000000000000000000000000000000000000000002",
 "Addresses":["100.64.0.2/32"],"AllowedIPs":["100.64.0.2/32","10.0.0.0/8"],"DERP":"127.3.3.40:2"},
{"ID":3,"Key":"nodekey:0000000000000000000000000000000000000000000000000000000000000002",
 "Addresses":["100.64.0.2/32"],"Online":true}],
"DERPMap":{"Regions":{"1":{"RegionID":1,"Nodes":[{"Name":"1","RegionID":1,"HostName":"127.0.0.1"}]}}},
"PacketFilters":{"base":[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]}})";

void check(const tn::netmap& nm, const tn::netmap_changes& ch) {
  // Peers sorted by ID, each ID once, and every index agrees with the list.
  const auto peers = nm.peers();
  for (std::size_t i = 0; i < peers.size(); ++i) {
    const tn::node& p = peers[i];
    if (i > 0 && !(peers[i - 1].id < p.id)) __builtin_trap();
    if (nm.peer_by_id(p.id) != &p) __builtin_trap();
    const tn::node* by_key = nm.peer_by_key(p.key);
    if (by_key == nullptr || !(by_key->key == p.key) || by_key->id > p.id) __builtin_trap();
    for (const auto& a : p.addresses) {
      const tn::node* by_addr = nm.peer_by_address(a.address);
      if (by_addr == nullptr || by_addr->id > p.id) __builtin_trap();
    }
  }
  for (const auto* list : {&ch.added, &ch.removed, &ch.changed}) {
    for (std::size_t i = 1; i < list->size(); ++i) {
      if (!((*list)[i - 1] < (*list)[i])) __builtin_trap();
    }
  }
  for (const auto id : ch.added) {
    if (nm.peer_by_id(id) == nullptr) __builtin_trap();
  }
  for (const auto id : ch.removed) {
    if (nm.peer_by_id(id) != nullptr) __builtin_trap();
  }
  if (!ch.ok() && ch.anything_changed()) __builtin_trap();
  if (ch.keep_alive && ch.anything_changed()) __builtin_trap();
}

tn::netmap seeded() {
  tn::netmap nm;
  auto r = tn::parse_map_response(seed_response);
  if (!r) __builtin_trap();
  if (!nm.apply(std::move(*r.response), tn::timestamp::from_unix(1'800'000'000)).ok()) __builtin_trap();
  return nm;
}

void apply_both(tn::netmap& by_move, tn::netmap& by_ref, std::string_view text) {
  const auto r = tn::parse_map_response(text);
  if (!r) {
    if (r.error.empty() || r.response) __builtin_trap();
    return;
  }
  const auto now = tn::timestamp::from_unix(1'800'000'000);
  const tn::netmap_changes a = by_ref.apply(*r.response, now);
  tn::map_response copy = *r.response;
  const tn::netmap_changes b = by_move.apply(std::move(copy), now);
  check(by_ref, a);
  check(by_move, b);
  // Both ways of applying agree.
  if (a.added != b.added || a.removed != b.removed || a.changed != b.changed) __builtin_trap();
  const tn::peer_diff d = tn::diff_peers(by_ref, by_move);
  if (!d.added.empty() || !d.removed.empty() || !d.changed.empty()) __builtin_trap();
}

void json_mode(std::string_view text) {
  tn::netmap by_move = seeded();
  tn::netmap by_ref = seeded();
  std::size_t start = 0;
  int documents = 0;
  while (start <= text.size() && documents < 16) {
    std::size_t end = text.find('\0', start);
    if (end == std::string_view::npos) end = text.size();
    apply_both(by_move, by_ref, text.substr(start, end - start));
    ++documents;
    start = end + 1;
  }
}

void stream_mode(std::string_view bytes, bool compressed) {
  tn::map_stream_reader::limits l;
  l.max_frame_bytes = 1 << 20;
  l.max_message_bytes = 1 << 20;
  l.compressed = compressed;
  tn::map_stream_reader reader(l);
  tn::netmap nm = seeded();
  // Chunks of 1, 2, 3 ... bytes: every split point gets exercised over runs.
  std::size_t pos = 0, chunk = 1;
  int messages = 0;
  while (pos < bytes.size() && messages < 64) {
    const std::size_t n = std::min(chunk++, bytes.size() - pos);
    const bool ok = reader.feed(bytes.substr(pos, n));
    pos += n;
    if (ok != !reader.failed()) __builtin_trap();
    while (auto text = reader.next()) {
      if (text->size() > l.max_message_bytes) __builtin_trap();
      ++messages;
      const auto r = tn::parse_map_response(*text);
      if (r) check(nm, nm.apply(*r.response));
    }
    if (reader.failed()) {
      if (reader.error().empty() || reader.feed(std::string_view("x")) || reader.next()) __builtin_trap();
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] & 3) {
    case 0:
    case 1:
      json_mode(rest);
      break;
    case 2:
      stream_mode(rest, false);
      break;
    default:
      stream_mode(rest, true);
      break;
  }
  return 0;
}
