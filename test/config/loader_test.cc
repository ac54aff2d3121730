#include "source/config/loader.h"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "source/config/bootstrap.h"

namespace sluice::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kTestdata = SLUICE_TESTDATA_DIR;

// Debian's abseil has its own absl::string_view, which gmock's string matchers do not take.
std::string Msg(const absl::Status& status) { return std::string(status.message()); }

absl::Status Parse(std::string_view yaml, v1::Bootstrap& bootstrap) {
  return ParseInto(yaml, Format::kYaml, "test.yaml", bootstrap);
}

v1::Bootstrap ParseOk(std::string_view yaml) {
  v1::Bootstrap bootstrap;
  const absl::Status status = Parse(yaml, bootstrap);
  EXPECT_TRUE(status.ok()) << status;
  return bootstrap;
}

// The error message of parsing `yaml`, which must fail.
std::string ParseError(std::string_view yaml) {
  v1::Bootstrap bootstrap;
  const absl::Status status = Parse(yaml, bootstrap);
  EXPECT_FALSE(status.ok()) << "parsed: " << bootstrap.DebugString();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(Msg(status));
}

// The error message of validating `yaml`, which must parse and then fail validation.
std::string ValidationError(std::string_view yaml) {
  const v1::Bootstrap bootstrap = ParseOk(yaml);
  const absl::Status status = ValidateBootstrap(bootstrap, "test.yaml");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(Msg(status));
}

// A valid config that the validation tests break in one place at a time.
constexpr std::string_view kValid = R"(
listeners:
  - name: ingress
    address: {address: 0.0.0.0, port: 10000}
    filters:
      - tcp_proxy: {cluster: backend}
clusters:
  - name: backend
    endpoints:
      - address: {address: 127.0.0.1, port: 8080}
)";

// ---------------------------------------------------------------------------------------------
// Formats and files.

TEST(FormatForPathTest, KnownExtensions) {
  EXPECT_EQ(*FormatForPath("a.yaml"), Format::kYaml);
  EXPECT_EQ(*FormatForPath("dir.d/a.yml"), Format::kYaml);
  EXPECT_EQ(*FormatForPath("A.YAML"), Format::kYaml);
  EXPECT_EQ(*FormatForPath("a.json"), Format::kJson);
  EXPECT_EQ(*FormatForPath("a.pb.txt"), Format::kTextProto);
  EXPECT_EQ(*FormatForPath("a.pbtxt"), Format::kTextProto);
  EXPECT_EQ(*FormatForPath("a.textproto"), Format::kTextProto);
  EXPECT_EQ(*FormatForPath("a.txtpb"), Format::kTextProto);
}

TEST(FormatForPathTest, UnknownExtensionNamesThePath) {
  const absl::StatusOr<Format> format = FormatForPath("conf/sluice.ini");
  ASSERT_FALSE(format.ok());
  EXPECT_EQ(format.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(format.status()),
              AllOf(StartsWith("conf/sluice.ini: unknown config file extension"),
                    HasSubstr(".yaml"), HasSubstr(".textproto")));
  EXPECT_FALSE(FormatForPath("yaml").ok());
  EXPECT_FALSE(FormatForPath("a.txt").ok());
}

TEST(LoadFileTest, UnknownExtension) {
  v1::Bootstrap bootstrap;
  const absl::Status status = LoadFile(kTestdata + "/config.ini", bootstrap);
  EXPECT_THAT(Msg(status), StartsWith(kTestdata + "/config.ini: unknown config file extension"));
}

TEST(LoadFileTest, MissingFile) {
  v1::Bootstrap bootstrap;
  const std::string path = kTestdata + "/does_not_exist.yaml";
  const absl::Status status = LoadFile(path, bootstrap);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(status), AllOf(StartsWith(path + ": "), HasSubstr("No such file")));
}

TEST(LoadFileTest, DirectoryIsAnError) {
  const std::string dir = ::testing::TempDir() + "/sluice_loader_test_dir.yaml";
  std::filesystem::create_directories(dir);
  v1::Bootstrap bootstrap;
  const absl::Status status = LoadFile(dir, bootstrap);
  std::filesystem::remove(dir);
  EXPECT_EQ(Msg(status), dir + ": is a directory, not a config file");
}

TEST(LoadFileTest, YamlJsonAndTextProtoLoadTheSameBootstrap) {
  v1::Bootstrap yaml;
  v1::Bootstrap json;
  v1::Bootstrap text;
  ASSERT_TRUE(LoadFile(kTestdata + "/good.yaml", yaml).ok())
      << LoadFile(kTestdata + "/good.yaml", yaml);
  ASSERT_TRUE(LoadFile(kTestdata + "/good.json", json).ok())
      << LoadFile(kTestdata + "/good.json", json);
  ASSERT_TRUE(LoadFile(kTestdata + "/good.pb.txt", text).ok())
      << LoadFile(kTestdata + "/good.pb.txt", text);

  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(yaml, json)) << diff;
  diff.clear();
  EXPECT_TRUE(differencer.Compare(yaml, text)) << diff;

  // And the content is what the files say, not three equally empty messages.
  ASSERT_EQ(yaml.listeners_size(), 2);
  const v1::Listener& ingress = yaml.listeners(0);
  EXPECT_EQ(ingress.name(), "ingress");
  EXPECT_EQ(ingress.address().address(), "0.0.0.0");
  EXPECT_EQ(ingress.address().port(), 10000u);
  EXPECT_TRUE(ingress.has_reuse_port());
  EXPECT_TRUE(ingress.reuse_port().value());
  EXPECT_TRUE(ingress.has_tcp_nodelay());
  EXPECT_FALSE(ingress.tcp_nodelay().value());
  EXPECT_EQ(ingress.tcp_keepalive().idle_time().seconds(), 60);
  EXPECT_EQ(ingress.filters(0).tcp_proxy().idle_timeout().seconds(), 3600);
  EXPECT_TRUE(yaml.listeners(1).filters(0).tcp_proxy().has_idle_timeout());
  EXPECT_EQ(yaml.clusters(0).connect_timeout().nanos(), 250'000'000);
  EXPECT_EQ(yaml.drain_timeout().seconds(), 1);
  EXPECT_EQ(yaml.drain_timeout().nanos(), 500'000'000);
  EXPECT_EQ(yaml.clusters(0).endpoints_size(), 2);

  EXPECT_TRUE(ValidateBootstrap(yaml, "good.yaml").ok()) << ValidateBootstrap(yaml, "good.yaml");
  const absl::StatusOr<v1::Bootstrap> loaded = LoadBootstrap(kTestdata + "/good.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*loaded, yaml));
}

// configs/ holds the examples users copy; each must load and validate, so that they never rot.
TEST(LoadFileTest, EveryExampleConfigLoadsAndValidates) {
  const std::filesystem::path dir = SLUICE_CONFIGS_DIR;
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) GTEST_SKIP() << dir << " does not exist";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || !FormatForPath(entry.path().string()).ok()) continue;
    SCOPED_TRACE(entry.path().string());
    const absl::StatusOr<v1::Bootstrap> bootstrap = LoadBootstrap(entry.path().string());
    EXPECT_TRUE(bootstrap.ok()) << bootstrap.status();
    ++count;
  }
  RecordProperty("configs", count);
}

TEST(LoadFileTest, UnknownFieldInRepeatedMessageNamesFileLineAndPath) {
  v1::Bootstrap bootstrap;
  const std::string path = kTestdata + "/unknown_nested_field.yaml";
  const absl::Status status = LoadFile(path, bootstrap);
  EXPECT_EQ(Msg(status),
            path +
                ": listeners[0].filters[0].tcp_proxyy: unknown field (no such field in "
                "sluice.config.v1.NetworkFilter; did you mean \"tcp_proxy\"?) at line 5, "
                "column 9");
}

TEST(LoadFileTest, MalformedYamlHasLineAndColumn) {
  v1::Bootstrap bootstrap;
  const std::string path = kTestdata + "/malformed.yaml";
  const absl::Status status = LoadFile(path, bootstrap);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(status), StartsWith(path + ":4:"));
  EXPECT_THAT(Msg(status), HasSubstr("end of sequence flow not found"));
}

TEST(LoadFileTest, JsonTypeErrorHasPathAndLine) {
  v1::Bootstrap bootstrap;
  const std::string path = kTestdata + "/bad_type.json";
  const absl::Status status = LoadFile(path, bootstrap);
  EXPECT_EQ(Msg(status), path +
                             ": listeners[0].address.port: expected an unsigned integer, "
                             "got \"abc\" at line 3, column 67");
}

TEST(LoadFileTest, TextProtoErrorHasLineAndColumn) {
  v1::Bootstrap bootstrap;
  const std::string path = kTestdata + "/bad.pbtxt";
  const absl::Status status = LoadFile(path, bootstrap);
  EXPECT_THAT(Msg(status), AllOf(StartsWith(path + ":3:"), HasSubstr("adress")));
}

TEST(LoadBootstrapTest, ReportsValidationErrorsOfTheFile) {
  const std::string path = kTestdata + "/invalid.yaml";
  const absl::StatusOr<v1::Bootstrap> bootstrap = LoadBootstrap(path);
  ASSERT_FALSE(bootstrap.ok());
  const std::vector<std::string> lines = absl::StrSplit(Msg(bootstrap.status()), '\n');
  ASSERT_EQ(lines.size(), 3u) << bootstrap.status();
  EXPECT_THAT(lines[0], StartsWith(path + ": listeners[0].address.address: \"localhost\""));
  EXPECT_THAT(lines[1], StartsWith(path + ": listeners[0].filters[0].tcp_proxy.cluster: unknown "
                                          "cluster \"nowhere\""));
  // Semantic errors end with the position of the field, as parse errors do.
  EXPECT_THAT(lines[0], HasSubstr("(names are not resolved) at line 4, column 24"));
  EXPECT_EQ(lines[2], path +
                          ": clusters[0].endpoints: at least one endpoint is required at line 9, "
                          "column 16");
}

// ---------------------------------------------------------------------------------------------
// Typing of YAML scalars by the field they land in.

TEST(ParseTest, ScalarsTakeTheTypeOfTheirField) {
  const v1::Bootstrap bootstrap = ParseOk(R"(
listeners:
  - name: 123          # a string field: the text, not a number
    address: {address: 127.0.0.1, port: "8080"}   # a quoted number for a uint32 is fine
    reuse_port: true
    tcp_nodelay: FALSE
    filters:
      - name: yes      # YAML 1.1 would make this a boolean
        tcp_proxy: {cluster: null_cluster}
clusters:
  - name: 1.50
    endpoints: []
max_connections: +0042
)");
  ASSERT_EQ(bootstrap.listeners_size(), 1);
  EXPECT_EQ(bootstrap.listeners(0).name(), "123");
  EXPECT_EQ(bootstrap.listeners(0).address().address(), "127.0.0.1");
  EXPECT_EQ(bootstrap.listeners(0).address().port(), 8080u);
  EXPECT_TRUE(bootstrap.listeners(0).reuse_port().value());
  EXPECT_TRUE(bootstrap.listeners(0).has_tcp_nodelay());
  EXPECT_FALSE(bootstrap.listeners(0).tcp_nodelay().value());
  EXPECT_EQ(bootstrap.listeners(0).filters(0).name(), "yes");
  EXPECT_EQ(bootstrap.clusters(0).name(), "1.50");
  EXPECT_EQ(bootstrap.max_connections(), 42u);
}

TEST(ParseTest, AcceptsJsonNames) {
  const v1::Bootstrap bootstrap = ParseOk(R"(
maxConnections: 7
drainTimeout: 3s
listeners:
  - perConnectionBufferLimitBytes: 4096
    maxAcceptsPerEvent: 8
)");
  EXPECT_EQ(bootstrap.max_connections(), 7u);
  EXPECT_EQ(bootstrap.drain_timeout().seconds(), 3);
  EXPECT_EQ(bootstrap.listeners(0).per_connection_buffer_limit_bytes(), 4096u);
  EXPECT_EQ(bootstrap.listeners(0).max_accepts_per_event(), 8u);
}

TEST(ParseTest, Durations) {
  struct Case {
    std::string_view text;
    int64_t seconds;
    int32_t nanos;
  };
  const Case cases[] = {
      {"10s", 10, 0},
      {"0.5s", 0, 500'000'000},
      {"1.5s", 1, 500'000'000},
      {"\"2s\"", 2, 0},
      {"250ms", 0, 250'000'000},
      {"5m", 300, 0},
      {"1h", 3600, 0},
      {"1h30m", 5400, 0},
      {"1us", 0, 1000},
      {"7ns", 0, 7},
      {"0s", 0, 0},
      {"-1.5s", -1, -500'000'000},
      {".25s", 0, 250'000'000},
      {"1.000000001s", 1, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const v1::Bootstrap bootstrap = ParseOk(std::string("drain_timeout: ") + std::string(c.text));
    EXPECT_TRUE(bootstrap.has_drain_timeout());
    EXPECT_EQ(bootstrap.drain_timeout().seconds(), c.seconds);
    EXPECT_EQ(bootstrap.drain_timeout().nanos(), c.nanos);
  }
}

TEST(ParseTest, EnumByNameOrNumber) {
  EXPECT_EQ(ParseOk("clusters: [{lb_policy: ROUND_ROBIN}]").clusters(0).lb_policy(),
            v1::Cluster::ROUND_ROBIN);
  EXPECT_EQ(ParseOk("clusters: [{lb_policy: 0}]").clusters(0).lb_policy(),
            v1::Cluster::ROUND_ROBIN);
}

TEST(ParseTest, NullLeavesAFieldUnsetAndAnEmptyDocumentIsAnEmptyMessage) {
  const v1::Bootstrap bootstrap = ParseOk("admin:\nconcurrency: ~\nlisteners: null\n");
  EXPECT_FALSE(bootstrap.has_admin());
  EXPECT_EQ(bootstrap.concurrency(), 0u);
  EXPECT_EQ(ParseOk("").ByteSizeLong(), 0u);
  EXPECT_EQ(ParseOk("# only a comment\n").ByteSizeLong(), 0u);
  v1::Bootstrap json;
  EXPECT_TRUE(ParseInto("{}", Format::kJson, "test.json", json).ok());
}

TEST(ParseTest, ParseReplacesThePreviousContent) {
  v1::Bootstrap bootstrap;
  ASSERT_TRUE(Parse("concurrency: 3", bootstrap).ok());
  ASSERT_TRUE(Parse("max_connections: 5", bootstrap).ok());
  EXPECT_EQ(bootstrap.concurrency(), 0u);
  EXPECT_EQ(bootstrap.max_connections(), 5u);
}

TEST(ParseTest, MergeKeysAndAnchors) {
  const v1::Bootstrap bootstrap = ParseOk(R"(
clusters:
  - &base
    name: a
    connect_timeout: 1s
    endpoints: [{address: {address: 127.0.0.1, port: 1}}]
  - <<: *base
    name: b
)");
  ASSERT_EQ(bootstrap.clusters_size(), 2);
  EXPECT_EQ(bootstrap.clusters(1).name(), "b");
  EXPECT_EQ(bootstrap.clusters(1).connect_timeout().seconds(), 1);
  EXPECT_EQ(bootstrap.clusters(1).endpoints(0).address().port(), 1u);
}

TEST(ParseTest, JsonContent) {
  v1::Bootstrap bootstrap;
  const absl::Status status = ParseInto(
      "{\"concurrency\": 4, \"listeners\": [{\"name\": \"x\\u00e9\", \"reuse_port\": false}]}",
      Format::kJson, "inline.json", bootstrap);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(bootstrap.concurrency(), 4u);
  EXPECT_EQ(bootstrap.listeners(0).name(), "x\xc3\xa9");
  EXPECT_FALSE(bootstrap.listeners(0).reuse_port().value());
}

// ---------------------------------------------------------------------------------------------
// Parse errors: each names the source and the exact field path.

TEST(ParseErrorTest, UnknownTopLevelField) {
  EXPECT_EQ(ParseError("concurrency: 1\nlistenerz: []\n"),
            "test.yaml: listenerz: unknown field (no such field in sluice.config.v1.Bootstrap; "
            "did you mean \"listeners\"?) at line 2, column 1");
  EXPECT_THAT(ParseError("zzz: 1"), StartsWith("test.yaml: zzz: unknown field (no such field in "
                                               "sluice.config.v1.Bootstrap) at line 1"));
}

TEST(ParseErrorTest, UnknownFieldNestedInRepeatedMessage) {
  EXPECT_THAT(ParseError(R"(
clusters:
  - name: a
  - name: b
    endpoints:
      - address: {address: 127.0.0.1, prot: 80}
)"),
              StartsWith("test.yaml: clusters[1].endpoints[0].address.prot: unknown field (no "
                         "such field in sluice.config.v1.SocketAddress; did you mean \"port\"?)"));
}

TEST(ParseErrorTest, StringForUint32) {
  EXPECT_EQ(ParseError("listeners:\n  - address: {port: abc}\n"),
            "test.yaml: listeners[0].address.port: expected an unsigned integer, got \"abc\" at "
            "line 2, column 21");
  EXPECT_THAT(ParseError("concurrency: 1.5"),
              StartsWith("test.yaml: concurrency: expected an unsigned integer, got \"1.5\""));
}

TEST(ParseErrorTest, ListForMessage) {
  EXPECT_THAT(ParseError("admin: [1, 2]"),
              StartsWith("test.yaml: admin: expected a mapping (sluice.config.v1.Admin), got a "
                         "list at line 1, column 8"));
}

TEST(ParseErrorTest, MappingForString) {
  EXPECT_THAT(ParseError("listeners:\n  - name: {first: a}\n"),
              StartsWith("test.yaml: listeners[0].name: expected a string, got a mapping"));
}

TEST(ParseErrorTest, ScalarForRepeatedAndNullInList) {
  EXPECT_THAT(ParseError("listeners: ingress"),
              StartsWith("test.yaml: listeners: expected a list, got \"ingress\""));
  EXPECT_THAT(ParseError("listeners: [~]"),
              StartsWith("test.yaml: listeners[0]: expected a mapping (sluice.config.v1.Listener), "
                         "got null"));
}

TEST(ParseErrorTest, NegativeAndOutOfRangeNumbers) {
  EXPECT_THAT(ParseError("concurrency: -1"),
              StartsWith("test.yaml: concurrency: expected an unsigned integer, got \"-1\""));
  EXPECT_THAT(ParseError("concurrency: 5000000000"),
              StartsWith("test.yaml: concurrency: expected an unsigned 32-bit integer "
                         "(0..4294967295), got \"5000000000\""));
  // In range for the type: a port's own range is validation's business.
  EXPECT_EQ(ParseOk("listeners: [{address: {port: 70000}}]").listeners(0).address().port(), 70000u);
}

TEST(ParseErrorTest, BadBooleans) {
  EXPECT_THAT(ParseError("listeners: [{reuse_port: yes}]"),
              StartsWith("test.yaml: listeners[0].reuse_port: expected a boolean (true or false), "
                         "got \"yes\""));
  EXPECT_THAT(ParseError("listeners: [{reuse_port: {value: true}}]"),
              StartsWith("test.yaml: listeners[0].reuse_port: expected a boolean (true or false), "
                         "got a mapping"));
}

TEST(ParseErrorTest, BadDurations) {
  EXPECT_THAT(ParseError("drain_timeout: 10"),
              StartsWith("test.yaml: drain_timeout: expected a duration with a unit, like "
                         "\"10s\""));
  EXPECT_THAT(ParseError("drain_timeout: 10 minutes"),
              StartsWith("test.yaml: drain_timeout: expected a duration like \"10s\""));
  EXPECT_THAT(ParseError("drain_timeout: 10d"),
              StartsWith("test.yaml: drain_timeout: expected a duration like"));
  EXPECT_THAT(ParseError("drain_timeout: inf"),
              StartsWith("test.yaml: drain_timeout: expected a duration like"));
  EXPECT_THAT(ParseError("drain_timeout: 0.1ns"),
              StartsWith("test.yaml: drain_timeout: duration is finer than a nanosecond"));
  EXPECT_THAT(ParseError("drain_timeout: 100000000000h"),
              StartsWith("test.yaml: drain_timeout: duration out of range"));
  EXPECT_THAT(ParseError("drain_timeout: {seconds: 1}"),
              StartsWith("test.yaml: drain_timeout: expected a duration like \"10s\", got a "
                         "mapping"));
  EXPECT_THAT(ParseError("clusters: [{connect_timeout: 5 s}]"),
              StartsWith("test.yaml: clusters[0].connect_timeout: expected a duration"));
}

TEST(ParseErrorTest, BadEnum) {
  EXPECT_THAT(ParseError("clusters:\n  - lb_policy: FASTEST\n"),
              StartsWith("test.yaml: clusters[0].lb_policy: expected one of ROUND_ROBIN, "
                         "LEAST_REQUEST, RANDOM, MAGLEV (enum sluice.config.v1.Cluster.LbPolicy), "
                         "got \"FASTEST\" at line 2"));
  EXPECT_THAT(ParseError("clusters: [{lb_policy: 7}]"),
              StartsWith("test.yaml: clusters[0].lb_policy: expected one of ROUND_ROBIN"));
}

TEST(ParseErrorTest, DuplicateKeys) {
  EXPECT_EQ(ParseError("concurrency: 1\nconcurrency: 2\n"),
            "test.yaml: concurrency: duplicate key (first at line 1, column 1) at line 2, "
            "column 1");
  EXPECT_THAT(ParseError("listeners:\n  - name: a\n    name: b\n"),
              StartsWith("test.yaml: listeners[0].name: duplicate key (first at line 2"));
  // One field under both of its names is a duplicate too.
  EXPECT_THAT(ParseError("max_connections: 1\nmaxConnections: 2\n"),
              StartsWith("test.yaml: maxConnections: field \"max_connections\" is set twice"));
  // JSON too.
  v1::Bootstrap bootstrap;
  EXPECT_THAT(Msg(ParseInto("{\"concurrency\": 1, \"concurrency\": 2}", Format::kJson, "x.json",
                            bootstrap)),
              StartsWith("x.json: concurrency: duplicate key"));
}

TEST(ParseErrorTest, MalformedYamlHasLineNumber) {
  EXPECT_THAT(ParseError("listeners:\n  - name: a\n   address: b\n"), StartsWith("test.yaml:3:"));
  EXPECT_THAT(ParseError("a: [1, 2\n"), StartsWith("test.yaml:"));
  EXPECT_THAT(ParseError("concurrency: 1\n---\nconcurrency: 2\n"),
              StartsWith("test.yaml:3:1: a second YAML document"));
  EXPECT_THAT(ParseError("- 1\n- 2\n"),
              StartsWith("test.yaml: expected a mapping (sluice.config.v1.Bootstrap), got a list"));
}

TEST(ParseErrorTest, MalformedJson) {
  v1::Bootstrap bootstrap;
  EXPECT_THAT(
      Msg(ParseInto("{\"concurrency\": 1,\n \"x\": [}", Format::kJson, "bad.json", bootstrap)),
      StartsWith("bad.json:2:"));
}

TEST(ParseErrorTest, ReportsEveryProblemNotOnlyTheFirst) {
  const std::string error = ParseError(R"(
listeners:
  - name: a
    address: {address: 0.0.0.0, port: -5}
    bogus: 1
concurrency: many
)");
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  ASSERT_EQ(lines.size(), 3u) << error;
  EXPECT_THAT(lines[0], StartsWith("test.yaml: listeners[0].address.port: expected an unsigned"));
  EXPECT_THAT(lines[1], StartsWith("test.yaml: listeners[0].bogus: unknown field"));
  EXPECT_THAT(lines[2], StartsWith("test.yaml: concurrency: expected an unsigned integer"));
}

TEST(ParseErrorTest, FailedParseLeavesTheMessageEmpty) {
  v1::Bootstrap bootstrap;
  bootstrap.set_concurrency(9);
  EXPECT_FALSE(Parse("concurrency: x", bootstrap).ok());
  EXPECT_EQ(bootstrap.concurrency(), 0u);
}

TEST(ParseErrorTest, TextProtoErrors) {
  v1::Bootstrap bootstrap;
  const absl::Status status = ParseInto("concurrency: 1\nlisteners { nme: \"a\" }\n",
                                        Format::kTextProto, "t.pb.txt", bootstrap);
  EXPECT_THAT(Msg(status), AllOf(StartsWith("t.pb.txt:2:"), HasSubstr("nme")));
  EXPECT_THAT(Msg(ParseInto("concurrency: -1", Format::kTextProto, "t.pb.txt", bootstrap)),
              StartsWith("t.pb.txt:1:"));
}

TEST(ParseErrorTest, AliasExpansionIsBounded) {
  // Nine levels of ten aliases each would expand to 10^9 nodes.
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    absl::StrAppend(&yaml, "a", i, ": &a", i, " [");
    for (int j = 0; j < 10; ++j) absl::StrAppend(&yaml, j > 0 ? ", " : "", "*a", i - 1);
    yaml += "]\n";
  }
  google::protobuf::Struct data;
  // Struct accepts anything, so only the budget can stop this.
  const absl::Status status = ParseInto(yaml, Format::kYaml, "bomb.yaml", data);
  EXPECT_THAT(Msg(status), HasSubstr("too large"));
}

// ---------------------------------------------------------------------------------------------
// Validation.

TEST(ValidateTest, ValidConfigPasses) {
  const absl::Status status = ValidateBootstrap(ParseOk(kValid), "test.yaml");
  EXPECT_TRUE(status.ok()) << status;
}

TEST(ValidateTest, DuplicateListenerNames) {
  EXPECT_EQ(ValidationError(R"(
listeners:
  - name: ingress
    address: {address: 0.0.0.0, port: 10000}
    filters: [{tcp_proxy: {cluster: backend}}]
  - name: ingress
    address: {address: 0.0.0.0, port: 10001}
    filters: [{tcp_proxy: {cluster: backend}}]
clusters:
  - name: backend
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
)"),
            "test.yaml: listeners[1].name: duplicate listener name \"ingress\" (also "
            "listeners[0])");
}

TEST(ValidateTest, DuplicateClusterNamesAndListenerAddresses) {
  const std::string error = ValidationError(R"(
listeners:
  - name: a
    address: {address: 0.0.0.0, port: 10000}
    filters: [{tcp_proxy: {cluster: backend}}]
  - name: b
    address: {address: 0.0.0.0, port: 10000}
    filters: [{tcp_proxy: {cluster: backend}}]
clusters:
  - name: backend
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
  - name: backend
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
)");
  EXPECT_THAT(error, HasSubstr("test.yaml: clusters[1].name: duplicate cluster name \"backend\""));
  EXPECT_THAT(error, HasSubstr("test.yaml: listeners[1].address: 0.0.0.0:10000 is already used "
                               "by listeners[0]"));
}

TEST(ValidateTest, BadIpAddress) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_listeners(0)->mutable_address()->set_address("10.0.0.256");
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].address.address: \"10.0.0.256\" is not an IPv4 or IPv6 "
            "address literal (names are not resolved)");
  bootstrap.mutable_listeners(0)->mutable_address()->set_address("::");
  EXPECT_TRUE(ValidateBootstrap(bootstrap, "test.yaml").ok());
  bootstrap.mutable_listeners(0)->mutable_address()->clear_address();
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              StartsWith("test.yaml: listeners[0].address.address: required"));
  bootstrap.mutable_listeners(0)->clear_address();
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].address: required");
}

TEST(ValidateTest, PortAboveMax) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_listeners(0)->mutable_address()->set_port(65536);
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].address.port: port 65536 is out of range (0..65535)");
  bootstrap.mutable_listeners(0)->mutable_address()->set_port(0);  // the kernel picks one
  EXPECT_TRUE(ValidateBootstrap(bootstrap, "test.yaml").ok());
}

TEST(ValidateTest, TcpProxyNamingAnUnknownCluster) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_listeners(0)->mutable_filters(0)->mutable_tcp_proxy()->set_cluster("backnd");
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].filters[0].tcp_proxy.cluster: unknown cluster \"backnd\" "
            "(defined: \"backend\")");
  bootstrap.mutable_listeners(0)->mutable_filters(0)->mutable_tcp_proxy()->clear_cluster();
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              StartsWith("test.yaml: listeners[0].filters[0].tcp_proxy.cluster: required"));
}

TEST(ValidateTest, HttpConnectionManagerLimitsFiltersAndPlacement) {
  v1::Bootstrap bootstrap = ParseOk(R"(
listeners:
  - name: web
    address: {address: 127.0.0.1, port: 0}
    filters:
      - http_connection_manager:
          max_request_line_bytes: 10
          max_request_headers_bytes: 2048
          request_headers_timeout: -1s
          server_name: "bad\r\nname"
          http_filters:
            - direct_response: {status: 99, headers: [{name: "bad name", value: "x"}]}
            - direct_response: {}
      - tcp_proxy: {cluster: c}
clusters:
  - name: c
    endpoints: [{address: {address: 127.0.0.1, port: 1}}]
)");
  const std::string m = Msg(ValidateBootstrap(bootstrap, "test.yaml"));
  const std::string hcm = "test.yaml: listeners[0].filters[0].http_connection_manager.";
  EXPECT_NE(m.find(hcm + "max_request_line_bytes: must be 256..1048576"), std::string::npos) << m;
  EXPECT_NE(m.find(hcm + "request_headers_timeout:"), std::string::npos) << m;
  EXPECT_NE(m.find(hcm + "server_name: \"bad\\r\\nname\" must not contain CR, LF, NUL or other "
                         "control characters"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(hcm + "http_filters[0].direct_response.status: 99 is not in 200..599"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(hcm + "http_filters[0].direct_response.headers[0].name: \"bad name\" is not "
                         "a valid field name"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find(hcm + "http_filters[0]: direct_response answers every request: it must be "
                         "the last filter"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("test.yaml: listeners[0].filters[0]: http_connection_manager must be the last "
                   "filter of the chain (it is filter 1 of 2)"),
            std::string::npos)
      << m;
}

TEST(ValidateTest, ClusterWithoutEndpoints) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_clusters(0)->clear_endpoints();
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: clusters[0].endpoints: at least one endpoint is required");
}

TEST(ValidateTest, EndpointPortZeroAndBadEndpointAddress) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_clusters(0)->mutable_endpoints(0)->mutable_address()->set_port(0);
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              StartsWith("test.yaml: clusters[0].endpoints[0].address.port: required"));
  bootstrap.mutable_clusters(0)->mutable_endpoints(0)->mutable_address()->set_port(80);
  bootstrap.mutable_clusters(0)->mutable_endpoints(0)->mutable_address()->set_address("backend");
  EXPECT_THAT(
      Msg(ValidateBootstrap(bootstrap, "test.yaml")),
      StartsWith("test.yaml: clusters[0].endpoints[0].address.address: \"backend\" is not"));
  bootstrap.mutable_clusters(0)->add_endpoints();
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              HasSubstr("test.yaml: clusters[0].endpoints[1].address: required"));
}

TEST(ValidateTest, FilterWithoutConfigAndTcpProxyNotLast) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_listeners(0)->add_filters()->set_name("empty");
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].filters[0]: tcp_proxy must be the last filter of the chain "
            "(it is filter 1 of 2)\n"
            "test.yaml: listeners[0].filters[1]: no filter config set (expected exactly one of: "
            "tcp_proxy, http_connection_manager)");
  bootstrap.mutable_listeners(0)->clear_filters();
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners[0].filters: at least one network filter is required");
}

TEST(ValidateTest, LimitsAndDurations) {
  const std::string error = ValidationError(R"(
listeners:
  - name: ingress
    address: {address: "::1", port: 10000}
    max_accepts_per_event: 5000
    per_connection_buffer_limit_bytes: 100
    tcp_keepalive: {probes: 200, idle_time: 1.5s, interval: 0s}
    filters: [{tcp_proxy: {cluster: backend, idle_timeout: -1s}}]
clusters:
  - name: backend
    connect_timeout: 0s
    per_connection_buffer_limit_bytes: 10
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
admin:
  address: {address: "::1", port: 10000}
concurrency: 5000
drain_timeout: -5s
)");
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  EXPECT_EQ(lines.size(), 11u) << error;
  for (const std::string_view expected : {
           "test.yaml: listeners[0].max_accepts_per_event: must be at most 4096, got 5000",
           "test.yaml: listeners[0].per_connection_buffer_limit_bytes: must be at least 1024",
           "test.yaml: listeners[0].tcp_keepalive.probes: must be at most 127",
           "test.yaml: listeners[0].tcp_keepalive.idle_time: must be whole seconds from 1s to "
           "32767s (the kernel's limit), got 1.500000000s",
           "test.yaml: listeners[0].tcp_keepalive.interval: must be whole seconds",
           "test.yaml: listeners[0].filters[0].tcp_proxy.idle_timeout: must not be negative, got "
           "-1s",
           "test.yaml: clusters[0].connect_timeout: must be positive, got 0s",
           "test.yaml: clusters[0].per_connection_buffer_limit_bytes: must be at least 1024",
           "test.yaml: admin.address: [::1]:10000 is already used by listeners[0]",
           "test.yaml: concurrency: must be at most 1024",
           "test.yaml: drain_timeout: must not be negative, got -5s",
       }) {
    EXPECT_THAT(error, HasSubstr(expected));
  }
}

TEST(ValidateTest, MalformedDurationBuiltInCode) {
  v1::Bootstrap bootstrap = ParseOk(kValid);
  bootstrap.mutable_drain_timeout()->set_seconds(1);
  bootstrap.mutable_drain_timeout()->set_nanos(-1);
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              StartsWith("test.yaml: drain_timeout: invalid duration"));
}

// Every config string that reaches a header, a log line, a stat name or the ports file is
// checked for what that place can carry: one bad value per field, each named by its path.
TEST(ValidateTest, StringsThatReachTheWireLogsOrStatsAreChecked) {
  constexpr std::string_view kHttp = R"(
listeners:
  - name: web
    address: {address: 127.0.0.1, port: 0}
    filters:
      - http_connection_manager:
          http_filters:
            - direct_response: {status: 200, headers: [{name: x-a, value: b}]}
clusters:
  - name: backend
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
)";
  using Change = void (*)(v1::Bootstrap&);
  const std::string h = "listeners[0].filters[0].http_connection_manager.";
  const struct {
    Change change;
    std::string expected;
  } cases[] = {
      // Names (stats, logs, the ports file): letters, digits, '_', '-', '.'.
      {[](v1::Bootstrap& b) { b.mutable_listeners(0)->set_name("web\n1.2.3.4:80"); },
       "listeners[0].name: \"web\\n1.2.3.4:80\" is not a valid name: letters, digits, '_', "
       "'-' and '.' only"},
      {[](v1::Bootstrap& b) { b.mutable_clusters(0)->set_name("back end"); },
       "clusters[0].name: \"back end\" is not a valid name"},
      {[](v1::Bootstrap& b) { b.mutable_listeners(0)->mutable_filters(0)->set_name("f:1"); },
       "listeners[0].filters[0].name: \"f:1\" is not a valid name"},
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->set_stat_prefix("web\nserver.x 1");
       },
       h + "stat_prefix: \"web\\nserver.x 1\" is not a valid name"},
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->mutable_http_filters(0)
             ->set_name("dr\t");
       },
       h + "http_filters[0].name: \"dr\\t\" is not a valid name"},
      // Header field values: no CR, LF, NUL or other controls (HTAB is fine).
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)->mutable_filters(0)->mutable_http_connection_manager()->set_via(
             "1.1 a\r\nx: y");
       },
       h + "via: \"1.1 a\\r\\nx: y\" must not contain CR, LF, NUL or other control characters"},
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->set_server_name(std::string("a\0b", 3));
       },
       h + "server_name: \"a\\x00\\x62\" must not contain"},
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->mutable_http_filters(0)
             ->mutable_direct_response()
             ->mutable_headers(0)
             ->set_value("b\x7f");
       },
       h + "http_filters[0].direct_response.headers[0].value: "},
      // Tokens: field names, upgrade protocols.
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->mutable_http_filters(0)
             ->mutable_direct_response()
             ->mutable_headers(0)
             ->set_name("x:a");
       },
       h + "http_filters[0].direct_response.headers[0].name: \"x:a\" is not a valid field name"},
      {[](v1::Bootstrap& b) {
         b.mutable_listeners(0)
             ->mutable_filters(0)
             ->mutable_http_connection_manager()
             ->add_upgrade_types("web socket");
       },
       h + "upgrade_types[0]: \"web socket\" is not a protocol token"},
      // Plugin names and file paths.
      {[](v1::Bootstrap& b) {
         auto* p = b.mutable_listeners(0)
                       ->mutable_filters(0)
                       ->mutable_http_connection_manager()
                       ->mutable_http_filters(0)
                       ->mutable_plugin();
         p->set_filter("router\n");
       },
       h + "http_filters[0].plugin.filter: \"router\\n\" is not a valid name"},
      {[](v1::Bootstrap& b) {
         auto* p = b.mutable_listeners(0)
                       ->mutable_filters(0)
                       ->mutable_http_connection_manager()
                       ->mutable_http_filters(0)
                       ->mutable_plugin();
         p->set_filter("router");
         p->set_plugin("/opt/p\r.so");
       },
       h + "http_filters[0].plugin.plugin: \"/opt/p\\r.so\" must not contain control characters"},
      {[](v1::Bootstrap& b) { b.add_plugin_dirs("/opt/\x1b[31m"); },
       "plugin_dirs[0]: \"/opt/\\x1b[31m\" must not contain control characters"},
      {[](v1::Bootstrap& b) { b.add_plugin_dirs(""); }, "plugin_dirs[0]: must not be empty"},
      // An address literal with a NUL: inet_pton would stop at it.
      {[](v1::Bootstrap& b) {
         b.mutable_clusters(0)->mutable_endpoints(0)->mutable_address()->set_address(
             std::string("127.0.0.1\0x", 11));
       },
       "clusters[0].endpoints[0].address.address: \"127.0.0.1\\x00x\" is not an IPv4 or IPv6 "
       "address literal"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expected);
    v1::Bootstrap bootstrap = ParseOk(kHttp);
    ASSERT_TRUE(ValidateBootstrap(bootstrap, "test.yaml").ok());
    c.change(bootstrap);
    EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
                StartsWith("test.yaml: " + c.expected));
  }
}

TEST(ValidateTest, NamesAndValuesConfigsUseTodayStayValid) {
  v1::Bootstrap bootstrap = ParseOk(R"yaml(
listeners:
  - name: origin_a-1.public
    address: {address: 127.0.0.1, port: 0}
    filters:
      - name: hcm.main
        http_connection_manager:
          stat_prefix: web-1.x_y
          server_name: "sluice/1.0 (linux;\tx86)"
          via: "1.1 sluice"
          upgrade_types: [websocket, CONNECT]
          http_filters:
            - name: rid
              plugin: {filter: request_id, plugin: /opt/sluice plugins/request_id.so}
            - direct_response: {status: 200, body: "any\r\nbytes\u0000", headers: [{name: x-a, value: "b\tc"}]}
clusters:
  - {name: A.b-c_1, endpoints: [{address: {address: "::1", port: 1}}]}
plugin_dirs: [/opt/plugins, "relative dir"]
)yaml");
  const absl::Status status = ValidateBootstrap(bootstrap, "test.yaml");
  EXPECT_TRUE(status.ok()) << status;
}

// With the sources of the parse, a semantic error points at the field, or at the closest parent
// written in the file when the field itself is missing.
TEST(ValidateTest, ErrorsCarryTheLineOfTheFieldOrItsParent) {
  ValueSources sources;
  v1::Bootstrap bootstrap;
  ASSERT_TRUE(ParseInto(R"(
listeners:
  - name: web
    address: {address: 127.0.0.1, port: 0}
    filters:
      - http_connection_manager:
          via: "a\x01"
          http_filters: [{direct_response: {}}]
  - address: {address: 127.0.0.1, port: 0}
    filters: [{tcp_proxy: {cluster: backend}}]
clusters:
  - name: backend
    connectTimeout: 0.1ms
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
)",
                        Format::kYaml, "test.yaml", bootstrap, &sources)
                  .ok());
  const std::vector<std::string> lines =
      absl::StrSplit(Msg(ValidateBootstrap(bootstrap, "test.yaml", &sources)), '\n');
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], AllOf(StartsWith("test.yaml: listeners[0].filters[0]."
                                         "http_connection_manager.via: "),
                              HasSubstr(" at line 7, column 16")));
  EXPECT_EQ(lines[1], "test.yaml: listeners[1].name: required at line 9, column 5");
  EXPECT_THAT(lines[2], AllOf(StartsWith("test.yaml: clusters[0].connect_timeout: "),
                              HasSubstr(" at line 13, column 21")));
}

TEST(ValidateTest, AConfigWithoutListenersIsAnError) {
  v1::Bootstrap bootstrap;
  EXPECT_EQ(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
            "test.yaml: listeners: at least one listener is required (without one, sluice would "
            "run and serve nothing)");
  bootstrap.mutable_admin()->mutable_address()->set_address("127.0.0.1");
  EXPECT_THAT(Msg(ValidateBootstrap(bootstrap, "test.yaml")),
              StartsWith("test.yaml: listeners: at least one listener is required"));
}

// Timeouts are whole milliseconds at run time, and 0 means none: a value between 0 and 1ms
// would silently disable the timeout. Refused, naming the minimum.
TEST(ValidateTest, TimeoutsBelowOneMillisecondAreRefused) {
  v1::Bootstrap bootstrap = ParseOk(R"(
listeners:
  - name: web
    address: {address: 127.0.0.1, port: 0}
    filters:
      - http_connection_manager:
          request_headers_timeout: 0.0001s
          request_body_timeout: 999999ns
          idle_timeout: 1us
          stream_idle_timeout: 0.5ms
          http_filters: [{direct_response: {}}]
  - name: tcp
    address: {address: 127.0.0.1, port: 0}
    filters: [{tcp_proxy: {cluster: backend, idle_timeout: 100us}}]
clusters:
  - name: backend
    connect_timeout: 0.9ms
    http_pool: {idle_timeout: 10ns}
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
drain_timeout: 0.0002s
)");
  const std::string error = Msg(ValidateBootstrap(bootstrap, "test.yaml"));
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  EXPECT_EQ(lines.size(), 8u) << error;
  const std::string hcm = "test.yaml: listeners[0].filters[0].http_connection_manager.";
  const std::string rule =
      ": must be 0s (no timeout) or at least 1ms (timeouts count whole milliseconds), got ";
  for (const std::string& expected : {
           hcm + "request_headers_timeout" + rule + "0.000100000s",
           hcm + "request_body_timeout" + rule + "0.000999999s",
           hcm + "idle_timeout" + rule + "0.000001000s",
           hcm + "stream_idle_timeout" + rule + "0.000500000s",
           "test.yaml: listeners[1].filters[0].tcp_proxy.idle_timeout" + rule + "0.000100000s",
           std::string("test.yaml: clusters[0].connect_timeout: must be at least 1ms (timeouts "
                       "count whole milliseconds), got 0.000900000s"),
           "test.yaml: clusters[0].http_pool.idle_timeout" + rule + "0.000000010s",
           "test.yaml: drain_timeout" + rule + "0.000200000s",
       }) {
    EXPECT_THAT(error, HasSubstr(expected));
  }
  // The edges: 0s (none) and exactly 1ms are fine.
  bootstrap = ParseOk(R"(
listeners:
  - name: web
    address: {address: 127.0.0.1, port: 0}
    filters:
      - http_connection_manager:
          request_headers_timeout: 0s
          request_body_timeout: 1ms
          http_filters: [{direct_response: {}}]
clusters:
  - name: backend
    connect_timeout: 1ms
    http_pool: {idle_timeout: 0s}
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
drain_timeout: 0s
)");
  EXPECT_TRUE(ValidateBootstrap(bootstrap, "test.yaml").ok())
      << ValidateBootstrap(bootstrap, "test.yaml");
}

TEST(ValidateTest, OutlierDetection) {
  // Every problem at once: durations below 1ms or negative, the ejection times out of order,
  // a percent over 100, fail_timeout without max_fails.
  const std::string error = ValidationError(R"(
listeners:
  - name: tcp
    address: {address: 127.0.0.1, port: 0}
    filters: [{tcp_proxy: {cluster: a}}]
clusters:
  - name: a
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection:
      interval: 0s
      base_ejection_time: 0.5ms
      max_ejection_percent: 101
      fail_timeout: -1s
  - name: b
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection: {base_ejection_time: 10s, max_ejection_time: 5s}
  - name: c
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection: {base_ejection_time: 600s}
  - name: d
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection: {consecutive_5xx: 0}
)");
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  const std::string a = "test.yaml: clusters[0].outlier_detection.";
  for (const std::string& expected : {
           a + "interval: must be positive, got 0s",
           a + "fail_timeout: must be positive, got -1s",
           a + "base_ejection_time: must be at least 1ms (timeouts count whole milliseconds), "
               "got 0.000500000s",
           a + "max_ejection_percent: must be at most 100, got 101",
           a + "fail_timeout: has no effect without max_fails",
           std::string("test.yaml: clusters[1].outlier_detection.max_ejection_time: must be at "
                       "least base_ejection_time (10000ms), got 5000ms"),
           std::string("test.yaml: clusters[2].outlier_detection.max_ejection_time: must be at "
                       "least base_ejection_time (600000ms), got 300000ms (its default)"),
       }) {
    EXPECT_THAT(error, HasSubstr(expected));
  }
  EXPECT_THAT(error, HasSubstr("test.yaml: clusters[3].outlier_detection: every check is "
                               "disabled (consecutive_5xx, consecutive_gateway_failure and "
                               "max_fails are 0)"));
  EXPECT_EQ(lines.size(), 8u) << error;

  // Valid: the defaults (an empty message), and every field set within its bounds.
  const v1::Bootstrap ok = ParseOk(R"(
listeners:
  - name: tcp
    address: {address: 127.0.0.1, port: 0}
    filters: [{tcp_proxy: {cluster: a}}]
clusters:
  - name: a
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection: {}
  - name: b
    endpoints: [{address: {address: 127.0.0.1, port: 8080}}]
    outlier_detection:
      consecutive_5xx: 0
      consecutive_gateway_failure: 3
      interval: 1ms
      base_ejection_time: 200ms
      max_ejection_time: 200ms
      max_ejection_percent: 100
      max_fails: 2
      fail_timeout: 5s
)");
  EXPECT_TRUE(ValidateBootstrap(ok, "test.yaml").ok()) << ValidateBootstrap(ok, "test.yaml");
}

TEST(ValidateTest, MultipleErrorsAreReportedTogether) {
  const std::string error = ValidationError(R"(
listeners:
  - address: {address: 300.1.1.1, port: 99999}
    filters: [{name: nothing}]
clusters:
  - endpoints: [{address: {address: 127.0.0.1}}]
)");
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  ASSERT_EQ(lines.size(), 6u) << error;
  EXPECT_EQ(lines[0], "test.yaml: clusters[0].name: required");
  EXPECT_EQ(lines[1], "test.yaml: listeners[0].name: required");
  EXPECT_THAT(lines[2], StartsWith("test.yaml: listeners[0].address.address: \"300.1.1.1\""));
  EXPECT_EQ(lines[3],
            "test.yaml: listeners[0].address.port: port 99999 is out of range (0..65535)");
  EXPECT_THAT(lines[4], StartsWith("test.yaml: listeners[0].filters[0]: no filter config set"));
  EXPECT_THAT(lines[5], StartsWith("test.yaml: clusters[0].endpoints[0].address.port: required"));
}

// Free-form values (a plugin's typed_config) are kept with their position, under the field
// path with proto names whichever spelling the file used, and parsed later against a type.
TEST(ValueSourcesTest, ParsesAKeptValueLaterWithPathAndLine) {
  const std::string yaml =
      "listeners:\n"
      "  - name: l\n"
      "    filters:\n"
      "      - httpConnectionManager:\n"
      "          httpFilters:\n"
      "            - plugin:\n"
      "                filter: x\n"
      "                typedConfig:\n"
      "                  \"@type\": type.googleapis.com/sluice.config.v1.SocketAddress\n"
      "                  address: 127.0.0.1\n"
      "                  port: seventy\n";
  v1::Bootstrap b;
  ValueSources sources;
  ASSERT_TRUE(ParseInto(yaml, Format::kYaml, "f.yaml", b, &sources).ok());
  EXPECT_EQ("f.yaml", sources.source());
  const std::string path =
      "listeners[0].filters[0].http_connection_manager.http_filters[0].plugin.typed_config";
  const auto& value =
      b.listeners(0).filters(0).http_connection_manager().http_filters(0).plugin().typed_config();
  v1::SocketAddress addr;
  const absl::Status status = sources.ParseValueInto(path, value, addr);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ("f.yaml: " + path +
                ".port: expected an unsigned integer, got \"seventy\" at line 11, "
                "column 25",
            std::string(status.message()));
}

TEST(ValueSourcesTest, WithoutAKeptSourceTheParsedValueIsUsedWithoutLines) {
  const std::string text =
      "listeners { name: \"l\" filters { http_connection_manager { http_filters { plugin {\n"
      "  filter: \"x\"\n"
      "  typed_config { struct_value { fields { key: \"port\" value { string_value: \"x\" } }\n"
      "  fields { key: \"address\" value { string_value: \"::1\" } } } } } } } } }\n";
  v1::Bootstrap b;
  ValueSources sources;
  ASSERT_TRUE(ParseInto(text, Format::kTextProto, "f.pb.txt", b, &sources).ok());
  const auto& value =
      b.listeners(0).filters(0).http_connection_manager().http_filters(0).plugin().typed_config();
  v1::SocketAddress addr;
  const absl::Status bad = sources.ParseValueInto("p", value, addr);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), StartsWith("f.pb.txt: p.port: expected an unsigned"));
  EXPECT_THAT(std::string(bad.message()), Not(HasSubstr("line")));
}

}  // namespace
}  // namespace sluice::config
