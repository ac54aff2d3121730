#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::network {

// An IPv4 or IPv6 socket address (a value type).
class Address {
 public:
  Address() = default;
  // Parses an IP literal ("127.0.0.1", "::1"); names are not resolved.
  static absl::StatusOr<Address> fromIpPort(std::string_view ip, uint32_t port);
  static Address fromSockaddr(const sockaddr* sa, socklen_t len);
  // The local address bound to `fd` (getsockname), e.g. to learn the port the kernel picked.
  static absl::StatusOr<Address> localOf(int fd);

  int family() const { return storage_.sa.sa_family; }
  uint16_t port() const;
  Address withPort(uint16_t port) const;
  const sockaddr* sockaddr_ptr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return len_; }
  // "127.0.0.1:80", "[::1]:80".
  std::string asString() const;
  std::string ip() const;
  // 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104: reachable from this host only. The wildcard
  // addresses (0.0.0.0, ::) are not: they listen on every interface.
  bool isLoopback() const;

 private:
  // Just big enough for IPv4 and IPv6 (32 bytes with the length, not sockaddr_storage's 128):
  // every connection carries two of these.
  union Storage {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
  };
  Storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace sluice::network
