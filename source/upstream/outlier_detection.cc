#include "source/upstream/outlier_detection.h"

#include <algorithm>

#include "google/protobuf/util/time_util.h"
#include "source/common/logging.h"
#include "source/upstream/cluster.h"

namespace sluice::upstream {

namespace {

std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

}  // namespace

const char* EjectionReasonName(EjectionReason reason) {
  switch (reason) {
    case EjectionReason::kConsecutive5xx:
      return "consecutive_5xx";
    case EjectionReason::kConsecutiveGatewayFailure:
      return "consecutive_gateway_failure";
    case EjectionReason::kMaxFails:
      return "max_fails";
  }
  return "unknown";
}

OutlierDetectionSettings OutlierDetectionSettings::FromConfig(
    const config::v1::OutlierDetection& config) {
  OutlierDetectionSettings s;
  if (config.has_consecutive_5xx()) s.consecutive_5xx = config.consecutive_5xx().value();
  if (config.has_consecutive_gateway_failure()) {
    s.consecutive_gateway_failure = config.consecutive_gateway_failure().value();
  }
  if (config.has_interval()) s.interval = Ms(config.interval());
  if (config.has_base_ejection_time()) s.base_ejection_time = Ms(config.base_ejection_time());
  if (config.has_max_ejection_time()) s.max_ejection_time = Ms(config.max_ejection_time());
  if (config.has_max_ejection_percent()) {
    s.max_ejection_percent = config.max_ejection_percent().value();
  }
  if (config.has_max_fails()) s.max_fails = config.max_fails().value();
  if (config.has_fail_timeout()) s.fail_timeout = Ms(config.fail_timeout());
  return s;
}

OutlierDetectionStats OutlierDetectionStats::Create(const stats::Scope& scope) {
  return {scope.gauge("ejections_active"),
          scope.counter("ejections_total"),
          scope.counter("ejections_consecutive_5xx"),
          scope.counter("ejections_consecutive_gateway_failure"),
          scope.counter("ejections_max_fails"),
          scope.counter("ejections_overflow")};
}

// ---------------------------------------------------------------------------------------------
// OutlierMonitor: worker side.

void OutlierMonitor::report(const Host& host, HostResult result, uint16_t status) {
  // An ejected host's late results (requests that were under way) change nothing: its counts
  // start from zero when it is back.
  if (host.hasHealthFlag(Host::kFailedOutlierCheck)) return;
  bool is_5xx = false;
  bool gateway = false;
  switch (result) {
    case HostResult::kSuccess:
      break;
    case HostResult::kHttp5xx:
      is_5xx = status >= 500 && status <= 599;
      gateway = status >= 502 && status <= 504;
      break;
    case HostResult::kConnectFailure:
    case HostResult::kReset:
    case HostResult::kTimeout:
      // sluice answers these with a 503, 502 or 504 itself: Envoy counts such "local origin"
      // errors as 5xx too (unless split_external_local_origin_errors).
      is_5xx = true;
      gateway = true;
      break;
  }
  const OutlierDetectionSettings& s = detector_.settings();
  if (!is_5xx) {
    // Loads first: a healthy host's counters stay zero, and every worker writing the same
    // cache line on every success would cost more than the check.
    if (consecutive_5xx_.load(std::memory_order_relaxed) != 0) {
      consecutive_5xx_.store(0, std::memory_order_relaxed);
    }
    if (consecutive_gateway_failure_.load(std::memory_order_relaxed) != 0) {
      consecutive_gateway_failure_.store(0, std::memory_order_relaxed);
    }
    return;
  }
  // ">=" rather than "==": a count that went past while an ejection was pending (or refused by
  // max_ejection_percent) asks again; the flag in requestEjection keeps it to one request.
  if (gateway) {
    const uint32_t n = consecutive_gateway_failure_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (s.consecutive_gateway_failure != 0 && n >= s.consecutive_gateway_failure) {
      requestEjection(EjectionReason::kConsecutiveGatewayFailure);
    }
    if (s.max_fails != 0) countFailureInWindow();
  } else if (consecutive_gateway_failure_.load(std::memory_order_relaxed) != 0) {
    consecutive_gateway_failure_.store(0, std::memory_order_relaxed);
  }
  const uint32_t n = consecutive_5xx_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (s.consecutive_5xx != 0 && n >= s.consecutive_5xx) {
    requestEjection(EjectionReason::kConsecutive5xx);
  }
}

void OutlierMonitor::countFailureInWindow() {
  const int64_t now = std::max<int64_t>(detector_.nowMs(), 0);
  const int64_t length = detector_.settings().fail_timeout.count();
  uint64_t old = window_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    const int64_t end = static_cast<int64_t>(old >> kCountBits);
    const uint64_t count = old & kCountMask;
    if (end == 0 || now >= end) {
      // The first failure after the last window closed opens a new one.
      next = (static_cast<uint64_t>(now + length) << kCountBits) | 1;
    } else {
      next = old + (count < kCountMask ? 1 : 0);
    }
  } while (!window_.compare_exchange_weak(old, next, std::memory_order_relaxed));
  if ((next & kCountMask) >= detector_.settings().max_fails) {
    requestEjection(EjectionReason::kMaxFails);
  }
}

uint32_t OutlierMonitor::failuresInWindow(int64_t now_ms) const {
  const uint64_t w = window_.load(std::memory_order_relaxed);
  const int64_t end = static_cast<int64_t>(w >> kCountBits);
  if (end == 0 || now_ms >= end) return 0;
  return static_cast<uint32_t>(w & kCountMask);
}

void OutlierMonitor::requestEjection(EjectionReason reason) {
  bool expected = false;
  if (!ejection_posted_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    return;  // another worker (or an earlier result) asked already
  }
  detector_.postCrossing(shared_from_this(), reason);
}

void OutlierMonitor::resetCounters() {
  consecutive_5xx_.store(0, std::memory_order_relaxed);
  consecutive_gateway_failure_.store(0, std::memory_order_relaxed);
  window_.store(0, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------
// OutlierDetector: main thread.

OutlierDetector::OutlierDetector(Cluster& cluster, const OutlierDetectionSettings& settings,
                                 OutlierDetectionStats stats, MonotonicClock clock)
    : cluster_(cluster),
      settings_(settings),
      stats_(stats),
      clock_(clock ? std::move(clock) : MonotonicClock(&std::chrono::steady_clock::now)) {}

OutlierDetector::~OutlierDetector() = default;

int64_t OutlierDetector::nowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_().time_since_epoch()).count();
}

void OutlierDetector::addHost(Host& host) {
  host.setOutlierMonitor(std::make_shared<OutlierMonitor>(*this));
}

void OutlierDetector::start(event::Dispatcher& main) {
  main_.store(&main, std::memory_order_release);
  timer_ = main.createTimer([this] {
    sweep();
    timer_->enableTimer(settings_.interval);
  });
  timer_->enableTimer(settings_.interval);
}

void OutlierDetector::postCrossing(std::shared_ptr<OutlierMonitor> monitor, EjectionReason reason) {
  event::Dispatcher* main = main_.load(std::memory_order_acquire);
  if (main == nullptr) {
    // Not started (config validation, or a test that does not drive the main thread).
    monitor->ejection_posted_.store(false, std::memory_order_release);
    return;
  }
  // The closure may run after the cluster is gone (queued at shutdown): the weak pointer says.
  main->post([weak = weak_from_this(), monitor = std::move(monitor), reason] {
    if (std::shared_ptr<OutlierDetector> self = weak.lock()) self->onCrossing(*monitor, reason);
  });
}

void OutlierDetector::onCrossing(OutlierMonitor& monitor, EjectionReason reason) {
  const std::vector<HostSharedPtr>& hosts = cluster_.hosts()->hosts();
  Host* host = nullptr;
  size_t ejected = 0;
  for (const HostSharedPtr& h : hosts) {
    if (h->outlier() == &monitor) host = h.get();
    if (h->hasHealthFlag(Host::kFailedOutlierCheck)) ++ejected;
  }
  // A host that left the cluster (DNS) or is out already: nothing to do. The flag is cleared
  // last in every case, so that a worker crossing again meanwhile does not post twice.
  if (host == nullptr || host->hasHealthFlag(Host::kFailedOutlierCheck)) {
    monitor.ejection_posted_.store(false, std::memory_order_release);
    return;
  }
  // As Envoy: one host may always be ejected when none is; beyond that, no more than
  // max_ejection_percent of the hosts.
  if (ejected > 0 &&
      100 * (ejected + 1) > static_cast<uint64_t>(settings_.max_ejection_percent) * hosts.size()) {
    stats_.ejections_overflow.inc();
    SLUICE_LOG(kInfo,
               "cluster %s: host %s not ejected (%s): %d of %d hosts are ejected already "
               "(max_ejection_percent %d)",
               cluster_.name(), host->addressString(), EjectionReasonName(reason),
               static_cast<int>(ejected), static_cast<int>(hosts.size()),
               static_cast<int>(settings_.max_ejection_percent));
    // Counted again from zero: the next crossing asks again (as Envoy's counters restart).
    monitor.resetCounters();
    monitor.ejection_posted_.store(false, std::memory_order_release);
    return;
  }
  // The n-th ejection in a row lasts n base times, up to the maximum; the multiplier stops
  // growing there, so that time in service brings it down as fast as it went up.
  const int64_t base = settings_.base_ejection_time.count();
  const int64_t max = settings_.max_ejection_time.count();
  if (base * monitor.ejection_multiplier_ < max) ++monitor.ejection_multiplier_;
  const std::chrono::milliseconds duration(std::min(base * monitor.ejection_multiplier_, max));
  monitor.ejected_until_ = clock_() + duration;
  monitor.resetCounters();
  host->setHealthFlag(Host::kFailedOutlierCheck);
  // The workers are told before the stats move: whoever sees the ejection counted finds the
  // host sets already on their way.
  cluster_.refreshHealth();
  stats_.ejections_total.inc();
  switch (reason) {
    case EjectionReason::kConsecutive5xx:
      stats_.ejections_consecutive_5xx.inc();
      break;
    case EjectionReason::kConsecutiveGatewayFailure:
      stats_.ejections_consecutive_gateway_failure.inc();
      break;
    case EjectionReason::kMaxFails:
      stats_.ejections_max_fails.inc();
      break;
  }
  updateActiveGauge();
  SLUICE_LOG(kInfo, "cluster %s: host %s ejected (%s) for %dms", cluster_.name(),
             host->addressString(), EjectionReasonName(reason), static_cast<int>(duration.count()));
  monitor.ejection_posted_.store(false, std::memory_order_release);
}

void OutlierDetector::sweep() {
  const auto now = clock_();
  bool changed = false;
  for (const HostSharedPtr& h : cluster_.hosts()->hosts()) {
    OutlierMonitor* m = h->outlier();
    if (m == nullptr) continue;
    if (h->hasHealthFlag(Host::kFailedOutlierCheck)) {
      if (now < m->ejected_until_) continue;
      m->resetCounters();
      h->clearHealthFlag(Host::kFailedOutlierCheck);
      changed = true;
      // The health checker's flag, if set, keeps it out still: each writer has its own bit.
      SLUICE_LOG(kInfo, "cluster %s: host %s back from ejection%s", cluster_.name(),
                 h->addressString(), h->healthy() ? "" : " (still unhealthy: health check)");
    } else if (m->ejection_multiplier_ > 0) {
      // Envoy's rule: each interval in service takes one off the multiplier.
      --m->ejection_multiplier_;
    }
  }
  if (changed) {
    cluster_.refreshHealth();
    updateActiveGauge();
  }
}

void OutlierDetector::updateActiveGauge() {
  int64_t ejected = 0;
  for (const HostSharedPtr& h : cluster_.hosts()->hosts()) {
    if (h->hasHealthFlag(Host::kFailedOutlierCheck)) ++ejected;
  }
  stats_.ejections_active.set(ejected);
}

}  // namespace sluice::upstream
