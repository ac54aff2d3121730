#include "source/config/bootstrap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/duration.pb.h"
#include "source/config/loader.h"
#include "source/http/access_log_format.h"
#include "source/http/http1/parser.h"

// Checks of what the schema cannot say. Limits, and why:
//  - port <= 65535 everywhere; 0 is fine on a listener or the admin endpoint (the kernel picks a
//    free port) but not on an upstream endpoint, which has to be connected to.
//  - Addresses must be IPv4 or IPv6 literals (inet_pton); names are not resolved here, and IPv6
//    zone suffixes ("%eth0") are not accepted.
//  - concurrency <= kMaxConcurrency: more workers than that is a typo, not a machine.
//  - max_accepts_per_event <= kMaxAcceptsPerEvent: a bigger batch only starves the worker's other
//    connections; 0 means the default.
//  - per_connection_buffer_limit_bytes, if set, >= kMinBufferLimitBytes: a smaller watermark makes
//    the proxy pause reading after nearly every read.
//  - backlog <= INT32_MAX, because listen(2) takes an int (the kernel caps it at somaxconn anyway).
//  - tcp_keepalive: probes <= 127 and idle_time/interval whole seconds in 1..32767, the kernel's
//    limits for TCP_KEEPCNT / TCP_KEEPIDLE / TCP_KEEPINTVL (setsockopt fails past them).
//  - Durations: well formed (protobuf's range, nanos and seconds of one sign) and not negative;
//    connect_timeout, if set, positive (a zero connect timeout would fail every connect).
//    Timeouts are kept in whole milliseconds, where 0 means "none": a timeout between 0 and 1ms
//    (exclusive) would silently turn into no timeout at all, so it is refused with the minimum.
//  - Strings that reach the wire, the logs, stat names or the ports file are checked for what
//    each place can carry (the classes below), so that a config value can never split a
//    response, forge a log or stats line, or make a request hang on a header the codec refuses:
//      names (listeners, clusters, filters, stat_prefix): letters, digits, '_', '-', '.'
//        (they become parts of stat names, log lines and `<name> <address>` ports-file lines);
//      header field names: tokens (RFC 9110 §5.6.2); header field values (server_name, via,
//        direct_response headers): no CR, LF, NUL or other controls but HTAB (RFC 9110 §5.5);
//      file paths (plugin_dirs, plugin): no control characters (they are logged, and a NUL
//        would cut the path short at open(2));
//      addresses: no NUL (inet_pton would read only up to it).
//    direct_response.body is sent as the body, never inside a head: any bytes are fine.
//  - admin: an address beyond loopback (the wildcard included) needs bearer_token or an explicit
//    allow_unauthenticated_remote, so that an exposed admin is a decision; an inline token is
//    RFC 6750 token characters, at least kMinBearerTokenLength of them (a token from a file is
//    checked when it is read: the server, --mode validate included); unix_socket.path shorter
//    than sun_path (108), not abstract ("@"), no controls; its mode octal, at most 0777;
//    probe_address anywhere (it answers only /ready and /live), but not on a listener's or
//    admin.address's fixed address.
// Defaults are not applied here; an unset field stays unset for the server to default.
// A Bootstrap without listeners is an error: the process would run and serve nothing.

namespace sluice::config {
namespace {

constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxConcurrency = 1024;
constexpr uint32_t kMaxAcceptsPerEvent = 4096;
constexpr uint32_t kMinBufferLimitBytes = 1024;
constexpr uint32_t kMaxBacklog = std::numeric_limits<int32_t>::max();
constexpr uint32_t kMaxKeepaliveProbes = 127;             // MAX_TCP_KEEPCNT
constexpr int64_t kMaxKeepaliveSeconds = 32767;           // MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;  // protobuf's Duration range

// The problems found so far, each line "<source>: <path>: <problem>[ at line N, column M]".
class Problems {
 public:
  Problems(absl::string_view source, const ValueSources* sources)
      : source_(source), sources_(sources) {}

  void Add(absl::string_view path, absl::string_view problem) {
    lines_.push_back(absl::StrCat(
        source_, ": ", path, ": ", problem,
        sources_ != nullptr ? sources_->WhereIs(std::string_view(path.data(), path.size())) : ""));
  }

  size_t count() const { return lines_.size(); }

  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "\n"));
  }

 private:
  std::string source_;
  const ValueSources* sources_;
  std::vector<std::string> lines_;
};

std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", absl::Utf8SafeCHexEscape(s), "\"");
}

std::string Index(absl::string_view path, int i) { return absl::StrCat(path, "[", i, "]"); }

std::string Field(absl::string_view path, absl::string_view field) {
  return absl::StrCat(path, ".", field);
}

// The canonical text of an IP literal ("::0" and "::" are the same address), or nullopt.
std::optional<std::string> CanonicalIp(const std::string& address) {
  // inet_pton reads a C string: "127.0.0.1\0junk" would pass as 127.0.0.1.
  if (address.find('\0') != std::string::npos) return std::nullopt;
  unsigned char bytes[sizeof(in6_addr)];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) {
    if (inet_ntop(AF_INET, bytes, text, sizeof(text)) != nullptr) return std::string(text);
  }
  if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    if (inet_ntop(AF_INET6, bytes, text, sizeof(text)) != nullptr) {
      return absl::StrCat("[", text, "]");
    }
  }
  return std::nullopt;
}

std::string FormatDuration(const google::protobuf::Duration& d) {
  if (d.nanos() == 0) return absl::StrCat(d.seconds(), "s");
  const bool negative = d.seconds() < 0 || d.nanos() < 0;
  const int64_t seconds = d.seconds() < 0 ? -d.seconds() : d.seconds();
  const int32_t nanos = d.nanos() < 0 ? -d.nanos() : d.nanos();
  return absl::StrFormat("%s%d.%09ds", negative ? "-" : "", seconds, nanos);
}

// Checks a Duration's representation; false (with the problem added) when it is not one.
bool CheckDurationWellFormed(const google::protobuf::Duration& d, absl::string_view path,
                             Problems& problems) {
  const bool in_range = d.seconds() >= -kMaxDurationSeconds && d.seconds() <= kMaxDurationSeconds &&
                        d.nanos() > -1'000'000'000 && d.nanos() < 1'000'000'000;
  const bool same_sign = !(d.seconds() > 0 && d.nanos() < 0) && !(d.seconds() < 0 && d.nanos() > 0);
  if (!in_range || !same_sign) {
    problems.Add(
        path, absl::StrCat("invalid duration (seconds ", d.seconds(), ", nanos ", d.nanos(), ")"));
    return false;
  }
  return true;
}

bool IsNegative(const google::protobuf::Duration& d) { return d.seconds() < 0 || d.nanos() < 0; }

// Timeouts are whole milliseconds at run time, and 0 means "none": a value in (0, 1ms) would
// become no timeout at all instead of a very short one.
bool BelowOneMillisecond(const google::protobuf::Duration& d) {
  return d.seconds() == 0 && d.nanos() > 0 && d.nanos() < 1'000'000;
}

// A timeout where 0 disables it: not negative, and 0 or at least 1ms.
void CheckTimeout(const google::protobuf::Duration& d, absl::string_view path, Problems& problems) {
  if (!CheckDurationWellFormed(d, path, problems)) return;
  if (IsNegative(d)) {
    problems.Add(path, absl::StrCat("must not be negative, got ", FormatDuration(d)));
  } else if (BelowOneMillisecond(d)) {
    problems.Add(path, absl::StrCat("must be 0s (no timeout) or at least 1ms (timeouts count "
                                    "whole milliseconds), got ",
                                    FormatDuration(d)));
  }
}

// A timeout that must be set to something: at least 1ms.
void CheckPositiveTimeout(const google::protobuf::Duration& d, absl::string_view path,
                          Problems& problems) {
  if (!CheckDurationWellFormed(d, path, problems)) return;
  if (IsNegative(d) || (d.seconds() == 0 && d.nanos() == 0)) {
    problems.Add(path, absl::StrCat("must be positive, got ", FormatDuration(d)));
  } else if (BelowOneMillisecond(d)) {
    problems.Add(path,
                 absl::StrCat("must be at least 1ms (timeouts count whole milliseconds), got ",
                              FormatDuration(d)));
  }
}

void CheckKeepaliveSeconds(const google::protobuf::Duration& d, absl::string_view path,
                           Problems& problems) {
  if (!CheckDurationWellFormed(d, path, problems)) return;
  if (d.nanos() != 0 || d.seconds() < 1 || d.seconds() > kMaxKeepaliveSeconds) {
    problems.Add(path, absl::StrCat("must be whole seconds from 1s to ", kMaxKeepaliveSeconds,
                                    "s (the kernel's limit), got ", FormatDuration(d)));
  }
}

// Checks an address; returns its canonical "ip:port" when it is valid.
std::optional<std::string> CheckSocketAddress(const v1::SocketAddress& address,
                                              absl::string_view path, bool upstream,
                                              Problems& problems) {
  bool ok = true;
  const std::optional<std::string> ip = CanonicalIp(address.address());
  if (address.address().empty()) {
    problems.Add(Field(path, "address"), "required (an IPv4 or IPv6 literal, e.g. \"127.0.0.1\")");
    ok = false;
  } else if (!ip.has_value()) {
    problems.Add(Field(path, "address"),
                 absl::StrCat(Quote(address.address()),
                              " is not an IPv4 or IPv6 address literal (names are not resolved)"));
    ok = false;
  }
  if (address.port() > kMaxPort) {
    problems.Add(Field(path, "port"), absl::StrCat("port ", address.port(), " is out of range (",
                                                   upstream ? "1" : "0", "..", kMaxPort, ")"));
    ok = false;
  } else if (upstream && address.port() == 0) {
    problems.Add(Field(path, "port"), "required: an upstream endpoint needs a port in 1..65535");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return absl::StrCat(*ip, ":", address.port());
}

// A name that becomes part of stat names ("listener.<name>.downstream_cx_total"), log lines and
// the ports file ("<name> <address>"): letters, digits, '_', '-' and '.'. Anything else could
// split a line or a stat name's fields.
bool IsValidName(absl::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

constexpr absl::string_view kNameRule =
    "letters, digits, '_', '-' and '.' only (it becomes part of stat names and log lines)";

// `name` at `path`: required or optional (empty allowed), and of the name charset.
void CheckName(absl::string_view name, absl::string_view path, bool required, Problems& problems) {
  if (name.empty()) {
    if (required) problems.Add(path, "required");
    return;
  }
  if (!IsValidName(name)) {
    problems.Add(path, absl::StrCat(Quote(name), " is not a valid name: ", kNameRule));
  }
}

// A value sent as a header field value (RFC 9110 §5.5), as the HTTP/1 encoder writes it.
void CheckFieldValue(absl::string_view value, absl::string_view path, Problems& problems) {
  if (!http::http1::IsValidFieldValue(std::string_view(value.data(), value.size()))) {
    problems.Add(path, absl::StrCat(Quote(value),
                                    " must not contain CR, LF, NUL or other control characters "
                                    "(it is sent as a header field value)"));
  }
}

// A file path or name: logged and passed to open(2), so no controls (NUL would cut it short).
void CheckFilePath(absl::string_view value, absl::string_view path, Problems& problems) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      problems.Add(path, absl::StrCat(Quote(value), " must not contain control characters"));
      return;
    }
  }
}

std::string NameList(const std::set<std::string>& names) {
  constexpr size_t kMaxNames = 10;
  if (names.empty()) return "no clusters are defined";
  std::vector<std::string> quoted;
  for (const std::string& name : names) {
    if (quoted.size() == kMaxNames) {
      quoted.push_back("...");
      break;
    }
    quoted.push_back(Quote(name));
  }
  return absl::StrCat("defined: ", absl::StrJoin(quoted, ", "));
}

void CheckTcpProxy(const v1::TcpProxy& proxy, absl::string_view path,
                   const std::set<std::string>& clusters, Problems& problems) {
  if (proxy.cluster().empty()) {
    problems.Add(Field(path, "cluster"), "required: the name of a cluster to proxy to");
  } else if (!clusters.contains(proxy.cluster())) {
    problems.Add(Field(path, "cluster"), absl::StrCat("unknown cluster ", Quote(proxy.cluster()),
                                                      " (", NameList(clusters), ")"));
  }
  if (proxy.has_idle_timeout()) {
    CheckTimeout(proxy.idle_timeout(), Field(path, "idle_timeout"), problems);
  }
}

// RFC 9110 §5.6.2: a field name (and an upgrade protocol name) is a token.
bool IsToken(absl::string_view s) {
  return http::http1::IsValidFieldName(std::string_view(s.data(), s.size()));
}

// HTTP/2 settings, of a connection manager or of a cluster's upstream connections.
void CheckHttp2ProtocolOptions(const v1::Http2ProtocolOptions& o, const std::string& h2,
                               Problems& problems) {
  auto range = [&](bool has, uint32_t v, const char* name, uint64_t lo, uint64_t hi) {
    if (has && (v < lo || v > hi)) {
      problems.Add(Field(h2, name), absl::StrCat("must be ", lo, "..", hi));
    }
  };
  constexpr uint64_t kMaxWindow = (uint64_t{1} << 31) - 1;
  range(o.has_max_concurrent_streams(), o.max_concurrent_streams().value(),
        "max_concurrent_streams", 1, kMaxWindow);
  range(o.has_initial_stream_window_size(), o.initial_stream_window_size().value(),
        "initial_stream_window_size", 65535, kMaxWindow);
  range(o.has_initial_connection_window_size(), o.initial_connection_window_size().value(),
        "initial_connection_window_size", 65535, kMaxWindow);
  range(o.has_max_frame_size(), o.max_frame_size().value(), "max_frame_size", 16384, 16777215);
  range(o.has_max_header_list_size(), o.max_header_list_size().value(), "max_header_list_size",
        1024, 1024 * 1024);
  range(o.has_hpack_table_size(), o.hpack_table_size().value(), "hpack_table_size", 0, 65536);
  range(o.has_max_resets_per_second(), o.max_resets_per_second().value(), "max_resets_per_second",
        1, 1000000);
  range(o.has_max_control_frames_per_second(), o.max_control_frames_per_second().value(),
        "max_control_frames_per_second", 1, 1000000);
  range(o.has_max_consecutive_empty_frames(), o.max_consecutive_empty_frames().value(),
        "max_consecutive_empty_frames", 0, 1000000);
  range(o.has_max_priority_frames_per_stream(), o.max_priority_frames_per_stream().value(),
        "max_priority_frames_per_stream", 0, 1000000);
  range(o.has_max_continuation_frames(), o.max_continuation_frames().value(),
        "max_continuation_frames", 0, 1000);
  range(o.has_max_outbound_control_frames(), o.max_outbound_control_frames().value(),
        "max_outbound_control_frames", 1, 1000000);
  if (o.has_keepalive_interval()) {
    CheckTimeout(o.keepalive_interval(), Field(h2, "keepalive_interval"), problems);
  }
  if (o.has_keepalive_timeout()) {
    CheckTimeout(o.keepalive_timeout(), Field(h2, "keepalive_timeout"), problems);
  }
}

// An access log (access_log.proto): where it goes, its stats name, its format's commands.
void CheckAccessLog(const v1::AccessLog& log, absl::string_view path, Problems& problems) {
  if (log.stdout() && !log.path().empty()) {
    problems.Add(path, "path and stdout are both set (choose one)");
  } else if (!log.stdout() && log.path().empty()) {
    problems.Add(path, "required: path (a file) or stdout: true");
  }
  CheckFilePath(log.path(), Field(path, "path"), problems);
  CheckName(log.name(), Field(path, "name"), /*required=*/false, problems);
  if (!log.format().empty() && !log.json_format().empty()) {
    problems.Add(path, "format and json_format are both set (choose one)");
  } else if (!log.json_format().empty()) {
    std::vector<std::pair<std::string, std::string>> entries(log.json_format().begin(),
                                                             log.json_format().end());
    auto json = http::ParseJsonLogFormat(entries);
    if (!json.ok()) problems.Add(Field(path, "json_format"), json.status().message());
  } else if (!log.format().empty()) {
    auto format = http::ParseLogFormat(log.format());
    if (!format.ok()) problems.Add(Field(path, "format"), format.status().message());
  }
  if (log.buffer_size_bytes() != 0 &&
      (log.buffer_size_bytes() < 4096 || log.buffer_size_bytes() > 64 * 1024 * 1024)) {
    problems.Add(Field(path, "buffer_size_bytes"), "must be 4096..67108864 (or 0: default)");
  }
  if (log.has_flush_interval()) {
    const std::string fpath = Field(path, "flush_interval");
    CheckPositiveTimeout(log.flush_interval(), fpath, problems);
    if (log.flush_interval().seconds() > 3600) problems.Add(fpath, "must be at most 1h");
  }
}

void CheckHttpConnectionManager(const v1::HttpConnectionManager& hcm, absl::string_view path,
                                Problems& problems) {
  CheckName(hcm.stat_prefix(), Field(path, "stat_prefix"), /*required=*/false, problems);
  CheckFieldValue(hcm.server_name(), Field(path, "server_name"), problems);
  CheckFieldValue(hcm.via(), Field(path, "via"), problems);
  for (int i = 0; i < hcm.upgrade_types_size(); ++i) {
    const std::string& type = hcm.upgrade_types(i);
    if (type != "CONNECT" && !IsToken(type)) {
      problems.Add(Index(Field(path, "upgrade_types"), i),
                   absl::StrCat(Quote(type),
                                " is not a protocol token (e.g. \"websocket\") or "
                                "\"CONNECT\""));
    }
  }
  if (hcm.has_request_headers_timeout()) {
    CheckTimeout(hcm.request_headers_timeout(), Field(path, "request_headers_timeout"), problems);
  }
  if (hcm.has_request_body_timeout()) {
    CheckTimeout(hcm.request_body_timeout(), Field(path, "request_body_timeout"), problems);
  }
  if (hcm.has_idle_timeout()) {
    CheckTimeout(hcm.idle_timeout(), Field(path, "idle_timeout"), problems);
  }
  if (hcm.has_stream_idle_timeout()) {
    CheckTimeout(hcm.stream_idle_timeout(), Field(path, "stream_idle_timeout"), problems);
  }
  if (hcm.has_drain_timeout()) {
    CheckTimeout(hcm.drain_timeout(), Field(path, "drain_timeout"), problems);
  }
  // Limits: big enough for real clients, small enough to bound memory per connection.
  if (hcm.max_request_line_bytes() != 0 &&
      (hcm.max_request_line_bytes() < 256 || hcm.max_request_line_bytes() > 1024 * 1024)) {
    problems.Add(Field(path, "max_request_line_bytes"), "must be 256..1048576 (or 0: default)");
  }
  if (hcm.max_request_headers_bytes() != 0 &&
      (hcm.max_request_headers_bytes() < 1024 || hcm.max_request_headers_bytes() > 1024 * 1024)) {
    problems.Add(Field(path, "max_request_headers_bytes"), "must be 1024..1048576 (or 0: default)");
  }
  if (hcm.max_request_line_bytes() != 0 && hcm.max_request_headers_bytes() != 0 &&
      hcm.max_request_line_bytes() > hcm.max_request_headers_bytes()) {
    problems.Add(Field(path, "max_request_line_bytes"),
                 "must not exceed max_request_headers_bytes (the head includes the request line)");
  }
  if (hcm.has_http2_protocol_options()) {
    CheckHttp2ProtocolOptions(hcm.http2_protocol_options(), Field(path, "http2_protocol_options"),
                              problems);
  }
  if (hcm.max_request_headers_count() > 10000) {
    problems.Add(Field(path, "max_request_headers_count"), "must be at most 10000");
  }
  if (hcm.buffer_limit_bytes() != 0 && hcm.buffer_limit_bytes() < 1024) {
    problems.Add(Field(path, "buffer_limit_bytes"), "must be at least 1024 (or 0: default)");
  }
  for (int i = 0; i < hcm.access_log_size(); ++i) {
    CheckAccessLog(hcm.access_log(i), Index(Field(path, "access_log"), i), problems);
  }
  const int count = hcm.http_filters_size();
  for (int i = 0; i < count; ++i) {
    const v1::HttpFilter& f = hcm.http_filters(i);
    const std::string fpath = Index(Field(path, "http_filters"), i);
    // Names plugin stats ("plugin.<name>.failures") and log lines.
    CheckName(f.name(), Field(fpath, "name"), /*required=*/false, problems);
    switch (f.config_type_case()) {
      case v1::HttpFilter::CONFIG_TYPE_NOT_SET:
        problems.Add(fpath, "no filter config set (expected direct_response or plugin)");
        break;
      case v1::HttpFilter::kPlugin: {
        // The plugin itself (loading, its config type, its config_new) is checked when the
        // config is built; here only what needs no plugin.
        const auto& p = f.plugin();
        const std::string ppath = Field(fpath, "plugin");
        if (p.filter().empty()) {
          problems.Add(Field(ppath, "filter"), "required (the name of the plugin's filter)");
        } else if (f.name().empty()) {
          // The filter's name is then the stats and logs name.
          CheckName(p.filter(), Field(ppath, "filter"), /*required=*/true, problems);
        } else {
          CheckFilePath(p.filter(), Field(ppath, "filter"), problems);
        }
        CheckFilePath(p.plugin(), Field(ppath, "plugin"), problems);
        break;
      }
      case v1::HttpFilter::kDirectResponse: {
        const auto& dr = f.direct_response();
        const std::string dpath = Field(fpath, "direct_response");
        if (dr.status() != 0 && (dr.status() < 200 || dr.status() > 599)) {
          problems.Add(Field(dpath, "status"), absl::StrCat(dr.status(), " is not in 200..599"));
        }
        for (int h = 0; h < dr.headers_size(); ++h) {
          const std::string hpath = Index(Field(dpath, "headers"), h);
          if (!IsToken(dr.headers(h).name())) {
            problems.Add(Field(hpath, "name"),
                         absl::StrCat(Quote(dr.headers(h).name()), " is not a valid field name"));
          }
          CheckFieldValue(dr.headers(h).value(), Field(hpath, "value"), problems);
        }
        if (i != count - 1) {
          problems.Add(fpath, "direct_response answers every request: it must be the last filter");
        }
        break;
      }
    }
  }
}

// Request ids and tracing (tracing.proto) of a connection manager at `path`.
void CheckRequestIdAndTracing(const v1::HttpConnectionManager& hcm, absl::string_view path,
                              const std::set<std::string>& clusters, Problems& problems) {
  if (hcm.has_request_id()) {
    const std::string rpath = Field(Field(path, "request_id"), "header_name");
    const std::string& name = hcm.request_id().header_name();
    if (!name.empty() && !IsToken(name)) {
      problems.Add(rpath, absl::StrCat(Quote(name), " is not a valid field name"));
    } else {
      // The proxy's own fields: framing, connection management, the authority, trace context.
      for (absl::string_view reserved :
           {"host", "content-length", "transfer-encoding", "connection", "keep-alive",
            "proxy-connection", "upgrade", "te", "trailer", "traceparent", "tracestate"}) {
        if (absl::EqualsIgnoreCase(name, reserved)) {
          problems.Add(rpath, absl::StrCat(Quote(name), " is a field the proxy owns"));
          break;
        }
      }
    }
  }
  if (!hcm.has_tracing()) return;
  const v1::Tracing& t = hcm.tracing();
  const std::string tpath = Field(path, "tracing");
  if (t.collector_cluster().empty()) {
    problems.Add(Field(tpath, "collector_cluster"),
                 "required: the cluster of OTLP collectors spans are exported to");
  } else if (!clusters.contains(t.collector_cluster())) {
    problems.Add(Field(tpath, "collector_cluster"),
                 absl::StrCat("unknown cluster ", Quote(t.collector_cluster()), " (",
                              NameList(clusters), ")"));
  }
  if (t.has_random_sampling()) {
    const double v = t.random_sampling().value();
    if (!(v >= 0 && v <= 100)) {
      problems.Add(Field(tpath, "random_sampling"),
                   absl::StrCat("must be a percentage, 0..100, got ", v));
    }
  }
  auto is_path = [](absl::string_view p) {
    if (p.empty() || p[0] != '/') return false;
    for (const char c : p) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f || c == '#') return false;
    }
    return true;
  };
  if (!t.collector_path().empty() && !is_path(t.collector_path())) {
    problems.Add(Field(tpath, "collector_path"),
                 absl::StrCat(Quote(t.collector_path()),
                              " is not a request path (origin-form: '/' then visible ASCII)"));
  }
  CheckFieldValue(t.collector_authority(), Field(tpath, "collector_authority"), problems);
  if (t.service_name().size() > 256) {
    problems.Add(Field(tpath, "service_name"), "must be at most 256 bytes");
  } else {
    CheckFilePath(t.service_name(), Field(tpath, "service_name"), problems);  // no controls
  }
  if (t.max_batch() > 65536) {
    problems.Add(Field(tpath, "max_batch"), "must be 1..65536 (or 0: default 512)");
  }
  if (t.has_flush_interval()) {
    const std::string fpath = Field(tpath, "flush_interval");
    CheckPositiveTimeout(t.flush_interval(), fpath, problems);
    if (t.flush_interval().seconds() > 3600) problems.Add(fpath, "must be at most 1h");
  }
  if (t.has_export_timeout()) {
    CheckPositiveTimeout(t.export_timeout(), Field(tpath, "export_timeout"), problems);
  }
}

// `path`: the field holding the filters ("listeners[0].filters").
void CheckFilters(const google::protobuf::RepeatedPtrField<v1::NetworkFilter>& filters,
                  absl::string_view path, const std::set<std::string>& clusters,
                  Problems& problems) {
  const int count = filters.size();
  if (count == 0) {
    problems.Add(path, "at least one network filter is required");
    return;
  }
  for (int i = 0; i < count; ++i) {
    const v1::NetworkFilter& filter = filters.Get(i);
    const std::string filter_path = Index(path, i);
    CheckName(filter.name(), Field(filter_path, "name"), /*required=*/false, problems);
    switch (filter.config_type_case()) {
      case v1::NetworkFilter::CONFIG_TYPE_NOT_SET: {
        // Name the choices from the schema, so the message stays right as filters are added.
        std::vector<std::string> kinds;
        const auto* oneof = v1::NetworkFilter::descriptor()->FindOneofByName("config_type");
        for (int k = 0; oneof != nullptr && k < oneof->field_count(); ++k) {
          kinds.push_back(oneof->field(k)->name());
        }
        problems.Add(filter_path, absl::StrCat("no filter config set (expected exactly one of: ",
                                               absl::StrJoin(kinds, ", "), ")"));
        break;
      }
      case v1::NetworkFilter::kTcpProxy:
        CheckTcpProxy(filter.tcp_proxy(), Field(filter_path, "tcp_proxy"), clusters, problems);
        // tcp_proxy consumes the connection's bytes; nothing after it would see any.
        if (i != count - 1) {
          problems.Add(filter_path,
                       absl::StrCat("tcp_proxy must be the last filter of the chain (it is filter ",
                                    i + 1, " of ", count, ")"));
        }
        break;
      case v1::NetworkFilter::kHttpConnectionManager:
        CheckHttpConnectionManager(filter.http_connection_manager(),
                                   Field(filter_path, "http_connection_manager"), problems);
        CheckRequestIdAndTracing(filter.http_connection_manager(),
                                 Field(filter_path, "http_connection_manager"), clusters, problems);
        // It consumes the connection's bytes; nothing after it would see any.
        if (i != count - 1) {
          problems.Add(filter_path,
                       absl::StrCat("http_connection_manager must be the last filter of the chain "
                                    "(it is filter ",
                                    i + 1, " of ", count, ")"));
        }
        break;
    }
  }
}

void CheckListener(const v1::Listener& listener, absl::string_view path,
                   const std::set<std::string>& clusters,
                   std::map<std::string, std::string>& bound_addresses, Problems& problems) {
  CheckName(listener.name(), Field(path, "name"), /*required=*/true, problems);
  if (!listener.has_address()) {
    problems.Add(Field(path, "address"), "required");
  } else {
    const std::string address_path = Field(path, "address");
    std::optional<std::string> bound =
        CheckSocketAddress(listener.address(), address_path, /*upstream=*/false, problems);
    // Port 0 asks for a fresh port each time, so only fixed ports can collide.
    if (bound.has_value() && listener.address().port() != 0) {
      auto [it, inserted] = bound_addresses.emplace(*bound, path);
      if (!inserted) {
        problems.Add(address_path, absl::StrCat(*bound, " is already used by ", it->second));
      }
    }
  }
  if (listener.backlog() > kMaxBacklog) {
    problems.Add(Field(path, "backlog"),
                 absl::StrCat("must be at most ", kMaxBacklog, ", got ", listener.backlog()));
  }
  if (listener.max_accepts_per_event() > kMaxAcceptsPerEvent) {
    problems.Add(Field(path, "max_accepts_per_event"),
                 absl::StrCat("must be at most ", kMaxAcceptsPerEvent, ", got ",
                              listener.max_accepts_per_event()));
  }
  if (listener.per_connection_buffer_limit_bytes() != 0 &&
      listener.per_connection_buffer_limit_bytes() < kMinBufferLimitBytes) {
    problems.Add(
        Field(path, "per_connection_buffer_limit_bytes"),
        absl::StrCat("must be at least ", kMinBufferLimitBytes, " (or 0 for the default), got ",
                     listener.per_connection_buffer_limit_bytes()));
  }
  if (listener.has_tcp_keepalive()) {
    const v1::TcpKeepalive& keepalive = listener.tcp_keepalive();
    const std::string keepalive_path = Field(path, "tcp_keepalive");
    if (keepalive.probes() > kMaxKeepaliveProbes) {
      problems.Add(Field(keepalive_path, "probes"),
                   absl::StrCat("must be at most ", kMaxKeepaliveProbes,
                                " (the kernel's limit), got ", keepalive.probes()));
    }
    if (keepalive.has_idle_time()) {
      CheckKeepaliveSeconds(keepalive.idle_time(), Field(keepalive_path, "idle_time"), problems);
    }
    if (keepalive.has_interval()) {
      CheckKeepaliveSeconds(keepalive.interval(), Field(keepalive_path, "interval"), problems);
    }
  }
  const bool chains = listener.filter_chains_size() > 0 || listener.has_default_filter_chain();
  if (listener.filters_size() > 0 && chains) {
    problems.Add(Field(path, "filters"),
                 "give either filters (one plaintext chain) or filter_chains / "
                 "default_filter_chain, not both");
  } else if (!chains) {
    CheckFilters(listener.filters(), Field(path, "filters"), clusters, problems);
  }
  for (int i = 0; i < listener.filter_chains_size(); ++i) {
    const v1::FilterChain& chain = listener.filter_chains(i);
    const std::string chain_path = Index(Field(path, "filter_chains"), i);
    CheckName(chain.name(), Field(chain_path, "name"), /*required=*/false, problems);
    CheckFilters(chain.filters(), Field(chain_path, "filters"), clusters, problems);
  }
  if (listener.has_default_filter_chain()) {
    const std::string chain_path = Field(path, "default_filter_chain");
    CheckName(listener.default_filter_chain().name(), Field(chain_path, "name"),
              /*required=*/false, problems);
    if (listener.default_filter_chain().has_filter_chain_match()) {
      problems.Add(Field(chain_path, "filter_chain_match"),
                   "the default chain takes what no other chain matches: it has no match");
    }
    CheckFilters(listener.default_filter_chain().filters(), Field(chain_path, "filters"), clusters,
                 problems);
  }
}

// A DNS name as RFC 1123 allows a host name: dot-separated labels of letters, digits and
// hyphens (not at a label's ends), at most 63 bytes each and 253 in all; a trailing dot is fine.
bool IsDnsName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(absl::string_view(name.data(), name.size()), '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

void CheckDnsEndpoint(const v1::SocketAddress& address, absl::string_view path,
                      Problems& problems) {
  if (!IsDnsName(address.address()) && !CanonicalIp(address.address()).has_value()) {
    problems.Add(Field(path, "address"), absl::StrCat(Quote(address.address()),
                                                      " is neither a DNS name nor an IP literal"));
  }
  if (address.port() == 0 || address.port() > kMaxPort) {
    problems.Add(Field(path, "port"),
                 absl::StrCat("port ", address.port(), " is out of range (1..", kMaxPort, ")"));
  }
}

// outlier_detection: every duration at least 1ms (they arm timers and bound windows: 0 would
// spin or never count), the ejection times in order, percent a percent, and at least one check
// enabled. The ejection-time order is checked against Envoy's defaults when one is unset.
void CheckOutlierDetection(const v1::OutlierDetection& od, absl::string_view path,
                           Problems& problems) {
  constexpr int64_t kDefaultBaseEjectionMs = 30'000;
  constexpr int64_t kDefaultMaxEjectionMs = 300'000;
  if (od.has_interval()) CheckPositiveTimeout(od.interval(), Field(path, "interval"), problems);
  if (od.has_fail_timeout()) {
    CheckPositiveTimeout(od.fail_timeout(), Field(path, "fail_timeout"), problems);
  }
  bool ejection_times_ok = true;
  if (od.has_base_ejection_time()) {
    const size_t before = problems.count();
    CheckPositiveTimeout(od.base_ejection_time(), Field(path, "base_ejection_time"), problems);
    ejection_times_ok = problems.count() == before;
  }
  if (od.has_max_ejection_time()) {
    const size_t before = problems.count();
    CheckPositiveTimeout(od.max_ejection_time(), Field(path, "max_ejection_time"), problems);
    ejection_times_ok = ejection_times_ok && problems.count() == before;
  }
  if (ejection_times_ok) {
    const auto ms = [](const google::protobuf::Duration& d) {
      return d.seconds() * 1000 + d.nanos() / 1'000'000;
    };
    const int64_t base =
        od.has_base_ejection_time() ? ms(od.base_ejection_time()) : kDefaultBaseEjectionMs;
    const int64_t max =
        od.has_max_ejection_time() ? ms(od.max_ejection_time()) : kDefaultMaxEjectionMs;
    if (max < base) {
      problems.Add(Field(path, "max_ejection_time"),
                   absl::StrCat("must be at least base_ejection_time (", base, "ms",
                                od.has_base_ejection_time() ? "" : ", its default", "), got ", max,
                                "ms", od.has_max_ejection_time() ? "" : " (its default)"));
    }
  }
  if (od.has_max_ejection_percent() && od.max_ejection_percent().value() > 100) {
    problems.Add(Field(path, "max_ejection_percent"),
                 absl::StrCat("must be at most 100, got ", od.max_ejection_percent().value()));
  }
  const bool c5xx = !od.has_consecutive_5xx() || od.consecutive_5xx().value() != 0;
  const bool gateway = od.consecutive_gateway_failure().value() != 0;
  const bool max_fails = od.max_fails().value() != 0;
  if (!c5xx && !gateway && !max_fails) {
    problems.Add(path,
                 "every check is disabled (consecutive_5xx, consecutive_gateway_failure and "
                 "max_fails are 0): no host would ever be ejected; remove outlier_detection or "
                 "enable one");
  }
  if (od.has_fail_timeout() && !max_fails) {
    problems.Add(Field(path, "fail_timeout"), "has no effect without max_fails");
  }
}

// A request path a health check sends: origin-form, visible ASCII only (it goes on the wire as
// the request-target / :path as it is).
bool IsValidCheckPath(absl::string_view p) {
  if (p.empty() || p[0] != '/') return false;
  for (const char c : p) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') return false;
  }
  return true;
}

// Fields a health check request must not add: Host has its own setting; the others are the
// codec's (framing, connection management) and would break the exchange.
bool IsReservedCheckHeader(absl::string_view name) {
  for (absl::string_view reserved : {"host", "content-length", "transfer-encoding", "connection",
                                     "keep-alive", "proxy-connection", "upgrade", "te"}) {
    if (absl::EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

// A duration that may be 0 (none) but otherwise follows the timeout rules.
void CheckOptionalDuration(bool has, const google::protobuf::Duration& d, absl::string_view path,
                           Problems& problems) {
  if (has) CheckTimeout(d, path, problems);
}

void CheckHealthCheck(const v1::HealthCheck& hc, const v1::Cluster& cluster,
                      const std::string& path, Problems& problems) {
  if (!hc.has_timeout()) {
    problems.Add(Field(path, "timeout"), "required (how long one check may take, e.g. \"1s\")");
  } else {
    CheckPositiveTimeout(hc.timeout(), Field(path, "timeout"), problems);
  }
  if (!hc.has_interval()) {
    problems.Add(Field(path, "interval"), "required (time between two checks, e.g. \"5s\")");
  } else {
    CheckPositiveTimeout(hc.interval(), Field(path, "interval"), problems);
  }
  CheckOptionalDuration(hc.has_interval_jitter(), hc.interval_jitter(),
                        Field(path, "interval_jitter"), problems);
  CheckOptionalDuration(hc.has_initial_jitter(), hc.initial_jitter(), Field(path, "initial_jitter"),
                        problems);
  CheckOptionalDuration(hc.has_no_traffic_interval(), hc.no_traffic_interval(),
                        Field(path, "no_traffic_interval"), problems);
  if (hc.has_unhealthy_threshold() && hc.unhealthy_threshold().value() < 1) {
    problems.Add(Field(path, "unhealthy_threshold"), "must be at least 1");
  }
  if (hc.has_healthy_threshold() && hc.healthy_threshold().value() < 1) {
    problems.Add(Field(path, "healthy_threshold"), "must be at least 1");
  }
  switch (hc.health_checker_case()) {
    case v1::HealthCheck::kHttpHealthCheck: {
      const auto& http = hc.http_health_check();
      const std::string hpath = Field(path, "http_health_check");
      if (http.path().empty()) {
        problems.Add(Field(hpath, "path"), "required (the path to GET, e.g. \"/healthz\")");
      } else if (!IsValidCheckPath(http.path())) {
        problems.Add(Field(hpath, "path"),
                     absl::StrCat(Quote(http.path()),
                                  " must start with '/' and hold visible ASCII only (no spaces, "
                                  "controls or '#')"));
      }
      if (!http.host().empty()) CheckFieldValue(http.host(), Field(hpath, "host"), problems);
      for (int i = 0; i < http.expected_statuses_size(); ++i) {
        const auto& r = http.expected_statuses(i);
        const std::string rpath = Index(Field(hpath, "expected_statuses"), i);
        if (r.start() < 100 || r.start() > 599) {
          problems.Add(Field(rpath, "start"), absl::StrCat(r.start(), " is not in 100..599"));
        } else if (r.end() <= r.start() || r.end() > 600) {
          problems.Add(Field(rpath, "end"),
                       absl::StrCat("must be above start (", r.start(),
                                    ": the range is [start, end)) and at most 600, got ", r.end()));
        }
      }
      for (int i = 0; i < http.request_headers_to_add_size(); ++i) {
        const auto& h = http.request_headers_to_add(i);
        const std::string rpath = Index(Field(hpath, "request_headers_to_add"), i);
        if (!IsToken(h.name())) {
          problems.Add(Field(rpath, "name"),
                       absl::StrCat(Quote(h.name()), " is not a valid field name"));
        } else if (IsReservedCheckHeader(h.name())) {
          problems.Add(Field(rpath, "name"),
                       absl::StrCat(Quote(h.name()),
                                    " cannot be added to a health check request (Host is "
                                    "http_health_check.host; the others are the codec's)"));
        }
        CheckFieldValue(h.value(), Field(rpath, "value"), problems);
      }
      break;
    }
    case v1::HealthCheck::kTcpHealthCheck:
      break;
    case v1::HealthCheck::kGrpcHealthCheck: {
      const auto& grpc = hc.grpc_health_check();
      const std::string gpath = Field(path, "grpc_health_check");
      if (cluster.protocol() != v1::Cluster::HTTP2) {
        problems.Add(gpath,
                     "a gRPC health check needs the cluster's protocol HTTP2 (gRPC is HTTP/2 "
                     "only; AUTO may choose HTTP/1.1)");
      }
      if (!grpc.authority().empty()) {
        CheckFieldValue(grpc.authority(), Field(gpath, "authority"), problems);
      }
      break;
    }
    case v1::HealthCheck::HEALTH_CHECKER_NOT_SET:
      problems.Add(path,
                   "one of http_health_check, tcp_health_check or grpc_health_check is required");
      break;
  }
}

void CheckCluster(const v1::Cluster& cluster, absl::string_view path, Problems& problems) {
  if (cluster.endpoints_size() == 0) {
    problems.Add(Field(path, "endpoints"), "at least one endpoint is required");
  }
  const bool dns = cluster.type() == v1::Cluster::STRICT_DNS;
  if (!v1::Cluster::DiscoveryType_IsValid(cluster.type())) {
    problems.Add(Field(path, "type"), absl::StrCat("unknown discovery type ", cluster.type()));
  }
  for (int i = 0; i < cluster.endpoints_size(); ++i) {
    const std::string endpoint_path = Index(Field(path, "endpoints"), i);
    const v1::Cluster::Endpoint& endpoint = cluster.endpoints(i);
    if (!endpoint.has_address()) {
      problems.Add(Field(endpoint_path, "address"), "required");
      continue;
    }
    if (dns) {
      CheckDnsEndpoint(endpoint.address(), Field(endpoint_path, "address"), problems);
    } else {
      CheckSocketAddress(endpoint.address(), Field(endpoint_path, "address"), /*upstream=*/true,
                         problems);
    }
  }
  if (dns) {
    const auto& rate = cluster.dns_refresh_rate();
    if (cluster.has_dns_refresh_rate() &&
        CheckDurationWellFormed(rate, Field(path, "dns_refresh_rate"), problems) &&
        (IsNegative(rate) || (rate.seconds() == 0 && rate.nanos() < 10'000'000))) {
      problems.Add(Field(path, "dns_refresh_rate"),
                   absl::StrCat("must be at least 10ms, got ", FormatDuration(rate)));
    }
    if (!v1::Cluster::DnsLookupFamily_IsValid(cluster.dns_lookup_family())) {
      problems.Add(Field(path, "dns_lookup_family"),
                   absl::StrCat("unknown lookup family ", cluster.dns_lookup_family()));
    }
    for (int i = 0; i < cluster.dns_resolvers_size(); ++i) {
      CheckSocketAddress(cluster.dns_resolvers(i), Index(Field(path, "dns_resolvers"), i),
                         /*upstream=*/true, problems);
    }
  } else if (cluster.has_dns_refresh_rate() || cluster.respect_dns_ttl() ||
             cluster.dns_lookup_family() != v1::Cluster::V4_PREFERRED ||
             cluster.dns_resolvers_size() != 0) {
    problems.Add(Field(path, "type"),
                 "dns_* settings need type STRICT_DNS (this cluster's endpoints are static)");
  }
  if (cluster.has_connect_timeout()) {
    CheckPositiveTimeout(cluster.connect_timeout(), Field(path, "connect_timeout"), problems);
  }
  if (cluster.has_read_timeout()) {
    CheckTimeout(cluster.read_timeout(), Field(path, "read_timeout"), problems);
  }
  if (cluster.has_send_timeout()) {
    CheckTimeout(cluster.send_timeout(), Field(path, "send_timeout"), problems);
  }
  if (cluster.has_http_pool() && cluster.http_pool().has_idle_timeout()) {
    CheckTimeout(cluster.http_pool().idle_timeout(), Field(path, "http_pool.idle_timeout"),
                 problems);
  }
  if (!v1::Cluster::UpstreamProtocol_IsValid(cluster.protocol())) {
    problems.Add(Field(path, "protocol"), absl::StrCat("unknown protocol ", cluster.protocol()));
  }
  if (cluster.protocol() == v1::Cluster::AUTO && !cluster.has_tls_context()) {
    problems.Add(Field(path, "protocol"),
                 "AUTO picks the protocol by ALPN, which needs tls_context (use HTTP2 for h2c)");
  }
  if (cluster.has_http2_protocol_options()) {
    if (cluster.protocol() == v1::Cluster::HTTP1) {
      problems.Add(Field(path, "http2_protocol_options"), "needs protocol HTTP2 or AUTO");
    }
    CheckHttp2ProtocolOptions(cluster.http2_protocol_options(),
                              Field(path, "http2_protocol_options"), problems);
  }
  if (!v1::Cluster::LbPolicy_IsValid(cluster.lb_policy())) {
    problems.Add(Field(path, "lb_policy"),
                 absl::StrCat("unknown load balancing policy ", cluster.lb_policy()));
  }
  if (cluster.health_checks_size() > 1) {
    problems.Add(
        Field(path, "health_checks"),
        absl::StrCat("at most one health check per cluster, got ", cluster.health_checks_size()));
  }
  for (int i = 0; i < cluster.health_checks_size(); ++i) {
    CheckHealthCheck(cluster.health_checks(i), cluster, Index(Field(path, "health_checks"), i),
                     problems);
  }
  if (cluster.common_lb_config().has_healthy_panic_threshold()) {
    const double t = cluster.common_lb_config().healthy_panic_threshold().value();
    if (!(t >= 0 && t <= 100)) {
      problems.Add(Field(path, "common_lb_config.healthy_panic_threshold"),
                   absl::StrCat("must be a percentage, 0..100 (0: never panic), got ", t));
    }
  }
  if (cluster.per_connection_buffer_limit_bytes() != 0 &&
      cluster.per_connection_buffer_limit_bytes() < kMinBufferLimitBytes) {
    problems.Add(
        Field(path, "per_connection_buffer_limit_bytes"),
        absl::StrCat("must be at least ", kMinBufferLimitBytes, " (or 0 for the default), got ",
                     cluster.per_connection_buffer_limit_bytes()));
  }
  if (cluster.has_outlier_detection()) {
    CheckOutlierDetection(cluster.outlier_detection(), Field(path, "outlier_detection"), problems);
  }
}

// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (an address already known to be a literal).
bool IsLoopbackLiteral(const std::string& address) {
  unsigned char bytes[sizeof(in6_addr)];
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) return bytes[0] == 127;
  if (inet_pton(AF_INET6, address.c_str(), bytes) != 1) return false;
  static constexpr unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static constexpr unsigned char kMapped4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(bytes, kLoopback6, 16) == 0) return true;
  return memcmp(bytes, kMapped4, 12) == 0 && bytes[12] == 127;
}

void CheckAdmin(const v1::Admin& admin, const std::map<std::string, std::string>& bound_addresses,
                Problems& problems) {
  // admin.address as "ip:port" when it is valid and fixed (probe_address must differ).
  std::optional<std::string> admin_bound;
  if (admin.has_address()) {
    std::optional<std::string> bound =
        CheckSocketAddress(admin.address(), "admin.address", /*upstream=*/false, problems);
    if (admin.address().port() != 0) admin_bound = bound;
    if (bound.has_value() && admin.address().port() != 0) {
      if (auto it = bound_addresses.find(*bound); it != bound_addresses.end()) {
        problems.Add("admin.address", absl::StrCat(*bound, " is already used by ", it->second));
      }
    }
    if (bound.has_value() && !IsLoopbackLiteral(admin.address().address()) &&
        !admin.has_bearer_token() && !admin.allow_unauthenticated_remote()) {
      problems.Add("admin.address",
                   absl::StrCat(Quote(admin.address().address()),
                                " is not a loopback address, and the admin endpoint has no "
                                "bearer_token: anyone who can reach it could read the config and "
                                "stats and drain or stop the proxy. Listen on 127.0.0.1 or ::1 "
                                "(or a unix_socket), set admin.bearer_token, or set "
                                "admin.allow_unauthenticated_remote: true if the network is "
                                "guarded otherwise"));
    }
  }
  if (admin.has_probe_address()) {
    // No loopback rule here: the probe listener answers nothing but the state word.
    std::optional<std::string> bound = CheckSocketAddress(
        admin.probe_address(), "admin.probe_address", /*upstream=*/false, problems);
    if (bound.has_value() && admin.probe_address().port() != 0) {
      if (auto it = bound_addresses.find(*bound); it != bound_addresses.end()) {
        problems.Add("admin.probe_address",
                     absl::StrCat(*bound, " is already used by ", it->second));
      } else if (bound == admin_bound) {
        problems.Add("admin.probe_address", absl::StrCat(*bound, " is admin.address too"));
      }
    }
  }
  if (admin.has_bearer_token()) {
    const v1::DataSource& token = admin.bearer_token();
    switch (token.specifier_case()) {
      case v1::DataSource::kInlineString:
        if (absl::Status s = CheckBearerToken(token.inline_string()); !s.ok()) {
          problems.Add("admin.bearer_token.inline_string", s.message());
        }
        break;
      case v1::DataSource::kFilename:
        if (token.filename().empty()) {
          problems.Add("admin.bearer_token.filename", "must not be empty");
        } else {
          CheckFilePath(token.filename(), "admin.bearer_token.filename", problems);
        }
        break;
      case v1::DataSource::SPECIFIER_NOT_SET:
        problems.Add("admin.bearer_token", "needs filename or inline_string");
        break;
    }
  }
  if (admin.has_unix_socket()) {
    const v1::UnixSocketAddress& unix_socket = admin.unix_socket();
    const std::string& path = unix_socket.path();
    if (path.empty()) {
      problems.Add("admin.unix_socket.path", "required (the socket file to create)");
    } else if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      problems.Add(
          "admin.unix_socket.path",
          absl::StrCat(Quote(path), " is ", path.size(), " bytes long; a unix socket path ",
                       "must be shorter than ", sizeof(sockaddr_un::sun_path)));
    } else if (path[0] == '@') {
      problems.Add("admin.unix_socket.path",
                   "abstract sockets (\"@name\") are not supported: their access cannot be "
                   "limited by a file mode");
    } else {
      CheckFilePath(path, "admin.unix_socket.path", problems);
    }
    if (!unix_socket.mode().empty() && !ParseFileMode(unix_socket.mode()).has_value()) {
      problems.Add("admin.unix_socket.mode",
                   absl::StrCat(Quote(unix_socket.mode()),
                                " is not an octal file mode of at most 0777 (e.g. \"0600\")"));
    }
  }
  if (admin.allow_unauthenticated_remote() && !admin.has_address()) {
    problems.Add("admin.allow_unauthenticated_remote", "has no meaning without admin.address");
  }
  if ((admin.has_bearer_token() || admin.allow_unauthenticated_remote()) && !admin.has_address() &&
      !admin.has_unix_socket()) {
    problems.Add("admin", admin.has_probe_address()
                              ? "bearer_token applies to address and unix_socket, and there is "
                                "neither (probe_address takes no token)"
                              : "has settings but neither address nor unix_socket: nothing would "
                                "listen");
  }
}

}  // namespace

absl::Status CheckBearerToken(std::string_view token) {
  // RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  size_t i = 0;
  while (i < token.size() &&
         (absl::ascii_isalnum(static_cast<unsigned char>(token[i])) ||
          absl::string_view("-._~+/").find(token[i]) != absl::string_view::npos)) {
    ++i;
  }
  const size_t body = i;
  while (i < token.size() && token[i] == '=') ++i;
  if (i != token.size() || body == 0) {
    return absl::InvalidArgumentError(
        "a bearer token is letters, digits and \"-._~+/\" with optional trailing \"=\" (RFC "
        "6750), nothing else (no spaces or control characters)");
  }
  if (token.size() < kMinBearerTokenLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a bearer token must be at least ", kMinBearerTokenLength, " characters long, got ",
        token.size(), " (make one with `openssl rand -hex 32`)"));
  }
  return absl::OkStatus();
}

std::optional<uint32_t> ParseFileMode(std::string_view mode) {
  if (mode.empty() || mode.size() > 4) return std::nullopt;
  uint32_t value = 0;
  for (char c : mode) {
    if (c < '0' || c > '7') return std::nullopt;
    value = value * 8 + static_cast<uint32_t>(c - '0');
  }
  if (value > 0777) return std::nullopt;
  return value;
}

absl::Status ValidateBootstrap(const v1::Bootstrap& bootstrap, std::string_view source,
                               const ValueSources* sources) {
  Problems problems(absl::string_view(source.data(), source.size()), sources);

  // Clusters first, so that listeners can check their references against the full set.
  std::set<std::string> cluster_names;
  std::map<std::string, int> first_cluster;
  for (int i = 0; i < bootstrap.clusters_size(); ++i) {
    const v1::Cluster& cluster = bootstrap.clusters(i);
    const std::string path = Index("clusters", i);
    if (cluster.name().empty() || !IsValidName(cluster.name())) {
      CheckName(cluster.name(), Field(path, "name"), /*required=*/true, problems);
    } else if (auto [it, inserted] = first_cluster.emplace(cluster.name(), i); !inserted) {
      problems.Add(Field(path, "name"),
                   absl::StrCat("duplicate cluster name ", Quote(cluster.name()),
                                " (also clusters[", it->second, "])"));
    }
    if (!cluster.name().empty()) cluster_names.insert(cluster.name());
  }

  if (bootstrap.listeners_size() == 0) {
    problems.Add("listeners",
                 "at least one listener is required (without one, sluice would run and serve "
                 "nothing)");
  }
  std::map<std::string, int> first_listener;
  std::map<std::string, std::string> bound_addresses;  // "ip:port" -> the listener's path
  for (int i = 0; i < bootstrap.listeners_size(); ++i) {
    const v1::Listener& listener = bootstrap.listeners(i);
    const std::string path = Index("listeners", i);
    if (!listener.name().empty()) {
      if (auto [it, inserted] = first_listener.emplace(listener.name(), i); !inserted) {
        problems.Add(Field(path, "name"),
                     absl::StrCat("duplicate listener name ", Quote(listener.name()),
                                  " (also listeners[", it->second, "])"));
      }
    }
    CheckListener(listener, path, cluster_names, bound_addresses, problems);
  }

  for (int i = 0; i < bootstrap.clusters_size(); ++i) {
    CheckCluster(bootstrap.clusters(i), Index("clusters", i), problems);
  }

  if (bootstrap.has_admin()) CheckAdmin(bootstrap.admin(), bound_addresses, problems);
  if (bootstrap.concurrency() > kMaxConcurrency) {
    problems.Add("concurrency", absl::StrCat("must be at most ", kMaxConcurrency,
                                             " (or 0 for one "
                                             "worker per core), got ",
                                             bootstrap.concurrency()));
  }
  if (bootstrap.has_drain_timeout()) {
    CheckTimeout(bootstrap.drain_timeout(), "drain_timeout", problems);
  }
  for (int i = 0; i < bootstrap.plugin_dirs_size(); ++i) {
    const std::string path = Index("plugin_dirs", i);
    if (bootstrap.plugin_dirs(i).empty()) {
      problems.Add(path, "must not be empty (a directory to search for plugins)");
    } else {
      CheckFilePath(bootstrap.plugin_dirs(i), path, problems);
    }
  }
  return problems.ToStatus();
}

absl::StatusOr<v1::Bootstrap> LoadBootstrap(const std::string& path, ValueSources* sources) {
  // The sources give validation errors their line numbers, whether or not the caller keeps them.
  ValueSources local;
  if (sources == nullptr) sources = &local;
  v1::Bootstrap bootstrap;
  if (absl::Status status = LoadFile(path, bootstrap, sources); !status.ok()) return status;
  if (absl::Status status = ValidateBootstrap(bootstrap, path, sources); !status.ok()) {
    return status;
  }
  return bootstrap;
}

}  // namespace sluice::config
