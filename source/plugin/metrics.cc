#include "source/plugin/metrics.h"

#include "absl/strings/str_cat.h"
#include "source/plugin/host_checks.h"

namespace sluice::plugin {

sl_type_result MetricRegistry::define(const std::string& filter_name, sl_type_metric_kind kind,
                                      std::string_view name, sl_type_metric** out) {
  if (!checks::MetricKind(kind) || !checks::MetricName(name)) return SL_ERR_INVALID;
  const std::string full =
      absl::StrCat("plugin.", filter_name, ".", absl::string_view(name.data(), name.size()));
  absl::MutexLock lock(&mu_);
  if (auto it = by_name_.find(full); it != by_name_.end()) {
    if (it->second->kind != kind) return SL_ERR_INVALID;  // same name, other kind
    *out = it->second;
    return SL_OK;
  }
  sl_type_metric& m = metrics_.emplace_back();
  m.kind = kind;
  switch (kind) {
    case SL_METRIC_COUNTER:
      m.counter = &store_.counter(full);
      break;
    case SL_METRIC_GAUGE:
      m.gauge = &store_.gauge(full);
      break;
    default:
      m.histogram = &store_.histogram(full);
      break;
  }
  by_name_.emplace(full, &m);
  *out = &m;
  return SL_OK;
}

}  // namespace sluice::plugin
