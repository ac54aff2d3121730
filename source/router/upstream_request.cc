#include "source/router/upstream_request.h"

#include <algorithm>

#include "source/common/logging.h"
#include "source/http/grpc.h"
#include "source/http/http1/parser.h"
#include "source/upstream/outlier_detection.h"

namespace sluice::router {

using http::HeaderMap;
using http::RequestEncoder;
using http::RequestHead;
using http::ResponseHead;
using http::UpstreamAttempt;
using http::UpstreamFailure;

UpstreamRequest::UpstreamRequest(http::UpstreamRequestCallbacks& callbacks,
                                 event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
                                 const UpstreamTarget& target, uint32_t buffer_limit)
    : ExchangeBase(callbacks, dispatcher, clusters, target, buffer_limit) {}

UpstreamRequest::~UpstreamRequest() {
  observe_ = false;  // the stream and its filters are going away: nobody to tell
  reset();
}

void UpstreamRequest::attemptDone(UpstreamAttempt::Outcome outcome) {
  if (!observe_ || !attempt_open_) return;
  attempt_open_ = false;
  UpstreamAttempt a;
  a.outcome = outcome;
  a.status = attempt_status_;
  a.attempt = attempts_;
  a.host = attempt_host_;
  a.bytes_sent = attempt_sent_;
  a.bytes_received = attempt_received_;
  a.duration = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - attempt_start_);
  callbacks_.onUpstreamAttemptDone(a);
}

void UpstreamRequest::reset() {
  // The stream ended with the attempt under way (client gone, reset, local reply).
  attemptDone(UpstreamAttempt::Outcome::kCancelled);
  failed_ = true;
  timeout_deadline_.cancel();
  headers_deadline_.cancel();
  idle_deadline_.cancel();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  // Mid-exchange: HTTP/2 resets the stream; HTTP/1's connection is not reused (the rest of the
  // response would be stray).
  if (encoder_ != nullptr) {
    http::RequestEncoder* encoder = encoder_;
    encoder_ = nullptr;
    encoder->resetStream();
  }
  releaseRetry();
  if (downstream_paused_) {
    downstream_paused_ = false;
    callbacks_.readDisableDownstream(false);
  }
}

void UpstreamRequest::start(RequestHead& head, bool end_stream, bool tunnel) {
  head_ = &head;
  request_end_ = end_stream;
  tunnel_ = tunnel;
  const std::string_view m = head.method;
  idempotent_ =
      m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
  replayable_ = !tunnel;
  timeout_ = target_.timeout;
  const bool grpc = http::grpc::IsGrpcRequest(head.headers);
  if (grpc) {
    // The call's own deadline caps the route's (gRPC's grpc-timeout): sluice ends it then with
    // DEADLINE_EXCEEDED rather than let the upstream work on for nobody.
    if (const http::HeaderMap::Entry* t = head.headers.get("grpc-timeout")) {
      if (auto deadline = http::grpc::ParseTimeout(t->value)) {
        if (timeout_.count() == 0 || *deadline < timeout_) {
          timeout_ = std::max(*deadline, std::chrono::milliseconds(1));
        }
      }
    }
  }
  // gRPC streams both ways at once (a bidirectional call's responses answer its messages):
  // its body is never held back for buffering.
  if (!end_stream && !tunnel && !grpc && target_.request_buffer_bytes > 0) {
    // A body announced larger than the bound streams from the start.
    uint64_t length = 0;
    const bool counted = http::http1::ParseResponseContentLength(head.headers, length);
    if (counted && length > target_.request_buffer_bytes) {
      target_.cluster->stats().upstream_rq_body_buffer_overflow.inc();
    } else {
      buffering_body_ = true;  // no connection until the body is in (or over the bound)
      return;
    }
  }
  connect(/*fresh=*/false);
  if ((end_stream || tunnel) && !failed_) requestComplete();
}

void UpstreamRequest::stopBuffering() {
  buffering_body_ = false;
  connect(/*fresh=*/false);
}

void UpstreamRequest::connect(bool fresh) {
  if (observe_) {
    attempt_open_ = true;
    ++attempts_;
    attempt_status_ = 0;
    attempt_sent_ = 0;
    attempt_received_ = 0;
    attempt_host_.clear();
    attempt_start_ = std::chrono::steady_clock::now();
  }
  upstream::LbContext lb;
  lb.hash_key = target_.hash_key;
  const upstream::WorkerClusters::PoolPick pick =
      clusters_.pickConnPool(*target_.cluster, lb, dispatcher_);
  if (pick.pool == nullptr) {
    if (pick.overflow) {
      fail(503, "upstream_overflow", UpstreamAttempt::Outcome::kOverflow);  // max_connection_pools
    } else {
      // No hosts (a DNS name that has not resolved yet).
      fail(503, "no_healthy_upstream", UpstreamAttempt::Outcome::kConnectFailure);
    }
    return;
  }
  // The attempt's host from here on: a pool failure or a timeout while connecting is its result.
  host_ = &pick.pool->host();
  // Either calls back now (a connection with room, or overflow) or later.
  upstream::Cancellable* pending = pick.pool->newStream(*this, *this, fresh);
  if (!failed_ && encoder_ == nullptr) pending_ = pending;
}

void UpstreamRequest::keepForReplay(const Buffer& data) {
  if (!replayable_ || response_started_ || !keep_for_replay_) return;
  if (replay_body_.length() + data.length() > buffer_limit_) {
    replayable_ = false;
    replay_body_.clear();
    return;
  }
  // A copy: only idempotent requests with a body on a reused connection pay it, and only until
  // the response starts.
  replay_body_.addCopy(data);
}

bool UpstreamRequest::retryOnFreshConnection(bool refused) {
  if (retried_ || !replayable_ || response_started_ || failed_) return false;
  if (!refused && !idempotent_) return false;
  upstream::Resource& retries = target_.cluster->resources().retries;
  if (!retries.canCreate()) {
    target_.cluster->stats().upstream_rq_retry_overflow.inc();
    return false;
  }
  retries.inc();
  retry_counted_ = true;
  retried_ = true;
  attemptDone(UpstreamAttempt::Outcome::kReset);  // the first attempt; the retry is the second
  if (refused) {
    target_.cluster->stats().upstream_rq_retry_refused.inc();
  } else {
    target_.cluster->stats().upstream_rq_retry_stale_connection.inc();
  }
  SLUICE_LOG(kDebug, "upstream stream to cluster %s %s before a response; retrying once",
             target_.cluster->name(), refused ? "refused" : "closed");
  encoder_ = nullptr;
  idle_deadline_.cancel();
  // Sent again from the start: what was kept, then whatever the client had not sent yet.
  replay_body_.move(held_body_);
  held_body_.move(replay_body_);
  connect(/*fresh=*/true);
  return true;
}

void UpstreamRequest::sendData(Buffer& data, bool end_stream) {
  if (failed_ || response_done_) {
    data.clear();
    return;
  }
  if (end_stream) request_end_ = true;
  if (buffering_body_) {
    held_body_.move(data);
    if (end_stream) {
      target_.cluster->stats().upstream_rq_body_buffered.inc();
      stopBuffering();
      if (!failed_) requestComplete();
    } else if (held_body_.length() > target_.request_buffer_bytes) {
      target_.cluster->stats().upstream_rq_body_buffer_overflow.inc();
      stopBuffering();
    }
    return;
  }
  if (encoder_ == nullptr) {
    // Not connected yet: keep it, bounded; past the limit stop reading the client until the
    // connection takes it.
    held_body_.move(data);
    if (held_body_.length() > buffer_limit_ && !downstream_paused_) {
      downstream_paused_ = true;
      callbacks_.readDisableDownstream(true);
    }
  } else {
    if (tunnel_) armIdle();  // a tunnel is idle only when neither side sends
    keepForReplay(data);
    attempt_sent_ += data.length();
    encoder_->encodeData(data, end_stream);
  }
  if (end_stream) requestComplete();
}

void UpstreamRequest::sendTrailers(const HeaderMap& trailers) {
  if (failed_ || response_done_) return;
  request_end_ = true;
  replayable_ = false;  // trailers are not kept for a retry
  if (encoder_ == nullptr) {
    held_trailers_ = std::make_unique<HeaderMap>();
    for (const auto& e : trailers.entries()) {
      if (!e.name.empty()) held_trailers_->add(e.name, e.value);
    }
    if (buffering_body_) {
      target_.cluster->stats().upstream_rq_body_buffered.inc();
      stopBuffering();
      if (failed_) return;
    }
  } else {
    encodeTrailers(trailers);
  }
  requestComplete();
}

void UpstreamRequest::encodeTrailers(const HeaderMap& trailers) {
  if (!trailers.empty() && protocol_ != http::Protocol::kHttp2 && !tunnel_ &&
      head_->headers.count(http::KnownHeader::kContentLength) != 0) {
    callbacks_.onUpstreamTrailersDropped();
  }
  encoder_->encodeTrailers(trailers);
}

void UpstreamRequest::requestComplete() {
  // The route's timeouts run from the end of the request (as Envoy's): a slow upload is the
  // client's time, not the upstream's. A tunnel's request is its head: they bound the wait for
  // the upstream to open it, and end once it answers.
  if (failed_ || response_started_) return;
  if (timeout_.count() > 0 && !timeout_deadline_.armed()) {
    dispatcher_.armDeadline(timeout_deadline_, timeout_, *this);
  }
  if (target_.response_headers_timeout.count() > 0 && !headers_deadline_.armed()) {
    dispatcher_.armDeadline(headers_deadline_, target_.response_headers_timeout, *this);
  }
}

void UpstreamRequest::onPoolReady(RequestEncoder& encoder, const upstream::PoolStreamInfo& info) {
  pending_ = nullptr;
  if (observe_) attempt_host_ = info.host.addressString();
  encoder_ = &encoder;
  host_ = &info.host;
  reused_ = info.reused;
  protocol_ = info.protocol;
  // What goes out is kept until the response starts where a retry may need it: a reused
  // HTTP/1 connection may turn out closed, an HTTP/2 stream may be refused.
  keep_for_replay_ =
      replayable_ && !retried_ && (info.reused || info.protocol == http::Protocol::kHttp2);
  armIdle();
  const bool headers_only = request_end_ && held_body_.empty() && !held_trailers_;
  encoder.encodeHeaders(*head_, headers_only);
  if (!headers_only && (!held_body_.empty() || (request_end_ && !held_trailers_))) {
    keepForReplay(held_body_);
    attempt_sent_ += held_body_.length();
    encoder.encodeData(held_body_, request_end_ && !held_trailers_);
  }
  if (held_trailers_) encodeTrailers(*held_trailers_);
  held_trailers_.reset();
  if (downstream_paused_) {
    downstream_paused_ = false;
    callbacks_.readDisableDownstream(false);
  }
  if (encoder_ != nullptr) {
    for (uint32_t i = 0; i < read_disabled_; ++i) encoder_->readDisable(true);
  }
}

void UpstreamRequest::onPoolFailure(upstream::PoolFailure failure) {
  pending_ = nullptr;
  if (failure != upstream::PoolFailure::kOverflow && host_ != nullptr) {
    upstream::ReportHostResult(*host_, upstream::HostResult::kConnectFailure);
  }
  switch (failure) {
    case upstream::PoolFailure::kConnectFailure:
      fail(503, "upstream_connect_failure", UpstreamAttempt::Outcome::kConnectFailure);
      break;
    case upstream::PoolFailure::kConnectTimeout:
      fail(503, "upstream_connect_timeout", UpstreamAttempt::Outcome::kConnectFailure);
      break;
    case upstream::PoolFailure::kOverflow:
      fail(503, "upstream_overflow", UpstreamAttempt::Outcome::kOverflow);
      break;
    case upstream::PoolFailure::kTlsFailure:
      // Envoy's UF with a transport failure reason: the host answered, its TLS did not.
      fail(503, "upstream_tls_failure", UpstreamAttempt::Outcome::kConnectFailure);
      break;
  }
}

void UpstreamRequest::onAboveWriteBufferHighWatermark() {
  // The upstream reads the body slower than the client sends it.
  if (!downstream_paused_) {
    downstream_paused_ = true;
    callbacks_.readDisableDownstream(true);
  }
}

void UpstreamRequest::onBelowWriteBufferLowWatermark() {
  if (downstream_paused_) {
    downstream_paused_ = false;
    callbacks_.readDisableDownstream(false);
  }
}

void UpstreamRequest::readDisable(bool disable) {
  if (disable) {
    ++read_disabled_;
  } else if (read_disabled_ > 0) {
    --read_disabled_;
  } else {
    return;
  }
  if (encoder_ != nullptr && !response_done_) encoder_->readDisable(disable);
}

void UpstreamRequest::decodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) {
  response_started_ = true;
  replay_body_.clear();
  headers_deadline_.cancel();
  if (tunnel_) timeout_deadline_.cancel();  // open (or refused): no deadline on its life
  armIdle();
  attempt_status_ = head->status;
  if (host_ != nullptr) {
    upstream::ReportHostResult(
        *host_,
        head->status >= 500 ? upstream::HostResult::kHttp5xx : upstream::HostResult::kSuccess,
        head->status);
  }
  if (end_stream) {
    finished();
    attemptDone(UpstreamAttempt::Outcome::kResponse);
  }
  callbacks_.onUpstreamHeaders(std::move(head), end_stream);
}

void UpstreamRequest::decodeData(Buffer& data, bool end_stream) {
  armIdle();
  attempt_received_ += data.length();
  if (end_stream) {
    finished();
    attemptDone(UpstreamAttempt::Outcome::kResponse);
  }
  callbacks_.onUpstreamData(data, end_stream);
}

void UpstreamRequest::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  finished();
  attemptDone(UpstreamAttempt::Outcome::kResponse);
  callbacks_.onUpstreamTrailers(std::move(trailers));
}

void UpstreamRequest::onUpstreamFailure(UpstreamFailure failure, bool) {
  encoder_ = nullptr;  // the stream is over
  if (host_ != nullptr) upstream::HostStats::Inc(host_->stats().rq_error);
  const bool refused = failure == UpstreamFailure::kRefusedStream;
  if (refused) target_.cluster->stats().upstream_rq_refused_stream.inc();
  if (refused || (failure == UpstreamFailure::kClosedBeforeResponse && reused_)) {
    releaseRetry();
    if (retryOnFreshConnection(refused)) return;
  }
  if (host_ != nullptr) upstream::ReportHostResult(*host_, upstream::HostResult::kReset);
  if (failure == UpstreamFailure::kProtocolError) {
    fail(502, "upstream_protocol_error", UpstreamAttempt::Outcome::kProtocolError);
  } else {
    fail(502, "upstream_reset", UpstreamAttempt::Outcome::kReset);
  }
}

void UpstreamRequest::finished() {
  response_done_ = true;
  // The pool takes the connection back once the codec is done with it: reading as before.
  if (encoder_ != nullptr) {
    for (uint32_t i = 0; i < read_disabled_; ++i) encoder_->readDisable(false);
  }
  encoder_ = nullptr;
  releaseRetry();
  timeout_deadline_.cancel();
  headers_deadline_.cancel();
  idle_deadline_.cancel();
}

void UpstreamRequest::releaseRetry() {
  if (!retry_counted_) return;
  retry_counted_ = false;
  target_.cluster->resources().retries.dec();
}

void UpstreamRequest::armIdle() {
  if (target_.idle_timeout.count() <= 0 || failed_ || response_done_) return;
  dispatcher_.armDeadline(idle_deadline_, target_.idle_timeout, *this);
}

void UpstreamRequest::onDeadline(event::Deadline& deadline) {
  constexpr auto kTimeout = UpstreamAttempt::Outcome::kTimeout;
  if (host_ != nullptr) upstream::ReportHostResult(*host_, upstream::HostResult::kTimeout);
  if (&deadline == &timeout_deadline_) {
    fail(504, "upstream_request_timeout", kTimeout);
  } else if (&deadline == &headers_deadline_) {
    fail(504, "upstream_response_headers_timeout", kTimeout);
  } else {
    fail(504, "upstream_idle_timeout", kTimeout);
  }
}

void UpstreamRequest::fail(uint16_t status, const char* flag, UpstreamAttempt::Outcome outcome) {
  if (failed_ || response_done_) return;
  attemptDone(outcome);
  reset();
  SLUICE_LOG(kDebug, "upstream request to cluster %s failed: %s", target_.cluster->name(), flag);
  // The stream answers or resets; it frees this request only with itself (deferred).
  callbacks_.onUpstreamError(status, flag);
}

}  // namespace sluice::router
