#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"

namespace sluice::network {

// An object a worker owns on behalf of something every worker shares (a tracer's batch of
// spans, with its timer and its export in flight): made on the worker on first use, used and
// destroyed there — before the worker's upstream pools and dispatcher go.
class WorkerLocal {
 public:
  virtual ~WorkerLocal() = default;
};

// A worker's WorkerLocal objects, by key (WorkerLocals::NewKey(), taken once by their shared
// owner at config time). Worker thread only; no lock.
class WorkerLocals {
 public:
  // A key never handed out before (process-wide).
  static uint64_t NewKey() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  // The object of `key`, made by `make()` (a std::unique_ptr<WorkerLocal> or derived) the first
  // time; nullptr once the worker is shutting down (close()).
  template <class T, class Make>
  T* getOrCreate(uint64_t key, Make&& make) {
    if (closed_) return nullptr;
    auto [it, inserted] = objects_.try_emplace(key);
    if (inserted) it->second = make();
    return static_cast<T*>(it->second.get());
  }

  // Destroys every object (worker teardown); getOrCreate() returns nullptr from then on.
  void close() {
    closed_ = true;
    // Moved out first: an object's destructor must not find a half-destroyed map.
    auto objects = std::move(objects_);
    objects_.clear();
    objects.clear();
  }

 private:
  absl::flat_hash_map<uint64_t, std::unique_ptr<WorkerLocal>> objects_;
  bool closed_ = false;
};

}  // namespace sluice::network
