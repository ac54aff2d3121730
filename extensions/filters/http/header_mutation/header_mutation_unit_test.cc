// header_mutation through the plugin test harness: request and response changes, remove before
// set, append, local replies of later filters, config refusals.

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Headers;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

class HeaderMutationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    plugin_ = host_.load(SLUICE_PLUGIN_DIR "/header_mutation.so", &error);
    ASSERT_NE(nullptr, plugin_) << error;
  }
  Host host_;
  Plugin* plugin_ = nullptr;
};

TEST_F(HeaderMutationTest, RemovesThenSetsAndAppendsOnTheRequest) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(plugin_, "header_mutation", R"(
request:
  remove: [x-secret]
  set:
    - {name: x-a, value: one}
    - {name: x-list, value: b, append: true}
)"));
  auto s = chain.newStream();
  EXPECT_EQ(Flow::kContinued, s->requestHeaders({{":method", "GET"},
                                                 {":path", "/"},
                                                 {":authority", "h"},
                                                 {"X-Secret", "s"},
                                                 {"x-a", "old"},
                                                 {"x-a", "older"},
                                                 {"x-list", "a"}}));
  EXPECT_FALSE(s->hasRequestHeader("x-secret"));
  EXPECT_EQ("one", s->requestHeader("x-a"));
  Headers want{{":method", "GET"}, {":path", "/"},  {":authority", "h"}, {"host", "h"},
               {"x-a", "one"},     {"x-list", "a"}, {"x-list", "b"}};
  EXPECT_EQ(want, s->requestHeaders());
}

TEST_F(HeaderMutationTest, ResponseChangesAlsoReachLocalReplies) {
  std::string error;
  host_.setClusters({"c"});
  Plugin* router = host_.load(SLUICE_PLUGIN_DIR "/router.so", &error);
  ASSERT_NE(nullptr, router) << error;
  Chain chain(host_);
  ASSERT_EQ("", chain.add(plugin_, "header_mutation",
                          R"({"response": {"set": [{"name": "x-out", "value": "yes"}],
                              "remove": ["server"]}})",
                          sluice::plugin_test::Format::kJson));
  ASSERT_EQ("", chain.add(router, "router", R"(
virtual_hosts:
  - name: a
    domains: ["*"]
    routes:
      - {name: tea, match: {path: /tea}, direct_response: {status: 418, body: "tea"}}
      - {name: r, route: {cluster: c}}
)"));
  auto s = chain.newStream();
  EXPECT_EQ(Flow::kEnded,
            s->requestHeaders({{":method", "GET"}, {":path", "/tea"}, {":authority", "h"}}));
  ASSERT_TRUE(s->localReply().has_value());
  EXPECT_EQ(418u, s->localReply()->status);
  EXPECT_EQ("yes", s->responseHeader("x-out"));

  auto origin = chain.newStream();
  origin->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
  origin->responseHeaders({{":status", "200"}, {"server", "origin"}}, false);
  origin->responseBodyChunked("hello world", 3);
  EXPECT_FALSE(origin->hasResponseHeader("server"));
  EXPECT_EQ("yes", origin->responseHeader("x-out"));
  EXPECT_EQ("hello world", origin->forwardedResponseBody());
  EXPECT_TRUE(origin->responseEnded());
}

TEST_F(HeaderMutationTest, BadNamesAndValuesAreRefusedAtLoad) {
  Chain a(host_);
  EXPECT_NE("",
            a.add(plugin_, "header_mutation", "request: {set: [{name: 'bad name', value: v}]}"));
  Chain b(host_);
  EXPECT_NE("", b.add(plugin_, "header_mutation",
                      R"({"request": {"set": [{"name": "x", "value": "a\r\nb"}]}})",
                      sluice::plugin_test::Format::kJson));
  Chain c(host_);
  const std::string unknown = c.add(plugin_, "header_mutation", "requests: {}");
  EXPECT_NE(std::string::npos, unknown.find("requests")) << unknown;
}

}  // namespace
