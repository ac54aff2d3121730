#include <stdlib.h>

#include <algorithm>
#include <map>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"
#include "source/plugin/filter.h"
#include "source/plugin/loader.h"
#include "source/plugin/metrics.h"
#include "source/plugin/plugin.h"

namespace sluice::plugin {

void LinkHostFunctions();

namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;

// A loaded plugin and what the host built for it. Process lifetime, like the mapping itself.
struct PluginEntry {
  std::unique_ptr<LoadedPlugin> plugin;
  // Types from the plugin's descriptor sets (sl_on_config_type), when its generated code is not
  // in the host's pool. Created on first use.
  std::unique_ptr<DescriptorPool> pool;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory;
};

absl::Mutex g_plugins_mu;
std::map<std::string, std::unique_ptr<PluginEntry>>& Plugins() {
  static auto* plugins = new std::map<std::string, std::unique_ptr<PluginEntry>>();
  return *plugins;
}

// Loads `path` once per process (keyed by its real path).
absl::StatusOr<PluginEntry*> LoadOnce(const std::string& path) {
  char* real = realpath(path.c_str(), nullptr);
  const std::string key = real != nullptr ? real : path;
  free(real);
  absl::MutexLock lock(&g_plugins_mu);
  auto& slot = Plugins()[key];
  if (slot) return slot.get();
  auto loaded = LoadPlugin(key);
  if (!loaded.ok()) {
    Plugins().erase(key);
    return loaded.status();
  }
  slot = std::make_unique<PluginEntry>();
  slot->plugin = std::move(*loaded);
  return slot.get();
}

std::string_view View(sl_type_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.len);
}

class PluginManagerImpl : public PluginManager {
 public:
  PluginManagerImpl(std::vector<std::string> dirs, std::vector<std::string> clusters,
                    const config::ValueSources& sources, stats::Store& store)
      : dirs_(std::move(dirs)),
        clusters_(std::move(clusters)),
        sources_(sources),
        store_(store),
        metrics_(store) {
    dirs_.push_back(DefaultPluginDir());
    LinkHostFunctions();
  }

  absl::StatusOr<http::StreamFilterFactory> filterFactory(const config::v1::PluginFilter& proto,
                                                          const std::string& name,
                                                          const std::string& path) override {
    auto factory = build(proto, name, path);
    // Its routes' configs for other filters are not built (chainDone): errors about them would
    // only repeat this one.
    if (!factory.ok()) chain_.failed.push_back(name);
    return factory;
  }

  void chainBegin(const std::string& path) override {
    chain_ = Chain();
    chain_.path = path;
  }

  absl::StatusOr<http::StreamFilterFactory> build(const config::v1::PluginFilter& proto,
                                                  const std::string& name,
                                                  const std::string& path) {
    const std::string& file_name = sources_.source();
    const std::string where = absl::StrCat(file_name, file_name.empty() ? "" : ": ", path,
                                           ": filter \"", proto.filter(), "\": ");
    const std::string& plugin_name = proto.plugin().empty() ? proto.filter() : proto.plugin();
    auto file = ResolvePlugin(plugin_name, dirs_);
    if (!file.ok()) return Error(where, file.status().message());
    auto entry = LoadOnce(*file);
    if (!entry.ok()) return Error(where, entry.status().message());
    const LoadedPlugin& plugin = *(*entry)->plugin;
    if (!plugin.providesFilter(proto.filter())) {
      std::vector<std::string> names;
      for (const std::string& n : plugin.filterNames()) {
        names.push_back(log::EscapeUntrusted(n, kMaxFilterNameBytes));
      }
      return Error(where,
                   absl::StrCat("plugin ", plugin.path(), " provides no such filter (it has: ",
                                absl::StrJoin(names, ", "), ")"));
    }
    absl::StatusOr<std::string> bytes;
    {
      crash::PluginCallScope call(name.c_str(), "sl_on_config_type");
      bytes = configBytes(**entry, proto, path, where);
    }
    if (!bytes.ok()) return bytes.status();

    std::vector<std::unique_ptr<sl_type_route>> routes;
    std::vector<PendingRouteConfig> route_configs;
    sl_type_config_host host;
    host.filter_name = name;
    host.metrics = &metrics_;
    host.clusters = &clusters_;
    host.routes = &routes;
    host.route_configs = &route_configs;
    void* plugin_config = nullptr;
    sl_type_result r;
    {
      crash::PluginCallScope call(name.c_str(), "sl_on_config_new");
      r = plugin.hooks().config_new(&host,
                                    sl_type_str{proto.filter().data(), proto.filter().size()},
                                    sl_type_str{bytes->data(), bytes->size()}, &plugin_config);
    }
    if (r != SL_OK) {
      return Error(where, absl::StrCat("the plugin rejected its config: ",
                                       host.error.empty() ? "(no message)" : host.error,
                                       locate(path, host.error), " (plugin ", plugin.path(), ")"));
    }
    auto config = std::make_shared<PluginFilterConfig>(plugin, name, plugin_config, store_);
    crash::AddPluginFilter(plugin.path(), log::EscapeUntrusted(name, kMaxFilterNameBytes));
    if (!routes.empty()) {
      if (plugin.hooks().route_select == nullptr) {
        return Error(where, absl::StrCat("the plugin defines routes but exports no "
                                         "sl_on_route_select (plugin ",
                                         plugin.path(), ")"));
      }
      if (chain_.definer != nullptr) {
        return Error(where, absl::StrCat("only one filter of an http_filters list may define "
                                         "routes, and \"",
                                         chain_.definer->name(), "\" does already"));
      }
      chain_.definer = config.get();
      chain_.definer_path = path;
      config->adoptRoutes(std::move(routes));
      for (auto& c : route_configs) chain_.pending.push_back(std::move(c));
    }
    chain_.filters.push_back({config.get(), *entry, proto.filter(), path});
    return PluginFilterFactory(std::move(config));
  }

  absl::Status chainDone() override {
    Chain chain = std::move(chain_);
    chain_ = Chain();
    // Every error, not just the first: a config with several mistakes is fixed in one go.
    std::vector<std::string> errors;
    for (const PendingRouteConfig& pending : chain.pending) {
      absl::Status s = buildRouteConfig(chain, pending);
      if (!s.ok()) errors.emplace_back(s.message());
    }
    if (errors.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }

 private:
  static absl::Status Error(const std::string& where, absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(where, problem));
  }

  // The http_filters list being built: its plugin filters (by name), the one that defines
  // routes, and the per-route configs its routes carry, built by chainDone.
  struct ChainFilter {
    PluginFilterConfig* config;
    PluginEntry* entry;
    std::string filter;  // the plugin's name for it (`filter`), which its hooks get
    std::string path;
  };
  struct Chain {
    std::string path;
    std::vector<ChainFilter> filters;
    PluginFilterConfig* definer = nullptr;
    std::string definer_path;
    std::vector<PendingRouteConfig> pending;
    // Filters of this list whose config failed (already reported): per-route configs for them
    // are not checked, since "no filter named ..." would be wrong.
    std::vector<std::string> failed;
  };

  // One route's config for one filter of the chain: parsed as that filter's per-route type
  // (errors at the value's own field path and line) and built by its sl_on_route_config_new.
  absl::Status buildRouteConfig(const Chain& chain, const PendingRouteConfig& pending) {
    const std::string& file_name = sources_.source();
    const std::string value_path =
        absl::StrCat(chain.definer_path, ".plugin.typed_config.", pending.field_path);
    const std::string where =
        absl::StrCat(file_name, file_name.empty() ? "" : ": ", chain.definer_path, ": filter \"",
                     chain.definer->name(), "\": ", value_path, ": ");
    const std::string at = sources_.WhereIs(value_path);
    auto fail = [&](absl::string_view problem) { return Error(where, absl::StrCat(problem, at)); };
    // parseTyped's own messages start with the value's path.
    const std::string type_where =
        absl::StrCat(file_name, file_name.empty() ? "" : ": ", chain.definer_path, ": filter \"",
                     chain.definer->name(), "\": ");
    const ChainFilter* target = nullptr;
    std::vector<std::string> names;
    for (const ChainFilter& f : chain.filters) {
      names.push_back(absl::StrCat("\"", f.config->name(), "\""));
      if (f.config->name() != pending.filter_name) continue;
      if (target != nullptr) {
        return fail(absl::StrCat("two filters of this http_filters list are named \"",
                                 pending.filter_name, "\" (", target->path, " and ", f.path,
                                 "): give one a `name` of its own"));
      }
      target = &f;
    }
    if (target == nullptr) {
      if (std::find(chain.failed.begin(), chain.failed.end(), pending.filter_name) !=
          chain.failed.end()) {
        return absl::OkStatus();
      }
      return fail(absl::StrCat("no plugin filter named \"", pending.filter_name,
                               "\" in this http_filters list (it has: ", absl::StrJoin(names, ", "),
                               ")"));
    }
    const LoadedPlugin& plugin = *target->entry->plugin;
    if (plugin.hooks().route_config_new == nullptr) {
      return fail(absl::StrCat("filter \"", pending.filter_name,
                               "\" takes no per-route config (its plugin exports no "
                               "sl_on_route_config_new; plugin ",
                               plugin.path(), ")"));
    }
    google::protobuf::Value value;
    if (pending.format == SL_ROUTE_CONFIG_JSON) {
      const auto status = google::protobuf::util::JsonStringToMessage(pending.value, &value);
      if (!status.ok()) {
        return fail(absl::StrCat("not JSON: ", std::string(status.message())));
      }
    } else if (!value.ParseFromString(pending.value)) {
      return fail("not a serialized google.protobuf.Value");
    }
    // The filter's per-route type: its own hook, or its config's type.
    const std::string& filter = target->filter;
    sl_type_config_type type{};
    type.size = sizeof(type);
    bool typed = false;
    auto type_hook = plugin.hooks().route_config_type != nullptr ? plugin.hooks().route_config_type
                                                                 : plugin.hooks().config_type;
    if (type_hook != nullptr) {
      crash::PluginCallScope call(target->config->name().c_str(), "sl_on_route_config_type");
      typed = type_hook(sl_type_str{filter.data(), filter.size()}, &type) == SL_OK &&
              type.message_type.len != 0;
    }
    std::string bytes;
    if (!typed) {
      const auto status = google::protobuf::util::MessageToJsonString(value, &bytes);
      if (!status.ok()) return fail(std::string(status.message()));
    } else {
      auto parsed = parseTyped(*target->entry, type, value, value_path, type_where);
      if (!parsed.ok()) return parsed.status();
      bytes = std::move(*parsed);
    }
    sl_type_config_host host;
    host.filter_name = target->config->name();
    host.metrics = &metrics_;
    host.clusters = &clusters_;
    void* route_config = nullptr;
    sl_type_result r;
    {
      crash::PluginCallScope call(target->config->name().c_str(), "sl_on_route_config_new");
      r = plugin.hooks().route_config_new(&host, target->config->pluginConfig(),
                                          sl_type_str{filter.data(), filter.size()},
                                          sl_type_str{bytes.data(), bytes.size()}, &route_config);
    }
    if (r != SL_OK) {
      return Error(where, absl::StrCat("filter \"", pending.filter_name,
                                       "\" rejected its per-route config: ",
                                       host.error.empty() ? "(no message)" : host.error, at,
                                       " (plugin ", plugin.path(), ")"));
    }
    target->config->adoptRouteConfig(route_config);
    pending.route->filter_configs.push_back({target->config, route_config});
    return absl::OkStatus();
  }

  // A plugin's message that starts with a field path of its config, as sluice's own do
  // ("virtual_hosts[0].routes[1].route.cluster: unknown cluster ..."), gets the position of that
  // field (or of its closest parent written in the file, down to typed_config itself): " at
  // line N, column M", or "" when the message starts with no such path.
  std::string locate(const std::string& filter_path, std::string_view message) const {
    const size_t end = message.find(": ");
    if (end == std::string_view::npos || end == 0) return "";
    const std::string_view lead = message.substr(0, end);
    for (const char c : lead) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '[' &&
          c != ']') {
        return "";
      }
    }
    const std::string value_path = absl::StrCat(filter_path, ".plugin.typed_config");
    return sources_.WhereIs(
        absl::StrCat(value_path, ".", absl::string_view(lead.data(), lead.size())), value_path);
  }

  // The bytes sl_on_config_new gets: the typed message serialized, or JSON text.
  absl::StatusOr<std::string> configBytes(PluginEntry& entry, const config::v1::PluginFilter& proto,
                                          const std::string& path, const std::string& where) {
    const LoadedPlugin& plugin = *entry.plugin;
    sl_type_config_type type{};
    type.size = sizeof(type);
    bool typed = false;
    if (plugin.hooks().config_type != nullptr) {
      const std::string& filter = proto.filter();
      typed =
          plugin.hooks().config_type(sl_type_str{filter.data(), filter.size()}, &type) == SL_OK &&
          type.message_type.len != 0;
    }
    if (!typed) {
      if (!proto.has_typed_config()) return std::string("{}");
      std::string json;
      const auto status = google::protobuf::util::MessageToJsonString(proto.typed_config(), &json);
      if (!status.ok()) return Error(where, std::string(status.message()));
      return json;
    }
    const std::string value_path = absl::StrCat(path, ".plugin.typed_config");
    return parseTyped(entry, type, proto.has_typed_config() ? &proto.typed_config() : nullptr,
                      value_path, where);
  }

  absl::StatusOr<std::string> parseTyped(PluginEntry& entry, const sl_type_config_type& type,
                                         const google::protobuf::Value& value,
                                         const std::string& value_path, const std::string& where) {
    return parseTyped(entry, type, &value, value_path, where);
  }

  // Parses `value` (none: the type's defaults) as the message `type` names, found in the
  // host's pool or the plugin's descriptor set; "@type" must name it. The serialized message.
  absl::StatusOr<std::string> parseTyped(PluginEntry& entry, const sl_type_config_type& type,
                                         const google::protobuf::Value* value,
                                         const std::string& value_path, const std::string& where) {
    const std::string type_name(View(type.message_type));
    auto desc = resolveType(entry, type_name, View(type.descriptor_set), where);
    if (!desc.ok()) return desc.status();

    if (value != nullptr) {
      const google::protobuf::Value& v = *value;
      if (v.kind_case() != google::protobuf::Value::kStructValue) {
        return Error(where, absl::StrCat(value_path, ": expected a mapping with \"@type\": \"",
                                         "type.googleapis.com/", type_name, "\""));
      }
      const auto& fields = v.struct_value().fields();
      auto it = fields.find("@type");
      if (it == fields.end() || it->second.kind_case() != google::protobuf::Value::kStringValue) {
        return Error(where,
                     absl::StrCat(value_path, ": \"@type\" is required (\"type.googleapis.com/",
                                  type_name, "\")"));
      }
      const std::string& url = it->second.string_value();
      const size_t slash = url.rfind('/');
      if (slash == std::string::npos || url.substr(slash + 1) != type_name) {
        return Error(where, absl::StrCat(value_path, ".@type: \"", url,
                                         "\" is not this filter's config type (",
                                         "type.googleapis.com/", type_name, ")",
                                         sources_.WhereIs(value_path + ".@type", value_path)));
      }
    }
    const google::protobuf::Message* prototype = prototypeOf(entry, *desc);
    std::unique_ptr<google::protobuf::Message> msg(prototype->New());
    if (value != nullptr) {
      absl::Status status = sources_.ParseValueInto(value_path, *value, *msg);
      if (!status.ok()) return status;
    }
    std::string bytes;
    if (!msg->SerializeToString(&bytes)) return Error(where, "cannot serialize the config");
    return bytes;
  }

  absl::StatusOr<const Descriptor*> resolveType(PluginEntry& entry, const std::string& type_name,
                                                std::string_view descriptor_set,
                                                const std::string& where) {
    // The plugin's generated code registered it in the (shared) protobuf library: use that.
    if (const Descriptor* d = DescriptorPool::generated_pool()->FindMessageTypeByName(type_name)) {
      return d;
    }
    if (descriptor_set.empty()) {
      return Error(where, absl::StrCat("config type ", type_name,
                                       " is not registered by the plugin's generated code and the "
                                       "plugin gives no descriptor set for it"));
    }
    absl::MutexLock lock(&g_plugins_mu);
    if (!entry.pool) {
      google::protobuf::FileDescriptorSet set;
      if (!set.ParseFromArray(descriptor_set.data(), static_cast<int>(descriptor_set.size()))) {
        return Error(where, "the plugin's descriptor set is not a serialized FileDescriptorSet");
      }
      // Files the host already has (well-known types, ...) come from its own pool.
      auto pool = std::make_unique<DescriptorPool>(DescriptorPool::generated_pool());
      for (const auto& file : set.file()) {
        if (DescriptorPool::generated_pool()->FindFileByName(file.name()) != nullptr) continue;
        if (pool->BuildFile(file) == nullptr) {
          return Error(where, absl::StrCat("the plugin's descriptor set does not build (file ",
                                           file.name(), ")"));
        }
      }
      entry.pool = std::move(pool);
      entry.factory = std::make_unique<google::protobuf::DynamicMessageFactory>(entry.pool.get());
    }
    const Descriptor* d = entry.pool->FindMessageTypeByName(type_name);
    if (d == nullptr) {
      return Error(
          where, absl::StrCat("config type ", type_name, " is not in the plugin's descriptor set"));
    }
    return d;
  }

  static const google::protobuf::Message* prototypeOf(PluginEntry& entry, const Descriptor* d) {
    if (d->file()->pool() == DescriptorPool::generated_pool()) {
      return google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
    }
    absl::MutexLock lock(&g_plugins_mu);
    return entry.factory->GetPrototype(d);
  }

  std::vector<std::string> dirs_;
  Chain chain_;
  const std::vector<std::string> clusters_;
  const config::ValueSources& sources_;
  stats::Store& store_;
  MetricRegistry metrics_;
};

}  // namespace

PluginManagerPtr CreatePluginManager(std::vector<std::string> dirs,
                                     std::vector<std::string> clusters,
                                     const config::ValueSources& sources, stats::Store& store) {
  return std::make_unique<PluginManagerImpl>(std::move(dirs), std::move(clusters), sources, store);
}

}  // namespace sluice::plugin
