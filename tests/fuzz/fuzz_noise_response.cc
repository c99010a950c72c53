// libFuzzer target: the control server's reply to our ts2021 handshake
// initiation (noise_ik_initiator::reply_size and ::finish), which comes from
// whatever answers on the control server's address once the HTTP upgrade
// is done: a Noise IK response, an error message, or anything at all.
//
// One fixed client: the first handshake of tests/unit/controlbase/
// vectors.json (machine, control and ephemeral keys, capability version
// 119), started afresh for every input. The first byte picks a mode:
//   even  the input is the wire: the reply and then the first records, as
//         they come. Bit 1 set: cut into chunks whose sizes the input's
//         last bytes choose and taken by the reader control_connection
//         uses (noise_reply_reader: exactly reply_size() bytes; the rest
//         are records); clear:
//         the whole input is handed to finish() as the reply.
//   odd   the input is a server: a responder written here from the Noise
//         spec (over the same symmetric state) reads our initiation and
//         answers with the ephemeral key the next 32 input bytes make, so
//         that mutations reach past the tag check. Bit 1 set: one byte of
//         the response flipped where the input says. The rest of the input
//         follows as records; it is all cut into chunks as above.
// Checks: reply_size() gives 51 for a response and 3 + length (at most
// max_error_text) for an error, else fails; the bytes after the reply are
// left for the records, untouched; a reply that authenticates is a 51-byte
// response and gives keys for the control server and version 119 (the
// vectors' keys for the vectors' response); an unflipped response from the
// responder authenticates and both sides hold the same keys and hash; a
// flipped one never does; every refusal is printable ASCII of bounded
// length; finish() works once. A violated invariant traps.
//
// Built by tests/fuzz (not by tests/unit/controlbase/meson.build).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/tailnet/controlbase/noise_ik.h"
#include "control/wireguard/engine/noise_symmetric.h"
#include "lopower/byte_order.h"
#include "lopower/keys.h"

namespace tb = lopower::tailnet;
using lopower::key32;
using lopower::key_size;
using lopower::private_key;
using lopower::public_key;
using bytes = std::span<const std::uint8_t>;

namespace {

template <class K>
K key(std::string_view hex) {
  return *K::from_hex(hex);
}

// tests/unit/controlbase/vectors.json, handshakes[0] ("capver 119").
constexpr std::uint16_t version = 119;
const private_key& machine() {
  static const auto k = key<private_key>("b8170bb24a03cec668a48aa42b9d98378e0ec60af743478dcb5074cb2fe22656");
  return k;
}
const private_key& control_private() {
  static const auto k = key<private_key>("10d97f5b16c7dd56f884e2778a030a2a2e353d1bfb0af356bfb216ef648d5861");
  return k;
}
const public_key& control_public() {
  static const public_key k = lopower::public_from_private(control_private());
  return k;
}
const private_key& client_ephemeral() {
  static const auto k = key<private_key>("d8458c69266be50bfb2f44d346582f411824a586e084dab5fa943453a3aa7c5d");
  return k;
}
constexpr std::string_view vector_response =
    "02003006bd3bdbf5901ce7d2bb8af63358654675676448abda7d1a8ee2b5d4cce2f108de5413829dd90a0299c7cb8b8afcdc3f";
const key32 vector_send = key<key32>("a1afadc84c885dc46d78cc98899be510334963f830c8c86210caf0ec6876e7cc");
const key32 vector_receive = key<key32>("a41d45290b7d00f7036a2937ac92932d0dcbaa9b03edf524f678c17452231841");
const key32 vector_hash = key<key32>("e8c092479a1c7f00d7c0fbdf0b30ec8747fea4123190614ac110025e6543f4d6");

std::vector<std::uint8_t> unhex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  const auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  return out;
}

tb::noise_ik_initiator start_client() {
  auto st = tb::noise_ik_initiator::start(machine(), control_public(), version, client_ephemeral());
  if (!st) __builtin_trap();
  return std::move(st).value();
}

// The control server's side of -> e, es, s, ss, {}: the state after reading
// our (fixed) initiation, read once. Traps unless the initiation carries our
// machine key and authenticates.
struct server_view {
  lopower::wg::noise_symmetric_state state;
  public_key client_ephemeral;
  public_key client_static;
};
const server_view& server_after_initiation() {
  static const server_view v = [] {
    const tb::noise_ik_initiator client = start_client();
    const auto& msg = client.initiation();
    if (lopower::load_be16(&msg[0]) != version || msg[2] != tb::msg_type_initiation ||
        lopower::load_be16(&msg[3]) != tb::initiation_size - tb::initiation_header_size)
      __builtin_trap();
    server_view s;
    const std::uint8_t* e = &msg[tb::initiation_header_size];
    const std::string prologue = tb::noise_prologue(version);
    bool ok = s.state.initialize(tb::noise_protocol_name);
    ok = ok && s.state.mix_hash(bytes(reinterpret_cast<const std::uint8_t*>(prologue.data()), prologue.size()));
    ok = ok && s.state.mix_hash(bytes(control_public().data(), key_size));  // <- s
    s.client_ephemeral = public_key::from_bytes(e);
    ok = ok && s.state.mix_hash(bytes(e, key_size));                                   // -> e
    ok = ok && s.state.mix_dh(control_private(), e);                                    // es
    ok = ok && s.state.decrypt_and_hash(s.client_static.data(), bytes(e + key_size, key_size + 16));  // s
    ok = ok && s.state.mix_dh(control_private(), s.client_static.data());               // ss
    ok = ok && s.state.decrypt_and_hash(nullptr, bytes(e + 2 * key_size + 16, 16));     // {}
    if (!ok || !(s.client_static == lopower::public_from_private(machine()))) __builtin_trap();
    return s;
  }();
  return v;
}

// <- e, ee, se, {} with the server ephemeral `eph`: the 51-byte response,
// and the keys the server keeps (it receives with the first).
struct server_reply {
  std::vector<std::uint8_t> message;
  key32 server_receive, server_send, hash;
};
server_reply respond(const private_key& eph) {
  const server_view& v = server_after_initiation();
  lopower::wg::noise_symmetric_state s = v.state;
  server_reply r;
  r.message.resize(tb::response_size);
  r.message[0] = tb::msg_type_response;
  lopower::store_be16(&r.message[1], static_cast<std::uint16_t>(tb::response_size - tb::message_header_size));
  const public_key eph_public = lopower::public_from_private(eph);
  std::copy(eph_public.begin(), eph_public.end(), r.message.begin() + 3);
  bool ok = s.mix_hash(bytes(eph_public.data(), key_size));  // e
  ok = ok && s.mix_dh(eph, v.client_ephemeral.data());        // ee
  ok = ok && s.mix_dh(eph, v.client_static.data());           // se
  ok = ok && s.encrypt_and_hash(&r.message[3 + key_size], bytes());  // {}
  ok = ok && s.split(r.server_receive, r.server_send);
  if (!ok) __builtin_trap();
  r.hash = s.hash();
  return r;
}

bool printable_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// Checks reply_size() on a header against the header's own fields.
void check_reply_size(bytes header) {
  const auto size = tb::noise_ik_initiator::reply_size(header);
  if (header.size() < tb::message_header_size) {
    if (size) __builtin_trap();
    return;
  }
  const std::size_t length = lopower::load_be16(&header[1]);
  if (size) {
    const bool response = header[0] == tb::msg_type_response && *size == tb::response_size && length == 48;
    const bool error = header[0] == tb::msg_type_error && length <= tb::max_error_text && *size == 3 + length;
    if (!response && !error) __builtin_trap();
  } else {
    if (header[0] == tb::msg_type_response && length == 48) __builtin_trap();
    if (header[0] == tb::msg_type_error && length <= tb::max_error_text) __builtin_trap();
    if (!printable_ascii(size.message())) __builtin_trap();
  }
}

// The reply as control_connection::on_noise_reply_bytes takes it: with
// its reader (tb::noise_reply_reader), which takes bytes until
// reply_size() of the first three says the reply is whole; what it leaves
// of a chunk is for the record reader.
struct reply_taker {
  tb::noise_reply_reader reader;
  std::vector<std::uint8_t> records;
  bool refused = false;

  bool whole() const { return reader.whole(); }
  std::vector<std::uint8_t> reply() const { return {reader.reply().begin(), reader.reply().end()}; }

  void feed(bytes chunk) {
    if (refused) return;
    if (reader.reply().size() >= tb::message_header_size) check_reply_size(reader.reply());
    const auto used = reader.feed(chunk);
    if (!used) {
      if (!printable_ascii(used.message())) __builtin_trap();
      refused = true;
      return;
    }
    if (*used > chunk.size() || (*used < chunk.size() && !reader.whole())) __builtin_trap();  // leaves bytes only once whole
    records.insert(records.end(), chunk.begin() + static_cast<std::ptrdiff_t>(*used), chunk.end());
  }
};

reply_taker take_in_chunks(bytes wire, bytes sizes) {
  reply_taker t;
  std::size_t at = 0, turn = 0;
  while (at < wire.size() && !t.refused) {
    std::size_t n = sizes.empty() ? wire.size() : 1 + sizes[turn++ % sizes.size()] % 61u;
    if (n > wire.size() - at) n = wire.size() - at;
    t.feed(wire.subspan(at, n));
    at += n;
  }
  if (!t.refused && !t.whole() && !t.records.empty()) __builtin_trap();  // nothing passes before the reply is whole
  return t;
}

// finish() on `reply` with a fresh client: its keys, checked against what
// any good reply must give; a second finish() fails.
lopower::result<tb::transport_keys> finish(bytes reply) {
  check_reply_size(reply);
  tb::noise_ik_initiator client = start_client();
  auto keys = client.finish(reply);
  if (keys) {
    if (reply.size() != tb::response_size || reply[0] != tb::msg_type_response) __builtin_trap();
    if (keys->version != version || !(keys->peer == control_public()) || keys->send == keys->receive)
      __builtin_trap();
    static const std::vector<std::uint8_t> known = unhex(vector_response);
    if (std::equal(reply.begin(), reply.end(), known.begin(), known.end()) &&
        !(keys->send == vector_send && keys->receive == vector_receive && keys->handshake_hash == vector_hash))
      __builtin_trap();
  } else {
    // Quoted server text, at most \xNN per byte of max_error_text.
    if (!printable_ascii(keys.message()) || keys.message().size() > 4 * tb::max_error_text + 128) __builtin_trap();
  }
  if (client.finish(reply)) __builtin_trap();
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bytes input(data + 1, size - 1);
  const bool bit1 = (data[0] & 2) != 0;
  // Chunk sizes come from the input's last bytes (up to 8).
  const bytes sizes = input.subspan(input.size() - std::min<std::size_t>(input.size(), 8));

  if ((data[0] & 1) == 0) {
    if (!bit1) {
      (void)finish(input);
      return 0;
    }
    const reply_taker t = take_in_chunks(input, sizes);
    if (!t.whole()) return 0;
    if (t.reply().size() + t.records.size() != input.size() ||
        !std::equal(t.records.begin(), t.records.end(), input.begin() + static_cast<std::ptrdiff_t>(t.reply().size())))
      __builtin_trap();
    (void)finish(t.reader.reply());
    return 0;
  }

  // Odd: a server answers, with an ephemeral key from the input.
  std::uint8_t eph_bytes[key_size] = {};
  const std::size_t have = std::min(input.size(), key_size);
  std::copy(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(have), eph_bytes);
  const private_key eph = private_key::from_bytes(eph_bytes);
  const server_reply r = respond(eph);
  std::vector<std::uint8_t> wire = r.message;
  const bytes records = input.subspan(have);
  wire.insert(wire.end(), records.begin(), records.end());
  if (bit1) {
    const std::size_t at = (static_cast<std::size_t>(data[0]) * 131 + size) % tb::response_size;
    wire[at] ^= static_cast<std::uint8_t>(1u << (data[0] >> 5));
  }

  const reply_taker t = take_in_chunks(wire, sizes);
  if (!bit1) {
    if (t.refused || !t.whole() || t.reply() != r.message) __builtin_trap();
    if (!std::equal(t.records.begin(), t.records.end(), records.begin(), records.end())) __builtin_trap();
    const auto keys = finish(t.reader.reply());
    if (!keys) __builtin_trap();
    if (!(keys->send == r.server_receive && keys->receive == r.server_send && keys->handshake_hash == r.hash))
      __builtin_trap();
    return 0;
  }
  // Flipped: whatever was taken, it never authenticates; nor does the
  // flipped response handed over whole.
  if (t.whole() && finish(t.reader.reply())) __builtin_trap();
  if (finish(bytes(wire).first(tb::response_size))) __builtin_trap();
  return 0;
}
