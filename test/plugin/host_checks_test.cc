// What the host functions accept (source/plugin/host_checks.h), which sluice and the plugin test
// harness's fake host share: the cases the ABI header names.

#include "source/plugin/host_checks.h"

#include "gtest/gtest.h"

namespace sluice::plugin::checks {
namespace {

TEST(HostChecksTest, HeaderNamesAreTokensAndValuesHaveNoControls) {
  EXPECT_TRUE(HeaderName("x-request-id"));
  EXPECT_FALSE(HeaderName(""));
  EXPECT_FALSE(HeaderName("bad name"));
  EXPECT_FALSE(HeaderName(":path"));
  EXPECT_TRUE(HeaderValue(""));
  EXPECT_TRUE(HeaderValue("a b\tc"));
  EXPECT_FALSE(HeaderValue("a\r\nb"));
  EXPECT_FALSE(HeaderValue(std::string_view("a\0b", 3)));
}

TEST(HostChecksTest, PseudoHeaders) {
  EXPECT_TRUE(Method("GET"));
  EXPECT_FALSE(Method("G T"));
  EXPECT_TRUE(Path("/a?b=c"));
  EXPECT_TRUE(Path("*"));
  EXPECT_FALSE(Path(""));
  EXPECT_FALSE(Path("/a b"));
  EXPECT_FALSE(Authority(""));
  uint16_t status = 0;
  EXPECT_TRUE(Status("204", &status));
  EXPECT_EQ(204, status);
  EXPECT_FALSE(Status("99", &status));
  EXPECT_FALSE(Status("099", &status));
  EXPECT_FALSE(Status("2x4", &status));
  EXPECT_TRUE(LocalReplyStatus(599));
  EXPECT_FALSE(LocalReplyStatus(199));
  EXPECT_TRUE(IsFramingHeader("Content-Length"));
}

TEST(HostChecksTest, MetricsRouteMetadataAndViews) {
  EXPECT_TRUE(MetricName("rq.denied_total"));
  EXPECT_FALSE(MetricName(".x"));
  EXPECT_FALSE(MetricName("a-b"));
  EXPECT_FALSE(MetricName(std::string(129, 'a')));
  EXPECT_FALSE(MetricKind(SL_METRIC_HISTOGRAM + 1));
  EXPECT_FALSE(RouteMetadataValue("a\nb"));
  EXPECT_TRUE(RouteConfigFormat(SL_ROUTE_CONFIG_JSON));
  EXPECT_FALSE(RouteConfigFormat(7));
  EXPECT_FALSE(Valid(sl_type_str{nullptr, 1}));
  EXPECT_FALSE(StreamMetadataKey(sl_type_str{"", 0}));
}

}  // namespace
}  // namespace sluice::plugin::checks
