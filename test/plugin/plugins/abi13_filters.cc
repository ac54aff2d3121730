// Test filters for the ABI 1.3 additions (issue 11), through the C++ SDK; JSON configs (none
// read). The integration test test/integration/plugin_abi13_test.py drives them.
//
// "header_list": on the request, removes x-remove-me (leaving a hole in the map), then reads
// every request field twice — with sl_host_header_list (the SDK's forEach) and with a loop of
// sl_host_header_at — and tells the origin what it saw: x-list-names (the names, in order,
// joined by ','), x-list-count, x-list-same ("yes" when both reads agree).
// "trailers": adds trailers to messages that have none. Request: with x-req-trailers: expect,
// it calls sl_host_trailers_expect from the request headers hook; with any x-req-trailers it
// adds x-req-added: yes from the last request body hook. Response: with x-rs-trailers on the
// request, the same for the response (x-expect: expect first; then grpc-status: 0 and
// x-rs-added: yes from the last body hook). It also tells, as response fields, what adding a
// trailer too early gives (x-early-add: the result of sl_host_trailers_add in the response
// headers hook) and adds x-added-existing: yes to trailers that arrived from the origin.
// "tagged_metrics": labelled metrics: plugin.tagged_metrics.requests{method=GET|POST|other},
// plugin.tagged_metrics.body_bytes{dir=rs} (histogram of response body chunk sizes), and the
// gauge plugin.tagged_metrics.invalid_refused (how many invalid definitions were refused: 6).
// "attempts": observes upstream attempts: plugin.attempts.attempts{outcome=...} (counters per
// outcome), plugin.attempts.status{code=200} for responses, plugin.attempts.duration_us
// (histogram), plugin.attempts.bytes_received, and plugin.attempts.before_complete (attempts
// reported before sl_on_stream_complete of their stream: every one should be; after_complete
// counts the others), plugin.attempts.changes_refused (a header change tried from the hook and
// refused, as observe-only promises).

#define SLUICE_SDK_OBSERVE_UPSTREAM_ATTEMPTS 1

#include <memory>
#include <string>
#include <vector>

#include "sluice/sdk/filter.h"

namespace {

using sluice::sdk::ConfigContext;
using sluice::sdk::Counter;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Gauge;
using sluice::sdk::Histogram;
using sluice::sdk::Stream;

// ----- header_list -----

class HeaderListFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    auto headers = s.requestHeaders();
    headers.remove("x-remove-me");
    std::vector<std::pair<std::string, std::string>> listed;
    headers.forEach([&](std::string_view n, std::string_view v) { listed.emplace_back(n, v); });
    std::vector<std::pair<std::string, std::string>> indexed;
    const size_t count = headers.size();
    for (size_t i = 0; i < count; ++i) {
      sl_type_str n{}, v{};
      if (sl_host_header_at(s.raw(), SL_HEADERS_REQUEST, i, &n, &v) != SL_OK) break;
      indexed.emplace_back(sluice::sdk::View(n), sluice::sdk::View(v));
    }
    // Past the end, and a list call with too small an array, say so.
    sl_type_str n{}, v{};
    const bool past_end =
        sl_host_header_at(s.raw(), SL_HEADERS_REQUEST, count, &n, &v) == SL_ERR_NOT_FOUND;
    sl_type_header one[1];
    size_t total = 0;
    const bool small_ok =
        sl_host_header_list(s.raw(), SL_HEADERS_REQUEST, one, 1, &total) == SL_OK &&
        total == count && (count == 0 || sluice::sdk::View(one[0].name) == listed[0].first);
    std::string names;
    for (const auto& [name, value] : listed) {
      if (!names.empty()) names += ",";
      names += name;
    }
    const bool same = listed == indexed && listed.size() == count && past_end && small_ok;
    headers.set("x-list-names", names);
    headers.set("x-list-count", std::to_string(listed.size()));
    headers.set("x-list-same", same ? "yes" : "no");
    return SL_ACTION_CONTINUE;
  }
};

class HeaderListConfig : public FilterConfig {
 public:
  static std::unique_ptr<HeaderListConfig> create(ConfigContext&) {
    return std::make_unique<HeaderListConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<HeaderListFilter>();
  }
};

// ----- trailers -----

class TrailersFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    auto req = s.requestHeaders().get("x-req-trailers");
    request_ = req.has_value();
    if (req && *req == "expect") {
      s.requestHeaders().set("x-req-expect-result", std::to_string(s.expectRequestTrailers()));
    }
    auto rs = s.requestHeaders().get("x-rs-trailers");
    response_ = rs.has_value();
    response_expect_ = rs && *rs == "expect";
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onRequestBody(Stream& s, bool end_stream) override {
    if (end_stream && request_) s.addRequestTrailer("x-req-added", "yes");
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    const sl_type_result early = s.addResponseTrailer("x-too-early", "1");
    s.responseHeaders().set("x-early-add", std::to_string(early));
    if (response_expect_) {
      s.responseHeaders().set("x-expect-rs", std::to_string(s.expectResponseTrailers()));
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseBody(Stream& s, bool end_stream) override {
    if (end_stream && response_) {
      s.addResponseTrailer("grpc-status", "0");
      s.addResponseTrailer("x-rs-added", "yes");
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseTrailers(Stream& s) override {
    if (response_) s.addResponseTrailer("x-added-existing", "yes");
    return SL_ACTION_CONTINUE;
  }

 private:
  bool request_ = false;
  bool response_ = false;
  bool response_expect_ = false;
};

class TrailersConfig : public FilterConfig {
 public:
  static std::unique_ptr<TrailersConfig> create(ConfigContext&) {
    return std::make_unique<TrailersConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override { return std::make_unique<TrailersFilter>(); }
};

// ----- tagged_metrics -----

class TaggedConfig;

class TaggedFilter : public Filter {
 public:
  explicit TaggedFilter(const TaggedConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override;
  sl_type_action onResponseBody(Stream& s, bool) override;

 private:
  const TaggedConfig& c_;
};

class TaggedConfig : public FilterConfig {
 public:
  Counter get, post, other;
  Histogram body_bytes;

  static std::unique_ptr<TaggedConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<TaggedConfig>();
    c->get = ctx.counter("requests", {{"method", "GET"}, {"listener", "web"}});
    // The same tags in another order: the same metric.
    c->post = ctx.counter("requests", {{"listener", "web"}, {"method", "POST"}});
    c->other = ctx.counter("requests", {{"method", "other"}, {"listener", "web"}});
    c->body_bytes = ctx.histogram("body_bytes", {{"dir", "rs"}});
    // Each of these must be refused.
    const std::vector<ConfigContext::Tags> invalid = {
        {{"le", "1"}},             // reserved for histogram buckets
        {{"__name", "x"}},         // reserved prefix
        {{"1abc", "x"}},           // not a label name
        {{"k", "a\nb"}},           // LF in a value
        {{"k", "a"}, {"k", "b"}},  // a key twice
    };
    int64_t refused = 0;
    for (const auto& tags : invalid) {
      sl_type_metric* m = nullptr;
      std::vector<sl_type_header> t;
      for (const auto& [k, v] : tags) t.push_back({sluice::sdk::Str(k), sluice::sdk::Str(v)});
      if (sl_host_metric_define_tagged(ctx.raw(), SL_METRIC_COUNTER, sluice::sdk::Str("bad"),
                                       t.data(), t.size(), &m) == SL_ERR_INVALID) {
        ++refused;
      }
    }
    // One name, one kind: "requests" as a gauge is refused.
    sl_type_metric* m = nullptr;
    sl_type_header tag{sluice::sdk::Str("method"), sluice::sdk::Str("PUT")};
    if (sl_host_metric_define_tagged(ctx.raw(), SL_METRIC_GAUGE, sluice::sdk::Str("requests"), &tag,
                                     1, &m) == SL_ERR_INVALID) {
      ++refused;
    }
    ctx.gauge("invalid_refused").set(refused);
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<TaggedFilter>(*this);
  }
};

sl_type_action TaggedFilter::onRequestHeaders(Stream& s, bool) {
  const auto method = s.requestHeaders().get(":method");
  if (method == "GET") {
    c_.get.inc();
  } else if (method == "POST") {
    c_.post.inc();
  } else {
    c_.other.inc();
  }
  return SL_ACTION_CONTINUE;
}

sl_type_action TaggedFilter::onResponseBody(Stream& s, bool) {
  c_.body_bytes.record(s.responseBody().length());
  return SL_ACTION_CONTINUE;
}

// ----- attempts -----

const char* const kOutcomes[] = {"response", "connect_failure", "reset",    "timeout",
                                 "overflow", "protocol_error",  "cancelled"};
constexpr size_t kOutcomeCount = sizeof(kOutcomes) / sizeof(kOutcomes[0]);

class AttemptsConfig;

class AttemptsFilter : public Filter {
 public:
  explicit AttemptsFilter(const AttemptsConfig& c) : c_(c) {}
  bool onUpstreamAttemptDone(Stream& s, const sl_type_attempt_result& r,
                             uint64_t* retry_after_ms) override;
  void onStreamComplete(Stream&) override;

 private:
  const AttemptsConfig& c_;
  uint32_t seen_ = 0;
  bool completed_ = false;
};

class AttemptsConfig : public FilterConfig {
 public:
  Counter outcomes[kOutcomeCount];
  Counter status_200, status_other, bytes_received, before_complete, after_complete, with_host,
      changes_refused;
  Histogram duration;

  static std::unique_ptr<AttemptsConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<AttemptsConfig>();
    for (size_t i = 0; i < kOutcomeCount; ++i) {
      c->outcomes[i] = ctx.counter("attempts", {{"outcome", kOutcomes[i]}});
    }
    c->status_200 = ctx.counter("status", {{"code", "200"}});
    c->status_other = ctx.counter("status", {{"code", "other"}});
    c->bytes_received = ctx.counter("bytes_received");
    c->before_complete = ctx.counter("before_complete");
    c->after_complete = ctx.counter("after_complete");
    c->with_host = ctx.counter("with_host");
    c->changes_refused = ctx.counter("changes_refused");
    c->duration = ctx.histogram("duration_us");
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<AttemptsFilter>(*this);
  }
};

bool AttemptsFilter::onUpstreamAttemptDone(Stream& s, const sl_type_attempt_result& r,
                                           uint64_t* retry_after_ms) {
  ++seen_;
  if (completed_) c_.after_complete.inc();
  if (r.outcome < kOutcomeCount) c_.outcomes[r.outcome].inc();
  if (r.outcome == SL_ATTEMPT_RESPONSE) (r.status == 200 ? c_.status_200 : c_.status_other).inc();
  if (r.host.len != 0) c_.with_host.inc();
  c_.bytes_received.inc(r.bytes_received);
  c_.duration.record(r.duration_us);
  // Observe only: a change is refused.
  if (s.requestHeaders().set("x-too-late", "1") == SL_ERR_STATE) c_.changes_refused.inc();
  *retry_after_ms = 1;
  return true;  // asks for a retry, which is ignored until retries exist
}

void AttemptsFilter::onStreamComplete(Stream&) {
  completed_ = true;
  c_.before_complete.inc(seen_);
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<HeaderListConfig>("header_list"),
                      sluice::sdk::Register<TrailersConfig>("trailers"),
                      sluice::sdk::Register<TaggedConfig>("tagged_metrics"),
                      sluice::sdk::Register<AttemptsConfig>("attempts"))
