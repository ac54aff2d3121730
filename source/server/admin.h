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

// One admin request, parsed: the method, the path without its query, and the query's
// parameters, percent-decoded ("+" is a space), in order.
struct AdminRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> params;
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
class Admin : private network::ListenerCallbacks {
 public:
  // What `GET /ready` reports (with the health-check override below).
  enum class State { kStarting, kLive, kDraining };

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
  };

  Admin(event::Dispatcher& dispatcher, stats::Store& store);
  ~Admin() override;

  // Adds an endpoint (before start). The admin's own: /stats, /stats/prometheus, /ready, /live,
  // /healthcheck/fail, /healthcheck/ok, /logging, /help.
  void addEndpoint(Endpoint endpoint);

  // Binds and starts accepting; returns the bound TCP address (port 0 resolved) when there is
  // one. Warns in the log when the TCP address is not a loopback one and there is no token.
  absl::StatusOr<std::optional<network::Address>> start(const Settings& settings);
  void stop();
  // The probe listener's bound address (port 0 resolved), once started with one.
  const std::optional<network::Address>& probeAddress() const { return probe_address_; }

  void setState(State state) { state_ = state; }
  State state() const { return state_; }
  // POST /healthcheck/fail sets it, /healthcheck/ok clears it: /ready answers 503 while set,
  // whatever the state, so that a load balancer takes the proxy out of rotation.
  bool healthCheckFailed() const { return health_check_failed_; }
  // The same switch for other callers (the control socket's SetHealth, `sluice drain`); logged.
  void setHealthCheckFailed(bool failed);
  // "LIVE", "DRAINING", "STARTING" or "HEALTH_CHECK_FAILED" (what /ready and /server_info say).
  std::string_view stateName() const;

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
  // Accepts for the probe listener (the admin itself accepts for the others).
  class ProbeCallbacks : public network::ListenerCallbacks {
   public:
    explicit ProbeCallbacks(Admin& admin) : admin_(admin) {}
    bool reserveConnection() override { return admin_.probe_connections_ < kMaxProbeConnections; }
    void unreserveConnection() override {}
    void onAccept(int fd, const network::Address& remote) override {
      admin_.accept(fd, remote, /*probe=*/true);
    }
    void onPaused() override {}
    bool onFdExhausted(bool) override { return false; }

   private:
    Admin& admin_;
  };

  bool reserveConnection() override {
    return connections_.size() - probe_connections_ < kMaxConnections;
  }
  void unreserveConnection() override {}
  void onAccept(int fd, const network::Address& remote) override {
    accept(fd, remote, /*probe=*/false);
  }
  void accept(int fd, const network::Address& remote, bool probe);
  void onPaused() override {}
  bool onFdExhausted(bool) override { return false; }
  void remove(AdminConnection& c);

  // The response to a complete, parsed request (auth, routing, methods, parameters, handler).
  // `probe`: it came to the probe listener (no auth; /ready and /live only).
  AdminResponse handle(std::string_view method, std::string_view target,
                       std::string_view authorization, size_t authorization_count, bool probe);
  bool authorized(std::string_view authorization, size_t count) const;
  AdminResponse notFound(std::string_view path) const;
  void addBuiltinEndpoints();

  event::Dispatcher& dispatcher_;
  stats::Store& store_;
  std::vector<Endpoint> endpoints_;
  int fd_ = -1;
  std::unique_ptr<network::UnixListenSocket> unix_socket_;
  network::Address address_;
  network::ListenerPtr listener_;
  network::ListenerPtr unix_listener_;
  int probe_fd_ = -1;
  std::optional<network::Address> probe_address_;
  ProbeCallbacks probe_callbacks_{*this};
  network::ListenerPtr probe_listener_;
  // Every open connection; probe_connections_ of them came to the probe listener.
  std::list<std::unique_ptr<AdminConnection>> connections_;
  size_t probe_connections_ = 0;
  State state_ = State::kStarting;
  bool health_check_failed_ = false;
  // SHA-256 of the token (empty: none): compared in constant time.
  std::string token_digest_;
};

}  // namespace sluice::server
