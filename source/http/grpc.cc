#include "source/http/grpc.h"

namespace sluice::http::grpc {

bool IsGrpcRequest(const HeaderMap& headers) {
  const HeaderMap::Entry* ct = headers.get(KnownHeader::kContentType);
  if (ct == nullptr) return false;
  constexpr std::string_view kGrpc = "application/grpc";
  const std::string_view v = ct->value;
  if (v.size() < kGrpc.size() || !HeaderNameEquals(v.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  return v.size() == kGrpc.size() || v[kGrpc.size()] == '+' || v[kGrpc.size()] == ';';
}

uint32_t StatusFromHttp(uint16_t http_status) {
  switch (http_status) {
    case 400:
      return 13;  // INTERNAL
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
      return 14;  // UNAVAILABLE
    case 504:
      return 4;  // DEADLINE_EXCEEDED
    default:
      return 2;  // UNKNOWN
  }
}

std::optional<std::chrono::milliseconds> ParseTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  // In nanoseconds, then rounded up: a deadline is never made shorter than asked.
  uint64_t ns_per_unit = 0;
  switch (value.back()) {
    case 'H':
      ns_per_unit = 3600ull * 1000 * 1000 * 1000;
      break;
    case 'M':
      ns_per_unit = 60ull * 1000 * 1000 * 1000;
      break;
    case 'S':
      ns_per_unit = 1000ull * 1000 * 1000;
      break;
    case 'm':
      ns_per_unit = 1000ull * 1000;
      break;
    case 'u':
      ns_per_unit = 1000;
      break;
    case 'n':
      ns_per_unit = 1;
      break;
    default:
      return std::nullopt;
  }
  // 8 digits of hours overflow 64 bits of nanoseconds (3.6e20): units of a millisecond or more
  // are multiplied in milliseconds (99999999 H is 3.6e14 ms).
  const uint64_t ms_per_unit = ns_per_unit / 1000000;
  uint64_t ms;
  if (ms_per_unit != 0) {
    ms = n * ms_per_unit;
  } else {
    ms = (n * ns_per_unit + 999999) / 1000000;
  }
  return std::chrono::milliseconds(ms);
}

std::string EncodeMessage(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

}  // namespace sluice::http::grpc
