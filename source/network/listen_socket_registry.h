#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/network/address.h"
#include "source/network/socket.h"

namespace sluice::network {

// Every listening socket of the process, by address ("127.0.0.1:8000"): one socket, or the
// SO_REUSEPORT group of one per worker. It owns the fds. A hot restart hands them all to the next
// process, which adopt()s them by address instead of binding anew — whatever either process's
// worker count — so that not one connection in any accept queue is lost: a socket the kernel
// feeds is never closed while the proxy runs.
class ListenSocketRegistry {
 public:
  ListenSocketRegistry() = default;
  ~ListenSocketRegistry();
  ListenSocketRegistry(const ListenSocketRegistry&) = delete;
  ListenSocketRegistry& operator=(const ListenSocketRegistry&) = delete;

  // Returns the sockets for `address`: every adopted one (even more than `count`: the caller
  // must accept on all of them), and new ones up to `count`. With port 0 the first socket picks
  // the port and the others bind to the same one (SO_REUSEPORT); port 0 never names an adopted
  // socket.
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
  // Registers an inherited listening fd of `address` (Address::asString()).
  void adopt(const std::string& address, int fd);
  // Closes the adopted sockets of addresses no getOrCreate() asked for (a hot restart to a config
  // without them); returns how many.
  size_t closeUnclaimed();
  // Closes every socket (drain): connections waiting in accept queues are reset by the kernel.
  void closeAll();
  // By address, each group in creation (or adoption) order.
  const std::map<std::string, std::vector<int>>& sockets() const { return sockets_; }
  size_t count() const;

 private:
  // Whether any socket is registered for `address` (before getOrCreate: adopted ones).
  bool holds(const Address& address) const;

  std::map<std::string, std::vector<int>> sockets_;
  std::set<std::string> claimed_;
  std::vector<int> reservations_;
};

}  // namespace sluice::network
