#pragma once

#include "source/event/dispatcher.h"
#include "source/network/filter_context.h"
#include "source/upstream/cluster.h"

namespace sluice::network::test {

// A FilterContext for tests and fuzzers that run filters outside a worker: a dispatcher, no
// clusters, closing connections dropped (none are handed over in these uses), and an idle
// connection pool only when a test sets one.
class TestFilterContext : public FilterContext {
 public:
  explicit TestFilterContext(event::Dispatcher& d) : dispatcher_(d), clusters_(manager_, 0) {}
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  upstream::WorkerClusters& clusters() override { return clusters_; }
  void adoptClosingConnection(ConnectionPtr) override {}
  IdleConnectionPool* idleConnections() override { return idle_; }
  void setIdleConnections(IdleConnectionPool* pool) { idle_ = pool; }

 private:
  IdleConnectionPool* idle_ = nullptr;
  event::Dispatcher& dispatcher_;
  upstream::ClusterManager manager_;
  upstream::WorkerClusters clusters_;
};

}  // namespace sluice::network::test
