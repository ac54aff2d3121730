// Path normalization: every spelling of a path that an origin reads the same way comes out as one
// canonical target, so that routes (and access rules) see what the origin will serve.

#include "source/http/path_normalizer.h"

#include <string>

#include "gtest/gtest.h"

namespace sluice::http {
namespace {

using Slashes = PathNormalization::EscapedSlashes;

struct Case {
  const char* in;
  const char* want;  // nullptr: unchanged; "!": rejected; ">/x": redirect to /x
};

std::string Run(std::string_view in, const PathNormalization& o) {
  std::string out;
  const char* reason = nullptr;
  switch (NormalizePath(in, o, out, reason)) {
    case PathResult::kUnchanged:
      EXPECT_TRUE(out.empty()) << in;
      return std::string(in);
    case PathResult::kNormalized:
      EXPECT_NE(out, in);
      return out;
    case PathResult::kRedirect:
      return ">" + out;
    case PathResult::kReject:
      EXPECT_NE(reason, nullptr);
      return "!";
  }
  return "?";
}

void Check(const std::vector<Case>& cases, const PathNormalization& o) {
  for (const Case& c : cases) {
    EXPECT_EQ(Run(c.in, o), c.want != nullptr ? c.want : c.in) << "input: " << c.in;
  }
}

TEST(PathNormalizerTest, DefaultsCanonicalizeEveryBypassClass) {
  Check(
      {
          // Already canonical: untouched (no copy).
          {"/", nullptr},
          {"/admin", nullptr},
          {"/a/b/c?x=1&y=/../%2e", nullptr},
          {"/.well-known/acme", nullptr},
          {"/a/..b/c.", nullptr},
          {"/a?", nullptr},
          // Dot segments (RFC 3986 §5.2.4).
          {"/x/../admin", "/admin"},
          {"/./admin", "/admin"},
          {"/admin/.", "/admin/"},
          {"/admin/..", "/"},
          {"/../../admin", "/admin"},
          {"/a/b/../../admin/x", "/admin/x"},
          {"/..", "/"},
          // Percent-encoded unreserved characters are the characters.
          {"/%61dmin", "/admin"},
          {"/%41DMIN", "/ADMIN"},
          {"/adm%69n/%7e%2D%5f%2E", "/admin/~-_."},
          {"/%2e%2e/admin", "/admin"},
          {"/x/%2E%2E/admin", "/admin"},
          {"/x/.%2e/admin", "/admin"},
          // Other encodings stay encoded, in uppercase.
          {"/a%3ab", "/a%3Ab"},
          {"/a%20b", nullptr},
          {"/%25%32%65", "/%252e"},  // one decoding only: %25 stays
          {"/a%00b", nullptr},
          // Empty segments.
          {"//admin", "/admin"},
          {"/admin//x///y", "/admin/x/y"},
          {"//..//admin", "/admin"},
          // Backslashes read as separators.
          {"/x\\..\\admin", "/admin"},
          // Not origin-form: the parser never lets it through.
          {"\\admin", nullptr},
          // Escaped slashes: decoded, normalized again, and the client redirected there.
          {"/admin%2Fx", ">/admin/x"},
          {"/x%2f..%2fadmin", ">/admin"},
          {"/x%5C..%5Cadmin?q=%2F", ">/admin?q=%2F"},
          // The query is never touched.
          {"/a/../b?c=/../d&e=%2e", "/b?c=/../d&e=%2e"},
          // Bad percent-encodings are refused.
          {"/a%", "!"},
          {"/a%2", "!"},
          {"/a%zz", "!"},
          {"/a%2g/b", "!"},
      },
      PathNormalization{});
}

TEST(PathNormalizerTest, EscapedSlashActions) {
  PathNormalization o;
  o.escaped_slashes = Slashes::kKeep;
  Check({{"/admin%2fx", "/admin%2Fx"}, {"/a%5c", "/a%5C"}, {"/a%2F..%2Fb", nullptr}}, o);
  o.escaped_slashes = Slashes::kReject;
  Check({{"/admin%2Fx", "!"}, {"/a%5c", "!"}, {"/plain", nullptr}}, o);
  o.escaped_slashes = Slashes::kUnescapeAndForward;
  Check({{"/admin%2Fx", "/admin/x"}, {"/x%2F..%2Fadmin", "/admin"}, {"/a%5Cb", "/a/b"}}, o);
}

TEST(PathNormalizerTest, EachOptionAlone) {
  PathNormalization o;
  o.normalize = false;
  o.merge_slashes = false;
  o.escaped_slashes = Slashes::kKeep;
  // Nothing applies: every target is passed on as received.
  Check({{"/x/../a", nullptr}, {"//a", nullptr}, {"/%61%", nullptr}, {"/a%2fb", nullptr}}, o);
  o.merge_slashes = true;
  Check({{"//a//b/", "/a/b/"}, {"/x/../a", nullptr}, {"/a\\\\b", nullptr}}, o);
  o.merge_slashes = false;
  o.normalize = true;
  Check({{"//a/../b", "//b"}, {"/a//b", nullptr}, {"/%61", "/a"}}, o);
}

TEST(PathNormalizerTest, AbsoluteFormBecomesOriginForm) {
  std::string_view authority;
  std::string origin;
  ASSERT_TRUE(SplitAbsoluteForm("http://Example.com:8080/a/b?c", authority, origin));
  EXPECT_EQ(authority, "Example.com:8080");
  EXPECT_EQ(origin, "/a/b?c");
  ASSERT_TRUE(SplitAbsoluteForm("HTTPS://h", authority, origin));
  EXPECT_EQ(authority, "h");
  EXPECT_EQ(origin, "/");
  ASSERT_TRUE(SplitAbsoluteForm("http://h?x=1", authority, origin));
  EXPECT_EQ(origin, "/?x=1");
  ASSERT_TRUE(SplitAbsoluteForm("http://[::1]:80//x/../admin", authority, origin));
  EXPECT_EQ(authority, "[::1]:80");
  EXPECT_EQ(origin, "//x/../admin");
  EXPECT_FALSE(SplitAbsoluteForm("/a", authority, origin));
  EXPECT_FALSE(SplitAbsoluteForm("ftp://h/a", authority, origin));
}

}  // namespace
}  // namespace sluice::http
