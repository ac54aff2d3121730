#include "source/server/listener_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/http/conn_manager.h"
#include "source/tcp_proxy/tcp_proxy.h"
#include "source/tls/ssl_socket.h"

namespace sluice::server {

namespace {
using google::protobuf::util::TimeUtil;

constexpr std::chrono::milliseconds kDefaultTcpIdleTimeout{3600 * 1000};

// Builds the filter chains of one listener.
struct ChainBuilder {
  const config::v1::Listener& listener;
  const upstream::ClusterManager& clusters;
  stats::Store& store;
  const std::string& path;
  http::PluginFilterBuilder* plugins;
  const stats::Scope& scope;                 // "listener.<name>."
  std::shared_ptr<tls::SslStats> ssl_stats;  // one set per listener, made with its first TLS chain
  bool has_http;
  size_t workers;
  std::vector<tls::ServerSslSocketFactory*> tls_factories;
  access_log::Manager* access_logs = nullptr;
  tls::GeneratedTicketKeys* ticket_keys = nullptr;

  // `filters_path`: where the filters are in the config (the legacy flat list is
  // "listener.filters", not a chain's).
  absl::StatusOr<std::unique_ptr<FilterChain>> build(const config::v1::FilterChain& c,
                                                     const std::string& chain_path,
                                                     const std::string& filters_path) {
    auto chain = std::make_unique<FilterChain>();
    chain->name = c.name();
    const auto& m = c.filter_chain_match();
    for (const std::string& name : m.server_names()) {
      const std::string lower = absl::AsciiStrToLower(name);
      if (lower.size() > 2 && lower[0] == '*' && lower[1] == '.') {
        chain->wildcard_suffixes.push_back(lower.substr(1));
      } else {
        chain->exact_names.push_back(lower);
      }
    }
    chain->alpn.assign(m.application_protocols().begin(), m.application_protocols().end());
    chain->destination_port = m.destination_port();
    for (int i = 0; i < m.source_prefix_ranges_size(); ++i) {
      auto prefix_or = CidrPrefix::Parse(m.source_prefix_ranges(i));
      if (!prefix_or.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(chain_path,
                                                       ".filter_chain_match.source_prefix_ranges[",
                                                       i, "]: ", prefix_or.status().message()));
      }
      chain->source_prefixes.push_back(*prefix_or);
    }
    bool http = false;
    auto codec = config::v1::HttpConnectionManager::AUTO;
    for (int i = 0; i < c.filters_size(); ++i) {
      const auto& f = c.filters(i);
      switch (f.config_type_case()) {
        case config::v1::NetworkFilter::kTcpProxy: {
          auto tp = std::make_shared<tcp_proxy::TcpProxyConfig>();
          tp->cluster = clusters.get(f.tcp_proxy().cluster());
          if (tp->cluster == nullptr) {
            return absl::InvalidArgumentError(absl::StrCat(
                "listener ", listener.name(), ": unknown cluster ", f.tcp_proxy().cluster()));
          }
          tp->idle_timeout = f.tcp_proxy().has_idle_timeout()
                                 ? std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(
                                       f.tcp_proxy().idle_timeout()))
                                 : kDefaultTcpIdleTimeout;
          chain->filter_factories.push_back(tcp_proxy::TcpProxyFilterFactory(std::move(tp)));
          break;
        }
        case config::v1::NetworkFilter::kHttpConnectionManager: {
          auto hcm = http::BuildConnectionManagerConfig(
              f.http_connection_manager(), listener.name(), store,
              absl::StrCat(filters_path, "[", i, "].http_connection_manager"), plugins,
              access_logs);
          if (!hcm.ok()) return hcm.status();
          chain->filter_factories.push_back(http::ConnectionManagerFilterFactory(std::move(*hcm)));
          http = true;
          has_http = true;
          codec = f.http_connection_manager().codec_type();
          break;
        }
        case config::v1::NetworkFilter::CONFIG_TYPE_NOT_SET:
          return absl::InvalidArgumentError(
              absl::StrCat("listener ", listener.name(), ": a filter has no config"));
      }
    }
    if (c.has_tls_context()) {
      if (!ssl_stats) ssl_stats = std::make_shared<tls::SslStats>(scope);
      // An HTTP chain offers what its codec speaks, HTTP/2 first (RFC 9113 §3.2: a client that
      // offers both gets h2); a TCP proxy offers none.
      std::vector<std::string> alpn;
      if (http && codec != config::v1::HttpConnectionManager::HTTP1) alpn.push_back("h2");
      if (http && codec != config::v1::HttpConnectionManager::HTTP2) alpn.push_back("http/1.1");
      // The chain's generated ticket keys, by an identity a hot-restart successor can match.
      std::vector<tls::TicketKey> keys;
      if (ticket_keys != nullptr) {
        const std::string place =
            !c.name().empty() ? c.name() : chain_path.substr(chain_path.rfind('.') + 1);
        keys = ticket_keys->keysFor(tls::ChainIdentity(listener.name(), place, c.tls_context()));
      }
      auto factory =
          tls::ServerSslSocketFactory::Create(c.tls_context(), chain_path + ".tls_context",
                                              std::move(alpn), ssl_stats, workers, std::move(keys));
      if (!factory.ok()) return factory.status();
      tls_factories.push_back(factory->get());
      chain->transport = std::move(*factory);
    }
    return chain;
  }
};
}  // namespace

absl::StatusOr<ListenerConfigPtr> BuildListenerConfig(
    const config::v1::Listener& l, const upstream::ClusterManager& clusters, stats::Store& store,
    size_t workers, const std::string& path, http::PluginFilterBuilder* plugins,
    access_log::Manager* access_logs, tls::GeneratedTicketKeys* ticket_keys) {
  auto address = network::Address::fromIpPort(l.address().address(), l.address().port());
  if (!address.ok()) return address.status();
  const stats::Scope scope = stats::Scope(store).tagged("listener", "listener_name", l.name());
  auto cfg = std::make_shared<ListenerConfig>(
      l.max_connections(),
      l.max_tls_handshakes() != 0 ? l.max_tls_handshakes() : kDefaultMaxTlsHandshakes,
      scope.counter("downstream_cx_total"), scope.gauge("downstream_cx_active"),
      scope.counter("downstream_cx_overflow"), scope.counter("downstream_cx_idle_reclaimed"));
  // The limit itself, for dashboards next to downstream_cx_active (0: none of its own).
  scope.gauge("downstream_cx_limit").set(l.max_connections());
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
        &scope.tagged("worker", "worker_id", absl::StrCat(i)).counter("downstream_cx_total"));
  }
  cfg->cx_no_filter_chain = &scope.counter("downstream_cx_no_filter_chain");
  cfg->cx_handshake_overflow = &scope.counter("downstream_cx_handshake_overflow");
  cfg->client_hello_timeout = &scope.counter("tls_inspector.client_hello_timeout");
  cfg->client_hello_invalid = &scope.counter("tls_inspector.client_hello_invalid");
  if (l.has_listener_filters_timeout()) {
    cfg->listener_filters_timeout =
        std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(l.listener_filters_timeout()));
  }

  ChainBuilder builder{l, clusters, store, path, plugins, scope, nullptr, false, workers, {}};
  builder.access_logs = access_logs;
  builder.ticket_keys = ticket_keys;
  std::vector<std::unique_ptr<FilterChain>> chains;
  std::unique_ptr<FilterChain> fallback;
  if (l.filters_size() > 0) {
    // The flat list: one plaintext default chain.
    config::v1::FilterChain legacy;
    *legacy.mutable_filters() = l.filters();
    auto chain = builder.build(legacy, path, path + ".filters");
    if (!chain.ok()) return chain.status();
    fallback = std::move(*chain);
  }
  for (int i = 0; i < l.filter_chains_size(); ++i) {
    const std::string chain_path = absl::StrCat(path, ".filter_chains[", i, "]");
    auto chain = builder.build(l.filter_chains(i), chain_path, chain_path + ".filters");
    if (!chain.ok()) return chain.status();
    chains.push_back(std::move(*chain));
  }
  if (l.has_default_filter_chain()) {
    const std::string chain_path = path + ".default_filter_chain";
    auto chain = builder.build(l.default_filter_chain(), chain_path, chain_path + ".filters");
    if (!chain.ok()) return chain.status();
    fallback = std::move(*chain);
  }
  auto set = FilterChainSet::Create(std::move(chains), std::move(fallback), path);
  if (!set.ok()) return set.status();
  cfg->chains = std::move(*set);
  cfg->tls_factories = std::move(builder.tls_factories);
  if (builder.has_http) {
    cfg->reclaim_idle =
        l.has_reclaim_idle_connections() ? l.reclaim_idle_connections().value() : true;
  }
  return cfg;
}

}  // namespace sluice::server
