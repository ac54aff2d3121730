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

// Checks that no socket listens on `address` or on an address overlapping it (the same port on
// the wildcard address, or a specific one under this wildcard), and holds the port until the fd
// is closed. It binds with SO_REUSEADDR but without SO_REUSEPORT and does not listen: Linux then
// refuses the bind (EADDRINUSE) when a socket listens there — SO_REUSEPORT would let a second
// process join the group and take a share of the connections — or is bound there without
// SO_REUSEADDR, while sockets in TIME_WAIT or connections a draining process still serves do not
// count. SO_REUSEPORT sockets
// bound afterwards (this process's own) are not blocked by it, since it does not listen. Port 0:
// the kernel picks a free port, which the returned fd holds (read it with Address::localOf).
// Returns AlreadyExistsError when the address is taken, another error when the bind fails for
// another reason. Two processes checking the same address at the same moment can both pass (a
// reservation does not listen, so neither refuses the other's): the check catches a second
// instance started while the first runs, not that race.
absl::StatusOr<int> ReserveAddress(const Address& address);

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
