#include "source/common/json_string.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::json {
namespace {

TEST(JsonStringTest, QuotesAnyBytesAsValidJson) {
  EXPECT_EQ(json::Quote("plain"), "\"plain\"");
  EXPECT_EQ(json::Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json::Quote("\r\n\t\x1b\x7f"), "\"\\r\\n\\t\\u001b\\u007f\"");
  EXPECT_EQ(json::Quote(std::string("\0", 1)), "\"\\u0000\"");
  // Well-formed UTF-8 stays; bytes that are not become their Latin-1 code point.
  EXPECT_EQ(json::Quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
  EXPECT_EQ(json::Quote("\xff\xc3"), "\"\\u00ff\\u00c3\"");
  EXPECT_EQ(json::Quote("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\"");  // a surrogate
}

TEST(JsonStringTest, Utf8SequenceLength) {
  EXPECT_EQ(Utf8SequenceLength(""), 0u);
  EXPECT_EQ(Utf8SequenceLength("a"), 0u);
  EXPECT_EQ(Utf8SequenceLength("\xc3\xa9x"), 2u);
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82\xac"), 3u);
  EXPECT_EQ(Utf8SequenceLength("\xf0\x9f\x98\x80"), 4u);
  EXPECT_EQ(Utf8SequenceLength("\xc0\x80"), 0u);          // overlong
  EXPECT_EQ(Utf8SequenceLength("\xe0\x80\x80"), 0u);      // overlong
  EXPECT_EQ(Utf8SequenceLength("\xed\xa0\x80"), 0u);      // a surrogate
  EXPECT_EQ(Utf8SequenceLength("\xf4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(Utf8SequenceLength("\xe2\x82"), 0u);          // cut short
  EXPECT_EQ(Utf8SequenceLength("\xe2\x28\xa1"), 0u);      // not a continuation
}

TEST(JsonStringTest, AppendsAfterWhatIsThere) {
  std::string out = "x";
  AppendEscaped(out, "ab\"cd\xff");
  EXPECT_EQ(out, "xab\\\"cd\\u00ff");
  AppendString(out, "");
  EXPECT_EQ(out, "xab\\\"cd\\u00ff\"\"");
}

}  // namespace
}  // namespace sluice::json
