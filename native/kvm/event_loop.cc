#include "event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "error.h"

namespace vmm {

EventLoop::EventLoop(ErrorHandler on_error) : on_error_(std::move(on_error)) {
  epoll_ = Fd(CheckSys(epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
  wakeup_ = Fd(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd"));
  Add(wakeup_.get(), EPOLLIN, [](uint32_t) {});
}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Add(int fd, uint32_t events, Handler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  CheckSys(epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), "epoll_ctl(EPOLL_CTL_ADD)");
  handlers_[fd] = std::move(handler);
}

void EventLoop::Remove(int fd) {
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::Start(std::function<void()> prepare) {
  thread_ = std::thread([this, prepare = std::move(prepare)] { Run(prepare); });
}

void EventLoop::Stop() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!write(wakeup_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void EventLoop::Run(const std::function<void()>& prepare) {
  try {
    if (prepare) prepare();
  } catch (const std::exception& e) {
    on_error_(e.what());
    return;
  }
  epoll_event events[16];
  while (!stopping_) {
    int n = epoll_wait(epoll_.get(), events, 16, -1);
    for (int i = 0; i < n && !stopping_; ++i) {
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;  // removed by an earlier handler of this batch
      Handler handler = it->second;         // a copy: the handler may remove itself
      try {
        handler(events[i].events);
      } catch (const std::exception& e) {  // an exception must not end the process from this thread
        on_error_(e.what());
      }
    }
  }
}

}  // namespace vmm
