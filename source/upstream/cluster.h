#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/common/stats.h"
#include "source/http/codec.h"
#include "source/network/address.h"
#include "source/network/dns_resolver.h"
#include "source/upstream/conn_pool.h"
#include "source/upstream/conn_pool_impl.h"
#include "source/upstream/load_balancer.h"
#include "source/upstream/outlier_detection.h"
#include "source/upstream/resource_manager.h"

namespace sluice::upstream {

struct ClusterStats {
  stats::Counter& upstream_cx_total;
  stats::Gauge& upstream_cx_active;
  stats::Counter& upstream_cx_connect_fail;
  stats::Counter& upstream_cx_connect_timeout;
  // Requests that found the cluster without hosts (a name that did not resolve yet): 503.
  stats::Counter& upstream_rq_no_host;
  // Requests sent again on a new connection after a reused one failed before any response
  // byte (the upstream closed it as the request went out).
  stats::Counter& upstream_rq_retry_stale_connection;
  // Request bodies read whole before a connection was taken, and bodies that turned out larger
  // than the route's bound (streamed instead).
  stats::Counter& upstream_rq_body_buffered;
  stats::Counter& upstream_rq_body_buffer_overflow;
  // Host discovery (STRICT_DNS): lookups, their outcomes, changes of the host set, its size.
  stats::Counter& update_attempt;
  stats::Counter& update_success;
  stats::Counter& update_failure;
  stats::Counter& membership_change;
  stats::Gauge& membership_total;
  // Circuit breakers: pools not made (max_connection_pools), retries not made (max_retries).
  stats::Counter& upstream_cx_pool_overflow;
  stats::Counter& upstream_rq_retry_overflow;
  // HTTP/2: streams the upstream refused unprocessed (REFUSED_STREAM, or above a GOAWAY's last
  // stream id), and those sent again on another connection.
  stats::Counter& upstream_rq_refused_stream;
  stats::Counter& upstream_rq_retry_refused;
  // Retries a filter's policy asked for (sl_on_upstream_retry) and the core made; streams whose
  // response came after at least one of them; policies whose retries were used up; streams not
  // retryable because their body outgrew the replay bound; attempts ended by their per-try
  // timeout, by the route's connect timeout (the wait for a connection) and by send_timeout.
  stats::Counter& upstream_rq_retry;
  stats::Counter& upstream_rq_retry_success;
  stats::Counter& upstream_rq_retry_limit_exceeded;
  stats::Counter& upstream_rq_retry_body_overflow;
  stats::Counter& upstream_rq_per_try_timeout;
  stats::Counter& upstream_rq_connect_timeout;
  stats::Counter& upstream_rq_send_timeout;
  // Health: requests picked while the cluster was in panic (too few healthy hosts: every host
  // used), and how many hosts the load balancers use now.
  stats::Counter& lb_healthy_panic;
  stats::Gauge& membership_healthy;
  // Upstream responses by class (each attempt's that got a head: upstream_rq_1xx .. 5xx), and
  // each attempt's time from its start (the wait for a connection included) to the response's
  // last byte, in milliseconds.
  std::array<stats::Counter*, 5> upstream_rq_xx;
  stats::Histogram& upstream_rq_time;
};

// Makes a cluster's ClientCodecFactory from its config (source/http/client_codecs.h: the HTTP
// codecs live above this layer, which knows them only through http::ClientCodecFactory).
using ClientCodecFactoryBuilder =
    std::function<absl::StatusOr<std::unique_ptr<http::ClientCodecFactory>>(
        const config::v1::Cluster& cluster, const stats::Scope& scope)>;

struct CircuitBreakerSettings {
  uint64_t max_connections = 1024;
  uint64_t max_pending_requests = 1024;
  uint64_t max_requests = 1024;
  uint64_t max_retries = 3;
  uint64_t max_connection_pools = Resource::kUnlimited;
};

// How a STRICT_DNS cluster finds its hosts (cluster.proto).
struct DnsSettings {
  struct Name {
    std::string name;
    uint16_t port;
    uint32_t weight;
    Host::Metadata metadata;
  };
  std::vector<Name> names;
  std::chrono::milliseconds refresh_rate{5000};
  bool respect_ttl = false;
  network::DnsLookupFamily family = network::DnsLookupFamily::kV4Preferred;
  std::vector<network::Address> resolvers;  // empty: the system's
};

// An upstream cluster as configured: built on the main thread, then shared read-only by the
// workers (per-worker state such as the round-robin position lives in WorkerClusters). Its host
// set is the main thread's: workers get theirs at start and by posting (WorkerClusters).
class Cluster {
 public:
  Cluster(std::string name, std::chrono::milliseconds connect_timeout, uint32_t buffer_limit,
          ClusterStats stats, PoolSettings pool_settings, PoolStats pool_stats, LbPolicy policy,
          std::unique_ptr<network::TransportSocketFactory> transport,
          std::unique_ptr<http::ClientCodecFactory> codecs, const CircuitBreakerSettings& limits,
          const stats::Scope& scope);

  const std::string& name() const { return name_; }
  // "cluster.<name>." with the tag cluster_name: where the cluster's and its hosts' stats live.
  const stats::Scope& statsScope() const { return scope_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  // nginx's proxy_read_timeout / proxy_send_timeout for the cluster's requests (a route's own
  // win); 0: none.
  std::chrono::milliseconds readTimeout() const { return read_timeout_; }
  std::chrono::milliseconds sendTimeout() const { return send_timeout_; }
  void setProxyTimeouts(std::chrono::milliseconds read, std::chrono::milliseconds send) {
    read_timeout_ = read;
    send_timeout_ = send;
  }
  uint32_t bufferLimit() const { return buffer_limit_; }
  ClusterStats& stats() const { return stats_; }
  const PoolSettings& poolSettings() const { return pool_settings_; }
  PoolStats& poolStats() const { return pool_stats_; }
  LbPolicy lbPolicy() const { return lb_policy_; }
  // The circuit breakers: counts shared by every worker (atomics).
  ResourceManager& resources() const { return resources_; }
  // STRICT_DNS clusters: how to find the hosts; nullptr for static ones.
  const DnsSettings* dns() const { return dns_.get(); }
  void setDns(std::unique_ptr<DnsSettings> dns) { dns_ = std::move(dns); }
  // The transport of every connection to the hosts (TLS); null: plain TCP. Set before the
  // workers start; the pool settings point at it.
  const network::TransportSocketFactory* transportSocketFactory() const {
    return pool_settings_.transport_socket_factory;
  }

  // Main thread only (workers keep their own copy): every host of the cluster.
  const HostSetPtr& hosts() const { return hosts_; }
  // Main thread only: the hosts the load balancers use — the healthy ones, or all of them in
  // panic (HostSet::panic()) — what the workers were last given.
  const HostSetPtr& lbHosts() const { return lb_hosts_; }
  // One host of a new host set.
  struct HostEntry {
    network::Address address;
    uint32_t weight = 1;
    std::string hostname;  // the DNS name it came from, if any
    Host::Metadata metadata;
  };
  // A new host set (Maglev table built here, once, for every worker); a host already in the
  // set with the same address, weight, name and metadata stays the same object. Main thread
  // only.
  // Each change of the host set is told to the member-update callbacks (the health checker
  // follows it), then published (refreshHealth).
  void setHosts(std::vector<HostEntry> entries);
  void setHosts(std::vector<network::Address> addresses, std::vector<uint32_t> weights);

  // Outlier detection (passive health): the cluster's detector, null without
  // outlier_detection. Set on the main thread before the workers get the hosts: the hosts
  // there and those added later get their monitors (a test passes its own clock).
  void setOutlierDetection(const OutlierDetectionSettings& settings, OutlierDetectionStats stats,
                           MonotonicClock clock = {});
  OutlierDetector* outlierDetector() const { return outlier_.get(); }

  // Health (main thread). Active health checks of the hosts (at most one; set before the first
  // setHosts: new hosts then start kPendingActiveHealthCheck | kFailedActiveHealthCheck).
  void setHealthChecks(std::vector<config::v1::HealthCheck> checks) {
    health_checks_ = std::move(checks);
  }
  const std::vector<config::v1::HealthCheck>& healthChecks() const { return health_checks_; }
  // common_lb_config.healthy_panic_threshold, in percent; 0: never panic.
  void setHealthyPanicThreshold(double percent) { panic_threshold_ = percent; }
  double healthyPanicThreshold() const { return panic_threshold_; }
  // How a new load-balancing host set reaches the workers (the server posts it to each one).
  using HostSetPublisher = std::function<void(const Cluster& cluster, HostSetPtr hosts)>;
  void setHostSetPublisher(HostSetPublisher publisher) { publisher_ = std::move(publisher); }
  // Called after every change of the host set (hosts() is the new one). Main thread; the
  // handle unregisters it when destroyed (before the cluster).
  class MemberUpdateHandle {
   public:
    ~MemberUpdateHandle() { owner_.member_callbacks_.erase(it_); }
    MemberUpdateHandle(const MemberUpdateHandle&) = delete;
    MemberUpdateHandle& operator=(const MemberUpdateHandle&) = delete;

   private:
    friend class Cluster;
    MemberUpdateHandle(Cluster& owner, std::list<std::function<void()>>::iterator it)
        : owner_(owner), it_(it) {}
    Cluster& owner_;
    std::list<std::function<void()>>::iterator it_;
  };
  std::unique_ptr<MemberUpdateHandle> addMemberUpdateCallback(std::function<void()> callback);
  // A host's health flags changed (health checker, outlier detection): recomputes the load
  // balancing set from hosts() — the healthy hosts, or all of them when fewer than the panic
  // threshold's percent are healthy — and publishes it when it differs from the last one.
  // The workers' pick path never looks at a host's health: this is where health is applied.
  void refreshHealth();

 private:
  // First: the pool settings point at them.
  std::unique_ptr<network::TransportSocketFactory> transport_;
  std::unique_ptr<http::ClientCodecFactory> codecs_;
  const std::string name_;
  const stats::Scope scope_;
  const std::chrono::milliseconds connect_timeout_;
  std::chrono::milliseconds read_timeout_{0};
  std::chrono::milliseconds send_timeout_{0};
  const uint32_t buffer_limit_;
  mutable ClusterStats stats_;
  PoolSettings pool_settings_;
  mutable PoolStats pool_stats_;
  const LbPolicy lb_policy_;
  mutable ResourceManager resources_;
  std::unique_ptr<DnsSettings> dns_;
  HostSetPtr hosts_;
  OutlierDetectorSharedPtr outlier_;
  HostSetPtr lb_hosts_;
  std::vector<config::v1::HealthCheck> health_checks_;
  double panic_threshold_ = 50;
  HostSetPublisher publisher_;
  std::list<std::function<void()>> member_callbacks_;
};

// Every cluster of a config snapshot.
class ClusterManager {
 public:
  // Builds clusters from a validated bootstrap, with defaults applied; `codecs` makes each
  // cluster's HTTP codec factory.
  static absl::StatusOr<std::unique_ptr<ClusterManager>> create(
      const config::v1::Bootstrap& bootstrap, stats::Store& store,
      const ClientCodecFactoryBuilder& codecs);
  const Cluster* get(std::string_view name) const;
  // The clusters themselves stay mutable for the main thread (STRICT_DNS host sets change:
  // DnsClusterUpdater); workers see them through get() and WorkerClusters.
  const std::vector<std::unique_ptr<Cluster>>& clusters() const { return clusters_; }
  // Main thread, before the workers run: the clusters' outlier detectors post their
  // ejections to `main` and start their interval timers there.
  void startOutlierDetection(event::Dispatcher& main);

 private:
  std::vector<std::unique_ptr<Cluster>> clusters_;
  absl::flat_hash_map<std::string, const Cluster*> by_name_;
};

// A worker's view of the clusters: per cluster its host set, load balancer and HTTP
// connection pools (one per host, created on first use). Used only on that worker's thread.
class WorkerClusters {
 public:
  WorkerClusters(const ClusterManager& manager, size_t worker_index);
  ~WorkerClusters();
  const ClusterManager& manager() const { return manager_; }

  // What a pool pick found: a pool, or why there is none.
  struct PoolPick {
    ConnPool* pool = nullptr;
    // No pool: the cluster has no hosts (counted in upstream_rq_no_host), or (`overflow`) its
    // max_connection_pools is reached (counted in upstream_cx_pool_overflow).
    bool overflow = false;
  };
  // Picks a host for a request and returns its pool (made on first use).
  PoolPick pickConnPool(const Cluster& cluster, const LbContext& context,
                        event::Dispatcher& dispatcher);
  // Picks a host (TCP proxy, CONNECT tunnels); nullptr when the cluster has no hosts.
  const Host* pickHost(const Cluster& cluster, const LbContext& context = {});
  // The hosts to balance over changed (posted by the main thread: DNS, health). Pools of hosts that
  // stay are kept; those of hosts that left drain: no new requests, idle connections closed, the
  // rest closed as their requests end, then freed.
  void updateHosts(const Cluster& cluster, HostSetPtr hosts);
  // Closes every pooled connection (worker teardown: before the dispatcher goes).
  void releaseConnections();

 private:
  // Per cluster: its hosts, its balancer and one pool per host (by index), whose busy and
  // pending counts are the host's load for least-request picks.
  struct PerCluster : public HostLoad {
    HostSetPtr hosts;
    LoadBalancerPtr lb;  // null while there are no hosts
    std::vector<std::unique_ptr<ConnPoolImpl>> pools;
    uint64_t activeRequests(size_t host_index) const override {
      const auto& p = pools[host_index];
      return p ? p->activeStreams() + p->pendingStreams() : 0;
    }
  };
  // Frees a pool, giving back its place under max_connection_pools.
  void release(const Cluster& cluster, std::unique_ptr<ConnPoolImpl> pool);
  void retire(const Cluster& cluster, std::unique_ptr<ConnPoolImpl> pool);

  const ClusterManager& manager_;
  const size_t worker_index_;
  absl::flat_hash_map<const Cluster*, std::unique_ptr<PerCluster>> clusters_;
  // Pools of hosts that left, finishing what they carry.
  struct Retired {
    const Cluster* cluster;
    std::unique_ptr<ConnPoolImpl> pool;
  };
  absl::flat_hash_map<ConnPoolImpl*, Retired> retired_;
};

}  // namespace sluice::upstream
