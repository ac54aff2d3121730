#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "api/sluice/config/v1/outlier_detection.pb.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/upstream/host.h"

// Outlier detection (passive health checking): the workers count each host's results in atomic
// counters on the host (OutlierMonitor); a count that crosses its threshold posts once to the
// main thread, where the cluster's OutlierDetector ejects the host (Host::kFailedOutlierCheck)
// and has the workers' host sets rebuilt without it (Cluster::refreshHealth), then brings it
// back when its ejection time is up. Config and semantics: api/sluice/config/v1/
// outlier_detection.proto; docs/upstreams.md ("Outlier detection").

namespace sluice::upstream {

class Cluster;

// What one attempt that reached a host came to.
enum class HostResult : uint8_t {
  kSuccess,         // a response head with status < 500
  kHttp5xx,         // a response head with status 500-599 (the status is given)
  kConnectFailure,  // connect refused / timed out / TLS handshake failed (a gateway failure)
  kReset,           // the connection closed or was reset before the response ended (gateway)
  kTimeout,         // a route / per-try / headers / idle timeout (gateway)
};

// Why a host was ejected.
enum class EjectionReason : uint8_t { kConsecutive5xx, kConsecutiveGatewayFailure, kMaxFails };
const char* EjectionReasonName(EjectionReason reason);

// outlier_detection with its defaults applied (outlier_detection.proto documents each).
struct OutlierDetectionSettings {
  uint32_t consecutive_5xx = 5;  // 0: off
  uint32_t consecutive_gateway_failure = 0;
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds base_ejection_time{30000};
  std::chrono::milliseconds max_ejection_time{300000};
  uint32_t max_ejection_percent = 10;
  uint32_t max_fails = 0;
  std::chrono::milliseconds fail_timeout{10000};

  static OutlierDetectionSettings FromConfig(const config::v1::OutlierDetection& config);
};

// "cluster.<name>.outlier_detection.*". Written on the main thread only.
struct OutlierDetectionStats {
  stats::Gauge& ejections_active;
  stats::Counter& ejections_total;
  stats::Counter& ejections_consecutive_5xx;
  stats::Counter& ejections_consecutive_gateway_failure;
  stats::Counter& ejections_max_fails;
  // Ejections max_ejection_percent did not allow.
  stats::Counter& ejections_overflow;

  // `scope`: the cluster's "outlier_detection" child.
  static OutlierDetectionStats Create(const stats::Scope& scope);
};

// The monotonic clock the detector reads (injected by tests). Called on the workers too (the
// max_fails window), so it must be thread-safe.
using MonotonicClock = std::function<std::chrono::steady_clock::time_point()>;

class OutlierDetector;

// One host's passive health counters, shared by every worker: atomics, no lock. A count that
// reaches its threshold asks the main thread for an ejection; a flag (compare-and-swap) makes
// sure that workers crossing together ask once, until the main thread has handled it.
class OutlierMonitor : public std::enable_shared_from_this<OutlierMonitor> {
 public:
  explicit OutlierMonitor(OutlierDetector& detector) : detector_(detector) {}
  OutlierMonitor(const OutlierMonitor&) = delete;
  OutlierMonitor& operator=(const OutlierMonitor&) = delete;

  // Any thread (ReportHostResult).
  void report(const Host& host, HostResult result, uint16_t status);

  // For tests and the admin side.
  uint32_t consecutive5xx() const { return consecutive_5xx_.load(std::memory_order_relaxed); }
  uint32_t consecutiveGatewayFailures() const {
    return consecutive_gateway_failure_.load(std::memory_order_relaxed);
  }
  // Failures in the current max_fails window (0 when it is closed at `now_ms`).
  uint32_t failuresInWindow(int64_t now_ms) const;
  bool ejectionPending() const { return ejection_posted_.load(std::memory_order_acquire); }
  // Main thread: how many base_ejection_times the next ejection would last minus one (the
  // number of ejections in a row, less what time in service took off).
  uint32_t ejectionMultiplier() const { return ejection_multiplier_; }

 private:
  friend class OutlierDetector;

  // The max_fails window in one word, so that opening a window and counting in it is one
  // compare-and-swap: the window's end (clock milliseconds) above kCountBits, the count below.
  static constexpr int kCountBits = 20;
  static constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;

  void countFailureInWindow();
  void requestEjection(EjectionReason reason);
  void resetCounters();

  OutlierDetector& detector_;
  std::atomic<uint32_t> consecutive_5xx_{0};
  std::atomic<uint32_t> consecutive_gateway_failure_{0};
  std::atomic<uint64_t> window_{0};
  std::atomic<bool> ejection_posted_{false};
  // Main thread only.
  uint32_t ejection_multiplier_ = 0;
  std::chrono::steady_clock::time_point ejected_until_{};
};

// Reports an attempt's result for `host`. Worker threads; cheap when the cluster has no
// outlier_detection (one pointer test). Called for every attempt that reached a host, not for
// requests refused by a circuit breaker, that found no host, or that the client cancelled.
inline void ReportHostResult(const Host& host, HostResult result, uint16_t status = 0) {
  if (OutlierMonitor* monitor = host.outlier(); monitor != nullptr) {
    monitor->report(host, result, status);
  }
}

// A cluster's outlier detection, on the main thread: ejects hosts whose counts crossed a
// threshold (within max_ejection_percent), brings them back when their time is up (checked
// every `interval`), and keeps the stats. Owned by its Cluster (shared, so that a crossing
// posted from a worker and still queued when the cluster goes finds it gone, not freed).
class OutlierDetector : public std::enable_shared_from_this<OutlierDetector> {
 public:
  OutlierDetector(Cluster& cluster, const OutlierDetectionSettings& settings,
                  OutlierDetectionStats stats, MonotonicClock clock = {});
  ~OutlierDetector();

  const OutlierDetectionSettings& settings() const { return settings_; }
  OutlierDetectionStats& stats() { return stats_; }

  // Main thread: gives `host` its monitor, before the host reaches any worker.
  void addHost(Host& host);
  // Main thread: the cluster's host set changed (a host that left may have been ejected).
  void onHostsChanged() { updateActiveGauge(); }
  // Main thread, before the workers run: crossings post to `main` from now on, and the
  // interval timer starts. Without it (config validation) crossings are dropped.
  void start(event::Dispatcher& main);
  // Brings back the hosts whose ejection time is up and lowers the multiplier of those in
  // service: what the interval timer runs (public so that tests drive it with their clock).
  void sweep();

  // Clock milliseconds (the max_fails window's unit).
  int64_t nowMs() const;

 private:
  friend class OutlierMonitor;

  // Worker: posts `monitor`'s crossing to the main thread.
  void postCrossing(std::shared_ptr<OutlierMonitor> monitor, EjectionReason reason);
  // Main thread: ejects the monitor's host if it is still in the cluster, in service, and
  // max_ejection_percent allows it.
  void onCrossing(OutlierMonitor& monitor, EjectionReason reason);
  void updateActiveGauge();

  Cluster& cluster_;
  const OutlierDetectionSettings settings_;
  OutlierDetectionStats stats_;
  const MonotonicClock clock_;
  // Set once by start(), before the workers run; read by them when a count crosses.
  std::atomic<event::Dispatcher*> main_{nullptr};
  event::TimerPtr timer_;
};
using OutlierDetectorSharedPtr = std::shared_ptr<OutlierDetector>;

}  // namespace sluice::upstream
