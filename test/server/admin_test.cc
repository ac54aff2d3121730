#include "source/server/admin.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::server {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

TEST(AdminQueryTest, DecodesFormEncoding) {
  EXPECT_EQ(DecodeQueryComponent("a%2Bb+c%20d"), "a+b c d");
  EXPECT_EQ(DecodeQueryComponent("%5Ecluster%5C.app%24"), "^cluster\\.app$");
  EXPECT_EQ(DecodeQueryComponent("%e2%82%AC"), "\xe2\x82\xac");
  EXPECT_EQ(DecodeQueryComponent(""), "");
  for (const char* bad : {"%", "%4", "%zz", "a%g0", "%%"}) {
    EXPECT_FALSE(DecodeQueryComponent(bad).has_value()) << bad;
  }
}

TEST(AdminQueryTest, SplitsParametersInOrder) {
  EXPECT_EQ(ParseQuery("format=json&filter=%5Ex&graceful"),
            (Params{{"format", "json"}, {"filter", "^x"}, {"graceful", ""}}));
  EXPECT_EQ(ParseQuery("&&a=1&&"), (Params{{"a", "1"}}));
  EXPECT_EQ(ParseQuery("a=b=c"), (Params{{"a", "b=c"}}));
  EXPECT_EQ(ParseQuery("a%3Db=c"), (Params{{"a=b", "c"}}));
  EXPECT_EQ(ParseQuery(""), Params{});
  EXPECT_FALSE(ParseQuery("a=1&b=%x1").has_value());
}

}  // namespace
}  // namespace sluice::server
