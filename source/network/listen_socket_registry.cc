#include "source/network/listen_socket_registry.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace sluice::network {

ListenSocketRegistry::~ListenSocketRegistry() {
  releaseReservations();
  closeAll();
}

absl::StatusOr<Address> ListenSocketRegistry::reserve(const Address& address) {
  if (address.port() != 0 && holds(address)) return address;
  auto fd = ReserveAddress(address);
  if (!fd.ok()) return fd.status();
  reservations_.push_back(*fd);
  return Address::localOf(*fd);
}

void ListenSocketRegistry::releaseReservations() {
  for (int fd : reservations_) ::close(fd);
  reservations_.clear();
}

bool ListenSocketRegistry::holds(const Address& address) const {
  const std::string prefix = absl::StrCat(address.asString(), "#");
  auto it = sockets_.lower_bound(prefix);
  return it != sockets_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

absl::StatusOr<std::vector<int>> ListenSocketRegistry::getOrCreate(const Address& address,
                                                                   const ListenOptions& options,
                                                                   size_t count) {
  std::vector<int> fds;
  Address bind_address = address;
  for (size_t i = 0; i < count; ++i) {
    // Port 0 cannot name an inherited socket: it always means "a new one on a free port".
    if (bind_address.port() != 0) {
      if (auto it = sockets_.find(absl::StrCat(bind_address.asString(), "#", i));
          it != sockets_.end()) {
        fds.push_back(it->second);
        continue;
      }
    }
    auto fd = CreateListenSocket(bind_address, options);
    if (!fd.ok()) return fd.status();
    if (bind_address.port() == 0) {
      // The kernel chose a port: every further socket of this group must share it.
      auto local = Address::localOf(*fd);
      if (!local.ok()) return local.status();
      bind_address = bind_address.withPort(local->port());
    }
    sockets_[absl::StrCat(bind_address.asString(), "#", i)] = *fd;
    fds.push_back(*fd);
  }
  return fds;
}

void ListenSocketRegistry::adopt(const std::string& key, int fd) { sockets_[key] = fd; }

void ListenSocketRegistry::closeAll() {
  for (auto& [key, fd] : sockets_) ::close(fd);
  sockets_.clear();
}

}  // namespace sluice::network
