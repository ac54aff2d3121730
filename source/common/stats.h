#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace sluice::stats {

// Threads update stats in slots of their own, so that two workers counting the same event never
// write the same cache line (no lock, no cache-line ping-pong on the hot path); a read sums the
// slots. Slot 0 is the main thread's (and any thread that never called SetThreadSlot); workers take
// 1.., wrapping around past kMaxSlots (still correct, only shared again).
inline constexpr uint32_t kMaxSlots = 16;
void SetThreadSlot(uint32_t worker_index);
namespace internal {
// Constant-initialized and inline: every use is a plain TLS load (no init-guard wrapper call).
constinit inline thread_local uint32_t t_slot = 0;
}  // namespace internal

// A monotonically increasing count.
class Counter {
 public:
  void inc() { add(1); }
  void add(uint64_t n) { slots_[internal::t_slot].value.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const {
    uint64_t sum = 0;
    for (const auto& s : slots_) sum += s.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> value{0};
  };
  Slot slots_[kMaxSlots];
};

// A value that goes up and down (open connections, ...): each thread's ups and downs in its own
// slot; the value is their sum.
class Gauge {
 public:
  void inc() { add(1); }
  void dec() { add(-1); }
  void add(int64_t n) { slots_[internal::t_slot].value.fetch_add(n, std::memory_order_relaxed); }
  // For values owned by one thread (configuration facts): replaces the sum.
  void set(int64_t v) {
    for (auto& s : slots_) s.value.store(0, std::memory_order_relaxed);
    slots_[internal::t_slot].value.store(v, std::memory_order_relaxed);
  }
  int64_t value() const {
    int64_t sum = 0;
    for (const auto& s : slots_) sum += s.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<int64_t> value{0};
  };
  Slot slots_[kMaxSlots];
};

// A distribution of non-negative values (latencies in microseconds, sizes in bytes), recorded
// lock-free into per-thread buckets. Buckets are log-linear: two per power of two ([4, 6),
// [6, 8), [8, 12), [12, 16), ...), so a quantile read back (a bucket's upper bound) is within a
// factor of 1.5 of the truth; coarse, but fixed-size and a few instructions to record.
class Histogram {
 public:
  static constexpr size_t kBuckets = 1 + 2 * 64;
  void record(uint64_t value) {
    Slot& s = slots_[internal::t_slot];
    s.buckets[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    s.sum.fetch_add(value, std::memory_order_relaxed);
  }
  uint64_t count() const;
  uint64_t sum() const;
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1); 0 when empty.
  uint64_t quantile(double q) const;
  // Every bucket's count, summed over the threads' slots.
  void bucketCounts(uint64_t (&out)[kBuckets]) const;

  static size_t BucketOf(uint64_t value);
  // The largest value bucket `b` holds.
  static uint64_t UpperBound(size_t b);

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> sum{0};
    std::atomic<uint64_t> buckets[kBuckets] = {};
  };
  Slot slots_[kMaxSlots];
};

// Labels of a stat (key, value); keys [a-zA-Z_][a-zA-Z0-9_]*, values free of CR, LF and NUL
// (the caller checks). A stat is its name plus its labels: each set of values is its own stat.
using Tags = std::vector<std::pair<std::string, std::string>>;

// Owns every stat by name. Creating a stat takes a lock (start-up, config time); using one never
// does: callers keep the returned reference, which stays valid for the store's lifetime. Each stat
// is about 1 KiB (kMaxSlots cache lines): there are tens of them, not thousands.
class Store {
 public:
  Counter& counter(const std::string& name);
  Gauge& gauge(const std::string& name);
  Histogram& histogram(const std::string& name);
  // Labelled stats (sorted by key; the same set in any order is the same stat).
  Counter& counter(const std::string& name, Tags tags);
  Gauge& gauge(const std::string& name, Tags tags);
  Histogram& histogram(const std::string& name, Tags tags);
  // "name value\n" lines sorted by name (the admin /stats text format); a labelled stat is
  // `name{key="value",...}`. A histogram shows as name.count, name.sum, name.p50, name.p90 and
  // name.p99 (the labels after the suffix).
  std::string dumpText() const;
  // The Prometheus text exposition format (version 0.0.4): names with every character outside
  // [a-zA-Z0-9_:] replaced by '_', # HELP (the stat's own name) and # TYPE per family, labels;
  // histograms as cumulative name_bucket{le="..."} series for the log-linear bucket bounds
  // 0, 1, 2, 3, 5, 7, 11, 15, 23, 31, ... (inclusive upper bounds, two per power of two) up to
  // the highest bucket that holds a value, then le="+Inf", name_sum and name_count.
  std::string dumpPrometheus() const;
  // 0 when no such stat exists (tests, admin).
  int64_t valueOf(const std::string& name) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Gauge>> gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Histogram>> histograms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::stats
