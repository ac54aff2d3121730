#pragma once

// The host's definitions of the ABI's opaque handle types (sluice_plugin.h declares them
// incomplete; plugins never see inside). Internal to source/plugin.

#include <atomic>
#include <string>
#include <vector>

#include "api/sluice/plugin/v1/sluice_plugin.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"

namespace sluice::plugin {
class MetricRegistry;
class PluginFilter;
}  // namespace sluice::plugin

// What sl_on_config_new may use: the filter's name, where its error goes, its metrics, and the
// names of the config's clusters (sl_host_config_clusters; none when null).
struct sl_type_config_host {
  std::string filter_name;
  std::string error;
  sluice::plugin::MetricRegistry* metrics = nullptr;
  const std::vector<std::string>* clusters = nullptr;
};

// A declared metric: one of the store's stats, by kind.
struct sl_type_metric {
  sl_type_metric_kind kind;
  sluice::stats::Counter* counter = nullptr;
  sluice::stats::Gauge* gauge = nullptr;
  sluice::stats::Histogram* histogram = nullptr;
};

// The base of PluginFilter, so that sl_type_stream* and PluginFilter* convert with a
// static_cast (no lookup, no extra object per stream).
struct sl_type_stream {};

// A stream reference other threads may hold. `filter` is read and cleared only on the worker
// (the filter clears it when it is destroyed); the count is the only cross-thread state.
struct sl_type_stream_ref {
  std::atomic<uint32_t> refs{1};
  sluice::event::Dispatcher* dispatcher = nullptr;
  sluice::plugin::PluginFilter* filter = nullptr;

  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};
