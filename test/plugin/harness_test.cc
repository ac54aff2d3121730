// The plugin test harness itself, on the test plugins: timers on the fake clock, posts from
// another thread, bodies in any chunking, STOP_AND_BUFFER, trailers, callouts answered by the
// test, local replies, refused calls and ABI misuse, typed config errors, stream info.

#include <algorithm>
#include <cctype>

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

const sluice::plugin_test::Headers kGet = {{":method", "GET"}, {":path", "/"}, {":authority", "h"}};

class HarnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    filters_ = host_.load(SLUICE_TEST_PLUGIN_DIR "/test_filters.so", &error);
    ASSERT_NE(nullptr, filters_) << error;
  }
  Host host_;
  Plugin* filters_ = nullptr;
};

TEST_F(HarnessTest, TimersFireOnTheFakeClockOnly) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "pause", "delay: 0.25s"));
  auto s = chain.newStream();
  EXPECT_EQ(Flow::kPaused, s->requestHeaders(kGet));
  EXPECT_EQ(250u, s->timers(0).at(7));
  host_.advance(249);
  EXPECT_EQ(Flow::kPaused, s->requestFlow());
  EXPECT_FALSE(s->hasRequestHeader("x-paused"));
  host_.advance(1);
  EXPECT_EQ(Flow::kContinued, s->requestFlow());
  EXPECT_EQ("7", s->requestHeader("x-paused"));
  EXPECT_TRUE(s->requestEnded());
  s->responseHeaders({{":status", "200"}});
  EXPECT_EQ("timer", s->responseHeader("x-resumed-by"));
}

TEST_F(HarnessTest, BufferedBodyIsTheSameInAnyChunking) {
  for (size_t chunk : {1, 2, 5, 100}) {
    Chain chain(host_);
    ASSERT_EQ("", chain.add(filters_, "uppercase"));
    auto s = chain.newStream();
    s->requestHeaders(kGet);
    EXPECT_EQ(Flow::kPaused, s->responseHeaders({{":status", "200"}}, false));
    s->responseBodyChunked("hello body", chunk);
    EXPECT_EQ("HELLO BODY(rewritten)\n", s->forwardedResponseBody()) << "chunk " << chunk;
    EXPECT_EQ("22", s->responseHeader("content-length"));
    EXPECT_TRUE(s->responseEnded());
    EXPECT_EQ(Flow::kContinued, s->responseFlow());
  }
}

TEST_F(HarnessTest, PostsFromAnotherThreadRunWhenTheTestSaysSo) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "inspect"));
  auto s = chain.newStream();
  auto req = kGet;
  req.push_back({"x-post", "1"});
  EXPECT_EQ(Flow::kPaused, s->requestHeaders(req));
  // The plugin's thread posts; nothing runs until the test's "worker" does.
  while (host_.runPosts() == 0) {
  }
  EXPECT_EQ(Flow::kContinued, s->requestFlow());
  s->responseHeaders({{":status", "200"}});
  EXPECT_EQ("worker", s->responseHeader("x-posted"));
  EXPECT_EQ("inspect", s->responseHeader("x-filter-name"));
}

TEST_F(HarnessTest, BodyAndTrailersThroughAFilterThatBuffers) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "inspect"));
  auto s = chain.newStream();
  s->requestHeaders(kGet, false);
  EXPECT_EQ(Flow::kPaused, s->requestBodyChunked("0123456789abc", 4, false));
  EXPECT_EQ("", s->forwardedRequestBody());
  EXPECT_EQ(Flow::kContinued, s->requestTrailers({{"t", "v"}}));
  EXPECT_EQ("0123456789abc", s->forwardedRequestBody());
  EXPECT_TRUE(s->requestEnded());
  s->responseHeaders({{":status", "200"}});
  EXPECT_EQ("v", s->responseHeader("x-trailer-t"));
  EXPECT_EQ("13", s->responseHeader("x-body-length"));
}

TEST_F(HarnessTest, RefusedCallsAreCountedAsTheHostCountsThem) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "inspect"));
  auto s = chain.newStream();
  auto req = kGet;
  req.push_back({"x-bad-header", "1"});
  s->requestHeaders(req);
  EXPECT_EQ(1u, s->rejectedCalls());
  EXPECT_FALSE(s->hasRequestHeader("x-evil"));
  s->responseHeaders({{":status", "200"}});
  EXPECT_EQ(std::to_string(SL_ERR_INVALID), s->responseHeader("x-bad-header-result"));
}

TEST_F(HarnessTest, LocalReplyRunsThroughEarlierResponseFilters) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "headers", "response_set: [{name: x-early, value: yes}]"));
  ASSERT_EQ("", chain.add(filters_, "deny", "header: x-no\nstatus: 403\nbody: nope"));
  auto s = chain.newStream();
  auto req = kGet;
  req.push_back({"x-no", "1"});
  EXPECT_EQ(Flow::kEnded, s->requestHeaders(req));
  ASSERT_TRUE(s->localReply().has_value());
  EXPECT_EQ(403u, s->localReply()->status);
  EXPECT_EQ("nope", s->localReply()->body);
  EXPECT_EQ("deny", s->responseHeader("x-denied-by"));
  EXPECT_EQ("yes", s->responseHeader("x-early"));  // the filter before the one that replied
  EXPECT_EQ(1u, s->localReply()->filter);
}

TEST_F(HarnessTest, ConfigErrorsAreTheLoadersAndThePlugins) {
  Chain chain(host_);
  EXPECT_NE(std::string::npos, chain.add(filters_, "deny", "status: 99").find("200..599"));
  EXPECT_NE(std::string::npos, chain.add(filters_, "deny", "colour: red").find("colour"));
  EXPECT_NE(std::string::npos, chain.add(filters_, "nope").find("provides no such filter"));
  std::string error;
  EXPECT_EQ(nullptr, host_.load(SLUICE_TEST_PLUGIN_DIR "/newer_minor.so", &error));
  EXPECT_NE(std::string::npos, error.find("does not load")) << error;
}

TEST_F(HarnessTest, MisuseEndsTheStreamAsTheHostDoes) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(filters_, "misuse"));
  auto s = chain.newStream();
  auto req = kGet;
  req.push_back({"x-misuse", "continue-inside"});
  EXPECT_EQ(Flow::kEnded, s->requestHeaders(req));
  ASSERT_FALSE(s->misuses().empty());
  EXPECT_EQ("misuse_continue_inside_hook", s->misuses()[0]);
}

TEST_F(HarnessTest, CalloutsAreAnsweredByTheTest) {
  host_.setClusters({"auth"});
  std::string error;
  Plugin* callout = host_.load(SLUICE_TEST_PLUGIN_DIR "/callout.so", &error);
  ASSERT_NE(nullptr, callout) << error;
  Chain chain(host_);
  ASSERT_EQ("", chain.add(callout, "callout"));

  auto ok = chain.newStream();
  auto req = kGet;
  req.push_back({"x-user", "ann"});
  EXPECT_EQ(Flow::kPaused, ok->requestHeaders(req));
  auto pending = ok->pendingCallouts();
  ASSERT_EQ(1u, pending.size());
  EXPECT_EQ("auth", pending[0].cluster);
  EXPECT_EQ(500u, pending[0].timeout_ms);
  EXPECT_NE(pending[0].headers.end(),
            std::find(pending[0].headers.begin(), pending[0].headers.end(),
                      sluice::plugin_test::Header{"x-user", "ann"}));
  EXPECT_TRUE(ok->completeCallout(pending[0].id, 200, {}, "ann-token"));
  EXPECT_EQ(Flow::kContinued, ok->requestFlow());
  EXPECT_EQ("ann-token", ok->requestHeader("x-auth"));

  auto denied = chain.newStream();
  denied->requestHeaders(req);
  EXPECT_TRUE(
      denied->completeCallout(denied->pendingCallouts().at(0).id, 0, {}, "", SL_ATTEMPT_TIMEOUT));
  ASSERT_TRUE(denied->localReply().has_value());
  EXPECT_EQ(403u, denied->localReply()->status);

  // A cluster the config does not have: the host refuses the callout (SL_ERR_NOT_FOUND, a
  // config matter rather than a bad call: not counted as rejected, as in sluice).
  Host other;
  Plugin* again = other.load(SLUICE_TEST_PLUGIN_DIR "/callout.so", &error);
  Chain no_auth(other);
  ASSERT_EQ("", no_auth.add(again, "callout"));
  auto refused = no_auth.newStream();
  refused->requestHeaders(req);
  ASSERT_TRUE(refused->localReply().has_value());
  EXPECT_EQ(503u, refused->localReply()->status);
  EXPECT_EQ(0u, refused->rejectedCalls());
}

TEST_F(HarnessTest, TrailersAddedToAMessageWithoutThem) {
  std::string error;
  Plugin* abi13 = host_.load(SLUICE_TEST_PLUGIN_DIR "/abi13_filters.so", &error);
  ASSERT_NE(nullptr, abi13) << error;
  Chain chain(host_);
  ASSERT_EQ("", chain.add(abi13, "trailers"));
  for (size_t chunk : {1, 5}) {
    auto s = chain.newStream();
    auto req = kGet;
    req.push_back({"x-rs-trailers", "expect"});
    s->requestHeaders(req);
    s->responseHeaders({{":status", "200"}, {"content-length", "5"}}, false);
    EXPECT_EQ("0", s->responseHeader("x-expect-rs"));  // SL_OK
    EXPECT_FALSE(s->hasResponseHeader("content-length"));
    EXPECT_EQ(std::to_string(SL_ERR_STATE), s->responseHeader("x-early-add"));
    s->responseBodyChunked("hello", chunk);
    EXPECT_EQ("hello", s->forwardedResponseBody());
    EXPECT_TRUE(s->responseEnded());
    sluice::plugin_test::Headers want{{"grpc-status", "0"}, {"x-rs-added", "yes"}};
    EXPECT_EQ(want, s->responseTrailers());
  }
}

}  // namespace
