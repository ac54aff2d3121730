#include "source/http/access_log_format.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "source/common/json_string.h"

namespace sluice::http {

namespace {

// What a command accepts.
enum class Arg : uint8_t { kNone, kHeader, kKey };

struct Command {
  std::string_view name;
  LogField field;
  Arg arg;
};

constexpr Command kCommands[] = {
    {"START_TIME", LogField::kStartTime, Arg::kNone},
    {"REQ", LogField::kRequestHeader, Arg::kHeader},
    {"RESP", LogField::kResponseHeader, Arg::kHeader},
    {"TRAILER", LogField::kResponseTrailer, Arg::kHeader},
    {"ORIGINAL_PATH", LogField::kOriginalPath, Arg::kNone},
    {"PROTOCOL", LogField::kProtocol, Arg::kNone},
    {"RESPONSE_CODE", LogField::kResponseCode, Arg::kNone},
    {"RESPONSE_FLAGS", LogField::kResponseFlags, Arg::kNone},
    {"RESPONSE_CODE_DETAILS", LogField::kResponseCodeDetails, Arg::kNone},
    {"BYTES_RECEIVED", LogField::kBytesReceived, Arg::kNone},
    {"BYTES_SENT", LogField::kBytesSent, Arg::kNone},
    {"DURATION", LogField::kDuration, Arg::kNone},
    {"RESPONSE_DURATION", LogField::kResponseDuration, Arg::kNone},
    {"UPSTREAM_HOST", LogField::kUpstreamHost, Arg::kNone},
    {"UPSTREAM_SERVICE_TIME", LogField::kUpstreamServiceTime, Arg::kNone},
    {"UPSTREAM_CLUSTER", LogField::kUpstreamCluster, Arg::kNone},
    {"ROUTE_NAME", LogField::kRouteName, Arg::kNone},
    {"UPSTREAM_REQUEST_ATTEMPT_COUNT", LogField::kUpstreamAttemptCount, Arg::kNone},
    {"REQUEST_ID", LogField::kRequestId, Arg::kNone},
    {"DOWNSTREAM_REMOTE_ADDRESS", LogField::kDownstreamRemoteAddress, Arg::kNone},
    {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", LogField::kDownstreamRemoteAddressWithoutPort,
     Arg::kNone},
    {"DOWNSTREAM_LOCAL_ADDRESS", LogField::kDownstreamLocalAddress, Arg::kNone},
    {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", LogField::kDownstreamLocalAddressWithoutPort,
     Arg::kNone},
    {"DOWNSTREAM_TLS_VERSION", LogField::kTlsVersion, Arg::kNone},
    {"DOWNSTREAM_TLS_CIPHER", LogField::kTlsCipher, Arg::kNone},
    {"REQUESTED_SERVER_NAME", LogField::kRequestedServerName, Arg::kNone},
    {"CONNECTION_ID", LogField::kConnectionId, Arg::kNone},
    {"STREAM_ID", LogField::kStreamId, Arg::kNone},
    {"DYNAMIC_METADATA", LogField::kDynamicMetadata, Arg::kKey},
};

// (Debian's abseil has its own string_view: StrCat takes std::string_view through this.)
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsCommandChar(char c) { return absl::ascii_isupper(c) || absl::ascii_isdigit(c) || c == '_'; }

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// One header name of a %REQ/%RESP/%TRAILER argument.
absl::StatusOr<LogHeaderRef> ParseHeader(std::string_view name, LogField field,
                                         std::string_view command) {
  LogHeaderRef ref;
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "%", Sv(command), "(...)% needs a field name, e.g. %", Sv(command), "(USER-AGENT)%"));
  }
  if (name[0] == ':') {
    const std::string lower = absl::AsciiStrToLower(Sv(name));
    using P = LogHeaderRef::Pseudo;
    if (field == LogField::kRequestHeader) {
      if (lower == ":method") ref.pseudo = P::kMethod;
      if (lower == ":path") ref.pseudo = P::kPath;
      if (lower == ":authority") ref.pseudo = P::kAuthority;
      if (lower == ":scheme") ref.pseudo = P::kScheme;
    } else if (field == LogField::kResponseHeader) {
      if (lower == ":status") ref.pseudo = P::kStatus;
    }
    if (ref.pseudo == P::kNone) {
      return absl::InvalidArgumentError(
          absl::StrCat("%", Sv(command), "(", Sv(name), ")%: no such pseudo-header here (",
                       field == LogField::kRequestHeader ? ":METHOD, :PATH, :AUTHORITY and :SCHEME"
                       : field == LogField::kResponseHeader ? ":STATUS"
                                                            : "trailers have none",
                       ")"));
    }
    return ref;
  }
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("%", Sv(command), "(", Sv(name), ")%: \"",
                                                     Sv(name), "\" is not a field name"));
    }
  }
  ref.name = absl::AsciiStrToLower(Sv(name));
  ref.known = LookupKnownHeader(ref.name);
  return ref;
}

absl::StatusOr<LogFormat> Parse(std::string_view text, bool json) {
  LogFormat format;
  std::string literal;
  // The text since the last command, as written (JSON: escaped), into `to`.
  auto take_literal = [&](std::string& to) {
    if (json) {
      json::AppendEscaped(to, literal);
    } else {
      to = std::move(literal);
    }
    literal.clear();
  };
  auto flush_literal = [&] {
    if (literal.empty()) return;
    LogSegment s;
    s.field = LogField::kLiteral;
    take_literal(s.text);
    format.segments.push_back(std::move(s));
  };
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '%') {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return absl::InvalidArgumentError(absl::StrCat(
            c == '\n' || c == '\r' ? "a line break" : "a control character", " at character ",
            i + 1,
            json ? ": a JSON format's values hold none"
                 : ": a line holds none (its newline is added; a format may end with one)"));
      }
      literal.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      literal.push_back('%');
      i += 2;
      continue;
    }
    const size_t start = i;
    size_t j = i + 1;
    while (j < text.size() && IsCommandChar(text[j])) ++j;
    const std::string_view name = text.substr(i + 1, j - i - 1);
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'%' at character ", start + 1, " starts no command (a literal '%' is written %%)"));
    }
    const Command* command = nullptr;
    for (const Command& k : kCommands) {
      if (k.name == name) command = &k;
    }
    if (command == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown command %", Sv(name), "% at character ", start + 1));
    }
    bool has_arg = false;
    std::string_view arg;
    if (j < text.size() && text[j] == '(') {
      const size_t close = text.find(')', j + 1);
      if (close == std::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("%", Sv(name), "( at character ", start + 1, " has no closing ')'"));
      }
      has_arg = true;
      arg = text.substr(j + 1, close - j - 1);
      j = close + 1;
    }
    uint32_t max_length = 0;
    if (j < text.size() && text[j] == ':') {
      size_t k = j + 1;
      while (k < text.size() && absl::ascii_isdigit(text[k])) ++k;
      if (k == j + 1 || !absl::SimpleAtoi(Sv(text.substr(j + 1, k - j - 1)), &max_length) ||
          max_length == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("%", Sv(name), "% at character ", start + 1,
                         ": ':' after a command takes a maximum length (a positive number)"));
      }
      j = k;
    }
    if (j >= text.size() || text[j] != '%') {
      return absl::InvalidArgumentError(absl::StrCat("command %", Sv(name), " at character ",
                                                     start + 1, " does not end with '%'"));
    }
    ++j;
    LogSegment s;
    s.field = command->field;
    s.max_length = max_length;
    switch (command->arg) {
      case Arg::kNone:
        if (has_arg) {
          return absl::InvalidArgumentError(
              absl::StrCat("%", Sv(name), "% at character ", start + 1, " takes no argument",
                           command->field == LogField::kStartTime
                               ? " (the time is RFC 3339 with milliseconds, UTC)"
                               : ""));
        }
        break;
      case Arg::kHeader: {
        if (!has_arg) {
          return absl::InvalidArgumentError(absl::StrCat("%", Sv(name), "% at character ",
                                                         start + 1, " needs a field name: %",
                                                         Sv(name), "(USER-AGENT)%"));
        }
        const size_t q = arg.find('?');
        auto main = ParseHeader(arg.substr(0, q), command->field, name);
        if (!main.ok()) return main.status();
        s.header = std::move(*main);
        if (q != std::string_view::npos) {
          auto alt = ParseHeader(arg.substr(q + 1), command->field, name);
          if (!alt.ok()) return alt.status();
          s.fallback = std::move(*alt);
        }
        break;
      }
      case Arg::kKey:
        if (!has_arg || arg.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "%", Sv(name), "% at character ", start + 1, " needs a key: %", Sv(name), "(key)%"));
        }
        s.text.assign(arg);
        break;
    }
    take_literal(s.prefix);
    format.segments.push_back(std::move(s));
    i = j;
  }
  flush_literal();
  return format;
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

bool IsNumericLogField(LogField field) {
  switch (field) {
    case LogField::kResponseCode:
    case LogField::kBytesReceived:
    case LogField::kBytesSent:
    case LogField::kDuration:
    case LogField::kResponseDuration:
    case LogField::kUpstreamServiceTime:
    case LogField::kUpstreamAttemptCount:
    case LogField::kConnectionId:
    case LogField::kStreamId:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view text) {
  // The line's own newline may be written out; it is always added.
  if (!text.empty() && text.back() == '\n') {
    text.remove_suffix(1);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  }
  return Parse(text, /*json=*/false);
}

absl::StatusOr<JsonLogFormat> ParseJsonLogFormat(
    const std::vector<std::pair<std::string, std::string>>& entries) {
  std::vector<std::pair<std::string, std::string>> sorted = entries;
  std::sort(sorted.begin(), sorted.end());
  JsonLogFormat json;
  for (const auto& [key, value] : sorted) {
    auto format = Parse(value, /*json=*/true);
    if (!format.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key \"", key, "\": ", format.status().message()));
    }
    std::string escaped;
    json::AppendEscaped(escaped, key);
    json.entries.emplace_back(std::move(escaped), std::move(*format));
  }
  return json;
}

// Whether any byte of the word `x` needs escaping: below 0x20, above 0x7e, '"' or '\\' (the "bit
// twiddling hacks" byte tests, exact for whether any byte of the word matches).
inline bool WordNeedsEscape(uint64_t x) {
  constexpr uint64_t k01 = 0x0101010101010101ull;
  constexpr uint64_t k80 = 0x8080808080808080ull;
  const uint64_t below = (x - k01 * 0x20) & ~x & k80;
  const uint64_t above = ((x + k01 * (127 - 0x7e)) | x) & k80;
  const uint64_t q = x ^ (k01 * '"');
  const uint64_t b = x ^ (k01 * '\\');
  const uint64_t quote = (q - k01) & ~q & k80;
  const uint64_t backslash = (b - k01) & ~b & k80;
  return (below | above | quote | backslash) != 0;
}

bool NeedsTextEscape(std::string_view value) {
  const char* p = value.data();
  size_t n = value.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    if (WordNeedsEscape(x)) return true;
  }
  for (; n > 0; ++p, --n) {
    if (!json::IsPlain(*p)) return true;
  }
  return false;
}

bool CopyIfPlain(std::string_view value, char* out) {
  const char* p = value.data();
  size_t n = value.size();
  for (; n >= 8; p += 8, out += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    if (WordNeedsEscape(x)) return false;
    std::memcpy(out, &x, 8);
  }
  for (; n > 0; ++p, ++out, --n) {
    if (!json::IsPlain(*p)) return false;
    *out = *p;
  }
  return true;
}

void AppendTextEscaped(std::string& out, std::string_view value) {
  size_t clean = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    if (json::IsPlain(value[i])) continue;
    const auto u = static_cast<unsigned char>(value[i]);
    out.append(value.data() + clean, i - clean);
    const char esc[4] = {'\\', 'x', kHex[u >> 4], kHex[u & 0xf]};
    out.append(esc, 4);
    clean = i + 1;
  }
  out.append(value.data() + clean, value.size() - clean);
}

}  // namespace sluice::http
