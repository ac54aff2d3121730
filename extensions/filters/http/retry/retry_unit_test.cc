// The retry plugin through the plugin test harness (a fake host): config errors as sluice
// reports them, which streams enable retries and with what options (the default policy, a
// route's, none), the answers sl_on_upstream_retry gives and the decision it fills, and the
// plugin's metrics. The policy's own logic is retry_policy_test.cc's.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Headers;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

constexpr const char* kPolicyType = "type.googleapis.com/sluice.extensions.retry.v1.RetryPolicy";

class RetryPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    retry_ = host_.load(SLUICE_PLUGIN_DIR "/retry.so", &error);
    ASSERT_NE(nullptr, retry_) << error;
    router_ = host_.load(SLUICE_PLUGIN_DIR "/router.so", &error);
    ASSERT_NE(nullptr, router_) << error;
    host_.setClusters({"c"});
  }

  // The chain retry -> router (one catch-all route unless `routes` says otherwise); "" or the
  // first error.
  std::string Build(Chain& chain, const std::string& retry_config,
                    const std::string& routes = "      - route: {cluster: c}\n") {
    std::string error = chain.add(retry_, "retry", retry_config);
    if (!error.empty()) return error;
    error = chain.add(router_, "router",
                      "virtual_hosts:\n  - name: v\n    domains: [\"*\"]\n    routes:\n" + routes);
    if (!error.empty()) return error;
    return chain.build();
  }

  static Headers Request(const std::string& method = "GET", const std::string& path = "/") {
    return {{":method", method}, {":path", path}, {":authority", "h"}};
  }

  // An attempt result as the core fills it.
  static sl_type_attempt_result Response(uint32_t status, const sl_type_header* headers = nullptr,
                                         size_t count = 0) {
    sl_type_attempt_result r{};
    r.size = sizeof(r);
    r.outcome = SL_ATTEMPT_RESPONSE;
    r.status = status;
    r.attempt = 1;
    r.error_kind = SL_UPSTREAM_ERROR_NONE;
    r.retry_safety = SL_RETRY_SAFETY_IDEMPOTENT_ONLY;
    r.headers = headers;
    r.header_count = count;
    return r;
  }
  static sl_type_attempt_result Failure(uint32_t kind, uint32_t safety) {
    sl_type_attempt_result r{};
    r.size = sizeof(r);
    r.outcome = SL_ATTEMPT_CONNECT_FAILURE;
    r.attempt = 1;
    r.error_kind = kind;
    r.retry_safety = safety;
    return r;
  }

  Host host_;
  Plugin* retry_ = nullptr;
  Plugin* router_ = nullptr;
};

TEST_F(RetryPluginTest, ConfigErrorsNameTheField) {
  Chain chain(host_);
  const std::string error = chain.add(retry_, "retry", "policy: {retry_on: [5xx, bogus]}");
  EXPECT_NE(std::string::npos, error.find("policy.retry_on[1]: \"bogus\" is not a retry condition"))
      << error;
  Chain unknown(host_);
  EXPECT_NE(std::string::npos,
            unknown.add(retry_, "retry", "policy: {retry_onn: [5xx]}").find("retry_onn"));
}

TEST_F(RetryPluginTest, ARoutesErrorNamesItsPath) {
  Chain chain(host_);
  const std::string error = Build(chain, "", std::string(R"(      - route: {cluster: c}
        typed_per_filter_config:
          retry:
            "@type": )") + kPolicyType + R"(
            retry_on: [5xx]
            backoff: {base_interval: 0s}
)");
  EXPECT_NE(std::string::npos, error.find("typed_per_filter_config[\"retry\"]")) << error;
  EXPECT_NE(std::string::npos, error.find("backoff.base_interval: must be at least 1ms")) << error;
}

TEST_F(RetryPluginTest, EnablesRetriesWithThePolicysOptions) {
  Chain chain(host_);
  ASSERT_EQ("", Build(chain, R"(
policy:
  retry_on: [5xx]
  per_try_timeout: 1.5s
  max_replay_bytes: 4096
  attempt_count_header: true
)"));
  auto s = chain.newStream();
  s->requestHeaders(Request());
  ASSERT_TRUE(s->retryOptions().has_value());
  EXPECT_EQ(1500u, s->retryOptions()->per_try_timeout_ms);
  EXPECT_EQ(4096u, s->retryOptions()->max_replay_bytes);
  EXPECT_EQ(SL_RETRY_ATTEMPT_COUNT_HEADER, s->retryOptions()->flags);
  EXPECT_EQ(0u, s->retryOptions()->filter);
  EXPECT_EQ("c", s->upstream()->cluster);
}

TEST_F(RetryPluginTest, NoPolicyNoRetries) {
  for (const char* config : {"", "policy: {}", "policy: {retry_on: [5xx], num_retries: 0}"}) {
    Chain chain(host_);
    ASSERT_EQ("", Build(chain, config)) << config;
    auto s = chain.newStream();
    s->requestHeaders(Request());
    EXPECT_FALSE(s->retryOptions().has_value()) << config;
    // Asked anyway (no filter enabled retries): the outcome stands.
    const sl_type_attempt_result r = Response(503);
    EXPECT_EQ(SL_RETRY_NO, s->upstreamRetry(r, nullptr)) << config;
  }
}

TEST_F(RetryPluginTest, ARoutesPolicyReplacesTheDefault) {
  Chain chain(host_);
  const std::string routes = std::string(R"(      - match: {prefix: /own}
        route: {cluster: c}
        typed_per_filter_config:
          retry: {"@type": )") +
                             kPolicyType + R"(, retry_on: [reset], per_try_timeout: 2s}
      - match: {prefix: /none}
        route: {cluster: c}
        typed_per_filter_config:
          retry: {"@type": )" +
                             kPolicyType + R"(, retry_on: [5xx], num_retries: 0}
      - route: {cluster: c}
)";
  ASSERT_EQ("", Build(chain, "policy: {retry_on: [5xx], per_try_timeout: 1s}", routes));
  auto own = chain.newStream();
  own->requestHeaders(Request("GET", "/own/x"));
  ASSERT_TRUE(own->retryOptions().has_value());
  EXPECT_EQ(2000u, own->retryOptions()->per_try_timeout_ms);
  // The route's policy retries resets, not a 503.
  sl_type_attempt_result r503 = Response(503);
  EXPECT_EQ(SL_RETRY_NO, own->upstreamRetry(r503, nullptr));
  sl_type_attempt_result closed =
      Failure(SL_UPSTREAM_ERROR_CONNECTION_CLOSED, SL_RETRY_SAFETY_IDEMPOTENT_ONLY);
  EXPECT_EQ(SL_RETRY_YES, own->upstreamRetry(closed, nullptr));

  auto none = chain.newStream();
  none->requestHeaders(Request("GET", "/none/x"));
  EXPECT_FALSE(none->retryOptions().has_value());

  auto other = chain.newStream();
  other->requestHeaders(Request("GET", "/else"));
  ASSERT_TRUE(other->retryOptions().has_value());
  EXPECT_EQ(1000u, other->retryOptions()->per_try_timeout_ms);
  EXPECT_EQ(SL_RETRY_YES, other->upstreamRetry(r503, nullptr));
}

TEST_F(RetryPluginTest, DecisionsAndMetrics) {
  Chain chain(host_);
  ASSERT_EQ("", Build(chain, R"(
policy:
  retry_on: [5xx]
  num_retries: 2
  backoff: {base_interval: 0.01s, max_interval: 0.05s}
  retry_budget: {budget_percent: 35, min_retry_concurrency: 7}
)"));
  auto s = chain.newStream();
  s->requestHeaders(Request());
  const sl_type_attempt_result r = Response(503);
  sl_type_retry_decision d{};
  EXPECT_EQ(SL_RETRY_YES, s->upstreamRetry(r, &d));
  EXPECT_LE(d.delay_ms, 10u);  // retry 0: [0, base]
  EXPECT_EQ(35.0, d.budget_percent);
  EXPECT_EQ(7u, d.min_retry_concurrency);
  EXPECT_EQ(SL_RETRY_YES, s->upstreamRetry(r, &d));
  EXPECT_LE(d.delay_ms, 20u);  // retry 1: [0, 2 base]
  // A 200 is no failure: nothing counted.
  const sl_type_attempt_result ok = Response(200);
  EXPECT_EQ(SL_RETRY_NO, s->upstreamRetry(ok, &d));
  EXPECT_EQ(SL_RETRY_LIMIT_EXCEEDED, s->upstreamRetry(r, &d));
  EXPECT_EQ(2, host_.metric("plugin.retry.retries"));
  EXPECT_EQ(1, host_.metric("plugin.retry.retries_exhausted"));
  // Counted per stream: a new stream has its retries again.
  auto next = chain.newStream();
  next->requestHeaders(Request());
  EXPECT_EQ(SL_RETRY_YES, next->upstreamRetry(r, &d));
  EXPECT_EQ(3, host_.metric("plugin.retry.retries"));
}

TEST_F(RetryPluginTest, NonIdempotentMethods) {
  Chain chain(host_);
  ASSERT_EQ("", Build(chain, "policy: {retry_on: [5xx, connect-failure]}"));
  auto post = chain.newStream();
  post->requestHeaders(Request("POST"));
  ASSERT_TRUE(post->retryOptions().has_value());  // connect failures are still retried
  const sl_type_attempt_result r503 = Response(503);
  EXPECT_EQ(SL_RETRY_NO, post->upstreamRetry(r503, nullptr));
  EXPECT_EQ(1, host_.metric("plugin.retry.not_retried_non_idempotent"));
  const sl_type_attempt_result refused =
      Failure(SL_UPSTREAM_ERROR_CONNECT_REFUSED, SL_RETRY_SAFETY_SAFE);
  EXPECT_EQ(SL_RETRY_YES, post->upstreamRetry(refused, nullptr));
  auto put = chain.newStream();
  put->requestHeaders(Request("PUT"));
  EXPECT_EQ(SL_RETRY_YES, put->upstreamRetry(r503, nullptr));
}

TEST_F(RetryPluginTest, RetryAfter) {
  Chain chain(host_);
  ASSERT_EQ("", Build(chain, "policy: {retry_on: [5xx], num_retries: 5, max_retry_after: 10s}"));
  auto s = chain.newStream();
  s->requestHeaders(Request());
  const sl_type_header two[] = {{{"Retry-After", 11}, {"2", 1}}};
  const sl_type_attempt_result r = Response(503, two, 1);
  sl_type_retry_decision d{};
  EXPECT_EQ(SL_RETRY_YES, s->upstreamRetry(r, &d));
  EXPECT_EQ(2000u, d.delay_ms);
  EXPECT_EQ(1, host_.metric("plugin.retry.retry_after_honoured"));
  const sl_type_header hour[] = {{{"retry-after", 11}, {"3600", 4}}};
  const sl_type_attempt_result too_long = Response(503, hour, 1);
  EXPECT_EQ(SL_RETRY_NO, s->upstreamRetry(too_long, &d));
  EXPECT_EQ(1, host_.metric("plugin.retry.retry_after_too_long"));
  EXPECT_EQ(1, host_.metric("plugin.retry.retries"));
}

TEST_F(RetryPluginTest, EveryMetricIsDeclared) {
  Chain chain(host_);
  ASSERT_EQ("", Build(chain, ""));
  for (const char* name : {"retries", "retries_exhausted", "retry_after_honoured",
                           "retry_after_too_long", "not_retried_non_idempotent"}) {
    EXPECT_EQ(1u, host_.metrics().count(std::string("plugin.retry.") + name)) << name;
  }
}

}  // namespace
