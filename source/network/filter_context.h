#pragma once

#include <functional>

#include "source/event/dispatcher.h"
#include "source/network/connection.h"
#include "source/network/idle_connections.h"
#include "source/network/worker_local.h"

namespace sluice::upstream {
class WorkerClusters;
}
namespace sluice::http {
class CalloutClient;
class UpstreamFactory;
}  // namespace sluice::http

namespace sluice::network {

// What a network filter may use of the worker it runs on.
class FilterContext {
 public:
  virtual ~FilterContext() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  // The worker's clusters (the TCP proxy's; HTTP streams reach them through upstreamFactory()).
  virtual upstream::WorkerClusters& clusters() = 0;
  // What carries HTTP streams to the clusters their filters name. Null: none on this context
  // (a stream's setUpstream is refused).
  virtual http::UpstreamFactory* upstreamFactory() { return nullptr; }
  // Takes a connection that was closed with kFlushWrite and is still flushing, and frees it once
  // it is closed (or at worker shutdown), so its owner can go away without losing those bytes.
  virtual void adoptClosingConnection(ConnectionPtr connection) = 0;
  // Where a protocol filter registers its connection while it is idle, so that the worker can
  // close it to admit a new connection at a limit (idle_connections.h). Null: this listener's
  // connections are not reclaimed (Listener.reclaim_idle_connections false, or no worker).
  virtual IdleConnectionPool* idleConnections() { return nullptr; }
  // The worker's client for callouts (HTTP requests filters make on their own to a cluster).
  // Null: none on this context (callouts are refused as unsupported).
  virtual http::CalloutClient* calloutClient() { return nullptr; }
  // The worker's objects kept for shared config (worker_local.h). Null: none on this context.
  virtual WorkerLocals* workerLocals() { return nullptr; }
};

// Installs one configured filter on a new connection. Built on the main thread from config,
// called on workers: it must only read its captured (immutable) config.
using FilterFactory = std::function<void(Connection& connection, FilterContext& context)>;

}  // namespace sluice::network
