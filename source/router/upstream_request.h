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
  // Longest silence of the upstream while a response is awaited or streams; 0: none.
  std::chrono::milliseconds idle_timeout{0};
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
// maps failures to 502 (reset, protocol error), 503 (no connection) and 504 (timeout).
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
  void requestComplete();
  // Picks a host and asks its pool for a connection (`fresh`: not an idle one).
  void connect(bool fresh);
  // The request is sent again, once, on a new connection, when everything sent so far was
  // kept: a reused HTTP/1 connection failed before any response byte and the method is
  // idempotent (RFC 9110 §9.2.2; a proxy must not retry others, RFC 9112 §9.3.1), or the
  // upstream refused the stream unprocessed (HTTP/2 REFUSED_STREAM or GOAWAY: any method).
  // Counts against the cluster's max_retries. True when it was.
  bool retryOnFreshConnection(bool refused);
  // Keeps a copy of request bytes going out until the response starts, where a retry could
  // need them: on a reused HTTP/1 connection, or on HTTP/2 (bounded by the buffer limit; past
  // it, or with trailers, the request is not replayable).
  void keepForReplay(const Buffer& data);
  void fail(uint16_t status, const char* flag, http::UpstreamAttempt::Outcome outcome);
  // Ends the attempt under way for the observer (once per attempt; nothing when not observed).
  void attemptDone(http::UpstreamAttempt::Outcome outcome);
  void armIdle();
  void finished();
  // The retry in flight is over (the cluster's retries resource).
  void releaseRetry();
  // Sends request trailers (counting those HTTP/1 cannot carry).
  void encodeTrailers(const http::HeaderMap& trailers);
  void onDeadline(event::Deadline& deadline) override;

  upstream::Cancellable* pending_ = nullptr;
  // The stream on an upstream connection, from onPoolReady until the response ended or failed.
  http::RequestEncoder* encoder_ = nullptr;
  const upstream::Host* host_ = nullptr;
  bool reused_ = false;  // ... on a connection that carried a stream before
  http::Protocol protocol_ = http::Protocol::kHttp11;  // ... of that connection
  bool retry_counted_ = false;  // a retry is in flight (the cluster's retries resource)
  http::RequestHead* head_ = nullptr;
  // Request parts that arrived before the connection was ready.
  Buffer held_body_;
  std::unique_ptr<http::HeaderMap> held_trailers_;
  // What went out on a reused connection, for a retry (see keepForReplay).
  Buffer replay_body_;
  bool replayable_ = false;
  bool idempotent_ = false;
  // The route's whole-exchange timeout, capped by a gRPC call's grpc-timeout.
  std::chrono::milliseconds timeout_{0};
  bool keep_for_replay_ = false;  // this attempt's bytes are kept (keepForReplay)
  bool retried_ = false;
  // Reading the request body whole before connecting (UpstreamTarget::request_buffer_bytes).
  bool buffering_body_ = false;
  // Stops buffering: takes a connection now for what is held and what follows.
  void stopBuffering();
  bool request_end_ = false;  // the downstream sent its last part
  bool tunnel_ = false;
  bool response_started_ = false;
  bool response_done_ = false;
  bool failed_ = false;
  bool downstream_paused_ = false;  // we asked the stream to stop reading the client
  // Attempt observation (observeAttempts): only then are the clock read and the host named.
  bool observe_ = false;
  bool attempt_open_ = false;  // an attempt started and was not reported yet
  uint16_t attempt_status_ = 0;
  uint32_t attempts_ = 0;
  uint64_t attempt_sent_ = 0;
  uint64_t attempt_received_ = 0;
  std::chrono::steady_clock::time_point attempt_start_;
  std::string attempt_host_;
  uint32_t read_disabled_ = 0;  // the downstream asked us to stop reading the upstream
  // Embedded: no timer object or libevent timer per request.
  event::Deadline timeout_deadline_;
  event::Deadline headers_deadline_;
  event::Deadline idle_deadline_;
};

}  // namespace sluice::router
