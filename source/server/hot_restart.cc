#include "source/server/hot_restart.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "source/server/control_frame.h"

namespace sluice::server {

namespace {

namespace pb = sluice::control::v1;

// One request and its responses (several while `more` says so).
absl::StatusOr<std::vector<pb::Response>> Call(int fd, const pb::Request& request,
                                               std::vector<int>& fds,
                                               bool (*more)(const pb::Response&)) {
  std::vector<pb::Response> out;
  auto s = control::Exchange(
      fd, request.SerializeAsString(), fds, [&](std::string_view message) -> absl::StatusOr<bool> {
        pb::Response r;
        if (!r.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
          return absl::DataLossError("control socket: a bad response");
        }
        if (!r.error().empty()) {
          return absl::FailedPreconditionError(r.error());
        }
        out.push_back(std::move(r));
        return more(out.back());
      });
  if (!s.ok()) return s;
  return out;
}

bool One(const pb::Response&) { return false; }

pb::Request NewRequest() {
  pb::Request r;
  r.set_protocol(pb::PROTOCOL_VERSION);
  return r;
}

}  // namespace

void InheritedAdminSockets::add(const std::string& address, int fd) {
  if (!fds_.emplace(address, fd).second) ::close(fd);
}

int InheritedAdminSockets::take(const network::Address& address) {
  if (address.port() == 0) return -1;
  auto it = fds_.find(address.asString());
  if (it == fds_.end()) return -1;
  const int fd = it->second;
  fds_.erase(it);
  return fd;
}

size_t InheritedAdminSockets::closeAll() {
  for (const auto& [address, fd] : fds_) ::close(fd);
  const size_t closed = fds_.size();
  fds_.clear();
  return closed;
}

absl::StatusOr<std::unique_ptr<PredecessorClient>> PredecessorClient::Connect(
    const std::string& path) {
  auto fd = control::ConnectBlocking(path, kTimeoutSeconds);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<PredecessorClient>(new PredecessorClient(*fd));
}

PredecessorClient::~PredecessorClient() { ::close(fd_); }

absl::StatusOr<std::vector<pb::Response>> PredecessorClient::call(
    const pb::Request& request, std::vector<int>& fds, bool (*more)(const pb::Response&)) {
  return Call(fd_, request, fds, more);
}

absl::StatusOr<pb::TakeStateResponse> PredecessorClient::takeState(bool stdio,
                                                                   std::vector<int>& stdio_fds) {
  pb::Request request = NewRequest();
  request.mutable_take_state()->set_stdio(stdio);
  std::vector<int> fds;
  auto r = call(request, fds, &One);
  if (!r.ok() || (stdio && fds.size() != 2)) {
    for (int f : fds) ::close(f);
    if (!r.ok()) return r.status();
    return absl::DataLossError("the standard output and error did not come");
  }
  if (stdio) {
    stdio_fds = fds;
  } else {
    for (int f : fds) ::close(f);
  }
  return std::move(*r->front().mutable_take_state());
}

absl::StatusOr<size_t> PredecessorClient::takeSockets(network::ListenSocketRegistry& registry,
                                                      InheritedAdminSockets& admin) {
  pb::Request request = NewRequest();
  request.mutable_take_sockets()->set_pid(static_cast<uint32_t>(getpid()));
  std::vector<int> fds;
  auto responses =
      call(request, fds, [](const pb::Response& r) { return r.take_sockets().more(); });
  auto fail = [&](absl::Status s) {
    for (int f : fds) ::close(f);
    return s;
  };
  if (!responses.ok()) return fail(responses.status());
  // Checked whole before any is adopted: on an error every descriptor is closed here.
  size_t base = 0;
  for (const auto& r : *responses) {
    for (const auto& s : r.take_sockets().sockets()) {
      if (base + s.index() >= fds.size()) return fail(absl::DataLossError("descriptors missing"));
    }
    base += static_cast<size_t>(r.take_sockets().sockets_size());
  }
  if (base != fds.size()) return fail(absl::DataLossError("descriptors without a socket"));
  base = 0;
  size_t adopted = 0;
  for (const auto& r : *responses) {
    for (const auto& s : r.take_sockets().sockets()) {
      const int fd = fds[base + s.index()];
      if (s.admin()) {
        admin.add(s.address(), fd);
      } else {
        registry.adopt(s.address(), fd);
        ++adopted;
      }
    }
    base += static_cast<size_t>(r.take_sockets().sockets_size());
  }
  return adopted;
}

absl::StatusOr<pb::StartDrainResponse> PredecessorClient::startDrain(
    const std::string& control_socket, const std::vector<std::string>& admin_addresses,
    bool admin_unix_socket) {
  pb::Request request = NewRequest();
  auto* drain = request.mutable_start_drain();
  drain->set_control_socket(control_socket);
  for (const auto& a : admin_addresses) drain->add_admin_addresses(a);
  drain->set_admin_unix_socket(admin_unix_socket);
  std::vector<int> fds;
  auto r = call(request, fds, &One);
  for (int f : fds) ::close(f);
  if (!r.ok()) return r.status();
  return std::move(*r->front().mutable_start_drain());
}

absl::Status SendDrainCounters(const std::string& path,
                               const std::vector<std::pair<std::string, uint64_t>>& at_drain,
                               const std::vector<std::pair<std::string, uint64_t>>& now) {
  absl::flat_hash_map<std::string_view, uint64_t> before;
  before.reserve(at_drain.size());
  for (const auto& [name, value] : at_drain) before.emplace(name, value);
  pb::Request request = NewRequest();
  auto* merge = request.mutable_merge_counters();
  merge->set_pid(static_cast<uint32_t>(getpid()));
  for (const auto& [name, value] : now) {
    auto it = before.find(name);
    const uint64_t base = it == before.end() ? 0 : it->second;
    if (value > base) (*merge->mutable_counters())[name] = value - base;
  }
  if (merge->counters().empty()) return absl::OkStatus();
  auto fd = control::ConnectBlocking(path, PredecessorClient::kTimeoutSeconds);
  if (!fd.ok()) return fd.status();
  std::vector<int> fds;
  auto r = Call(*fd, request, fds, &One);
  for (int f : fds) ::close(f);
  ::close(*fd);
  return r.status();
}

}  // namespace sluice::server
