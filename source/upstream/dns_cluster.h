#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "source/event/dispatcher.h"
#include "source/network/dns_resolver.h"
#include "source/upstream/cluster.h"

namespace sluice::upstream {

// Keeps a STRICT_DNS cluster's hosts current, on the main thread: looks up every name of the
// cluster (c-ares on the main dispatcher: no worker ever waits on DNS), again after the refresh
// rate (or the records' TTL), and gives each changed host set to the cluster (setHosts), which
// publishes what the load balancers use to the workers. A failed lookup keeps the hosts the
// cluster has.
class DnsClusterUpdater {
 public:
  DnsClusterUpdater(Cluster& cluster, event::Dispatcher& dispatcher,
                    network::DnsResolverPtr resolver);
  ~DnsClusterUpdater();

  // Starts the first lookup; `first_done` runs once it has ended (resolved or not).
  void start(std::function<void()> first_done);

 private:
  void resolveAll();
  void onResolved(size_t index, absl::StatusOr<network::DnsResponse> result);
  void finishRound();

  Cluster& cluster_;
  const DnsSettings& settings_;
  event::Dispatcher& dispatcher_;
  network::DnsResolverPtr resolver_;
  event::TimerPtr timer_;
  std::function<void()> first_done_;
  // One round: a lookup per name, results gathered until all have answered.
  std::vector<network::DnsQuery*> queries_;
  std::vector<std::vector<network::Address>> results_;
  size_t outstanding_ = 0;
  bool round_failed_ = false;
  std::chrono::seconds round_ttl_{0};
};

// The updaters of every STRICT_DNS cluster of a manager. Main thread.
class DnsClusters {
 public:
  // Creates an updater per STRICT_DNS cluster (an error if a resolver cannot be set up).
  absl::Status init(ClusterManager& manager, event::Dispatcher& dispatcher);
  // Starts every first lookup; `all_done` runs once each has ended (at once if there are none).
  void start(std::function<void()> all_done);
  bool empty() const { return updaters_.empty(); }

 private:
  std::vector<std::unique_ptr<DnsClusterUpdater>> updaters_;
  size_t pending_first_ = 0;
  std::function<void()> all_done_;
};

}  // namespace sluice::upstream
