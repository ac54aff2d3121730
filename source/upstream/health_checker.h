#pragma once

#include <memory>
#include <vector>

#include "api/sluice/config/v1/health_check.pb.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"

namespace sluice::upstream {

class Cluster;
class ClusterManager;

// Active health checking of one cluster's hosts (Envoy's HealthChecker), on the main thread:
// every interval each host gets a check (HTTP, TCP or gRPC: health_checker_impl.h) over the
// cluster's own transport and codec. The checker owns two of a host's health flags,
// Host::kPendingActiveHealthCheck and Host::kFailedActiveHealthCheck, and calls
// Cluster::refreshHealth() when its verdict on a host changes; the workers then get the new
// set of hosts to balance over. It follows the cluster's host set (DNS): new hosts are checked,
// hosts that left are not any more.
class HealthChecker {
 public:
  virtual ~HealthChecker() = default;
  // Starts checking (the first checks after their initial jitter).
  virtual void start() = 0;
};
using HealthCheckerPtr = std::unique_ptr<HealthChecker>;

// The checker a validated HealthCheck asks for. Stats "cluster.<name>.health_check.*".
HealthCheckerPtr CreateHealthChecker(Cluster& cluster, const config::v1::HealthCheck& config,
                                     event::Dispatcher& dispatcher, stats::Store& store);

// The checkers of every cluster of a manager that has health checks. Main thread; destroy it
// before the clusters and the dispatcher (it closes its connections without their events).
class HealthCheckers {
 public:
  HealthCheckers(ClusterManager& manager, event::Dispatcher& dispatcher, stats::Store& store);
  void start();
  bool empty() const { return checkers_.empty(); }

 private:
  std::vector<HealthCheckerPtr> checkers_;
};

}  // namespace sluice::upstream
