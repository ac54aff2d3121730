#pragma once

// What the host functions of the plugin ABI accept, as plain predicates over the plugin's bytes.
// One definition for both hosts that implement sl_host_*: sluice itself
// (source/plugin/host_functions.cc) and the plugin test harness's fake host
// (extensions/sdk/test_harness/fake_host.cc), so that a plugin whose unit tests pass never calls
// the real host with something it refuses. No allocation; header-only over the HTTP/1 parser's
// character tables (the rules a message on the wire is held to).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/sluice/plugin/v1/sluice_plugin.h"
#include "source/http/http1/parser.h"

namespace sluice::plugin::checks {

// A view the plugin passed: data may be NULL only with length 0.
inline bool Valid(sl_type_str s) { return s.data != nullptr || s.len == 0; }
inline std::string_view View(sl_type_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.len);
}

// A field name: a token (RFC 9110 §5.6.2). Pseudo-headers (':...') are not field names.
inline bool HeaderName(std::string_view name) { return http::http1::IsValidFieldName(name); }
// A field value: VCHAR, obs-text, SP and HTAB only (so no CR, LF, NUL or other controls).
inline bool HeaderValue(std::string_view value) { return http::http1::IsValidFieldValue(value); }
inline bool IsPseudo(std::string_view name) { return !name.empty() && name[0] == ':'; }

// :method: a token.
inline bool Method(std::string_view value) { return http::http1::IsValidFieldName(value); }
// :path: origin-form or asterisk; no whitespace or controls (it goes on the request line).
inline bool Path(std::string_view value) {
  if (value.empty()) return false;
  for (unsigned char c : value) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}
// :authority (the Host field): a non-empty field value.
inline bool Authority(std::string_view value) { return !value.empty() && HeaderValue(value); }
// :status: three digits, 100 or more; *status gets the code.
inline bool Status(std::string_view value, uint16_t* status) {
  if (value.size() != 3) return false;
  uint16_t s = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    s = static_cast<uint16_t>(s * 10 + (c - '0'));
  }
  if (s < 100) return false;
  *status = s;
  return true;
}
// The status of sl_host_send_response.
inline bool LocalReplyStatus(uint32_t status) { return status >= 200 && status <= 599; }
// Fields of a local reply that stay the host's (it frames the body itself): dropped, not refused.
inline bool IsFramingHeader(std::string_view name) {
  return http::HeaderNameEquals(name, "content-length") ||
         http::HeaderNameEquals(name, "transfer-encoding");
}
// A metric's name below "plugin.<filter>.": [a-zA-Z0-9_.]+, no leading or trailing dot, at most
// 128 bytes.
inline bool MetricName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '_' && c != '.') return false;
  }
  return true;
}
inline bool MetricKind(sl_type_metric_kind kind) { return kind <= SL_METRIC_HISTOGRAM; }
// Labelled metrics (sl_host_metric_define_tagged): at most this many tags, values this long.
inline constexpr size_t kMaxMetricTags = 8;
inline constexpr size_t kMaxMetricTagValue = 256;
// A Prometheus label name, minus the reserved ones ("__" prefixes, and "le" of histograms).
inline bool MetricTagKey(std::string_view key) {
  // "le" is Prometheus' histogram bucket label, "__" its own prefix, and "plugin" the tag every
  // plugin metric already carries (the filter's name).
  if (key.empty() || key.size() > 64 || key == "le" || key == "plugin" ||
      key.substr(0, 2) == "__") {
    return false;
  }
  for (size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!(alpha || c == '_' || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}
inline bool MetricTagValue(std::string_view value) {
  return value.size() <= kMaxMetricTagValue &&
         value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}
// A route metadata value: no CR, LF or NUL.
inline bool RouteMetadataValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}
inline bool RouteConfigFormat(uint32_t format) {
  return format == SL_ROUTE_CONFIG_PROTO_VALUE || format == SL_ROUTE_CONFIG_JSON;
}
// sl_host_metadata_set's key: not empty.
inline bool StreamMetadataKey(sl_type_str key) { return Valid(key) && key.len != 0; }

}  // namespace sluice::plugin::checks
