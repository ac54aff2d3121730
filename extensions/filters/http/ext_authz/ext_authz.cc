// ext_authz: asks an HTTP authorization service about each request before it goes on (Envoy's
// ext_authz filter, HTTP service). A callout (sl_host_callout) carries the check; 200 allows
// (fields of the answer may be added to the request), any other status denies (the client gets
// the service's status, body and fields), and an error (unreachable, timeout, reset, too large)
// either denies with status_on_error or, with failure_mode_allow, lets the request through.
// See README.md.

#include <string>
#include <vector>

#include "extensions/filters/http/ext_authz/ext_authz.pb.h"
#include "sluice/sdk/filter.h"

namespace {

namespace pb = sluice::extensions::ext_authz::v1;
using sluice::sdk::CalloutHeader;
using sluice::sdk::ConfigContext;
using sluice::sdk::Counter;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::IsValidFieldName;
using sluice::sdk::Stream;
using sluice::sdk::View;

constexpr uint64_t kDefaultTimeoutMs = 200;
constexpr uint32_t kDefaultStatusOnError = 403;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Fields the host owns on a reply (framing, the hop): never copied from the service's answer.
bool HopOrFraming(const std::string& lower) {
  for (const char* f : {"content-length", "transfer-encoding", "connection", "keep-alive",
                        "proxy-connection", "upgrade", "te", "trailer", "date", "server"}) {
    if (lower == f) return true;
  }
  return false;
}

class ExtAuthzConfig;

class ExtAuthzFilter : public Filter {
 public:
  explicit ExtAuthzFilter(const ExtAuthzConfig& config) : config_(config) {}
  sl_type_action onRequestHeaders(Stream& stream, bool end_stream) override;
  void onCalloutDone(Stream& stream, uint64_t id, const sl_type_callout_result& r) override;

 private:
  // The check could not be made or did not finish: answers status_on_error and returns false,
  // or (failure_mode_allow) marks the request and returns true: the caller lets it through.
  bool onError(Stream& stream);
  // Sends check_ (again).
  bool startCheck(Stream& stream);

  const ExtAuthzConfig& config_;
  // Kept for a second try: strings the request's views point into.
  std::string method_, path_, authority_;
  Stream::CalloutRequest check_;
  uint64_t callout_ = 0;
  bool retried_ = false;
};

class ExtAuthzConfig : public FilterConfig {
 public:
  pb::ExtAuthz proto;
  uint64_t timeout_ms = kDefaultTimeoutMs;
  uint32_t status_on_error = kDefaultStatusOnError;
  std::vector<std::string> request_headers;   // lowercase
  std::vector<std::string> upstream_headers;  // lowercase
  std::vector<std::string> client_headers;    // lowercase; empty: all but framing
  Counter ok, denied, error, failure_mode_allowed, retried;

  static std::unique_ptr<ExtAuthzConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<ExtAuthzConfig>();
    if (!ctx.parse(c->proto)) {
      ctx.fail("cannot decode the ExtAuthz config");
      return nullptr;
    }
    const pb::ExtAuthz& p = c->proto;
    if (p.cluster().empty()) {
      ctx.fail("cluster: required");
      return nullptr;
    }
    if (!ctx.hasCluster(p.cluster())) {
      ctx.fail("cluster: no cluster named \"" + p.cluster() + "\" in the config");
      return nullptr;
    }
    if (!p.path_prefix().empty()) {
      if (p.path_prefix()[0] != '/') {
        ctx.fail("path_prefix: must start with \"/\"");
        return nullptr;
      }
      for (unsigned char ch : p.path_prefix()) {
        if (ch <= 0x20 || ch == 0x7f) {
          ctx.fail("path_prefix: must not contain whitespace or control characters");
          return nullptr;
        }
      }
    }
    if (p.has_timeout()) {
      const auto& d = p.timeout();
      if (d.seconds() < 0 || d.nanos() < 0 || (d.seconds() == 0 && d.nanos() < 1000000)) {
        ctx.fail("timeout: must be at least 1ms");
        return nullptr;
      }
      c->timeout_ms =
          static_cast<uint64_t>(d.seconds()) * 1000 + static_cast<uint64_t>(d.nanos()) / 1000000;
    }
    if (p.status_on_error() != 0) {
      if (p.status_on_error() < 200 || p.status_on_error() > 599) {
        ctx.fail("status_on_error: must be 200-599, got " + std::to_string(p.status_on_error()));
        return nullptr;
      }
      c->status_on_error = p.status_on_error();
    }
    if (!Names(p.allowed_request_headers(), "allowed_request_headers", c->request_headers, ctx) ||
        !Names(p.allowed_upstream_headers(), "allowed_upstream_headers", c->upstream_headers,
               ctx) ||
        !Names(p.allowed_client_headers(), "allowed_client_headers", c->client_headers, ctx)) {
      return nullptr;
    }
    if (c->request_headers.empty()) c->request_headers.push_back("authorization");
    c->ok = ctx.counter("ok");
    c->denied = ctx.counter("denied");
    c->error = ctx.counter("error");
    c->failure_mode_allowed = ctx.counter("failure_mode_allowed");
    c->retried = ctx.counter("retried");
    return c;
  }

  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<ExtAuthzFilter>(*this);
  }

 private:
  static bool Names(const google::protobuf::RepeatedPtrField<std::string>& in, const char* field,
                    std::vector<std::string>& out, ConfigContext& ctx) {
    for (int i = 0; i < in.size(); ++i) {
      if (!IsValidFieldName(in[i])) {
        ctx.fail(std::string(field) + "[" + std::to_string(i) + "]: \"" + in[i] +
                 "\" is not a field name");
        return false;
      }
      out.push_back(Lower(in[i]));
    }
    return true;
  }
};

sl_type_action ExtAuthzFilter::onRequestHeaders(Stream& stream, bool) {
  auto headers = stream.requestHeaders();
  method_ = std::string(headers.get(":method").value_or("GET"));
  path_ = config_.proto.path_prefix() + std::string(headers.get(":path").value_or("/"));
  authority_ = std::string(headers.get(":authority").value_or(""));
  check_.method = method_;
  check_.path = path_;
  check_.authority = authority_;
  for (const auto& name : config_.request_headers) {
    for (std::string_view v : headers.getAll(name)) {
      check_.headers.emplace_back(name, std::string(v));
    }
  }
  check_.timeout_ms = config_.timeout_ms;
  // A body the client sends waits (buffered by the host) while the check runs.
  if (!startCheck(stream)) {
    // E.g. SL_ERR_LIMIT for a request head over the buffer limit: an error like any other.
    return onError(stream) ? SL_ACTION_CONTINUE : SL_ACTION_STOP;
  }
  return SL_ACTION_STOP;
}

bool ExtAuthzFilter::startCheck(Stream& stream) {
  return stream.callout(config_.proto.cluster(), check_, &callout_) == SL_OK;
}

void ExtAuthzFilter::onCalloutDone(Stream& stream, uint64_t id, const sl_type_callout_result& r) {
  if (id != callout_) return;
  if (r.outcome == SL_ATTEMPT_RESET && !retried_) {
    // The service closed the connection before answering: most likely a kept-alive connection
    // it closed as the check went out (the host sends only idempotent methods again itself). A
    // check changes nothing, so it is sent once more, whatever the client's method.
    retried_ = true;
    config_.retried.inc();
    if (startCheck(stream)) return;
  }
  if (r.outcome != SL_ATTEMPT_RESPONSE) {
    if (onError(stream)) stream.continueRequest();
    return;
  }
  if (r.status == 200) {
    config_.ok.inc();
    auto headers = stream.requestHeaders();
    for (const auto& name : config_.upstream_headers) {
      if (auto v = CalloutHeader(r, name)) headers.set(name, *v);
    }
    stream.continueRequest();
    return;
  }
  config_.denied.inc();
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < r.header_count; ++i) {
    const std::string name = Lower(View(r.headers[i].name));
    if (HopOrFraming(name)) continue;
    bool allowed = config_.client_headers.empty();
    for (const auto& a : config_.client_headers) allowed = allowed || a == name;
    if (allowed) out.emplace_back(name, std::string(View(r.headers[i].value)));
  }
  // The service's status as it is (a 1xx or 2xx other than 200 is still a denial: 403).
  const uint32_t status = r.status >= 300 && r.status <= 599 ? r.status : 403;
  stream.sendResponse(status, View(r.body), out, "ext_authz_denied");
}

bool ExtAuthzFilter::onError(Stream& stream) {
  config_.error.inc();
  if (config_.proto.failure_mode_allow()) {
    config_.failure_mode_allowed.inc();
    stream.requestHeaders().set("x-sluice-auth-failure-mode-allowed", "true");
    return true;
  }
  stream.sendResponse(config_.status_on_error, "", {}, "ext_authz_error");
  return false;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(
    sluice::sdk::Register<ExtAuthzConfig>("ext_authz", "sluice.extensions.ext_authz.v1.ExtAuthz"))
