// DNS-over-TCP framing (control/dns/tcp_framing.h): messages come off the
// front of a connection's bytes whole, however the bytes arrived.

#include "control/dns/tcp_framing.h"

#include <gtest/gtest.h>

namespace lopower::dns {
namespace {

using bytes = std::vector<std::uint8_t>;

TEST(TcpFraming, MessagesComeOutWholeWhateverTheSegments) {
  const bytes a = {1, 2, 3}, b(300, 0xab);
  bytes stream = *frame_tcp_message(a);
  const bytes fb = *frame_tcp_message(b);
  stream.insert(stream.end(), fb.begin(), fb.end());
  ASSERT_EQ(stream.size(), 2 + 3 + 2 + 300u);
  EXPECT_EQ(stream[0], 0);
  EXPECT_EQ(stream[1], 3);
  EXPECT_EQ(stream[5], 1);  // 300 = 0x012c, big-endian
  EXPECT_EQ(stream[6], 0x2c);

  bytes in;
  std::vector<bytes> out;
  for (std::uint8_t byte : stream) {  // one byte at a time
    in.push_back(byte);
    while (auto m = take_tcp_message(in)) out.push_back(*m);
  }
  EXPECT_EQ(out, (std::vector<bytes>{a, b}));
  EXPECT_TRUE(in.empty());

  in = stream;  // all at once
  EXPECT_EQ(take_tcp_message(in), a);
  EXPECT_EQ(take_tcp_message(in), b);
  EXPECT_FALSE(take_tcp_message(in));
}

TEST(TcpFraming, PartsWaitAndEmptyMessagesComeOutEmpty) {
  bytes in = {0};
  EXPECT_FALSE(take_tcp_message(in));
  in = {0, 4, 9, 9, 9};
  EXPECT_FALSE(take_tcp_message(in));
  EXPECT_EQ(in.size(), 5u) << "nothing taken from a message not yet whole";
  in = {0, 0, 0, 1, 7};
  EXPECT_EQ(take_tcp_message(in), bytes{});
  EXPECT_EQ(take_tcp_message(in), bytes{7});
  EXPECT_FALSE(frame_tcp_message(bytes(65536)));
  EXPECT_EQ(frame_tcp_message(bytes(65535))->size(), 65537u);
}

}  // namespace
}  // namespace lopower::dns
