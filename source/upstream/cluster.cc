#include "source/upstream/cluster.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/tls/client_context.h"

namespace sluice::upstream {

namespace {
constexpr std::chrono::milliseconds kDefaultConnectTimeout{5000};
// Picks a retry makes while it lands on a host an earlier attempt used (Envoy's
// host_selection_retry_max_attempts, which defaults to 1; a few more cost nothing).
constexpr int kHostReselectAttempts = 3;
// nginx's proxy_read_timeout default.
constexpr std::chrono::milliseconds kDefaultReadTimeout{60000};
// See listener_config.h: the same reasoning on the upstream side.
constexpr uint32_t kDefaultBufferLimit = 8 * 1024;

std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}
}  // namespace

Cluster::Cluster(std::string name, std::chrono::milliseconds connect_timeout, uint32_t buffer_limit,
                 ClusterStats stats, PoolSettings pool_settings, PoolStats pool_stats,
                 LbPolicy policy, std::unique_ptr<network::TransportSocketFactory> transport,
                 std::unique_ptr<http::ClientCodecFactory> codecs,
                 const CircuitBreakerSettings& limits, const stats::Scope& scope)
    : transport_(std::move(transport)),
      codecs_(std::move(codecs)),
      name_(std::move(name)),
      scope_(scope),
      connect_timeout_(connect_timeout),
      buffer_limit_(buffer_limit),
      stats_(stats),
      pool_settings_(pool_settings),
      pool_stats_(pool_stats),
      lb_policy_(policy),
      resources_(limits.max_connections, limits.max_pending_requests, limits.max_requests,
                 limits.max_retries, limits.max_connection_pools,
                 &scope.gauge("circuit_breakers.default.cx_open"),
                 &scope.gauge("circuit_breakers.default.rq_pending_open"),
                 &scope.gauge("circuit_breakers.default.rq_open"),
                 &scope.gauge("circuit_breakers.default.rq_retry_open"),
                 &scope.gauge("circuit_breakers.default.cx_pool_open")) {
  pool_settings_.transport_socket_factory = transport_.get();
  pool_settings_.codec_factory = codecs_.get();
}

absl::StatusOr<std::unique_ptr<ClusterManager>> ClusterManager::create(
    const config::v1::Bootstrap& bootstrap, stats::Store& store,
    const ClientCodecFactoryBuilder& codecs) {
  auto cm = std::make_unique<ClusterManager>();
  for (const auto& c : bootstrap.clusters()) {
    auto timeout = kDefaultConnectTimeout;
    if (c.has_connect_timeout()) timeout = Ms(c.connect_timeout());
    const uint32_t limit = c.per_connection_buffer_limit_bytes() != 0
                               ? c.per_connection_buffer_limit_bytes()
                               : kDefaultBufferLimit;
    const stats::Scope scope = stats::Scope(store).tagged("cluster", "cluster_name", c.name());
    ClusterStats stats{scope.counter("upstream_cx_total"),
                       scope.gauge("upstream_cx_active"),
                       scope.counter("upstream_cx_connect_fail"),
                       scope.counter("upstream_cx_connect_timeout"),
                       scope.counter("upstream_rq_no_host"),
                       scope.counter("upstream_rq_retry_stale_connection"),
                       scope.counter("upstream_rq_body_buffered"),
                       scope.counter("upstream_rq_body_buffer_overflow"),
                       scope.counter("update_attempt"),
                       scope.counter("update_success"),
                       scope.counter("update_failure"),
                       scope.counter("membership_change"),
                       scope.gauge("membership_total"),
                       scope.counter("upstream_cx_pool_overflow"),
                       scope.counter("upstream_rq_retry_overflow"),
                       scope.counter("upstream_rq_refused_stream"),
                       scope.counter("upstream_rq_retry_refused"),
                       scope.counter("upstream_rq_retry"),
                       scope.counter("upstream_rq_retry_success"),
                       scope.counter("upstream_rq_retry_limit_exceeded"),
                       scope.counter("upstream_rq_retry_body_overflow"),
                       scope.counter("upstream_rq_per_try_timeout"),
                       scope.counter("upstream_rq_connect_timeout"),
                       scope.counter("upstream_rq_send_timeout"),
                       scope.counter("lb_healthy_panic"),
                       scope.gauge("membership_healthy"),
                       {&stats::ResponseClassCounter(scope, "upstream_rq_", 1),
                        &stats::ResponseClassCounter(scope, "upstream_rq_", 2),
                        &stats::ResponseClassCounter(scope, "upstream_rq_", 3),
                        &stats::ResponseClassCounter(scope, "upstream_rq_", 4),
                        &stats::ResponseClassCounter(scope, "upstream_rq_", 5)},
                       scope.histogram("upstream_rq_time")};
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
                         scope.counter("upstream_rq_total"),
                         scope.counter("upstream_rq_reused"),
                         scope.counter("upstream_rq_pending_overflow"),
                         scope.counter("upstream_cx_overflow"),
                         scope.counter("upstream_cx_idle_timeout"),
                         scope.counter("upstream_cx_stale_closed"),
                         scope.gauge("upstream_rq_active"),
                         scope.gauge("upstream_rq_pending_active"),
                         scope.counter("http2.goaway_received"),
                         scope.counter("upstream_cx_max_requests")};
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
      auto ssl_stats = std::make_shared<tls::SslStats>(scope);
      // HTTP/2 over TLS is asked for by ALPN (RFC 9113 §3.2) unless the config names the
      // protocols itself.
      config::v1::UpstreamTlsContext tls = c.tls_context();
      if (tls.common_tls_context().alpn_protocols_size() == 0) {
        if (c.protocol() == config::v1::Cluster::HTTP2) {
          tls.mutable_common_tls_context()->add_alpn_protocols("h2");
        } else if (c.protocol() == config::v1::Cluster::AUTO) {
          tls.mutable_common_tls_context()->add_alpn_protocols("h2");
          tls.mutable_common_tls_context()->add_alpn_protocols("http/1.1");
        }
      }
      auto context = tls::ClientContext::Create(
          tls, absl::StrCat("clusters[", cm->clusters_.size(), "].tls_context"),
          std::move(ssl_stats));
      if (!context.ok()) return context.status();
      transport = std::make_unique<tls::ClientSslSocketFactory>(std::move(*context));
    }
    auto codec_factory = codecs(c, scope);
    if (!codec_factory.ok()) return codec_factory.status();
    CircuitBreakerSettings limits;
    const auto& cb = c.circuit_breakers();
    if (cb.has_max_connections()) limits.max_connections = cb.max_connections().value();
    if (cb.has_max_pending_requests()) {
      limits.max_pending_requests = cb.max_pending_requests().value();
    }
    if (cb.has_max_requests()) limits.max_requests = cb.max_requests().value();
    if (cb.has_max_retries()) limits.max_retries = cb.max_retries().value();
    if (cb.has_max_connection_pools()) {
      limits.max_connection_pools = cb.max_connection_pools().value();
    }
    auto cluster =
        std::make_unique<Cluster>(c.name(), timeout, limit, stats, pool, pool_stats, policy,
                                  std::move(transport), std::move(*codec_factory), limits, scope);
    cluster->setProxyTimeouts(
        c.has_read_timeout() ? Ms(c.read_timeout()) : kDefaultReadTimeout,
        c.has_send_timeout() ? Ms(c.send_timeout()) : std::chrono::milliseconds(0));
    if (c.has_outlier_detection()) {
      // Before the hosts, which get their monitors as they are made.
      cluster->setOutlierDetection(OutlierDetectionSettings::FromConfig(c.outlier_detection()),
                                   OutlierDetectionStats::Create(scope.child("outlier_detection")));
    }
    // Before the first host set: its hosts start pending when health checks are configured.
    cluster->setHealthChecks({c.health_checks().begin(), c.health_checks().end()});
    if (c.common_lb_config().has_healthy_panic_threshold()) {
      cluster->setHealthyPanicThreshold(c.common_lb_config().healthy_panic_threshold().value());
    }
    if (c.type() == config::v1::Cluster::STRICT_DNS) {
      auto dns = std::make_unique<DnsSettings>();
      for (const auto& ep : c.endpoints()) {
        dns->names.push_back({ep.address().address(), static_cast<uint16_t>(ep.address().port()),
                              ep.weight() != 0 ? ep.weight() : 1,
                              Host::Metadata(ep.metadata().begin(), ep.metadata().end())});
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
      std::vector<Cluster::HostEntry> entries;
      for (const auto& ep : c.endpoints()) {
        auto a = network::Address::fromIpPort(ep.address().address(), ep.address().port());
        if (!a.ok()) return a.status();
        entries.push_back({*a, ep.weight() != 0 ? ep.weight() : 1, std::string(),
                           Host::Metadata(ep.metadata().begin(), ep.metadata().end())});
      }
      cluster->setHosts(std::move(entries));
    }
    cm->by_name_[c.name()] = cluster.get();
    cm->clusters_.push_back(std::move(cluster));
  }
  return cm;
}

void Cluster::setHosts(std::vector<network::Address> addresses, std::vector<uint32_t> weights) {
  std::vector<HostEntry> entries(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) {
    entries[i].address = std::move(addresses[i]);
    entries[i].weight = weights[i];
  }
  setHosts(std::move(entries));
}

void Cluster::setHosts(std::vector<HostEntry> entries) {
  stats_.membership_total.set(entries.size());
  // With active health checks a new host is not used until a check found it healthy (Envoy's
  // rule: one success is enough for a host never checked before).
  const bool checked = !health_checks_.empty();
  // A host that stays is the same object, with its health and counters.
  absl::flat_hash_map<std::string, HostSharedPtr> before;
  if (hosts_) {
    for (const HostSharedPtr& h : hosts_->hosts()) before[h->addressString()] = h;
  }
  std::vector<HostSharedPtr> hosts;
  hosts.reserve(entries.size());
  for (HostEntry& e : entries) {
    auto it = before.find(e.address.asString());
    if (it != before.end() && it->second->weight() == e.weight &&
        it->second->hostname() == e.hostname && it->second->metadata() == e.metadata) {
      hosts.push_back(it->second);
    } else {
      hosts.push_back(std::make_shared<Host>(std::move(e.address), e.weight, scope_,
                                             std::move(e.hostname), std::move(e.metadata)));
      if (outlier_) outlier_->addHost(*hosts.back());
      if (checked) {
        hosts.back()->setHealthFlag(Host::kPendingActiveHealthCheck);
        hosts.back()->setHealthFlag(Host::kFailedActiveHealthCheck);
      }
    }
  }
  hosts_ = std::make_shared<const HostSet>(std::move(hosts), lb_policy_ == LbPolicy::kMaglev);
  if (outlier_) outlier_->onHostsChanged();
  // A callback may remove itself (its handle) while it runs: step past it first.
  for (auto it = member_callbacks_.begin(); it != member_callbacks_.end();) {
    auto& callback = *it++;
    callback();
  }
  refreshHealth();
}

void Cluster::setOutlierDetection(const OutlierDetectionSettings& settings,
                                  OutlierDetectionStats stats, MonotonicClock clock) {
  outlier_ = std::make_shared<OutlierDetector>(*this, settings, stats, std::move(clock));
  if (hosts_) {
    for (const HostSharedPtr& h : hosts_->hosts()) outlier_->addHost(*h);
  }
}

std::unique_ptr<Cluster::MemberUpdateHandle> Cluster::addMemberUpdateCallback(
    std::function<void()> callback) {
  member_callbacks_.push_back(std::move(callback));
  return std::unique_ptr<MemberUpdateHandle>(
      new MemberUpdateHandle(*this, std::prev(member_callbacks_.end())));
}

void Cluster::refreshHealth() {
  std::vector<HostSharedPtr> healthy;
  healthy.reserve(hosts_->size());
  for (const HostSharedPtr& h : hosts_->hosts()) {
    if (h->healthy()) healthy.push_back(h);
  }
  // Envoy's panic: below the threshold's share of healthy hosts, balance over all of them (a
  // health check that fails everywhere, or an outage of most hosts, must not leave the last
  // few to take all the load, nor turn every request away).
  const size_t total = hosts_->size();
  const bool panic =
      total != 0 && panic_threshold_ > 0 &&
      100.0 * static_cast<double>(healthy.size()) < panic_threshold_ * static_cast<double>(total);
  HostSetPtr next;
  if (panic) {
    if (lb_hosts_ && lb_hosts_->panic() && lb_hosts_->hosts() == hosts_->hosts()) return;
    next = std::make_shared<const HostSet>(*hosts_, /*panic=*/true);
  } else if (healthy.size() == total) {
    if (lb_hosts_ == hosts_) return;
    next = hosts_;
  } else {
    if (lb_hosts_ && !lb_hosts_->panic() && lb_hosts_->hosts() == healthy) return;
    next = std::make_shared<const HostSet>(std::move(healthy), lb_policy_ == LbPolicy::kMaglev);
  }
  lb_hosts_ = std::move(next);
  // Posted before the gauge says so: whoever reads the gauge and then sends a request finds
  // the worker's post queued ahead of it (posted work runs first in a loop iteration).
  if (publisher_) publisher_(*this, lb_hosts_);
  stats_.membership_healthy.set(static_cast<int64_t>(lb_hosts_->size()));
}

void ClusterManager::startOutlierDetection(event::Dispatcher& main) {
  for (const auto& c : clusters_) {
    if (c->outlierDetector() != nullptr) c->outlierDetector()->start(main);
  }
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
    per->hosts = c->lbHosts();
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
    for (auto& pool : per->pools) release(*cluster, std::move(pool));
  }
  // Retired pools were counted until they drained: give their places back too.
  for (auto& [pool, retired] : retired_) release(*retired.cluster, std::move(retired.pool));
  retired_.clear();
}

WorkerClusters::PoolPick WorkerClusters::pickConnPool(const Cluster& cluster,
                                                      const LbContext& context,
                                                      event::Dispatcher& dispatcher) {
  PerCluster& per = *clusters_.at(&cluster);
  if (!per.lb) {
    cluster.stats().upstream_rq_no_host.inc();
    return {};
  }
  if (per.hosts->panic()) cluster.stats().lb_healthy_panic.inc();
  size_t host = per.lb->pickIndex(context);
  if (context.excluded_count != 0 && per.hosts->size() > 1) {
    // A retry: another host if the balancer offers one within a few picks (a hash-based
    // balancer keeps answering the same host; then it is tried again).
    for (int i = 0; i < kHostReselectAttempts && context.isExcluded(per.hosts->host(host).get());
         ++i) {
      host = per.lb->pickIndex(context);
    }
    // Still one of them (a random balancer's bad luck): the next host that is not, unless the
    // pick is by hash (the key's host, whatever happened, is the point of hashing).
    if (context.hash_key.empty()) {
      for (size_t i = 1; i < per.hosts->size() && context.isExcluded(per.hosts->host(host).get());
           ++i) {
        host = (host + 1) % per.hosts->size();
      }
    }
  }
  auto& slot = per.pools[host];
  if (!slot) {
    Resource& pools = cluster.resources().connection_pools;
    if (!pools.canCreate()) {
      cluster.stats().upstream_cx_pool_overflow.inc();
      return {nullptr, /*overflow=*/true};
    }
    pools.inc();
    slot = std::make_unique<ConnPoolImpl>(dispatcher, per.hosts->host(host), cluster.poolSettings(),
                                          cluster.poolStats(), cluster.resources());
  }
  return {slot.get(), false};
}

const Host* WorkerClusters::pickHost(const Cluster& cluster, const LbContext& context) {
  PerCluster& per = *clusters_.at(&cluster);
  if (!per.lb) {
    cluster.stats().upstream_rq_no_host.inc();
    return nullptr;
  }
  if (per.hosts->panic()) cluster.stats().lb_healthy_panic.inc();
  return per.hosts->host(per.lb->pickIndex(context)).get();
}

void WorkerClusters::updateHosts(const Cluster& cluster, HostSetPtr hosts) {
  PerCluster& per = *clusters_.at(&cluster);
  // Pools follow their host to its new index.
  absl::flat_hash_map<const Host*, std::unique_ptr<ConnPoolImpl>> by_host;
  for (size_t i = 0; i < per.pools.size(); ++i) {
    if (per.pools[i]) by_host[per.hosts->host(i).get()] = std::move(per.pools[i]);
  }
  std::vector<std::unique_ptr<ConnPoolImpl>> pools(hosts->size());
  for (size_t i = 0; i < hosts->size(); ++i) {
    auto it = by_host.find(hosts->host(i).get());
    if (it != by_host.end()) {
      pools[i] = std::move(it->second);
      by_host.erase(it);
    }
  }
  for (auto& [host, pool] : by_host) retire(cluster, std::move(pool));
  per.lb.reset();  // refers to the old host set
  per.pools = std::move(pools);
  per.hosts = std::move(hosts);
  if (!per.hosts->empty()) {
    per.lb = CreateLoadBalancer(cluster.lbPolicy(), *per.hosts, worker_index_, per);
  }
}

void WorkerClusters::release(const Cluster& cluster, std::unique_ptr<ConnPoolImpl> pool) {
  if (!pool) return;
  cluster.resources().connection_pools.dec();
  pool.reset();
}

void WorkerClusters::retire(const Cluster& cluster, std::unique_ptr<ConnPoolImpl> pool) {
  ConnPoolImpl* p = pool.get();
  retired_[p] = Retired{&cluster, std::move(pool)};
  p->drain([this, p] {
    // Called from inside one of the pool's connection events: free it after.
    auto it = retired_.find(p);
    if (it == retired_.end()) return;
    Retired retired = std::move(it->second);
    retired_.erase(it);
    retired.cluster->resources().connection_pools.dec();
    retired.pool->dispatcher().deferredDelete(std::move(retired.pool));
  });
}

}  // namespace sluice::upstream
