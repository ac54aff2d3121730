#pragma once

#include <memory>
#include <string_view>

#include "source/common/buffer.h"

namespace sluice::network {

enum class PostIoAction { kKeepOpen, kClose };

struct IoOutcome {
  PostIoAction action = PostIoAction::kKeepOpen;
  uint64_t bytes = 0;
  bool end_stream = false;  // read: the peer sent FIN
};

// The layer between a connection and its fd: plain TCP now, TLS (BoringSSL) later. It reads
// into and writes from the connection's buffers; the connection owns the fd and the events.
class TransportSocket {
 public:
  virtual ~TransportSocket() = default;
  virtual std::string_view protocol() const = 0;
  // Reads what is available (bounded by `max_bytes` for fairness between connections).
  virtual IoOutcome doRead(int fd, Buffer& buffer, uint64_t max_bytes) = 0;
  // Writes as much of `buffer` as the kernel takes.
  virtual IoOutcome doWrite(int fd, Buffer& buffer) = 0;
  // The connect finished (client side) or the connection was accepted (server side).
  virtual void onConnected() {}
};
using TransportSocketPtr = std::unique_ptr<TransportSocket>;

// Plain TCP.
class RawBufferSocket : public TransportSocket {
 public:
  std::string_view protocol() const override { return "tcp"; }
  IoOutcome doRead(int fd, Buffer& buffer, uint64_t max_bytes) override;
  IoOutcome doWrite(int fd, Buffer& buffer) override;
};

}  // namespace sluice::network
