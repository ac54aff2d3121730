#pragma once

#include <atomic>
#include <cstdint>
#include <limits>

#include "source/common/stats.h"

namespace sluice::upstream {

// One cluster-wide limit (a circuit breaker): a count shared by every worker, atomically, and
// its maximum. A worker asks canCreate() before taking one; overflow is the caller's to answer
// (at once: a circuit breaker never queues). `open` (optional) reads 1 while the count is at
// or over the maximum. The check and the increment are two steps: workers racing for the last
// unit may go over by at most one each, as Envoy's do; no lock on the hot path.
class Resource {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  explicit Resource(uint64_t max, stats::Gauge* open = nullptr) : max_(max), open_(open) {
    if (open_ != nullptr && max_ == 0) open_->set(1);
  }
  bool canCreate() const { return count_.load(std::memory_order_relaxed) < max_; }
  void inc() {
    const uint64_t now = count_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (open_ != nullptr && now == max_) open_->set(1);
  }
  void dec() {
    const uint64_t before = count_.fetch_sub(1, std::memory_order_relaxed);
    if (open_ != nullptr && before == max_) open_->set(0);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_; }

 private:
  std::atomic<uint64_t> count_{0};
  const uint64_t max_;
  stats::Gauge* const open_;
};

// A cluster's circuit breakers (cluster.proto, circuit_breakers), shared by all workers.
struct ResourceManager {
  ResourceManager(uint64_t max_connections, uint64_t max_pending, uint64_t max_requests,
                  uint64_t max_retries, uint64_t max_pools, stats::Gauge* cx_open,
                  stats::Gauge* pending_open, stats::Gauge* rq_open, stats::Gauge* retry_open,
                  stats::Gauge* pool_open)
      : connections(max_connections, cx_open),
        pending_requests(max_pending, pending_open),
        requests(max_requests, rq_open),
        retries(max_retries, retry_open),
        connection_pools(max_pools, pool_open) {}

  Resource connections;       // open upstream connections (idle ones too)
  Resource pending_requests;  // requests waiting for a connection
  Resource requests;          // requests with a stream on a connection
  Resource retries;           // retries in flight
  Resource connection_pools;  // pools (one per worker and host in use)
};

}  // namespace sluice::upstream
