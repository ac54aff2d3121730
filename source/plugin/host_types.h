#pragma once

// The host's definitions of the ABI's opaque handle types (sluice_plugin.h declares them
// incomplete; plugins never see inside). Internal to source/plugin.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "api/sluice/plugin/v1/sluice_plugin.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/filter.h"

namespace sluice::plugin {
class MetricRegistry;

// Bounds on the text a plugin hands the host that reaches a log or a terminal; each is also
// escaped (log::EscapeUntrusted). docs/plugins.md, "When a plugin fails", promises them.
inline constexpr size_t kMaxLogMessageBytes = 1024;   // sl_host_log
inline constexpr size_t kMaxFailReasonBytes = 1024;   // sl_host_fail_stream (and SDK exceptions)
inline constexpr size_t kMaxDetailsBytes = 256;       // sl_host_send_response's details
inline constexpr size_t kMaxConfigErrorBytes = 4096;  // sl_host_config_error
inline constexpr size_t kMaxFilterNameBytes = 256;    // sl_on_filter_names, in messages
class PluginFilter;
class PluginFilterConfig;

// A route's config for another filter of the chain, as its definer gave it: built once the
// whole chain is (PluginManager's chainDone).
struct PendingRouteConfig {
  sl_type_route* route;
  std::string filter_name;
  std::string value;
  uint32_t format;
  std::string field_path;
};
}  // namespace sluice::plugin

// A route a filter defined (sl_host_config_route_define). Owned by the definer's config; read
// by every worker.
struct sl_type_route : sluice::http::RouteHandle {
  std::string name;
  void* data = nullptr;
  // The definer's config (set once it exists): only it gets `data` back.
  const sluice::plugin::PluginFilterConfig* owner = nullptr;
  std::vector<std::pair<std::string, std::string>> metadata;
  // Per-route configs by target filter (few per route: a linear scan beats a map).
  struct FilterConfig {
    const sluice::plugin::PluginFilterConfig* filter;
    void* config;
  };
  std::vector<FilterConfig> filter_configs;
  // What RouteHandle::stats points at.
  std::unique_ptr<const sluice::http::RouteHandle::Stats> owned_stats;
};

// What sl_on_config_new may use: the filter's name, where its error goes, its metrics, the
// names of the config's clusters (sl_host_config_clusters; none when null), and where the
// routes it defines go (sl_host_config_route_define; refused when null).
struct sl_type_config_host {
  std::string filter_name;
  std::string error;
  sluice::plugin::MetricRegistry* metrics = nullptr;
  const std::vector<std::string>* clusters = nullptr;
  std::vector<std::unique_ptr<sl_type_route>>* routes = nullptr;
  std::vector<sluice::plugin::PendingRouteConfig>* route_configs = nullptr;
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
  const char* filter_name = nullptr;  // the config's (it outlives every stream of it)
  sluice::plugin::PluginFilter* filter = nullptr;

  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};
