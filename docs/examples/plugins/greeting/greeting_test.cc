// greeting's unit test: the plugin test harness installed with sluice loads greeting.so and
// drives streams through it; no proxy runs. Built and run by this directory's CMakeLists.txt
// (ctest), and by sluice's integration_out_of_tree_test.

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Host;

TEST(GreetingTest, GreetsTheRequestAndItsResponse) {
  Host host;
  std::string error;
  auto* plugin = host.load(GREETING_PLUGIN, &error);
  ASSERT_NE(nullptr, plugin) << error;

  Chain chain(host);
  // The typed config, as the `typed_config` of a sluice config writes it.
  ASSERT_EQ("", chain.add(plugin, "greeting", "message: hello\nheader: x-hi"));
  auto stream = chain.newStream();
  EXPECT_EQ(Flow::kContinued,
            stream->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "a"}}));
  EXPECT_EQ("hello", stream->requestHeader("x-hi"));

  stream->responseHeaders({{":status", "200"}}, /*end_stream=*/false);
  stream->responseBodyChunked("body bytes", 3);  // any chunking
  EXPECT_EQ("hello", stream->responseHeader("x-hi"));
  EXPECT_EQ("body bytes", stream->forwardedResponseBody());
}

TEST(GreetingTest, AnswersItsReplyPathItself) {
  Host host;
  auto* plugin = host.load(GREETING_PLUGIN);
  ASSERT_NE(nullptr, plugin);
  Chain chain(host);
  ASSERT_EQ("", chain.add(plugin, "greeting", "message: hi\nreply_path: /hello"));
  auto stream = chain.newStream();
  EXPECT_EQ(Flow::kEnded,
            stream->requestHeaders({{":method", "GET"}, {":path", "/hello"}, {":authority", "a"}}));
  ASSERT_TRUE(stream->localReply().has_value());
  EXPECT_EQ(200u, stream->localReply()->status);
  EXPECT_EQ("hi\n", stream->localReply()->body);
}

TEST(GreetingTest, RefusesAConfigWithoutMessage) {
  Host host;
  auto* plugin = host.load(GREETING_PLUGIN);
  ASSERT_NE(nullptr, plugin);
  Chain chain(host);
  EXPECT_NE(std::string::npos, chain.add(plugin, "greeting", "header: x-hi").find("message"));
}

}  // namespace
