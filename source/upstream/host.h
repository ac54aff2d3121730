#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "source/common/stats.h"
#include "source/network/address.h"

namespace sluice::upstream {

// Passive health counters of one host (outlier_detection.h); only the pointer is needed here.
class OutlierMonitor;

// A host's own stats, in the store like every other: "cluster.<name>.host.<ip:port>.<stat>",
// tagged cluster_name and host (Prometheus: sluice_cluster_host_rq_total{cluster_name=...,
// host=...}). A host that leaves and comes back (DNS) finds its stats where it left them.
struct HostStats {
  stats::Counter& cx_total;
  stats::Gauge& cx_active;
  stats::Counter& cx_connect_fail;
  stats::Counter& rq_total;
  stats::Gauge& rq_active;
  // Streams that ended without a whole response (reset, protocol error, refused).
  stats::Counter& rq_error;

  // `cluster`: the cluster's scope; `address`: "ip:port".
  static HostStats Create(const stats::Scope& cluster, std::string_view address) {
    const stats::Scope s = cluster.tagged("host", "host", address);
    return {s.counter("cx_total"), s.gauge("cx_active"), s.counter("cx_connect_fail"),
            s.counter("rq_total"), s.gauge("rq_active"), s.counter("rq_error")};
  }
};

// One upstream host of a cluster: its address and weight, its health as the health checker and
// the outlier detector see it, its counters. Created on the main thread; shared (read-only but
// for the atomics) by the workers' host sets, so that a verdict written on one thread is seen
// by the load balancers of all. A host that stays across host-set changes (DNS) is the same
// object, its state kept.
class Host {
 public:
  // Why a host is not healthy: each writer owns its bit.
  enum HealthFlag : uint32_t {
    kFailedActiveHealthCheck = 1u << 0,
    kFailedOutlierCheck = 1u << 1,        // ejected
    kPendingActiveHealthCheck = 1u << 2,  // not checked yet (with health checks configured)
  };
  using Metadata = absl::flat_hash_map<std::string, std::string>;

  Host(network::Address address, uint32_t weight, const stats::Scope& cluster_stats,
       std::string hostname = {}, Metadata metadata = {})
      : address_(std::move(address)),
        address_string_(address_.asString()),
        stats_(HostStats::Create(cluster_stats, address_string_)),
        hostname_(std::move(hostname)),
        metadata_(std::move(metadata)),
        weight_(weight) {}
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const network::Address& address() const { return address_; }
  // "ip:port", made once.
  const std::string& addressString() const { return address_string_; }
  // The name it was found by (STRICT_DNS), empty for a static address.
  const std::string& hostname() const { return hostname_; }
  const Metadata& metadata() const { return metadata_; }
  uint32_t weight() const { return weight_; }

  bool healthy() const { return health_.load(std::memory_order_relaxed) == 0; }
  bool hasHealthFlag(HealthFlag flag) const {
    return (health_.load(std::memory_order_relaxed) & flag) != 0;
  }
  void setHealthFlag(HealthFlag flag) { health_.fetch_or(flag, std::memory_order_relaxed); }
  void clearHealthFlag(HealthFlag flag) { health_.fetch_and(~flag, std::memory_order_relaxed); }

  const HostStats& stats() const { return stats_; }

  // The host's outlier-detection counters (outlier_detection.h: ReportHostResult); nullptr
  // when the cluster has no outlier_detection, so that reporting costs one pointer test there.
  OutlierMonitor* outlier() const { return outlier_.get(); }
  // Main thread, before the host reaches a worker (the pointer is not atomic). Shared: a
  // threshold crossing posted to the main thread keeps the monitor alive until it is handled,
  // even if the host left meanwhile.
  void setOutlierMonitor(std::shared_ptr<OutlierMonitor> monitor) { outlier_ = std::move(monitor); }

 private:
  const network::Address address_;
  const std::string address_string_;
  const HostStats stats_;
  const std::string hostname_;
  const Metadata metadata_;
  const uint32_t weight_;
  std::atomic<uint32_t> health_{0};
  std::shared_ptr<OutlierMonitor> outlier_;
};
using HostSharedPtr = std::shared_ptr<Host>;
using HostConstSharedPtr = std::shared_ptr<const Host>;

}  // namespace sluice::upstream
