// Test filters for the ABI 1.4 additions (issue 15), through the C++ SDK; JSON configs (none
// read). test/integration/retry_core_test.py drives them against real origins.
//
// "flags": at the stream's end, counts each response flag the stream ended with in
// plugin.flags.response_flag{flag=UF|URX|...}, streams without any in {flag=none}, and the
// upstream attempts in plugin.flags.attempts; for each attempt (observed) counts its error kind
// in plugin.flags.error_kind{kind=...} and its retry safety in plugin.flags.safety{...};
// plugin.flags.completed counts the streams that ended (tests await it before reading).
// "retry_probe": a scripted retry policy, driven by request fields, so that the core's retry
// mechanism is tested apart from the retry plugin's policy: x-retries: N enables retries and
// retries any failure and any 5xx response up to N times (then SL_RETRY_LIMIT_EXCEEDED);
// x-per-try-ms, x-max-replay and x-attempt-header (any value: SL_RETRY_ATTEMPT_COUNT_HEADER)
// set the options; x-retry-delay-ms the delay; x-budget-percent / x-budget-min the budget.
// plugin.retry_probe.decisions{verdict=yes|no|limit} counts its answers and
// plugin.retry_probe.enable_refused what sl_host_upstream_retry_enable refused.

#define SLUICE_SDK_OBSERVE_UPSTREAM_ATTEMPTS 1

#include <cstdlib>
#include <memory>
#include <string>

#include "sluice/sdk/filter.h"

namespace {

using sluice::sdk::ConfigContext;
using sluice::sdk::Counter;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Stream;

uint64_t Number(const Stream& s, std::string_view name, uint64_t otherwise) {
  auto v = s.requestHeaders().get(name);
  if (!v.has_value()) return otherwise;
  return std::strtoull(std::string(*v).c_str(), nullptr, 10);
}

// ----- flags -----

const char* const kFlagNames[] = {"LH",  "UH",  "UT", "LR",   "UR",  "UF", "UC",
                                  "UO",  "NR",  "RL", "UAEX", "URX", "SI", "DC",
                                  "UPE", "DPE", "NC", "DT",   "BL",  "PF", "UPT"};
constexpr size_t kFlagCount = sizeof(kFlagNames) / sizeof(kFlagNames[0]);
const char* const kKinds[] = {"none",           "connect_refused",   "connect_timeout",
                              "tls_failure",    "overflow",          "no_healthy_host",
                              "refused_stream", "connection_closed", "reset",
                              "protocol_error", "timeout",           "per_try_timeout",
                              "idle_timeout",   "headers_timeout",   "send_timeout"};
constexpr size_t kKindCount = sizeof(kKinds) / sizeof(kKinds[0]);
const char* const kSafety[] = {"safe", "idempotent_only", "never"};

class FlagsConfig : public FilterConfig {
 public:
  Counter flags[kFlagCount];
  Counter none, attempts, completed;
  Counter kinds[kKindCount];
  Counter safety[3];

  static std::unique_ptr<FlagsConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<FlagsConfig>();
    for (size_t i = 0; i < kFlagCount; ++i) {
      c->flags[i] = ctx.counter("response_flag", {{"flag", kFlagNames[i]}});
    }
    c->none = ctx.counter("response_flag", {{"flag", "none"}});
    c->attempts = ctx.counter("attempts");
    c->completed = ctx.counter("completed");
    for (size_t i = 0; i < kKindCount; ++i)
      c->kinds[i] = ctx.counter("error_kind", {{"kind", kKinds[i]}});
    for (size_t i = 0; i < 3; ++i) c->safety[i] = ctx.counter("safety", {{"safety", kSafety[i]}});
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class FlagsFilter : public Filter {
 public:
  explicit FlagsFilter(const FlagsConfig& c) : c_(c) {}
  bool onUpstreamAttemptDone(Stream&, const sl_type_attempt_result& r, uint64_t*) override {
    if (r.outcome == SL_ATTEMPT_CANCELLED) return false;
    if (r.error_kind < kKindCount) c_.kinds[r.error_kind].inc();
    if (r.retry_safety < 3) c_.safety[r.retry_safety].inc();
    return false;
  }
  void onStreamComplete(Stream& s) override {
    const sl_type_stream_info info = s.info();
    if (info.response_flags == 0) c_.none.inc();
    for (size_t i = 0; i < kFlagCount; ++i) {
      if ((info.response_flags & (1ull << i)) != 0) c_.flags[i].inc();
    }
    c_.attempts.inc(info.upstream_attempts);
    c_.completed.inc();  // last: a test that sees it sees the rest
  }

 private:
  const FlagsConfig& c_;
};

std::unique_ptr<Filter> FlagsConfig::newFilter(Stream&) {
  return std::make_unique<FlagsFilter>(*this);
}

// ----- retry_probe -----

class ProbeConfig : public FilterConfig {
 public:
  Counter yes, no, limit, enable_refused;
  static std::unique_ptr<ProbeConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<ProbeConfig>();
    c->yes = ctx.counter("decisions", {{"verdict", "yes"}});
    c->no = ctx.counter("decisions", {{"verdict", "no"}});
    c->limit = ctx.counter("decisions", {{"verdict", "limit"}});
    c->enable_refused = ctx.counter("enable_refused");
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class ProbeFilter : public Filter {
 public:
  explicit ProbeFilter(const ProbeConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    if (!s.requestHeaders().get("x-retries").has_value()) return SL_ACTION_CONTINUE;
    left_ = static_cast<uint32_t>(Number(s, "x-retries", 0));
    const uint32_t flags =
        s.requestHeaders().get("x-attempt-header").has_value() ? SL_RETRY_ATTEMPT_COUNT_HEADER : 0;
    if (s.enableRetries(Number(s, "x-per-try-ms", 0), Number(s, "x-max-replay", 0), flags) !=
        SL_OK) {
      c_.enable_refused.inc();
    }
    return SL_ACTION_CONTINUE;
  }
  int onUpstreamRetry(Stream& s, const sl_type_attempt_result& r,
                      sl_type_retry_decision& d) override {
    if (r.outcome == SL_ATTEMPT_RESPONSE && r.status < 500) {
      c_.no.inc();
      return SL_RETRY_NO;
    }
    if (left_ == 0) {
      c_.limit.inc();
      return SL_RETRY_LIMIT_EXCEEDED;
    }
    --left_;
    d.delay_ms = Number(s, "x-retry-delay-ms", 0);
    d.budget_percent = static_cast<double>(Number(s, "x-budget-percent", 0));
    d.min_retry_concurrency = static_cast<uint32_t>(Number(s, "x-budget-min", 0));
    c_.yes.inc();
    return SL_RETRY_YES;
  }

 private:
  const ProbeConfig& c_;
  uint32_t left_ = 0;
};

std::unique_ptr<Filter> ProbeConfig::newFilter(Stream&) {
  return std::make_unique<ProbeFilter>(*this);
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<FlagsConfig>("flags"),
                      sluice::sdk::Register<ProbeConfig>("retry_probe"))
