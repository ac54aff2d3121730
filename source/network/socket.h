#pragma once

#include <chrono>
#include <optional>

#include "absl/status/statusor.h"
#include "source/network/address.h"

namespace sluice::network {

// Options for a listening socket.
struct ListenOptions {
  bool reuse_port = true;
  int backlog = 0;  // 0: /proc/sys/net/core/somaxconn
};

// socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind + listen, non-blocking and close-on-exec.
absl::StatusOr<int> CreateListenSocket(const Address& address, const ListenOptions& options);

// The kernel's accept-queue cap (net.core.somaxconn), or 4096 when it cannot be read.
int SystemSomaxconn();

// TCP keepalive settings; unset fields keep the kernel's defaults.
struct KeepaliveOptions {
  std::optional<int> probes;
  std::optional<int> idle_seconds;
  std::optional<int> interval_seconds;
};

// Applied to every accepted socket.
void SetNoDelay(int fd, bool on);
void SetKeepalive(int fd, const KeepaliveOptions& options);

// A non-blocking socket with connect(2) started; EINPROGRESS counts as started.
absl::StatusOr<int> StartConnect(const Address& address);

}  // namespace sluice::network
