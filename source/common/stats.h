#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"

namespace sluice::stats {

// A monotonically increasing count. Updates are relaxed atomics: they take no lock, and the
// counters a worker touches on its hot path are its own (per-worker names), so no cache line
// bounces between cores for them.
class Counter {
 public:
  void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void add(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down (open connections, ...).
class Gauge {
 public:
  void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void dec() { value_.fetch_sub(1, std::memory_order_relaxed); }
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Owns every stat by name. Creating a stat takes a lock (start-up, config time); using one never
// does: callers keep the returned reference, which stays valid for the store's lifetime.
class Store {
 public:
  Counter& counter(const std::string& name);
  Gauge& gauge(const std::string& name);
  // "name value\n" lines sorted by name (the admin /stats text format).
  std::string dumpText() const;
  // 0 when no such stat exists (tests, admin).
  int64_t valueOf(const std::string& name) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Gauge>> gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::stats
