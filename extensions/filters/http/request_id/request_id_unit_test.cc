// request_id through the plugin test harness: generation, preservation, echo, its JSON config.

#include <string>

#include "gtest/gtest.h"
#include "sluice/plugin_test/harness.h"

namespace {

using sluice::plugin_test::Chain;
using sluice::plugin_test::Flow;
using sluice::plugin_test::Host;
using sluice::plugin_test::Plugin;

// A version-4 UUID in lower case: 8-4-4-4-12 hex digits, version 4, variant 10xx. (Checked by
// hand: GCC 12 warns inside <regex> under the sanitizers, and CI builds with -Werror.)
bool IsUuid4(const std::string& id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return id[14] == '4' && (id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b');
}

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
  EXPECT_TRUE(IsUuid4(id)) << id;
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
  EXPECT_TRUE(IsUuid4(e->requestHeader("x-trace"))) << e->requestHeader("x-trace");
  e->responseHeaders({{":status", "204"}});
  EXPECT_FALSE(e->hasResponseHeader("x-trace"));
}

TEST_F(RequestIdTest, RefusesUnknownFields) {
  Chain chain(host_);
  const std::string error = chain.add(plugin_, "request_id", "colour: blue");
  EXPECT_NE(std::string::npos, error.find("unknown field \"colour\"")) << error;
}

}  // namespace
