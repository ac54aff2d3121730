#include "source/http/tracer.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/json_string.h"
#include "source/common/logging.h"
#include "source/http/callout.h"

namespace sluice::http {

namespace {

using google::protobuf::util::TimeUtil;
using tracing::kSampledFlag;

constexpr std::string_view kTraceparent = "traceparent";
constexpr std::string_view kTracestate = "tracestate";
// What an export keeps of the collector's answer (OTLP answers {} or a partial-success note).
constexpr uint64_t kMaxExportResponseBytes = 64 * 1024;

void AppendHexId(const uint8_t* bytes, size_t n, std::string& out) {
  char hex[32];
  tracing::HexEncode(bytes, n, hex);
  out.push_back('"');
  out.append(hex, 2 * n);
  out.push_back('"');
}

void AppendNanos(std::chrono::system_clock::time_point t, std::string& out) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  absl::StrAppend(&out, "\"", ns.count() < 0 ? 0 : ns.count(), "\"");
}

// Attributes, comma-separated: `first` until one is written.
class Attributes {
 public:
  explicit Attributes(std::string& out) : out_(out) {}
  void string(std::string_view key, std::string_view value) {
    begin(key);
    out_.append("{\"stringValue\":");
    json::AppendString(out_, value);
    out_.append("}}");
  }
  void integer(std::string_view key, int64_t value) {
    begin(key);
    absl::StrAppend(&out_, "{\"intValue\":\"", value, "\"}}");
  }

 private:
  void begin(std::string_view key) {
    if (!first_) out_.push_back(',');
    first_ = false;
    // Keys are this file's literals: nothing to escape.
    out_.append("{\"key\":\"").append(key).append("\",\"value\":");
  }
  std::string& out_;
  bool first_ = true;
};

std::string_view ProtocolVersion(Protocol p) {
  switch (p) {
    case Protocol::kHttp10:
      return "1.0";
    case Protocol::kHttp11:
      return "1.1";
    case Protocol::kHttp2:
      return "2";
  }
  return "1.1";
}

// A stream that was cut rather than answered: its span's status is ERROR whatever the status
// code (a 200 whose body the upstream reset, a client gone mid-response).
constexpr uint64_t kResetFlags = FlagBit(ResponseFlag::kLocalReset) |
                                 FlagBit(ResponseFlag::kUpstreamRemoteReset) |
                                 FlagBit(ResponseFlag::kUpstreamConnectionTermination) |
                                 FlagBit(ResponseFlag::kDownstreamConnectionTermination);

// A worker's batch of finished spans, and its export in flight (at most one).
class SpanBatch final : public network::WorkerLocal, private CalloutCallbacks {
 public:
  SpanBatch(std::shared_ptr<const Tracer> tracer, CalloutClient& client)
      : tracer_(std::move(tracer)),
        client_(client),
        timer_(client.dispatcher().createTimer([this] { flush(); })) {}
  // A callout in flight is withdrawn with it (its spans are lost, uncounted: the worker is
  // going away).
  ~SpanBatch() override = default;

  // Room for one more span; when false the caller drops it.
  bool full() const { return count_ >= tracer_->options().max_batch; }
  // Where the next span's JSON goes (after a separating comma when needed).
  std::string& append() {
    if (count_ > 0) spans_.push_back(',');
    return spans_;
  }
  // A span was appended.
  void added() {
    ++count_;
    if (full()) {
      flush();
    } else if (count_ == 1) {
      timer_->enableTimer(tracer_->options().flush_interval);
    }
  }

 private:
  // Sends the batch unless an export is in flight (its completion sends what is due then).
  void flush() {
    if (callout_ != nullptr || count_ == 0) return;
    timer_->disableTimer();
    const Tracer::Options& o = tracer_->options();
    CalloutRequest request;
    request.method = "POST";
    request.path = o.collector_path;
    request.authority = o.collector_authority;
    request.headers.add("Content-Type", "application/json");
    const std::string& prefix = tracer_->exportPrefix();
    request.body.reserve(prefix.size() + spans_.size() + Tracer::kExportSuffix.size());
    request.body.append(prefix).append(spans_).append(Tracer::kExportSuffix);
    spans_.clear();
    in_flight_ = count_;
    count_ = 0;
    CalloutOptions options;
    options.timeout = o.export_timeout;
    options.max_response_bytes = kMaxExportResponseBytes;
    absl::StatusOr<CalloutPtr> callout =
        client_.send(o.collector_cluster, std::move(request), options, *this);
    if (!callout.ok()) {
      SLUICE_LOG(kDebug, "tracing: export to %s not sent: %s", o.collector_cluster,
                 callout.status().message());
      failed();
      return;
    }
    callout_ = std::move(*callout);
  }

  void onCalloutComplete(CalloutResponse& response) override {
    // Not destroyed from inside its own completion.
    client_.dispatcher().deferredDelete(std::move(callout_));
    const bool accepted = (response.outcome == CalloutOutcome::kResponse ||
                           response.outcome == CalloutOutcome::kOverflow) &&
                          response.status >= 200 && response.status < 300;
    if (accepted) {
      tracer_->stats().spans_exported.add(in_flight_);
      in_flight_ = 0;
    } else {
      SLUICE_LOG(kDebug, "tracing: export of %d spans to %s failed (outcome %d, status %d)",
                 in_flight_, tracer_->options().collector_cluster,
                 static_cast<int>(response.outcome), response.status);
      failed();
    }
    // What filled up (or waited past its interval, the timer having found this export in
    // flight) goes now.
    if (full() || (count_ > 0 && !timer_->enabled())) flush();
  }

  void failed() {
    tracer_->stats().export_failures.inc();
    tracer_->stats().spans_dropped.add(in_flight_);
    in_flight_ = 0;
  }

  const std::shared_ptr<const Tracer> tracer_;
  CalloutClient& client_;
  event::TimerPtr timer_;
  std::string spans_;  // span objects, comma-separated
  uint32_t count_ = 0;
  uint32_t in_flight_ = 0;  // spans of the export in flight
  CalloutPtr callout_;
};

}  // namespace

RequestIdConfig BuildRequestIdConfig(const config::v1::RequestId& p) {
  RequestIdConfig c;
  if (!p.header_name().empty()) c.header_name = p.header_name();
  if (p.has_keep_incoming()) c.keep_incoming = p.keep_incoming().value();
  if (p.has_echo_on_response()) c.echo_on_response = p.echo_on_response().value();
  return c;
}

std::string_view ApplyRequestId(const RequestIdConfig& config, HeaderMap& headers) {
  const HeaderMap::Entry* e = headers.get(config.header_name);
  if (e != nullptr) {
    if (config.keep_incoming && !e->value.empty()) return e->value;
    headers.remove(config.header_name);
  }
  char id[tracing::kUuidSize];
  tracing::NewUuid4(id);
  const std::string_view kept = headers.keep(std::string_view(id, sizeof(id)));
  // The name's bytes are the config's, which outlives every stream.
  headers.addReference(config.header_name, kept);
  return kept;
}

void EchoRequestId(const RequestIdConfig& config, std::string_view id, HeaderMap& headers) {
  headers.remove(config.header_name);
  // The id's bytes are the request head's, which outlives the response head's encoding.
  headers.addReference(config.header_name, id);
}

Tracer::Options Tracer::BuildOptions(const config::v1::Tracing& p) {
  Options o;
  if (p.has_random_sampling()) o.random_sampling = p.random_sampling().value();
  o.collector_cluster = p.collector_cluster();
  if (!p.collector_path().empty()) o.collector_path = p.collector_path();
  o.collector_authority = p.collector_authority();
  if (!p.service_name().empty()) o.service_name = p.service_name();
  if (p.max_batch() != 0) o.max_batch = p.max_batch();
  if (p.has_flush_interval()) {
    o.flush_interval =
        std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(p.flush_interval()));
  }
  if (p.has_export_timeout()) {
    o.export_timeout =
        std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(p.export_timeout()));
  }
  return o;
}

namespace {
uint64_t SamplingThreshold(double percent) {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return UINT64_MAX;
  // 2^64 * percent / 100, through a double: a uniform draw below it has that probability
  // (to 2^-53).
  return static_cast<uint64_t>(std::ldexp(percent / 100.0, 64));
}
}  // namespace

Tracer::Tracer(Options options, TracingStats stats)
    : options_(std::move(options)),
      stats_(stats),
      sampling_threshold_(SamplingThreshold(options_.random_sampling)),
      sample_all_(options_.random_sampling >= 100),
      worker_key_(network::WorkerLocals::NewKey()) {
  std::string& p = export_prefix_;
  p.append("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  Attributes(p).string("service.name", options_.service_name);
  p.append("]},\"scopeSpans\":[{\"scope\":{\"name\":\"sluice\"},\"spans\":[");
}

std::shared_ptr<const Tracer> Tracer::Create(Options options, stats::Store& store,
                                             std::string_view stat_prefix) {
  // "tracing.<stat_prefix>.<leaf>" in family "tracing.<leaf>", tagged as the manager's own.
  const stats::Scope scope =
      stats::Scope(store).tagged("tracing", "http_conn_manager_prefix", stat_prefix);
  auto counter = [&](const char* name) -> stats::Counter& { return scope.counter(name); };
  TracingStats stats{counter("spans_sampled"), counter("spans_exported"), counter("spans_dropped"),
                     counter("export_failures")};
  return std::shared_ptr<const Tracer>(new Tracer(std::move(options), stats));
}

std::unique_ptr<ActiveSpan> Tracer::onRequestHeaders(HeaderMap& headers) const {
  // One pass over the fields for both names (their lengths differ: most fields are skipped on
  // their length).
  const HeaderMap::Entry* traceparent_field = nullptr;
  size_t traceparents = 0;
  size_t tracestates = 0;
  const HeaderMap::Entry* tracestate_field = nullptr;
  for (const HeaderMap::Entry& e : headers.entries()) {
    if (e.name.size() == kTraceparent.size() && HeaderNameEquals(e.name, kTraceparent)) {
      traceparent_field = &e;
      ++traceparents;
    } else if (e.name.size() == kTracestate.size() && HeaderNameEquals(e.name, kTracestate)) {
      if (tracestate_field == nullptr) tracestate_field = &e;
      ++tracestates;
    }
  }
  // §3.2: more than one traceparent field is as invalid as a malformed one.
  std::optional<tracing::TraceParent> parent;
  if (traceparents == 1) parent = tracing::ParseTraceparent(traceparent_field->value);
  bool sampled;
  tracing::TraceId trace_id;
  std::string_view tracestate_view;
  std::string tracestate_joined;
  if (parent.has_value()) {
    // Parent-based: the caller's decision, both ways.
    sampled = parent->sampled();
    trace_id = parent->trace_id;
    // Several tracestate fields are one list (RFC 9110 §5.3).
    if (tracestates > 1) {
      for (std::string_view v : headers.getAll(kTracestate)) {
        if (!tracestate_joined.empty()) tracestate_joined.push_back(',');
        tracestate_joined.append(v);
      }
      tracestate_view = tracestate_joined;
    } else if (tracestate_field != nullptr) {
      tracestate_view = tracestate_field->value;
    }
  } else {
    sampled = sample_all_ || tracing::RandomU64() < sampling_threshold_;
    trace_id = tracing::NewTraceId();
  }
  const tracing::SpanId span_id = tracing::NewSpanId();
  char traceparent[tracing::kTraceparentSize];
  tracing::FormatTraceparent(trace_id, span_id, sampled ? kSampledFlag : 0, traceparent);
  std::unique_ptr<ActiveSpan> span;
  const bool keep_tracestate =
      !tracestate_view.empty() && tracing::IsValidTracestate(tracestate_view);
  if (sampled) {
    span = std::make_unique<ActiveSpan>();
    span->trace_id = trace_id;
    span->span_id = span_id;
    if (parent.has_value()) {
      span->parent_id = parent->parent_id;
      span->has_parent = true;
    }
    if (keep_tracestate) span->tracestate.assign(tracestate_view);
  }
  // Changing the map last: the views above point into it (into its bytes, which stay).
  if (tracestates != 0 && !keep_tracestate) {
    headers.remove(kTracestate);
  } else if (!tracestate_joined.empty()) {
    headers.set(kTracestate, tracestate_joined);
  }
  if (traceparents != 0) headers.remove(kTraceparent);
  headers.addReference(kTraceparent,
                       headers.keep(std::string_view(traceparent, sizeof(traceparent))));
  return span;
}

void Tracer::AppendSpanJson(const ActiveSpan& span, const SpanEnd& end,
                            std::chrono::system_clock::time_point end_time, std::string& out) {
  const StreamInfo& info = end.info;
  const RequestHead* request = end.request;
  std::string_view method = request != nullptr ? request->method : std::string_view();
  std::string_view path = end.path;
  if (path.empty() && request != nullptr) path = request->path;
  path = path.substr(0, path.find('?'));
  out.append("{\"traceId\":");
  AppendHexId(span.trace_id.data(), span.trace_id.size(), out);
  out.append(",\"spanId\":");
  AppendHexId(span.span_id.data(), span.span_id.size(), out);
  if (span.has_parent) {
    out.append(",\"parentSpanId\":");
    AppendHexId(span.parent_id.data(), span.parent_id.size(), out);
  }
  if (!span.tracestate.empty()) {
    out.append(",\"traceState\":");
    json::AppendString(out, span.tracestate);
  }
  // "<METHOD> <route name or path>".
  out.append(",\"name\":\"");
  json::AppendEscaped(out, method.empty() ? std::string_view("HTTP") : method);
  out.push_back(' ');
  json::AppendEscaped(out, !info.route_name.empty() ? std::string_view(info.route_name) : path);
  out.push_back('"');
  out.append(",\"kind\":2,\"startTimeUnixNano\":");  // SPAN_KIND_SERVER
  AppendNanos(span.start, out);
  out.append(",\"endTimeUnixNano\":");
  AppendNanos(end_time < span.start ? span.start : end_time, out);
  out.append(",\"attributes\":[");
  Attributes a(out);
  if (!method.empty()) a.string("http.request.method", method);
  if (!path.empty()) a.string("url.path", path);
  a.string("url.scheme", info.scheme());
  if (info.response_code != 0) a.integer("http.response.status_code", info.response_code);
  if (request != nullptr) {
    if (const HeaderMap::Entry* ua = request->headers.get(KnownHeader::kUserAgent); ua != nullptr) {
      a.string("user_agent.original", ua->value);
    }
  }
  if (info.downstream_remote.family() != 0) a.string("client.address", info.downstream_remote.ip());
  a.string("network.protocol.version", ProtocolVersion(info.protocol));
  if (!info.cluster_name.empty()) a.string("sluice.upstream.cluster", info.cluster_name);
  if (!span.upstream_host.empty()) a.string("sluice.upstream.host", span.upstream_host);
  if (info.response_flags != 0) {
    a.string("sluice.response_flags", ResponseFlagsToString(info.response_flags));
  }
  if (!info.request_id.empty()) a.string("sluice.request_id", info.request_id);
  out.push_back(']');
  // OpenTelemetry's HTTP server spans: ERROR for 5xx (and for a stream cut short), 4xx unset.
  if (info.response_code >= 500 || info.response_code == 0 ||
      (info.response_flags & kResetFlags) != 0) {
    out.append(",\"status\":{\"code\":2");  // STATUS_CODE_ERROR
    if (!info.response_details.empty()) {
      out.append(",\"message\":");
      json::AppendString(out, info.response_details);
    }
    out.push_back('}');
  }
  out.push_back('}');
}

void Tracer::onStreamEnd(const ActiveSpan& span, const SpanEnd& end,
                         network::FilterContext& context) const {
  stats_.spans_sampled.inc();
  network::WorkerLocals* locals = context.workerLocals();
  CalloutClient* client = context.calloutClient();
  SpanBatch* batch = nullptr;
  if (locals != nullptr && client != nullptr) {
    batch = locals->getOrCreate<SpanBatch>(
        worker_key_, [&] { return std::make_unique<SpanBatch>(shared_from_this(), *client); });
  }
  if (batch == nullptr || batch->full()) {
    stats_.spans_dropped.inc();
    return;
  }
  AppendSpanJson(span, end, std::chrono::system_clock::now(), batch->append());
  batch->added();
}

}  // namespace sluice::http
