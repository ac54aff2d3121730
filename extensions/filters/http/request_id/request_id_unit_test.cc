// request_id through the plugin test harness: generation, preservation, echo, its JSON config.

#include <regex>

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

const std::regex kUuid4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");

class RequestIdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    plugin_ = host_.load(SLUICE_PLUGIN_DIR "/request_id.so", &error);
    ASSERT_NE(nullptr, plugin_) << error;
  }
  Host host_;
  Plugin* plugin_ = nullptr;
};

TEST_F(RequestIdTest, GeneratesAUuidAndEchoesIt) {
  Chain chain(host_);
  ASSERT_EQ("", chain.add(plugin_, "request_id"));  // no config: the defaults
  auto a = chain.newStream();
  EXPECT_EQ(Flow::kContinued,
            a->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}}));
  const std::string id = a->requestHeader("x-request-id");
  EXPECT_TRUE(std::regex_match(id, kUuid4)) << id;
  a->responseHeaders({{":status", "200"}});
  EXPECT_EQ(id, a->responseHeader("x-request-id"));

  auto b = chain.newStream();
  b->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
  EXPECT_NE(id, b->requestHeader("x-request-id"));
}

TEST_F(RequestIdTest, KeepsAnIncomingIdUnlessToldNotTo) {
  Chain keep(host_);
  ASSERT_EQ("", keep.add(plugin_, "request_id", "{}", sluice::plugin_test::Format::kJson));
  auto s = keep.newStream();
  s->requestHeaders(
      {{":method", "GET"}, {":path", "/"}, {":authority", "h"}, {"x-request-id", "client-1"}});
  EXPECT_EQ("client-1", s->requestHeader("x-request-id"));

  Chain edge(host_);
  ASSERT_EQ("", edge.add(plugin_, "request_id",
                         "header: x-trace\nkeep_incoming: false\necho_on_response: false"));
  auto e = edge.newStream();
  e->requestHeaders(
      {{":method", "GET"}, {":path", "/"}, {":authority", "h"}, {"x-trace", "client-1"}});
  EXPECT_TRUE(std::regex_match(e->requestHeader("x-trace"), kUuid4)) << e->requestHeader("x-trace");
  e->responseHeaders({{":status", "204"}});
  EXPECT_FALSE(e->hasResponseHeader("x-trace"));
}

TEST_F(RequestIdTest, RefusesUnknownFields) {
  Chain chain(host_);
  const std::string error = chain.add(plugin_, "request_id", "colour: blue");
  EXPECT_NE(std::string::npos, error.find("unknown field \"colour\"")) << error;
}

}  // namespace
