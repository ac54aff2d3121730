#include "source/tls/ktls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace sluice::tls {

bool KernelTlsAvailable() {
  static const bool available = [] {
#ifdef TCP_ULP
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const int rc = ::setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
    const int err = errno;
    ::close(fd);
    return rc == 0 || err != ENOENT;
#else
    return false;
#endif
  }();
  return available;
}

}  // namespace sluice::tls
