#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/http_connection_manager.pb.h"
#include "source/common/stats.h"
#include "source/config/loader.h"
#include "source/http/conn_manager.h"
#include "source/http/filter.h"

namespace sluice::plugin {

// Loads plugins and builds the HTTP filters that come from them. Main thread, config time.
//
// http::PluginFilterBuilder::filterFactory builds the per-stream factory of one `plugin` entry
// of an http_filters list: finds and loads the plugin (each file once per process), checks that
// it provides the filter, parses `typed_config` against the filter's config type, and runs the
// plugin's sl_on_config_new. `name` is the filter's name for stats and logs; `path` the entry's
// field path (e.g. "listeners[0].filters[0].http_connection_manager.http_filters[1]"), which
// every error names, with the file and the plugin. chainDone() then builds the per-route
// configs the list's routes carry for its filters (ABI 1.3 ROUTES).
class PluginManager : public http::PluginFilterBuilder {};
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
