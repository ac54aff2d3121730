// body_rewrite: rewrites whole request and response bodies (literal find/replace, upper case),
// up to a size. The example of a plugin that buffers a body (docs/plugins.md, "Buffering a
// body"): it holds the head, buffers with SL_ACTION_STOP_AND_BUFFER, rewrites once at the end and
// sends the head on with the new Content-Length, whatever framing the body came with.

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "extensions/filters/http/body_rewrite/body_rewrite.pb.h"
#include "sluice/sdk/filter.h"

namespace {

namespace pb = sluice::extensions::body_rewrite::v1;
using sluice::sdk::Body;
using sluice::sdk::ConfigContext;
using sluice::sdk::Counter;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Headers;
using sluice::sdk::Stream;

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

bool Active(const pb::Rewrite& r) { return r.replace_size() > 0 || r.uppercase(); }

std::string Apply(const pb::Rewrite& r, std::string body) {
  for (const auto& rep : r.replace()) {
    std::string out;
    out.reserve(body.size());
    size_t at = 0;
    for (size_t hit; (hit = body.find(rep.find(), at)) != std::string::npos;
         at = hit + rep.find().size()) {
      out.append(body, at, hit - at).append(rep.replace());
    }
    out.append(body, at, std::string::npos);
    body = std::move(out);
  }
  if (r.uppercase()) {
    std::transform(body.begin(), body.end(), body.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  }
  return body;
}

class BodyRewriteConfig : public FilterConfig {
 public:
  pb::BodyRewrite proto;
  Counter rewritten;
  Counter passed_too_large;

  static std::unique_ptr<BodyRewriteConfig> create(ConfigContext& ctx) {
    auto config = std::make_unique<BodyRewriteConfig>();
    if (!ctx.parse(config->proto)) {
      ctx.fail("cannot decode the BodyRewrite config");
      return nullptr;
    }
    const std::pair<const char*, const pb::Rewrite*> dirs[] = {
        {"request", &config->proto.request()}, {"response", &config->proto.response()}};
    for (const auto& [dir, rewrite] : dirs) {
      const pb::Rewrite& r = *rewrite;
      for (int i = 0; i < r.replace_size(); ++i) {
        if (r.replace(i).find().empty()) {
          ctx.fail(std::string(dir) + ".replace[" + std::to_string(i) +
                   "].find: must not be empty");
          return nullptr;
        }
      }
    }
    config->rewritten = ctx.counter("rewritten");
    config->passed_too_large = ctx.counter("passed_too_large");
    return config;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override;
};

// One direction: whether this stream's body is being buffered here for a rewrite.
class BodyRewriteFilter : public Filter {
 public:
  explicit BodyRewriteFilter(const BodyRewriteConfig& config) : config_(config) {}

  sl_type_action onRequestHeaders(Stream& s, bool end_stream) override {
    request_ = Start(config_.proto.request(), s.requestHeaders(), end_stream);
    return request_ ? SL_ACTION_STOP : SL_ACTION_CONTINUE;
  }
  sl_type_action onRequestBody(Stream& s, bool end_stream) override {
    return OnBody(request_, config_.proto.request(), s.requestBody(), s.requestHeaders(),
                  end_stream);
  }
  sl_type_action onRequestTrailers(Stream& s) override {
    return OnTrailers(request_, config_.proto.request(), s.requestBody(), s.requestHeaders());
  }
  sl_type_action onResponseHeaders(Stream& s, bool end_stream) override {
    // Every response head decides afresh (a local reply may replace the response).
    response_ = Start(config_.proto.response(), s.responseHeaders(), end_stream);
    return response_ ? SL_ACTION_STOP : SL_ACTION_CONTINUE;
  }
  sl_type_action onResponseBody(Stream& s, bool end_stream) override {
    return OnBody(response_, config_.proto.response(), s.responseBody(), s.responseHeaders(),
                  end_stream);
  }
  sl_type_action onResponseTrailers(Stream& s) override {
    return OnTrailers(response_, config_.proto.response(), s.responseBody(), s.responseHeaders());
  }

 private:
  // Whether to buffer this body: a rewrite is configured, there is a body, its type matches and
  // it does not announce more than max_bytes. The head is then held (STOP) until the rewrite.
  bool Start(const pb::Rewrite& r, Headers headers, bool end_stream) const {
    if (end_stream || !Active(r)) return false;
    if (r.content_types_size() > 0) {
      const std::string_view type = headers.get("content-type").value_or("");
      bool match = false;
      for (const auto& t : r.content_types()) match = match || StartsWithNoCase(type, t);
      if (!match) return false;
    }
    if (r.max_bytes() > 0) {
      if (auto cl = headers.get("content-length")) {
        uint64_t n = 0;
        for (char c : *cl) n = c >= '0' && c <= '9' ? n * 10 + (c - '0') : n;
        if (n > r.max_bytes()) {
          config_.passed_too_large.inc();
          return false;
        }
      }
    }
    return true;
  }

  sl_type_action OnBody(bool& active, const pb::Rewrite& r, Body body, Headers headers,
                        bool end_stream) const {
    if (!active) return SL_ACTION_CONTINUE;
    if (!end_stream) {
      if (r.max_bytes() > 0 && body.length() > r.max_bytes()) {
        // Too large after all (no Content-Length said so): let it all go on as it is —
        // CONTINUE releases the held head and what was buffered, in order.
        active = false;
        config_.passed_too_large.inc();
        return SL_ACTION_CONTINUE;
      }
      return SL_ACTION_STOP_AND_BUFFER;
    }
    Rewrite(r, body);
    // The head was held: it goes on with the length of the new body (the codec frames by it,
    // whatever framing the body arrived with).
    headers.set("content-length", std::to_string(body.length()));
    active = false;
    return SL_ACTION_CONTINUE;
  }

  // Trailers follow the body (chunked): the body hook saw no end_stream; the whole body is
  // read here. It stays chunked (trailers need it), so no Content-Length.
  sl_type_action OnTrailers(bool& active, const pb::Rewrite& r, Body body, Headers headers) const {
    if (!active) return SL_ACTION_CONTINUE;
    Rewrite(r, body);
    headers.remove("content-length");
    active = false;
    return SL_ACTION_CONTINUE;
  }

  void Rewrite(const pb::Rewrite& r, Body body) const {
    body.replace(Apply(r, body.toString()));
    config_.rewritten.inc();
  }

  const BodyRewriteConfig& config_;
  bool request_ = false;
  bool response_ = false;
};

std::unique_ptr<Filter> BodyRewriteConfig::newFilter(Stream&) {
  return std::make_unique<BodyRewriteFilter>(*this);
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<BodyRewriteConfig>(
    "body_rewrite", "sluice.extensions.body_rewrite.v1.BodyRewrite"))
