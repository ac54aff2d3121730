// header_mutation: removes, sets and appends request and response fields from a typed config.
// The example of a C++ plugin on the SDK with a protobuf config (see README.md).

#include <string>
#include <vector>

#include "extensions/filters/http/header_mutation/header_mutation.pb.h"
#include "sluice/sdk/filter.h"

namespace {

namespace pb = sluice::extensions::header_mutation::v1;
using sluice::sdk::ConfigContext;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Headers;
using sluice::sdk::Stream;

using sluice::sdk::IsValidFieldName;
using sluice::sdk::IsValidFieldValue;

// Checks one Mutations at config time, so that nothing the host would refuse reaches a stream.
bool Check(const pb::Mutations& m, const char* where, ConfigContext& ctx) {
  for (int i = 0; i < m.remove_size(); ++i) {
    if (!IsValidFieldName(m.remove(i))) {
      ctx.fail(std::string(where) + ".remove[" + std::to_string(i) + "]: \"" + m.remove(i) +
               "\" is not a field name");
      return false;
    }
  }
  for (int i = 0; i < m.set_size(); ++i) {
    const auto& h = m.set(i);
    const std::string at = std::string(where) + ".set[" + std::to_string(i) + "]";
    if (!IsValidFieldName(h.name())) {
      ctx.fail(at + ".name: \"" + h.name() + "\" is not a field name");
      return false;
    }
    if (!IsValidFieldValue(h.value())) {
      ctx.fail(at + ".value: must not contain CR, LF or NUL");
      return false;
    }
  }
  return true;
}

void Apply(const pb::Mutations& m, Headers headers) {
  for (const auto& name : m.remove()) headers.remove(name);
  for (const auto& h : m.set()) {
    if (h.append()) {
      headers.add(h.name(), h.value());
    } else {
      headers.set(h.name(), h.value());
    }
  }
}

class HeaderMutationConfig;

class HeaderMutationFilter : public Filter {
 public:
  explicit HeaderMutationFilter(const HeaderMutationConfig& config) : config_(config) {}
  sl_type_action onRequestHeaders(Stream& stream, bool) override;
  sl_type_action onResponseHeaders(Stream& stream, bool) override;

 private:
  const HeaderMutationConfig& config_;
};

class HeaderMutationConfig : public FilterConfig {
 public:
  pb::HeaderMutation proto;

  static std::unique_ptr<HeaderMutationConfig> create(ConfigContext& ctx) {
    auto config = std::make_unique<HeaderMutationConfig>();
    if (!ctx.parse(config->proto)) {
      ctx.fail("cannot decode the HeaderMutation config");
      return nullptr;
    }
    if (!Check(config->proto.request(), "request", ctx) ||
        !Check(config->proto.response(), "response", ctx)) {
      return nullptr;
    }
    return config;
  }

  // A route's own HeaderMutation replaces this one on that route (ABI 1.3 per-route config):
  // e.g. one route that must not get a header every other route gets.
  std::unique_ptr<sluice::sdk::RouteConfig> newRouteConfig(ConfigContext& ctx) override {
    auto route = std::make_unique<PerRoute>();
    if (!ctx.parse(route->proto)) {
      ctx.fail("cannot decode the HeaderMutation config");
      return nullptr;
    }
    if (!Check(route->proto.request(), "request", ctx) ||
        !Check(route->proto.response(), "response", ctx)) {
      return nullptr;
    }
    return route;
  }
  struct PerRoute : sluice::sdk::RouteConfig {
    pb::HeaderMutation proto;
  };
  // The mutations for the stream's route.
  const pb::HeaderMutation& forStream(Stream& stream) const {
    const PerRoute* route = stream.routeConfig<PerRoute>();
    return route != nullptr ? route->proto : proto;
  }

  // No per-stream state: every stream shares one filter (no allocation per request).
  Filter* sharedFilter() override { return &shared_; }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<HeaderMutationFilter>(*this);
  }

 private:
  HeaderMutationFilter shared_{*this};
};

sl_type_action HeaderMutationFilter::onRequestHeaders(Stream& stream, bool) {
  Apply(config_.forStream(stream).request(), stream.requestHeaders());
  return SL_ACTION_CONTINUE;
}

sl_type_action HeaderMutationFilter::onResponseHeaders(Stream& stream, bool) {
  Apply(config_.forStream(stream).response(), stream.responseHeaders());
  return SL_ACTION_CONTINUE;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<HeaderMutationConfig>(
    "header_mutation", "sluice.extensions.header_mutation.v1.HeaderMutation"))
