#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/container/flat_hash_map.h"
#include "source/common/buffer.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/header_map.h"
#include "source/http/response_flags.h"
#include "source/http/upstream_error.h"
#include "source/network/address.h"
#include "source/network/transport_socket.h"

namespace sluice::http {

class CalloutClient;

// What a filter returns from a headers hook.
enum class FilterHeadersStatus {
  kContinue,       // run the next filter
  kStopIteration,  // pause the chain here; resume with continueDecoding()/continueEncoding()
};

// What a filter returns from a data hook.
enum class FilterDataStatus {
  kContinue,
  // Pause and keep this data (and what follows) in the stream's buffer, up to the buffer
  // limit (413 on requests, 500 on responses beyond it); the filter sees it all when it resumes.
  kStopIterationAndBuffer,
  // Pause without buffering: the filter took what it wanted from `data`.
  kStopIterationNoBuffer,
};

enum class FilterTrailersStatus { kContinue, kStopIteration };

// A route chosen for a stream by the filter of its chain that defines routes (the plugin
// layer's sl_type_route derives from it): http only carries it between the stream's filters.
struct RouteHandle {
  // What the connection manager counts at the end of each stream whose route this was
  // ("route.<name>.*": rq_total, rq_<N>xx by the response sent, rq_time in ms); null when the
  // route has none.
  struct Stats {
    stats::Counter& rq_total;
    std::array<stats::Counter*, 5> rq_xx;
    stats::Histogram& rq_time;
  };
  const Stats* stats = nullptr;

 protected:
  ~RouteHandle() = default;
};

// The filter of a chain that defines routes (the router), asked for the stream's route the
// first time a filter of the stream needs it (Envoy's route cache, filled lazily).
class RouteSelector {
 public:
  // The route for the request as it is now, or nullptr when none matches.
  virtual const RouteHandle* selectRoute() = 0;

 protected:
  ~RouteSelector() = default;
};

// The upstream side of a stream, as the router layer reports it (the last attempt's): its
// host and when the request and response crossed the upstream connection (the dispatcher's
// clock: an event batch's time; unset points are zero). For the access log's
// %UPSTREAM_HOST%, %UPSTREAM_SERVICE_TIME% and %RESPONSE_DURATION%: recorded only when the
// connection manager has access logs (UpstreamOptions::upstream_info), so that a stream that
// nobody logs pays nothing for it.
struct UpstreamInfo {
  network::Address host;                           // family() 0 when no host was picked
  std::chrono::steady_clock::time_point first_tx;  // the request head handed to the connection
  std::chrono::steady_clock::time_point last_tx;   // ... the request's end
  std::chrono::steady_clock::time_point first_rx;  // the response head received
  std::chrono::steady_clock::time_point last_rx;   // ... the response's end
};

// Per-stream facts filters share: addresses, protocol, and a metadata map that one filter
// writes and later ones read (key -> bytes).
struct StreamInfo {
  network::Address downstream_remote;
  network::Address downstream_local;
  Protocol protocol = Protocol::kHttp11;
  // The downstream TLS session (lives as long as the connection, which outlives its streams);
  // null for plaintext.
  const network::SslConnectionInfo* downstream_ssl = nullptr;
  // "https" over TLS, else "http": what the client used, for :scheme and X-Forwarded-Proto.
  std::string_view scheme() const { return downstream_ssl != nullptr ? "https" : "http"; }
  std::chrono::steady_clock::time_point start;
  // The start on the wall clock (for logs): set when the connection manager has access logs
  // (the clock is not read per stream otherwise); zero when not set.
  std::chrono::system_clock::time_point start_wall;
  uint16_t response_code = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  // Why the stream ended the way it did: ResponseFlag bits (0 when normal), and the first
  // detail given (the core's reason, e.g. "upstream_connect_timeout", or a local reply's).
  uint64_t response_flags = 0;
  std::string response_details;
  // Sets `flag`, and `details` unless some are there already (the first cause is kept).
  void setResponseFlag(ResponseFlag flag, std::string_view details) {
    response_flags |= FlagBit(flag);
    if (response_details.empty()) response_details = details;
  }
  void setResponseDetails(std::string_view details) {
    if (response_details.empty()) response_details = details;
  }
  // Upstream attempts made (retries included).
  uint32_t upstream_attempts = 0;
  // The request's id (HttpConnectionManager.request_id; empty when not configured): a view into
  // the request head's storage, valid as long as the stream.
  std::string_view request_id;
  // Set with the upstream decision (DecoderFilterCallbacks::setUpstream).
  std::string route_name;
  std::string cluster_name;
  UpstreamInfo upstream;
  absl::flat_hash_map<std::string, std::string> metadata;
  // The route: chosen by `route_selector` (set by that filter when the stream is created) on
  // first use, kept until a filter clears it (route_selected false).
  RouteSelector* route_selector = nullptr;
  const RouteHandle* route = nullptr;
  bool route_selected = false;
};

// What every filter may do with its stream.
class StreamFilterCallbacks {
 public:
  virtual ~StreamFilterCallbacks() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual StreamInfo& streamInfo() = 0;
  virtual uint64_t streamId() const = 0;
  // The downstream connection's id (as in logs: "[C<id>]").
  virtual uint64_t connectionId() const = 0;
  // Ends the stream now: HTTP/1 closes the connection.
  virtual void resetStream() = 0;
  // True once the stream is over (response sent or reset): nothing may change any more.
  virtual bool streamCompleted() const = 0;
  // The stream's heads and trailers as far as they exist (nullptr before that).
  virtual RequestHead* requestHeadIfAny() = 0;
  virtual ResponseHead* responseHeadIfAny() = 0;
  virtual HeaderMap* requestTrailers() = 0;
  virtual HeaderMap* responseTrailers() = 0;
  // The worker's callout client (nullptr when the stream's context has none), and the stream's
  // buffer limit (what one direction may hold buffered; callout bodies are bounded by it too).
  virtual CalloutClient* calloutClient() = 0;
  virtual uint32_t bufferLimit() const = 0;
  // Trailers for a message that has none, created from the filter's data hook that carried the
  // direction's end (end_stream): that data then goes on with end_stream false and the trailers
  // follow it from the next filter. nullptr when the direction's end is not at this filter now.
  virtual HeaderMap* addTrailers(bool request) = 0;
};

// How one upstream attempt of a stream ended (StreamFilter::onUpstreamAttemptDone).
struct UpstreamAttempt {
  enum class Outcome : uint8_t {
    kResponse,        // the response arrived whole
    kConnectFailure,  // no connection (refused, connect timeout, no host)
    kReset,           // the upstream reset or closed before the response ended
    kTimeout,         // a route timeout (whole, headers or idle)
    kOverflow,        // pool full / circuit breaker
    kProtocolError,   // a malformed response
    kCancelled,       // the stream ended first
  };
  Outcome outcome = Outcome::kResponse;
  uint16_t status = 0;  // the response's, when its head arrived
  uint32_t attempt = 1;
  std::string_view host;  // "ip:port", empty when no connection was made
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  std::chrono::microseconds duration{0};
  UpstreamErrorKind error = UpstreamErrorKind::kNone;
  RetrySafety safety = RetrySafety::kSafe;
  // The response head, for the retry decision only (StreamFilter::onUpstreamRetry).
  const HeaderMap* response_headers = nullptr;
};

// Retries of a stream, as the filter that enables them asks (DecoderFilterCallbacks::
// enableRetries); the core keeps the request and makes new attempts.
struct RetryOptions {
  // Each attempt's bound, from the later of its start and the end of the request; 0: the
  // route's per_try_timeout (UpstreamSpec), none when that is 0 too.
  std::chrono::milliseconds per_try_timeout{0};
  // Request body bytes kept for a retry until the response starts; 0: the stream's buffer
  // limit.
  uint64_t max_replay_bytes = 0;
  // x-sluice-attempt-count on each attempt's request.
  bool attempt_count_header = false;
};

// What the deciding filter asks when it wants another attempt.
struct RetryDecision {
  std::chrono::milliseconds delay{0};
  // Retry budget: retries in flight in the cluster below max(min_retry_concurrency,
  // budget_percent% of its active and pending requests); 0 percent: no budget.
  double budget_percent = 0;
  uint32_t min_retry_concurrency = 0;
};
enum class RetryVerdict : uint8_t { kNo, kYes, kLimitExceeded };

// The terminal decision for a stream (see DecoderFilterCallbacks::setUpstream).
struct UpstreamSpec {
  std::string_view cluster;
  std::string_view route_name;
  // Whole exchange from the end of the request; 0: none.
  std::chrono::milliseconds timeout{0};
  // From the end of the request to the response head (a tunnel's answer); 0: none.
  std::chrono::milliseconds response_headers_timeout{0};
  // The per-attempt bounds (nginx's proxy_read/connect/send_timeout and Envoy's per-try
  // timeout): 0 takes the cluster's (read_timeout, connect_timeout, send_timeout; none for
  // per_try), kNoTimeout means none whatever the cluster says.
  static constexpr std::chrono::milliseconds kNoTimeout = std::chrono::milliseconds::max();
  // Longest silence of the upstream.
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::milliseconds per_try_timeout{0};
  std::chrono::milliseconds connect_timeout{0};
  std::chrono::milliseconds send_timeout{0};
  std::string_view hash_key;
  // A CONNECT request ends here: a TCP connection to a host of the cluster carries the tunnel.
  bool terminate_connect = false;
  // Bodies up to this many bytes are read whole before a connection is taken; 0: streamed.
  uint64_t request_buffer_bytes = 0;
};

class DecoderFilterCallbacks : public virtual StreamFilterCallbacks {
 public:
  // Once the request has passed every filter, send it to a host of `spec.cluster` over a pooled
  // connection and stream the response back through the response filters. False (nothing
  // changes) when the config has no such cluster. A later call replaces an earlier one.
  virtual bool setUpstream(const UpstreamSpec& spec) = 0;
  // Makes the stream retryable, this filter the one that decides (StreamFilter::
  // onUpstreamRetry): from a request hook, before the upstream request starts. False when
  // another filter already did, the upstream started, or the stream is a tunnel.
  virtual bool enableRetries(const RetryOptions& options) = 0;
  // Resume the request path after kStopIteration / kStopIterationAndBuffer. False (nothing
  // happens) when the request path is not stopped at this filter.
  virtual bool continueDecoding() = 0;
  // The request body buffered so far by kStopIterationAndBuffer (nullptr when none).
  virtual Buffer* decodingBuffer() = 0;
  // Answer the request without going further: runs the response through the encoder filters.
  // `modify` may add headers. Ignored once a response has started (the stream is reset then).
  virtual void sendLocalReply(uint16_t status, std::string_view body,
                              const std::function<void(HeaderMap&)>& modify = nullptr) = 0;
  // For the filter that produces the response (direct response, router): sends it through the
  // encoder filters and out.
  virtual void encodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(std::unique_ptr<HeaderMap> trailers) = 0;
  virtual RequestHead& requestHead() = 0;
};

class EncoderFilterCallbacks : public virtual StreamFilterCallbacks {
 public:
  // As continueDecoding(), for the response path.
  virtual bool continueEncoding() = 0;
  virtual Buffer* encodingBuffer() = 0;
};

// A filter on the request path. Runs in config order.
class StreamDecoderFilter {
 public:
  virtual ~StreamDecoderFilter() = default;
  virtual void setDecoderFilterCallbacks(DecoderFilterCallbacks& callbacks) = 0;
  virtual FilterHeadersStatus decodeHeaders(RequestHead& head, bool end_stream) = 0;
  virtual FilterDataStatus decodeData(Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus decodeTrailers(HeaderMap& trailers) = 0;
};

// A filter on the response path. Runs in reverse config order.
class StreamEncoderFilter {
 public:
  virtual ~StreamEncoderFilter() = default;
  virtual void setEncoderFilterCallbacks(EncoderFilterCallbacks& callbacks) = 0;
  virtual FilterHeadersStatus encodeHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual FilterDataStatus encodeData(Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus encodeTrailers(HeaderMap& trailers) = 0;
};

// The hooks of a StreamFilter, as bits (see StreamFilter::hooks()).
enum FilterHook : uint32_t {
  kHookDecodeHeaders = 1u << 0,
  kHookDecodeData = 1u << 1,
  kHookDecodeTrailers = 1u << 2,
  kHookEncodeHeaders = 1u << 3,
  kHookEncodeData = 1u << 4,
  kHookEncodeTrailers = 1u << 5,
  kHookStreamComplete = 1u << 6,
  kAllHooks = (1u << 7) - 1,
  // Not in kAllHooks: only a filter that asks for it makes the core measure upstream attempts.
  kHookUpstreamAttempt = 1u << 7,
};

// Both paths, with pass-through defaults; and the stream-end hook (log phase).
class StreamFilter : public StreamDecoderFilter, public StreamEncoderFilter {
 public:
  // The hooks this filter needs called (a FilterHook mask), asked once per stream after the
  // callbacks are set. The chain skips the others as if they had continued — except the data
  // and trailers of a direction this filter holds stopped, which it always gets — so a long
  // chain of filters that each look at one thing stays cheap. Default: every hook.
  virtual uint32_t hooks() const { return kAllHooks; }

  void setDecoderFilterCallbacks(DecoderFilterCallbacks& callbacks) override {
    decoder_callbacks_ = &callbacks;
  }
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    return FilterHeadersStatus::kContinue;
  }
  FilterDataStatus decodeData(Buffer&, bool) override { return FilterDataStatus::kContinue; }
  FilterTrailersStatus decodeTrailers(HeaderMap&) override {
    return FilterTrailersStatus::kContinue;
  }
  void setEncoderFilterCallbacks(EncoderFilterCallbacks& callbacks) override {
    encoder_callbacks_ = &callbacks;
  }
  FilterHeadersStatus encodeHeaders(ResponseHead&, bool) override {
    return FilterHeadersStatus::kContinue;
  }
  FilterDataStatus encodeData(Buffer&, bool) override { return FilterDataStatus::kContinue; }
  FilterTrailersStatus encodeTrailers(HeaderMap&) override {
    return FilterTrailersStatus::kContinue;
  }
  // After the response is complete or the stream was reset (logging, metrics).
  virtual void onStreamComplete() {}
  // After each upstream attempt (observe only), for filters whose hooks() has
  // kHookUpstreamAttempt.
  virtual void onUpstreamAttemptDone(const UpstreamAttempt&) {}
  // For the filter that enabled retries: an attempt ended in a way the core can still retry
  // (a response head not passed on yet, or a failure). kYes with `decision` filled asks for
  // another attempt.
  virtual RetryVerdict onUpstreamRetry(const UpstreamAttempt&, RetryDecision&) {
    return RetryVerdict::kNo;
  }

 protected:
  DecoderFilterCallbacks* decoder_callbacks_ = nullptr;
  EncoderFilterCallbacks* encoder_callbacks_ = nullptr;
};
using StreamFilterPtr = std::unique_ptr<StreamFilter>;

// Creates one configured filter for each new stream (called on a worker; it must only read its
// captured, immutable config). A filter whose size is known up front is built in place, inside
// the stream's own allocation (one allocation per stream for the whole chain rather than one
// per filter: a chain of ten filters would otherwise cost ten mallocs and frees per request);
// any other is allocated on its own.
class StreamFilterFactory {
 public:
  StreamFilterFactory() = default;
  // A factory of heap-allocated filters.
  template <class F,
            class = std::enable_if_t<std::is_invocable_r_v<StreamFilterPtr, const F&> &&
                                     !std::is_same_v<std::decay_t<F>, StreamFilterFactory>>>
  StreamFilterFactory(F create) : create_(std::move(create)) {}  // NOLINT: implicit on purpose

  // A factory of filters built in place: `construct(storage)` builds one in `size` bytes
  // (aligned to kInPlaceAlign) and returns it; its owner destroys it by calling its destructor,
  // never `delete`.
  static constexpr size_t kInPlaceAlign = 16;
  static StreamFilterFactory InPlace(size_t size,
                                     std::function<StreamFilter*(void* storage)> construct) {
    StreamFilterFactory f;
    f.size_ = (size + kInPlaceAlign - 1) & ~(kInPlaceAlign - 1);
    f.construct_ = std::move(construct);
    return f;
  }

  // Bytes an in-place filter needs (a multiple of kInPlaceAlign); 0 for a heap filter.
  size_t inPlaceSize() const { return size_; }
  StreamFilter* construct(void* storage) const { return construct_(storage); }
  StreamFilterPtr create() const { return create_(); }

 private:
  std::function<StreamFilterPtr()> create_;
  std::function<StreamFilter*(void*)> construct_;
  size_t size_ = 0;
};

}  // namespace sluice::http
