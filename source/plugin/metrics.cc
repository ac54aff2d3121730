#include "source/plugin/metrics.h"

#include <algorithm>

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
// A Prometheus label name, minus the reserved ones ("__" prefixes, and "le" of histograms).
bool ValidTagKey(std::string_view key) {
  if (key.empty() || key.size() > 64 || key == "le" || key.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < key.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(key[i]);
    if (!(absl::ascii_isalpha(c) || c == '_' || (i > 0 && absl::ascii_isdigit(c)))) return false;
  }
  return true;
}

bool ValidTagValue(std::string_view value) {
  return value.size() <= kMaxMetricTagValue &&
         value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}
}  // namespace

sl_type_result MetricRegistry::define(const std::string& filter_name, sl_type_metric_kind kind,
                                      std::string_view name, stats::Tags tags,
                                      sl_type_metric** out) {
  if (kind > SL_METRIC_HISTOGRAM || !ValidMetricName(name) || tags.size() > kMaxMetricTags) {
    return SL_ERR_INVALID;
  }
  std::sort(tags.begin(), tags.end());
  for (size_t i = 0; i < tags.size(); ++i) {
    if (!ValidTagKey(tags[i].first) || !ValidTagValue(tags[i].second)) return SL_ERR_INVALID;
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
  switch (kind) {
    case SL_METRIC_COUNTER:
      m.counter = &store_.counter(full, std::move(tags));
      break;
    case SL_METRIC_GAUGE:
      m.gauge = &store_.gauge(full, std::move(tags));
      break;
    default:
      m.histogram = &store_.histogram(full, std::move(tags));
      break;
  }
  kinds_.emplace(full, kind);
  by_name_.emplace(std::move(key), &m);
  *out = &m;
  return SL_OK;
}

}  // namespace sluice::plugin
