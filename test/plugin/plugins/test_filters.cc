// A plugin of test filters, written with the C++ SDK and typed (generated-code) configs: each
// filter exercises one part of the ABI for test/plugin/ and the integration tests.

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/sdk/filter.h"
#include "test/plugin/plugins/test_filters.pb.h"

namespace {

using sluice::sdk::ConfigContext;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Headers;
using sluice::sdk::Stream;
namespace pb = sluice::test::plugin;

// ----- headers -----
class HeadersConfig : public FilterConfig {
 public:
  pb::HeaderMutation proto;
  static std::unique_ptr<HeadersConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<HeadersConfig>();
    if (!ctx.parse(c->proto)) {
      ctx.fail("cannot parse HeaderMutation");
      return nullptr;
    }
    for (const auto& h : c->proto.response_set()) {
      if (h.name() == "forbidden") {
        ctx.fail("response_set: \"forbidden\" is not allowed here");
        return nullptr;
      }
    }
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class HeadersFilter : public Filter {
 public:
  explicit HeadersFilter(const HeadersConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    for (const auto& h : c_.proto.request_set()) s.requestHeaders().set(h.name(), h.value());
    for (const auto& n : c_.proto.request_remove()) s.requestHeaders().remove(n);
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    for (const auto& h : c_.proto.response_set()) s.responseHeaders().set(h.name(), h.value());
    for (const auto& n : c_.proto.response_remove()) s.responseHeaders().remove(n);
    // What the request looked like when it reached this filter, for the tests to see.
    if (auto v = s.requestHeaders().get("x-echo")) s.responseHeaders().set("x-echoed", *v);
    if (auto p = s.requestHeaders().get(":path")) s.responseHeaders().set("x-path", *p);
    return SL_ACTION_CONTINUE;
  }

 private:
  const HeadersConfig& c_;
};
std::unique_ptr<Filter> HeadersConfig::newFilter(Stream&) {
  return std::make_unique<HeadersFilter>(*this);
}

// ----- pause -----
class PauseConfig : public FilterConfig {
 public:
  uint64_t delay_ms = 0;
  static std::unique_ptr<PauseConfig> create(ConfigContext& ctx) {
    pb::Pause p;
    if (!ctx.parse(p)) return nullptr;
    auto c = std::make_unique<PauseConfig>();
    c->delay_ms = static_cast<uint64_t>(p.delay().seconds()) * 1000 + p.delay().nanos() / 1000000;
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class PauseFilter : public Filter {
 public:
  explicit PauseFilter(const PauseConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    if (s.startTimer(7, c_.delay_ms) != SL_OK) s.fail("timer refused");
    return SL_ACTION_STOP;
  }
  void onTimer(Stream& s, uint64_t token) override {
    s.requestHeaders().set("x-paused", std::to_string(token));
    paused_ = true;
    // The response is not paused here: the host says so (SL_ERR_STATE) and nothing happens.
    unpaused_result_ = s.continueResponse();
    if (s.continueRequest() != SL_OK) s.fail("continue_request of a paused request refused");
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    if (paused_) {
      s.responseHeaders().set("x-resumed-by", "timer");
      s.responseHeaders().set("x-continue-unpaused", std::to_string(unpaused_result_));
    }
    return SL_ACTION_CONTINUE;
  }

 private:
  const PauseConfig& c_;
  sl_type_result unpaused_result_ = 1;
  bool paused_ = false;
};
std::unique_ptr<Filter> PauseConfig::newFilter(Stream&) {
  return std::make_unique<PauseFilter>(*this);
}

// ----- deny -----
class DenyConfig : public FilterConfig {
 public:
  pb::Deny proto;
  static std::unique_ptr<DenyConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<DenyConfig>();
    if (!ctx.parse(c->proto)) return nullptr;
    if (c->proto.status() < 200 || c->proto.status() > 599) {
      ctx.fail("status must be in 200..599");
      return nullptr;
    }
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class DenyFilter : public Filter {
 public:
  explicit DenyFilter(const DenyConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    if (!s.requestHeaders().get(c_.proto.header())) return SL_ACTION_CONTINUE;
    s.sendResponse(c_.proto.status(), c_.proto.body(), {{"x-denied-by", "deny"}}, "denied");
    return SL_ACTION_STOP;
  }

 private:
  const DenyConfig& c_;
};
std::unique_ptr<Filter> DenyConfig::newFilter(Stream&) {
  return std::make_unique<DenyFilter>(*this);
}

// ----- uppercase: buffers the whole response body, rewrites it, fixes Content-Length -----
class UppercaseConfig : public FilterConfig {
 public:
  static std::unique_ptr<UppercaseConfig> create(ConfigContext&) {
    return std::make_unique<UppercaseConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class UppercaseFilter : public Filter {
 public:
  sl_type_action onResponseHeaders(Stream&, bool end_stream) override {
    return end_stream ? SL_ACTION_CONTINUE : SL_ACTION_STOP;
  }
  sl_type_action onResponseBody(Stream& s, bool end_stream) override {
    if (!end_stream) return SL_ACTION_STOP_AND_BUFFER;
    std::string body = s.responseBody().toString();
    std::transform(body.begin(), body.end(), body.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    body += "(rewritten)\n";
    s.responseBody().replace(body);
    s.responseHeaders().set("content-length", std::to_string(body.size()));
    return SL_ACTION_CONTINUE;
  }
};
std::unique_ptr<Filter> UppercaseConfig::newFilter(Stream&) {
  return std::make_unique<UppercaseFilter>();
}

// ----- metadata -----
class MetaConfig : public FilterConfig {
 public:
  pb::Metadata proto;
  bool set = false;
  template <bool kSet>
  static std::unique_ptr<MetaConfig> Create(ConfigContext& ctx) {
    auto c = std::make_unique<MetaConfig>();
    if (!ctx.parse(c->proto)) return nullptr;
    c->set = kSet;
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};
struct MetaSetConfig : MetaConfig {
  static std::unique_ptr<MetaConfig> create(ConfigContext& ctx) { return Create<true>(ctx); }
};
struct MetaGetConfig : MetaConfig {
  static std::unique_ptr<MetaConfig> create(ConfigContext& ctx) { return Create<false>(ctx); }
};

std::string PercentDecode(std::string_view v) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
      i += 2;
    } else {
      out.push_back(v[i]);
    }
  }
  return out;
}

class MetaFilter : public Filter {
 public:
  explicit MetaFilter(const MetaConfig& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    if (c_.set) {
      if (auto v = s.requestHeaders().get(c_.proto.header())) {
        s.setMetadata(c_.proto.key(), c_.proto.percent_decode() ? PercentDecode(*v) : *v);
      }
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    if (!c_.set) {
      auto v = s.metadata(c_.proto.key());
      s.responseHeaders().set(c_.proto.header(), v ? *v : "(none)");
    }
    return SL_ACTION_CONTINUE;
  }

 private:
  const MetaConfig& c_;
};
std::unique_ptr<Filter> MetaConfig::newFilter(Stream&) {
  return std::make_unique<MetaFilter>(*this);
}

// ----- count: metrics of every kind (JSON config, ignored) -----
class CountConfig : public FilterConfig {
 public:
  sluice::sdk::Counter requests;
  sluice::sdk::Gauge active;
  sluice::sdk::Histogram path_length;
  static std::unique_ptr<CountConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<CountConfig>();
    c->requests = ctx.counter("requests");
    c->active = ctx.gauge("active");
    c->path_length = ctx.histogram("path_length");
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class CountFilter : public Filter {
 public:
  explicit CountFilter(const CountConfig& c) : c_(c) { c_.active.add(1); }
  ~CountFilter() override { c_.active.add(-1); }
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    c_.requests.inc();
    if (auto p = s.requestHeaders().get(":path")) c_.path_length.record(p->size());
    return SL_ACTION_CONTINUE;
  }

 private:
  const CountConfig& c_;
};
std::unique_ptr<Filter> CountConfig::newFilter(Stream&) {
  return std::make_unique<CountFilter>(*this);
}

// ----- throw: a C++ exception escapes a hook when the request asks for it -----
class ThrowConfig : public FilterConfig {
 public:
  static std::unique_ptr<ThrowConfig> create(ConfigContext&) {
    return std::make_unique<ThrowConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

// x-throw: any value throws in onRequestHeaders, except "response-headers" and "response-body",
// which throw in that response hook instead (the first before anything reached the client, the
// second once the response head has).
class ThrowFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    const auto how = s.requestHeaders().get("x-throw");
    if (!how) return SL_ACTION_CONTINUE;
    how_ = std::string(*how);
    if (how_ != "response-headers" && how_ != "response-body") {
      throw std::runtime_error("asked to throw");
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream&, bool) override {
    if (how_ == "response-headers") throw std::runtime_error("asked to throw in onResponseHeaders");
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseBody(Stream&, bool) override {
    if (how_ == "response-body") throw std::runtime_error("asked to throw in onResponseBody");
    return SL_ACTION_DEFAULT;
  }

 private:
  std::string how_;
};
std::unique_ptr<Filter> ThrowConfig::newFilter(Stream&) { return std::make_unique<ThrowFilter>(); }

// ----- fail_new: its filter constructor always throws (sl_on_filter_new returns NULL) -----
class FailNewConfig : public FilterConfig {
 public:
  static std::unique_ptr<FailNewConfig> create(ConfigContext&) {
    return std::make_unique<FailNewConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    throw std::runtime_error("no filter today");
  }
};

// ----- inspect: the rest of the ABI, reported in response fields -----
//  - request body: its length and first bytes (x-body-length, x-body-head), by buffering it whole
//  - x-multi: every value, joined (x-multi-all), and the field count (x-request-fields)
//  - "x-rewrite: /new": rewrites :path (the next filter sees it)
//  - "x-bad-header: 1": tries to set a value with CR LF (refused: x-bad-header-result)
//  - "x-post: 1": pauses, a thread of its own posts back to the worker, which resumes
//  - stream info: x-downstream-port, x-filter-name
//  - request trailers: x-trailer-t (the value of trailer "t")
class InspectConfig : public FilterConfig {
 public:
  static std::unique_ptr<InspectConfig> create(ConfigContext&) {
    return std::make_unique<InspectConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

class InspectFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool end_stream) override {
    Headers h = s.requestHeaders();
    std::string multi;
    for (auto v : h.getAll("x-multi"))
      multi += std::string(multi.empty() ? "" : "|") + std::string(v);
    report_.push_back({"x-multi-all", multi});
    report_.push_back({"x-request-fields", std::to_string(h.size())});
    if (auto path = h.get("x-rewrite")) h.set(":path", *path);
    if (h.get("x-bad-header")) {
      report_.push_back({"x-bad-header-result", std::to_string(h.set("x-evil", "a\r\nb"))});
    }
    if (auto say = h.get("x-log")) {
      sluice::sdk::Log(SL_LOG_WARN, "inspect says " + std::string(*say));
      report_.push_back(
          {"x-log-enabled", sluice::sdk::LogEnabled(SL_LOG_DEBUG) ? "debug" : "info"});
    }
    const sl_type_stream_info info = s.info();
    report_.push_back({"x-downstream-port", std::to_string(info.downstream_remote.port)});
    report_.push_back({"x-filter-name", std::string(sluice::sdk::View(info.filter_name))});
    report_.push_back(
        {"x-ids", std::to_string(info.connection_id) + "/" + std::to_string(info.stream_id)});
    // What a plugin knows of the downstream TLS session (tls.md).
    report_.push_back({"x-tls", std::to_string(info.tls)});
    if (info.tls != 0) {
      report_.push_back({"x-tls-sni", std::string(sluice::sdk::View(info.tls_sni))});
      report_.push_back({"x-tls-alpn", std::string(sluice::sdk::View(info.tls_alpn))});
      report_.push_back({"x-tls-peer", std::string(sluice::sdk::View(info.tls_peer_subject))});
    }
    if (auto scheme = h.get(":scheme")) report_.push_back({"x-scheme", std::string(*scheme)});
    // The protocol the client speaks (SL_PROTOCOL_*), and the request's pseudo-fields.
    report_.push_back({"x-protocol", std::to_string(info.protocol)});
    if (auto authority = h.get(":authority")) {
      report_.push_back({"x-authority", std::string(*authority)});
    }
    if (auto path = h.get(":path")) report_.push_back({"x-path", std::string(*path)});
    if (h.get("x-post")) {
      // Another thread posts back to this stream's worker; the request waits until then.
      std::thread([ref = std::make_shared<sluice::sdk::StreamRef>(s)] {
        ref->post([](Filter* f, Stream* stream) {
          if (stream == nullptr) return;
          static_cast<InspectFilter*>(f)->report_.push_back({"x-posted", "worker"});
          stream->continueRequest();
        });
      }).detach();
      return SL_ACTION_STOP;
    }
    body_ = !end_stream;
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onRequestBody(Stream& s, bool end_stream) override {
    if (!end_stream) return SL_ACTION_STOP_AND_BUFFER;
    const std::string body = s.requestBody().toString();
    report_.push_back({"x-body-length", std::to_string(body.size())});
    report_.push_back({"x-body-head", body.substr(0, 8)});
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onRequestTrailers(Stream& s) override {
    if (auto t = s.requestTrailers().get("t")) report_.push_back({"x-trailer-t", std::string(*t)});
    // The body hook sees no end_stream when trailers follow: report what it buffered.
    report_.push_back({"x-body-length", std::to_string(s.requestBody().length())});
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    for (const auto& [n, v] : report_) s.responseHeaders().set(n, v);
    s.responseHeaders().set("x-created-for", std::to_string(created_for_));
    return SL_ACTION_CONTINUE;
  }

  uint64_t created_for_ = 0;

 private:
  std::vector<std::pair<std::string, std::string>> report_;
  bool body_ = false;
};
std::unique_ptr<Filter> InspectConfig::newFilter(Stream& s) {
  // Host functions work from sl_on_filter_new already: the stream's id is known.
  auto f = std::make_unique<InspectFilter>();
  f->created_for_ = s.info().stream_id;
  return f;
}

// ----- to_cluster: the terminal decision -----
uint64_t Ms(const google::protobuf::Duration& d) {
  return static_cast<uint64_t>(d.seconds()) * 1000 + static_cast<uint64_t>(d.nanos()) / 1000000;
}

class ToClusterFilter : public Filter {
 public:
  explicit ToClusterFilter(const pb::ToCluster& c) : c_(c) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    std::string cluster = c_.cluster();
    if (auto named = s.requestHeaders().get("x-cluster")) cluster = std::string(*named);
    const sl_type_result r =
        s.setUpstream(cluster, "test_route", Ms(c_.timeout()), Ms(c_.idle_timeout()));
    if (r == SL_ERR_NOT_FOUND) {
      s.sendResponse(404, "no such cluster\n");
      return SL_ACTION_STOP;
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    const sl_type_stream_info info = s.info();
    s.responseHeaders().set("x-routed-to", std::string(sluice::sdk::View(info.cluster_name)));
    return SL_ACTION_CONTINUE;
  }

 private:
  const pb::ToCluster& c_;
};

// Stateless: every stream shares the one filter.
class ToClusterConfig : public FilterConfig {
 public:
  pb::ToCluster proto;
  ToClusterFilter shared{proto};
  static std::unique_ptr<ToClusterConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<ToClusterConfig>();
    if (!ctx.parse(c->proto)) return nullptr;
    return c;
  }
  Filter* sharedFilter() override { return &shared; }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<ToClusterFilter>(proto);
  }
};

// ----- nothing: a no-op SDK filter with per-stream state (the SDK's cost, for the bench) -----
class NothingConfig : public FilterConfig {
 public:
  static std::unique_ptr<NothingConfig> create(ConfigContext&) {
    return std::make_unique<NothingConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override { return std::make_unique<Filter>(); }
};

// ----- clusters: reports what sl_host_config_clusters / _cluster_exists (ABI 1.2) show it as
// its config error, so that a test can read it. Its config (JSON) is one string of cluster
// names to ask about: typed_config: "a,nope" -----
class ClustersConfig : public FilterConfig {
 public:
  static std::unique_ptr<ClustersConfig> create(ConfigContext& ctx) {
    std::string report = "saw clusters:";
    for (std::string_view c : ctx.clusters()) report.append(" ").append(c);
    std::string_view ask = ctx.bytes();  // "\"a,nope\"" (no escapes in cluster names)
    if (ask.size() >= 2 && ask.front() == '"' && ask.back() == '"') {
      ask = ask.substr(1, ask.size() - 2);
    } else {
      ask = {};
    }
    while (!ask.empty()) {
      const size_t comma = ask.find(',');
      const std::string_view name = ask.substr(0, comma);
      report.append("; ").append(name).append(ctx.hasCluster(name) ? " exists" : " unknown");
      ask = comma == std::string_view::npos ? std::string_view() : ask.substr(comma + 1);
    }
    ctx.fail(report);
    return nullptr;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override { return std::make_unique<Filter>(); }
};

// ----- misuse: misuses the plugin ABI as the request's x-misuse field says, to prove that each
// misuse ends the stream at once (instead of leaving it hanging) and is counted -----
class MisuseFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    how_ = std::string(s.requestHeaders().get("x-misuse").value_or(""));
    if (how_ == "unknown-action") return static_cast<sl_type_action>(77);
    if (how_ == "buffer-from-headers") return SL_ACTION_STOP_AND_BUFFER;
    if (how_ == "continue-inside") {
      s.continueRequest();
      return SL_ACTION_STOP;
    }
    // Held here, so that the body comes to this filter before any answer.
    if (how_ == "unknown-body-action") return SL_ACTION_STOP;
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onRequestBody(Stream&, bool) override {
    if (how_ == "unknown-body-action") return static_cast<sl_type_action>(1000);
    return SL_ACTION_DEFAULT;
  }
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    if (how_ == "refused-reply") {
      s.sendResponse(403, "too late\n");  // refused: the response has started
      return SL_ACTION_STOP;
    }
    if (how_ == "continue-response-inside") {
      s.continueResponse();
      return SL_ACTION_STOP;
    }
    return SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseBody(Stream& s, bool) override {
    if (how_ == "refused-reply-in-body") {
      s.sendResponse(403, "too late\n");  // refused: the response head reached the client
      return SL_ACTION_STOP;
    }
    return SL_ACTION_DEFAULT;
  }

 private:
  std::string how_;
};

class MisuseConfig : public FilterConfig {
 public:
  static std::unique_ptr<MisuseConfig> create(ConfigContext&) {
    return std::make_unique<MisuseConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override { return std::make_unique<MisuseFilter>(); }
};

// ----- callout: makes the callouts the request's x-callout-* fields describe (sl_host_callout)
// and answers with how each start and each completion went -----
class CalloutFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    Headers h = s.requestHeaders();
    cluster_ = std::string(h.get("x-callout-cluster").value_or("svc"));
    path_ = std::string(h.get("x-callout-path").value_or("/"));
    chain_ = h.get("x-callout-chain").has_value();
    const int count = std::stoi(std::string(h.get("x-callout-count").value_or("1")));
    body_.assign(std::stoul(std::string(h.get("x-callout-body-size").value_or("0"))), 'a');
    timeout_ = std::stoull(std::string(h.get("x-callout-timeout-ms").value_or("0")));
    extra_name_ = std::string(h.get("x-callout-header-name").value_or("x-from-callout"));
    no_path_ = h.get("x-callout-no-path").has_value();
    const bool cancel_first = h.get("x-callout-cancel-first").has_value();
    out_ = "start=";
    uint64_t first_id = 0;
    for (int i = 0; i < count; ++i) {
      uint64_t id = 0;
      const sl_type_result rc = start(s, &id);
      out_ += std::to_string(rc) + ",";
      if (rc == SL_OK) ++pending_;
      if (i == 0) first_id = id;
    }
    if (cancel_first) {
      // Withdrawn: its completion never comes; a second cancel finds nothing in flight.
      const sl_type_result once = s.cancelCallout(first_id);
      if (once == SL_OK) --pending_;
      out_ += " cancel=" + std::to_string(once) + "," + std::to_string(s.cancelCallout(first_id));
    }
    // A completion inside sl_host_callout would have been recorded before this point.
    out_ += " inside=" + std::to_string(done_ > 0 ? 1 : 0);
    if (pending_ == 0) {
      s.sendResponse(200, out_ + "\n");
      return SL_ACTION_STOP;
    }
    return SL_ACTION_STOP;
  }
  void onCalloutDone(Stream& s, uint64_t id, const sl_type_callout_result& r) override {
    ++done_;
    --pending_;
    out_ += " done=" + std::to_string(id) + ":" + std::to_string(r.outcome) + ":" +
            std::to_string(r.status) + ":" + std::to_string(r.body.len) + ":" +
            std::string(sluice::sdk::CalloutHeader(r, "x-origin").value_or("-"));
    if (chain_) {
      chain_ = false;  // one more, from this completion
      uint64_t id = 0;
      const sl_type_result rc = start(s, &id);
      out_ += " chained=" + std::to_string(rc);
      if (rc == SL_OK) ++pending_;
    }
    if (pending_ == 0) s.sendResponse(200, out_ + "\n");
  }

 private:
  sl_type_result start(Stream& s, uint64_t* id) {
    std::vector<sl_type_header> h;
    h.push_back({sluice::sdk::Str(":method"), sluice::sdk::Str("POST")});
    if (!no_path_) h.push_back({sluice::sdk::Str(":path"), sluice::sdk::Str(path_)});
    h.push_back({sluice::sdk::Str(extra_name_), sluice::sdk::Str("1")});
    return sl_host_callout(s.raw(), sluice::sdk::Str(cluster_), h.data(), h.size(),
                           sluice::sdk::Str(body_), timeout_, id);
  }
  std::string cluster_, path_, body_, extra_name_, out_;
  uint64_t timeout_ = 0;
  int pending_ = 0;
  int done_ = 0;
  bool chain_ = false;
  bool no_path_ = false;
};

class CalloutConfig : public FilterConfig {
 public:
  static std::unique_ptr<CalloutConfig> create(ConfigContext&) {
    return std::make_unique<CalloutConfig>();
  }
  std::unique_ptr<Filter> newFilter(Stream&) override { return std::make_unique<CalloutFilter>(); }
};

}  // namespace

SLUICE_PLUGIN_FILTERS(
    sluice::sdk::Register<HeadersConfig>("headers", "sluice.test.plugin.HeaderMutation"),
    sluice::sdk::Register<PauseConfig>("pause", "sluice.test.plugin.Pause"),
    sluice::sdk::Register<DenyConfig>("deny", "sluice.test.plugin.Deny"),
    sluice::sdk::Register<UppercaseConfig>("uppercase"),
    sluice::sdk::Register<MetaSetConfig>("meta_set", "sluice.test.plugin.Metadata"),
    sluice::sdk::Register<MetaGetConfig>("meta_get", "sluice.test.plugin.Metadata"),
    sluice::sdk::Register<CountConfig>("count"), sluice::sdk::Register<ThrowConfig>("throw"),
    sluice::sdk::Register<FailNewConfig>("fail_new"),
    sluice::sdk::Register<NothingConfig>("nothing"),
    sluice::sdk::Register<InspectConfig>("inspect"),
    sluice::sdk::Register<ToClusterConfig>("to_cluster", "sluice.test.plugin.ToCluster"),
    sluice::sdk::Register<ClustersConfig>("clusters"),
    sluice::sdk::Register<MisuseConfig>("misuse"), sluice::sdk::Register<CalloutConfig>("callout"))
