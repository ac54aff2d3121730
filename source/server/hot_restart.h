#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/sluice/control/v1/control.pb.h"
#include "source/network/address.h"
#include "source/network/listen_socket_registry.h"

namespace sluice::server {

// The admin's listening sockets a predecessor handed over (ListenSocket.admin), by address:
// each goes to the successor's admin address or probe listener of the same address; those not
// taken are closed with this (the predecessor keeps its own until it exits).
class InheritedAdminSockets {
 public:
  InheritedAdminSockets() = default;
  ~InheritedAdminSockets() { closeAll(); }
  InheritedAdminSockets(const InheritedAdminSockets&) = delete;
  InheritedAdminSockets& operator=(const InheritedAdminSockets&) = delete;

  // Takes `fd` (a second one for the same address is closed).
  void add(const std::string& address, int fd);
  // The socket of `address`, now the caller's; -1 when none came. Port 0 never names one: it
  // asks for a port of the kernel's choice, which a successor binds afresh.
  int take(const network::Address& address);
  // Closes those not taken; how many.
  size_t closeAll();
  size_t size() const { return fds_.size(); }

 private:
  std::map<std::string, int> fds_;
};

// The successor's side of a hot restart (docs/hot_restart.md): a blocking client of the running
// sluice's control socket, used on the main thread before this process's loop runs — nothing
// else would run meanwhile. Every call is bounded (kTimeout), so a predecessor that does not
// answer fails this start instead of hanging it; nothing it does disturbs the predecessor
// until startDrain().
class PredecessorClient {
 public:
  static constexpr int kTimeoutSeconds = 30;

  static absl::StatusOr<std::unique_ptr<PredecessorClient>> Connect(const std::string& path);
  ~PredecessorClient();
  PredecessorClient(const PredecessorClient&) = delete;
  PredecessorClient& operator=(const PredecessorClient&) = delete;

  // Ticket keys, restart epoch, lineage start; with `stdio`, the predecessor's standard output
  // and error into `stdio_fds` (owned by the caller).
  absl::StatusOr<sluice::control::v1::TakeStateResponse> takeState(bool stdio,
                                                                   std::vector<int>& stdio_fds);
  // Every listening socket of the predecessor: the listeners' adopted into `registry` by
  // address (how many), the admin's into `admin`.
  absl::StatusOr<size_t> takeSockets(network::ListenSocketRegistry& registry,
                                     InheritedAdminSockets& admin);
  // This process serves: the predecessor stops accepting and drains. `control_socket`: ours,
  // where it sends its last counts as it exits. `admin_addresses`: the admin sockets this
  // process accepts on now; `admin_unix_socket`: it took the admin's unix socket path over.
  // Its counters as the drain starts.
  absl::StatusOr<sluice::control::v1::StartDrainResponse> startDrain(
      const std::string& control_socket, const std::vector<std::string>& admin_addresses,
      bool admin_unix_socket);

 private:
  explicit PredecessorClient(int fd) : fd_(fd) {}
  // One request and its responses (several while `more` says so); `fds` gathers the
  // descriptors that came with them (the caller owns them, also on error).
  absl::StatusOr<std::vector<sluice::control::v1::Response>> call(
      const sluice::control::v1::Request& request, std::vector<int>& fds,
      bool (*more)(const sluice::control::v1::Response&));

  int fd_;
};

// The old process, as it exits after a hot restart: what its counters gained during the drain
// (`now` minus `at_drain`, by full name), to its successor's control socket. Bounded like the
// client's calls.
absl::Status SendDrainCounters(const std::string& path,
                               const std::vector<std::pair<std::string, uint64_t>>& at_drain,
                               const std::vector<std::pair<std::string, uint64_t>>& now);

}  // namespace sluice::server
