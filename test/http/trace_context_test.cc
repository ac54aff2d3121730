// W3C Trace Context: the traceparent parser against every rule of §3.2 (and §4.3 for later
// versions), tracestate's limits and syntax (§3.3), and the ids written.

#include "source/http/trace_context.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace sluice::http::tracing {
namespace {

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string Hex(const uint8_t* b, size_t n) {
  std::string s(2 * n, '?');
  HexEncode(b, n, s.data());
  return s;
}

TEST(TraceparentTest, ValidVersion00) {
  auto tp = ParseTraceparent(kValid);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(0, tp->version);
  EXPECT_EQ("4bf92f3577b34da6a3ce929d0e0e4736", Hex(tp->trace_id.data(), 16));
  EXPECT_EQ("00f067aa0ba902b7", Hex(tp->parent_id.data(), 8));
  EXPECT_EQ(1, tp->flags);
  EXPECT_TRUE(tp->sampled());

  auto unsampled = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(unsampled.has_value());
  EXPECT_FALSE(unsampled->sampled());
  // Unknown flag bits are allowed; only the sampled bit is read.
  auto other = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(other->sampled());
  EXPECT_EQ(0xfe, other->flags);
}

TEST(TraceparentTest, Invalid) {
  const char* cases[] = {
      "",
      "00",
      // One character short, one too many (version 00 is exactly 55).
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
      // Version ff is invalid; a version must be hex.
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // Uppercase hex anywhere.
      "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
      // Not hex.
      "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0-",
      // All-zero ids.
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // Separators in the wrong places, or wrong ones.
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
      "004-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e47-3600f067aa0ba902b7-01",
      // Whitespace inside (the codec trims the field's ends only).
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7- 1",
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // A later version: what follows the 55 characters must start with '-'.
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
      "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
      // ... and it is still parsed by the 00 rules.
      "01-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
  };
  for (const char* c : cases) {
    EXPECT_FALSE(ParseTraceparent(c).has_value()) << '"' << c << '"';
  }
}

TEST(TraceparentTest, LaterVersions) {
  // §4.3: a version above 00 is parsed by the 00 rules, what follows a '-' at 55 ignored.
  auto exact = ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(exact.has_value());
  EXPECT_EQ(1, exact->version);
  EXPECT_TRUE(exact->sampled());
  auto longer =
      ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-the-future");
  ASSERT_TRUE(longer.has_value());
  EXPECT_EQ(0xcc, longer->version);
  EXPECT_FALSE(longer->sampled());
  EXPECT_EQ("4bf92f3577b34da6a3ce929d0e0e4736", Hex(longer->trace_id.data(), 16));
}

TEST(TraceparentTest, FormatRoundTrips) {
  auto tp = ParseTraceparent(kValid);
  ASSERT_TRUE(tp.has_value());
  const SpanId span = NewSpanId();
  char out[kTraceparentSize];
  FormatTraceparent(tp->trace_id, span, kSampledFlag, out);
  const std::string s(out, sizeof(out));
  EXPECT_EQ("00-4bf92f3577b34da6a3ce929d0e0e4736-" + Hex(span.data(), 8) + "-01", s);
  auto back = ParseTraceparent(s);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(tp->trace_id, back->trace_id);
  EXPECT_EQ(span, back->parent_id);
  FormatTraceparent(tp->trace_id, span, 0, out);
  EXPECT_EQ("-00", std::string(out + 52, 3));
}

TEST(TracestateTest, Valid) {
  const char* cases[] = {
      "",
      "rojo=00f067aa0ba902b7",
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
      "rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE",  // OWS around the commas
      "rojo=1,,congo=2",                             // empty members are allowed
      " , ",
      "fw529a3039@dt=1",                     // multi-tenant key
      "0tenant@sys=1",                       // a tenant id may start with a digit
      "a_-*/b=v a l u e",                    // key characters; spaces inside a value
      "k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~",  // every printable but ',' and '='
      "rojo=a ",  // trailing whitespace is OWS around the member, not part of the value
  };
  for (const char* c : cases) EXPECT_TRUE(IsValidTracestate(c)) << '"' << c << '"';
}

TEST(TracestateTest, Invalid) {
  const char* cases[] = {
      "rojo",                      // no '='
      "Rojo=1",                    // keys are lowercase
      "1rojo=1",                   // a simple key starts with a letter
      "ro jo=1",                   // no space in a key
      "rojo=",                     // an empty value
      "rojo=a=b",                  // '=' in a value
      "rojo=\x01",                 // controls
      "rojo=\xc3\xa9",             // non-ASCII
      "rojo=1,rojo=2",             // a key twice
      "@sys=1",                    // empty tenant
      "tenant@=1",                 // empty system
      "tenant@Sys=1",              // system starts lowercase
      "tenant@sys456789012345=1",  // system id at most 14
  };
  for (const char* c : cases) EXPECT_FALSE(IsValidTracestate(c)) << '"' << c << '"';
}

TEST(TracestateTest, Limits) {
  auto members = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i > 0) s += ",";
      s += absl::StrCat("k", i, "=v");
    }
    return s;
  };
  EXPECT_TRUE(IsValidTracestate(members(32)));
  EXPECT_FALSE(IsValidTracestate(members(33)));
  // Empty members do not count.
  EXPECT_TRUE(IsValidTracestate(members(32) + ",,,"));
  std::string long_value = absl::StrCat("k=", std::string(256, 'v'));
  EXPECT_TRUE(IsValidTracestate(long_value));
  EXPECT_FALSE(IsValidTracestate(absl::StrCat("k=", std::string(257, 'v'))));
  std::string key(256, 'k');
  EXPECT_TRUE(IsValidTracestate(absl::StrCat(key, "=v")));
  EXPECT_FALSE(IsValidTracestate(absl::StrCat(key, "k=v")));
  // 512 bytes in all.
  std::string at_limit =
      absl::StrCat("a=", std::string(200, 'v'), ",b=", std::string(200, 'v'), ",c=");
  at_limit.append(512 - at_limit.size(), 'v');
  ASSERT_EQ(512u, at_limit.size());
  EXPECT_TRUE(IsValidTracestate(at_limit));
  at_limit.push_back('v');
  EXPECT_FALSE(IsValidTracestate(at_limit));
}

TEST(IdsTest, RandomIdsAreNotZeroAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const TraceId t = NewTraceId();
    const SpanId s = NewSpanId();
    EXPECT_NE(TraceId{}, t);
    EXPECT_NE(SpanId{}, s);
    seen.insert(Hex(t.data(), 16));
  }
  EXPECT_EQ(1000u, seen.size());
}

TEST(IdsTest, Uuid4) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    char id[kUuidSize];
    NewUuid4(id);
    const std::string s(id, sizeof(id));
    ASSERT_EQ(36u, s.size());
    for (size_t k = 0; k < s.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23) {
        EXPECT_EQ('-', s[k]) << s;
      } else {
        EXPECT_TRUE((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')) << s;
      }
    }
    EXPECT_EQ('4', s[14]) << s;                                          // version 4
    EXPECT_NE(std::string::npos, std::string("89ab").find(s[19])) << s;  // variant 10
    seen.insert(s);
  }
  EXPECT_EQ(1000u, seen.size());
}

}  // namespace
}  // namespace sluice::http::tracing
