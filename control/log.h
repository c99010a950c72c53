#pragma once
// lopowerd's log: one line per event on stderr (journald adds the rest).

#include <string_view>

namespace lopower::log {

enum class level { error = 0, warning = 1, info = 2, debug = 3 };

// Returns false for an unknown name.
bool set_level(std::string_view name);
bool enabled(level l);
void write(level l, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace lopower::log

#define LOG_ERROR(...) ::lopower::log::write(::lopower::log::level::error, __VA_ARGS__)
#define LOG_WARNING(...) ::lopower::log::write(::lopower::log::level::warning, __VA_ARGS__)
#define LOG_INFO(...) ::lopower::log::write(::lopower::log::level::info, __VA_ARGS__)
#define LOG_DEBUG(...) \
  do { if (::lopower::log::enabled(::lopower::log::level::debug)) ::lopower::log::write(::lopower::log::level::debug, __VA_ARGS__); } while (0)
