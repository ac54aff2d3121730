// retry: tries failed upstream attempts again (plugin ABI 1.4). The policy — which failures,
// how many times, after what pause, within what budget — is this plugin's (policy.cc); the
// mechanism — the request body kept, a new attempt on another host, per-try timeouts — is
// sluice's core, which this filter switches on per stream (sl_host_upstream_retry_enable) and
// which asks it after every attempt that could still be retried (sl_on_upstream_retry).
// See README.md.

#include <cstddef>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "extensions/filters/http/retry/policy.h"
#include "extensions/filters/http/retry/retry.pb.h"
#include "sluice/sdk/filter.h"

namespace {

namespace pb = sluice::extensions::retry::v1;
using sluice::retry::BuildPolicy;
using sluice::retry::Decide;
using sluice::retry::Decision;
using sluice::retry::DurationInput;
using sluice::retry::HeaderInput;
using sluice::retry::Policy;
using sluice::retry::PolicyInput;
using sluice::retry::Verdict;
using sluice::sdk::ConfigContext;
using sluice::sdk::Counter;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Stream;

DurationInput FromProto(bool set, const google::protobuf::Duration& d) {
  DurationInput out;
  out.set = set;
  out.seconds = d.seconds();
  out.nanos = d.nanos();
  return out;
}

PolicyInput FromProto(const pb::RetryPolicy& p) {
  PolicyInput in;
  in.retry_on.assign(p.retry_on().begin(), p.retry_on().end());
  if (p.has_num_retries()) in.num_retries = p.num_retries().value();
  in.per_try_timeout = FromProto(p.has_per_try_timeout(), p.per_try_timeout());
  in.retriable_status_codes.assign(p.retriable_status_codes().begin(),
                                   p.retriable_status_codes().end());
  for (const pb::RetriableHeader& h : p.retriable_headers()) {
    HeaderInput hi;
    hi.name = h.name();
    switch (h.match_case()) {
      case pb::RetriableHeader::kExact:
        hi.match = HeaderInput::Match::kExact;
        hi.exact = h.exact();
        break;
      case pb::RetriableHeader::kPresent:
        hi.match = h.present() ? HeaderInput::Match::kPresent : HeaderInput::Match::kAbsent;
        break;
      case pb::RetriableHeader::MATCH_NOT_SET:
        hi.match = HeaderInput::Match::kPresent;
        break;
    }
    in.retriable_headers.push_back(std::move(hi));
  }
  in.base_interval = FromProto(p.backoff().has_base_interval(), p.backoff().base_interval());
  in.max_interval = FromProto(p.backoff().has_max_interval(), p.backoff().max_interval());
  in.max_retry_after = FromProto(p.has_max_retry_after(), p.max_retry_after());
  if (p.retry_budget().has_budget_percent()) {
    in.budget_percent = p.retry_budget().budget_percent().value();
  }
  if (p.retry_budget().has_min_retry_concurrency()) {
    in.min_retry_concurrency = p.retry_budget().min_retry_concurrency().value();
  }
  in.retry_non_idempotent = p.retry_non_idempotent();
  in.attempt_count_header = p.attempt_count_header();
  in.max_replay_bytes = p.max_replay_bytes();
  return in;
}

// plugin.<filter>.<name>
struct Metrics {
  Counter retries;                     // retries this filter asked for
  Counter retries_exhausted;           // a retriable failure with num_retries used up
  Counter retry_after_honoured;        // retries paused for the response's Retry-After
  Counter retry_after_too_long;        // not retried: Retry-After above max_retry_after
  Counter not_retried_non_idempotent;  // not retried: may have been processed, not idempotent
};

// A route's policy: replaces the filter's whole (a route that wants none says num_retries: 0).
struct RoutePolicy : sluice::sdk::RouteConfig {
  Policy policy;
};

class RetryConfig;

class RetryFilter : public Filter {
 public:
  explicit RetryFilter(const RetryConfig& config) : config_(config) {}
  sl_type_action onRequestHeaders(Stream& stream, bool end_stream) override;
  void onStreamComplete(Stream& stream) override;
  int onUpstreamRetry(Stream& stream, const sl_type_attempt_result& result,
                      sl_type_retry_decision& decision) override;

 private:
  const RetryConfig& config_;
  // The stream's policy once retries are on (route configs and the filter's config outlive
  // every stream that uses them), else nullptr.
  const Policy* policy_ = nullptr;
  bool idempotent_ = false;
  // Retries this filter asked for on this stream: num_retries counts these, not the core's
  // own transparent retry (a stale keep-alive connection, a first refused HTTP/2 stream),
  // which never reaches the filter.
  uint32_t retries_ = 0;
};

class RetryConfig : public FilterConfig {
 public:
  static std::unique_ptr<RetryConfig> create(ConfigContext& ctx) {
    auto config = std::make_unique<RetryConfig>();
    pb::Retry proto;
    if (!ctx.parse(proto)) {
      ctx.fail("cannot decode the Retry config");
      return nullptr;
    }
    if (proto.has_policy()) {
      std::string error;
      config->default_policy_ = BuildPolicy(FromProto(proto.policy()), "policy", &error);
      if (!config->default_policy_) {
        ctx.fail(error);
        return nullptr;
      }
    }
    config->metrics_.retries = ctx.counter("retries");
    config->metrics_.retries_exhausted = ctx.counter("retries_exhausted");
    config->metrics_.retry_after_honoured = ctx.counter("retry_after_honoured");
    config->metrics_.retry_after_too_long = ctx.counter("retry_after_too_long");
    config->metrics_.not_retried_non_idempotent = ctx.counter("not_retried_non_idempotent");
    return config;
  }

  std::unique_ptr<sluice::sdk::RouteConfig> newRouteConfig(ConfigContext& ctx) override {
    pb::RetryPolicy proto;
    if (!ctx.parse(proto)) {
      ctx.fail("cannot decode the RetryPolicy");
      return nullptr;
    }
    std::string error;
    std::optional<Policy> policy = BuildPolicy(FromProto(proto), "", &error);
    if (!policy) {
      ctx.fail(error);
      return nullptr;
    }
    auto route = std::make_unique<RoutePolicy>();
    route->policy = std::move(*policy);
    return route;
  }

  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<RetryFilter>(*this);
  }

  // The stream's policy: its route's, else the filter's default; nullptr when there is none.
  const Policy* policyFor(const Stream& stream) const {
    if (const RoutePolicy* route = stream.routeConfig<RoutePolicy>()) return &route->policy;
    return default_policy_ ? &*default_policy_ : nullptr;
  }
  const Metrics& metrics() const { return metrics_; }

 private:
  std::optional<Policy> default_policy_;
  Metrics metrics_;
};

sl_type_action RetryFilter::onRequestHeaders(Stream& stream, bool) {
  const Policy* policy = config_.policyFor(stream);
  if (policy == nullptr || !policy->enabled()) return SL_ACTION_CONTINUE;
  const auto method = stream.requestHeaders().get(":method");
  idempotent_ = method && sluice::retry::IsIdempotentMethod(*method);
  const sl_type_result rc =
      stream.enableRetries(policy->per_try_timeout_ms, policy->max_replay_bytes,
                           policy->attempt_count_header ? SL_RETRY_ATTEMPT_COUNT_HEADER : 0u);
  if (rc == SL_OK) {
    policy_ = policy;
  } else if (sluice::sdk::LogEnabled(SL_LOG_DEBUG)) {
    // A tunnel (Upgrade, CONNECT: nothing to send again), or another filter that enabled
    // retries first: the stream goes on without this filter's retries.
    sluice::sdk::Log(SL_LOG_DEBUG,
                     "retries not enabled for this stream (" + std::to_string(rc) + ")");
  }
  return SL_ACTION_CONTINUE;
}

// SL_RESPONSE_FLAG_* bit i's short name (Envoy's, and sluice's own DT, BL, PF, UPT), for logs.
constexpr const char* kFlagNames[] = {"LH",  "UH",  "UT", "LR",   "UR",  "UF", "UC",
                                      "UO",  "NR",  "RL", "UAEX", "URX", "SI", "DC",
                                      "UPE", "DPE", "NC", "DT",   "BL",  "PF", "UPT"};

std::string FlagsString(uint64_t flags) {
  if (flags == 0) return "-";
  std::string out;
  for (size_t i = 0; i < 64; ++i) {
    if ((flags & (uint64_t{1} << i)) == 0) continue;
    if (!out.empty()) out.push_back(',');
    out +=
        i < sizeof(kFlagNames) / sizeof(kFlagNames[0]) ? kFlagNames[i] : "bit" + std::to_string(i);
  }
  return out;
}

// At debug level, how a retrying stream ended: what an operator (and the tests, which have no
// access log to read yet) needs to see why a request failed after its retries.
void RetryFilter::onStreamComplete(Stream& stream) {
  if (policy_ == nullptr || !sluice::sdk::LogEnabled(SL_LOG_DEBUG)) return;
  const sl_type_stream_info info = stream.info();
  std::string details = info.response_details.data != nullptr
                            ? std::string(info.response_details.data, info.response_details.len)
                            : std::string();
  sluice::sdk::Log(SL_LOG_DEBUG,
                   "stream complete: attempts=" + std::to_string(info.upstream_attempts) +
                       " retries=" + std::to_string(retries_) +
                       " flags=" + FlagsString(info.response_flags) +
                       " details=" + (details.empty() ? "-" : details));
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kNotRetriable:
      return "not retriable";
    case Verdict::kRetry:
      return "retry";
    case Verdict::kLimitExceeded:
      return "retries exhausted";
    case Verdict::kNotIdempotent:
      return "not retried: the method is not idempotent";
    case Verdict::kRetryAfterTooLong:
      return "not retried: Retry-After too long";
  }
  return "?";
}

int RetryFilter::onUpstreamRetry(Stream&, const sl_type_attempt_result& result,
                                 sl_type_retry_decision& decision) {
  if (policy_ == nullptr) return SL_RETRY_NO;
  const Decision d = Decide(*policy_, result, idempotent_, retries_, sluice::retry::ThreadRandom(),
                            static_cast<int64_t>(std::time(nullptr)));
  const Metrics& m = config_.metrics();
  if (d.verdict != Verdict::kNotRetriable && sluice::sdk::LogEnabled(SL_LOG_DEBUG)) {
    std::string host = result.host.data != nullptr ? std::string(result.host.data, result.host.len)
                                                   : std::string();
    sluice::sdk::Log(
        SL_LOG_DEBUG,
        "attempt " + std::to_string(result.attempt) + " (" + host + ") outcome " +
            std::to_string(result.outcome) + " status " + std::to_string(result.status) + ": " +
            VerdictName(d.verdict) +
            (d.verdict == Verdict::kRetry ? " in " + std::to_string(d.delay_ms) + "ms (retry " +
                                                std::to_string(retries_ + 1) + " of " +
                                                std::to_string(policy_->num_retries) + ")"
                                          : std::string()));
  }
  switch (d.verdict) {
    case Verdict::kRetry:
      ++retries_;
      m.retries.inc();
      if (d.retry_after_honoured) m.retry_after_honoured.inc();
      // Written only as far as the host's struct reaches (it set `size`).
      if (decision.size >= offsetof(sl_type_retry_decision, delay_ms) + sizeof(uint64_t)) {
        decision.delay_ms = d.delay_ms;
      }
      if (decision.size >= offsetof(sl_type_retry_decision, budget_percent) + sizeof(double)) {
        decision.budget_percent = policy_->budget_percent;
      }
      if (decision.size >=
          offsetof(sl_type_retry_decision, min_retry_concurrency) + sizeof(uint32_t)) {
        decision.min_retry_concurrency = policy_->min_retry_concurrency;
      }
      return SL_RETRY_YES;
    case Verdict::kLimitExceeded:
      m.retries_exhausted.inc();
      return SL_RETRY_LIMIT_EXCEEDED;
    case Verdict::kNotIdempotent:
      m.not_retried_non_idempotent.inc();
      return SL_RETRY_NO;
    case Verdict::kRetryAfterTooLong:
      m.retry_after_too_long.inc();
      return SL_RETRY_NO;
    case Verdict::kNotRetriable:
      break;
  }
  return SL_RETRY_NO;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<RetryConfig>("retry",
                                                         "sluice.extensions.retry.v1.Retry", {},
                                                         "sluice.extensions.retry.v1.RetryPolicy"))
