#include "source/server/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "absl/strings/str_cat.h"
#include "source/common/logging.h"

namespace sluice::server {

namespace cv1 = sluice::control::v1;

class ControlServer::Connection : public event::DeferredDeletable {
 public:
  Connection(ControlServer& server, int fd, pid_t peer_pid)
      : server_(server), fd_(fd), peer_pid_(peer_pid) {
    event_ = server_.dispatcher_.createFileEvent(
        fd_, [this](uint32_t ready) { onReady(ready); }, event::FileReadyType::kRead);
    idle_ = server_.dispatcher_.createTimer([this] {
      SLUICE_LOG(kDebug, "control socket: a client was idle for %lldms: closed",
                 static_cast<long long>(kIdleTimeout.count()));
      server_.remove(*this);
    });
    idle_->enableTimer(kIdleTimeout);
  }
  ~Connection() override {
    event_.reset();
    ::close(fd_);
  }
  // Removed from the server (destroyed at the end of the event): no more callbacks.
  void quiesce() {
    event_->setEnabled(0);
    idle_->disableTimer();
  }
  std::list<std::unique_ptr<Connection>>::iterator position;

  // Queues `frames` and closes once they are out (a refused peer).
  void sendAndClose(std::vector<ControlFrame> frames) {
    close_after_ = true;
    for (auto& f : frames) out_.push_back(std::move(f));
    flush();
  }

 private:
  void onReady(uint32_t ready) {
    if ((ready & event::FileReadyType::kWrite) != 0 && !flush()) return;
    if ((ready & event::FileReadyType::kRead) != 0 && !close_after_) onReadable();
  }

  void onReadable() {
    char buf[16384];
    while (true) {
      const ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n > 0) {
        decoder_.append(std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      // The client is gone (or the socket failed): nothing more to answer.
      server_.remove(*this);
      return;
    }
    idle_->enableTimer(kIdleTimeout);
    while (!close_after_) {
      auto message = decoder_.next();
      if (!message.ok()) {
        sendAndClose({Error(std::string(message.status().message()))});
        return;
      }
      if (!message->has_value()) break;
      cv1::Request request;
      if (!request.ParseFromString(**message)) {
        sendAndClose({Error("not a control request (it does not parse)")});
        return;
      }
      if (request.protocol() != cv1::PROTOCOL_VERSION) {
        sendAndClose(
            {Error(absl::StrCat("control protocol ", request.protocol(), " is not this sluice's (",
                                cv1::PROTOCOL_VERSION, "): a sluice of another major version"))});
        return;
      }
      for (auto& f : server_.handler_(request, peer_pid_)) out_.push_back(std::move(f));
    }
    flush();
  }

  // Writes what is queued; false when the connection was removed.
  bool flush() {
    while (!out_.empty()) {
      ControlFrame& f = out_.front();
      auto n =
          control::SendSome(fd_, std::string_view(f.bytes).substr(sent_),
                            sent_ == 0 ? absl::Span<const int>(f.fds) : absl::Span<const int>(),
                            /*wait=*/false);
      if (!n.ok()) {
        SLUICE_LOG(kWarn, "%s", n.status().message());
        server_.remove(*this);
        return false;
      }
      if (*n == 0) {
        event_->setEnabled(event::FileReadyType::kRead | event::FileReadyType::kWrite);
        return true;
      }
      sent_ += *n;
      if (sent_ == f.bytes.size()) {
        out_.pop_front();
        sent_ = 0;
      }
    }
    event_->setEnabled(event::FileReadyType::kRead);
    if (close_after_) {
      server_.remove(*this);
      return false;
    }
    return true;
  }

  ControlServer& server_;
  const int fd_;
  const pid_t peer_pid_;
  event::FileEventPtr event_;
  event::TimerPtr idle_;
  server::control::FrameDecoder decoder_;
  std::deque<ControlFrame> out_;
  size_t sent_ = 0;  // bytes of out_.front() already written
  bool close_after_ = false;
};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(event::Dispatcher& dispatcher,
                                                                    const std::string& path,
                                                                    Handler handler,
                                                                    bool take_over) {
  auto socket = take_over ? network::UnixListenSocket::ListenReplacing(path, 0600, /*backlog=*/16)
                          : network::UnixListenSocket::Listen(path, 0600, /*backlog=*/16);
  if (!socket.ok()) {
    return absl::Status(socket.status().code(),
                        absl::StrCat("control socket: ", socket.status().message()));
  }
  return std::unique_ptr<ControlServer>(
      new ControlServer(dispatcher, std::move(*socket), std::move(handler)));
}

ControlServer::ControlServer(event::Dispatcher& dispatcher,
                             std::unique_ptr<network::UnixListenSocket> socket, Handler handler)
    : dispatcher_(dispatcher), socket_(std::move(socket)), handler_(std::move(handler)) {
  accept_event_ = dispatcher_.createFileEvent(
      socket_->fd(), [this](uint32_t) { onAcceptReady(); }, event::FileReadyType::kRead);
}

ControlServer::~ControlServer() {
  accept_event_.reset();
  connections_.clear();
}

ControlFrame ControlServer::Error(std::string error) {
  cv1::Response r;
  r.set_error(std::move(error));
  return Reply(std::move(r));
}

ControlFrame ControlServer::Reply(cv1::Response response) {
  response.set_protocol(cv1::PROTOCOL_VERSION);
  return ControlFrame{control::EncodeFrame(response.SerializeAsString()), {}};
}

void ControlServer::onAcceptReady() {
  while (true) {
    const int fd = accept4(socket_->fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        SLUICE_LOG(kWarn, "control socket: accept: %s", strerror(errno));
      }
      return;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    const bool known = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    auto c = std::make_unique<Connection>(*this, fd, known ? cred.pid : 0);
    Connection& ref = *c;
    connections_.push_front(std::move(c));
    ref.position = connections_.begin();
    // The file's mode already keeps other users out; the credentials are checked too, as a
    // second lock (a mode a person loosened, a directory shared).
    if (!known || (cred.uid != geteuid() && cred.uid != 0)) {
      ++refused_;
      SLUICE_LOG(kWarn, "control socket: refused a client running as uid %u (pid %d)",
                 known ? cred.uid : 0u, known ? cred.pid : 0);
      ref.sendAndClose(
          {Error("permission denied: the control socket takes clients of sluice's "
                 "own user or root")});
      continue;
    }
    if (connections_.size() > kMaxConnections) {
      ++refused_;
      ref.sendAndClose({Error(
          absl::StrCat("too many control clients (at most ", kMaxConnections, "): try again"))});
    }
  }
}

void ControlServer::remove(Connection& c) {
  // Not destroyed under its own callback: deferred to the end of the event.
  c.quiesce();
  auto it = c.position;
  std::unique_ptr<Connection> owned = std::move(*it);
  connections_.erase(it);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace sluice::server
