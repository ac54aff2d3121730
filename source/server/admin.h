#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/network/address.h"
#include "source/network/connection.h"
#include "source/network/listener.h"
#include "source/network/unix_socket.h"

namespace sluice::server {

// What `GET /ready` reports (with the health-check override, Admin::healthCheckFailed()).
enum class AdminState { kStarting, kLive, kDraining };

// One admin request, parsed: the method, the path without its query, and the query's
// parameters, percent-decoded ("+" is a space), in order.
struct AdminRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;
  // The state this request is answered with: the admin's, but for one that a hot restart's
  // predecessor answers on a socket its successor accepts on now (Admin::handOver()).
  AdminState state = AdminState::kStarting;
  // The value of the first parameter `name`, or nullptr ("?graceful" has the value "").
  const std::string* param(std::string_view name) const;
};

// What a handler answers. The admin adds Content-Length, Connection: close and
// Cache-Control: no-store; a HEAD request gets the head of the GET's answer.
struct AdminResponse {
  uint16_t status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Runs on the main loop after the response went out (POST /quitquitquit drains then).
  std::function<void()> after;

  static AdminResponse Text(uint16_t status, std::string body);
  static AdminResponse Json(std::string body);
};

// Percent-decodes a query component ("+" is a space); nullopt on a malformed escape.
std::optional<std::string> DecodeQueryComponent(std::string_view in);
// Splits "a=1&b&c=%20" into decoded (name, value) pairs; nullopt on a malformed escape.
std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

// The admin endpoint: a small HTTP/1.1 server on the main thread (docs/admin.md). One request
// per connection: the head (bounded: kMaxRequestHead) and a body (bounded: kMaxRequestBody,
// read and ignored: parameters come in the query string) must arrive within kRequestTimeout;
// the answer carries "Connection: close". Reads are GET (and HEAD); changes take POST, and a
// GET of a changing endpoint answers 405 with Allow. Unknown paths answer 404 with the list of
// endpoints, unknown query parameters 400. With a bearer token, every request must carry
// `Authorization: Bearer <token>` (401 before anything else is looked at). A probe address
// (Settings::probe_address) is a second TCP listener that answers only GET/HEAD /ready and
// /live, without the token: for health checkers that cannot send one (kubelet probes).
//
// Through a hot restart (docs/hot_restart.md), the TCP and probe listeners' sockets are handed to
// the successor, which accepts on them once it serves (takeOver()), and the unix socket's path is
// taken over by a rename; the predecessor then stops accepting on them (handOver()).
class Admin {
 public:
  using State = AdminState;

  // Which methods an endpoint takes: reads answer GET and HEAD, changes POST only.
  enum class Methods { kRead, kChange, kReadAndChange };
  using Handler = std::function<AdminResponse(const AdminRequest&)>;
  struct Endpoint {
    std::string path;
    Methods methods = Methods::kRead;
    // The query parameters it takes; any other is a 400.
    std::vector<std::string> params;
    // One line for the 404 list ("print the stats as text; ?format=json, ?filter=REGEX").
    std::string help;
    Handler handler;
  };

  struct Settings {
    // Where to listen: a TCP address and/or a unix socket path (its file mode; 0600 default).
    std::optional<network::Address> address;
    std::string unix_path;
    uint32_t unix_mode = 0600;
    // Non-empty: required as `Authorization: Bearer <token>` on every request.
    std::string bearer_token;
    // The probe listener: /ready and /live only, no token (it says nothing but the state).
    std::optional<network::Address> probe_address;
    // Hot restart: the predecessor's sockets for `address` and `probe_address` (-1: none, so
    // bind). start() owns them from its call on, whatever it returns; they are accepted on
    // from takeOver() on.
    int inherited_fd = -1;
    int inherited_probe_fd = -1;
    // Hot restart: `unix_path` is the predecessor's. Bound beside it; renamed over it by
    // takeOver().
    bool take_over_unix_path = false;
  };

  Admin(event::Dispatcher& dispatcher, stats::Store& store);
  ~Admin();
  // Its listeners point back at it.
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // Adds an endpoint (before start). The admin's own: /stats, /stats/prometheus, /ready, /live,
  // /healthcheck/fail, /healthcheck/ok, /logging, /help.
  void addEndpoint(Endpoint endpoint);

  // Binds and starts accepting; returns the bound TCP address (port 0 resolved) when there is
  // one. Warns in the log when the TCP address is not a loopback one and there is no token.
  absl::StatusOr<std::optional<network::Address>> start(const Settings& settings);
  void stop();
  // The probe listener's bound address (port 0 resolved), once started with one.
  const std::optional<network::Address>& probeAddress() const { return probe_address_; }

  // Hot restart, the successor, once it serves: takes the unix socket's path over and accepts
  // on the inherited sockets. Not before: until then its predecessor, which is live, accepts
  // on them alone (this process would answer STARTING), and a failure leaves it its path.
  absl::Status takeOver();
  // The TCP listeners' sockets by bound address ("127.0.0.1:9901"), while accepted on: what a
  // hot restart hands over (ListenSocket.admin).
  std::vector<std::pair<std::string, int>> listeningSockets() const;
  // Hot restart, the predecessor, as it drains: the successor accepts on the sockets of
  // `addresses` now, and has taken the unix socket's path if `unix_path`. Stops accepting on
  // those sockets (closing its copies); the requests it accepted on them before, and the
  // connections queued on the unix socket before the rename, are answered — with the state of
  // this moment, not the drain's: they were sent to the address, which stays live. Returns how
  // many sockets it stopped accepting on.
  size_t handOver(const std::vector<std::string>& addresses, bool unix_path);
  // Stops accepting on every socket (requests in progress go on).
  void stopAccepting();
  // Open connections.
  size_t connections() const { return connections_.size(); }
  // Calls `idle` (once, posted) when no connection is left; at once if none is.
  void notifyWhenIdle(std::function<void()> idle);

  void setState(State state) { state_ = state; }
  State state() const { return state_; }
  // POST /healthcheck/fail sets it, /healthcheck/ok clears it: /ready answers 503 while set,
  // whatever the state, so that a load balancer takes the proxy out of rotation.
  bool healthCheckFailed() const { return health_check_failed_; }
  // The same switch for other callers (the control socket's SetHealth, `sluice drain`); logged.
  void setHealthCheckFailed(bool failed);
  // "LIVE", "DRAINING", "STARTING" or "HEALTH_CHECK_FAILED" (what /ready and /server_info say),
  // for the admin's state or a request's (AdminRequest::state).
  std::string_view stateName() const { return stateName(state_); }
  std::string_view stateName(State state) const;

  static constexpr size_t kMaxRequestHead = 8192;
  static constexpr size_t kMaxRequestLine = 4096;
  static constexpr size_t kMaxRequestBody = 64 * 1024;
  static constexpr std::chrono::milliseconds kRequestTimeout{10000};
  static constexpr size_t kMaxConnections = 64;
  // The probe listener's own cap: probes from beyond this host cannot starve the operator's
  // connections, nor the operator's the probes.
  static constexpr size_t kMaxProbeConnections = 16;
  // The only paths the probe listener serves.
  static constexpr std::string_view kProbePaths[] = {"/ready", "/live"};

 private:
  class AdminConnection;
  // Where a connection came from: each listener has its own connection cap and its own fate in
  // a hot restart.
  enum Source { kTcp, kUnix, kProbe, kSources };
  // Accepts for one listener.
  class Acceptor : public network::ListenerCallbacks {
   public:
    Acceptor(Admin& admin, Source source) : admin_(admin), source_(source) {}
    bool reserveConnection() override {
      return source_ == kProbe
                 ? admin_.probe_connections_ < kMaxProbeConnections
                 : admin_.connections_.size() - admin_.probe_connections_ < kMaxConnections;
    }
    void unreserveConnection() override {}
    void onAccept(int fd, const network::Address& remote) override {
      admin_.accept(fd, remote, source_);
    }
    void onPaused() override {}
    bool onFdExhausted(bool) override { return false; }

   private:
    Admin& admin_;
    const Source source_;
  };

  void accept(int fd, const network::Address& remote, Source source);
  void remove(AdminConnection& c);

  // The response to a complete, parsed request (auth, routing, methods, parameters, handler).
  // `source`: the listener it came to (the probe listener's: no auth, /ready and /live only).
  AdminResponse handle(std::string_view method, std::string_view target,
                       std::string_view authorization, size_t authorization_count, Source source);
  bool authorized(std::string_view authorization, size_t count) const;
  AdminResponse notFound(std::string_view path) const;
  void addBuiltinEndpoints();

  event::Dispatcher& dispatcher_;
  stats::Store& store_;
  std::vector<Endpoint> endpoints_;
  // Before the listeners, which call them.
  Acceptor acceptors_[kSources] = {{*this, kTcp}, {*this, kUnix}, {*this, kProbe}};
  // The TCP listener's socket (owned: -1 once closed), and its bound address.
  int fd_ = -1;
  network::Address address_;
  network::ListenerPtr listener_;
  std::unique_ptr<network::UnixListenSocket> unix_socket_;
  network::ListenerPtr unix_listener_;
  int probe_fd_ = -1;
  std::optional<network::Address> probe_address_;
  network::ListenerPtr probe_listener_;
  // Every open connection; probe_connections_ of them came to the probe listener.
  std::list<std::unique_ptr<AdminConnection>> connections_;
  size_t probe_connections_ = 0;
  std::function<void()> on_idle_;
  State state_ = State::kStarting;
  bool health_check_failed_ = false;
  // Hot restart: the listeners whose sockets are the successor's now (handOver()), and the
  // state their requests are answered with.
  bool handed_over_[kSources] = {};
  State handed_over_state_ = State::kLive;
  // SHA-256 of the token (empty: none): compared in constant time.
  std::string token_digest_;
};

}  // namespace sluice::server
