#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/http_connection_manager.pb.h"
#include "source/common/stats.h"
#include "source/config/loader.h"
#include "source/http/filter.h"

namespace sluice::plugin {

// Loads plugins and builds the HTTP filters that come from them. Main thread, config time.
class PluginManager {
 public:
  virtual ~PluginManager() = default;

  // Builds the per-stream factory of one `plugin` entry of an http_filters list: finds and
  // loads the plugin (each file once per process), checks that it provides the filter, parses
  // `typed_config` against the filter's config type, and runs the plugin's sl_on_config_new.
  // `name` is the filter's name for stats and logs; `path` the entry's field path (e.g.
  // "listeners[0].filters[0].http_connection_manager.http_filters[1]"), which every error
  // names, with the file and the plugin.
  virtual absl::StatusOr<http::StreamFilterFactory> filterFactory(
      const config::v1::PluginFilter& proto, const std::string& name, const std::string& path) = 0;
};
using PluginManagerPtr = std::unique_ptr<PluginManager>;

// `dirs`: the bootstrap's plugin_dirs (DefaultPluginDir() is searched after them). `clusters`:
// the names of the bootstrap's clusters, in config order, which plugins see at config time
// (sl_host_config_clusters) to refuse references to clusters that do not exist. `sources`
// locates typed_config values in the config file for errors; `store` gets the plugins' stats.
// The manager must outlive the filter factories it built (they use its metrics).
PluginManagerPtr CreatePluginManager(std::vector<std::string> dirs,
                                     std::vector<std::string> clusters,
                                     const config::ValueSources& sources, stats::Store& store);

}  // namespace sluice::plugin
