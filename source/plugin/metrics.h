#pragma once

#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "source/common/stats.h"
#include "source/plugin/host_types.h"

namespace sluice::plugin {

// sl_host_metric_define_tagged's limits.
inline constexpr size_t kMaxMetricTags = 8;
inline constexpr size_t kMaxMetricTagValue = 256;

// The metrics plugins declared, as handles onto the stats store: "plugin.<filter>.<name>".
// Declaring happens at config time; handles live as long as the registry (the process), so a
// plugin may keep them in its config and update them from any thread.
class MetricRegistry {
 public:
  explicit MetricRegistry(stats::Store& store) : store_(store) {}
  stats::Store& store() { return store_; }

  // `tags` may be empty (an unlabelled metric). SL_ERR_INVALID for a bad name or tag, or a name
  // declared before with another kind.
  sl_type_result define(const std::string& filter_name, sl_type_metric_kind kind,
                        std::string_view name, stats::Tags tags, sl_type_metric** out);

 private:
  stats::Store& store_;
  absl::Mutex mu_;
  // By name plus sorted tags.
  std::map<std::string, sl_type_metric*> by_name_ ABSL_GUARDED_BY(mu_);
  // One kind per name, whatever the tags (a Prometheus family has one type).
  std::map<std::string, sl_type_metric_kind> kinds_ ABSL_GUARDED_BY(mu_);
  std::deque<sl_type_metric> metrics_ ABSL_GUARDED_BY(mu_);  // stable addresses
};

}  // namespace sluice::plugin
