#include "source/server/admin.h"

#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "source/common/logging.h"
#include "source/network/connection_impl.h"
#include "source/network/listener_impl.h"
#include "source/network/socket.h"
#include "source/network/transport_socket.h"

namespace sluice::server {

class Admin::AdminConnection : public network::ReadFilter,
                               public network::ConnectionCallbacks,
                               public event::DeferredDeletable {
 public:
  AdminConnection(Admin& admin, network::ConnectionPtr connection)
      : admin_(admin), connection_(std::move(connection)) {
    connection_->addConnectionCallbacks(*this);
    timer_ = admin_.dispatcher_.createTimer(
        [this] { connection_->close(network::CloseType::kNoFlush); });
    timer_->enableTimer(kRequestTimeout);
  }
  ~AdminConnection() override { connection_->removeConnectionCallbacks(*this); }

  network::Connection& connection() { return *connection_; }
  std::list<std::unique_ptr<AdminConnection>>::iterator position;

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onData(Buffer& data, bool end_stream) override {
    request_ += data.toString();
    data.clear();
    if (request_.find("\r\n\r\n") != std::string::npos) {
      respond();
    } else if (request_.size() > kMaxRequestHead || end_stream) {
      connection_->close(network::CloseType::kNoFlush);
    }
    return network::FilterStatus::kStopIteration;
  }
  void onEvent(network::ConnectionEvent event) override {
    if (event != network::ConnectionEvent::kConnected) admin_.remove(*this);
  }

 private:
  void respond() {
    std::string status = "200 OK";
    std::string body;
    const char* content_type = "text/plain; charset=utf-8";
    if (absl::StartsWith(request_, "GET /stats ") || absl::StartsWith(request_, "GET /stats?")) {
      body = admin_.store_.dumpText();
    } else if (absl::StartsWith(request_, "GET /stats/prometheus ") ||
               absl::StartsWith(request_, "GET /stats/prometheus?")) {
      body = admin_.store_.dumpPrometheus();
      content_type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (absl::StartsWith(request_, "GET /ready ") ||
               absl::StartsWith(request_, "GET /ready?")) {
      switch (admin_.state_) {
        case State::kLive:
          body = "LIVE\n";
          break;
        case State::kStarting:
          status = "503 Service Unavailable";
          body = "STARTING\n";
          break;
        case State::kDraining:
          status = "503 Service Unavailable";
          body = "DRAINING\n";
          break;
      }
    } else if (absl::StartsWith(request_, "POST /certificates/reload ") &&
               admin_.reload_certificates_) {
      auto [ok, report] = admin_.reload_certificates_();
      if (!ok) status = "500 Internal Server Error";
      body = std::move(report);
    } else {
      status = "404 Not Found";
      body =
          "not found; try GET /stats, GET /stats/prometheus, GET /ready or POST "
          "/certificates/reload\n";
    }
    Buffer out;
    out.add(absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                         "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                         body));
    connection_->write(out, false);
    connection_->close(network::CloseType::kFlushWrite);
  }

  Admin& admin_;
  network::ConnectionPtr connection_;
  event::TimerPtr timer_;
  std::string request_;
};

Admin::Admin(event::Dispatcher& dispatcher, stats::Store& store)
    : dispatcher_(dispatcher), store_(store) {}

Admin::~Admin() { stop(); }

absl::StatusOr<network::Address> Admin::start(const network::Address& address) {
  auto fd = network::CreateListenSocket(address, network::ListenOptions{.reuse_port = false});
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  auto bound = network::Address::localOf(fd_);
  if (!bound.ok()) return bound.status();
  address_ = *bound;
  if (!address_.isLoopback()) {
    SLUICE_LOG(kWarn,
               "admin endpoint on %s is exposed beyond this host (not a loopback address): it has "
               "no authentication, so anyone who can reach that address can read every counter "
               "and, as the admin interface grows, act on the proxy. Bind it to 127.0.0.1 or ::1, "
               "or firewall the port.",
               address_.asString());
  }
  network::ListenerCallbacks& callbacks = *this;
  listener_ = std::make_unique<network::TcpListenerImpl>(dispatcher_, fd_, callbacks, 16);
  listener_->enable();
  return address_;
}

void Admin::stop() {
  listener_.reset();
  std::vector<network::Connection*> all;
  for (auto& c : connections_) all.push_back(&c->connection());
  for (auto* c : all) c->close(network::CloseType::kNoFlush);
  connections_.clear();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Admin::onAccept(int fd, const network::Address& remote) {
  auto connection =
      std::make_unique<network::ConnectionImpl>(dispatcher_, fd, nullptr, remote, address_);
  auto* raw = connection.get();
  auto active = std::make_unique<AdminConnection>(*this, std::move(connection));
  AdminConnection& ref = *active;
  connections_.push_front(std::move(active));
  ref.position = connections_.begin();
  // The connection owns its read filters; the AdminConnection is owned here.
  raw->addReadFilter(std::make_unique<network::ForwardingReadFilter>(ref));
  raw->initializeReadFilters();
}

void Admin::remove(AdminConnection& c) {
  std::unique_ptr<AdminConnection> owned = std::move(*c.position);
  connections_.erase(c.position);
  dispatcher_.deferredDelete(std::move(owned));
}

}  // namespace sluice::server
