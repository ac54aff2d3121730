// Validation of a cluster's health_checks and common_lb_config: each mistake is reported with
// the path of the field.

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/config/bootstrap.h"
#include "source/config/loader.h"

namespace sluice::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A config with one HTTP-checked cluster; `cluster_extra` is appended to the cluster (YAML at
// its indentation) and replaces nothing.
std::string Config(std::string_view health_check, std::string_view cluster_extra = "") {
  return std::string(R"(
listeners:
  - name: ingress
    address: {address: 127.0.0.1, port: 0}
    filters:
      - tcp_proxy: {cluster: backend}
clusters:
  - name: backend
    endpoints:
      - address: {address: 127.0.0.1, port: 8080}
    health_checks:
      - )") +
         std::string(health_check) + "\n" + std::string(cluster_extra);
}

absl::Status Validate(const std::string& yaml) {
  v1::Bootstrap bootstrap;
  absl::Status parsed = ParseInto(yaml, Format::kYaml, "test.yaml", bootstrap);
  if (!parsed.ok()) return parsed;
  return ValidateBootstrap(bootstrap, "test.yaml");
}

std::string Error(const std::string& yaml) {
  absl::Status status = Validate(yaml);
  EXPECT_FALSE(status.ok()) << yaml;
  return std::string(status.message());
}

constexpr std::string_view kGood =
    "{timeout: 1s, interval: 5s, http_health_check: {path: /healthz}}";

TEST(HealthCheckConfigTest, AValidCheckPasses) {
  EXPECT_TRUE(Validate(Config(kGood)).ok()) << Validate(Config(kGood));
  EXPECT_TRUE(Validate(Config("{timeout: 1s, interval: 1s, interval_jitter: 100ms, "
                              "initial_jitter: 1s, unhealthy_threshold: 1, healthy_threshold: 1, "
                              "tcp_health_check: {send: UElORw==, receive: UE9ORw==}}"))
                  .ok());
  EXPECT_TRUE(Validate(Config(kGood, "    common_lb_config: {healthy_panic_threshold: 0}\n")).ok());
}

TEST(HealthCheckConfigTest, TimeoutAndIntervalAreRequiredAndAtLeastOneMillisecond) {
  EXPECT_THAT(Error(Config("{interval: 1s, tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].timeout: required"));
  EXPECT_THAT(Error(Config("{timeout: 1s, tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].interval: required"));
  EXPECT_THAT(Error(Config("{timeout: 0s, interval: 1s, tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].timeout: must be positive"));
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 0.0005s, tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].interval: must be at least 1ms"));
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, interval_jitter: -1s, "
                           "tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].interval_jitter: must not be negative"));
}

TEST(HealthCheckConfigTest, ThresholdsAreAtLeastOne) {
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, unhealthy_threshold: 0, "
                           "tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].unhealthy_threshold: must be at least 1"));
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, healthy_threshold: 0, "
                           "tcp_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].healthy_threshold: must be at least 1"));
}

TEST(HealthCheckConfigTest, OneKindOfCheckIsRequired) {
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s}")),
              HasSubstr("clusters[0].health_checks[0]: one of http_health_check, "
                        "tcp_health_check or grpc_health_check is required"));
}

TEST(HealthCheckConfigTest, HttpPath) {
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, http_health_check: {}}")),
              HasSubstr("clusters[0].health_checks[0].http_health_check.path: required"));
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, http_health_check: {path: healthz}}")),
              HasSubstr("http_health_check.path: \"healthz\" must start with '/'"));
  EXPECT_THAT(Error(Config("{timeout: 1s, interval: 1s, http_health_check: {path: \"/a b\"}}")),
              HasSubstr("http_health_check.path: \"/a b\" must start with '/'"));
}

TEST(HealthCheckConfigTest, ExpectedStatuses) {
  auto with = [](std::string_view range) {
    return Config(std::string("{timeout: 1s, interval: 1s, http_health_check: {path: /, "
                              "expected_statuses: [") +
                  std::string(range) + "]}}");
  };
  EXPECT_TRUE(Validate(with("{start: 200, end: 201}, {start: 599, end: 600}")).ok());
  EXPECT_THAT(Error(with("{start: 99, end: 200}")),
              HasSubstr("http_health_check.expected_statuses[0].start: 99 is not in 100..599"));
  EXPECT_THAT(Error(with("{start: 200, end: 200}")),
              HasSubstr("http_health_check.expected_statuses[0].end: must be above start"));
  EXPECT_THAT(Error(with("{start: 200, end: 300}, {start: 500, end: 601}")),
              HasSubstr("http_health_check.expected_statuses[1].end: must be above start"));
}

TEST(HealthCheckConfigTest, HeadersToAdd) {
  auto with = [](std::string_view header) {
    return Config(std::string("{timeout: 1s, interval: 1s, http_health_check: {path: /, "
                              "request_headers_to_add: [") +
                  std::string(header) + "]}}");
  };
  EXPECT_TRUE(Validate(with("{name: x-check, value: yes}")).ok());
  EXPECT_THAT(Error(with("{name: \"bad name\", value: v}")),
              HasSubstr("request_headers_to_add[0].name: \"bad name\" is not a valid field name"));
  EXPECT_THAT(Error(with("{name: Host, value: v}")),
              HasSubstr("request_headers_to_add[0].name: \"Host\" cannot be added"));
  EXPECT_THAT(Error(with("{name: x, value: \"a\\nb\"}")),
              HasSubstr("request_headers_to_add[0].value:"));
}

TEST(HealthCheckConfigTest, GrpcNeedsHttp2) {
  const std::string grpc = "{timeout: 1s, interval: 1s, grpc_health_check: {service_name: s}}";
  EXPECT_THAT(Error(Config(grpc)),
              HasSubstr("clusters[0].health_checks[0].grpc_health_check: a gRPC health check "
                        "needs the cluster's protocol HTTP2"));
  EXPECT_TRUE(Validate(Config(grpc, "    protocol: HTTP2\n")).ok());
}

TEST(HealthCheckConfigTest, AtMostOneCheckPerCluster) {
  EXPECT_THAT(Error(Config(kGood, std::string("      - ") + std::string(kGood) + "\n")),
              HasSubstr("clusters[0].health_checks: at most one health check per cluster"));
}

TEST(HealthCheckConfigTest, PanicThresholdIsAPercentage) {
  EXPECT_THAT(
      Error(Config(kGood, "    common_lb_config: {healthy_panic_threshold: 101}\n")),
      HasSubstr("clusters[0].common_lb_config.healthy_panic_threshold: must be a percentage"));
  EXPECT_THAT(Error(Config(kGood, "    common_lb_config: {healthy_panic_threshold: -1}\n")),
              HasSubstr("healthy_panic_threshold: must be a percentage"));
  EXPECT_THAT(
      Validate(Config(kGood, "    common_lb_config: {healthy_panic_threshold: 12.5}\n")).message(),
      Not(HasSubstr("healthy_panic_threshold")));
}

}  // namespace
}  // namespace sluice::config
