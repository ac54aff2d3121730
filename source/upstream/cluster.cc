#include "source/upstream/cluster.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace sluice::upstream {

namespace {
constexpr std::chrono::milliseconds kDefaultConnectTimeout{5000};
constexpr uint32_t kDefaultBufferLimit = 1024 * 1024;
}  // namespace

absl::StatusOr<std::unique_ptr<ClusterManager>> ClusterManager::create(
    const config::v1::Bootstrap& bootstrap, stats::Store& store) {
  auto cm = std::make_unique<ClusterManager>();
  for (const auto& c : bootstrap.clusters()) {
    std::vector<network::Address> endpoints;
    std::vector<uint32_t> weights;
    for (const auto& ep : c.endpoints()) {
      auto a = network::Address::fromIpPort(ep.address().address(), ep.address().port());
      if (!a.ok()) return a.status();
      endpoints.push_back(*a);
      weights.push_back(ep.weight() != 0 ? ep.weight() : 1);
    }
    auto timeout = kDefaultConnectTimeout;
    if (c.has_connect_timeout()) {
      timeout = std::chrono::milliseconds(
          google::protobuf::util::TimeUtil::DurationToMilliseconds(c.connect_timeout()));
    }
    const uint32_t limit = c.per_connection_buffer_limit_bytes() != 0
                               ? c.per_connection_buffer_limit_bytes()
                               : kDefaultBufferLimit;
    const std::string prefix = absl::StrCat("cluster.", c.name(), ".");
    ClusterStats stats{store.counter(prefix + "upstream_cx_total"),
                       store.gauge(prefix + "upstream_cx_active"),
                       store.counter(prefix + "upstream_cx_connect_fail"),
                       store.counter(prefix + "upstream_cx_connect_timeout")};
    PoolSettings pool;
    pool.connect_timeout = timeout;
    pool.buffer_limit = limit;
    const auto& hp = c.http_pool();
    if (hp.has_idle_timeout()) {
      pool.idle_timeout = std::chrono::milliseconds(
          google::protobuf::util::TimeUtil::DurationToMilliseconds(hp.idle_timeout()));
    }
    pool.max_requests_per_connection = hp.max_requests_per_connection();
    if (hp.max_pending_requests() != 0) pool.max_pending = hp.max_pending_requests();
    if (hp.max_connections() != 0) pool.max_connections = hp.max_connections();
    // The same counters as the TCP proxy's connections, plus the pool's own.
    PoolStats pool_stats{stats.upstream_cx_total,
                         stats.upstream_cx_active,
                         stats.upstream_cx_connect_fail,
                         stats.upstream_cx_connect_timeout,
                         store.counter(prefix + "upstream_rq_total"),
                         store.counter(prefix + "upstream_rq_reused"),
                         store.counter(prefix + "upstream_rq_pending_overflow"),
                         store.counter(prefix + "upstream_cx_idle_timeout")};
    cm->clusters_.push_back(std::make_unique<Cluster>(c.name(), std::move(endpoints), timeout,
                                                      limit, stats, pool, pool_stats));
    LbPolicy policy = LbPolicy::kRoundRobin;
    switch (c.lb_policy()) {
      case config::v1::Cluster::LEAST_REQUEST:
        policy = LbPolicy::kLeastRequest;
        break;
      case config::v1::Cluster::RANDOM:
        policy = LbPolicy::kRandom;
        break;
      case config::v1::Cluster::MAGLEV:
        policy = LbPolicy::kMaglev;
        break;
      default:
        break;
    }
    cm->clusters_.back()->setLoadBalancing(policy, std::move(weights));
    cm->by_name_[c.name()] = cm->clusters_.back().get();
  }
  return cm;
}

const Cluster* ClusterManager::get(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

WorkerClusters::WorkerClusters(const ClusterManager& manager, size_t worker_index)
    : manager_(manager) {
  for (const auto& c : manager.clusters()) {
    auto per = std::make_unique<PerCluster>();
    per->pools.resize(c->endpoints().size());
    per->lb = CreateLoadBalancer(*c, worker_index, *per);
    clusters_[c.get()] = std::move(per);
  }
}

WorkerClusters::~WorkerClusters() = default;

void WorkerClusters::releaseConnections() {
  for (auto& [cluster, per] : clusters_) {
    for (auto& pool : per->pools) pool.reset();
  }
}

LoadBalancer& WorkerClusters::loadBalancer(const Cluster& cluster) {
  return *clusters_.at(&cluster)->lb;
}

HttpConnPool& WorkerClusters::httpPool(const Cluster& cluster, size_t host_index,
                                       event::Dispatcher& dispatcher) {
  auto& slot = clusters_.at(&cluster)->pools[host_index];
  if (!slot) {
    slot = std::make_unique<HttpConnPool>(dispatcher, cluster.endpoints()[host_index],
                                          cluster.poolSettings(), cluster.poolStats());
  }
  return *slot;
}

}  // namespace sluice::upstream
