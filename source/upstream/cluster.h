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

namespace sluice::upstream {

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

 private:
  const std::string name_;
  const std::vector<network::Address> endpoints_;
  const std::chrono::milliseconds connect_timeout_;
  const uint32_t buffer_limit_;
  mutable ClusterStats stats_;
  const PoolSettings pool_settings_;
  mutable PoolStats pool_stats_;
};

// Picks the host for a new upstream connection. One instance per worker and cluster.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  virtual const network::Address& pick() = 0;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

class RoundRobinLoadBalancer : public LoadBalancer {
 public:
  // Workers start at different offsets so that N workers do not all hit endpoint 0 first.
  RoundRobinLoadBalancer(const Cluster& cluster, size_t start) : cluster_(cluster), next_(start) {}
  const network::Address& pick() override {
    const auto& eps = cluster_.endpoints();
    return eps[next_++ % eps.size()];
  }

 private:
  const Cluster& cluster_;
  size_t next_;
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
  HttpConnPool& httpPool(const Cluster& cluster, const network::Address& host,
                         event::Dispatcher& dispatcher);
  const ClusterManager& manager() const { return manager_; }

 private:
  const ClusterManager& manager_;
  absl::flat_hash_map<const Cluster*, LoadBalancerPtr> lbs_;
  // Keyed by cluster and the host's address bytes (fixed size: no allocation per lookup).
  struct PoolKey {
    const Cluster* cluster;
    std::array<char, 28> address;  // sockaddr_in6 at most
    template <typename H>
    friend H AbslHashValue(H h, const PoolKey& k) {
      return H::combine(std::move(h), k.cluster, absl::string_view(k.address.data(), 28));
    }
    bool operator==(const PoolKey& o) const { return cluster == o.cluster && address == o.address; }
  };
  absl::flat_hash_map<PoolKey, std::unique_ptr<HttpConnPool>> pools_;
};

}  // namespace sluice::upstream
