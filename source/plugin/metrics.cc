#include "source/plugin/metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice::plugin {

namespace {
bool ValidMetricName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}
}  // namespace

sl_type_result MetricRegistry::define(const std::string& filter_name, sl_type_metric_kind kind,
                                      std::string_view name, sl_type_metric** out) {
  if (kind > SL_METRIC_HISTOGRAM || !ValidMetricName(name)) return SL_ERR_INVALID;
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
