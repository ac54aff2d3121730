#include "source/server/hot_restart.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "source/server/control_frame.h"

namespace sluice::server {

namespace {

namespace pb = sluice::control::v1;

// A blocking, bounded connection to a control socket; -1 and `error` on failure.
int ConnectControl(const std::string& path, std::string& error) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    error = absl::StrCat("bad control socket path \"", path, "\"");
    return -1;
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = absl::StrCat("socket: ", strerror(errno));
    return -1;
  }
  std::memcpy(sun.sun_path, path.data(), path.size());
  timeval tv{PredecessorClient::kTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    error = absl::StrCat("cannot reach the running sluice at ", path, ": ", strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<std::vector<pb::Response>> Call(int fd, const pb::Request& request,
                                               std::vector<int>& fds,
                                               bool (*more)(const pb::Response&)) {
  const std::string frame = control::EncodeFrame(request.SerializeAsString());
  size_t sent = 0;
  while (sent < frame.size()) {
    const ssize_t n = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return absl::UnavailableError(absl::StrCat("control socket: send: ", strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  std::vector<pb::Response> out;
  control::FrameDecoder decoder;
  std::string bytes;
  while (true) {
    auto m = decoder.next();
    if (!m.ok()) return m.status();
    if (m->has_value()) {
      pb::Response r;
      if (!r.ParseFromString(**m)) return absl::DataLossError("control socket: a bad response");
      if (!r.error().empty()) return absl::FailedPreconditionError(r.error());
      out.push_back(std::move(r));
      if (!more(out.back())) return out;
      continue;
    }
    bytes.clear();
    auto n = control::RecvWithFds(fd, 65536, bytes, fds);
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::UnavailableError("control socket: closed by the running sluice");
    decoder.append(bytes);
  }
}

bool One(const pb::Response&) { return false; }

pb::Request NewRequest() {
  pb::Request r;
  r.set_protocol(pb::PROTOCOL_VERSION);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PredecessorClient>> PredecessorClient::Connect(
    const std::string& path) {
  std::string error;
  const int fd = ConnectControl(path, error);
  if (fd < 0) return absl::UnavailableError(error);
  return std::unique_ptr<PredecessorClient>(new PredecessorClient(fd));
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

absl::StatusOr<size_t> PredecessorClient::takeSockets(network::ListenSocketRegistry& registry) {
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
  for (const auto& r : *responses) {
    for (const auto& s : r.take_sockets().sockets()) {
      registry.adopt(s.address(), fds[base + s.index()]);
    }
    base += static_cast<size_t>(r.take_sockets().sockets_size());
  }
  return fds.size();
}

absl::StatusOr<pb::StartDrainResponse> PredecessorClient::startDrain(
    const std::string& control_socket) {
  pb::Request request = NewRequest();
  request.mutable_start_drain()->set_control_socket(control_socket);
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
  std::string error;
  const int fd = ConnectControl(path, error);
  if (fd < 0) return absl::UnavailableError(error);
  std::vector<int> fds;
  auto r = Call(fd, request, fds, &One);
  for (int f : fds) ::close(f);
  ::close(fd);
  return r.status();
}

}  // namespace sluice::server
