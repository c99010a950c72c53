#pragma once
// Enums declared once, as an X-macro list (like lopower/drop_reasons.h): the
// enumerators, their count and their names all come from the list, so none
// can be added without a name and no count is kept by hand.
//
//   #define MY_THINGS(X) X(first) X(second)   // X(identifier[, anything])
//   enum class my_thing : std::uint8_t { MY_THINGS(LOPOWER_ENUM_ENUMERATOR) };
//   inline constexpr std::size_t my_thing_count = LOPOWER_ENUM_COUNT(MY_THINGS);
//   inline constexpr std::array<const char*, my_thing_count> my_thing_names{MY_THINGS(LOPOWER_ENUM_NAME)};
//   ... name_in(my_thing_names, t, "?")
// Lists of X(identifier, "description") also give LOPOWER_ENUM_TEXT.

#include <array>
#include <cstddef>

#define LOPOWER_ENUM_ENUMERATOR(id, ...) id,
#define LOPOWER_ENUM_NAME(id, ...) #id,
// For lists of X(identifier, "description"): the descriptions in order.
#define LOPOWER_ENUM_TEXT(id, text, ...) text,
#define LOPOWER_ENUM_PLUS_ONE(id, ...) +1
#define LOPOWER_ENUM_COUNT(list) (0 list(LOPOWER_ENUM_PLUS_ONE))

namespace lopower {

// The name of `e` from its list's names; `unknown` for a value off the list.
template <class E, std::size_t N>
constexpr const char* name_in(const std::array<const char*, N>& names, E e, const char* unknown) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < N ? names[i] : unknown;
}

}  // namespace lopower
