#include "tools/lopower-ctl/top_cli.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "tools/lopower-ctl/top_view.h"

namespace lopower {
namespace {

using clock = std::chrono::steady_clock;

volatile sig_atomic_t stop_requested = 0;

extern "C" void on_stop_signal(int) { stop_requested = 1; }

struct options {
  double interval = 1.0;
  bool once = false;
};

bool parse(const std::vector<std::string>& args, options& o) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--once") {
      o.once = true;
    } else if (args[i] == "--interval" && i + 1 < args.size()) {
      try {
        std::size_t used = 0;
        o.interval = std::stod(args[++i], &used);
        if (used != args[i].size()) return false;
      } catch (const std::exception&) {
        return false;
      }
    } else {
      return false;
    }
  }
  return o.interval >= 0.1 && o.interval <= 60;
}

// The terminal's size; 80x24 when stdout is not a terminal.
std::pair<unsigned, unsigned> terminal_size() {
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return {ws.ws_col, ws.ws_row};
  return {80, 24};
}

struct timed_sample {
  top_sample sample;
  clock::time_point at;
};

timed_sample take_sample(const ctl_caller& call) {
  timed_sample s;
  s.sample.status = call({"status", nlohmann::json::object()});
  s.sample.devices = call({"device.list", nlohmann::json::object()});
  s.at = clock::now();
  return s;
}

double seconds_between(clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Sleeps until `deadline`; false when it was cut short by a signal asking to stop.
bool sleep_until(clock::time_point deadline) {
  while (!stop_requested) {
    const auto left = deadline - clock::now();
    if (left <= clock::duration::zero()) return true;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    nanosleep(&ts, nullptr);
  }
  return false;
}

// Input without echo or line buffering (so that q is read at once), the
// alternate screen and no cursor, all put back when it goes out of scope:
// on q, Ctrl-C, SIGTERM or an error alike.
class screen_session {
 public:
  screen_session() {
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C is still SIGINT
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      keys_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    std::fputs("\x1b[?1049h\x1b[?25l", stdout);
    std::fflush(stdout);
  }
  ~screen_session() {
    std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (keys_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  screen_session(const screen_session&) = delete;
  screen_session& operator=(const screen_session&) = delete;

  // Waits until `deadline` for q; false when q was pressed or a signal asks to stop.
  bool wait(clock::time_point deadline) const {
    if (!keys_) return sleep_until(deadline);
    while (!stop_requested) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) return true;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno != EINTR) return sleep_until(deadline);
      if (n > 0) {
        char c = 0;
        if (read(STDIN_FILENO, &c, 1) <= 0) return sleep_until(deadline);  // stdin went away: only signals stop us now
        if (c == 'q' || c == 'Q') return false;
      }
    }
    return false;
  }

 private:
  termios saved_{};
  bool keys_ = false;
};

void draw(const std::vector<std::string>& lines) {
  // Home, each line cleared to its end, the rest of the screen cleared: no flicker.
  std::string out = "\x1b[H";
  for (std::size_t i = 0; i < lines.size(); ++i) out += lines[i] + "\x1b[K" + (i + 1 < lines.size() ? "\r\n" : "");
  out += "\x1b[J";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int once(const options& o, const ctl_caller& call) {
  const timed_sample first = take_sample(call);
  if (!sleep_until(first.at + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(o.interval))))
    return 130;
  const timed_sample second = take_sample(call);
  const auto [width, height] = terminal_size();
  for (const std::string& l : render_top(&first.sample, second.sample, seconds_between(first.at, second.at), width, height))
    std::printf("%s\n", l.c_str());
  return 0;
}

int live(const options& o, const ctl_caller& call) {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;  // no SA_RESTART: poll and nanosleep return at once
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  const auto every = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(o.interval));
  std::string failure;
  {
    screen_session screen;
    std::optional<timed_sample> previous;
    try {
      while (!stop_requested) {
        timed_sample current = take_sample(call);
        const auto [width, height] = terminal_size();
        const double interval = previous ? seconds_between(previous->at, current.at) : o.interval;
        draw(render_top(previous ? &previous->sample : nullptr, current.sample, interval, width, height));
        const auto next = current.at + every;
        previous = std::move(current);
        if (!screen.wait(next)) break;
      }
    } catch (const std::exception& e) {
      // A request cut short by Ctrl-C is no failure.
      if (!stop_requested) failure = e.what();
    }
  }
  if (!failure.empty()) {
    std::fprintf(stderr, "lopower-ctl top: %s\n", failure.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int run_top_command(const std::vector<std::string>& args, const ctl_caller& call) {
  options o;
  if (!parse(args, o)) {
    std::fputs("usage: lopower-ctl top [--interval SECONDS (0.1..60)] [--once]\n", stderr);
    return 2;
  }
  try {
    return o.once ? once(o, call) : live(o, call);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lopower-ctl top: %s\n", e.what());
    return 1;
  }
}

}  // namespace lopower
