#include <charconv>
#include <string>

#include "source/http/http1/parser.h"

// HTTP/1.1 encoders (RFC 9112 §3, §4, §5, §7.1). Each head is assembled in one string and added
// to the output with one add(), so the connection writes it with one syscall. The string is a
// per-thread scratch whose capacity stays: no allocation per head once warm.

namespace sluice::http::http1 {

namespace {

size_t FieldsSize(const HeaderMap& headers) {
  size_t n = 0;
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (!e.name.empty()) {
      n += e.name.size() + 2 + e.value.size() + 2;  // "Name: value\r\n"
    }
  }
  return n;
}

void AppendFields(const HeaderMap& headers, std::string& s) {
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (e.name.empty()) {
      continue;  // removed
    }
    s.append(e.name);
    s.append(": ");
    s.append(e.value);
    s.append("\r\n");
  }
}

// A rare huge head must not keep its memory in the per-thread scratch for good.
void ReleaseIfLarge(std::string& s) {
  if (s.capacity() > 64 * 1024) std::string().swap(s);
}

}  // namespace

void EncodeRequestHead(const RequestHead& head, Buffer& out) {
  constexpr std::string_view kVersion = " HTTP/1.1\r\n";
  thread_local std::string s;
  s.clear();
  // CONNECT's request-target is its authority (RFC 9112 §3.2.3); every other one the :path.
  const std::string_view target =
      head.path.empty() && head.method == "CONNECT" ? head.authority() : head.path;
  s.reserve(head.method.size() + 1 + target.size() + kVersion.size() + FieldsSize(head.headers) +
            2);
  s.append(head.method);
  s.push_back(' ');
  s.append(target);
  s.append(kVersion);
  AppendFields(head.headers, s);
  s.append("\r\n");
  out.add(s);
  ReleaseIfLarge(s);
}

void EncodeResponseHead(const ResponseHead& head, Buffer& out) {
  const std::string_view reason = head.reason.empty() ? ReasonPhrase(head.status) : head.reason;
  char status[8];
  const auto [end, ec] = std::to_chars(status, status + sizeof(status), head.status);
  const std::string_view code(status, ec == std::errc() ? static_cast<size_t>(end - status) : 0);
  thread_local std::string s;
  s.clear();
  s.reserve(9 + code.size() + 1 + reason.size() + 2 + FieldsSize(head.headers) + 2);
  s.append("HTTP/1.1 ");
  s.append(code);
  // The SP before the reason is required even when the reason is empty (RFC 9112 §4).
  s.push_back(' ');
  s.append(reason);
  s.append("\r\n");
  AppendFields(head.headers, s);
  s.append("\r\n");
  out.add(s);
  ReleaseIfLarge(s);
}

void EncodeChunk(Buffer& data, Buffer& out) {
  if (data.empty()) {
    return;  // a zero-size chunk is the last chunk: never write one by accident
  }
  char line[24];
  const auto [end, ec] = std::to_chars(line, line + 16, data.length(), 16);
  char* p = ec == std::errc() ? end : line;
  *p++ = '\r';
  *p++ = '\n';
  out.add(line, static_cast<size_t>(p - line));
  out.move(data);
  out.add("\r\n", 2);
}

void EncodeLastChunk(const HeaderMap* trailers, Buffer& out) {
  if (trailers == nullptr || trailers->empty()) {
    out.add("0\r\n\r\n", 5);
    return;
  }
  std::string s;
  s.reserve(3 + FieldsSize(*trailers) + 2);
  s.append("0\r\n");
  AppendFields(*trailers, s);
  s.append("\r\n");
  out.add(s);
}

std::string_view ReasonPhrase(uint16_t status) {
  // RFC 9110 §15 (plus 429/431/511 from RFC 6585 and 103 from RFC 8297).
  // clang-format off
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "";
  }
  // clang-format on
}

}  // namespace sluice::http::http1
