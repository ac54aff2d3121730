#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/network/address.h"
#include "source/network/socket.h"

namespace sluice::network {

// Every listening socket of the process, keyed by "<address>#<index>" (index: the worker for
// SO_REUSEPORT sockets, 0 for a shared socket). It owns the fds. A hot restart hands these fds to
// the next process, which adopt()s them instead of binding anew, so not one connection in any
// accept queue is lost.
class ListenSocketRegistry {
 public:
  ListenSocketRegistry() = default;
  ~ListenSocketRegistry();
  ListenSocketRegistry(const ListenSocketRegistry&) = delete;
  ListenSocketRegistry& operator=(const ListenSocketRegistry&) = delete;

  // Returns `count` sockets for `address`: adopted ones where present, new ones otherwise. With
  // port 0 the first socket picks the port and the others bind to the same one (SO_REUSEPORT).
  absl::StatusOr<std::vector<int>> getOrCreate(const Address& address, const ListenOptions& options,
                                               size_t count);
  // Before any socket of this process is bound: makes sure that no other socket listens on
  // `address` (or an address overlapping it) and holds the port until releaseReservations(), so
  // that getOrCreate() then binds this process's sockets to it. Returns the address with its port
  // (the kernel's choice for port 0); AlreadyExistsError when another socket listens there. An
  // address with adopted sockets is not checked: those are ours (hot restart).
  absl::StatusOr<Address> reserve(const Address& address);
  // Closes the reservations, once every socket is bound and listening.
  void releaseReservations();
  // Registers an inherited listening fd under `key` ("<address>#<index>").
  void adopt(const std::string& key, int fd);
  // Closes every socket (drain): connections waiting in accept queues are reset by the kernel.
  void closeAll();
  const std::map<std::string, int>& sockets() const { return sockets_; }

 private:
  // Whether any socket is registered for `address` (before getOrCreate: adopted ones).
  bool holds(const Address& address) const;

  std::map<std::string, int> sockets_;
  std::vector<int> reservations_;
};

}  // namespace sluice::network
