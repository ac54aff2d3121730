#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "source/http/header_map.h"

namespace sluice::http {

// An access log format, parsed (config time): literal text and field commands in Envoy's
// substitution syntax (`%REQ(:METHOD)%`, `%RESPONSE_CODE%`, ...). What each command means is
// documented in api/sluice/config/v1/access_log.proto; formatting is in access_log.h. Parsing
// needs nothing of the data path, so that config validation (source/config) uses it too.
enum class LogField : uint8_t {
  kLiteral,  // `text` as it is
  kStartTime,
  kRequestHeader,    // %REQ(name)% / %REQ(a?b)%
  kResponseHeader,   // %RESP(...)%
  kResponseTrailer,  // %TRAILER(...)%
  kOriginalPath,
  kProtocol,
  kResponseCode,
  kResponseFlags,
  kResponseCodeDetails,
  kBytesReceived,
  kBytesSent,
  kDuration,
  kResponseDuration,
  kUpstreamHost,
  kUpstreamServiceTime,
  kUpstreamCluster,
  kRouteName,
  kUpstreamAttemptCount,
  kRequestId,
  kDownstreamRemoteAddress,
  kDownstreamRemoteAddressWithoutPort,
  kDownstreamLocalAddress,
  kDownstreamLocalAddressWithoutPort,
  kTlsVersion,
  kTlsCipher,
  kRequestedServerName,
  kConnectionId,
  kStreamId,
  kDynamicMetadata,  // %DYNAMIC_METADATA(key)%
};

// Whether a command's value is a number (a JSON number when it is a JSON value alone).
bool IsNumericLogField(LogField field);

// A header a %REQ/%RESP/%TRAILER command reads: a pseudo-header, or a field by name.
struct LogHeaderRef {
  enum class Pseudo : uint8_t { kNone, kMethod, kPath, kAuthority, kScheme, kStatus };
  Pseudo pseudo = Pseudo::kNone;
  KnownHeader known = KnownHeader::kCount;  // the field's slot when the core knows it
  std::string name;                         // lowercase; empty for a pseudo-header
  bool empty() const { return pseudo == Pseudo::kNone && name.empty(); }
};

struct LogSegment {
  LogField field = LogField::kLiteral;
  // kLiteral: the text (in a JSON format, already a JSON string's escaped content);
  // kDynamicMetadata: the key.
  std::string text;
  // A command's literal text before it, written first (escaped as `text` is): a line is one
  // step per command, not one per command and one per piece of text between them. Only text
  // after the last command is a kLiteral segment of its own.
  std::string prefix;
  // Header commands: the field, and the one read when it is absent ("A?B").
  LogHeaderRef header;
  LogHeaderRef fallback;
  // Values longer than this are cut (":N" after the command); 0: no limit.
  uint32_t max_length = 0;
};

// One format string, parsed.
struct LogFormat {
  std::vector<LogSegment> segments;
  // Exactly one command and no literal text (a typed JSON value).
  bool singleCommand() const {
    return segments.size() == 1 && segments[0].field != LogField::kLiteral &&
           segments[0].prefix.empty();
  }
};

// A text format: the line's newline is implied (a format may end with one, which is dropped);
// no other CR or LF, no control characters but HTAB. Errors say what and where ("unknown
// command %FOO% at character 12").
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view text);

// The JSON format: each key's value is a format string (no control characters at all); keys
// in sorted order. Errors name the key.
struct JsonLogFormat {
  // (the key as a JSON string's escaped content, the value's format)
  std::vector<std::pair<std::string, LogFormat>> entries;
};
absl::StatusOr<JsonLogFormat> ParseJsonLogFormat(
    const std::vector<std::pair<std::string, std::string>>& entries);

// Envoy's default line, in sluice's commands (see access_log.proto).
inline constexpr std::string_view kDefaultLogFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
    "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME% "
    "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "
    "\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"";

// Whether `value` holds a byte that either escaping changes (a few instructions a byte).
bool NeedsTextEscape(std::string_view value);
// Copies `value` to `out` (room for value.size() bytes) while checking it, eight bytes at a time:
// true when no byte needs escaping (the copy is whole), false as soon as one does (`out` then
// holds part of it, to be overwritten). One pass instead of a check and a copy.
bool CopyIfPlain(std::string_view value, char* out);
// Appends `value` escaped for a text log line: '"', '\\' and every byte outside 0x20..0x7e as
// \xNN (nginx's escaping), so that a value never ends a quoted field or splits the line.
void AppendTextEscaped(std::string& out, std::string_view value);
// JSON values are escaped by json::AppendEscaped (source/common/json_string.h).

}  // namespace sluice::http
