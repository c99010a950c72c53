#pragma once
// Anti-replay for transport counters (whitepaper 5.4.6, RFC 6479): a sliding
// window of 8192 bits kept as a ring of 64-bit words, so that moving the
// window clears whole words and a check touches one word. Call validate()
// only for packets that authenticated, in any order; it is not thread-safe
// (one writer at a time), allocation-free and noexcept.

#include <cstddef>
#include <cstdint>

#include "lopower/wireguard_messages.h"

namespace lopower {

class replay_window {
 public:
  static constexpr std::size_t bits_total = 8192;
  static constexpr std::size_t word_bits = 64;
  static constexpr std::size_t words = bits_total / word_bits;
  // How far behind the highest counter seen a counter may be and still be
  // accepted (once): one word of the ring is always the one being cleared.
  static constexpr std::uint64_t window_size = bits_total - word_bits;

  // True if `counter` is new: below REJECT_AFTER_MESSAGES, within the window
  // and not seen before; it is then recorded. False for anything else.
  bool validate(std::uint64_t counter) noexcept {
    if (counter >= wg::reject_after_messages) return false;
    // Shifted by one so that top_ == 0 means "nothing received yet" and
    // counter 0 is still accepted.
    const std::uint64_t c = counter + 1;
    if (c + window_size < top_) return false;  // too old (no overflow: c < 2^64 - 2^13)
    const std::uint64_t word = c / word_bits;
    if (c > top_) {
      // Slide: clear the words between the old top and the new one, at most
      // the whole ring when the counter jumped by more than the window.
      const std::uint64_t top_word = top_ / word_bits;
      std::uint64_t advance = word - top_word;
      if (advance > words) advance = words;
      for (std::uint64_t i = 1; i <= advance; ++i) bitmap_[(top_word + i) % words] = 0;
      top_ = c;
    }
    std::uint64_t& slot = bitmap_[word % words];
    const std::uint64_t bit = std::uint64_t{1} << (c % word_bits);
    if (slot & bit) return false;
    slot |= bit;
    return true;
  }

  // The highest counter accepted so far, if any.
  bool empty() const noexcept { return top_ == 0; }
  std::uint64_t highest() const noexcept { return top_ - 1; }

  void reset() noexcept {
    top_ = 0;
    for (auto& w : bitmap_) w = 0;
  }

 private:
  std::uint64_t top_ = 0;  // highest accepted counter + 1; 0: none
  std::uint64_t bitmap_[words]{};
};

}  // namespace lopower
