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

std::string Store::dumpText() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> lines;
  for (const auto& [name, c] : counters_) lines[name] = absl::StrCat(c->value());
  for (const auto& [name, g] : gauges_) lines[name] = absl::StrCat(g->value());
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
