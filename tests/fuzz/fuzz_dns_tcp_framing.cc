// libFuzzer target: DNS-over-TCP framing (control/dns/tcp_framing.h), as
// lopower's DNS server reads what a device sends on a connection and its TCP
// upstream client reads a resolver's answer.
//
// The input is a byte stream, fed in chunks whose sizes the first byte
// picks. Invariants (a violation traps):
//   - what comes out, each message framed again, followed by what is left
//     waiting, is exactly what went in;
//   - what is left waiting is never a whole message, and never more than
//     one length and 65535 bytes;
//   - framing a message and taking it back gives the message.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "control/dns/tcp_framing.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lopower::dns;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::uint8_t* stream = data + 1;
  const std::size_t length = size - 1;

  std::vector<std::uint8_t> in, rebuilt;
  for (std::size_t at = 0; at < length; at += chunk) {
    const std::size_t n = std::min(chunk, length - at);
    in.insert(in.end(), stream + at, stream + at + n);
    while (auto message = take_tcp_message(in)) {
      const auto framed = frame_tcp_message(*message);
      check(framed.has_value());
      rebuilt.insert(rebuilt.end(), framed->begin(), framed->end());
      std::vector<std::uint8_t> again = *framed;
      const auto back = take_tcp_message(again);
      check(back.has_value() && *back == *message && again.empty());
    }
    check(in.size() <= 2 + 0xffff);
  }
  std::vector<std::uint8_t> left = in;
  check(!take_tcp_message(left).has_value());
  rebuilt.insert(rebuilt.end(), in.begin(), in.end());
  check(rebuilt == std::vector<std::uint8_t>(stream, stream + length));
  return 0;
}
