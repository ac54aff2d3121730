#include "source/router/upstream_request.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
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
using http::UpstreamErrorKind;
using http::UpstreamFailure;

namespace {

UpstreamAttempt::Outcome OutcomeOf(UpstreamErrorKind kind) {
  switch (kind) {
    case UpstreamErrorKind::kNone:
      return UpstreamAttempt::Outcome::kResponse;
    case UpstreamErrorKind::kConnectRefused:
    case UpstreamErrorKind::kConnectTimeout:
    case UpstreamErrorKind::kTlsFailure:
    case UpstreamErrorKind::kNoHealthyHost:
      return UpstreamAttempt::Outcome::kConnectFailure;
    case UpstreamErrorKind::kOverflow:
      return UpstreamAttempt::Outcome::kOverflow;
    case UpstreamErrorKind::kRefusedStream:
    case UpstreamErrorKind::kConnectionClosed:
    case UpstreamErrorKind::kReset:
      return UpstreamAttempt::Outcome::kReset;
    case UpstreamErrorKind::kProtocolError:
      return UpstreamAttempt::Outcome::kProtocolError;
    case UpstreamErrorKind::kTimeout:
    case UpstreamErrorKind::kPerTryTimeout:
    case UpstreamErrorKind::kIdleTimeout:
    case UpstreamErrorKind::kHeadersTimeout:
    case UpstreamErrorKind::kSendTimeout:
      return UpstreamAttempt::Outcome::kTimeout;
  }
  return UpstreamAttempt::Outcome::kReset;
}

// A copy of a field map (HeaderMap is not copyable: it views into its own storage).
std::unique_ptr<HeaderMap> CopyFields(const HeaderMap& from) {
  auto to = std::make_unique<HeaderMap>();
  for (const auto& e : from.entries()) {
    if (!e.name.empty()) to->add(e.name, e.value);
  }
  return to;
}

}  // namespace

UpstreamRequest::UpstreamRequest(http::UpstreamRequestCallbacks& callbacks,
                                 event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
                                 const UpstreamTarget& target, uint32_t buffer_limit)
    : ExchangeBase(callbacks, dispatcher, clusters, target, buffer_limit) {}

UpstreamRequest::~UpstreamRequest() {
  observe_ = false;  // the stream and its filters are going away: nobody to tell
  reset();
}

bool UpstreamRequest::enableRetries(const http::RetryOptions& options) {
  retry_ = std::make_unique<RetryState>();
  retry_->options = options;
  retry_->max_replay_bytes =
      options.max_replay_bytes != 0 ? options.max_replay_bytes : buffer_limit_;
  return true;
}

UpstreamAttempt UpstreamRequest::makeAttempt(UpstreamAttempt::Outcome outcome,
                                             UpstreamErrorKind error) {
  UpstreamAttempt a;
  a.outcome = outcome;
  a.error = error;
  if (response_started_) {
    a.safety = http::RetrySafety::kNever;
  } else if (outcome == UpstreamAttempt::Outcome::kResponse) {
    a.safety = http::RetrySafety::kIdempotentOnly;  // the upstream acted on it and answered
  } else {
    a.safety = http::DescribeUpstreamError(error).safety;
  }
  a.status = attempt_status_;
  a.attempt = attempts_;
  if (observe_) {
    a.host = attempt_host_;
    a.bytes_sent = attempt_sent_;
    a.bytes_received = attempt_received_;
    a.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - attempt_start_);
  } else if (host_ != nullptr) {
    a.host = host_->addressString();
  }
  return a;
}

void UpstreamRequest::attemptDone(UpstreamAttempt::Outcome outcome, UpstreamErrorKind error) {
  if (!observe_ || !attempt_open_) return;
  attempt_open_ = false;
  callbacks_.onUpstreamAttemptDone(makeAttempt(outcome, error));
}

void UpstreamRequest::reset() {
  // The stream ended with the attempt under way (client gone, reset, local reply).
  attemptDone(UpstreamAttempt::Outcome::kCancelled);
  failed_ = true;
  waiting_retry_ = false;
  timeout_deadline_.cancel();
  headers_deadline_.cancel();
  idle_deadline_.cancel();
  per_try_deadline_.cancel();
  send_deadline_.cancel();
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
  if (tunnel) retry_.reset();
  timeout_ = target_.timeout;
  per_try_timeout_ = retry_ != nullptr && retry_->options.per_try_timeout.count() > 0
                         ? retry_->options.per_try_timeout
                         : target_.per_try_timeout;
  const bool grpc = http::grpc::IsGrpcRequest(head.headers);
  if (grpc) {
    // The call's own deadline caps the route's (gRPC's grpc-timeout): sluice ends it then with
    // DEADLINE_EXCEEDED rather than let the upstream work on for nobody.
    if (const http::HeaderMap::Entry* t = head.headers.get("grpc-timeout")) {
      if (auto deadline = http::grpc::ParseTimeout(t->value)) {
        if (timeout_.count() == 0 || *deadline < timeout_) {
          timeout_ = std::max(*deadline, std::chrono::milliseconds(1));
          timeout_from_request_ = true;
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
  const uint32_t attempt = ++attempts_;
  callbacks_.onUpstreamAttemptStart();
  attempt_status_ = 0;
  rq_start_ = dispatcher_.now();
  if (observe_) {
    attempt_open_ = true;
    attempt_sent_ = 0;
    attempt_received_ = 0;
    attempt_host_.clear();
    attempt_start_ = std::chrono::steady_clock::now();
  }
  upstream::LbContext lb;
  lb.hash_key = target_.hash_key;
  if (retry_ != nullptr) {
    if (retry_->options.attempt_count_header) {
      head_->headers.set("x-sluice-attempt-count", absl::StrCat(attempt));
    }
    lb.excluded = retry_->excluded;
    lb.excluded_count = retry_->excluded_count;
  }
  const upstream::WorkerClusters::PoolPick pick =
      clusters_.pickConnPool(*target_.cluster, lb, dispatcher_);
  if (pick.pool == nullptr) {
    // Overflow: max_connection_pools. Else no hosts (a DNS name that has not resolved yet).
    attemptFailed(pick.overflow ? UpstreamErrorKind::kOverflow : UpstreamErrorKind::kNoHealthyHost);
    return;
  }
  // The attempt's host from here on: a pool failure or a timeout while connecting is its result
  // (outlier detection), and the host a retry avoids.
  host_ = &pick.pool->host();
  if (info_ != nullptr) *info_ = http::UpstreamInfo{host_->address()};  // this attempt's
  // Either calls back now (a connection with room, or overflow) or later.
  upstream::Cancellable* pending = pick.pool->newStream(*this, *this, fresh);
  // (What it called back may have ended this attempt, and even started the next.)
  if (attempts_ != attempt || failed_ || waiting_retry_ || encoder_ != nullptr || response_done_) {
    return;
  }
  pending_ = pending;
  if (pending_ != nullptr && target_.connect_timeout.count() > 0) {
    attempt_timer_ = AttemptTimer::kConnect;
    dispatcher_.armDeadline(idle_deadline_, target_.connect_timeout, *this);
  }
  if (request_end_) armAttemptDeadlines();
}

void UpstreamRequest::keepForReplay(const Buffer& data) {
  if (!replayable_ || response_started_ || !keep_for_replay_) return;
  const uint64_t bound = retry_ != nullptr ? retry_->max_replay_bytes : buffer_limit_;
  if (replay_body_.length() + data.length() > bound) {
    replayable_ = false;
    replay_body_.clear();
    if (retry_ != nullptr) target_.cluster->stats().upstream_rq_retry_body_overflow.inc();
    return;
  }
  // A copy: only requests that may be sent again pay it (a retrying stream, or an idempotent
  // one on a reused connection), and only until the response starts.
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
  // The first attempt; the retry is the next.
  attemptDone(UpstreamAttempt::Outcome::kReset,
              refused ? UpstreamErrorKind::kRefusedStream : UpstreamErrorKind::kConnectionClosed);
  if (refused) {
    target_.cluster->stats().upstream_rq_retry_refused.inc();
  } else {
    target_.cluster->stats().upstream_rq_retry_stale_connection.inc();
  }
  SLUICE_LOG(kDebug, "upstream stream to cluster %s %s before a response; retrying once",
             target_.cluster->name(), refused ? "refused" : "closed");
  encoder_ = nullptr;
  idle_deadline_.cancel();
  per_try_deadline_.cancel();
  headers_deadline_.cancel();
  send_deadline_.cancel();
  // Sent again from the start: what was kept, then whatever the client had not sent yet.
  replay_body_.move(held_body_);
  held_body_.move(replay_body_);
  if (retry_ != nullptr && retry_->trailers != nullptr && !held_trailers_) {
    held_trailers_ = CopyFields(*retry_->trailers);
  }
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
    // Not connected yet (or between attempts): keep it, bounded; past the limit stop reading
    // the client until a connection takes it.
    held_body_.move(data);
    if (held_body_.length() > buffer_limit_ && !downstream_paused_) {
      downstream_paused_ = true;
      callbacks_.readDisableDownstream(true);
    }
  } else {
    if (tunnel_) armIdle();  // a tunnel is idle only when neither side sends
    keepForReplay(data);
    attempt_sent_ += data.length();
    if (end_stream && info_ != nullptr) info_->last_tx = dispatcher_.now();
    encoder_->encodeData(data, end_stream);
  }
  if (end_stream) requestComplete();
}

void UpstreamRequest::sendTrailers(const HeaderMap& trailers) {
  if (failed_ || response_done_) return;
  request_end_ = true;
  if (retry_ != nullptr) {
    // Kept for a replay (trailers are small; only retrying streams pay for the copy).
    retry_->trailers = CopyFields(trailers);
  } else {
    replayable_ = false;  // the transparent retry does not keep trailers
  }
  if (encoder_ == nullptr) {
    held_trailers_ = CopyFields(trailers);
    if (buffering_body_) {
      target_.cluster->stats().upstream_rq_body_buffered.inc();
      stopBuffering();
      if (failed_) return;
    }
  } else {
    if (info_ != nullptr) info_->last_tx = dispatcher_.now();
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
    // A duration from the request (grpc-timeout) differs per call: the dispatcher's heap, not
    // a FIFO per duration.
    if (timeout_from_request_) {
      dispatcher_.armVariableDeadline(timeout_deadline_, timeout_, *this);
    } else {
      dispatcher_.armDeadline(timeout_deadline_, timeout_, *this);
    }
  }
  if (!waiting_retry_) armAttemptDeadlines();
}

void UpstreamRequest::armAttemptDeadlines() {
  if (target_.response_headers_timeout.count() > 0 && !headers_deadline_.armed() &&
      !response_started_) {
    dispatcher_.armDeadline(headers_deadline_, target_.response_headers_timeout, *this);
  }
  if (per_try_timeout_.count() > 0 && !per_try_deadline_.armed() && !tunnel_) {
    dispatcher_.armDeadline(per_try_deadline_, per_try_timeout_, *this);
  }
}

void UpstreamRequest::onPoolReady(RequestEncoder& encoder, const upstream::PoolStreamInfo& info) {
  pending_ = nullptr;
  if (attempt_timer_ == AttemptTimer::kConnect) idle_deadline_.cancel();
  attempt_timer_ = AttemptTimer::kIdle;
  if (observe_) attempt_host_ = info.host.addressString();
  encoder_ = &encoder;
  host_ = &info.host;
  reused_ = info.reused;
  protocol_ = info.protocol;
  // What goes out is kept until the response starts where a retry may need it: a retrying
  // stream always; else a reused HTTP/1 connection may turn out closed, an HTTP/2 stream may
  // be refused.
  keep_for_replay_ =
      replayable_ && (retry_ != nullptr ||
                      (!retried_ && (info.reused || info.protocol == http::Protocol::kHttp2)));
  armIdle();
  const bool headers_only = request_end_ && held_body_.empty() && !held_trailers_;
  if (info_ != nullptr) {
    info_->first_tx = dispatcher_.now();
    // A request that is whole now goes out with this call.
    if (request_end_) info_->last_tx = info_->first_tx;
  }
  encoder.encodeHeaders(*head_, headers_only);
  if (!headers_only && (!held_body_.empty() || (request_end_ && !held_trailers_))) {
    keepForReplay(held_body_);
    attempt_sent_ += held_body_.length();
    encoder.encodeData(held_body_, request_end_ && !held_trailers_);
  }
  if (held_trailers_ && encoder_ != nullptr) encodeTrailers(*held_trailers_);
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
  if (attempt_timer_ == AttemptTimer::kConnect) idle_deadline_.cancel();
  attempt_timer_ = AttemptTimer::kIdle;
  switch (failure) {
    case upstream::PoolFailure::kConnectFailure:
      attemptFailed(UpstreamErrorKind::kConnectRefused);
      break;
    case upstream::PoolFailure::kConnectTimeout:
      attemptFailed(UpstreamErrorKind::kConnectTimeout);
      break;
    case upstream::PoolFailure::kOverflow:
      attemptFailed(UpstreamErrorKind::kOverflow);
      break;
    case upstream::PoolFailure::kTlsFailure:
      // Envoy's UF with a transport failure reason: the host answered, its TLS did not.
      attemptFailed(UpstreamErrorKind::kTlsFailure);
      break;
  }
}

void UpstreamRequest::onAboveWriteBufferHighWatermark() {
  // The upstream reads the body slower than the client sends it.
  if (!downstream_paused_) {
    downstream_paused_ = true;
    callbacks_.readDisableDownstream(true);
  }
  if (target_.send_timeout.count() > 0 && !send_deadline_.armed()) {
    dispatcher_.armDeadline(send_deadline_, target_.send_timeout, *this);
  }
}

void UpstreamRequest::onBelowWriteBufferLowWatermark() {
  send_deadline_.cancel();
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
  headers_deadline_.cancel();
  attempt_status_ = head->status;
  if (head->status >= 100 && head->status < 600) {
    target_.cluster->stats().upstream_rq_xx[head->status / 100 - 1]->inc();
  }
  if (info_ != nullptr && info_->first_rx == std::chrono::steady_clock::time_point{}) {
    info_->first_rx = dispatcher_.now();
  }
  if (host_ != nullptr && head->status >= 200) {
    upstream::ReportHostResult(
        *host_,
        head->status >= 500 ? upstream::HostResult::kHttp5xx : upstream::HostResult::kSuccess,
        head->status);
  }
  if (retry_ != nullptr && !tunnel_ && head->status >= 200) {
    // The retry policy sees the head before anything of it goes on (a 503 with Retry-After, a
    // retriable status or header).
    if (end_stream && request_end_) {
      // The exchange is over on the connection, which is reusable: nothing to reset.
      for (uint32_t i = 0; encoder_ != nullptr && i < read_disabled_; ++i) {
        encoder_->readDisable(false);
      }
      encoder_ = nullptr;
    }
    UpstreamAttempt attempt =
        makeAttempt(UpstreamAttempt::Outcome::kResponse, UpstreamErrorKind::kNone);
    attempt.response_headers = &head->headers;
    if (maybeRetry(attempt)) return;
    if (retry_->retries > 0) target_.cluster->stats().upstream_rq_retry_success.inc();
  }
  response_started_ = true;
  replay_body_.clear();
  if (retry_ != nullptr) retry_->trailers.reset();
  if (tunnel_) timeout_deadline_.cancel();  // open (or refused): no deadline on its life
  armIdle();
  if (end_stream) {
    finished();
    responseTime();
    attemptDone(UpstreamAttempt::Outcome::kResponse);
  }
  callbacks_.onUpstreamHeaders(std::move(head), end_stream);
}

void UpstreamRequest::decodeData(Buffer& data, bool end_stream) {
  armIdle();
  attempt_received_ += data.length();
  if (end_stream) {
    finished();
    responseTime();
    attemptDone(UpstreamAttempt::Outcome::kResponse);
  }
  callbacks_.onUpstreamData(data, end_stream);
}

void UpstreamRequest::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  finished();
  responseTime();
  attemptDone(UpstreamAttempt::Outcome::kResponse);
  callbacks_.onUpstreamTrailers(std::move(trailers));
}

void UpstreamRequest::onUpstreamFailure(UpstreamFailure failure, bool) {
  encoder_ = nullptr;  // the stream is over
  if (host_ != nullptr) host_->stats().rq_error.inc();
  const bool refused = failure == UpstreamFailure::kRefusedStream;
  if (refused) target_.cluster->stats().upstream_rq_refused_stream.inc();
  if (refused || (failure == UpstreamFailure::kClosedBeforeResponse && reused_)) {
    releaseRetry();
    if (retryOnFreshConnection(refused)) return;
  }
  UpstreamErrorKind kind = UpstreamErrorKind::kConnectionClosed;
  if (response_started_) {
    kind = UpstreamErrorKind::kReset;
  } else if (failure == UpstreamFailure::kProtocolError) {
    kind = UpstreamErrorKind::kProtocolError;
  } else if (refused) {
    kind = UpstreamErrorKind::kRefusedStream;
  }
  attemptFailed(kind);
}

void UpstreamRequest::attemptFailed(UpstreamErrorKind kind) {
  if (failed_ || response_done_) return;
  reportFailure(kind);
  UpstreamAttempt attempt = makeAttempt(OutcomeOf(kind), kind);
  if (maybeRetry(attempt)) return;
  fail(kind);
}

bool UpstreamRequest::maybeRetry(UpstreamAttempt& attempt) {
  if (retry_ == nullptr || failed_ || response_started_ || !replayable_ || tunnel_) return false;
  http::RetryDecision decision;
  switch (callbacks_.onUpstreamRetry(attempt, decision)) {
    case http::RetryVerdict::kNo:
      return false;
    case http::RetryVerdict::kLimitExceeded:
      extra_flags_ |= http::FlagBit(http::ResponseFlag::kUpstreamRetryLimitExceeded);
      callbacks_.addResponseFlags(extra_flags_);
      target_.cluster->stats().upstream_rq_retry_limit_exceeded.inc();
      return false;
    case http::RetryVerdict::kYes:
      break;
  }
  // The policy may not change anything, but it may have ended the stream (a misuse).
  if (failed_) return true;
  if (!retryAllowed(decision)) return false;
  scheduleRetry(decision.delay, attempt);
  return true;
}

bool UpstreamRequest::retryAllowed(const http::RetryDecision& decision) {
  upstream::ResourceManager& resources = target_.cluster->resources();
  // This stream's own retry in flight (the one that just ended) no longer counts.
  releaseRetry();
  bool allowed = resources.retries.canCreate();
  if (allowed && decision.budget_percent > 0) {
    // Envoy's retry budget: retries in flight stay under a share of the requests in flight
    // and waiting, so that retries cannot multiply the load of an outage.
    const double active =
        static_cast<double>(resources.requests.count() + resources.pending_requests.count());
    const uint64_t budget =
        std::max<uint64_t>(decision.min_retry_concurrency,
                           static_cast<uint64_t>(active * decision.budget_percent / 100.0));
    allowed = resources.retries.count() < budget;
  }
  if (!allowed) target_.cluster->stats().upstream_rq_retry_overflow.inc();
  return allowed;
}

void UpstreamRequest::scheduleRetry(std::chrono::milliseconds delay,
                                    const UpstreamAttempt& attempt) {
  attemptDone(attempt.outcome, attempt.error);
  upstream::Resource& retries = target_.cluster->resources().retries;
  retries.inc();
  retry_counted_ = true;
  ++retry_->retries;
  target_.cluster->stats().upstream_rq_retry.inc();
  if (host_ != nullptr) {
    // The next attempt avoids this host (and the few before it).
    RetryState& r = *retry_;
    if (r.excluded_count == RetryState::kMaxExcluded) {
      std::copy(r.excluded + 1, r.excluded + RetryState::kMaxExcluded, r.excluded);
      --r.excluded_count;
    }
    r.excluded[r.excluded_count++] = host_;
  }
  SLUICE_LOG(kDebug, "upstream attempt %u to cluster %s: retrying in %lld ms", attempts_,
             target_.cluster->name(), static_cast<long long>(delay.count()));
  dropAttempt();
  // Sent again from the start: what was kept, then whatever the client had not sent yet.
  replay_body_.move(held_body_);
  held_body_.move(replay_body_);
  if (retry_->trailers != nullptr && !held_trailers_) {
    held_trailers_ = CopyFields(*retry_->trailers);
  }
  waiting_retry_ = true;
  attempt_timer_ = AttemptTimer::kBackoff;
  // Any duration (backoff with jitter, Retry-After): the dispatcher's heap, not a FIFO.
  dispatcher_.armVariableDeadline(idle_deadline_, delay, *this);
}

void UpstreamRequest::dropAttempt() {
  idle_deadline_.cancel();
  headers_deadline_.cancel();
  per_try_deadline_.cancel();
  send_deadline_.cancel();
  attempt_timer_ = AttemptTimer::kIdle;
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (encoder_ != nullptr) {
    // HTTP/2: RST_STREAM; HTTP/1: the connection closes (the rest of its response is stray).
    http::RequestEncoder* encoder = encoder_;
    encoder_ = nullptr;
    encoder->resetStream();
  }
  host_ = nullptr;
  if (downstream_paused_) {
    // What the client sends now waits in held_body_ (which pauses it again past the limit).
    downstream_paused_ = false;
    callbacks_.readDisableDownstream(false);
  }
}

void UpstreamRequest::finished() {
  response_done_ = true;
  if (info_ != nullptr) info_->last_rx = dispatcher_.now();
  // The pool takes the connection back once the codec is done with it: reading as before.
  if (encoder_ != nullptr) {
    for (uint32_t i = 0; i < read_disabled_; ++i) encoder_->readDisable(false);
  }
  encoder_ = nullptr;
  releaseRetry();
  timeout_deadline_.cancel();
  headers_deadline_.cancel();
  idle_deadline_.cancel();
  per_try_deadline_.cancel();
  send_deadline_.cancel();
}

void UpstreamRequest::responseTime() {
  target_.cluster->stats().upstream_rq_time.record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(dispatcher_.now() - rq_start_)
          .count()));
}

void UpstreamRequest::releaseRetry() {
  if (!retry_counted_) return;
  retry_counted_ = false;
  target_.cluster->resources().retries.dec();
}

void UpstreamRequest::armIdle() {
  if (target_.idle_timeout.count() <= 0 || failed_ || response_done_) return;
  attempt_timer_ = AttemptTimer::kIdle;
  dispatcher_.armDeadline(idle_deadline_, target_.idle_timeout, *this);
}

void UpstreamRequest::onDeadline(event::Deadline& deadline) {
  upstream::ClusterStats& stats = target_.cluster->stats();
  if (&deadline == &timeout_deadline_) {
    reportFailure(UpstreamErrorKind::kTimeout);
    fail(UpstreamErrorKind::kTimeout);  // the whole exchange: no attempt after it
  } else if (&deadline == &headers_deadline_) {
    attemptFailed(UpstreamErrorKind::kHeadersTimeout);
  } else if (&deadline == &per_try_deadline_) {
    stats.upstream_rq_per_try_timeout.inc();
    attemptFailed(UpstreamErrorKind::kPerTryTimeout);
  } else if (&deadline == &send_deadline_) {
    stats.upstream_rq_send_timeout.inc();
    attemptFailed(UpstreamErrorKind::kSendTimeout);
  } else {
    switch (attempt_timer_) {
      case AttemptTimer::kIdle:
        attemptFailed(UpstreamErrorKind::kIdleTimeout);
        break;
      case AttemptTimer::kConnect:
        // The route's connect timeout: the request leaves the pool's queue (the connection,
        // if one is being made, goes on for whoever comes next).
        attempt_timer_ = AttemptTimer::kIdle;
        if (pending_ != nullptr) {
          pending_->cancel();
          pending_ = nullptr;
        }
        stats.upstream_rq_connect_timeout.inc();
        attemptFailed(UpstreamErrorKind::kConnectTimeout);
        break;
      case AttemptTimer::kBackoff:
        attempt_timer_ = AttemptTimer::kIdle;
        waiting_retry_ = false;
        connect(/*fresh=*/false);
        break;
    }
  }
}

void UpstreamRequest::reportFailure(UpstreamErrorKind kind) {
  if (host_ == nullptr) return;
  // What outlier detection counts against the host (nothing for what is not its fault: our
  // limits, no host at all, a stream it refused unprocessed).
  switch (kind) {
    case UpstreamErrorKind::kConnectRefused:
    case UpstreamErrorKind::kConnectTimeout:
    case UpstreamErrorKind::kTlsFailure:
      upstream::ReportHostResult(*host_, upstream::HostResult::kConnectFailure);
      break;
    case UpstreamErrorKind::kConnectionClosed:
    case UpstreamErrorKind::kReset:
    case UpstreamErrorKind::kProtocolError:
      upstream::ReportHostResult(*host_, upstream::HostResult::kReset);
      break;
    case UpstreamErrorKind::kTimeout:
    case UpstreamErrorKind::kPerTryTimeout:
    case UpstreamErrorKind::kIdleTimeout:
    case UpstreamErrorKind::kHeadersTimeout:
    case UpstreamErrorKind::kSendTimeout:
      upstream::ReportHostResult(*host_, upstream::HostResult::kTimeout);
      break;
    case UpstreamErrorKind::kNone:
    case UpstreamErrorKind::kOverflow:
    case UpstreamErrorKind::kNoHealthyHost:
    case UpstreamErrorKind::kRefusedStream:
      break;
  }
}

void UpstreamRequest::fail(UpstreamErrorKind kind) {
  if (failed_ || response_done_) return;
  attemptDone(OutcomeOf(kind), kind);
  reset();
  SLUICE_LOG(kDebug, "upstream request to cluster %s failed: %s", target_.cluster->name(),
             http::DescribeUpstreamError(kind).details);
  // The stream answers or resets; it frees this request only with itself (deferred).
  callbacks_.onUpstreamError(kind, extra_flags_);
}

}  // namespace sluice::router
