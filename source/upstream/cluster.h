#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/common/stats.h"
#include "source/network/address.h"
#include "source/upstream/http_conn_pool.h"
#include "source/upstream/load_balancer.h"

namespace sluice::upstream {

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kMaglev };

struct ClusterStats {
  stats::Counter& upstream_cx_total;
  stats::Gauge& upstream_cx_active;
  stats::Counter& upstream_cx_connect_fail;
  stats::Counter& upstream_cx_connect_timeout;
};

// An upstream cluster as configured: immutable once built on the main thread, shared read-only
// by the workers (per-worker state such as the round-robin position lives in WorkerClusters).
class Cluster {
 public:
  Cluster(std::string name, std::vector<network::Address> endpoints,
          std::chrono::milliseconds connect_timeout, uint32_t buffer_limit, ClusterStats stats,
          PoolSettings pool_settings, PoolStats pool_stats)
      : name_(std::move(name)),
        endpoints_(std::move(endpoints)),
        connect_timeout_(connect_timeout),
        buffer_limit_(buffer_limit),
        stats_(stats),
        pool_settings_(pool_settings),
        pool_stats_(pool_stats) {}

  const std::string& name() const { return name_; }
  const std::vector<network::Address>& endpoints() const { return endpoints_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  uint32_t bufferLimit() const { return buffer_limit_; }
  ClusterStats& stats() const { return stats_; }
  const PoolSettings& poolSettings() const { return pool_settings_; }
  PoolStats& poolStats() const { return pool_stats_; }

  // Load balancing: the policy, each endpoint's weight (default 1) and their sum, and the
  // Maglev table when the policy is MAGLEV.
  LbPolicy lbPolicy() const { return lb_policy_; }
  const std::vector<uint32_t>& weights() const { return weights_; }
  uint64_t totalWeight() const { return total_weight_; }
  const MaglevTable* maglev() const { return maglev_.get(); }
  void setLoadBalancing(LbPolicy policy, std::vector<uint32_t> weights) {
    lb_policy_ = policy;
    weights_ = std::move(weights);
    total_weight_ = 0;
    for (uint32_t w : weights_) total_weight_ += w;
    if (policy == LbPolicy::kMaglev) {
      std::vector<std::string> names;
      for (const auto& e : endpoints_) names.push_back(e.asString());
      maglev_ = std::make_unique<MaglevTable>(names, weights_);
    }
  }

 private:
  const std::string name_;
  const std::vector<network::Address> endpoints_;
  const std::chrono::milliseconds connect_timeout_;
  const uint32_t buffer_limit_;
  mutable ClusterStats stats_;
  const PoolSettings pool_settings_;
  mutable PoolStats pool_stats_;
  LbPolicy lb_policy_ = LbPolicy::kRoundRobin;
  std::vector<uint32_t> weights_;
  uint64_t total_weight_ = 0;
  std::unique_ptr<MaglevTable> maglev_;
};

// Every cluster of a config snapshot.
class ClusterManager {
 public:
  // Builds clusters from a validated bootstrap, with defaults applied.
  static absl::StatusOr<std::unique_ptr<ClusterManager>> create(
      const config::v1::Bootstrap& bootstrap, stats::Store& store);
  const Cluster* get(const std::string& name) const;
  const std::vector<std::unique_ptr<Cluster>>& clusters() const { return clusters_; }

 private:
  std::vector<std::unique_ptr<Cluster>> clusters_;
  absl::flat_hash_map<std::string, const Cluster*> by_name_;
};

// A worker's load balancers (one per cluster) and HTTP connection pools (one per cluster and
// host, created on first use). Used only on that worker's thread.
class WorkerClusters {
 public:
  WorkerClusters(const ClusterManager& manager, size_t worker_index);
  ~WorkerClusters();
  LoadBalancer& loadBalancer(const Cluster& cluster);
  // The pool for the cluster's endpoint `host_index` (as picked by its load balancer).
  HttpConnPool& httpPool(const Cluster& cluster, size_t host_index, event::Dispatcher& dispatcher);
  const ClusterManager& manager() const { return manager_; }
  // Closes every pooled connection (worker teardown: before the dispatcher goes).
  void releaseConnections();

 private:
  // Per cluster: its balancer and one pool per endpoint (by index), whose busy and pending
  // counts are the host's load for least-request picks.
  struct PerCluster : public HostLoad {
    LoadBalancerPtr lb;
    std::vector<std::unique_ptr<HttpConnPool>> pools;
    uint64_t activeRequests(size_t host_index) const override {
      const auto& p = pools[host_index];
      return p ? p->busyCount() + p->pendingCount() : 0;
    }
  };
  const ClusterManager& manager_;
  absl::flat_hash_map<const Cluster*, std::unique_ptr<PerCluster>> clusters_;
};

}  // namespace sluice::upstream
