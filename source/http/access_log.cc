#include "source/http/access_log.h"

#include <arpa/inet.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/json_string.h"
#include "source/http/response_flags.h"

namespace sluice::http {

namespace {

// A command's value: missing ("-" / null), a number, or bytes (escaped when written).
struct Value {
  enum class Kind : uint8_t { kMissing, kNumber, kString };
  Kind kind = Kind::kMissing;
  uint64_t number = 0;
  std::string_view text;
  // Made by sluice from characters that need no escaping (times, addresses, flags, names the
  // config validated): written without the escaping scan.
  bool trusted = false;
  static Value Number(uint64_t n) { return {Kind::kNumber, n, {}}; }
  static Value String(std::string_view s) { return {Kind::kString, 0, s}; }
  static Value Trusted(std::string_view s) { return {Kind::kString, 0, s, true}; }
};

// Scratch space for values that are formatted rather than found (addresses, times, flags).
struct Scratch {
  char buf[160];
};

// `n` bytes from `src` to `dst`: most of a line's pieces are a few bytes (" ", "\" \"", a
// number's digits), for which libc's memcpy call costs more than the copy. Fixed-size copies
// compile to loads and stores; two that overlap cover every length from 4 to 16.
inline void CopySmall(char* dst, const char* src, size_t n) {
  if (n > 16) {
    std::memcpy(dst, src, n);
  } else if (n >= 8) {
    uint64_t a, b;
    std::memcpy(&a, src, 8);
    std::memcpy(&b, src + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, src, 4);
    std::memcpy(&b, src + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n != 0) {
    dst[0] = src[0];
    dst[n / 2] = src[n / 2];
    dst[n - 1] = src[n - 1];
  }
}

// `n` in decimal at `out` (at most 20 bytes); returns the end. (abseil's FastIntToBuffer is
// out of line in Debian's shared library: ~130 instructions for a port.)
char* Decimal(uint64_t n, char* out) {
  char tmp[20];
  char* p = tmp + sizeof(tmp);
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  const size_t len = tmp + sizeof(tmp) - p;
  CopySmall(out, p, len);
  return out + len;
}

uint64_t Millis(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms < 0 ? 0 : static_cast<uint64_t>(ms);
}

bool Unset(std::chrono::steady_clock::time_point t) {
  return t == std::chrono::steady_clock::time_point{};
}

// "2026-12-07T12:19:15.123Z": the second's part is made once per second per thread.
std::string_view FormatStartTime(std::chrono::system_clock::time_point t, Scratch& s) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const time_t sec = static_cast<time_t>(ms / 1000);
  const int milli = static_cast<int>(ms % 1000);
  thread_local time_t cached_sec = -1;
  thread_local char cached[32];
  thread_local size_t cached_len = 0;
  if (sec != cached_sec) {
    struct tm tm;
    gmtime_r(&sec, &tm);
    cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = sec;
  }
  std::memcpy(s.buf, cached, cached_len);
  char* p = s.buf + cached_len;
  *p++ = '.';
  *p++ = static_cast<char>('0' + milli / 100);
  *p++ = static_cast<char>('0' + milli / 10 % 10);
  *p++ = static_cast<char>('0' + milli % 10);
  *p++ = 'Z';
  return std::string_view(s.buf, p - s.buf);
}

// "127.0.0.1:80", "[::1]:80", or without the port "127.0.0.1", "::1"; missing for no address.
Value FormatAddress(const network::Address& a, bool with_port, Scratch& s) {
  const int family = a.family();
  if (family != AF_INET && family != AF_INET6) return {};
  char* p = s.buf;
  const sockaddr* sa = a.sockaddr_ptr();
  if (family == AF_INET) {
    // By hand: glibc's inet_ntop goes through sprintf (~1,800 instructions a call).
    const auto* b =
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
    for (int i = 0; i < 4; ++i) {
      const uint8_t v = b[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + (v / 10) % 10);
      *p++ = static_cast<char>('0' + v % 10);
      if (i < 3) *p++ = '.';
    }
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    if (with_port) *p++ = '[';
    if (inet_ntop(AF_INET6, &in6->sin6_addr, p, 64) == nullptr) return {};
    p += std::strlen(p);
    if (with_port) *p++ = ']';
  }
  if (with_port) {
    *p++ = ':';
    p = Decimal(a.port(), p);
  }
  return Value::Trusted(std::string_view(s.buf, p - s.buf));
}

const HeaderMap::Entry* FindField(const HeaderMap& map, const LogHeaderRef& ref) {
  return ref.known != KnownHeader::kCount ? map.get(ref.known) : map.get(ref.name);
}

Value RequestField(const AccessLogContext& c, const LogHeaderRef& ref) {
  if (c.request == nullptr) return {};
  const RequestHead& r = *c.request;
  using P = LogHeaderRef::Pseudo;
  switch (ref.pseudo) {
    case P::kMethod:
      return r.method.empty() ? Value{} : Value::String(r.method);
    case P::kPath:
      return r.path.empty() ? Value{} : Value::String(r.path);
    case P::kAuthority: {
      const std::string_view a = r.authority();
      return a.empty() && r.headers.get(KnownHeader::kHost) == nullptr ? Value{} : Value::String(a);
    }
    case P::kScheme:
      return Value::String(!r.scheme.empty() ? r.scheme : c.info.scheme());
    case P::kStatus:
      return {};
    case P::kNone:
      break;
  }
  const HeaderMap::Entry* e = FindField(r.headers, ref);
  return e != nullptr ? Value::String(e->value) : Value{};
}

Value HeaderValue(const AccessLogContext& c, LogField field, const LogHeaderRef& ref, Scratch& s) {
  switch (field) {
    case LogField::kRequestHeader:
      return RequestField(c, ref);
    case LogField::kResponseHeader: {
      if (c.response == nullptr) return {};
      if (ref.pseudo == LogHeaderRef::Pseudo::kStatus) {
        char* end = Decimal(c.response->status, s.buf);
        return Value::Trusted(std::string_view(s.buf, end - s.buf));
      }
      const HeaderMap::Entry* e = FindField(c.response->headers, ref);
      return e != nullptr ? Value::String(e->value) : Value{};
    }
    case LogField::kResponseTrailer: {
      if (c.response_trailers == nullptr) return {};
      const HeaderMap::Entry* e = FindField(*c.response_trailers, ref);
      return e != nullptr ? Value::String(e->value) : Value{};
    }
    default:
      return {};
  }
}

Value Get(const LogSegment& seg, const AccessLogContext& c, Scratch& s) {
  const StreamInfo& info = c.info;
  switch (seg.field) {
    case LogField::kLiteral:
      return Value::String(seg.text);
    case LogField::kStartTime:
      if (info.start_wall == std::chrono::system_clock::time_point{}) return {};
      return Value::Trusted(FormatStartTime(info.start_wall, s));
    case LogField::kRequestHeader:
    case LogField::kResponseHeader:
    case LogField::kResponseTrailer: {
      Value v = HeaderValue(c, seg.field, seg.header, s);
      if (v.kind == Value::Kind::kMissing && !seg.fallback.empty()) {
        v = HeaderValue(c, seg.field, seg.fallback, s);
      }
      return v;
    }
    case LogField::kOriginalPath:
      return c.original_path.empty() ? Value{} : Value::String(c.original_path);
    case LogField::kProtocol:
      if (info.protocol == Protocol::kHttp2) return Value::Trusted("HTTP/2");
      if (info.protocol == Protocol::kHttp10 ||
          (c.request != nullptr && c.request->version_minor == 0)) {
        return Value::Trusted("HTTP/1.0");
      }
      return Value::Trusted("HTTP/1.1");
    case LogField::kResponseCode:
      return Value::Number(info.response_code);
    case LogField::kResponseFlags: {
      if (info.response_flags == 0) return {};
      char* p = s.buf;
      for (int i = 0; i < kResponseFlagCount; ++i) {
        if ((info.response_flags & (uint64_t{1} << i)) == 0) continue;
        const std::string_view name = ResponseFlagShortName(static_cast<ResponseFlag>(i));
        if (p != s.buf) *p++ = ',';
        std::memcpy(p, name.data(), name.size());
        p += name.size();
      }
      return Value::Trusted(std::string_view(s.buf, p - s.buf));
    }
    case LogField::kResponseCodeDetails:
      return info.response_details.empty() ? Value{} : Value::String(info.response_details);
    case LogField::kBytesReceived:
      return Value::Number(info.bytes_received);
    case LogField::kBytesSent:
      return Value::Number(info.bytes_sent);
    case LogField::kDuration:
      return Value::Number(Millis(c.end - info.start));
    case LogField::kResponseDuration:
      if (Unset(info.upstream.first_rx)) return {};
      return Value::Number(Millis(info.upstream.first_rx - info.start));
    case LogField::kUpstreamHost:
      return FormatAddress(info.upstream.host, /*with_port=*/true, s);
    case LogField::kUpstreamServiceTime: {
      const UpstreamInfo& u = info.upstream;
      if (Unset(u.first_rx) || Unset(u.first_tx)) return {};
      return Value::Number(Millis(u.first_rx - (Unset(u.last_tx) ? u.first_tx : u.last_tx)));
    }
    case LogField::kUpstreamCluster:
      return info.cluster_name.empty() ? Value{} : Value::Trusted(info.cluster_name);
    case LogField::kRouteName:
      return info.route_name.empty() ? Value{} : Value::String(info.route_name);
    case LogField::kUpstreamAttemptCount:
      return Value::Number(info.upstream_attempts);
    case LogField::kRequestId: {
      // The connection manager's request id (its own header name), else an x-request-id a
      // client or a filter (the request_id plugin) put on the request.
      if (!info.request_id.empty()) return Value::String(info.request_id);
      if (c.request == nullptr) return {};
      const HeaderMap::Entry* e = c.request->headers.get(KnownHeader::kXRequestId);
      return e != nullptr ? Value::String(e->value) : Value{};
    }
    case LogField::kDownstreamRemoteAddress:
      return FormatAddress(info.downstream_remote, true, s);
    case LogField::kDownstreamRemoteAddressWithoutPort:
      return FormatAddress(info.downstream_remote, false, s);
    case LogField::kDownstreamLocalAddress:
      return FormatAddress(info.downstream_local, true, s);
    case LogField::kDownstreamLocalAddressWithoutPort:
      return FormatAddress(info.downstream_local, false, s);
    case LogField::kTlsVersion:
      if (info.downstream_ssl == nullptr || info.downstream_ssl->version().empty()) return {};
      return Value::Trusted(info.downstream_ssl->version());
    case LogField::kTlsCipher:
      if (info.downstream_ssl == nullptr || info.downstream_ssl->cipher().empty()) return {};
      return Value::Trusted(info.downstream_ssl->cipher());
    case LogField::kRequestedServerName:
      if (info.downstream_ssl == nullptr || info.downstream_ssl->sni().empty()) return {};
      return Value::String(info.downstream_ssl->sni());
    case LogField::kConnectionId:
      return Value::Number(c.connection_id);
    case LogField::kStreamId:
      return Value::Number(c.stream_id);
    case LogField::kDynamicMetadata: {
      auto it = info.metadata.find(seg.text);
      return it != info.metadata.end() ? Value::String(it->second) : Value{};
    }
  }
  return {};
}

std::string_view Cut(std::string_view text, uint32_t max_length) {
  return max_length != 0 && text.size() > max_length ? text.substr(0, max_length) : text;
}

}  // namespace

AccessLog::AccessLog(LogFormat format, access_log::LogFile* file)
    : json_(false), text_(std::move(format)), file_(file) {}

AccessLog::AccessLog(JsonLogFormat format, access_log::LogFile* file)
    : json_(true), json_format_(std::move(format)), file_(file) {
  for (size_t i = 0; i < json_format_.entries.size(); ++i) {
    json_prefixes_.push_back(
        absl::StrCat(i == 0 ? "{\"" : ",\"", json_format_.entries[i].first, "\":"));
  }
}

// A line being made, in a buffer that only grows (one per thread, reused: no allocation per
// line once it is as long as the longest line). Appends are a bounds test and a memcpy, not
// std::string's out-of-line append.
class AccessLogLine {
 public:
  explicit AccessLogLine(std::unique_ptr<char[]>& buf, size_t& cap) : buf_(buf), cap_(cap) {
    if (buf_ == nullptr) grow(512);
    pos_ = buf_.get();
    end_ = buf_.get() + cap_;
  }
  std::string_view view() const { return std::string_view(buf_.get(), pos_ - buf_.get()); }
  void append(std::string_view v) {
    const size_t n = v.size();
    room(n);
    CopySmall(pos_, v.data(), n);
    pos_ += n;
  }
  void push(char c) {
    room(1);
    *pos_++ = c;
  }
  void number(uint64_t n) {
    room(24);
    pos_ = Decimal(n, pos_);
  }
  // `v` escaped for a text line; the usual value needs none (one scan, one copy).
  void text(std::string_view v) {
    room(v.size());
    if (CopyIfPlain(v, pos_)) {
      pos_ += v.size();
      return;
    }
    thread_local std::string escaped;
    escaped.clear();
    AppendTextEscaped(escaped, v);
    append(escaped);
  }
  void json(std::string_view v) {
    room(v.size());
    if (CopyIfPlain(v, pos_)) {  // (what is plain in text is plain in JSON)
      pos_ += v.size();
      return;
    }
    thread_local std::string escaped;
    escaped.clear();
    json::AppendEscaped(escaped, v);
    append(escaped);
  }

 private:
  // (Against a copy of the end in the object: the buffer's owner is a reference that every
  // store into the line could alias, so reading it would be two loads per append.)
  void room(size_t n) {
    if (static_cast<size_t>(end_ - pos_) < n) grow(n);
  }
  void grow(size_t n) {
    const size_t used = buf_ != nullptr ? pos_ - buf_.get() : 0;
    const size_t cap = std::max(cap_ * 2, used + n + 256);
    auto bigger = std::make_unique<char[]>(cap);
    if (used != 0) std::memcpy(bigger.get(), buf_.get(), used);
    buf_ = std::move(bigger);
    cap_ = cap;
    pos_ = buf_.get() + used;
    end_ = buf_.get() + cap;
  }

  std::unique_ptr<char[]>& buf_;
  size_t& cap_;
  char* pos_ = nullptr;
  char* end_ = nullptr;
};

namespace {

enum class Escaping { kText, kJson };

// A run of segments (a text line, or the string of a JSON field with several commands): each
// command's prefix, then its value — "-" when missing; in text, "-" for an empty string too, so
// that a line split at spaces keeps its fields. Values sluice made (trusted) skip the escaping.
template <Escaping kEscaping>
void AppendSegments(const std::vector<LogSegment>& segments, const AccessLogContext& c, Scratch& s,
                    AccessLogLine& out) {
  for (const LogSegment& seg : segments) {
    out.append(seg.prefix);  // (in JSON, escaped at config time, as `text` is)
    if (seg.field == LogField::kLiteral) {
      out.append(seg.text);
      continue;
    }
    const Value v = Get(seg, c, s);
    switch (v.kind) {
      case Value::Kind::kMissing:
        out.push('-');
        break;
      case Value::Kind::kNumber:
        out.number(v.number);
        break;
      case Value::Kind::kString: {
        const std::string_view text = Cut(v.text, seg.max_length);
        if (text.empty()) {
          if (kEscaping == Escaping::kText) out.push('-');
        } else if (v.trusted) {
          out.append(text);
        } else if (kEscaping == Escaping::kText) {
          out.text(text);
        } else {
          out.json(text);
        }
        break;
      }
    }
  }
}

}  // namespace

void AccessLog::formatInto(const AccessLogContext& c, AccessLogLine& out) const {
  Scratch s;
  if (!json_) {
    AppendSegments<Escaping::kText>(text_.segments, c, s, out);
    out.push('\n');
    return;
  }
  for (size_t i = 0; i < json_format_.entries.size(); ++i) {
    const LogFormat& format = json_format_.entries[i].second;
    out.append(json_prefixes_[i]);  // {"key": or ,"key":
    if (format.singleCommand()) {
      const LogSegment& seg = format.segments[0];
      const Value v = Get(seg, c, s);
      switch (v.kind) {
        case Value::Kind::kMissing:
          out.append("null");
          break;
        case Value::Kind::kNumber:
          out.number(v.number);
          break;
        case Value::Kind::kString:
          out.push('"');
          if (v.trusted) {
            out.append(Cut(v.text, seg.max_length));
          } else {
            out.json(Cut(v.text, seg.max_length));
          }
          out.push('"');
          break;
      }
      continue;
    }
    out.push('"');
    AppendSegments<Escaping::kJson>(format.segments, c, s, out);
    out.push('"');
  }
  if (json_format_.entries.empty()) out.push('{');
  out.append("}\n");
}

namespace {
thread_local std::unique_ptr<char[]> t_line;
thread_local size_t t_line_cap = 0;
}  // namespace

void AccessLog::format(const AccessLogContext& context, std::string& out) const {
  AccessLogLine line(t_line, t_line_cap);
  formatInto(context, line);
  out.append(line.view());
}

void AccessLog::log(const AccessLogContext& context) const {
  if (file_ == nullptr) return;
  AccessLogLine line(t_line, t_line_cap);
  formatInto(context, line);
  file_->write(line.view());
}

std::string DefaultAccessLogName(const config::v1::AccessLog& proto) {
  if (proto.stdout() || proto.path() == "/dev/stdout") return "stdout";
  std::string name;
  for (char c : proto.path()) {
    const bool ok =
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    if (!ok && name.empty()) continue;  // leading separators
    name.push_back(ok ? c : '_');
  }
  return name.empty() ? "access_log" : name;
}

absl::StatusOr<std::unique_ptr<AccessLog>> BuildAccessLog(const config::v1::AccessLog& proto,
                                                          access_log::Manager* manager,
                                                          const std::string& path) {
  // The format first: a config error opens no file.
  std::optional<JsonLogFormat> json;
  std::optional<LogFormat> text;
  if (!proto.json_format().empty()) {
    std::vector<std::pair<std::string, std::string>> entries(proto.json_format().begin(),
                                                             proto.json_format().end());
    auto parsed = ParseJsonLogFormat(entries);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".json_format: ", parsed.status().message()));
    }
    json = std::move(*parsed);
  } else {
    auto parsed = ParseLogFormat(proto.format().empty() ? kDefaultLogFormat : proto.format());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".format: ", parsed.status().message()));
    }
    text = std::move(*parsed);
  }
  access_log::LogFile* file = nullptr;
  if (manager != nullptr) {
    access_log::FileOptions options;
    options.path = proto.stdout() || proto.path() == "/dev/stdout" ? "" : proto.path();
    options.name = proto.name().empty() ? DefaultAccessLogName(proto) : proto.name();
    if (proto.buffer_size_bytes() != 0) options.buffer_bytes = proto.buffer_size_bytes();
    if (proto.has_flush_interval()) {
      options.flush_interval = std::max(
          std::chrono::milliseconds(1),
          std::chrono::milliseconds(
              google::protobuf::util::TimeUtil::DurationToMilliseconds(proto.flush_interval())));
    }
    auto f = manager->file(options);
    if (!f.ok()) {
      return absl::Status(f.status().code(), absl::StrCat(path, ": ", f.status().message()));
    }
    file = *f;
  }
  if (json.has_value()) return std::make_unique<AccessLog>(std::move(*json), file);
  return std::make_unique<AccessLog>(std::move(*text), file);
}

}  // namespace sluice::http
