#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace re2 {
class RE2;
}

namespace sluice::stats {

// Stats are written lock-free by every thread and merged when read.
//
// Each thread writes into a slot of its own: the main thread (and any thread that never called
// SetThreadSlot, e.g. a plugin's) slot 0, worker i slot 1 + i. A store keeps one slot per thread
// it was sized for (`Store(workers)`: workers + 1), so two workers counting the same event never
// write the same cache line; a read sums the slots. A thread whose slot a store has no room for
// (a store sized for fewer workers, or more than kMaxThreadSlots - 1 of them) writes into slot 0,
// which is updated with atomic adds like the others: still exact, only shared.
//
// Counters and gauges are 8-byte cells: a store hands out cells in chunks of kChunkCells, one
// array per slot per chunk, so a stat costs 8 bytes per slot plus its name (bytes per stat are
// measured in test/common/stats_test.cc and docs/observability.md). Histograms allocate a thread's
// buckets the first time that thread records into them.
inline constexpr uint32_t kMaxThreadSlots = 256;
inline constexpr uint32_t kChunkCells = 256;

// Called once by each worker thread (worker_index from 0) before it touches a stat.
void SetThreadSlot(uint32_t worker_index);

namespace internal {
// Constant-initialized and inline: every use is a plain TLS load (no init-guard wrapper call).
constinit inline thread_local uint32_t t_slot = 0;
// A chunk's cells by thread slot: by_slot[s] is slot s's array of kChunkCells cells; slots past
// the store's own point at slot 0's array, so a write needs no bounds check.
struct Chunk {
  std::atomic<uint64_t>* by_slot[kMaxThreadSlots];
};
}  // namespace internal

class Store;
// Only a store makes stats (the constructors below take one of these).
class MakeKey {
  friend class Store;
  MakeKey() = default;
};

// A monotonically increasing count.
class Counter {
 public:
  void inc() { add(1); }
  void add(uint64_t n) {
    cells_[internal::t_slot][offset_].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t value() const;

  Counter(MakeKey, std::atomic<uint64_t>* const* cells, uint32_t offset, uint32_t slots)
      : cells_(cells), offset_(offset), slots_(slots) {}

 private:
  std::atomic<uint64_t>* const* cells_;
  uint32_t offset_;
  uint32_t slots_;
};

// A value that goes up and down. Each thread's ups and downs go into its own slot; `set` moves a
// base so that the value becomes what it was given without writing any slot, so an add that
// races with a set is never lost (it lands before or after the set, never in neither).
class Gauge {
 public:
  void inc() { add(1); }
  void dec() { add(-1); }
  void add(int64_t n) {
    cells_[internal::t_slot][offset_].fetch_add(static_cast<uint64_t>(n),
                                                std::memory_order_relaxed);
  }
  void set(int64_t v) { base_.store(v - deltas(), std::memory_order_relaxed); }
  int64_t value() const { return base_.load(std::memory_order_relaxed) + deltas(); }

  Gauge(MakeKey, std::atomic<uint64_t>* const* cells, uint32_t offset, uint32_t slots)
      : cells_(cells), offset_(offset), slots_(slots) {}

 private:
  int64_t deltas() const;
  std::atomic<uint64_t>* const* cells_;
  uint32_t offset_;
  uint32_t slots_;
  std::atomic<int64_t> base_{0};
};

// A distribution of non-negative values (latencies in microseconds, sizes in bytes), recorded
// lock-free into per-thread buckets. Buckets are log-linear: two per power of two ([4, 6),
// [6, 8), [8, 12), [12, 16), ...), so a quantile read back (a bucket's upper bound) is within a
// factor of 1.5 of the truth; coarse, but fixed-size and a few instructions to record.
class Histogram {
 public:
  static constexpr size_t kBuckets = 1 + 2 * 64;
  Histogram(MakeKey, uint32_t slots);
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void record(uint64_t value) {
    const uint32_t s = internal::t_slot < slots_ ? internal::t_slot : 0;
    Buckets* b = buckets_[s].load(std::memory_order_acquire);
    if (b == nullptr) [[unlikely]]
      b = allocate(s);
    b->counts[BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
    b->sum.fetch_add(value, std::memory_order_relaxed);
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
  struct alignas(64) Buckets {
    std::atomic<uint64_t> sum{0};
    std::atomic<uint64_t> counts[kBuckets] = {};
  };
  Buckets* allocate(uint32_t slot);

  std::unique_ptr<std::atomic<Buckets*>[]> buckets_;
  uint32_t slots_;
};

// Tags (Prometheus labels) of a stat, as (key, value): keys [a-zA-Z_][a-zA-Z0-9_]* and not
// starting with "__" or being "le"; values free of CR, LF and NUL (callers check what they did
// not write themselves).
using Tags = std::vector<std::pair<std::string, std::string>>;

// Where stats are named. A stat has two names:
//  - its name, as /stats shows it and code looks it up: Envoy's dotted form with the tag values
//    inside it, e.g. "cluster.backend.upstream_rq_5xx";
//  - its family, the same with the tag values taken out, e.g. "cluster.upstream_rq_xx", with the
//    tags {cluster_name: backend, response_code_class: 5}: what Prometheus sees, as
//    sluice_cluster_upstream_rq_xx{cluster_name="backend",response_code_class="5"}.
// A scope carries the prefix of both and the tags gathered on the way. The names are built from
// the parts, never parsed back: a cluster named "a.b" is one tag value.
class Scope {
 public:
  explicit Scope(Store& store);

  // "<prefix><segment>.<value>." with `value` as the tag `tag_key`: Scope(store).tagged("cluster",
  // "cluster_name", "backend") names "cluster.backend.*" in family "cluster.*".
  Scope tagged(std::string_view segment, std::string_view tag_key, std::string_view value) const;
  // "<prefix><segment>." with no tag.
  Scope child(std::string_view segment) const;

  Counter& counter(std::string_view leaf) const;
  Gauge& gauge(std::string_view leaf) const;
  Histogram& histogram(std::string_view leaf) const;
  // A leaf that holds a tag value itself: counter("upstream_rq_5xx", "upstream_rq_xx",
  // {{"response_code_class", "5"}}).
  Counter& counter(std::string_view leaf, std::string_view family_leaf, Tags leaf_tags) const;
  // Labels that are not part of the name: listed after it in braces, `leaf{key="value",...}`
  // (plugins' labelled metrics).
  Counter& labelledCounter(std::string_view leaf, Tags labels) const;
  Gauge& labelledGauge(std::string_view leaf, Tags labels) const;
  Histogram& labelledHistogram(std::string_view leaf, Tags labels) const;

  const std::string& prefix() const;
  const Tags& tags() const;
  Store& store() const { return *store_; }

 private:
  friend class Store;
  struct Data {
    std::string prefix;         // "cluster.backend."
    std::string family_prefix;  // "cluster."
    Tags tags;                  // sorted by key
  };
  Scope(Store& store, std::shared_ptr<const Data> data) : store_(&store), data_(std::move(data)) {}

  Store* store_;
  std::shared_ptr<const Data> data_;
};

// "<prefix>_<code class>xx" for `class_digit` 1..5: downstream_rq_2xx in family downstream_rq_xx.
Counter& ResponseClassCounter(const Scope& scope, std::string_view prefix, int class_digit);

// Owns every stat. Creating a stat takes a lock (start-up, config time, a new host); using one
// never does: callers keep the returned reference, valid for the store's lifetime (stats are
// never removed).
class Store {
 public:
  // Sized for `workers` worker threads (SetThreadSlot(0 .. workers - 1)) plus slot 0.
  explicit Store(uint32_t workers = 0);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Stats with no tags: the name is also the family.
  Counter& counter(const std::string& name);
  Gauge& gauge(const std::string& name);
  Histogram& histogram(const std::string& name);
  // Labelled stats (any order of the same set is the same stat): `name{key="value",...}`.
  Counter& counter(const std::string& name, Tags labels);
  Gauge& gauge(const std::string& name, Tags labels);
  Histogram& histogram(const std::string& name, Tags labels);

  // The admin's formats. `filter`, when not null, keeps the stats whose name (before any
  // "{labels}") it matches (RE2::PartialMatch).
  // "name value\n" lines sorted by name; a histogram shows as name.count, name.sum, name.p50,
  // name.p90 and name.p99 (labels after the suffix).
  std::string dumpText(const re2::RE2* filter = nullptr) const;
  // {"stats":[{"name":...,"type":"counter"|"gauge","value":N,"tags":{...}},
  //           {"name":...,"type":"histogram","count":N,"sum":N,"p50":N,"p90":N,"p99":N,...}]}
  std::string dumpJson(const re2::RE2* filter = nullptr) const;
  // The Prometheus text exposition format (0.0.4): one family per stat family, named
  // "sluice_" + the family with every character outside [a-zA-Z0-9_:] replaced by '_'; # HELP
  // (the family's dotted name) and # TYPE; labels from the tags; histograms as cumulative
  // _bucket{le="..."} series at the log-linear bounds 0, 1, 2, 3, 5, 7, 11, 15, 23, 31, ...
  // (inclusive upper bounds, two per power of two) up to the highest bucket that holds a value,
  // then le="+Inf", _sum and _count.
  std::string dumpPrometheus(const re2::RE2* filter = nullptr) const;
  // A counter's or gauge's value by name; 0 when no such stat exists (tests, admin).
  int64_t valueOf(const std::string& name) const;

  // Every counter by its full name (as dumpText names it) and value: what a hot-restart
  // successor continues from.
  std::vector<std::pair<std::string, uint64_t>> counterValues() const;
  // Adds each value to the counter of that full name, where one exists (a predecessor's counts:
  // counters of its config that this one dropped are not made). How many were found.
  size_t addToCounters(const std::vector<std::pair<std::string, uint64_t>>& values);

  uint32_t threadSlots() const { return slots_; }
  // How many stats exist.
  size_t size() const;

 private:
  friend class Scope;
  enum class Kind : uint8_t { kCounter, kGauge, kHistogram };
  struct Entry {
    Kind kind;
    std::shared_ptr<const Scope::Data> scope;  // the family prefix and the scope's tags
    std::string family_leaf;  // empty: the leaf itself (the name after the prefix, before labels)
    Tags own_tags;            // the leaf's tags and labels
    void* stat;
  };
  // Finds or makes the stat `name` (its full text name); a name made before with another kind
  // is a programming error (RELEASE_ASSERT).
  void* make(Kind kind, std::string name, const std::shared_ptr<const Scope::Data>& scope,
             std::string_view family_leaf, Tags own_tags);
  // A new cell (main thread or any, under mu_): its chunk's slot table and offset.
  std::pair<std::atomic<uint64_t>* const*, uint32_t> newCell() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint32_t slots_;
  const std::shared_ptr<const Scope::Data> root_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> stats_ ABSL_GUARDED_BY(mu_);  // by name, sorted for the dumps
  struct alignas(64) CellArray {
    std::atomic<uint64_t> cells[kChunkCells] = {};
  };
  std::vector<std::unique_ptr<internal::Chunk>> chunks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<CellArray>> cell_arrays_ ABSL_GUARDED_BY(mu_);
  uint32_t cells_used_ ABSL_GUARDED_BY(mu_) = kChunkCells;  // in the last chunk
  std::deque<Counter> counters_ ABSL_GUARDED_BY(mu_);
  std::deque<Gauge> gauges_ ABSL_GUARDED_BY(mu_);
  std::deque<std::unique_ptr<Histogram>> histograms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sluice::stats
