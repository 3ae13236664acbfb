#include "devices/virtio/fs/fs.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "error.h"
#include "event_loop.h"

namespace vmm::devices::virtio {

namespace {
// struct virtio_fs_config (5.11.4): the tag, NUL-padded, then num_request_queues.
constexpr uint64_t kConfigSize = Fs::kTagMax + 4;

Fd NewEventFd() { return Fd(CheckSys(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")); }
}  // namespace

Fs::Fs(Fd socket, std::string tag, const GuestMemory& memory)
    : memory_(memory), tag_(std::move(tag)), backend_(std::move(socket), "the virtio-fs back end for \"" + tag_ + "\"") {
  if (tag_.empty() || tag_.size() > kTagMax || tag_.find('\0') != std::string::npos) {
    throw VmmError("a virtio-fs tag is 1 to 36 bytes without NUL, not \"" + tag_ + "\"");
  }
  const uint64_t offered = backend_.Connect();
  if (!(offered & VhostUserFrontend::kFeatureVersion1)) {
    throw VmmError("the virtio-fs back end for \"" + tag_ + "\" does not offer VIRTIO_F_VERSION_1");
  }
  // The guest is offered VERSION_1 alone, so that is all it can negotiate.
  backend_.SetFeatures(VhostUserFrontend::kFeatureVersion1);
  backend_.SetMemTable(memory_);
  for (size_t q = 0; q < 1 + kRequestQueues; ++q) calls_.push_back(NewEventFd());
  kicks_.resize(calls_.size());
  apply_ = NewEventFd();
}

void Fs::ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) {
  uint8_t config[kConfigSize] = {};
  std::memcpy(config, tag_.data(), tag_.size());
  const uint32_t queues = kRequestQueues;  // little-endian, as is the host
  std::memcpy(config + kTagMax, &queues, sizeof queues);
  std::memset(data, 0, len);
  if (offset < kConfigSize) std::memcpy(data, config + offset, std::min<uint64_t>(len, kConfigSize - offset));
}

bool Fs::TakeDoorbell(uint16_t queue_index, int doorbell_fd) {
  if (queue_index >= kicks_.size()) return false;
  kicks_[queue_index] = Fd(static_cast<int>(CheckSys(dup(doorbell_fd), "dup", "a virtio-fs doorbell")));
  return true;
}

void Fs::Activate(EventLoop& loop, std::function<void(uint16_t queue_index)> process_queue) {
  for (uint16_t q = 0; q < calls_.size(); ++q) {
    const int fd = calls_[q].get();
    loop.Add(fd, EPOLLIN, [fd, q, process_queue](uint32_t) {
      uint64_t count;
      (void)!read(fd, &count, sizeof count);
      process_queue(q);
    });
  }
  loop.Add(apply_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t count;
    (void)!read(apply_.get(), &count, sizeof count);
    Apply();
  });
}

void Fs::DriverReady(const std::vector<Queue>& queues) {
  std::vector<std::optional<VhostUserFrontend::Ring>> rings;
  for (const Queue& q : queues) {
    if (q.ready) rings.push_back(VhostUserFrontend::Ring{q.size, q.desc_addr, q.avail_addr, q.used_addr});
    else rings.emplace_back();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wanted_ = std::move(rings);
  }
  Wake();
}

void Fs::Reset() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wanted_.reset();
  }
  Wake();
}

void Fs::Wake() {
  uint64_t one = 1;
  (void)!write(apply_.get(), &one, sizeof one);
}

void Fs::Apply() {
  std::optional<std::vector<std::optional<VhostUserFrontend::Ring>>> wanted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wanted = wanted_;
  }
  for (uint32_t index : started_) backend_.StopRing(index);
  started_.clear();
  if (!wanted) return;
  for (uint32_t q = 0; q < wanted->size() && q < kicks_.size(); ++q) {
    if (!(*wanted)[q] || !kicks_[q].valid()) continue;
    backend_.StartRing(q, *(*wanted)[q], memory_, kicks_[q].get(), calls_[q].get());
    started_.push_back(q);
  }
}

}  // namespace vmm::devices::virtio
