#include "control/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace lopower::log {
namespace {

std::atomic<int> threshold{static_cast<int>(level::info)};
constexpr const char* names[] = {"error", "warning", "info", "debug"};

}  // namespace

bool set_level(std::string_view name) {
  for (int i = 0; i < 4; ++i)
    if (name == names[i]) {
      threshold.store(i);
      return true;
    }
  return false;
}

bool enabled(level l) { return static_cast<int>(l) <= threshold.load(std::memory_order_relaxed); }

void write(level l, const char* format, ...) {
  if (!enabled(l)) return;
  char stamp[32];
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  char message[2048];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof message, format, args);
  va_end(args);
  std::fprintf(stderr, "%s.%03ldZ lopowerd %s: %s\n", stamp, ts.tv_nsec / 1'000'000, names[static_cast<int>(l)], message);
}

}  // namespace lopower::log
