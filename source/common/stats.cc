#include "source/common/stats.h"

#include "absl/strings/str_cat.h"

namespace sluice::stats {

void SetThreadSlot(uint32_t worker_index) { internal::t_slot = 1 + worker_index % (kMaxSlots - 1); }

Counter& Store::counter(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Store::gauge(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Store::histogram(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = histograms_[name];
  if (!slot) slot = std::make_unique<Histogram>();
  return *slot;
}

size_t Histogram::BucketOf(uint64_t v) {
  if (v == 0) return 0;
  // Bucket 2k+1 holds [2^k, 1.5 * 2^k), bucket 2k+2 holds [1.5 * 2^k, 2^(k+1)).
  const int k = 63 - __builtin_clzll(v);
  const uint64_t half = k == 0 ? 0 : (v >> (k - 1)) & 1;
  return 1 + 2 * static_cast<size_t>(k) + half;
}

uint64_t Histogram::UpperBound(size_t b) {
  if (b == 0) return 0;
  const size_t k = (b - 1) / 2;
  const bool upper_half = (b - 1) % 2 == 1;
  if (k == 63) return upper_half ? UINT64_MAX : (uint64_t{3} << 62) - 1;
  const uint64_t base = uint64_t{1} << k;
  return upper_half ? 2 * base - 1 : base + base / 2 - (k == 0 ? 0 : 1);
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (const auto& s : slots_) {
    for (const auto& b : s.buckets) n += b.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Histogram::sum() const {
  uint64_t n = 0;
  for (const auto& s : slots_) n += s.sum.load(std::memory_order_relaxed);
  return n;
}

uint64_t Histogram::quantile(double q) const {
  uint64_t merged[kBuckets] = {};
  uint64_t total = 0;
  for (const auto& s : slots_) {
    for (size_t b = 0; b < kBuckets; ++b) {
      const uint64_t n = s.buckets[b].load(std::memory_order_relaxed);
      merged[b] += n;
      total += n;
    }
  }
  if (total == 0) return 0;
  // The smallest bucket whose cumulative count reaches ceil(q * total).
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += merged[b];
    if (seen >= rank) return UpperBound(b);
  }
  return UpperBound(kBuckets - 1);
}

std::string Store::dumpText() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> lines;
  for (const auto& [name, c] : counters_) lines[name] = absl::StrCat(c->value());
  for (const auto& [name, g] : gauges_) lines[name] = absl::StrCat(g->value());
  for (const auto& [name, h] : histograms_) {
    lines[name + ".count"] = absl::StrCat(h->count());
    lines[name + ".sum"] = absl::StrCat(h->sum());
    lines[name + ".p50"] = absl::StrCat(h->quantile(0.5));
    lines[name + ".p90"] = absl::StrCat(h->quantile(0.9));
    lines[name + ".p99"] = absl::StrCat(h->quantile(0.99));
  }
  std::string out;
  for (const auto& [name, value] : lines) absl::StrAppend(&out, name, " ", value, "\n");
  return out;
}

int64_t Store::valueOf(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  if (auto it = counters_.find(name); it != counters_.end()) {
    return static_cast<int64_t>(it->second->value());
  }
  if (auto it = gauges_.find(name); it != gauges_.end()) return it->second->value();
  return 0;
}

}  // namespace sluice::stats
