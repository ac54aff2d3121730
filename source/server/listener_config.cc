#include "source/server/listener_config.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/http/conn_manager.h"
#include "source/network/filters/tcp_proxy.h"

namespace sluice::server {

namespace {
using google::protobuf::util::TimeUtil;

constexpr std::chrono::milliseconds kDefaultTcpIdleTimeout{3600 * 1000};
}  // namespace

absl::StatusOr<ListenerConfigPtr> BuildListenerConfig(const config::v1::Listener& l,
                                                      const upstream::ClusterManager& clusters,
                                                      stats::Store& store, size_t workers,
                                                      const std::string& path,
                                                      http::PluginFilterBuilder* plugins) {
  auto address = network::Address::fromIpPort(l.address().address(), l.address().port());
  if (!address.ok()) return address.status();
  const std::string prefix = absl::StrCat("listener.", l.name(), ".");
  auto cfg = std::make_shared<ListenerConfig>(
      l.max_connections(), store.counter(prefix + "downstream_cx_total"),
      store.gauge(prefix + "downstream_cx_active"),
      store.counter(prefix + "downstream_cx_overflow"),
      store.counter(prefix + "downstream_cx_idle_reclaimed"));
  // The limit itself, for dashboards next to downstream_cx_active (0: none of its own).
  store.gauge(prefix + "downstream_cx_limit").set(l.max_connections());
  cfg->name = l.name();
  cfg->address = *address;
  cfg->listen_options.reuse_port = l.has_reuse_port() ? l.reuse_port().value() : true;
  cfg->listen_options.backlog = static_cast<int>(l.backlog());
  cfg->reuse_port_with_other_processes = l.reuse_port_with_other_processes();
  cfg->max_accepts_per_event =
      l.max_accepts_per_event() != 0 ? l.max_accepts_per_event() : kDefaultMaxAcceptsPerEvent;
  cfg->tcp_nodelay = l.has_tcp_nodelay() ? l.tcp_nodelay().value() : true;
  if (l.has_tcp_keepalive()) {
    network::KeepaliveOptions ka;
    const auto& k = l.tcp_keepalive();
    if (k.probes() != 0) ka.probes = static_cast<int>(k.probes());
    if (k.has_idle_time()) ka.idle_seconds = static_cast<int>(k.idle_time().seconds());
    if (k.has_interval()) ka.interval_seconds = static_cast<int>(k.interval().seconds());
    cfg->keepalive = ka;
  }
  cfg->buffer_limit = l.per_connection_buffer_limit_bytes() != 0
                          ? l.per_connection_buffer_limit_bytes()
                          : kDefaultBufferLimit;
  for (size_t i = 0; i < workers; ++i) {
    cfg->worker_cx_total.push_back(
        &store.counter(absl::StrCat(prefix, "worker_", i, ".downstream_cx_total")));
  }
  for (int i = 0; i < l.filters_size(); ++i) {
    const auto& f = l.filters(i);
    switch (f.config_type_case()) {
      case config::v1::NetworkFilter::kTcpProxy: {
        auto tp = std::make_shared<network::TcpProxyConfig>();
        tp->cluster = clusters.get(f.tcp_proxy().cluster());
        if (tp->cluster == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("listener ", l.name(), ": unknown cluster ", f.tcp_proxy().cluster()));
        }
        tp->idle_timeout = f.tcp_proxy().has_idle_timeout()
                               ? std::chrono::milliseconds(
                                     TimeUtil::DurationToMilliseconds(f.tcp_proxy().idle_timeout()))
                               : kDefaultTcpIdleTimeout;
        cfg->filter_factories.push_back(network::TcpProxyFilterFactory(std::move(tp)));
        break;
      }
      case config::v1::NetworkFilter::kHttpConnectionManager: {
        auto hcm = http::BuildConnectionManagerConfig(
            f.http_connection_manager(), l.name(), store,
            absl::StrCat(path, ".filters[", i, "].http_connection_manager"), plugins);
        if (!hcm.ok()) return hcm.status();
        cfg->filter_factories.push_back(http::ConnectionManagerFilterFactory(std::move(*hcm)));
        cfg->reclaim_idle =
            l.has_reclaim_idle_connections() ? l.reclaim_idle_connections().value() : true;
        break;
      }
      case config::v1::NetworkFilter::CONFIG_TYPE_NOT_SET:
        return absl::InvalidArgumentError(
            absl::StrCat("listener ", l.name(), ": a filter has no config"));
    }
  }
  return cfg;
}

}  // namespace sluice::server
