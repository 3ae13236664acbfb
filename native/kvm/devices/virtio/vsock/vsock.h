// virtio-vsock (virtio 1.2, 5.10), host side on Unix sockets as Firecracker does it: a guest
// connection to host port P becomes a connection to the socket `<uds_path>_<P>`; a host client
// of the socket `<uds_path>` that writes "CONNECT <port>\n" gets a connection to that guest port
// and reads "OK <host port>\n" once the guest accepts. Stream sockets only.
//
// Threads: Process runs on the device thread (doorbells), and so does the handler Activate adds
// for the host sockets; Reset comes from a vCPU thread. One mutex covers the lot, and the socket
// handler lets go of it before it asks the transport to process the rx queue.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "devices/virtio/device.h"
#include "devices/virtio/vsock/connection.h"
#include "devices/virtio/vsock/packet.h"
#include "fd.h"

namespace vmm::devices::virtio::vsock {

class Vsock : public VirtioDevice {
 public:
  // 5.10.2: virtqueues.
  static constexpr uint16_t kRxQueue = 0, kTxQueue = 1, kEventQueue = 2;
  // Bounds on what a guest or a host client can make us hold.
  static constexpr size_t kMaxConnections = 256;
  static constexpr size_t kMaxHostClients = 64;  // connected, CONNECT line not read yet
  static constexpr size_t kMaxControlPackets = 1024;
  static constexpr size_t kMaxConnectLine = 32;  // "CONNECT 4294967295\n" is 19 bytes

  // Listens on `uds_path`; throws VmmError naming the problem (a bad CID, a path too long for a
  // Unix socket address, a path already taken).
  Vsock(uint64_t guest_cid, const std::string& uds_path);
  ~Vsock() override;  // closes every socket and removes the listening socket's file

  uint32_t device_id() const override { return kDeviceIdVsock; }
  std::vector<uint16_t> queue_max_sizes() const override { return {256, 256, 256}; }
  void ReadConfig(uint64_t offset, uint8_t* data, uint32_t len) override;
  bool Process(uint16_t queue_index, Queue& queue, const GuestMemory& memory) override;
  void Reset() override;
  // Every connection ends (its host socket closed) and the guest is told TRANSPORT_RESET on the
  // event queue (5.10.6.6): a restored guest must take its connections for gone, and keep its
  // listening sockets. Until the guest has seen the event (it refills the event queue), nothing
  // more goes to its rx queue: a connection made after the restore is not reset with the old.
  bool PrepareSnapshot(std::vector<Queue>& queues, const GuestMemory& memory) override;
  // Whether the guest has yet to see that event: the only state a restore needs.
  std::vector<uint8_t> SaveState() override;
  void RestoreState(const std::vector<uint8_t>& bytes, const std::string& what) override;
  void Activate(EventLoop& loop, std::function<void(uint16_t queue_index)> process_queue) override;

  // Handles what the host sockets have for us; true when the rx queue then has work. Activate's
  // handler calls it on the device thread; tests call it directly. `host_events_fd` is readable
  // while there is something to handle.
  bool OnHostEvents();
  int host_events_fd() const { return epoll_.get(); }
  // Connections waiting for rx buffers to send the guest a packet: at most kMaxConnections.
  size_t waiting_for_rx() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ready_.size();
  }

 private:
  using Key = std::pair<uint32_t, uint32_t>;  // (host port, guest port)
  struct HostClient {
    Fd socket;
    std::string line;
  };

  void DropEverything();
  bool ProcessRx(Queue& queue, const GuestMemory& memory);
  bool ProcessTx(Queue& queue, const GuestMemory& memory);
  void OnGuestPacket(const Header& h, const std::vector<iovec>& payload);
  void OnGuestRequest(const Header& h);
  void OnConnectionEvents(Connection& c, uint32_t events);
  void AcceptHostClients();
  void ReadConnectLine(int fd);
  uint32_t AllocateHostPort();

  Connection& Add(std::unique_ptr<Connection> c);
  // Puts the connection where its state says: killed (with RST) when broken or done, otherwise
  // queued for the rx queue if it has a packet to send, and watched for what it waits on.
  void Settle(Connection& c);
  void Kill(Connection& c, bool send_rst);
  void Watch(int fd, uint32_t events);
  void SetRxStarved(bool starved);
  void QueueRst(uint32_t host_port, uint32_t guest_port);
  void Kick();

  const uint64_t guest_cid_;
  const std::string uds_path_;
  std::mutex mutex_;
  Fd epoll_;     // every host socket, the listener and `kick_`
  Fd kick_;      // eventfd: the tx path left work for the rx queue
  Fd listener_;  // <uds_path>
  std::map<Key, std::unique_ptr<Connection>> connections_;
  std::unordered_map<int, Key> by_fd_;
  std::unordered_map<int, uint32_t> watched_;  // fd -> the events epoll_ watches for
  std::map<int, HostClient> host_clients_;
  std::deque<Header> control_;  // RSTs of connections that are gone, or never were
  std::deque<Key> ready_;       // live connections with a packet for the guest, in turn
  std::set<Key> scheduled_;     // the keys in ready_
  std::optional<DescriptorChain> spare_rx_;  // popped, then found nothing to carry
  bool rx_starved_ = false;  // the guest gave no rx buffers: host sockets are not read
  bool awaiting_reset_ack_ = false;  // TRANSPORT_RESET sent, the guest has not refilled the event queue
  static constexpr uint32_t kFirstHostPort = 1u << 30;  // Firecracker's ephemeral range
  uint32_t next_host_port_ = kFirstHostPort;
};

}  // namespace vmm::devices::virtio::vsock
