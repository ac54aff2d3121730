// Access log formats: parsing (Envoy's command syntax, config errors), every field's value in
// the text and JSON formats, and the escaping that keeps a line one line whatever a value holds.

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/json_string.h"
#include "source/http/access_log.h"
#include "source/http/access_log_format.h"

namespace sluice::http {
namespace {

std::string Error(std::string_view format) {
  auto parsed = ParseLogFormat(format);
  EXPECT_FALSE(parsed.ok()) << format;
  return parsed.ok() ? "" : std::string(parsed.status().message());
}

TEST(AccessLogFormatTest, ParsesTheDefaultAndLiterals) {
  auto def = ParseLogFormat(kDefaultLogFormat);
  ASSERT_TRUE(def.ok()) << def.status();
  auto f = ParseLogFormat("a %% b %RESPONSE_CODE%\n");
  ASSERT_TRUE(f.ok()) << f.status();
  // The text before a command is its prefix; only text after the last command stands alone.
  ASSERT_EQ(f->segments.size(), 1u);
  EXPECT_EQ(f->segments[0].prefix, "a % b ");
  EXPECT_EQ(f->segments[0].field, LogField::kResponseCode);
  EXPECT_FALSE(f->singleCommand());
  auto tail = ParseLogFormat("%RESPONSE_CODE% %BYTES_SENT% end");
  ASSERT_TRUE(tail.ok()) << tail.status();
  ASSERT_EQ(tail->segments.size(), 3u);
  EXPECT_EQ(tail->segments[0].prefix, "");
  EXPECT_EQ(tail->segments[1].prefix, " ");
  EXPECT_EQ(tail->segments[1].field, LogField::kBytesSent);
  EXPECT_EQ(tail->segments[2].field, LogField::kLiteral);
  EXPECT_EQ(tail->segments[2].text, " end");
  auto one = ParseLogFormat("%REQ(USER-AGENT?:AUTHORITY):12%");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(one->singleCommand());
  const LogSegment& s = one->segments[0];
  EXPECT_EQ(s.header.name, "user-agent");
  EXPECT_EQ(s.header.known, KnownHeader::kUserAgent);
  EXPECT_EQ(s.fallback.pseudo, LogHeaderRef::Pseudo::kAuthority);
  EXPECT_EQ(s.max_length, 12u);
  auto host = ParseLogFormat("%REQ(Host)%");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->segments[0].header.known, KnownHeader::kHost);
}

TEST(AccessLogFormatTest, ErrorsSayWhatAndWhere) {
  EXPECT_EQ(Error("x %FOO% y"), "unknown command %FOO% at character 3");
  EXPECT_EQ(Error("100% sure"),
            "'%' at character 4 starts no command (a literal '%' is written %%)");
  EXPECT_EQ(Error("%REQ%"), "%REQ% at character 1 needs a field name: %REQ(USER-AGENT)%");
  EXPECT_EQ(Error("%REQ(:STATUS)%"),
            "%REQ(:STATUS)%: no such pseudo-header here (:METHOD, :PATH, :AUTHORITY and :SCHEME)");
  EXPECT_EQ(Error("%REQ(a b)%"), "%REQ(a b)%: \"a b\" is not a field name");
  EXPECT_EQ(Error("%REQ(X"), "%REQ( at character 1 has no closing ')'");
  EXPECT_EQ(Error("%DURATION"), "command %DURATION at character 1 does not end with '%'");
  EXPECT_EQ(Error("%DURATION(x)%"), "%DURATION% at character 1 takes no argument");
  EXPECT_EQ(Error("%START_TIME(%Y)%"),
            "%START_TIME% at character 1 takes no argument (the time is RFC 3339 with "
            "milliseconds, UTC)");
  EXPECT_EQ(Error("%REQ(X):0%"),
            "%REQ% at character 1: ':' after a command takes a maximum length (a positive number)");
  EXPECT_EQ(Error("%DYNAMIC_METADATA%"),
            "%DYNAMIC_METADATA% at character 1 needs a key: %DYNAMIC_METADATA(key)%");
  EXPECT_EQ(Error("a\nb"),
            "a line break at character 2: a line holds none (its newline is added; a format may "
            "end with one)");
  EXPECT_EQ(Error("a\x1b"
                  "b"),
            "a control character at character 2: a line holds none (its newline is added; a "
            "format may end with one)");
  auto json = ParseJsonLogFormat({{"b", "%RESPONSE_CODE%"}, {"a", "%NOPE%"}});
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().message(), "key \"a\": unknown command %NOPE% at character 1");
}

TEST(AccessLogFormatTest, TextEscaping) {
  std::string out;
  AppendTextEscaped(out, "a\"b\\c\r\nd\x1b[31me\x7f\x80\xff\tf");
  EXPECT_EQ(out, "a\\x22b\\x5cc\\x0d\\x0ad\\x1b[31me\\x7f\\x80\\xff\\x09f");
}

TEST(AccessLogFormatTest, NeedsTextEscapeFindsEveryByteAtEveryPosition) {
  for (int c = 0; c < 256; ++c) {
    const bool plain = c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
    for (size_t len = 1; len <= 19; ++len) {
      for (size_t at = 0; at < len; ++at) {
        std::string v(len, 'a');
        v[at] = static_cast<char>(c);
        ASSERT_EQ(NeedsTextEscape(v), !plain) << c << " " << len << " " << at;
        std::string copy(len, '\0');
        ASSERT_EQ(CopyIfPlain(v, copy.data()), plain) << c << " " << len << " " << at;
        if (plain) {
          ASSERT_EQ(copy, v);
        }
      }
    }
  }
  EXPECT_FALSE(NeedsTextEscape(""));
  EXPECT_TRUE(CopyIfPlain("", nullptr));
  EXPECT_FALSE(NeedsTextEscape("GET /a/b?c=d HTTP/1.1 ~}|{"));
}

TEST(AccessLogFormatTest, JsonEscaping) {
  std::string out;
  json::AppendEscaped(
      out, "q\"b\\ \r\n\t\x1b\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 bad\xff\xc3 over\xc0\xaf");
  EXPECT_EQ(out,
            "q\\\"b\\\\ \\r\\n\\t\\u001b\\u007f caf\xc3\xa9 \xf0\x9f\x98\x80 bad\\u00ff\\u00c3 "
            "over\\u00c0\\u00af");
  // Surrogates encoded in UTF-8 (ED A0 80) are not UTF-8.
  out.clear();
  json::AppendEscaped(out, "\xed\xa0\x80");
  EXPECT_EQ(out, "\\u00ed\\u00a0\\u0080");
}

// A stream's facts, as a finished proxied request has them.
struct Fixture {
  StreamInfo info;
  RequestHead request;
  ResponseHead response;
  HeaderMap trailers;
  std::chrono::steady_clock::time_point t0{std::chrono::seconds(1000)};

  Fixture() {
    info.downstream_remote = *network::Address::fromIpPort("10.0.0.1", 5555);
    info.downstream_local = *network::Address::fromIpPort("::1", 443);
    info.start = t0;
    // 2026-12-07T12:19:15.123Z
    info.start_wall =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(1796645955123));
    info.response_code = 200;
    info.bytes_received = 12;
    info.bytes_sent = 3456;
    info.route_name = "r1";
    info.cluster_name = "backend";
    info.upstream_attempts = 2;
    info.upstream.host = *network::Address::fromIpPort("127.0.0.1", 8080);
    info.upstream.first_tx = t0 + std::chrono::milliseconds(5);
    info.upstream.last_tx = t0 + std::chrono::milliseconds(7);
    info.upstream.first_rx = t0 + std::chrono::milliseconds(30);
    info.upstream.last_rx = t0 + std::chrono::milliseconds(40);
    info.metadata["user"] = "alice";
    info.metadata["evil"] = "x\r\ny\"z";
    request.method = "POST";
    request.path = "/api/v1?x=1";
    request.headers.add("Host", "example.com");
    request.headers.add("User-Agent", "curl/8");
    request.headers.add("X-Request-ID", "rid-1");
    request.headers.add("X-Evil", "a\"b\x1b");
    response.status = 200;
    response.headers.add("Content-Type", "text/plain");
    trailers.add("grpc-status", "0");
  }
  AccessLogContext context() const {
    return AccessLogContext{info,
                            &request,
                            &response,
                            &trailers,
                            "/api/./v1?x=1",
                            7,
                            42,
                            t0 + std::chrono::milliseconds(41)};
  }
  std::string line(std::string_view format) const {
    auto parsed = ParseLogFormat(format);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    AccessLog log(std::move(*parsed), nullptr);
    std::string out;
    log.format(context(), out);
    return out;
  }
};

TEST(AccessLogTest, EveryFieldInText) {
  Fixture f;
  EXPECT_EQ(f.line("%START_TIME%"), "2026-12-07T12:19:15.123Z\n");
  EXPECT_EQ(f.line("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(:SCHEME)% %ORIGINAL_PATH%"),
            "POST /api/v1?x=1 example.com http /api/./v1?x=1\n");
  EXPECT_EQ(f.line("%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%"),
            "HTTP/1.1 200 - -\n");
  EXPECT_EQ(f.line("%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESPONSE_DURATION% "
                   "%UPSTREAM_SERVICE_TIME%"),
            "12 3456 41 30 23\n");
  EXPECT_EQ(f.line("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME% "
                   "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"),
            "127.0.0.1:8080 backend r1 2\n");
  EXPECT_EQ(f.line("%REQUEST_ID% %REQ(X-REQUEST-ID)% %REQ(user-agent)% %REQ(x-missing)%"),
            "rid-1 rid-1 curl/8 -\n");
  EXPECT_EQ(f.line("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
                   "%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"),
            "10.0.0.1:5555 10.0.0.1 [::1]:443 ::1\n");
  EXPECT_EQ(f.line("%DOWNSTREAM_TLS_VERSION% %DOWNSTREAM_TLS_CIPHER% %REQUESTED_SERVER_NAME%"),
            "- - -\n");
  EXPECT_EQ(f.line("%CONNECTION_ID% %STREAM_ID%"), "42 7\n");
  EXPECT_EQ(f.line("%RESP(content-type)% %RESP(:STATUS)% %TRAILER(grpc-status)% %RESP(x)%"),
            "text/plain 200 0 -\n");
  EXPECT_EQ(f.line("%DYNAMIC_METADATA(user)% %DYNAMIC_METADATA(evil)% %DYNAMIC_METADATA(no)%"),
            "alice x\\x0d\\x0ay\\x22z -\n");
  EXPECT_EQ(f.line("\"%REQ(X-EVIL)%\" %REQ(USER-AGENT):4% %REQ(X-NONE?USER-AGENT)%"),
            "\"a\\x22b\\x1b\" curl curl/8\n");
  f.info.response_flags = FlagBit(ResponseFlag::kUpstreamConnectionFailure) |
                          FlagBit(ResponseFlag::kUpstreamRetryLimitExceeded);
  f.info.response_details = "upstream_connect_refused";
  f.info.protocol = Protocol::kHttp2;
  EXPECT_EQ(f.line("%PROTOCOL% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%"),
            "HTTP/2 UF,URX upstream_connect_refused\n");
  f.info.protocol = Protocol::kHttp11;
  f.request.version_minor = 0;
  EXPECT_EQ(f.line("%PROTOCOL%"), "HTTP/1.0\n");
}

TEST(AccessLogTest, ValuesOfEveryLengthAndNumbersOfEverySize) {
  Fixture f;
  for (size_t len = 0; len <= 40; ++len) {
    std::string v;
    for (size_t i = 0; i < len; ++i) v.push_back(static_cast<char>('a' + i % 26));
    f.request.headers.set("x-len", v);
    // Built by appends: GCC 12's -Wrestrict misfires on `"<" + std::string`.
    std::string expected = "<";
    expected.append(v.empty() ? std::string_view("-") : std::string_view(v)).append(">\n");
    EXPECT_EQ(f.line("<%REQ(X-LEN)%>"), expected);
  }
  for (uint64_t n : {uint64_t{0}, uint64_t{9}, uint64_t{10}, uint64_t{99999999},
                     uint64_t{18446744073709551615u}}) {
    f.info.bytes_received = n;
    EXPECT_EQ(f.line("%BYTES_RECEIVED%"), std::to_string(n) + "\n");
  }
}

TEST(AccessLogTest, NoUpstreamNoRequest) {
  StreamInfo info;
  info.response_code = 400;
  info.setResponseFlag(ResponseFlag::kDownstreamProtocolError, "bad request line");
  auto parsed = ParseLogFormat(kDefaultLogFormat);
  ASSERT_TRUE(parsed.ok());
  AccessLog log(std::move(*parsed), nullptr);
  std::string out;
  log.format(AccessLogContext{info, nullptr, nullptr, nullptr, {}, 0, 1, info.start}, out);
  EXPECT_EQ(out, "[-] \"- - HTTP/1.1\" 400 DPE 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
}

TEST(AccessLogTest, JsonTypesNullsAndEscapes) {
  Fixture f;
  auto json = ParseJsonLogFormat({{"status", "%RESPONSE_CODE%"},
                                  {"method", "%REQ(:METHOD)%"},
                                  {"missing", "%REQ(X-NOPE)%"},
                                  {"svc", "%UPSTREAM_SERVICE_TIME%"},
                                  {"mixed", "%REQ(:METHOD)% to %REQ(X-NOPE)% in %DURATION%ms"},
                                  {"evil", "%DYNAMIC_METADATA(evil)%"},
                                  {"k\"ey", "lit\"eral"},
                                  {"ua", "%REQ(USER-AGENT):3%"}});
  ASSERT_TRUE(json.ok()) << json.status();
  AccessLog log(std::move(*json), nullptr);
  std::string out;
  log.format(f.context(), out);
  EXPECT_EQ(out,
            "{\"evil\":\"x\\r\\ny\\\"z\",\"k\\\"ey\":\"lit\\\"eral\",\"method\":\"POST\","
            "\"missing\":null,\"mixed\":\"POST to - in 41ms\",\"status\":200,\"svc\":23,"
            "\"ua\":\"cur\"}\n");
  // Without an upstream: its numbers are null.
  f.info.upstream = UpstreamInfo{};
  out.clear();
  log.format(f.context(), out);
  EXPECT_NE(out.find("\"svc\":null"), std::string::npos) << out;
}

TEST(AccessLogTest, DefaultNames) {
  config::v1::AccessLog p;
  p.set_path("/var/log/sluice/access.log");
  EXPECT_EQ(DefaultAccessLogName(p), "var_log_sluice_access.log");
  p.set_path("/dev/stdout");
  EXPECT_EQ(DefaultAccessLogName(p), "stdout");
  p.clear_path();
  p.set_stdout(true);
  EXPECT_EQ(DefaultAccessLogName(p), "stdout");
}

TEST(AccessLogTest, BuildErrorsNameTheField) {
  config::v1::AccessLog p;
  p.set_path("/tmp/x");
  p.set_format("%BOGUS%");
  auto log = BuildAccessLog(p, nullptr, "listeners[0].http_connection_manager.access_log[1]");
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().message(),
            "listeners[0].http_connection_manager.access_log[1].format: unknown command %BOGUS% "
            "at character 1");
}

}  // namespace
}  // namespace sluice::http
