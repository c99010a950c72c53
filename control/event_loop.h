#pragma once
// The control plane's event loop: epoll over sockets, timerfd timers and a
// signalfd, all on the main lcore. Everything slow in lopowerd runs from
// here; nothing here runs on a worker.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>

namespace lopower {

class event_loop {
 public:
  using fd_callback = std::function<void(std::uint32_t events)>;
  using timer_callback = std::function<void()>;
  using timer_id = int;

  event_loop();
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  // Watches `fd` (not owned) for `events` (EPOLLIN, ...). Throws on failure.
  void watch(int fd, std::uint32_t events, fd_callback callback);
  void unwatch(int fd);
  // Changes the events a watched fd is polled for.
  void modify(int fd, std::uint32_t events);

  // Calls `callback` after `delay`, then every `interval` if it is non-zero.
  timer_id add_timer(std::chrono::microseconds delay, std::chrono::microseconds interval, timer_callback callback);
  void cancel_timer(timer_id id);

  // Ends run() on these signals (blocked in the calling thread first; block
  // them before creating other threads so none of them takes the signal).
  void stop_on_signals(std::initializer_list<int> signals, std::function<void(int)> on_signal);

  void run();
  void stop() { running_ = false; }

 private:
  void dispatch(int fd, std::uint32_t events);

  int epoll_fd_ = -1;
  bool running_ = false;
  int signal_fd_ = -1;
  std::unordered_map<int, std::shared_ptr<fd_callback>> watched_;
  std::unordered_map<int, std::shared_ptr<timer_callback>> timers_;  // timerfd -> callback
};

}  // namespace lopower
