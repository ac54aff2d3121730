#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/tracing.pb.h"
#include "source/common/stats.h"
#include "source/http/filter.h"
#include "source/http/header_map.h"
#include "source/http/trace_context.h"
#include "source/network/filter_context.h"

// Request ids and tracing in the connection manager (http_connection_manager.proto's request_id
// and tracing; docs/observability.md, "Request ids and tracing"). The connection manager calls
// in at three points of a stream — its request head, its response head, its end — and only
// when the config has them: a manager without either pays a null check at each.
namespace sluice::http {

// HttpConnectionManager.request_id with its defaults applied.
struct RequestIdConfig {
  std::string header_name = "x-request-id";
  bool keep_incoming = true;
  bool echo_on_response = true;
};
RequestIdConfig BuildRequestIdConfig(const config::v1::RequestId& proto);

// Keeps the id the request carries (`keep_incoming`, a non-empty value) or gives it a new one
// (a UUID v4), before any filter sees the request. Returns the id: a view into the head's own
// storage, valid as long as `headers` (StreamInfo::request_id).
std::string_view ApplyRequestId(const RequestIdConfig& config, HeaderMap& headers);
// Puts the id on a response (echo_on_response), replacing any the response carries. `id` must
// outlive `headers` (the request head's, StreamInfo::request_id).
void EchoRequestId(const RequestIdConfig& config, std::string_view id, HeaderMap& headers);

// "tracing.<stat_prefix>.*".
struct TracingStats {
  stats::Counter& spans_sampled;    // spans of sampled streams, at their end
  stats::Counter& spans_exported;   // ... the collector accepted (a 2xx to their export)
  stats::Counter& spans_dropped;    // ... dropped: batch full, failed export, worker gone
  stats::Counter& export_failures;  // exports that failed (no 2xx: refused, reset, timeout)
};

// A sampled stream's span, from its request head to its end (allocated for sampled streams
// only).
struct ActiveSpan {
  tracing::TraceId trace_id{};
  tracing::SpanId span_id{};    // this hop's, sent upstream as the traceparent's parent-id
  tracing::SpanId parent_id{};  // the incoming traceparent's, when there was a valid one
  bool has_parent = false;
  std::chrono::system_clock::time_point start;
  std::string tracestate;     // as it came (when valid)
  std::string upstream_host;  // the last upstream attempt's "ip:port"
};

// What the end of a stream tells its span.
struct SpanEnd {
  const StreamInfo& info;
  const RequestHead* request = nullptr;
  // The request's path as the routes matched it (query included; the span drops it).
  std::string_view path;
};

// A connection manager's tracing: immutable once built, shared by every worker. Each worker
// keeps its own batch of finished spans (a WorkerLocal of its FilterContext) and exports it
// through its CalloutClient to the collector cluster, at most one export in flight per worker.
class Tracer : public std::enable_shared_from_this<Tracer> {
 public:
  struct Options {
    double random_sampling = 100;  // percent
    std::string collector_cluster;
    std::string collector_path = "/v1/traces";
    std::string collector_authority;  // empty: the cluster's name
    std::string service_name = "sluice";
    uint32_t max_batch = 512;
    std::chrono::milliseconds flush_interval{5000};
    std::chrono::milliseconds export_timeout{10000};
  };
  static Options BuildOptions(const config::v1::Tracing& proto);
  // Stats "tracing.<stat_prefix>.*".
  static std::shared_ptr<const Tracer> Create(Options options, stats::Store& store,
                                              std::string_view stat_prefix);

  // At the request head, before any filter: reads traceparent and tracestate, decides whether
  // the stream is sampled, and rewrites both for the next hop (a new span id; tracestate kept
  // when valid, else removed). The span to record when sampled, else nullptr.
  std::unique_ptr<ActiveSpan> onRequestHeaders(HeaderMap& headers) const;

  // At the stream's end: the span goes into this worker's batch as OTLP JSON, or is dropped
  // (and counted) when the batch is full or the context keeps no per-worker objects.
  void onStreamEnd(const ActiveSpan& span, const SpanEnd& end,
                   network::FilterContext& context) const;

  const Options& options() const { return options_; }
  const TracingStats& stats() const { return stats_; }
  // The export's JSON around the spans: the resource (service.name) and the scope.
  const std::string& exportPrefix() const { return export_prefix_; }
  static constexpr std::string_view kExportSuffix = "]}]}]}";

  // One span as an OTLP JSON object (appended to `out`); public for tests.
  static void AppendSpanJson(const ActiveSpan& span, const SpanEnd& end,
                             std::chrono::system_clock::time_point end_time, std::string& out);

 private:
  Tracer(Options options, TracingStats stats);

  const Options options_;
  const TracingStats stats_;
  // random_sampling as a threshold on a uniform 64-bit number (sampled when below it).
  const uint64_t sampling_threshold_;
  const bool sample_all_;
  const uint64_t worker_key_;  // this tracer's WorkerLocals key
  std::string export_prefix_;
};

}  // namespace sluice::http
