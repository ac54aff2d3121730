// The retry plugin's policy (policy.cc) without a host: config checks and defaults, retry_on per
// error kind, status and header, num_retries, the idempotency rule, backoff bounds (with an
// injected random source: ranges, not time) and Retry-After parsing.

#include "extensions/filters/http/retry/policy.h"

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::retry {
namespace {

// 1994-11-06T08:49:37Z, the RFC's example date.
constexpr int64_t kRfcExample = 784111777;

// A random source that records the bounds it was asked for and answers a fixed choice.
class FakeRandom : public RandomSource {
 public:
  enum class Pick { kMin, kMax };
  explicit FakeRandom(Pick pick = Pick::kMax) : pick_(pick) {}
  uint64_t Uniform(uint64_t max_inclusive) override {
    bounds.push_back(max_inclusive);
    return pick_ == Pick::kMax ? max_inclusive : 0;
  }
  std::vector<uint64_t> bounds;

 private:
  Pick pick_;
};

Policy Build(PolicyInput in) {
  std::string error;
  std::optional<Policy> p = BuildPolicy(in, "policy", &error);
  EXPECT_TRUE(p.has_value()) << error;
  return p.value_or(Policy{});
}

std::string BuildError(PolicyInput in, std::string_view where = "policy") {
  std::string error;
  std::optional<Policy> p = BuildPolicy(in, where, &error);
  EXPECT_FALSE(p.has_value());
  return error;
}

PolicyInput On(std::vector<std::string> retry_on) {
  PolicyInput in;
  in.retry_on = std::move(retry_on);
  return in;
}

Policy PolicyOn(std::vector<std::string> retry_on) { return Build(On(std::move(retry_on))); }

DurationInput Ms(int64_t ms) {
  DurationInput d;
  d.set = true;
  d.seconds = ms / 1000;
  d.nanos = static_cast<int32_t>((ms % 1000) * 1000000);
  return d;
}

// An attempt result as the core fills it (ABI 1.4 size).
struct Attempt {
  sl_type_attempt_result r{};
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<sl_type_header> views;

  Attempt() {
    r.size = sizeof(r);
    r.attempt = 1;
  }
  static Attempt Response(uint32_t status,
                          std::vector<std::pair<std::string, std::string>> headers = {},
                          uint32_t safety = SL_RETRY_SAFETY_IDEMPOTENT_ONLY) {
    Attempt a;
    a.r.outcome = SL_ATTEMPT_RESPONSE;
    a.r.status = status;
    a.r.error_kind = SL_UPSTREAM_ERROR_NONE;
    a.r.retry_safety = safety;
    a.fields = std::move(headers);
    return a;
  }
  static Attempt Failure(uint32_t outcome, uint32_t kind, uint32_t safety) {
    Attempt a;
    a.r.outcome = outcome;
    a.r.error_kind = kind;
    a.r.retry_safety = safety;
    return a;
  }
  // The result with its header views pointing at `fields` (call after copying/moving).
  const sl_type_attempt_result& get() {
    views.clear();
    for (const auto& [n, v] : fields) {
      views.push_back(sl_type_header{{n.data(), n.size()}, {v.data(), v.size()}});
    }
    r.headers = views.empty() ? nullptr : views.data();
    r.header_count = views.size();
    return r;
  }
};

// The failure kinds the core reports, with the outcome and safety it reports them with.
struct Kind {
  const char* name;
  uint32_t outcome;
  uint32_t kind;
  uint32_t safety;
};
const Kind kKinds[] = {
    {"connect_refused", SL_ATTEMPT_CONNECT_FAILURE, SL_UPSTREAM_ERROR_CONNECT_REFUSED,
     SL_RETRY_SAFETY_SAFE},
    {"connect_timeout", SL_ATTEMPT_CONNECT_FAILURE, SL_UPSTREAM_ERROR_CONNECT_TIMEOUT,
     SL_RETRY_SAFETY_SAFE},
    {"tls_failure", SL_ATTEMPT_CONNECT_FAILURE, SL_UPSTREAM_ERROR_TLS_FAILURE,
     SL_RETRY_SAFETY_SAFE},
    {"overflow", SL_ATTEMPT_OVERFLOW, SL_UPSTREAM_ERROR_OVERFLOW, SL_RETRY_SAFETY_SAFE},
    {"no_healthy_host", SL_ATTEMPT_CONNECT_FAILURE, SL_UPSTREAM_ERROR_NO_HEALTHY_HOST,
     SL_RETRY_SAFETY_SAFE},
    {"refused_stream", SL_ATTEMPT_RESET, SL_UPSTREAM_ERROR_REFUSED_STREAM, SL_RETRY_SAFETY_SAFE},
    {"connection_closed", SL_ATTEMPT_RESET, SL_UPSTREAM_ERROR_CONNECTION_CLOSED,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"reset", SL_ATTEMPT_RESET, SL_UPSTREAM_ERROR_RESET, SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"protocol_error", SL_ATTEMPT_PROTOCOL_ERROR, SL_UPSTREAM_ERROR_PROTOCOL_ERROR,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"route_timeout", SL_ATTEMPT_TIMEOUT, SL_UPSTREAM_ERROR_TIMEOUT,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"per_try_timeout", SL_ATTEMPT_TIMEOUT, SL_UPSTREAM_ERROR_PER_TRY_TIMEOUT,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"idle_timeout", SL_ATTEMPT_TIMEOUT, SL_UPSTREAM_ERROR_IDLE_TIMEOUT,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"headers_timeout", SL_ATTEMPT_TIMEOUT, SL_UPSTREAM_ERROR_HEADERS_TIMEOUT,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
    {"send_timeout", SL_ATTEMPT_TIMEOUT, SL_UPSTREAM_ERROR_SEND_TIMEOUT,
     SL_RETRY_SAFETY_IDEMPOTENT_ONLY},
};

// ------------------------------------------------------------------------------------------
// Config

TEST(BuildPolicyTest, Defaults) {
  const Policy p = PolicyOn({"5xx"});
  EXPECT_EQ(kRetryOn5xx, p.retry_on);
  EXPECT_EQ(1u, p.num_retries);
  EXPECT_EQ(0u, p.per_try_timeout_ms);
  EXPECT_EQ(25u, p.base_interval_ms);
  EXPECT_EQ(250u, p.max_interval_ms);
  EXPECT_EQ(10000u, p.max_retry_after_ms);
  EXPECT_EQ(20.0, p.budget_percent);
  EXPECT_EQ(3u, p.min_retry_concurrency);
  EXPECT_FALSE(p.retry_non_idempotent);
  EXPECT_FALSE(p.attempt_count_header);
  EXPECT_EQ(0u, p.max_replay_bytes);
  EXPECT_TRUE(p.enabled());
}

TEST(BuildPolicyTest, EveryConditionHasABit) {
  uint32_t all = 0;
  for (const char* name : {"5xx", "gateway-error", "connect-failure", "reset", "refused-stream",
                           "retriable-status-codes", "retriable-headers", "per-try-timeout"}) {
    const uint32_t bit = RetryOnBit(name);
    EXPECT_NE(0u, bit) << name;
    EXPECT_EQ(0u, all & bit) << name << " shares a bit";
    all |= bit;
    EXPECT_NE(std::string::npos, std::string(RetryOnNames()).find(name)) << name;
  }
  EXPECT_EQ(0u, RetryOnBit("5XX"));  // names are exact, as Envoy's
  EXPECT_EQ(0u, RetryOnBit(""));
}

TEST(BuildPolicyTest, DisabledByZeroRetriesOrNoCondition) {
  PolicyInput in = On({"5xx"});
  in.num_retries = 0;
  EXPECT_FALSE(Build(in).enabled());
  EXPECT_FALSE(Build(PolicyInput{}).enabled());
}

TEST(BuildPolicyTest, ExplicitValues) {
  PolicyInput in = On({"gateway-error", "retriable-status-codes", "retriable-headers"});
  in.num_retries = 4;
  in.per_try_timeout = Ms(1500);
  in.retriable_status_codes = {409, 429};
  in.retriable_headers.push_back({"X-Retry-Me", HeaderInput::Match::kExact, "yes"});
  in.base_interval = Ms(100);
  in.max_retry_after = Ms(0);
  in.budget_percent = 0.0;
  in.min_retry_concurrency = 7;
  in.retry_non_idempotent = true;
  in.attempt_count_header = true;
  in.max_replay_bytes = 4096;
  const Policy p = Build(in);
  EXPECT_EQ(kRetryOnGatewayError | kRetryOnRetriableStatusCodes | kRetryOnRetriableHeaders,
            p.retry_on);
  EXPECT_EQ(4u, p.num_retries);
  EXPECT_EQ(1500u, p.per_try_timeout_ms);
  EXPECT_EQ((std::vector<uint32_t>{409, 429}), p.retriable_status_codes);
  ASSERT_EQ(1u, p.retriable_headers.size());
  EXPECT_EQ("x-retry-me", p.retriable_headers[0].name);  // compared case-insensitively
  EXPECT_EQ(100u, p.base_interval_ms);
  EXPECT_EQ(1000u, p.max_interval_ms);  // 10 x base by default
  EXPECT_EQ(0u, p.max_retry_after_ms);
  EXPECT_EQ(0.0, p.budget_percent);
  EXPECT_EQ(7u, p.min_retry_concurrency);
  EXPECT_TRUE(p.retry_non_idempotent);
  EXPECT_TRUE(p.attempt_count_header);
  EXPECT_EQ(4096u, p.max_replay_bytes);
}

TEST(BuildPolicyTest, Errors) {
  EXPECT_EQ(
      "policy.retry_on[1]: \"5xxx\" is not a retry condition (one of: 5xx, gateway-error, "
      "connect-failure, reset, refused-stream, retriable-status-codes, retriable-headers, "
      "per-try-timeout)",
      BuildError(On({"reset", "5xxx"})));
  // A route's policy: the host puts the route's field path in front.
  EXPECT_EQ(0u, BuildError(On({"bogus"}), "").find("retry_on[0]: \"bogus\""));

  PolicyInput codes_alone = On({"5xx"});
  codes_alone.retriable_status_codes = {503};
  EXPECT_EQ(
      "policy.retriable_status_codes: given, but retry_on lacks \"retriable-status-codes\" "
      "(they would never apply)",
      BuildError(codes_alone));
  EXPECT_EQ(
      "policy.retry_on: \"retriable-status-codes\" needs retriable_status_codes (none "
      "are given)",
      BuildError(On({"retriable-status-codes"})));
  PolicyInput bad_code = On({"retriable-status-codes"});
  bad_code.retriable_status_codes = {503, 600};
  EXPECT_EQ("policy.retriable_status_codes[1]: 600 is not an HTTP status (100-599)",
            BuildError(bad_code));
  bad_code.retriable_status_codes = {99};
  EXPECT_EQ("policy.retriable_status_codes[0]: 99 is not an HTTP status (100-599)",
            BuildError(bad_code));

  PolicyInput headers_alone = On({"5xx"});
  headers_alone.retriable_headers.push_back({"x-a", HeaderInput::Match::kPresent, ""});
  EXPECT_EQ(
      "policy.retriable_headers: given, but retry_on lacks \"retriable-headers\" (they would "
      "never apply)",
      BuildError(headers_alone));
  EXPECT_EQ("policy.retry_on: \"retriable-headers\" needs retriable_headers (none are given)",
            BuildError(On({"retriable-headers"})));
  PolicyInput bad_header = On({"retriable-headers"});
  bad_header.retriable_headers.push_back({"bad name", HeaderInput::Match::kPresent, ""});
  EXPECT_EQ("policy.retriable_headers[0].name: \"bad name\" is not a field name",
            BuildError(bad_header));
  bad_header.retriable_headers[0] = {"x-a", HeaderInput::Match::kExact, "a\r\nb"};
  EXPECT_EQ(
      "policy.retriable_headers[0].exact: must not contain CR, LF, NUL or other control "
      "characters",
      BuildError(bad_header));

  PolicyInput zero_base = On({"5xx"});
  zero_base.base_interval = Ms(0);
  EXPECT_EQ("policy.backoff.base_interval: must be at least 1ms", BuildError(zero_base));
  PolicyInput sub_ms = On({"5xx"});
  sub_ms.per_try_timeout.set = true;
  sub_ms.per_try_timeout.nanos = 500;
  EXPECT_EQ(
      "policy.per_try_timeout: must be 0s or at least 1ms (durations count whole "
      "milliseconds), got 500ns",
      BuildError(sub_ms));
  PolicyInput negative = On({"5xx"});
  negative.max_retry_after.set = true;
  negative.max_retry_after.seconds = -1;
  EXPECT_EQ("policy.max_retry_after: must be a duration from 0s up, got -1s 0ns",
            BuildError(negative));
  PolicyInput inverted = On({"5xx"});
  inverted.base_interval = Ms(100);
  inverted.max_interval = Ms(50);
  EXPECT_EQ("policy.backoff.max_interval: must be at least base_interval (100ms), got 50ms",
            BuildError(inverted));
  PolicyInput budget = On({"5xx"});
  budget.budget_percent = 100.5;
  EXPECT_EQ("policy.retry_budget.budget_percent: must be from 0 to 100, got 100.5",
            BuildError(budget));
  budget.budget_percent = -1;
  EXPECT_EQ("policy.retry_budget.budget_percent: must be from 0 to 100, got -1",
            BuildError(budget));
  budget.budget_percent = std::nan("");
  EXPECT_EQ(0u, BuildError(budget).find("policy.retry_budget.budget_percent: must be from 0"));
}

TEST(BuildPolicyTest, DuplicateConditionsAreHarmless) {
  EXPECT_EQ(kRetryOnReset, PolicyOn({"reset", "reset"}).retry_on);
}

// ------------------------------------------------------------------------------------------
// retry_on

// Which failure kinds each condition retries (the table README.md documents).
TEST(ConditionTest, FailuresPerCondition) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> want = {
      {"5xx",
       {"connect_refused", "connect_timeout", "tls_failure", "refused_stream", "connection_closed",
        "reset", "protocol_error", "per_try_timeout", "idle_timeout", "headers_timeout",
        "send_timeout"}},
      {"gateway-error",
       {"connect_refused", "connect_timeout", "tls_failure", "refused_stream", "connection_closed",
        "reset", "protocol_error", "per_try_timeout", "idle_timeout", "headers_timeout",
        "send_timeout"}},
      {"reset",
       {"connect_refused", "connect_timeout", "tls_failure", "refused_stream", "connection_closed",
        "reset", "protocol_error", "per_try_timeout", "idle_timeout", "headers_timeout",
        "send_timeout"}},
      {"connect-failure", {"connect_refused", "connect_timeout", "tls_failure"}},
      {"refused-stream", {"refused_stream"}},
      {"per-try-timeout", {"per_try_timeout"}},
  };
  for (const auto& [condition, kinds] : want) {
    const Policy p = PolicyOn({condition});
    std::vector<std::string> got;
    for (const Kind& k : kKinds) {
      Attempt a = Attempt::Failure(k.outcome, k.kind, k.safety);
      if (ConditionMatches(p, a.get())) got.push_back(k.name);
    }
    EXPECT_EQ(kinds, got) << condition;
  }
  // Status conditions match no failure.
  PolicyInput codes = On({"retriable-status-codes"});
  codes.retriable_status_codes = {503};
  const Policy p = Build(codes);
  for (const Kind& k : kKinds) {
    Attempt a = Attempt::Failure(k.outcome, k.kind, k.safety);
    EXPECT_FALSE(ConditionMatches(p, a.get())) << k.name;
  }
}

TEST(ConditionTest, NeverRetried) {
  const Policy p = PolicyOn(
      {"5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "per-try-timeout"});
  for (uint32_t kind :
       {SL_UPSTREAM_ERROR_OVERFLOW, SL_UPSTREAM_ERROR_NO_HEALTHY_HOST, SL_UPSTREAM_ERROR_TIMEOUT}) {
    Attempt a = Attempt::Failure(SL_ATTEMPT_RESET, kind, SL_RETRY_SAFETY_SAFE);
    EXPECT_FALSE(ConditionMatches(p, a.get())) << kind;
  }
  Attempt cancelled =
      Attempt::Failure(SL_ATTEMPT_CANCELLED, SL_UPSTREAM_ERROR_NONE, SL_RETRY_SAFETY_SAFE);
  EXPECT_FALSE(ConditionMatches(p, cancelled.get()));
}

TEST(ConditionTest, AnUnknownKindFallsBackToTheOutcome) {
  const Policy connect = PolicyOn({"connect-failure"});
  const Policy per_try = PolicyOn({"per-try-timeout"});
  const Policy reset = PolicyOn({"reset"});
  Attempt a = Attempt::Failure(SL_ATTEMPT_CONNECT_FAILURE, 99, SL_RETRY_SAFETY_SAFE);
  EXPECT_TRUE(ConditionMatches(connect, a.get()));
  EXPECT_FALSE(ConditionMatches(per_try, a.get()));
  Attempt t = Attempt::Failure(SL_ATTEMPT_TIMEOUT, 99, SL_RETRY_SAFETY_SAFE);
  EXPECT_TRUE(ConditionMatches(per_try, t.get()));
  Attempt pe = Attempt::Failure(SL_ATTEMPT_PROTOCOL_ERROR, SL_UPSTREAM_ERROR_NONE,
                                SL_RETRY_SAFETY_IDEMPOTENT_ONLY);
  EXPECT_TRUE(ConditionMatches(reset, pe.get()));
  EXPECT_FALSE(ConditionMatches(connect, pe.get()));
  Attempt o = Attempt::Failure(SL_ATTEMPT_OVERFLOW, 99, SL_RETRY_SAFETY_SAFE);
  EXPECT_FALSE(ConditionMatches(reset, o.get()));
}

TEST(ConditionTest, AResultFromBeforeErrorKindsIsReadByItsOutcome) {
  // A result whose writer knew only the 1.3 fields: error_kind and retry_safety are not read.
  Attempt a = Attempt::Failure(SL_ATTEMPT_CONNECT_FAILURE, SL_UPSTREAM_ERROR_OVERFLOW,
                               SL_RETRY_SAFETY_SAFE);
  a.r.size = offsetof(sl_type_attempt_result, error_kind);
  EXPECT_TRUE(ConditionMatches(PolicyOn({"connect-failure"}), a.get()));
  // ... and its safety is taken as "may have been processed".
  FakeRandom random;
  EXPECT_EQ(Verdict::kNotIdempotent,
            Decide(PolicyOn({"connect-failure"}), a.get(), false, 0, random, 0).verdict);
}

TEST(ConditionTest, Statuses) {
  const Policy five = PolicyOn({"5xx"});
  const Policy gateway = PolicyOn({"gateway-error"});
  PolicyInput codes_in = On({"retriable-status-codes"});
  codes_in.retriable_status_codes = {409, 503};
  const Policy codes = Build(codes_in);
  const Policy connect =
      PolicyOn({"connect-failure", "reset", "refused-stream", "per-try-timeout"});
  for (uint32_t status :
       {200u, 204u, 301u, 404u, 409u, 429u, 499u, 500u, 501u, 502u, 503u, 504u, 505u, 599u}) {
    Attempt a = Attempt::Response(status);
    EXPECT_EQ(status >= 500, ConditionMatches(five, a.get())) << status;
    EXPECT_EQ(status == 502 || status == 503 || status == 504, ConditionMatches(gateway, a.get()))
        << status;
    EXPECT_EQ(status == 409 || status == 503, ConditionMatches(codes, a.get())) << status;
    // Failure conditions never match a response, whatever its status.
    EXPECT_FALSE(ConditionMatches(connect, a.get())) << status;
  }
}

TEST(ConditionTest, RetriableHeaders) {
  PolicyInput in = On({"retriable-headers"});
  in.retriable_headers.push_back({"X-Upstream-Busy", HeaderInput::Match::kPresent, ""});
  in.retriable_headers.push_back({"x-state", HeaderInput::Match::kExact, "retry"});
  const Policy p = Build(in);
  struct Case {
    std::vector<std::pair<std::string, std::string>> headers;
    bool match;
  };
  const Case cases[] = {
      {{}, false},
      {{{"x-upstream-busy", ""}}, true},
      {{{"X-UPSTREAM-BUSY", "1"}}, true},  // names case-insensitive
      {{{"x-state", "retry"}}, true},
      {{{"X-State", "retry"}}, true},
      {{{"x-state", "Retry"}}, false},  // values exact
      {{{"x-state", "retry-later"}}, false},
      {{{"x-state", "no"}, {"x-state", "retry"}}, false},  // the first value decides
      {{{"content-type", "text/plain"}}, false},
  };
  for (const Case& c : cases) {
    Attempt a = Attempt::Response(200, c.headers);
    EXPECT_EQ(c.match, ConditionMatches(p, a.get())) << testing::PrintToString(c.headers);
  }
  PolicyInput absent = On({"retriable-headers"});
  absent.retriable_headers.push_back({"x-healthy", HeaderInput::Match::kAbsent, ""});
  const Policy pa = Build(absent);
  Attempt with = Attempt::Response(200, {{"x-healthy", "1"}});
  Attempt without = Attempt::Response(200, {{"x-other", "1"}});
  EXPECT_FALSE(ConditionMatches(pa, with.get()));
  EXPECT_TRUE(ConditionMatches(pa, without.get()));
}

// ------------------------------------------------------------------------------------------
// Decide: counts and safety

TEST(DecideTest, NumRetries) {
  PolicyInput in = On({"5xx"});
  in.num_retries = 3;
  const Policy p = Build(in);
  FakeRandom random;
  Attempt a = Attempt::Response(503);
  for (uint32_t done = 0; done < 3; ++done) {
    EXPECT_EQ(Verdict::kRetry, Decide(p, a.get(), true, done, random, 0).verdict) << done;
  }
  EXPECT_EQ(Verdict::kLimitExceeded, Decide(p, a.get(), true, 3, random, 0).verdict);
  EXPECT_EQ(Verdict::kLimitExceeded, Decide(p, a.get(), true, 4, random, 0).verdict);
  // Only a failure that would be retried counts as exhausting the retries.
  Attempt ok = Attempt::Response(200);
  EXPECT_EQ(Verdict::kNotRetriable, Decide(p, ok.get(), true, 3, random, 0).verdict);
}

TEST(DecideTest, Idempotency) {
  const Policy p = PolicyOn({"5xx"});
  PolicyInput any_in = On({"5xx"});
  any_in.retry_non_idempotent = true;
  const Policy any = Build(any_in);
  FakeRandom random;
  struct Case {
    uint32_t safety;
    bool idempotent;
    Verdict strict;  // retry_non_idempotent false
    Verdict loose;   // true
  };
  const Case cases[] = {
      // Nothing reached the upstream application: any method.
      {SL_RETRY_SAFETY_SAFE, false, Verdict::kRetry, Verdict::kRetry},
      {SL_RETRY_SAFETY_SAFE, true, Verdict::kRetry, Verdict::kRetry},
      // It may have acted on it: idempotent methods, unless configured.
      {SL_RETRY_SAFETY_IDEMPOTENT_ONLY, true, Verdict::kRetry, Verdict::kRetry},
      {SL_RETRY_SAFETY_IDEMPOTENT_ONLY, false, Verdict::kNotIdempotent, Verdict::kRetry},
      // Part of the response went out: never.
      {SL_RETRY_SAFETY_NEVER, true, Verdict::kNotRetriable, Verdict::kNotRetriable},
      {SL_RETRY_SAFETY_NEVER, false, Verdict::kNotRetriable, Verdict::kNotRetriable},
      // A value newer than the plugin: the strictest reading.
      {7, true, Verdict::kNotRetriable, Verdict::kNotRetriable},
  };
  for (const Case& c : cases) {
    Attempt a = Attempt::Failure(SL_ATTEMPT_RESET, SL_UPSTREAM_ERROR_CONNECTION_CLOSED, c.safety);
    EXPECT_EQ(c.strict, Decide(p, a.get(), c.idempotent, 0, random, 0).verdict)
        << c.safety << " " << c.idempotent;
    EXPECT_EQ(c.loose, Decide(any, a.get(), c.idempotent, 0, random, 0).verdict)
        << c.safety << " " << c.idempotent;
  }
  // A 503 from the application: a POST is not sent again.
  Attempt post_503 = Attempt::Response(503);
  EXPECT_EQ(Verdict::kNotIdempotent, Decide(p, post_503.get(), false, 0, random, 0).verdict);
  // The idempotency rule comes before the count: nothing was retried, so nothing is exhausted.
  EXPECT_EQ(Verdict::kNotIdempotent, Decide(p, post_503.get(), false, 5, random, 0).verdict);
}

TEST(DecideTest, Methods) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    EXPECT_TRUE(IsIdempotentMethod(m)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", "PROPFIND", ""}) {
    EXPECT_FALSE(IsIdempotentMethod(m)) << m;
  }
}

// ------------------------------------------------------------------------------------------
// Backoff

TEST(BackoffTest, CeilingDoublesUpToTheMax) {
  const Policy p = PolicyOn({"5xx"});  // 25ms, max 250ms
  FakeRandom random;
  std::vector<uint64_t> got;
  for (uint32_t k : {0u, 1u, 2u, 3u, 4u, 5u, 63u, 64u, 1000u})
    got.push_back(BackoffMs(p, k, random));
  EXPECT_EQ((std::vector<uint64_t>{25, 50, 100, 200, 250, 250, 250, 250, 250}), got);
  EXPECT_EQ(got, random.bounds);  // FakeRandom answers the bound it was given
  FakeRandom low(FakeRandom::Pick::kMin);
  EXPECT_EQ(0u, BackoffMs(p, 3, low));  // fully jittered: from 0
}

TEST(BackoffTest, HugeIntervalsDoNotOverflow) {
  PolicyInput in = On({"5xx"});
  in.base_interval = Ms(int64_t{1} << 40);
  in.max_interval.set = true;
  in.max_interval.seconds = 315576000000;  // the largest Duration
  const Policy p = Build(in);
  FakeRandom random;
  uint64_t last = 0;
  for (uint32_t k = 0; k < 70; ++k) {
    const uint64_t b = BackoffMs(p, k, random);
    EXPECT_GE(b, last) << k;
    EXPECT_LE(b, p.max_interval_ms) << k;
    last = b;
  }
  EXPECT_EQ(p.max_interval_ms, last);
}

TEST(BackoffTest, RealRandomnessStaysInRange) {
  PolicyInput in = On({"5xx"});
  in.base_interval = Ms(10);
  in.max_interval = Ms(70);
  const Policy p = Build(in);
  for (uint32_t k = 0; k < 5; ++k) {
    const uint64_t ceiling = std::min<uint64_t>(10u << k, 70);
    uint64_t lo = ceiling, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const uint64_t b = BackoffMs(p, k, ThreadRandom());
      ASSERT_LE(b, ceiling) << k;
      lo = std::min(lo, b);
      hi = std::max(hi, b);
    }
    // 2000 uniform draws from at most 71 values reach both ends (a miss: p < 1e-12).
    EXPECT_EQ(0u, lo) << k;
    EXPECT_EQ(ceiling, hi) << k;
  }
}

TEST(BackoffTest, DecideUsesTheRetryIndex) {
  PolicyInput in = On({"reset"});
  in.num_retries = 5;
  const Policy p = Build(in);
  FakeRandom random;
  Attempt a =
      Attempt::Failure(SL_ATTEMPT_RESET, SL_UPSTREAM_ERROR_CONNECTION_CLOSED, SL_RETRY_SAFETY_SAFE);
  std::vector<uint64_t> delays;
  for (uint32_t done = 0; done < 5; ++done) {
    const Decision d = Decide(p, a.get(), true, done, random, 0);
    ASSERT_EQ(Verdict::kRetry, d.verdict);
    EXPECT_FALSE(d.retry_after_honoured);
    delays.push_back(d.delay_ms);
  }
  EXPECT_EQ((std::vector<uint64_t>{25, 50, 100, 200, 250}), delays);
}

// ------------------------------------------------------------------------------------------
// Retry-After

TEST(RetryAfterTest, DeltaSeconds) {
  EXPECT_EQ(120000u, ParseRetryAfterMs("120", 0));
  EXPECT_EQ(0u, ParseRetryAfterMs("0", 0));
  EXPECT_EQ(5000u, ParseRetryAfterMs(" \t5 ", 0));  // optional whitespace around the value
  EXPECT_EQ(7000u, ParseRetryAfterMs("007", 0));
  // Saturates: far above any max_retry_after, never wrapped to something small.
  const std::optional<uint64_t> huge = ParseRetryAfterMs("99999999999999999999999999", 0);
  ASSERT_TRUE(huge.has_value());
  EXPECT_GT(*huge, uint64_t{1} << 60);
}

TEST(RetryAfterTest, Garbage) {
  for (const char* v : {"",
                        " ",
                        "-1",
                        "+5",
                        "1.5",
                        "5s",
                        "five",
                        "1 2",
                        "0x10",
                        "Sun, 06 Nov 1994 08:49:37 UTC",
                        "Sun, 06 Nov 1994 08:49:37 gmt",
                        "Sun, 6 Nov 1994 08:49:37 GMT",
                        "Sun, 06 Foo 1994 08:49:37 GMT",
                        "Sun, 31 Feb 1994 08:49:37 GMT",
                        "Sun, 06 Nov 1994 24:00:00 GMT",
                        "Sun, 06 Nov 1994 08:60:00 GMT",
                        "Xyz, 06 Nov 1994 08:49:37 GMT",
                        "Sunday, 06-Nov-94 08:49:37 UTC",
                        "Sun Nov 32 08:49:37 1994",
                        "Sun Nov  6 08:49:37 94"}) {
    EXPECT_EQ(std::nullopt, ParseRetryAfterMs(v, 0)) << "\"" << v << "\"";
  }
}

TEST(RetryAfterTest, HttpDates) {
  // The three forms RFC 9110 §5.6.7 makes recipients accept, for the same instant.
  EXPECT_EQ(kRfcExample, ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"));
  EXPECT_EQ(kRfcExample, ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"));
  EXPECT_EQ(kRfcExample, ParseHttpDate("Sun Nov  6 08:49:37 1994"));
  EXPECT_EQ(int64_t{0}, ParseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT"));
  EXPECT_EQ(int64_t{951782400}, ParseHttpDate("Tue, 29 Feb 2000 00:00:00 GMT"));  // leap day
  EXPECT_EQ(std::nullopt, ParseHttpDate("Thu, 29 Feb 1900 00:00:00 GMT"));        // not leap
  EXPECT_EQ(int64_t{4102444800}, ParseHttpDate("Fri, 01 Jan 2100 00:00:00 GMT"));
  EXPECT_EQ(int64_t{1009843200}, ParseHttpDate("Tuesday, 01-Jan-02 00:00:00 GMT"));  // 20xx
}

TEST(RetryAfterTest, DatesAreRelativeToNow) {
  EXPECT_EQ(3000u, ParseRetryAfterMs("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample - 3));
  EXPECT_EQ(0u, ParseRetryAfterMs("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample));
  EXPECT_EQ(0u, ParseRetryAfterMs("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample + 100));  // past
}

TEST(RetryAfterTest, HonouredOnRetriedResponses) {
  PolicyInput in = On({"5xx", "retriable-status-codes"});
  in.retriable_status_codes = {429};
  const Policy p = Build(in);  // max_retry_after 10s
  FakeRandom random;
  struct Case {
    uint32_t status;
    std::string retry_after;
    Verdict verdict;
    uint64_t delay_ms;
    bool honoured;
  };
  const Case cases[] = {
      {503, "2", Verdict::kRetry, 2000, true},
      {429, "1", Verdict::kRetry, 1000, true},
      {500, "3", Verdict::kRetry, 3000, true},  // any retried response that has one
      {503, "0", Verdict::kRetry, 0, true},
      {503, "10", Verdict::kRetry, 10000, true},  // at the max
      {503, "11", Verdict::kRetryAfterTooLong, 0, false},
      {503, "3600", Verdict::kRetryAfterTooLong, 0, false},
      {503, "soon", Verdict::kRetry, 25, false},  // unreadable: the backoff
      {503, "Sun, 06 Nov 1994 08:49:42 GMT", Verdict::kRetry, 5000, true},
      {503, "Sun, 06 Nov 1994 08:49:27 GMT", Verdict::kRetry, 0, true},  // in the past
      {503, "Sun, 06 Nov 1994 09:49:37 GMT", Verdict::kRetryAfterTooLong, 0, false},
      {200, "1", Verdict::kNotRetriable, 0, false},  // not retried at all
  };
  for (const Case& c : cases) {
    Attempt a = Attempt::Response(c.status, {{"Retry-After", c.retry_after}});
    const Decision d = Decide(p, a.get(), true, 0, random, kRfcExample);
    EXPECT_EQ(c.verdict, d.verdict) << c.status << " " << c.retry_after;
    EXPECT_EQ(c.delay_ms, d.delay_ms) << c.status << " " << c.retry_after;
    EXPECT_EQ(c.honoured, d.retry_after_honoured) << c.status << " " << c.retry_after;
  }
}

TEST(RetryAfterTest, ZeroMaxHonoursOnlyZero) {
  PolicyInput in = On({"5xx"});
  in.max_retry_after = Ms(0);
  const Policy p = Build(in);
  FakeRandom random;
  Attempt zero = Attempt::Response(503, {{"retry-after", "0"}});
  Attempt one = Attempt::Response(503, {{"retry-after", "1"}});
  EXPECT_EQ(Verdict::kRetry, Decide(p, zero.get(), true, 0, random, 0).verdict);
  EXPECT_EQ(Verdict::kRetryAfterTooLong, Decide(p, one.get(), true, 0, random, 0).verdict);
}

TEST(RetryAfterTest, ExhaustedRetriesComeFirst) {
  const Policy p = PolicyOn({"5xx"});
  FakeRandom random;
  Attempt a = Attempt::Response(503, {{"retry-after", "3600"}});
  EXPECT_EQ(Verdict::kLimitExceeded, Decide(p, a.get(), true, 1, random, 0).verdict);
}

}  // namespace
}  // namespace sluice::retry
