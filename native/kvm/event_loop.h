// The VMM's device thread: an epoll loop that runs a handler when one of its fds is ready.
// Device work that is not a direct vCPU register access (host input, later virtio queues)
// runs here, never on a vCPU thread and never on Node's main thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "fd.h"

namespace vmm {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  // Told what a handler threw; the loop itself goes on.
  using ErrorHandler = std::function<void(const std::string& what)>;

  explicit EventLoop(ErrorHandler on_error);
  ~EventLoop();  // stops and joins the thread

  // Watches `fd` for `events` (EPOLLIN, ...). Call from a handler or before Start().
  void Add(int fd, uint32_t events, Handler handler);
  void Remove(int fd);

  // Starts the thread, which first runs `prepare` (naming itself, locking itself down); if that
  // throws, on_error hears it and the loop does not run.
  void Start(std::function<void()> prepare = {});
  void Stop();

 private:
  void Run(const std::function<void()>& prepare);

  Fd epoll_;
  Fd wakeup_;  // eventfd: tells the loop to stop
  ErrorHandler on_error_;
  std::map<int, Handler> handlers_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace vmm
