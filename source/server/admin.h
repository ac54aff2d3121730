#pragma once

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/network/address.h"
#include "source/network/connection.h"
#include "source/network/listener.h"

namespace sluice::server {

// The admin endpoint, on the main thread. A stub until the HTTP codec lands: it reads one request
// head (bounded in size and time), answers `GET /stats` with the counters as text, `GET /ready`
// with 200 while the workers serve and 503 before and during the drain (so that a load balancer
// that polls it stops sending new connections), anything else with 404, and closes.
class Admin : private network::ListenerCallbacks {
 public:
  // What `GET /ready` reports.
  enum class State { kStarting, kLive, kDraining };

  Admin(event::Dispatcher& dispatcher, stats::Store& store);
  ~Admin() override;

  // Binds and starts accepting; returns the bound address (port 0 resolved). Warns in the log
  // when the address is not a loopback one: the endpoint has no authentication.
  absl::StatusOr<network::Address> start(const network::Address& address);
  void stop();
  void setState(State state) { state_ = state; }
  // What POST /certificates/reload runs: (all loaded, a report).
  void setCertificateReloader(std::function<std::pair<bool, std::string>()> reload) {
    reload_certificates_ = std::move(reload);
  }

  static constexpr size_t kMaxRequestHead = 8192;
  static constexpr std::chrono::milliseconds kRequestTimeout{10000};

 private:
  class AdminConnection;

  bool reserveConnection() override { return connections_.size() < kMaxConnections; }
  void unreserveConnection() override {}
  void onAccept(int fd, const network::Address& remote) override;
  void onPaused() override {}
  bool onFdExhausted(bool) override { return false; }
  void remove(AdminConnection& c);

  static constexpr size_t kMaxConnections = 64;

  event::Dispatcher& dispatcher_;
  stats::Store& store_;
  int fd_ = -1;
  network::Address address_;
  network::ListenerPtr listener_;
  std::list<std::unique_ptr<AdminConnection>> connections_;
  State state_ = State::kStarting;
  std::function<std::pair<bool, std::string>()> reload_certificates_;
};

}  // namespace sluice::server
