#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "source/common/stats.h"
#include "source/http/filter.h"
#include "source/plugin/host_types.h"
#include "source/plugin/loader.h"

namespace sluice::plugin {

// One configured plugin filter (an http_filters entry): the plugin's config object and what
// every stream of it shares. Built on the main thread, then only read (by every worker).
class PluginFilterConfig {
 public:
  PluginFilterConfig(const LoadedPlugin& plugin, std::string name, void* plugin_config,
                     stats::Store& store);
  // sl_on_route_config_destroy for the per-route configs built for it, then
  // sl_on_config_destroy. The last reference goes with the listener config, after its streams.
  ~PluginFilterConfig();
  PluginFilterConfig(const PluginFilterConfig&) = delete;
  PluginFilterConfig& operator=(const PluginFilterConfig&) = delete;

  const LoadedPlugin& plugin() const { return plugin_; }
  const Hooks& hooks() const { return plugin_.hooks(); }
  const std::string& name() const { return name_; }
  void* pluginConfig() const { return plugin_config_; }
  // The http::FilterHook mask of the hooks the plugin has (computed once, read per stream).
  uint32_t hookMask() const { return hook_mask_; }

  // Config time only (main thread, before any worker sees the config).
  // The routes this filter defined (it is its chain's route selector when there are any).
  void adoptRoutes(std::vector<std::unique_ptr<sl_type_route>> routes);
  bool definesRoutes() const { return !routes_.empty(); }
  // Whether `route` is one this filter defined. Checked by address, never by reading through
  // it: a plugin handing back a pointer it did not get from the host must not make us read it.
  bool ownsRoute(const sl_type_route* route) const { return route_set_.contains(route); }
  // A per-route config the plugin built for this filter (destroyed with it).
  void adoptRouteConfig(void* route_config) { route_configs_.push_back(route_config); }

  // plugin.<name>.failures: streams failed by the plugin (sl_host_fail_stream, a NULL from
  // sl_on_filter_new, a caught exception).
  stats::Counter& failures;
  // plugin.<name>.rejected_calls: host calls refused as invalid (bad header bytes, wrong
  // state): a plugin bug worth seeing without reading logs.
  stats::Counter& rejected_calls;
  // plugin.<name>.misuse_<reason>: ABI misuses that would have left a stream hanging, each
  // ending its stream at once (500, or a reset once the response started) and logged: a hook
  // returning an action it may not (unknown, or STOP_AND_BUFFER from a headers hook), a
  // continue_* from inside the filter's own hook of that direction, a send_response refused in
  // a response hook (the response had started).
  stats::Counter& misuse_unknown_action;
  stats::Counter& misuse_buffer_from_headers;
  stats::Counter& misuse_continue_inside_hook;
  stats::Counter& misuse_refused_reply;

 private:
  const LoadedPlugin& plugin_;
  const std::string name_;
  void* const plugin_config_;
  const uint32_t hook_mask_;
  std::vector<std::unique_ptr<sl_type_route>> routes_;
  absl::flat_hash_set<const sl_type_route*> route_set_;
  std::vector<void*> route_configs_;
};
using PluginFilterConfigSharedPtr = std::shared_ptr<const PluginFilterConfig>;

// The per-stream factory of a configured plugin filter.
http::StreamFilterFactory PluginFilterFactory(PluginFilterConfigSharedPtr config);

}  // namespace sluice::plugin
