// log::EscapeUntrusted: what a plugin hands the host reaches a terminal or a log escaped and
// bounded.

#include <string>

#include "gtest/gtest.h"
#include "source/common/logging.h"

namespace sluice::log {
namespace {

TEST(EscapeUntrustedTest, KeepsPrintableAsciiAndWellFormedUtf8) {
  EXPECT_EQ("plain text: 100% [ok] \\ \"q\"",
            EscapeUntrusted("plain text: 100% [ok] \\ \"q\"", 1024));
  // 2-, 3- and 4-byte sequences: é, €, 𝄞.
  EXPECT_EQ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e",
            EscapeUntrusted("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e", 1024));
  EXPECT_EQ("", EscapeUntrusted("", 1024));
}

TEST(EscapeUntrustedTest, EscapesControlCharactersAndEsc) {
  EXPECT_EQ("\\x1b[31mred\\x1b[0m", EscapeUntrusted("\x1b[31mred\x1b[0m", 1024));
  EXPECT_EQ("a\\x0d\\x0ab\\x09c\\x00d\\x7f",
            EscapeUntrusted(std::string("a\r\nb\tc\0d\x7f", 9), 1024));
}

TEST(EscapeUntrustedTest, EscapesC1ControlsAndMalformedUtf8) {
  // U+009B (CSI) is a terminal control when written as UTF-8.
  EXPECT_EQ("\\xc2\\x9b2J", EscapeUntrusted("\xc2\x9b"
                                            "2J",
                                            1024));
  EXPECT_EQ("\\xff\\xfe", EscapeUntrusted("\xff\xfe", 1024));
  EXPECT_EQ("\\xc3", EscapeUntrusted("\xc3", 1024));                    // truncated sequence
  EXPECT_EQ("\\xc0\\xaf", EscapeUntrusted("\xc0\xaf", 1024));           // overlong '/'
  EXPECT_EQ("\\xe0\\x80\\xaf", EscapeUntrusted("\xe0\x80\xaf", 1024));  // overlong
  EXPECT_EQ("\\xed\\xa0\\x80", EscapeUntrusted("\xed\xa0\x80", 1024));  // a surrogate
  EXPECT_EQ("\\xf4\\x90\\x80\\x80", EscapeUntrusted("\xf4\x90\x80\x80", 1024));  // > U+10FFFF
  EXPECT_EQ("\\x80x", EscapeUntrusted("\x80x", 1024));  // a lone continuation
}

TEST(EscapeUntrustedTest, CutsAtTheBoundOnACharacterBoundaryAndSaysSo) {
  EXPECT_EQ("abcd...[cut: 6 more bytes]", EscapeUntrusted("abcdefghij", 4));
  // An escape is never split: "ab" + "\x1b" (4 bytes) does not fit in 5.
  EXPECT_EQ("ab...[cut: 2 more bytes]", EscapeUntrusted("ab\x1b"
                                                        "c",
                                                        5));
  // Nor a UTF-8 character: "é" (2 bytes) does not fit after "abc" in 4.
  EXPECT_EQ("abc...[cut: 2 more bytes]", EscapeUntrusted("abc\xc3\xa9", 4));
  EXPECT_EQ("abcd", EscapeUntrusted("abcd", 4));
  const std::string huge(100000, 'h');
  const std::string cut = EscapeUntrusted(huge, 1024);
  EXPECT_EQ(std::string(1024, 'h') + "...[cut: 98976 more bytes]", cut);
}

}  // namespace
}  // namespace sluice::log
