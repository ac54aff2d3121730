#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/control/v1/control.pb.h"
#include "source/event/dispatcher.h"
#include "source/network/unix_socket.h"
#include "source/server/control_frame.h"

namespace sluice::server {

// One framed message to send, with the descriptors that travel with its first byte.
struct ControlFrame {
  std::string bytes;     // EncodeFrame()d
  std::vector<int> fds;  // not owned: they must stay open until the frame is sent
};

// The control socket (api/sluice/control/v1/control.proto) on the main thread: accepts local
// clients whose peer credentials are this process's user or root, reads framed requests, and
// writes what the handler answers, without blocking the loop. At most kMaxConnections clients
// at once, each closed after kIdleTimeout without a request.
class ControlServer {
 public:
  static constexpr size_t kMaxConnections = 8;
  static constexpr std::chrono::milliseconds kIdleTimeout{30000};

  // What a request is answered with: one Response usually; several frames for the socket
  // handoff (a response per batch of descriptors). `peer_pid` is the client's (SO_PEERCRED).
  using Handler = std::function<std::vector<ControlFrame>(
      const sluice::control::v1::Request& request, pid_t peer_pid)>;

  // Listens on `path` (mode 0600). Errors say why (a live process on the path among them).
  // `take_over`: the path belongs to a live predecessor (hot restart), and becomes ours.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(event::Dispatcher& dispatcher,
                                                              const std::string& path,
                                                              Handler handler,
                                                              bool take_over = false);
  ~ControlServer();

  // One Response framed, with `error` set (and the protocol version).
  static ControlFrame Error(std::string error);
  static ControlFrame Reply(sluice::control::v1::Response response);

  size_t connections() const { return connections_.size(); }
  uint64_t refused() const { return refused_; }

 private:
  class Connection;
  ControlServer(event::Dispatcher& dispatcher, std::unique_ptr<network::UnixListenSocket> socket,
                Handler handler);
  void onAcceptReady();
  void remove(Connection& c);

  event::Dispatcher& dispatcher_;
  std::unique_ptr<network::UnixListenSocket> socket_;
  Handler handler_;
  event::FileEventPtr accept_event_;
  std::list<std::unique_ptr<Connection>> connections_;
  uint64_t refused_ = 0;
};

}  // namespace sluice::server
