#include "control/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace lopower {
namespace {

std::system_error sys_error(const char* what) { return std::system_error(errno, std::generic_category(), what); }

timespec to_timespec(std::chrono::microseconds us) {
  return timespec{static_cast<time_t>(us.count() / 1'000'000), static_cast<long>(us.count() % 1'000'000 * 1000)};
}

}  // namespace

event_loop::event_loop() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_fd_ < 0) throw sys_error("epoll_create1");
}

event_loop::~event_loop() {
  for (auto& [fd, cb] : timers_) close(fd);
  if (signal_fd_ >= 0) close(signal_fd_);
  close(epoll_fd_);
}

void event_loop::watch(int fd, std::uint32_t events, fd_callback callback) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) throw sys_error("epoll_ctl add");
  watched_[fd] = std::make_shared<fd_callback>(std::move(callback));
}

void event_loop::modify(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) throw sys_error("epoll_ctl MOD");
}

void event_loop::unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watched_.erase(fd);
}

event_loop::timer_id event_loop::add_timer(std::chrono::microseconds delay, std::chrono::microseconds interval,
                                           timer_callback callback) {
  const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throw sys_error("timerfd_create");
  itimerspec spec{};
  spec.it_value = to_timespec(delay.count() > 0 ? delay : std::chrono::microseconds(1));
  spec.it_interval = to_timespec(interval);
  if (timerfd_settime(fd, 0, &spec, nullptr) != 0) {
    close(fd);
    throw sys_error("timerfd_settime");
  }
  auto cb = std::make_shared<timer_callback>(std::move(callback));
  timers_[fd] = cb;
  const bool periodic = interval.count() > 0;
  watch(fd, EPOLLIN, [this, fd, cb, periodic](std::uint32_t) {
    std::uint64_t expirations = 0;
    if (read(fd, &expirations, sizeof expirations) != sizeof expirations) return;
    // A one-shot timer goes first: its callback may add a timer that
    // reuses this fd number, which a later cancel would then hit.
    if (!periodic) cancel_timer(fd);
    (*cb)();
  });
  return fd;
}

void event_loop::cancel_timer(timer_id id) {
  if (timers_.erase(id) == 0) return;
  unwatch(id);
  close(id);
}

void event_loop::stop_on_signals(std::initializer_list<int> signals, std::function<void(int)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) throw sys_error("signalfd");
  watch(signal_fd_, EPOLLIN, [this, on_signal = std::move(on_signal)](std::uint32_t) {
    signalfd_siginfo info{};
    while (read(signal_fd_, &info, sizeof info) == sizeof info) {
      on_signal(static_cast<int>(info.ssi_signo));
      stop();
    }
  });
}

void event_loop::dispatch(int fd, std::uint32_t events) {
  auto it = watched_.find(fd);
  if (it == watched_.end()) return;
  auto cb = it->second;  // keeps the callback alive if it unwatches itself
  (*cb)(events);
}

void event_loop::run() {
  running_ = true;
  epoll_event events[64];
  while (running_) {
    const int n = epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sys_error("epoll_wait");
    }
    for (int i = 0; i < n && running_; ++i) dispatch(events[i].data.fd, events[i].events);
  }
}

}  // namespace lopower
