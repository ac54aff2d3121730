// Test filters for routes and per-route config (ABI 1.3 ROUTES), through the C++ SDK.
//
// "route_echo" (RouteEcho, per-route RouteEchoPerRoute): tells what it sees of the stream's
// route, as request fields the origin echoes and as response fields: x-route-say (its per-route
// config's `say`, else its own default_say), x-route-team (the route's metadata "team", or
// "-"). A request with x-set-path has its :path replaced by it first, and the route cleared
// (chosen again for the new path).
// "route_json" (JSON config and JSON per-route config): x-route-json, the per-route config as
// the filter got it, or "-".

#include <cstdint>
#include <memory>
#include <string>

#include "sluice/sdk/filter.h"
#include "test/plugin/plugins/route_filters.pb.h"

namespace {

using sluice::sdk::ConfigContext;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::RouteConfig;
using sluice::sdk::Stream;

struct EchoRoute : RouteConfig {
  std::string say;
};

class EchoConfig;

class EchoFilter : public Filter {
 public:
  explicit EchoFilter(const EchoConfig& config) : config_(config) {}
  sl_type_action onRequestHeaders(Stream& s, bool) override;
  sl_type_action onResponseHeaders(Stream& s, bool) override {
    s.responseHeaders().set("x-route-say", say_);
    s.responseHeaders().set("x-route-team", team_);
    return SL_ACTION_CONTINUE;
  }

 private:
  const EchoConfig& config_;
  std::string say_;
  std::string team_;
};

class EchoConfig : public FilterConfig {
 public:
  std::string default_say;

  static std::unique_ptr<EchoConfig> create(ConfigContext& ctx) {
    sluice::test::route::RouteEcho proto;
    if (!ctx.parse(proto)) {
      ctx.fail("cannot decode RouteEcho");
      return nullptr;
    }
    auto c = std::make_unique<EchoConfig>();
    c->default_say = proto.default_say();
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<EchoFilter>(*this);
  }
  std::unique_ptr<RouteConfig> newRouteConfig(ConfigContext& ctx) override {
    sluice::test::route::RouteEchoPerRoute proto;
    if (!ctx.parse(proto)) {
      ctx.fail("cannot decode RouteEchoPerRoute");
      return nullptr;
    }
    if (proto.reject()) {
      ctx.fail("reject: refused as asked");
      return nullptr;
    }
    auto r = std::make_unique<EchoRoute>();
    r->say = proto.say();
    return r;
  }
};

sl_type_action EchoFilter::onRequestHeaders(Stream& s, bool) {
  auto h = s.requestHeaders();
  if (auto path = h.get("x-set-path")) {
    h.set(":path", std::string(*path));
    s.clearRoute();
  }
  const EchoRoute* route = s.routeConfig<EchoRoute>();
  say_ = route != nullptr ? route->say : config_.default_say;
  team_ = std::string(s.routeMetadata("team").value_or("-"));
  h.set("x-route-say", say_);
  h.set("x-route-team", team_);
  return SL_ACTION_CONTINUE;
}

struct JsonRoute : RouteConfig {
  std::string json;
};

class JsonFilter : public Filter {
 public:
  sl_type_action onRequestHeaders(Stream& s, bool) override {
    const JsonRoute* route = s.routeConfig<JsonRoute>();
    s.requestHeaders().set("x-route-json", route != nullptr ? route->json : "-");
    return SL_ACTION_CONTINUE;
  }
};

class JsonConfig : public FilterConfig {
 public:
  static std::unique_ptr<JsonConfig> create(ConfigContext&) {
    return std::make_unique<JsonConfig>();
  }
  Filter* sharedFilter() override { return &filter_; }
  std::unique_ptr<Filter> newFilter(Stream&) override { return nullptr; }
  std::unique_ptr<RouteConfig> newRouteConfig(ConfigContext& ctx) override {
    auto r = std::make_unique<JsonRoute>();
    r->json = std::string(ctx.bytes());
    return r;
  }

 private:
  JsonFilter filter_;
};

// Defines one route (metadata team=forger) and selects it, except that with `x-forge` it hands
// the host a pointer it never got from it: the host must refuse it without reading through it.
class ForgerFilter : public Filter {
 public:
  explicit ForgerFilter(const sl_type_route* route) : route_(route) {}
  const sl_type_route* onSelectRoute(Stream& s) override {
    if (s.requestHeaders().get("x-forge")) {
      // An address in the never-mapped first page: a host that read through it would crash.
      return reinterpret_cast<const sl_type_route*>(uintptr_t{64});
    }
    return route_;
  }

 private:
  const sl_type_route* route_;
};

class ForgerConfig : public FilterConfig {
 public:
  static std::unique_ptr<ForgerConfig> create(ConfigContext& ctx) {
    auto c = std::make_unique<ForgerConfig>();
    ConfigContext::RouteDefinition d;
    d.name = "forged-ok";
    d.metadata = {{"team", "forger"}};
    c->route_ = ctx.defineRoute(d);
    if (c->route_ == nullptr) {
      ctx.fail("defineRoute refused");
      return nullptr;
    }
    return c;
  }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<ForgerFilter>(route_);
  }

 private:
  const sl_type_route* route_ = nullptr;
};

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<EchoConfig>("route_echo", "sluice.test.route.RouteEcho",
                                                        {}, "sluice.test.route.RouteEchoPerRoute"),
                      sluice::sdk::Register<JsonConfig>("route_json"),
                      sluice::sdk::Register<ForgerConfig>("route_forger"))
