// The router through the plugin test harness (no proxy): route matching, actions, field changes,
// per-route config and metadata for other filters, and config refusals.

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

constexpr char kRoutes[] = R"(
"@type": type.googleapis.com/sluice.extensions.router.v1.Router
virtual_hosts:
  - name: api
    domains: [api.example.com, "*.api.example.com"]
    headers:
      response_add: [{name: x-served-by, value: sluice}]
    metadata: {team: api}
    routes:
      - name: users
        match: {regex: "/users/[0-9]+", methods: [GET, HEAD]}
        route: {cluster: users, timeout: 2s}
        metadata: {team: people}
      - name: beta
        match:
          prefix: /v2/
          headers: [{name: x-beta, present: true}]
        route: {cluster: v2, prefix_rewrite: /}
        headers:
          request_add: [{name: x-route, value: beta}]
      - name: old-docs
        match: {prefix: /docs}
        redirect: {host_redirect: docs.example.com, response_code: 308}
      - name: health
        match: {path: /healthz}
        direct_response: {status: 200, body: "ok\n"}
      - name: default
        route: {cluster: v1}
)";

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_.setClusters({"users", "v1", "v2"});
    std::string error;
    plugin_ = host_.load(SLUICE_PLUGIN_DIR "/router.so", &error);
    ASSERT_NE(nullptr, plugin_) << error;
  }
  std::unique_ptr<Chain> chainWith(const std::string& config) {
    auto chain = std::make_unique<Chain>(host_);
    const std::string error = chain->add(plugin_, "router", config);
    EXPECT_EQ("", error);
    EXPECT_EQ("", chain->build());
    return chain;
  }
  Host host_;
  Plugin* plugin_ = nullptr;
};

TEST_F(RouterTest, FirstMatchingRouteChoosesTheCluster) {
  auto chain = chainWith(kRoutes);
  auto s = chain->newStream();
  EXPECT_EQ(Flow::kContinued,
            s->requestHeaders(
                {{":method", "GET"}, {":path", "/users/42"}, {":authority", "api.example.com"}}));
  ASSERT_TRUE(s->upstream().has_value());
  EXPECT_EQ("users", s->upstream()->cluster);
  EXPECT_EQ("users", s->upstream()->route_name);
  EXPECT_EQ(2000u, s->upstream()->timeout_ms);
  EXPECT_EQ("api/users", s->routeName());  // "<virtual host>/<route>"
  EXPECT_FALSE(s->localReply().has_value());

  // Same path, a method the route does not take: the catch-all.
  auto post = chain->newStream();
  post->requestHeaders(
      {{":method", "POST"}, {":path", "/users/42"}, {":authority", "api.example.com"}});
  ASSERT_TRUE(post->upstream().has_value());
  EXPECT_EQ("v1", post->upstream()->cluster);
}

TEST_F(RouterTest, WildcardDomainsAndHeaderMatchersAndRewrite) {
  auto chain = chainWith(kRoutes);
  auto s = chain->newStream();
  s->requestHeaders({{":method", "GET"},
                     {":path", "/v2/items"},
                     {":authority", "eu.api.example.com:8080"},
                     {"x-beta", "1"}});
  ASSERT_TRUE(s->upstream().has_value());
  EXPECT_EQ("v2", s->upstream()->cluster);
  EXPECT_EQ("/items", s->requestHeader(":path"));
  EXPECT_EQ("beta", s->requestHeader("x-route"));

  auto no_beta = chain->newStream();
  no_beta->requestHeaders(
      {{":method", "GET"}, {":path", "/v2/items"}, {":authority", "api.example.com"}});
  ASSERT_TRUE(no_beta->upstream().has_value());
  EXPECT_EQ("v1", no_beta->upstream()->cluster);
  EXPECT_EQ("/v2/items", no_beta->requestHeader(":path"));
  EXPECT_FALSE(no_beta->hasRequestHeader("x-route"));
}

TEST_F(RouterTest, UnknownAuthorityIs404AndCounted) {
  auto chain = chainWith(kRoutes);
  auto s = chain->newStream();
  EXPECT_EQ(
      Flow::kEnded,
      s->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "other.example.com"}}));
  ASSERT_TRUE(s->localReply().has_value());
  EXPECT_EQ(404u, s->localReply()->status);
  EXPECT_FALSE(s->upstream().has_value());
  EXPECT_EQ(1, host_.metric("plugin.router.no_route"));
}

TEST_F(RouterTest, RedirectAndDirectResponse) {
  auto chain = chainWith(kRoutes);
  auto r = chain->newStream();
  r->requestHeaders(
      {{":method", "GET"}, {":path", "/docs/intro"}, {":authority", "api.example.com"}});
  ASSERT_TRUE(r->localReply().has_value());
  EXPECT_EQ(308u, r->localReply()->status);
  EXPECT_EQ("308", r->responseHeader(":status"));
  EXPECT_NE("", r->responseHeader("location"));
  EXPECT_NE(std::string::npos, r->responseHeader("location").find("docs.example.com"));

  auto d = chain->newStream();
  d->requestHeaders({{":method", "GET"}, {":path", "/healthz"}, {":authority", "api.example.com"}});
  ASSERT_TRUE(d->localReply().has_value());
  EXPECT_EQ(200u, d->localReply()->status);
  EXPECT_EQ("ok\n", d->localReply()->body);
  EXPECT_EQ(1, host_.metric("plugin.router.rq_direct_response"));
  // The virtual host's response fields apply to its local replies too.
  EXPECT_EQ("sluice", d->responseHeader("x-served-by"));
}

TEST_F(RouterTest, ResponseFieldsOfTheVirtualHost) {
  auto chain = chainWith(kRoutes);
  auto s = chain->newStream();
  s->requestHeaders({{":method", "GET"}, {":path", "/x"}, {":authority", "api.example.com"}});
  EXPECT_EQ(Flow::kContinued, s->responseHeaders({{":status", "200"}, {"content-length", "0"}}));
  EXPECT_EQ("sluice", s->responseHeader("x-served-by"));
}

TEST_F(RouterTest, UnknownClusterIsRefusedAtConfigTime) {
  Chain chain(host_);
  const std::string error = chain.add(plugin_, "router", R"(
virtual_hosts:
  - name: a
    domains: ["*"]
    routes: [{name: r, route: {cluster: nope}}]
)");
  EXPECT_NE(std::string::npos, error.find("unknown cluster \"nope\"")) << error;
  EXPECT_NE(std::string::npos, error.find("virtual_hosts[0].routes[0].route.cluster")) << error;
}

TEST_F(RouterTest, ConfigTypeErrorsNameTheField) {
  Chain chain(host_);
  const std::string error =
      chain.add(plugin_, "router", "virtual_hosts: [{name: a, domainz: [x]}]");
  EXPECT_NE(std::string::npos, error.find("domainz")) << error;
  Chain wrong_type(host_);
  EXPECT_NE(std::string::npos,
            wrong_type.add(plugin_, "router", "\"@type\": type.googleapis.com/acme.Other")
                .find("is not this filter's config type"));
}

TEST_F(RouterTest, RouteMetadataAndPerRouteConfigForAFilterBeforeTheRouter) {
  std::string error;
  Plugin* hm = host_.load(SLUICE_PLUGIN_DIR "/header_mutation.so", &error);
  ASSERT_NE(nullptr, hm) << error;
  Chain chain(host_);
  ASSERT_EQ("",
            chain.add(hm, "header_mutation", "request: {set: [{name: x-where, value: default}]}"));
  ASSERT_EQ("", chain.add(plugin_, "router", R"(
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - name: special
        match: {prefix: /special}
        route: {cluster: v1}
        typed_per_filter_config:
          header_mutation:
            "@type": type.googleapis.com/sluice.extensions.header_mutation.v1.HeaderMutation
            request: {set: [{name: x-where, value: special}]}
      - name: other
        route: {cluster: v2}
)"));
  ASSERT_EQ("", chain.build());

  auto special = chain.newStream();
  special->requestHeaders({{":method", "GET"}, {":path", "/special/1"}, {":authority", "h"}});
  EXPECT_EQ("special", special->requestHeader("x-where"));
  EXPECT_EQ("api/special", special->routeName());
  // Chosen once, by the first filter that asked (header_mutation, before the router).
  EXPECT_EQ(1u, special->routeSelections());
  EXPECT_EQ("v1", special->upstream()->cluster);

  auto other = chain.newStream();
  other->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
  EXPECT_EQ("default", other->requestHeader("x-where"));
  EXPECT_EQ("v2", other->upstream()->cluster);
}

TEST_F(RouterTest, PerRouteConfigForAFilterNotInTheChainIsRefused) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(plugin_, "router", R"(
virtual_hosts:
  - name: api
    domains: ["*"]
    routes:
      - name: r
        route: {cluster: v1}
        typed_per_filter_config: {auth: {}}
)"));
  const std::string error = chain.build();
  EXPECT_NE(std::string::npos, error.find("no plugin filter named \"auth\"")) << error;
}

}  // namespace
