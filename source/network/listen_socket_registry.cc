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
  auto it = sockets_.find(address.asString());
  return it != sockets_.end() && !it->second.empty();
}

size_t ListenSocketRegistry::count() const {
  size_t n = 0;
  for (const auto& [address, fds] : sockets_) n += fds.size();
  return n;
}

absl::StatusOr<std::vector<int>> ListenSocketRegistry::getOrCreate(const Address& address,
                                                                   const ListenOptions& options,
                                                                   size_t count) {
  std::vector<int> fds;
  // Port 0 cannot name an inherited socket: it always means "a new group on a free port".
  if (address.port() != 0) {
    if (auto it = sockets_.find(address.asString()); it != sockets_.end()) fds = it->second;
  }
  Address bind_address = address;
  if (!fds.empty()) {
    auto local = Address::localOf(fds.front());
    if (!local.ok()) return local.status();
    bind_address = *local;
  }
  std::vector<int> created;
  while (fds.size() < count) {
    auto fd = CreateListenSocket(bind_address, options);
    if (!fd.ok()) {
      for (int f : created) ::close(f);
      return fd.status();
    }
    if (bind_address.port() == 0) {
      // The kernel chose a port: every further socket of this group must share it.
      auto local = Address::localOf(*fd);
      if (!local.ok()) {
        ::close(*fd);
        for (int f : created) ::close(f);
        return local.status();
      }
      bind_address = bind_address.withPort(local->port());
    }
    created.push_back(*fd);
    fds.push_back(*fd);
  }
  claimed_.insert(bind_address.asString());
  auto& group = sockets_[bind_address.asString()];
  group.insert(group.end(), created.begin(), created.end());
  return fds;
}

void ListenSocketRegistry::adopt(const std::string& address, int fd) {
  sockets_[address].push_back(fd);
}

size_t ListenSocketRegistry::closeUnclaimed() {
  size_t closed = 0;
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (claimed_.contains(it->first)) {
      ++it;
      continue;
    }
    for (int fd : it->second) ::close(fd);
    closed += it->second.size();
    it = sockets_.erase(it);
  }
  return closed;
}

void ListenSocketRegistry::closeAll() {
  for (auto& [address, fds] : sockets_) {
    for (int fd : fds) ::close(fd);
  }
  sockets_.clear();
}

}  // namespace sluice::network
