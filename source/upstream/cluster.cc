#include "source/upstream/cluster.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/tls/client_context.h"

namespace sluice::upstream {

namespace {
constexpr std::chrono::milliseconds kDefaultConnectTimeout{5000};
// See listener_config.h: the same reasoning on the upstream side.
constexpr uint32_t kDefaultBufferLimit = 8 * 1024;

std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}
}  // namespace

absl::StatusOr<std::unique_ptr<ClusterManager>> ClusterManager::create(
    const config::v1::Bootstrap& bootstrap, stats::Store& store) {
  auto cm = std::make_unique<ClusterManager>();
  for (const auto& c : bootstrap.clusters()) {
    auto timeout = kDefaultConnectTimeout;
    if (c.has_connect_timeout()) timeout = Ms(c.connect_timeout());
    const uint32_t limit = c.per_connection_buffer_limit_bytes() != 0
                               ? c.per_connection_buffer_limit_bytes()
                               : kDefaultBufferLimit;
    const std::string prefix = absl::StrCat("cluster.", c.name(), ".");
    ClusterStats stats{store.counter(prefix + "upstream_cx_total"),
                       store.gauge(prefix + "upstream_cx_active"),
                       store.counter(prefix + "upstream_cx_connect_fail"),
                       store.counter(prefix + "upstream_cx_connect_timeout"),
                       store.counter(prefix + "upstream_rq_no_host"),
                       store.counter(prefix + "upstream_rq_retry_stale_connection"),
                       store.counter(prefix + "upstream_rq_body_buffered"),
                       store.counter(prefix + "upstream_rq_body_buffer_overflow"),
                       store.counter(prefix + "update_attempt"),
                       store.counter(prefix + "update_success"),
                       store.counter(prefix + "update_failure"),
                       store.counter(prefix + "membership_change"),
                       store.gauge(prefix + "membership_total")};
    PoolSettings pool;
    pool.connect_timeout = timeout;
    pool.buffer_limit = limit;
    const auto& hp = c.http_pool();
    if (hp.has_idle_timeout()) pool.idle_timeout = Ms(hp.idle_timeout());
    pool.max_requests_per_connection = hp.max_requests_per_connection();
    if (hp.max_pending_requests() != 0) pool.max_pending = hp.max_pending_requests();
    if (hp.max_connections() != 0) pool.max_connections = hp.max_connections();
    if (hp.max_idle_connections() != 0) pool.max_idle = hp.max_idle_connections();
    // The same counters as the TCP proxy's connections, plus the pool's own.
    PoolStats pool_stats{stats.upstream_cx_total,
                         stats.upstream_cx_active,
                         stats.upstream_cx_connect_fail,
                         stats.upstream_cx_connect_timeout,
                         store.counter(prefix + "upstream_rq_total"),
                         store.counter(prefix + "upstream_rq_reused"),
                         store.counter(prefix + "upstream_rq_pending_overflow"),
                         store.counter(prefix + "upstream_cx_idle_timeout"),
                         store.counter(prefix + "upstream_cx_stale_closed")};
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
    std::unique_ptr<network::TransportSocketFactory> transport;
    if (c.has_tls_context()) {
      auto ssl_stats = std::make_shared<tls::SslStats>(store, prefix);
      auto context = tls::ClientContext::Create(
          c.tls_context(), absl::StrCat("clusters[", cm->clusters_.size(), "].tls_context"),
          std::move(ssl_stats));
      if (!context.ok()) return context.status();
      transport = std::make_unique<tls::ClientSslSocketFactory>(std::move(*context));
    }
    auto cluster = std::make_unique<Cluster>(c.name(), timeout, limit, stats, pool, pool_stats,
                                             policy, std::move(transport));
    if (c.type() == config::v1::Cluster::STRICT_DNS) {
      auto dns = std::make_unique<DnsSettings>();
      for (const auto& ep : c.endpoints()) {
        dns->names.push_back({ep.address().address(), static_cast<uint16_t>(ep.address().port()),
                              ep.weight() != 0 ? ep.weight() : 1});
      }
      if (c.has_dns_refresh_rate()) dns->refresh_rate = Ms(c.dns_refresh_rate());
      dns->respect_ttl = c.respect_dns_ttl();
      switch (c.dns_lookup_family()) {
        case config::v1::Cluster::V4_ONLY:
          dns->family = network::DnsLookupFamily::kV4Only;
          break;
        case config::v1::Cluster::V6_ONLY:
          dns->family = network::DnsLookupFamily::kV6Only;
          break;
        case config::v1::Cluster::ALL:
          dns->family = network::DnsLookupFamily::kAll;
          break;
        default:
          break;
      }
      for (const auto& r : c.dns_resolvers()) {
        auto a = network::Address::fromIpPort(r.address(), r.port());
        if (!a.ok()) return a.status();
        dns->resolvers.push_back(*a);
      }
      cluster->setDns(std::move(dns));
      cluster->setHosts({}, {});  // until the first lookup
    } else {
      std::vector<network::Address> endpoints;
      std::vector<uint32_t> weights;
      for (const auto& ep : c.endpoints()) {
        auto a = network::Address::fromIpPort(ep.address().address(), ep.address().port());
        if (!a.ok()) return a.status();
        endpoints.push_back(*a);
        weights.push_back(ep.weight() != 0 ? ep.weight() : 1);
      }
      cluster->setHosts(std::move(endpoints), std::move(weights));
    }
    cm->by_name_[c.name()] = cluster.get();
    cm->clusters_.push_back(std::move(cluster));
  }
  return cm;
}

void Cluster::setHosts(std::vector<network::Address> addresses, std::vector<uint32_t> weights) {
  stats_.membership_total.set(addresses.size());
  hosts_ = std::make_shared<const HostSet>(std::move(addresses), std::move(weights),
                                           lb_policy_ == LbPolicy::kMaglev);
}

const Cluster* ClusterManager::get(std::string_view name) const {
  auto it = by_name_.find(absl::string_view(name.data(), name.size()));
  return it == by_name_.end() ? nullptr : it->second;
}

WorkerClusters::WorkerClusters(const ClusterManager& manager, size_t worker_index)
    : manager_(manager), worker_index_(worker_index) {
  // On the main thread, before the worker runs: the clusters' host sets as they are now.
  for (const auto& c : manager.clusters()) {
    auto per = std::make_unique<PerCluster>();
    per->hosts = c->hosts();
    per->pools.resize(per->hosts->size());
    if (!per->hosts->empty()) {
      per->lb = CreateLoadBalancer(c->lbPolicy(), *per->hosts, worker_index, *per);
    }
    clusters_[c.get()] = std::move(per);
  }
}

WorkerClusters::~WorkerClusters() = default;

void WorkerClusters::releaseConnections() {
  for (auto& [cluster, per] : clusters_) {
    for (auto& pool : per->pools) pool.reset();
  }
  retired_.clear();
}

HttpConnPool* WorkerClusters::pickHttpPool(const Cluster& cluster, const LbContext& context,
                                           event::Dispatcher& dispatcher) {
  PerCluster& per = *clusters_.at(&cluster);
  if (!per.lb) {
    cluster.stats().upstream_rq_no_host.inc();
    return nullptr;
  }
  const size_t host = per.lb->pickIndex(context);
  auto& slot = per.pools[host];
  if (!slot) {
    slot = std::make_unique<HttpConnPool>(dispatcher, per.hosts->address(host),
                                          cluster.poolSettings(), cluster.poolStats());
  }
  return slot.get();
}

const network::Address* WorkerClusters::pickHost(const Cluster& cluster, const LbContext& context) {
  PerCluster& per = *clusters_.at(&cluster);
  if (!per.lb) {
    cluster.stats().upstream_rq_no_host.inc();
    return nullptr;
  }
  return &per.hosts->address(per.lb->pickIndex(context));
}

void WorkerClusters::updateHosts(const Cluster& cluster, HostSetPtr hosts) {
  PerCluster& per = *clusters_.at(&cluster);
  // Pools follow their host's address to its new index.
  absl::flat_hash_map<std::string, std::unique_ptr<HttpConnPool>> by_address;
  for (size_t i = 0; i < per.pools.size(); ++i) {
    if (per.pools[i]) by_address[per.hosts->address(i).asString()] = std::move(per.pools[i]);
  }
  std::vector<std::unique_ptr<HttpConnPool>> pools(hosts->size());
  for (size_t i = 0; i < hosts->size(); ++i) {
    auto it = by_address.find(hosts->address(i).asString());
    if (it != by_address.end()) {
      pools[i] = std::move(it->second);
      by_address.erase(it);
    }
  }
  for (auto& [address, pool] : by_address) retire(std::move(pool));
  per.lb.reset();  // refers to the old host set
  per.pools = std::move(pools);
  per.hosts = std::move(hosts);
  if (!per.hosts->empty()) {
    per.lb = CreateLoadBalancer(cluster.lbPolicy(), *per.hosts, worker_index_, per);
  }
}

void WorkerClusters::retire(std::unique_ptr<HttpConnPool> pool) {
  HttpConnPool* p = pool.get();
  retired_[p] = std::move(pool);
  p->drain([this, p] {
    // Called from inside one of the pool's connection events: free it after.
    auto it = retired_.find(p);
    if (it == retired_.end()) return;
    std::unique_ptr<HttpConnPool> owned = std::move(it->second);
    retired_.erase(it);
    owned->dispatcher().deferredDelete(std::move(owned));
  });
}

}  // namespace sluice::upstream
