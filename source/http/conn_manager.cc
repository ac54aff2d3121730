#include "source/http/conn_manager.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "source/http/conn_manager_impl.h"
#include "source/http/filters/direct_response.h"
#include "source/http/http1/header_utils.h"

namespace sluice::http {

namespace {
using google::protobuf::util::TimeUtil;

std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(d));
}
}  // namespace

absl::StatusOr<ConnectionManagerConfigPtr> BuildConnectionManagerConfig(
    const config::v1::HttpConnectionManager& p, const std::string& listener_name,
    stats::Store& store, const std::string& path, PluginFilterBuilder* plugins,
    access_log::Manager* access_logs) {
  auto c = std::make_shared<ConnectionManagerConfig>();
  if (!p.server_name().empty()) c->server_name = p.server_name();
  c->via = p.via();
  switch (p.forwarded_for()) {
    case config::v1::HttpConnectionManager::REPLACE:
      c->forwarded_for = ConnectionManagerConfig::ForwardedFor::kReplace;
      break;
    case config::v1::HttpConnectionManager::KEEP:
      c->forwarded_for = ConnectionManagerConfig::ForwardedFor::kKeep;
      break;
    default:
      break;
  }
  switch (p.forward_client_cert_details()) {
    case config::v1::HttpConnectionManager::SANITIZE_SET:
      c->forward_client_cert = ConnectionManagerConfig::ForwardClientCert::kSanitizeSet;
      break;
    case config::v1::HttpConnectionManager::APPEND_FORWARD:
      c->forward_client_cert = ConnectionManagerConfig::ForwardClientCert::kAppendForward;
      break;
    case config::v1::HttpConnectionManager::FORWARD_ONLY:
      c->forward_client_cert = ConnectionManagerConfig::ForwardClientCert::kForwardOnly;
      break;
    default:
      break;
  }
  if (p.has_request_headers_timeout()) c->request_headers_timeout = Ms(p.request_headers_timeout());
  if (p.has_request_body_timeout()) c->request_body_timeout = Ms(p.request_body_timeout());
  if (p.has_idle_timeout()) c->idle_timeout = Ms(p.idle_timeout());
  if (p.has_stream_idle_timeout()) c->stream_idle_timeout = Ms(p.stream_idle_timeout());
  if (p.has_lingering_timeout()) c->lingering_timeout = Ms(p.lingering_timeout());
  if (p.has_lingering_time()) c->lingering_time = Ms(p.lingering_time());
  if (p.has_drain_timeout()) c->drain_timeout = Ms(p.drain_timeout());
  if (p.max_requests_per_connection() != 0) {
    c->max_requests_per_connection = p.max_requests_per_connection();
  }
  if (p.buffer_limit_bytes() != 0) c->buffer_limit = p.buffer_limit_bytes();
  if (p.has_normalize_path()) c->path.normalize = p.normalize_path().value();
  if (p.has_merge_slashes()) c->path.merge_slashes = p.merge_slashes().value();
  using Slashes = PathNormalization::EscapedSlashes;
  switch (p.path_with_escaped_slashes_action()) {
    case config::v1::HttpConnectionManager::UNESCAPE_AND_FORWARD:
      c->path.escaped_slashes = Slashes::kUnescapeAndForward;
      break;
    case config::v1::HttpConnectionManager::REJECT_REQUEST:
      c->path.escaped_slashes = Slashes::kReject;
      break;
    case config::v1::HttpConnectionManager::KEEP_UNCHANGED:
      c->path.escaped_slashes = Slashes::kKeep;
      break;
    default:
      c->path.escaped_slashes = Slashes::kUnescapeAndRedirect;
      break;
  }
  c->forward_path_as_received = p.upstream_path() == config::v1::HttpConnectionManager::AS_RECEIVED;
  for (int i = 0; i < p.upgrade_types_size(); ++i) {
    const std::string& type = p.upgrade_types(i);
    if (type == "CONNECT") {
      c->codec.allow_connect = true;
    } else if (http1::IsToken(type)) {
      c->codec.upgrade_types.push_back(absl::AsciiStrToLower(type));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ".upgrade_types[", i, "]: \"", type,
                                                     "\" is not a protocol token or CONNECT"));
    }
  }
  if (p.max_request_line_bytes() != 0)
    c->codec.limits.max_request_line = p.max_request_line_bytes();
  if (p.max_request_headers_bytes() != 0) {
    c->codec.limits.max_header_bytes = p.max_request_headers_bytes();
  }
  if (p.max_request_headers_count() != 0) {
    c->codec.limits.max_headers = p.max_request_headers_count();
  }
  c->codec.max_request_body_bytes =
      p.has_max_request_body_bytes() && p.max_request_body_bytes().value() != 0
          ? p.max_request_body_bytes().value()
          : (uint64_t{1} << 30);
  switch (p.codec_type()) {
    case config::v1::HttpConnectionManager::HTTP1:
      c->codec_type = ConnectionManagerConfig::CodecType::kHttp1;
      break;
    case config::v1::HttpConnectionManager::HTTP2:
      c->codec_type = ConnectionManagerConfig::CodecType::kHttp2;
      break;
    default:
      break;
  }
  {
    const config::v1::Http2ProtocolOptions& o = p.http2_protocol_options();
    http2::Http2Settings& h2 = c->http2;
    // The header limits default to HTTP/1's.
    h2.max_header_list_size = c->codec.limits.max_header_bytes;
    h2.max_headers = c->codec.limits.max_headers;
    http2::ApplyProtocolOptions(o, h2);
    h2.allow_connect = c->codec.allow_connect;
    h2.connect_protocols = c->codec.upgrade_types;
    h2.max_request_body_bytes = c->codec.max_request_body_bytes;
  }
  if (plugins != nullptr) plugins->chainBegin(path);
  // Every plugin filter's error, not just the first: a plugin refusing its config must not hide
  // what the next one would say.
  std::vector<std::string> errors;
  for (int i = 0; i < p.http_filters_size(); ++i) {
    const auto& f = p.http_filters(i);
    switch (f.config_type_case()) {
      case config::v1::HttpFilter::kDirectResponse:
        c->filter_factories.push_back(DirectResponseFilterFactory(f.direct_response()));
        break;
      case config::v1::HttpFilter::kPlugin: {
        const std::string fpath = absl::StrCat(path, ".http_filters[", i, "]");
        if (plugins == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(fpath, ": plugin filters cannot be loaded here"));
        }
        auto factory = plugins->filterFactory(
            f.plugin(), f.name().empty() ? f.plugin().filter() : f.name(), fpath);
        if (!factory.ok()) {
          errors.emplace_back(factory.status().message());
          break;
        }
        c->filter_factories.push_back(std::move(*factory));
        break;
      }
      case config::v1::HttpFilter::CONFIG_TYPE_NOT_SET:
        return absl::InvalidArgumentError("an http filter has no config");
    }
  }
  if (plugins != nullptr) {
    if (absl::Status done = plugins->chainDone(); !done.ok()) errors.emplace_back(done.message());
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  for (int i = 0; i < p.access_log_size(); ++i) {
    auto log =
        BuildAccessLog(p.access_log(i), access_logs, absl::StrCat(path, ".access_log[", i, "]"));
    if (!log.ok()) return log.status();
    c->access_logs.push_back(std::move(*log));
  }
  const stats::Scope scope =
      stats::Scope(store).tagged("http", "http_conn_manager_prefix",
                                 p.stat_prefix().empty() ? listener_name : p.stat_prefix());
  auto counter = [&](const char* name) -> stats::Counter& { return scope.counter(name); };
  c->stats.reset(new ConnectionManagerStats{
      counter("downstream_rq_total"),
      stats::ResponseClassCounter(scope, "downstream_rq_", 1),
      stats::ResponseClassCounter(scope, "downstream_rq_", 2),
      stats::ResponseClassCounter(scope, "downstream_rq_", 3),
      stats::ResponseClassCounter(scope, "downstream_rq_", 4),
      stats::ResponseClassCounter(scope, "downstream_rq_", 5),
      scope.gauge("downstream_rq_active"),
      counter("downstream_rq_protocol_error"),
      counter("downstream_rq_headers_timeout"),
      counter("downstream_rq_body_timeout"),
      counter("downstream_rq_stream_idle_timeout"),
      counter("downstream_rq_reset"),
      counter("downstream_cx_idle_timeout"),
      counter("downstream_cx_max_requests_reached"),
      counter("downstream_cx_drain_close"),
      counter("downstream_cx_http1_total"),
      counter("downstream_cx_http2_total"),
      counter("downstream_rs_framing_error"),
      counter("downstream_rq_too_large"),
      counter("downstream_rs_too_large"),
      counter("downstream_flow_control_paused_reading_total"),
      counter("upstream_flow_control_paused_reading_total"),
      counter("downstream_cx_upgrades_total"),
      scope.gauge("downstream_cx_upgrades_active"),
      counter("downstream_rq_path_normalized"),
      counter("downstream_rq_path_rejected"),
      counter("downstream_rq_path_redirected"),
      counter("downstream_cx_lingering_close"),
      counter("downstream_rs_trailers_dropped"),
      counter("upstream_rq_trailers_dropped"),
      counter("downstream_rq_too_early"),
      scope.histogram("downstream_rq_time"),
      {},
  });
  for (int i = 0; i < kResponseFlagCount; ++i) {
    const std::string flag(ResponseFlagShortName(static_cast<ResponseFlag>(i)));
    c->stats->response_flag[i] =
        &scope.counter(absl::StrCat("downstream_rq_response_flag.", flag),
                       "downstream_rq_response_flag", {{"response_flag", flag}});
  }
  // Every status the HTTP/1 codec answers a protocol error with; anything else is "other".
  for (uint16_t status : {400, 413, 414, 431, 501, 505}) {
    c->stats->protocol_error_by_status.emplace_back(
        status, &scope.counter(absl::StrCat("downstream_rq_protocol_error_", status),
                               "downstream_rq_protocol_error_by_status",
                               {{"response_code", absl::StrCat(status)}}));
  }
  c->stats->protocol_error_by_status.emplace_back(
      0, &scope.counter("downstream_rq_protocol_error_other",
                        "downstream_rq_protocol_error_by_status", {{"response_code", "other"}}));
  const stats::Scope h2_scope = scope.child("http2");
  auto h2 = [&](const char* name) -> stats::Counter& { return h2_scope.counter(name); };
  c->http2_stats.reset(new http2::Http2Stats{
      h2("rx_reset"),
      h2("tx_reset"),
      h2("goaway_sent"),
      h2("rx_messaging_error"),
      h2("rx_protocol_error"),
      h2("header_overflow"),
      h2("rx_reset_flood"),
      h2("control_frame_flood"),
      h2("inbound_empty_frames_flood"),
      h2("inbound_priority_frames_flood"),
      h2("too_many_continuations"),
      h2("outbound_flood"),
      h2("header_bomb"),
      h2("stream_refused"),
      h2("keepalive_timeout"),
      h2("stream_id_exhausted"),
      h2("pending_send_bytes_paused"),
  });
  if (p.has_request_id()) {
    c->request_id = std::make_unique<const RequestIdConfig>(BuildRequestIdConfig(p.request_id()));
  }
  if (p.has_tracing()) {
    c->tracer = Tracer::Create(Tracer::BuildOptions(p.tracing()), store,
                               p.stat_prefix().empty() ? listener_name : p.stat_prefix());
  }
  return c;
}

stats::Counter& ConnectionManagerStats::protocolErrorCounter(uint16_t status) const {
  for (const auto& [s, counter] : protocol_error_by_status) {
    if (s == status) return *counter;
  }
  return *protocol_error_by_status.back().second;  // "other"
}

network::FilterFactory ConnectionManagerFilterFactory(ConnectionManagerConfigPtr config) {
  return [config](network::Connection& connection, network::FilterContext& context) {
    connection.addReadFilter(std::make_unique<ConnectionManagerImpl>(config, context));
  };
}

}  // namespace sluice::http
