#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/http_connection_manager.pb.h"
#include "source/common/stats.h"
#include "source/http/access_log.h"
#include "source/http/filter.h"
#include "source/http/http1/codec_impl.h"
#include "source/http/http2/codec_impl.h"
#include "source/http/path_normalizer.h"
#include "source/http/tracer.h"
#include "source/network/filter_context.h"

namespace sluice::http {

struct ConnectionManagerStats {
  stats::Counter& downstream_rq_total;
  stats::Counter& downstream_rq_1xx;
  stats::Counter& downstream_rq_2xx;
  stats::Counter& downstream_rq_3xx;
  stats::Counter& downstream_rq_4xx;
  stats::Counter& downstream_rq_5xx;
  stats::Gauge& downstream_rq_active;
  stats::Counter& downstream_rq_protocol_error;  // every request the codec rejected
  stats::Counter& downstream_rq_headers_timeout;
  stats::Counter& downstream_rq_body_timeout;
  stats::Counter& downstream_rq_stream_idle_timeout;
  stats::Counter& downstream_rq_reset;
  stats::Counter& downstream_cx_idle_timeout;
  stats::Counter& downstream_cx_max_requests_reached;
  // Connections closed because the server drained (Envoy's name): after their last response
  // ("Connection: close", or HTTP/2's final GOAWAY), or idle at the end of the drain timeout.
  stats::Counter& downstream_cx_drain_close;
  stats::Counter& downstream_cx_http1_total;
  stats::Counter& downstream_cx_http2_total;
  // Responses whose body did not match their Content-Length, or with an invalid one (a
  // filter's mistake, corrected by the codec).
  stats::Counter& downstream_rs_framing_error;
  // Bodies a filter buffered (kStopIterationAndBuffer) beyond the buffer limit: requests answered
  // 413, responses answered 500 (head still held) or reset (head already sent).
  stats::Counter& downstream_rq_too_large;
  stats::Counter& downstream_rs_too_large;
  // Flow control: reading the client paused because the upstream is not taking the body, and
  // reading the upstream paused because the client is not taking the response.
  stats::Counter& downstream_flow_control_paused_reading_total;
  stats::Counter& upstream_flow_control_paused_reading_total;
  // Tunnels opened (WebSocket and other upgrades, CONNECT), and open now.
  stats::Counter& downstream_cx_upgrades_total;
  stats::Gauge& downstream_cx_upgrades_active;
  // Request targets changed to canonical form, refused (400) and redirected (307; escaped
  // slashes) by path normalization.
  stats::Counter& downstream_rq_path_normalized;
  stats::Counter& downstream_rq_path_rejected;
  stats::Counter& downstream_rq_path_redirected;
  // Connections closed lingering (input unread when the last response was sent).
  stats::Counter& downstream_cx_lingering_close;
  // Trailers that could not go out on HTTP/1 (a body framed by Content-Length, or an HTTP/1.0
  // response delimited by the close): a filter added trailers without sl_host_trailers_expect.
  stats::Counter& downstream_rs_trailers_dropped;
  stats::Counter& upstream_rq_trailers_dropped;
  // Requests read from TLS 1.3 early data that are not safe to replay: answered 425.
  stats::Counter& downstream_rq_too_early;
  // From the stream's start (its first byte) to its end, in milliseconds (Envoy's unit).
  stats::Histogram& downstream_rq_time;
  // "<prefix>downstream_rq_protocol_error_<status>" (and "_other"), created with the config so that
  // counting a rejected request (possibly a flood of them) takes no lock on a worker.
  std::vector<std::pair<uint16_t, stats::Counter*>> protocol_error_by_status;
  // "<prefix>downstream_rq_response_flag.<UF|UO|URX|...>": streams that ended with each
  // response flag (ResponseFlag), counted once per stream and flag at its end.
  stats::Counter* response_flag[kResponseFlagCount] = {};
  stats::Counter& protocolErrorCounter(uint16_t status) const;
};

// An HTTP connection manager's config with defaults applied: immutable, shared by the workers.
struct ConnectionManagerConfig {
  std::string server_name = "sluice";
  // Added as a Via field to proxied requests and responses when not empty.
  std::string via;
  // X-Forwarded-For on proxied requests (http_connection_manager.proto, forwarded_for).
  enum class ForwardedFor { kAppend, kReplace, kKeep } forwarded_for = ForwardedFor::kAppend;
  // X-Forwarded-Client-Cert (forward_client_cert_details).
  enum class ForwardClientCert {
    kSanitize,
    kSanitizeSet,
    kAppendForward,
    kForwardOnly
  } forward_client_cert = ForwardClientCert::kSanitize;
  std::chrono::milliseconds request_headers_timeout{10000};
  std::chrono::milliseconds request_body_timeout{30000};
  std::chrono::milliseconds idle_timeout{65000};
  std::chrono::milliseconds stream_idle_timeout{300000};
  std::chrono::milliseconds lingering_timeout{5000};
  std::chrono::milliseconds lingering_time{30000};
  // While the server drains: how long an idle connection stays open for one more request, and
  // the time between HTTP/2's notice GOAWAY and its final one if the client's PING ack is late.
  std::chrono::milliseconds drain_timeout{5000};
  uint32_t max_requests_per_connection = 1000;
  uint32_t buffer_limit = 1024 * 1024;
  PathNormalization path;
  // The upstream gets the path as received (routes still match the canonical one).
  bool forward_path_as_received = false;
  // Request ids and tracing (tracer.h): null when not configured.
  std::unique_ptr<const RequestIdConfig> request_id;
  std::shared_ptr<const Tracer> tracer;
  http1::CodecSettings codec;
  // Which codec a connection gets (http_connection_manager.proto, codec_type).
  enum class CodecType : uint8_t { kAuto, kHttp1, kHttp2 } codec_type = CodecType::kAuto;
  http2::Http2Settings http2;
  std::vector<StreamFilterFactory> filter_factories;
  // A line per stream, at its end (access_log.h).
  std::vector<std::unique_ptr<const AccessLog>> access_logs;
  std::unique_ptr<ConnectionManagerStats> stats;
  std::unique_ptr<http2::Http2Stats> http2_stats;
};
using ConnectionManagerConfigPtr = std::shared_ptr<const ConnectionManagerConfig>;

// Builds the filters http does not know itself (plugins; see source/plugin/plugin.h), one
// http_filters list at a time.
class PluginFilterBuilder {
 public:
  virtual ~PluginFilterBuilder() = default;
  // A list starts (its field path, "listeners[0]...http_connection_manager").
  virtual void chainBegin(const std::string& path) = 0;
  // One entry: the filter's name, the entry's field path ("...http_filters[2]").
  virtual absl::StatusOr<StreamFilterFactory> filterFactory(const config::v1::PluginFilter& proto,
                                                            const std::string& name,
                                                            const std::string& path) = 0;
  // Every entry of the list is built: what links its filters (a route's config for another
  // filter of the list) is checked and built now.
  virtual absl::Status chainDone() = 0;
};

// Builds the runtime config from the (validated) proto; `stat_prefix` defaults to the
// listener's name. `path` is the manager's field path in the config (for errors); `plugins`
// builds plugin filters (an error names the entry when there is none); `access_logs` opens the
// access logs' files (null: their formats are checked, nothing is logged).
absl::StatusOr<ConnectionManagerConfigPtr> BuildConnectionManagerConfig(
    const config::v1::HttpConnectionManager& proto, const std::string& listener_name,
    stats::Store& store, const std::string& path = "http_connection_manager",
    PluginFilterBuilder* plugins = nullptr, access_log::Manager* access_logs = nullptr);

// The network filter factory for a listener's "http_connection_manager" entry.
network::FilterFactory ConnectionManagerFilterFactory(ConnectionManagerConfigPtr config);

}  // namespace sluice::http
