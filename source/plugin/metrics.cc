#include "source/plugin/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "source/plugin/host_checks.h"

namespace sluice::plugin {

static_assert(checks::kMaxMetricTags == kMaxMetricTags &&
              checks::kMaxMetricTagValue == kMaxMetricTagValue);

sl_type_result MetricRegistry::define(const std::string& filter_name, sl_type_metric_kind kind,
                                      std::string_view name, stats::Tags tags,
                                      sl_type_metric** out) {
  if (!checks::MetricKind(kind) || !checks::MetricName(name) || tags.size() > kMaxMetricTags) {
    return SL_ERR_INVALID;
  }
  std::sort(tags.begin(), tags.end());
  for (size_t i = 0; i < tags.size(); ++i) {
    if (!checks::MetricTagKey(tags[i].first) || !checks::MetricTagValue(tags[i].second)) {
      return SL_ERR_INVALID;
    }
    if (i > 0 && tags[i].first == tags[i - 1].first) return SL_ERR_INVALID;  // a key twice
  }
  const std::string full =
      absl::StrCat("plugin.", filter_name, ".", absl::string_view(name.data(), name.size()));
  std::string key = full;
  for (const auto& [k, v] : tags) absl::StrAppend(&key, "\n", k, "\n", v);
  absl::MutexLock lock(&mu_);
  if (auto it = kinds_.find(full); it != kinds_.end() && it->second != kind) {
    return SL_ERR_INVALID;  // same name, other kind
  }
  if (auto it = by_name_.find(key); it != by_name_.end()) {
    *out = it->second;
    return SL_OK;
  }
  sl_type_metric& m = metrics_.emplace_back();
  m.kind = kind;
  // "plugin.<filter>.<name>{labels}", in family "plugin.<name>" with the tag plugin=<filter>.
  const stats::Scope scope = stats::Scope(store_).tagged("plugin", "plugin", filter_name);
  const std::string_view leaf(name.data(), name.size());
  switch (kind) {
    case SL_METRIC_COUNTER:
      m.counter = &scope.labelledCounter(leaf, std::move(tags));
      break;
    case SL_METRIC_GAUGE:
      m.gauge = &scope.labelledGauge(leaf, std::move(tags));
      break;
    default:
      m.histogram = &scope.labelledHistogram(leaf, std::move(tags));
      break;
  }
  kinds_.emplace(full, kind);
  by_name_.emplace(std::move(key), &m);
  *out = &m;
  return SL_OK;
}

}  // namespace sluice::plugin
