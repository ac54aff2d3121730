#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "source/upstream/cluster.h"
#include "source/upstream/health_checker.h"
#include "source/upstream/host.h"

namespace sluice::upstream {

// One host's consecutive results against the thresholds: the pure rule, apart from the I/O.
// It writes the host's kPendingActiveHealthCheck and kFailedActiveHealthCheck flags; the
// other flags (outlier detection's) are not its business.
//
//  - A host never checked (pending) is decided by its first result: a success makes it
//    healthy at once, a failure unhealthy (Envoy's rule: a fresh host is not made to wait
//    healthy_threshold intervals before it takes traffic, nor kept in while it fails).
//  - Afterwards `unhealthy_threshold` failures in a row make a healthy host unhealthy and
//    `healthy_threshold` successes in a row make an unhealthy one healthy; a result of the
//    other kind starts the count again.
class HostHealthTracker {
 public:
  HostHealthTracker(Host& host, uint32_t unhealthy_threshold, uint32_t healthy_threshold)
      : host_(host),
        unhealthy_threshold_(unhealthy_threshold),
        healthy_threshold_(healthy_threshold) {}
  // Each returns true when the checker's verdict on the host changed (its flags did).
  bool onSuccess();
  bool onFailure();
  // The checker found it healthy (neither pending nor failed).
  bool healthy() const;

 private:
  Host& host_;
  const uint32_t unhealthy_threshold_;
  const uint32_t healthy_threshold_;
  uint32_t successes_ = 0;
  uint32_t failures_ = 0;
};

// The gRPC health checking protocol's two messages (grpc/health/v1/health.proto), encoded by
// hand: HealthCheckRequest { string service = 1; } and HealthCheckResponse { ServingStatus
// status = 1; }. Two fields do not justify generated gRPC code.
namespace grpc_health {
inline constexpr std::string_view kCheckPath = "/grpc.health.v1.Health/Check";
enum ServingStatus : uint32_t { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
// The serialized HealthCheckRequest (empty for the empty service: proto3 omits defaults).
std::string EncodeRequest(std::string_view service);
// A gRPC length-prefixed message (uncompressed) holding `message`.
std::string Frame(std::string_view message);
// HealthCheckResponse.status of a serialized message (unknown fields skipped; an absent status
// is UNKNOWN, proto3's default); an error when it is not a valid protobuf message.
absl::StatusOr<uint32_t> DecodeResponse(std::string_view message);
// The first message of a gRPC response body (length-prefixed); an error when the body is
// incomplete, compressed or holds no message.
absl::StatusOr<std::string_view> Unframe(std::string_view body);
}  // namespace grpc_health

// What a failed check was, for the counters.
enum class CheckFailure {
  kUnhealthy,  // the host answered, and not as a healthy one
  kNetwork,    // connect refused, TLS failure, the connection closed or reset, bad protocol
  kTimeout,    // no verdict within the check's timeout
};

struct HealthCheckStats {
  stats::Counter& attempt;
  stats::Counter& success;
  // Every failed check; network_failure and timeout count the kinds too.
  stats::Counter& failure;
  stats::Counter& network_failure;
  stats::Counter& timeout;
  // Hosts the checker finds healthy now.
  stats::Gauge& healthy;
};

// What every kind of check shares: a session per host (its timers and thresholds), the host
// set followed, the verdicts applied. The kinds differ in what one check does (Session).
class HealthCheckerImplBase : public HealthChecker {
 public:
  HealthCheckerImplBase(Cluster& cluster, const config::v1::HealthCheck& config,
                        event::Dispatcher& dispatcher, stats::Store& store);
  ~HealthCheckerImplBase() override;
  void start() override;

  Cluster& cluster() { return cluster_; }
  event::Dispatcher& dispatcher() { return dispatcher_; }
  HealthCheckStats& stats() { return stats_; }
  size_t sessionCount() const { return sessions_.size(); }

 protected:
  // One host's checks. A check begins at startCheck(); the implementation ends it, exactly once
  // and at any time (inside startCheck() too), with succeed() or fail(). The base ends it with
  // a timeout first if it takes too long, then calls abandonCheck().
  class Session : public event::DeferredDeletable {
   public:
    Session(HealthCheckerImplBase& parent, HostSharedPtr host);
    ~Session() override;
    const Host& host() const { return *host_; }
    bool healthy() const { return tracker_.healthy(); }
    // The next check after `delay`.
    void schedule(std::chrono::milliseconds delay);
    // No more checks (the host left): timers off; the implementation drops its connection in
    // its destructor.
    void stop();

   protected:
    virtual void startCheck() = 0;
    // The check timed out (already counted): drop what it had open, ignoring what that
    // reports.
    virtual void abandonCheck() = 0;
    void succeed();
    void fail(CheckFailure failure);
    bool checking() const { return checking_; }
    event::Dispatcher& dispatcher() { return parent_.dispatcher_; }

    HealthCheckerImplBase& parent_;
    // Shared: a host that left the cluster stays alive while its session (and a check in
    // flight) does.
    const HostSharedPtr host_;

   private:
    void onIntervalTimer();
    void onTimeoutTimer();
    void finish();

    HostHealthTracker tracker_;
    event::TimerPtr interval_timer_;
    event::TimerPtr timeout_timer_;
    bool checking_ = false;
  };
  virtual std::unique_ptr<Session> createSession(HostSharedPtr host) = 0;

  const std::chrono::milliseconds timeout_;

 private:
  friend class Session;
  void onHostsChanged();
  // A session's verdict changed: the gauge, then the cluster's load-balancing set.
  void onHealthChanged();
  std::chrono::milliseconds jitter(std::chrono::milliseconds max);

  Cluster& cluster_;
  event::Dispatcher& dispatcher_;
  HealthCheckStats stats_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds interval_jitter_;
  const std::chrono::milliseconds initial_jitter_;
  const uint32_t unhealthy_threshold_;
  const uint32_t healthy_threshold_;
  std::mt19937_64 random_;
  absl::flat_hash_map<const Host*, std::unique_ptr<Session>> sessions_;
  std::unique_ptr<Cluster::MemberUpdateHandle> member_handle_;
  bool started_ = false;
};

// GET the configured path (http_health_check) or call grpc.health.v1.Health/Check
// (grpc_health_check), over a connection made as the pools make theirs: the cluster's transport
// (TLS) and codec factory (HTTP/1.1, HTTP/2, ALPN). The connection is kept for the next check
// (Envoy's reuse_connection) unless the check failed, timed out, or the host closes it.
class HttpHealthChecker : public HealthCheckerImplBase {
 public:
  HttpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                    event::Dispatcher& dispatcher, stats::Store& store);

 protected:
  // `authority`: the Host / :authority every check sends.
  HttpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                    event::Dispatcher& dispatcher, stats::Store& store, std::string authority);
  std::unique_ptr<Session> createSession(HostSharedPtr host) override;

 private:
  class HttpSession;
  friend class HttpSession;
  // What a check sends and when its answer is healthy: plain HTTP or gRPC.
  virtual std::unique_ptr<http::RequestHead> makeRequest() const;
  virtual std::string requestBody() const { return {}; }
  // The verdict on a whole response (`body`: what was kept of it, see keepsBody).
  virtual bool healthyResponse(const http::ResponseHead& head, const http::HeaderMap* trailers,
                               std::string_view body) const;
  virtual bool keepsBody() const { return false; }

  const config::v1::HealthCheck::HttpHealthCheck http_;
  std::vector<std::pair<uint32_t, uint32_t>> expected_;  // [start, end)

 protected:
  const std::string authority_;
};

class GrpcHealthChecker : public HttpHealthChecker {
 public:
  GrpcHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                    event::Dispatcher& dispatcher, stats::Store& store);

 private:
  std::unique_ptr<http::RequestHead> makeRequest() const override;
  std::string requestBody() const override { return frame_; }
  bool healthyResponse(const http::ResponseHead& head, const http::HeaderMap* trailers,
                       std::string_view body) const override;
  bool keepsBody() const override { return true; }

  const std::string frame_;  // the request's body, made once
};

// Connect (with the cluster's transport, TLS included), send `send`, and wait for `receive`
// among the bytes read (as a substring); both empty: the connection alone is the check. A new
// connection per check, closed at its end.
class TcpHealthChecker : public HealthCheckerImplBase {
 public:
  TcpHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                   event::Dispatcher& dispatcher, stats::Store& store);

 protected:
  std::unique_ptr<Session> createSession(HostSharedPtr host) override;

 private:
  class TcpSession;
  const std::string send_;
  const std::string receive_;
};

}  // namespace sluice::upstream
