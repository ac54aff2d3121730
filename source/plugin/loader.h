#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/plugin/v1/sluice_plugin.h"
#include "source/plugin/hooks.h"

namespace sluice::plugin {

// A plugin file, loaded with dlopen(RTLD_NOW | RTLD_LOCAL) after the version handshake. Never
// unloaded: generated protobuf code it registered, static objects and threads it started may
// refer to its memory for the rest of the process (Envoy and nginx do not unload either).
class LoadedPlugin {
 public:
  LoadedPlugin(std::string path, void* handle, uint32_t version, Hooks hooks,
               std::vector<std::string> filter_names)
      : path_(std::move(path)),
        handle_(handle),
        version_(version),
        hooks_(hooks),
        filter_names_(std::move(filter_names)) {}

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const Hooks& hooks() const { return hooks_; }
  // What it provides: its sl_on_filter_names, or the one name its file name gives.
  const std::vector<std::string>& filterNames() const { return filter_names_; }
  bool providesFilter(std::string_view name) const;

 private:
  std::string path_;
  void* handle_;
  uint32_t version_;
  Hooks hooks_;
  std::vector<std::string> filter_names_;
};

// "1.0" for an SL_ABI_VERSION-style number.
std::string VersionString(uint32_t version);

// The file `name` (PluginFilter.plugin) refers to: a path when it contains '/', else the first
// of "<dir>/<name>.so", "<dir>/lib<name>.so" that exists, over `dirs` in order. The error lists
// every place tried.
absl::StatusOr<std::string> ResolvePlugin(std::string_view name,
                                          const std::vector<std::string>& dirs);

// Loads the plugin at `path`: dlopen, the version handshake, the hooks, the filter names.
// Refused (with the path in the message): a file dlopen rejects, a missing sl_on_abi_version or
// sl_on_config_new, another major version or a newer minor than the host's, and a plugin that
// brought OpenSSL's libssl.so.3 / libcrypto.so.3 into the process (they clash with BoringSSL).
absl::StatusOr<std::unique_ptr<LoadedPlugin>> LoadPlugin(const std::string& path);

// The directory of sluice's own plugins: "plugins" beside the executable (a build tree), else
// "<exe>/../<libdir>/sluice/plugins" (an install, wherever its prefix was moved), else the
// compiled-in install path.
std::string DefaultPluginDir();

}  // namespace sluice::plugin
