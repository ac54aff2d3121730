// The host side of the plugin ABI, without a server: loading (the version handshake, required
// symbols, bad files), and building plugin filters from config (typed configs from generated
// code and from descriptor sets, errors with file, field path and line, a plugin refusing its
// config). What plugins do to streams is tested against the real binary
// (test/integration/plugin_test.py).

#include "source/plugin/loader.h"

#include <dlfcn.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/config/loader.h"
#include "source/plugin/host_types.h"
#include "source/plugin/plugin.h"

namespace sluice::plugin {
namespace {

using ::testing::HasSubstr;

const std::string kDir = SLUICE_TEST_PLUGIN_DIR;
std::string Plugin(const std::string& name) { return kDir + "/" + name + ".so"; }

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(LoaderTest, LoadsAndListsFilters) {
  auto sdk = LoadPlugin(Plugin("test_filters"));
  ASSERT_TRUE(sdk.ok()) << sdk.status();
  EXPECT_EQ(SL_ABI_VERSION, (*sdk)->version());
  EXPECT_TRUE((*sdk)->providesFilter("headers"));
  EXPECT_TRUE((*sdk)->providesFilter("pause"));
  EXPECT_FALSE((*sdk)->providesFilter("nope"));
  EXPECT_NE(nullptr, (*sdk)->hooks().filter_new);
  EXPECT_NE(nullptr, (*sdk)->hooks().response_body);

  // No sl_on_filter_names: the one filter is named after the file; absent hooks stay null.
  auto noop = LoadPlugin(Plugin("noop"));
  ASSERT_TRUE(noop.ok()) << noop.status();
  EXPECT_EQ(std::vector<std::string>{"noop"}, (*noop)->filterNames());
  EXPECT_EQ(nullptr, (*noop)->hooks().filter_new);
  EXPECT_EQ(nullptr, (*noop)->hooks().response_headers);
  EXPECT_NE(nullptr, (*noop)->hooks().request_headers);
}

// The header's opening comment says which version it is; it must be the one its macros say
// (a minor bump that forgets the comment misleads every plugin author reading it).
TEST(AbiHeaderTest, OpeningCommentNamesTheVersionOfTheMacros) {
  const std::string path = std::string(SLUICE_SOURCE_DIR) + "/api/sluice/plugin/v1/sluice_plugin.h";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::string line;
  std::string first;  // the first line of the comment's text
  while (std::getline(in, line)) {
    if (line == "/*") continue;
    first = line;
    break;
  }
  const std::string expected = absl::StrCat(" * sluice plugin ABI, version ", SL_ABI_VERSION_MAJOR,
                                            ".", SL_ABI_VERSION_MINOR, ":");
  EXPECT_EQ(0u, first.rfind(expected, 0))
      << "the header's first line is \"" << first << "\", the macros say " << SL_ABI_VERSION_MAJOR
      << "." << SL_ABI_VERSION_MINOR;
}

TEST(LoaderTest, RefusesAnotherMajorVersionNamingBothVersionsAndTheFile) {
  auto r = LoadPlugin(Plugin("bad_version"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr(Plugin("bad_version")));
  EXPECT_THAT(Message(r.status()), HasSubstr("built for plugin ABI 2.0"));
  EXPECT_THAT(Message(r.status()),
              HasSubstr("implements plugin ABI " + VersionString(SL_ABI_VERSION)));
}

TEST(LoaderTest, RefusesANewerMinorVersion) {
  auto r = LoadPlugin(Plugin("newer_minor"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()),
              HasSubstr("built for plugin ABI " + VersionString(SL_ABI_VERSION + 1)));
}

TEST(LoaderTest, RefusesAMissingRequiredSymbol) {
  auto r = LoadPlugin(Plugin("no_config_new"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr("missing required symbol sl_on_config_new"));
  EXPECT_THAT(Message(r.status()), HasSubstr(Plugin("no_config_new")));
}

TEST(LoaderTest, RefusesAFileThatIsNotASharedObject) {
  char dir[] = "/tmp/sluice-plugin-test-XXXXXX";
  ASSERT_NE(nullptr, mkdtemp(dir));
  const std::string path = std::string(dir) + "/junk.so";
  std::ofstream(path) << "not an ELF file\n";
  auto r = LoadPlugin(path);
  unlink(path.c_str());
  rmdir(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r.status()), HasSubstr("junk.so: cannot load"));
}

TEST(ResolveTest, SearchesDirsInOrderWithAndWithoutLibAndNamesWhatItTried) {
  auto found = ResolvePlugin("noop", {"/nonexistent", kDir});
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(Plugin("noop"), *found);
  auto path = ResolvePlugin(Plugin("noop"), {});
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(Plugin("noop"), *path);
  auto missing = ResolvePlugin("absent", {"/nonexistent", kDir});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Message(missing.status()), HasSubstr("/nonexistent/absent.so"));
  EXPECT_THAT(Message(missing.status()), HasSubstr(kDir + "/libabsent.so"));
}

// A bootstrap whose only HTTP connection manager holds `filters` (YAML list items, indented
// for their place), parsed as "test.yaml" with its value sources kept.
class ManagerTest : public ::testing::Test {
 protected:
  absl::StatusOr<http::StreamFilterFactory> build(const std::string& filters, int index = 0) {
    const std::string yaml = std::string(
                                 "listeners:\n"
                                 "  - name: l\n"
                                 "    address: {address: 127.0.0.1, port: 0}\n"
                                 "    filters:\n"
                                 "      - http_connection_manager:\n"
                                 "          http_filters:\n") +
                             filters;
    absl::Status parsed =
        config::ParseInto(yaml, config::Format::kYaml, "test.yaml", bootstrap_, &sources_);
    if (!parsed.ok()) return parsed;
    manager_ = CreatePluginManager({kDir}, clusters_, sources_, store_);
    const auto& f =
        bootstrap_.listeners(0).filters(0).http_connection_manager().http_filters(index);
    return manager_->filterFactory(f.plugin(), f.name().empty() ? f.plugin().filter() : f.name(),
                                   "listeners[0].filters[0].http_connection_manager.http_filters[" +
                                       std::to_string(index) + "]");
  }

  std::vector<std::string> clusters_ = {"backend", "canary"};
  config::v1::Bootstrap bootstrap_;
  config::ValueSources sources_;
  stats::Store store_;
  PluginManagerPtr manager_;
};

TEST_F(ManagerTest, BuildsATypedFilterFromGeneratedCode) {
  auto f = build(
      "            - plugin:\n"
      "                filter: headers\n"
      "                plugin: test_filters\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.plugin.HeaderMutation\n"
      "                  response_set: [{name: x-a, value: b}]\n");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_GT(f->inPlaceSize(), 0u);  // built in each stream's own block
}

TEST_F(ManagerTest, ABadTypedConfigNamesTheFileTheFieldPathAndTheLine) {
  auto f = build(
      "            - plugin:\n"
      "                filter: headers\n"
      "                plugin: test_filters\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.plugin.HeaderMutation\n"
      "                  response_sett: [{name: x-a, value: b}]\n");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Message(f.status()), HasSubstr("test.yaml: "));
  EXPECT_THAT(Message(f.status()),
              HasSubstr("listeners[0].filters[0].http_connection_manager.http_filters[0].plugin."
                        "typed_config.response_sett: unknown field"));
  EXPECT_THAT(Message(f.status()), HasSubstr("response_set"));  // did you mean
  EXPECT_THAT(Message(f.status()), HasSubstr("at line 12, column 19"));

  auto g = build(
      "            - plugin:\n"
      "                filter: pause\n"
      "                plugin: test_filters\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.plugin.Pause\n"
      "                  delay: soon\n");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(Message(g.status()), HasSubstr("plugin.typed_config.delay: "));
  EXPECT_THAT(Message(g.status()), HasSubstr("at line 12"));
}

TEST_F(ManagerTest, TheTypeMustBeNamedAndMustBeTheFiltersType) {
  auto missing = build(
      "            - plugin:\n"
      "                filter: deny\n"
      "                plugin: test_filters\n"
      "                typed_config: {header: x, status: 403}\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Message(missing.status()), HasSubstr("\"@type\" is required"));
  EXPECT_THAT(Message(missing.status()), HasSubstr("sluice.test.plugin.Deny"));

  auto wrong = build(
      "            - plugin:\n"
      "                filter: deny\n"
      "                plugin: test_filters\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.plugin.Pause\n");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(Message(wrong.status()), HasSubstr("is not this filter's config type"));
}

TEST_F(ManagerTest, APluginRefusingItsConfigIsReportedWithItsMessage) {
  auto f = build(
      "            - plugin:\n"
      "                filter: headers\n"
      "                plugin: test_filters\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.plugin.HeaderMutation\n"
      "                  response_set: [{name: forbidden, value: b}]\n");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Message(f.status()), HasSubstr("filter \"headers\""));
  EXPECT_THAT(Message(f.status()),
              HasSubstr("the plugin rejected its config: response_set: \"forbidden\""));
  // A message that starts with a field path of the plugin's config gets that field's position.
  EXPECT_THAT(Message(f.status()), HasSubstr(" at line 12, column "));
}

TEST_F(ManagerTest, AFilterThePluginDoesNotProvideOrAPluginThatIsNotThere) {
  auto f = build("            - plugin: {filter: nope, plugin: test_filters}\n");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Message(f.status()), HasSubstr("provides no such filter (it has: headers, pause"));
  auto g = build("            - plugin: {filter: not_a_plugin}\n");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(Message(g.status()), HasSubstr("plugin \"not_a_plugin\" not found (tried"));
  auto h = build("            - plugin: {filter: bad_version}\n");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(Message(h.status()), HasSubstr("built for plugin ABI 2.0"));
}

TEST_F(ManagerTest, TypedConfigFromAnEmbeddedDescriptorSet) {
  auto ok = build(
      "            - plugin:\n"
      "                filter: tag\n"
      "                plugin: described\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.described.Tag\n"
      "                  header: x-tag\n"
      "                  value: v\n"
      "                  unused_delay: 1.5s\n");
  ASSERT_TRUE(ok.ok()) << ok.status();

  auto bad = build(
      "            - plugin:\n"
      "                filter: tag\n"
      "                plugin: described\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.described.Tag\n"
      "                  header: x-tag\n"
      "                  unused_delay: [1]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Message(bad.status()), HasSubstr("plugin.typed_config.unused_delay: "));
  EXPECT_THAT(Message(bad.status()), HasSubstr("at line 13"));

  // The plugin's own check (a C plugin reading the serialized message).
  auto refused = build(
      "            - plugin:\n"
      "                filter: tag\n"
      "                plugin: described\n"
      "                typed_config:\n"
      "                  \"@type\": type.googleapis.com/sluice.test.described.Tag\n"
      "                  value: v\n");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(Message(refused.status()), HasSubstr("header is required"));
}

TEST_F(ManagerTest, MetricsDeclaredAtConfigTimeAppearUnderThePluginsName) {
  auto f = build(
      "            - name: counting\n"
      "              plugin: {filter: count, plugin: test_filters}\n");
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string stats = store_.dumpText();
  EXPECT_THAT(stats, HasSubstr("plugin.counting.requests 0\n"));
  EXPECT_THAT(stats, HasSubstr("plugin.counting.active 0\n"));
  EXPECT_THAT(stats, HasSubstr("plugin.counting.path_length.count 0\n"));
  EXPECT_THAT(stats, HasSubstr("plugin.counting.failures 0\n"));
}

// ABI 1.2: a plugin sees the config's clusters at config time (the test plugin reports what
// it saw as its config error).
TEST_F(ManagerTest, APluginSeesTheConfigsClustersAtConfigTime) {
  auto f = build(
      "            - plugin:\n"
      "                filter: clusters\n"
      "                plugin: test_filters\n"
      "                typed_config: \"canary,nope\"\n");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(Message(f.status()),
              HasSubstr("the plugin rejected its config: saw clusters: backend canary; canary "
                        "exists; nope unknown (plugin "));

  clusters_.clear();
  auto none = build(
      "            - plugin:\n"
      "                filter: clusters\n"
      "                plugin: test_filters\n"
      "                typed_config: \"backend\"\n");
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(Message(none.status()),
              HasSubstr("the plugin rejected its config: saw clusters:; backend unknown (plugin "));
}

// The versioning promise: plugins built for older minors of the same major still load and
// build their configs (they never call what came later).
TEST_F(ManagerTest, PluginsBuiltForOlderMinorVersionsStillLoad) {
  for (const char* name : {"abi_1_0", "abi_1_1", "abi_1_2", "abi_1_3"}) {
    SCOPED_TRACE(name);
    auto loaded = LoadPlugin(Plugin(name));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(0x10000u + static_cast<uint32_t>(name[6] - '0'), (*loaded)->version());
    auto f = build(std::string("            - plugin: {filter: ") + name + "}\n");
    EXPECT_TRUE(f.ok()) << f.status();
  }
  static_assert(SL_ABI_VERSION == 0x10004u, "a minor bump: add its plugin to this test");
}

// A plugin that brings a library clashing with sluice's own into the process is refused at
// load, with the library named (its constructor loads it, as a DT_NEEDED dependency would).
TEST(LoaderTest, RefusesPluginsThatBringOpenSslOrAnotherProtobuf) {
  if (access("/usr/lib/x86_64-linux-gnu/libssl.so.3", F_OK) == 0 ||
      access("/lib/x86_64-linux-gnu/libssl.so.3", F_OK) == 0) {
    auto ssl = LoadPlugin(Plugin("brings_openssl"));
    ASSERT_FALSE(ssl.ok());
    EXPECT_THAT(Message(ssl.status()), HasSubstr("it brought OpenSSL into the process"));
    EXPECT_THAT(Message(ssl.status()), HasSubstr("libssl.so.3"));
  }
  auto pb = LoadPlugin(Plugin("brings_protobuf"));
  ASSERT_FALSE(pb.ok());
  EXPECT_THAT(Message(pb.status()),
              HasSubstr("it brought another protobuf runtime into the process ("));
  // sluice's own runtime (the test binary's) is named as the one to build against.
  EXPECT_THAT(Message(pb.status()), HasSubstr("libprotobuf.so.99) beside sluice's (/"));
}

TEST(HostSymbolsTest, TheHostFunctionsAreExportedForPlugins) {
  // A plugin binds sl_host_* at dlopen: they must be in this binary's dynamic symbol table.
  void* self = dlopen(nullptr, RTLD_NOW);
  ASSERT_NE(nullptr, self);
  EXPECT_NE(nullptr, dlsym(self, "sl_host_header_get"));
  EXPECT_NE(nullptr, dlsym(self, "sl_host_send_response"));
  EXPECT_NE(nullptr, dlsym(self, "sl_host_set_upstream"));
  EXPECT_NE(nullptr, dlsym(self, "sl_host_config_clusters"));
  EXPECT_NE(nullptr, dlsym(self, "sl_host_config_cluster_exists"));
}

}  // namespace
}  // namespace sluice::plugin

namespace sluice::plugin {
namespace {

// sl_host_config_route_define checks what the header promises it refuses (SL_ERR_INVALID), and
// copies what it keeps (the plugin's buffers may go away after the call).
TEST(RouteDefineTest, RefusesInvalidDefinitionsAndCopiesValidOnes) {
  std::vector<std::unique_ptr<sl_type_route>> routes;
  std::vector<PendingRouteConfig> pending;
  sl_type_config_host host;
  host.filter_name = "router";
  host.routes = &routes;
  host.route_configs = &pending;

  auto str = [](const std::string& s) { return sl_type_str{s.data(), s.size()}; };
  std::string name = "v/r", key = "team", value = "core", filter = "auth", cfg = "{}",
              field = "virtual_hosts[0].routes[0].typed_per_filter_config[\"auth\"]";
  sl_type_header md{str(key), str(value)};
  sl_type_route_filter_config fc{};
  fc.size = sizeof(fc);
  fc.filter_name = str(filter);
  fc.value = str(cfg);
  fc.format = SL_ROUTE_CONFIG_JSON;
  fc.field_path = str(field);
  sl_type_route_def def{};
  def.size = sizeof(def);
  def.name = str(name);
  int data = 0;
  def.data = &data;
  def.metadata = &md;
  def.metadata_count = 1;
  def.filter_configs = &fc;
  def.filter_config_count = 1;
  const sl_type_route* route = nullptr;
  ASSERT_EQ(SL_OK, sl_host_config_route_define(&host, &def, &route));
  ASSERT_EQ(1u, routes.size());
  EXPECT_EQ(routes[0].get(), route);
  // Copied: the plugin's strings may change or go.
  name = "changed";
  value = "changed";
  cfg = "changed";
  EXPECT_EQ("v/r", routes[0]->name);
  EXPECT_EQ(&data, routes[0]->data);
  ASSERT_EQ(1u, routes[0]->metadata.size());
  EXPECT_EQ("core", routes[0]->metadata[0].second);
  ASSERT_EQ(1u, pending.size());
  EXPECT_EQ("auth", pending[0].filter_name);
  EXPECT_EQ("{}", pending[0].value);
  EXPECT_EQ(field, pending[0].field_path);

  auto refused = [&](auto mutate) {
    sl_type_route_def d = def;
    sl_type_header m = md;
    sl_type_route_filter_config f = fc;
    sl_type_route_filter_config two[2] = {fc, fc};
    d.metadata = &m;
    d.filter_configs = &f;
    mutate(d, m, f, two);
    const size_t before = routes.size();
    const sl_type_route* out = nullptr;
    const sl_type_result r = sl_host_config_route_define(&host, &d, &out);
    EXPECT_EQ(before, routes.size());
    return r;
  };
  const std::string empty, crlf = "a\r\nb";
  EXPECT_EQ(SL_ERR_INVALID, refused([&](auto&, auto& m, auto&, auto*) { m.name = str(empty); }));
  EXPECT_EQ(SL_ERR_INVALID, refused([&](auto&, auto& m, auto&, auto*) { m.value = str(crlf); }));
  EXPECT_EQ(SL_ERR_INVALID, refused([&](auto&, auto&, auto& f, auto*) { f.format = 7; }));
  EXPECT_EQ(SL_ERR_INVALID,
            refused([&](auto&, auto&, auto& f, auto*) { f.filter_name = str(empty); }));
  EXPECT_EQ(SL_ERR_INVALID, refused([&](auto& d, auto&, auto&, auto* two) {
              d.filter_configs = two;  // the same filter twice
              d.filter_config_count = 2;
            }));
  EXPECT_EQ(SL_ERR_INVALID, refused([&](auto& d, auto&, auto&, auto*) {
              d.metadata = nullptr;  // a count without a list
            }));
  // Outside sl_on_config_new (no route list): not now.
  sl_type_config_host other;
  EXPECT_EQ(SL_ERR_STATE, sl_host_config_route_define(&other, &def, &route));
}

}  // namespace
}  // namespace sluice::plugin
