#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/filter.h"
#include "source/http/upstream.h"
#include "source/upstream/cluster.h"
#include "source/upstream/conn_pool.h"

namespace sluice::router {

// Where and how a stream goes upstream: the terminal decision a filter (the router plugin)
// makes through sl_host_set_upstream (http::UpstreamSpec), with its cluster found. The core
// carries it out (host, pooled connection, both directions streamed).
struct UpstreamTarget {
  const upstream::Cluster* cluster = nullptr;
  // Whole exchange, from the end of the request to the end of the response; 0: none.
  std::chrono::milliseconds timeout{0};
  // From the end of the request to the response head; 0: none. For a tunnel: the wait for the
  // upstream to answer (the tunnel's life has no bound but its idle timeout).
  std::chrono::milliseconds response_headers_timeout{0};
  // A request body up to this size is read whole before a connection is taken (a slow upload
  // then holds no upstream connection); larger ones stream. 0: always streamed.
  uint64_t request_buffer_bytes = 0;
  // Longest silence of the upstream while a response is awaited or streams (nginx's
  // proxy_read_timeout; the cluster's read_timeout unless the route set one); 0: none.
  std::chrono::milliseconds idle_timeout{0};
  // Each attempt, from the later of its start and the end of the request; 0: none.
  std::chrono::milliseconds per_try_timeout{0};
  // The wait for a connection, per attempt (nginx's proxy_connect_timeout beside the
  // cluster's own connect timeout); 0: the cluster's alone.
  std::chrono::milliseconds connect_timeout{0};
  // The longest the upstream may take no request body while some waits (nginx's
  // proxy_send_timeout); 0: none.
  std::chrono::milliseconds send_timeout{0};
  std::string hash_key;
  // CONNECT ends here (SL_UPSTREAM_TERMINATE_CONNECT): a TCP connection carries the tunnel.
  bool terminate_connect = false;
};

// What both kinds of exchange work with: the stream to report to, its worker's dispatcher and
// clusters, the filter's decision, and how much of the request it may hold.
class ExchangeBase : public http::UpstreamExchange {
 protected:
  ExchangeBase(http::UpstreamRequestCallbacks& callbacks, event::Dispatcher& dispatcher,
               upstream::WorkerClusters& clusters, const UpstreamTarget& target,
               uint32_t buffer_limit)
      : callbacks_(callbacks),
        dispatcher_(dispatcher),
        clusters_(clusters),
        target_(target),
        buffer_limit_(buffer_limit) {}

  http::UpstreamRequestCallbacks& callbacks_;
  event::Dispatcher& dispatcher_;
  upstream::WorkerClusters& clusters_;
  const UpstreamTarget& target_;
  const uint32_t buffer_limit_;
};

// One stream's exchange with an upstream host: takes a pooled connection, sends the request
// (buffering the body, bounded, until the connection is ready), passes the response back, and
// maps failures to typed errors (http::UpstreamErrorKind: 502, 503, 504 with a response flag).
// An exchange is a series of attempts: the core's own transparent retry (a stale keep-alive
// connection, a refused stream) and, when a filter enabled retries, the attempts its policy
// asks for — the request body kept, bounded, until the response starts; each attempt with its
// own timeouts, on another host when the cluster has one.
class UpstreamRequest : public ExchangeBase,
                        public http::ResponseDecoder,
                        public upstream::PoolCallbacks,
                        private event::DeadlineCallbacks {
 public:
  UpstreamRequest(http::UpstreamRequestCallbacks& callbacks, event::Dispatcher& dispatcher,
                  upstream::WorkerClusters& clusters, const UpstreamTarget& target,
                  uint32_t buffer_limit);
  // Withdraws a pending request or abandons an exchange in progress.
  ~UpstreamRequest() override;

  // The request. `head` must live until the response ends (the stream owns it). `tunnel`: an
  // Upgrade or CONNECT (the route timeout bounds only the wait for the upstream's answer: a
  // tunnel lives as long as its ends keep it busy; the idle timeout counts traffic either way).
  void start(http::RequestHead& head, bool end_stream, bool tunnel) override;
  void sendData(Buffer& data, bool end_stream) override;
  void sendTrailers(const http::HeaderMap& trailers) override;
  // Withdraws a pending request or abandons an exchange in progress.
  void reset() override;
  void readDisable(bool disable) override;
  // Report every attempt to UpstreamRequestCallbacks::onUpstreamAttemptDone (before start()).
  void observeAttempts() { observe_ = true; }
  // Record the last attempt's host and timings there (the stream's info; before start()).
  void recordInto(http::UpstreamInfo* info) { info_ = info; }
  // Keep the request for the attempts a filter's retry policy asks for (before start()).
  bool enableRetries(const http::RetryOptions& options) override;

  // ResponseDecoder
  void decodeHeaders(std::unique_ptr<http::ResponseHead> head, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(std::unique_ptr<http::HeaderMap> trailers) override;
  void onUpstreamFailure(http::UpstreamFailure failure, bool response_started) override;
  // The upstream takes the body slower than the client sends it.
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // upstream::PoolCallbacks
  void onPoolReady(http::RequestEncoder& encoder, const upstream::PoolStreamInfo& info) override;
  void onPoolFailure(upstream::PoolFailure failure) override;

 private:
  // What a retrying stream keeps beyond the others (allocated only for those).
  struct RetryState {
    http::RetryOptions options;
    uint64_t max_replay_bytes = 0;
    // The hosts of earlier attempts, which the next one avoids (the most recent few).
    static constexpr size_t kMaxExcluded = 4;
    const upstream::Host* excluded[kMaxExcluded] = {};
    size_t excluded_count = 0;
    uint32_t retries = 0;  // attempts the policy asked for, made
    // Request trailers, kept for a replay.
    std::unique_ptr<http::HeaderMap> trailers;
  };
  // What the attempt timer (idle_deadline_) is measuring now.
  enum class AttemptTimer : uint8_t { kIdle, kConnect, kBackoff };

  void requestComplete();
  // Arms the deadlines of the attempt under way that run from the end of the request.
  void armAttemptDeadlines();
  // Starts an attempt: picks a host (another than the earlier attempts' when retrying) and
  // asks its pool for a stream (`fresh`: on a connection that carried none).
  void connect(bool fresh);
  // The request is sent again, once, on a new connection, when everything sent so far was
  // kept: a reused HTTP/1 connection failed before any response byte and the method is
  // idempotent (RFC 9110 §9.2.2; a proxy must not retry others, RFC 9112 §9.3.1), or the
  // upstream refused the stream unprocessed (HTTP/2 REFUSED_STREAM or GOAWAY: any method).
  // Counts against the cluster's max_retries. True when it was.
  bool retryOnFreshConnection(bool refused);
  // Keeps a copy of request bytes going out until the response starts, where a retry could
  // need them (bounded; past the bound the request is not replayable).
  void keepForReplay(const Buffer& data);
  // The attempt under way ended with `kind`: another attempt if the retry policy asks for one
  // and the budget allows, else the stream fails with it.
  void attemptFailed(http::UpstreamErrorKind kind);
  // Asks the retry policy about an attempt that ended (`attempt`); true when another attempt
  // is on its way (this one dropped).
  bool maybeRetry(http::UpstreamAttempt& attempt);
  // Whether the cluster's max_retries and the policy's budget allow one more retry (counted
  // as overflow when not).
  bool retryAllowed(const http::RetryDecision& decision);
  // Drops the attempt under way and arms the next one after `delay`.
  void scheduleRetry(std::chrono::milliseconds delay, const http::UpstreamAttempt& attempt);
  // Ends the attempt under way without a word to the stream (its stream reset, its pending
  // request withdrawn, its deadlines off).
  void dropAttempt();
  void fail(http::UpstreamErrorKind kind);
  // Tells outlier detection what the attempt's host did (upstream::ReportHostResult).
  void reportFailure(http::UpstreamErrorKind kind);
  // The attempt under way, as observers and the retry policy see it.
  http::UpstreamAttempt makeAttempt(http::UpstreamAttempt::Outcome outcome,
                                    http::UpstreamErrorKind error);
  // Ends the attempt under way for the observer (once per attempt; nothing when not observed).
  void attemptDone(http::UpstreamAttempt::Outcome outcome,
                   http::UpstreamErrorKind error = http::UpstreamErrorKind::kNone);
  void armIdle();
  void finished();
  // Records the attempt's time in cluster.<name>.upstream_rq_time (its response ended).
  void responseTime();
  // The retry in flight is over (the cluster's retries resource).
  void releaseRetry();
  // Sends request trailers (counting those HTTP/1 cannot carry).
  void encodeTrailers(const http::HeaderMap& trailers);
  void onDeadline(event::Deadline& deadline) override;
  // Stops buffering: takes a connection now for what is held and what follows.
  void stopBuffering();

  upstream::Cancellable* pending_ = nullptr;
  // The stream on an upstream connection, from onPoolReady until the response ended or failed.
  http::RequestEncoder* encoder_ = nullptr;
  const upstream::Host* host_ = nullptr;
  http::UpstreamInfo* info_ = nullptr;
  std::unique_ptr<RetryState> retry_;
  http::RequestHead* head_ = nullptr;
  // Request parts that arrived before the connection was ready.
  Buffer held_body_;
  std::unique_ptr<http::HeaderMap> held_trailers_;
  // What went out and may have to go again (see keepForReplay).
  Buffer replay_body_;
  // The route's whole-exchange timeout, capped by a gRPC call's grpc-timeout.
  std::chrono::milliseconds timeout_{0};
  // Each attempt's (the retry options' or the route's).
  std::chrono::milliseconds per_try_timeout_{0};
  // ResponseFlag bits the stream ends with beyond the error's own (URX).
  uint64_t extra_flags_ = 0;
  uint32_t attempts_ = 0;
  http::Protocol protocol_ = http::Protocol::kHttp11;  // ... of the attempt's connection
  bool reused_ = false;         // ... on a connection that carried a stream before
  bool retry_counted_ = false;  // a retry is in flight (the cluster's retries resource)
  bool replayable_ = false;
  bool idempotent_ = false;
  bool keep_for_replay_ = false;  // this attempt's bytes are kept (keepForReplay)
  bool retried_ = false;          // the transparent retry was made
  // Reading the request body whole before connecting (UpstreamTarget::request_buffer_bytes).
  bool buffering_body_ = false;
  bool request_end_ = false;  // the downstream sent its last part
  bool tunnel_ = false;
  bool timeout_from_request_ = false;  // timeout_ is a gRPC call's grpc-timeout
  bool response_started_ = false;      // a response head was passed on
  bool response_done_ = false;
  bool failed_ = false;
  bool downstream_paused_ = false;  // we asked the stream to stop reading the client
  bool waiting_retry_ = false;      // between attempts (the backoff)
  AttemptTimer attempt_timer_ = AttemptTimer::kIdle;
  // Attempt observation (observeAttempts): only then are the clock read and the host named.
  bool observe_ = false;
  bool attempt_open_ = false;  // an attempt started and was not reported yet
  uint16_t attempt_status_ = 0;
  uint64_t attempt_sent_ = 0;
  uint64_t attempt_received_ = 0;
  std::chrono::steady_clock::time_point attempt_start_;
  // The attempt's start by the event loop's clock (cluster.<name>.upstream_rq_time).
  std::chrono::steady_clock::time_point rq_start_;
  std::string attempt_host_;
  uint32_t read_disabled_ = 0;  // the downstream asked us to stop reading the upstream
  // Embedded: no timer object or libevent timer per request.
  event::Deadline timeout_deadline_;
  event::Deadline headers_deadline_;
  // The upstream's silence (read timeout); while waiting for a connection, the route's connect
  // timeout; between attempts, the backoff (AttemptTimer).
  event::Deadline idle_deadline_;
  event::Deadline per_try_deadline_;
  event::Deadline send_deadline_;
};

}  // namespace sluice::router
