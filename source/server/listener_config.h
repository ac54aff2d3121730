#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/common/stats.h"
#include "source/http/conn_manager.h"
#include "source/network/address.h"
#include "source/network/filter_context.h"
#include "source/network/listener.h"
#include "source/network/socket.h"
#include "source/server/filter_chain.h"
#include "source/tls/ssl_socket.h"
#include "source/tls/ticket_keys.h"
#include "source/upstream/cluster.h"

namespace sluice::server {

// One listener of a config snapshot, with defaults applied: immutable and shared by the workers
// (only its atomics — the connection limit and the stats — change).
struct ListenerConfig {
  std::string name;
  network::Address address;
  network::ListenOptions listen_options;
  // Listener.reuse_port_with_other_processes: skip the check that no other process listens there.
  bool reuse_port_with_other_processes = false;
  uint32_t max_accepts_per_event;
  bool tcp_nodelay;
  std::optional<network::KeepaliveOptions> keepalive;
  uint32_t buffer_limit;
  // Filter chains (the legacy flat `filters` list is one default chain).
  std::unique_ptr<FilterChainSet> chains;
  // The TLS chains' factories (owned by `chains`), for certificate reloads.
  std::vector<tls::ServerSslSocketFactory*> tls_factories;
  // How long a ClientHello may take to arrive when the chain is chosen by it.
  std::chrono::milliseconds listener_filters_timeout{10000};
  network::ConnectionLimit limit;
  // TLS handshakes in progress, all workers (Listener.max_tls_handshakes).
  network::ConnectionLimit tls_handshakes;
  // Its idle connections may be closed to admit new ones at a limit: Listener.reclaim_idle_
  // connections, and a filter that says when a connection is idle (the HTTP connection manager).
  bool reclaim_idle = false;

  stats::Counter& cx_total;
  stats::Gauge& cx_active;
  stats::Counter& cx_overflow;
  stats::Counter& cx_idle_reclaimed;
  std::vector<stats::Counter*> worker_cx_total;  // one per worker
  // Closed for want of a chain, or over max_tls_handshakes; ClientHellos that did not come in
  // time or were malformed (the connection then goes on as one without a ClientHello).
  stats::Counter* cx_no_filter_chain = nullptr;
  stats::Counter* cx_handshake_overflow = nullptr;
  stats::Counter* client_hello_timeout = nullptr;
  stats::Counter* client_hello_invalid = nullptr;

  ListenerConfig(uint64_t max_connections, uint64_t max_handshakes, stats::Counter& total,
                 stats::Gauge& active, stats::Counter& overflow, stats::Counter& idle_reclaimed)
      : limit(max_connections),
        tls_handshakes(max_handshakes),
        cx_total(total),
        cx_active(active),
        cx_overflow(overflow),
        cx_idle_reclaimed(idle_reclaimed) {}
};
using ListenerConfigPtr = std::shared_ptr<ListenerConfig>;

// Defaults the config reference promises (api/sluice/config/v1/listener.proto).
inline constexpr uint32_t kDefaultMaxAcceptsPerEvent = 64;
// The kernel's socket buffers carry a stream's bulk; what a slow reader holds in sluice stays
// small (8 KiB: ~20 KiB per slow reader, 98 MiB for 5,000 in docs/performance.md; nginx reads
// into 4-8 KiB buffers, HAProxy
// 16 KiB). Bulk transfers pay more read calls: clusters or listeners that carry them may raise it.
inline constexpr uint32_t kDefaultBufferLimit = 8 * 1024;
// Listener.max_tls_handshakes when not set: far above what a worker completes in a second (a
// few thousand), far below what a flood of stalled handshakes would hold until their timeout.
inline constexpr uint32_t kDefaultMaxTlsHandshakes = 4096;

// Builds a validated listener into its runtime form: defaults, filter factories, stats.
// `path` is its field path in the config ("listeners[2]"), for errors; `plugins` builds plugin
// HTTP filters; `access_logs` opens the HTTP connection managers' access logs (null: formats
// checked, nothing logged).
absl::StatusOr<ListenerConfigPtr> BuildListenerConfig(
    const config::v1::Listener& listener, const upstream::ClusterManager& clusters,
    stats::Store& store, size_t workers, const std::string& path = "listener",
    http::PluginFilterBuilder* plugins = nullptr, access_log::Manager* access_logs = nullptr,
    tls::GeneratedTicketKeys* ticket_keys = nullptr);

}  // namespace sluice::server
