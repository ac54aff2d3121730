#include "source/http/http1/parser.h"

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "source/http/http1/parser_internal.h"

// Strict HTTP/1.1 head parsing and message framing (RFC 9112, RFC 9110). The parser is the front
// line against request smuggling: wherever two readings of a message are possible, it rejects
// the message instead of picking one, so that no server behind the proxy can read it differently.

namespace sluice::http::http1 {

using internal::Is;
using internal::IsOws;
using internal::kFieldValueChar;
using internal::kHostChar;
using internal::kQdTextChar;
using internal::kTargetChar;
using internal::kTokenChar;

namespace {

ParseError Error(uint16_t status, const char* reason) { return ParseError{status, reason}; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Calls `fn(element)` for each comma-separated element of a list value (RFC 9110 §5.6.1), OWS
// trimmed; stops and returns false as soon as `fn` does.
template <typename Fn>
bool ForEachListElement(std::string_view value, Fn fn) {
  size_t start = 0;
  while (true) {
    const size_t comma = value.find(',', start);
    const std::string_view element =
        TrimOws(value.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (!fn(element)) {
      return false;
    }
    if (comma == std::string_view::npos) {
      return true;
    }
    start = comma + 1;
  }
}

// "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). 0: HTTP/1.0 or HTTP/1.1 (minor set);
// 505: well-formed but another version; 400: not a version at all.
uint16_t ParseVersion(std::string_view v, uint8_t& minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !IsDigit(v[5]) || v[6] != '.' ||
      !IsDigit(v[7])) {
    return 400;
  }
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
    return 505;
  }
  minor = static_cast<uint8_t>(v[7] - '0');
  return 0;
}

// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3): an IP-literal in brackets or a
// reg-name/IPv4 of unreserved, sub-delims and pct-encoded bytes. Anything a router could read
// as a path, query, fragment or userinfo ('/', '?', '#', '@', whitespace) is refused.
bool ValidHostPort(std::string_view s, bool require_port) {
  if (s.empty()) {
    return false;
  }
  std::string_view host;
  std::string_view rest;
  if (s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    for (size_t i = 1; i < close; ++i) {
      if (!Is(s[i], kHostChar) || s[i] == '[') {
        return false;
      }
    }
    host = s.substr(0, close + 1);
    rest = s.substr(close + 1);
  } else {
    const size_t colon = s.find(':');
    host = s.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
    for (size_t i = 0; i < host.size(); ++i) {
      const char c = host[i];
      if (!Is(c, kHostChar) || c == '[' || c == ']' || c == ':') {
        return false;
      }
      if (c == '%' && (i + 2 >= host.size() || !Is(host[i + 1], internal::kHexChar) ||
                       !Is(host[i + 2], internal::kHexChar))) {
        return false;
      }
    }
    if (host.empty()) {
      return false;
    }
  }
  if (rest.empty()) {
    return !require_port;
  }
  if (rest[0] != ':') {
    return false;
  }
  const std::string_view port = rest.substr(1);
  if (port.empty()) {
    // RFC 3986 allows "host:" (port = *DIGIT); CONNECT needs a real one (RFC 9110 §9.3.6).
    return !require_port;
  }
  if (port.size() > 5) {
    return false;
  }
  uint32_t value = 0;
  for (char c : port) {
    if (!IsDigit(c)) {
      return false;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value <= 65535;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && HeaderNameEquals(s.substr(0, prefix.size()), prefix);
}

// RFC 9112 §3.2: which target forms a method may use.
std::optional<ParseError> ValidateTarget(std::string_view method, std::string_view target) {
  if (target.find('#') != std::string_view::npos) {
    // A fragment is never part of a request-target (RFC 9112 §3.2); servers differ on whether
    // they strip it or route on it.
    return Error(400, "fragment in request-target");
  }
  if (method == "CONNECT") {
    // authority-form only (RFC 9112 §3.2.3), with a port (RFC 9110 §9.3.6).
    if (!ValidHostPort(target, /*require_port=*/true)) {
      return Error(400, "CONNECT target is not host:port");
    }
    return std::nullopt;
  }
  if (target == "*") {
    if (method != "OPTIONS") {
      return Error(400, "asterisk-form target on a method other than OPTIONS");
    }
    return std::nullopt;
  }
  if (target[0] == '/') {
    return std::nullopt;  // origin-form
  }
  // absolute-form: only the schemes a proxy forwards; the authority must be a plain host[:port].
  size_t scheme_len = 0;
  if (StartsWithIgnoreCase(target, "http://")) {
    scheme_len = 7;
  } else if (StartsWithIgnoreCase(target, "https://")) {
    scheme_len = 8;
  } else {
    return Error(400, "request-target is not origin-form or absolute-form");
  }
  const std::string_view rest = target.substr(scheme_len);
  const size_t authority_end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority.find('@') != std::string_view::npos) {
    // RFC 9110 §4.2.4: userinfo is deprecated and its presence ought to be treated as an error.
    return Error(400, "userinfo in request-target");
  }
  if (!ValidHostPort(authority, /*require_port=*/false)) {
    return Error(400, "invalid authority in request-target");
  }
  return std::nullopt;
}

// method SP request-target SP HTTP-version, exactly one SP between (RFC 9112 §3).
std::optional<ParseError> ParseRequestLine(std::string_view line, RequestHead& head) {
  if (line.empty()) {
    return Error(400, "empty request line");
  }
  size_t i = 0;
  while (i < line.size() && Is(line[i], kTokenChar)) ++i;
  if (i == 0 || i == line.size() || line[i] != ' ') {
    return Error(400, "invalid method");
  }
  head.method = line.substr(0, i);
  const size_t target_start = i + 1;
  size_t j = target_start;
  while (j < line.size() && Is(line[j], kTargetChar)) ++j;
  if (j == target_start) {
    return Error(400, j < line.size() && line[j] == ' ' ? "more than one space in request line"
                                                        : "invalid request-target");
  }
  if (j == line.size()) {
    return Error(400, "missing HTTP version");
  }
  if (line[j] != ' ') {
    return Error(400, "invalid character in request-target");
  }
  head.path = line.substr(target_start, j - target_start);
  const std::string_view version_text = line.substr(j + 1);
  const uint16_t version = ParseVersion(version_text, head.version_minor);
  if (version == 505) {
    return Error(505, "unsupported HTTP version");
  }
  if (version != 0) {
    return Error(400, version_text.find(' ') != std::string_view::npos
                          ? "space in request-target or more than one space in request line"
                          : "invalid HTTP version");
  }
  return ValidateTarget(head.method, head.path);
}

// Every Content-Length value (repeated fields and list elements) must be 1*DIGIT and byte-equal
// to the first; the value must fit in 63 bits.
std::optional<ParseError> ParseContentLength(const HeaderMap& headers, uint16_t status,
                                             uint64_t& length) {
  std::string_view canonical;
  const char* problem = nullptr;
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (e.known != KnownHeader::kContentLength || e.name.empty()) {
      continue;
    }
    ForEachListElement(e.value, [&](std::string_view element) {
      if (element.empty()) {
        problem = "empty Content-Length";
        return false;
      }
      for (char c : element) {
        if (!IsDigit(c)) {
          problem = "Content-Length is not a decimal number";
          return false;
        }
      }
      if (canonical.empty()) {
        canonical = element;
      } else if (element != canonical) {
        problem = "differing Content-Length values";
        return false;
      }
      return true;
    });
    if (problem != nullptr) {
      return Error(status, problem);
    }
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t value = 0;
  for (char c : canonical) {
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) {
      return Error(status, "Content-Length too large");
    }
    value = value * 10 + digit;
  }
  length = value;
  return std::nullopt;
}

// transfer-parameters after a coding name: *( OWS ";" OWS token BWS "=" BWS ( token /
// quoted-string ) ) (RFC 9110 §10.1.4, §5.6.6).
bool ValidTransferParameters(std::string_view r) {
  size_t i = 0;
  const auto skip_ows = [&] {
    while (i < r.size() && IsOws(r[i])) ++i;
  };
  const auto token = [&] {
    const size_t start = i;
    while (i < r.size() && Is(r[i], kTokenChar)) ++i;
    return i > start;
  };
  while (i < r.size()) {
    skip_ows();
    if (i == r.size() || r[i] != ';') {
      return false;
    }
    ++i;
    skip_ows();
    if (!token()) {
      return false;
    }
    skip_ows();
    if (i == r.size() || r[i] != '=') {
      return false;
    }
    ++i;
    skip_ows();
    if (i < r.size() && r[i] == '"') {
      ++i;
      bool closed = false;
      while (i < r.size()) {
        const char c = r[i];
        if (c == '"') {
          ++i;
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i + 1 == r.size() || !Is(r[i + 1], kFieldValueChar)) {
            return false;
          }
          i += 2;
        } else if (Is(c, kQdTextChar)) {
          ++i;
        } else {
          return false;
        }
      }
      if (!closed) {
        return false;
      }
    } else if (!token()) {
      return false;
    }
  }
  return true;
}

// The combined Transfer-Encoding list must be exactly "chunked" (RFC 9112 §6.1, §7).
std::optional<ParseError> CheckTransferEncoding(const HeaderMap& headers, uint16_t bad_status,
                                                uint16_t unsupported_status) {
  uint32_t chunked = 0;
  bool last_is_chunked = false;
  bool unknown = false;
  const char* problem = nullptr;
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (e.known != KnownHeader::kTransferEncoding || e.name.empty()) {
      continue;
    }
    ForEachListElement(e.value, [&](std::string_view element) {
      if (element.empty()) {
        problem = "empty transfer-coding";
        return false;
      }
      size_t i = 0;
      while (i < element.size() && Is(element[i], kTokenChar)) ++i;
      if (i == 0 || !ValidTransferParameters(element.substr(i))) {
        problem = "invalid transfer-coding";
        return false;
      }
      const bool is_chunked = HeaderNameEquals(element.substr(0, i), "chunked");
      if (is_chunked) {
        if (i != element.size()) {
          problem = "parameters on chunked";
          return false;
        }
        ++chunked;
      } else {
        unknown = true;
      }
      last_is_chunked = is_chunked;
      return true;
    });
    if (problem != nullptr) {
      return Error(bad_status, problem);
    }
  }
  if (chunked > 1) {
    return Error(bad_status, "chunked applied more than once");
  }
  if (chunked == 1 && !last_is_chunked) {
    return Error(bad_status, "chunked is not the final transfer-coding");
  }
  if (unknown) {
    return Error(unsupported_status, "unsupported transfer-coding");
  }
  return std::nullopt;
}

}  // namespace

bool ParseResponseContentLength(const HeaderMap& headers, uint64_t& length) {
  if (headers.count(KnownHeader::kContentLength) == 0) return false;
  return !ParseContentLength(headers, 0, length).has_value();
}

namespace internal {

std::optional<ParseError> ParseFieldLines(const char* p, const char* end, uint32_t max_fields,
                                          uint16_t error_status, uint16_t too_many_status,
                                          HeaderMap& map) {
  uint32_t fields = 0;
  while (true) {
    const char* cr =
        p < end ? static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)))
                : nullptr;
    if (cr == nullptr || cr + 1 >= end || cr[1] != '\n') {
      return Error(error_status, cr == nullptr ? "field line without CRLF" : "bare CR");
    }
    if (cr == p) {
      // The empty line: the section ends here, and so must the input.
      if (cr + 2 != end) {
        return Error(error_status, "bytes after the end of the field section");
      }
      return std::nullopt;
    }
    const std::string_view line(p, static_cast<size_t>(cr - p));
    if (IsOws(line[0])) {
      // obs-fold (RFC 9112 §5.2), or whitespace before the first field (RFC 9112 §2.2): both
      // are read differently by different servers, so neither is unfolded nor skipped.
      return Error(error_status, "obs-fold or whitespace at the start of a field line");
    }
    size_t i = 0;
    while (i < line.size() && Is(line[i], kTokenChar)) ++i;
    if (i == line.size()) {
      return Error(error_status, "field line without a colon");
    }
    if (line[i] != ':') {
      if (IsOws(line[i])) {
        return Error(error_status, "whitespace between field name and colon");  // RFC 9112 §5.1
      }
      return Error(error_status, line[i] == '\n' ? "bare LF" : "invalid character in field name");
    }
    if (i == 0) {
      return Error(error_status, "empty field name");
    }
    for (size_t k = i + 1; k < line.size(); ++k) {
      if (!Is(line[k], kFieldValueChar)) {
        return Error(error_status,
                     line[k] == '\n' ? "bare LF" : "invalid character in field value");
      }
    }
    if (++fields > max_fields) {
      return Error(too_many_status, "too many header fields");
    }
    map.addReference(line.substr(0, i), TrimOws(line.substr(i + 1)));
    p = cr + 2;
  }
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// HeadScanner

void HeadScanner::reset() { *this = HeadScanner(); }

HeadScanner::Result HeadScanner::scan(const Buffer& buffer, const Limits& limits, bool is_request) {
  if (result_ != Result::kNeedMore) {
    return result_;
  }
  // The whole chain, not just a prefix: a head fed a few bytes at a time spans many slices.
  constexpr size_t kInline = 16;
  struct iovec inline_iov[kInline];
  std::vector<struct iovec> heap_iov;
  struct iovec* iov = inline_iov;
  const size_t slices = buffer.sliceCount();
  if (slices > kInline) {
    heap_iov.resize(slices);
    iov = heap_iov.data();
  }
  const size_t count = buffer.peek(iov, slices);

  const auto done = [this](Result r) { return result_ = r; };
  // Bytes the shortest possible completion still needs after what was scanned: a line in
  // progress needs "\r\n\r\n", a CRLF already matched needs only the rest.
  const auto cannot_fit = [&] { return scanned_ + (4 - match_) > limits.max_header_bytes; };

  size_t offset = 0;  // stream offset of slice i
  for (size_t s = 0; s < count; offset += iov[s].iov_len, ++s) {
    if (offset + iov[s].iov_len <= scanned_) {
      continue;
    }
    const auto* base = static_cast<const uint8_t*>(iov[s].iov_base);
    const uint8_t* p = base + (scanned_ - offset);
    const uint8_t* const end = base + iov[s].iov_len;
    while (p < end) {
      if (match_ == 0) {
        // Inside a line: jump to its end (CR) or to a bare LF, whichever comes first.
        const auto* cr = static_cast<const uint8_t*>(std::memchr(p, '\r', end - p));
        const auto* lf =
            static_cast<const uint8_t*>(std::memchr(p, '\n', (cr != nullptr ? cr : end) - p));
        const uint8_t* stop = lf != nullptr ? lf : (cr != nullptr ? cr : end);
        const size_t span = static_cast<size_t>(stop - p);
        // The outcome must not depend on how the bytes were split into reads, so a limit is
        // reported only if the byte that breaks it comes before `stop`: the 1-based position in
        // the span of the first byte over each limit (a tie goes to 414, as byte by byte).
        size_t over_line = SIZE_MAX;
        if (is_request && !first_line_done_) {
          over_line = limits.max_request_line - line_length_ + 1;
        }
        const size_t over_head =
            scanned_ + 4 > limits.max_header_bytes ? 1 : limits.max_header_bytes - 4 - scanned_ + 1;
        if (span >= std::min(over_line, over_head)) {
          return done(over_line <= over_head ? Result::kRequestLineTooLong : Result::kHeadTooLarge);
        }
        line_length_ += span;
        scanned_ += span;
        p = stop;
        if (p == end) {
          break;
        }
        if (p == lf) {
          return done(Result::kBadLineEnding);
        }
        // *p is the CR.
        match_ = 1;
        ++scanned_;
        ++p;
      } else {
        const uint8_t c = *p;
        if (match_ == 1 || match_ == 3) {
          if (c != '\n') {
            return done(Result::kBadLineEnding);  // bare CR
          }
          ++scanned_;
          ++p;
          if (match_ == 3) {
            head_length_ = scanned_;
            return done(Result::kComplete);
          }
          match_ = 2;
          if (!first_line_done_) {
            if (line_length_ == 0 && is_request && leading_lines_ < kMaxLeadingEmptyLines) {
              ++leading_lines_;
              match_ = 0;  // an ignored empty line: the request line is still to come
            } else {
              first_line_done_ = true;
            }
          }
          line_length_ = 0;
        } else {  // match_ == 2: at the start of a line
          if (c == '\r') {
            match_ = 3;
            ++scanned_;
            ++p;
          } else if (c == '\n') {
            return done(Result::kBadLineEnding);
          } else {
            match_ = 0;  // content: the fast path above consumes it
            continue;
          }
        }
      }
      if (cannot_fit()) {
        return done(Result::kHeadTooLarge);
      }
    }
  }
  return Result::kNeedMore;
}

// ---------------------------------------------------------------------------------------------
// Heads

std::optional<ParseError> ParseRequestHead(std::unique_ptr<char[]> storage, size_t length,
                                           const Limits& limits, RequestHead& head) {
  head.method = {};
  head.path = {};
  head.scheme = {};
  head.protocol = {};
  head.version_minor = 1;
  head.headers.clear();
  const char* p = storage.get();
  head.headers.adoptStorage(std::move(storage));
  if (p == nullptr || length == 0) {
    return Error(400, "empty request");
  }
  if (length > limits.max_header_bytes) {
    return Error(431, "request head too large");
  }
  const char* const end = p + length;
  for (uint32_t i = 0; i < kMaxLeadingEmptyLines && end - p >= 2 && p[0] == '\r' && p[1] == '\n';
       ++i) {
    p += 2;
  }
  const char* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)));
  const size_t line_length = static_cast<size_t>((cr != nullptr ? cr : end) - p);
  if (line_length > limits.max_request_line) {
    return Error(414, "request line too long");
  }
  if (cr == nullptr || cr + 1 >= end || cr[1] != '\n') {
    return Error(400, cr == nullptr ? "request line without CRLF" : "bare CR");
  }
  if (auto error = ParseRequestLine(std::string_view(p, line_length), head)) {
    return error;
  }
  return internal::ParseFieldLines(cr + 2, end, limits.max_headers, 400, 431, head.headers);
}

std::optional<ParseError> ParseResponseHead(std::unique_ptr<char[]> storage, size_t length,
                                            const Limits& limits, ResponseHead& head) {
  head.status = 0;
  head.reason = {};
  head.version_minor = 1;
  head.headers.clear();
  const char* p = storage.get();
  head.headers.adoptStorage(std::move(storage));
  if (p == nullptr || length == 0) {
    return Error(0, "empty response");
  }
  if (length > limits.max_header_bytes) {
    return Error(0, "response head too large");
  }
  const char* const end = p + length;
  const char* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<size_t>(end - p)));
  if (cr == nullptr || cr + 1 >= end || cr[1] != '\n') {
    return Error(0, cr == nullptr ? "status line without CRLF" : "bare CR");
  }
  const std::string_view line(p, static_cast<size_t>(cr - p));
  // HTTP-version SP 3DIGIT [SP reason-phrase]
  if (line.size() < 12 || line[8] != ' ' || ParseVersion(line.substr(0, 8), head.version_minor)) {
    return Error(0, "invalid status line");
  }
  if (!IsDigit(line[9]) || !IsDigit(line[10]) || !IsDigit(line[11]) || line[9] == '0') {
    return Error(0, "invalid status code");
  }
  head.status =
      static_cast<uint16_t>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (line.size() > 12) {
    if (line[12] != ' ') {
      return Error(0, "invalid status code");
    }
    for (size_t i = 13; i < line.size(); ++i) {
      if (!Is(line[i], kFieldValueChar)) {
        return Error(0, "invalid character in reason phrase");
      }
    }
    head.reason = line.substr(13);
  }
  return internal::ParseFieldLines(cr + 2, end, limits.max_headers, 0, 0, head.headers);
}

// ---------------------------------------------------------------------------------------------
// Framing

std::optional<ParseError> RequestFraming(const RequestHead& head, BodyFraming& framing) {
  framing = BodyFraming{};
  const HeaderMap& headers = head.headers;
  const size_t hosts = headers.count(KnownHeader::kHost);
  if (hosts > 1) {
    return Error(400, "more than one Host");  // RFC 9112 §3.2
  }
  if (hosts == 0 && head.version_minor == 1) {
    return Error(400, "missing Host");  // RFC 9112 §3.2
  }
  if (hosts == 1) {
    const std::string_view host = headers.get(KnownHeader::kHost)->value;
    // Empty is allowed: it is what a client sends when the target has no authority (RFC 9112
    // §3.2).
    if (!host.empty() && !ValidHostPort(host, /*require_port=*/false)) {
      return Error(400, "invalid Host");
    }
  }
  const bool te = headers.count(KnownHeader::kTransferEncoding) != 0;
  const bool cl = headers.count(KnownHeader::kContentLength) != 0;
  if (te && cl) {
    // RFC 9112 §6.3 ¶3: the classic CL.TE / TE.CL smuggling shape; never forward it.
    return Error(400, "both Content-Length and Transfer-Encoding");
  }
  if (te) {
    if (head.version_minor == 0) {
      return Error(400, "Transfer-Encoding in an HTTP/1.0 request");  // RFC 9112 §6.1 ¶15
    }
    if (auto error = CheckTransferEncoding(headers, 400, 501)) {
      return error;
    }
    framing.kind = BodyFraming::Kind::kChunked;
    return std::nullopt;
  }
  if (cl) {
    if (auto error = ParseContentLength(headers, 400, framing.content_length)) {
      return error;
    }
    framing.kind = BodyFraming::Kind::kContentLength;
  }
  return std::nullopt;
}

std::optional<ParseError> ResponseFraming(const ResponseHead& head, std::string_view request_method,
                                          BodyFraming& framing) {
  framing = BodyFraming{};
  const uint16_t status = head.status;
  if (request_method == "CONNECT" && status >= 200 && status < 300) {
    framing.kind = BodyFraming::Kind::kUntilClose;  // a tunnel (RFC 9110 §9.3.6)
    return std::nullopt;
  }
  const HeaderMap& headers = head.headers;
  const bool te = headers.count(KnownHeader::kTransferEncoding) != 0;
  const bool cl = headers.count(KnownHeader::kContentLength) != 0;
  if (te && cl) {
    return Error(0, "both Content-Length and Transfer-Encoding");
  }
  uint64_t length = 0;
  if (te) {
    if (head.version_minor == 0) {
      return Error(0, "Transfer-Encoding in an HTTP/1.0 response");
    }
    if (auto error = CheckTransferEncoding(headers, 0, 0)) {
      return error;
    }
  } else if (cl) {
    if (auto error = ParseContentLength(headers, 0, length)) {
      return error;
    }
  }
  if (status < 200 || status == 204 || status == 304 || request_method == "HEAD") {
    return std::nullopt;  // RFC 9112 §6.3 ¶1-2: no content whatever the fields say
  }
  if (te) {
    framing.kind = BodyFraming::Kind::kChunked;
  } else if (cl) {
    framing.kind = BodyFraming::Kind::kContentLength;
    framing.content_length = length;
  } else {
    framing.kind = BodyFraming::Kind::kUntilClose;
  }
  return std::nullopt;
}

bool IsValidFieldName(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (!Is(c, kTokenChar)) {
      return false;
    }
  }
  return true;
}

bool IsValidFieldValue(std::string_view value) {
  for (char c : value) {
    if (!Is(c, kFieldValueChar)) {
      return false;
    }
  }
  return true;
}

}  // namespace sluice::http::http1
