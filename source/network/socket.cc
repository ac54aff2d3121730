#include "source/network/socket.h"

#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::network {

namespace {
absl::Status Errno(const char* what, const Address& address) {
  return absl::UnavailableError(absl::StrCat(what, " ", address.asString(), ": ", strerror(errno)));
}
}  // namespace

int SystemSomaxconn() {
  FILE* f = fopen("/proc/sys/net/core/somaxconn", "re");
  int v = 0;
  if (f != nullptr) {
    if (fscanf(f, "%d", &v) != 1) v = 0;
    fclose(f);
  }
  return v > 0 ? v : 4096;
}

absl::StatusOr<int> CreateListenSocket(const Address& address, const ListenOptions& options) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket", address);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    auto status = Errno("setsockopt(SO_REUSEPORT)", address);
    close(fd);
    return status;
  }
  if (address.family() == AF_INET6) {
    // "::" means IPv6 only; a dual-stack listener is two listeners.
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd, address.sockaddr_ptr(), address.length()) != 0) {
    auto status = Errno("bind", address);
    close(fd);
    return status;
  }
  int backlog = options.backlog > 0 ? options.backlog : SystemSomaxconn();
  if (listen(fd, backlog) != 0) {
    auto status = Errno("listen", address);
    close(fd);
    return status;
  }
  return fd;
}

absl::StatusOr<int> ReserveAddress(const Address& address) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket", address);
  int one = 1;
  // Without SO_REUSEADDR, TIME_WAIT sockets of the port (a restart) would count as taken.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address.family() == AF_INET6) {
    // As the listening sockets will be: "::" claims IPv6 only.
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd, address.sockaddr_ptr(), address.length()) != 0) {
    const int err = errno;
    auto status = Errno("bind", address);
    close(fd);
    if (err == EADDRINUSE) return absl::AlreadyExistsError(status.message());
    return status;
  }
  return fd;
}

void SetNoDelay(int fd, bool on) {
  int v = on ? 1 : 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v));
}

void SetKeepalive(int fd, const KeepaliveOptions& options) {
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  if (options.probes) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &*options.probes, sizeof(int));
  if (options.idle_seconds) {
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &*options.idle_seconds, sizeof(int));
  }
  if (options.interval_seconds) {
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &*options.interval_seconds, sizeof(int));
  }
}

absl::StatusOr<int> StartConnect(const Address& address) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket", address);
  if (connect(fd, address.sockaddr_ptr(), address.length()) != 0 && errno != EINPROGRESS) {
    auto status = Errno("connect", address);
    close(fd);
    return status;
  }
  return fd;
}

}  // namespace sluice::network
