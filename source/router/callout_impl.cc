#include "source/router/callout_impl.h"

#include "absl/strings/str_cat.h"
#include "source/common/logging.h"
#include "source/http/codec.h"
#include "source/upstream/cluster.h"
#include "source/upstream/conn_pool.h"

namespace sluice::router {

using http::Callout;
using http::CalloutCallbacks;
using http::CalloutOptions;
using http::CalloutOutcome;
using http::CalloutPtr;
using http::CalloutRequest;
using http::CalloutResponse;
using http::HeaderMap;
using http::RequestEncoder;
using http::RequestHead;
using http::ResponseHead;
using http::UpstreamFailure;

namespace {

// Fields the client owns: framing and the hop (RFC 9110 §7.6.1). A callout is one plain
// exchange; a caller cannot turn it into a tunnel or frame its body differently.
bool ClientOwned(std::string_view name) {
  for (std::string_view f : {"content-length", "transfer-encoding", "connection", "keep-alive",
                             "proxy-connection", "upgrade", "te", "trailer", "host"}) {
    if (http::HeaderNameEquals(name, f)) return true;
  }
  return false;
}

// One callout: waits for a pooled connection, sends the request, collects the response
// (bounded), and tells its callbacks once.
class CalloutImpl : public Callout, public http::ResponseDecoder, public upstream::PoolCallbacks {
 public:
  CalloutImpl(event::Dispatcher& dispatcher, upstream::WorkerClusters& clusters,
              const upstream::Cluster& cluster, CalloutRequest& request,
              const CalloutOptions& options, CalloutCallbacks& callbacks)
      : dispatcher_(dispatcher),
        clusters_(clusters),
        cluster_(cluster),
        options_(options),
        callbacks_(callbacks),
        head_(std::make_unique<RequestHead>()) {
    head_->method = head_->headers.keep(request.method);
    head_->path = head_->headers.keep(request.path);
    head_->headers.add("Host", request.authority.empty() ? std::string_view(cluster.name())
                                                         : std::string_view(request.authority));
    for (const auto& e : request.headers.entries()) {
      if (!e.name.empty() && !ClientOwned(e.name)) head_->headers.add(e.name, e.value);
    }
    body_ = std::move(request.body);
    const std::string_view m = head_->method;
    // RFC 9110 §9.2.2: only these may be sent again when a reused connection turns out closed.
    idempotent_ =
        m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
    // The codec keeps a Content-Length that is present: the body goes out counted, not chunked
    // (some services refuse chunked requests).
    if (!body_.empty()) head_->headers.add("Content-Length", std::to_string(body_.length()));
    timer_ = dispatcher_.createTimer([this] { onTimer(); });
  }
  ~CalloutImpl() override { cancel(); }

  void start() {
    timer_->enableTimer(options_.timeout);
    connect(/*fresh=*/false);
  }

  void cancel() override {
    if (done_ && !deliver_) return;
    done_ = true;
    deliver_ = false;
    release();
  }

  // upstream::PoolCallbacks
  void onPoolReady(RequestEncoder& encoder, const upstream::PoolStreamInfo& info) override {
    pending_ = nullptr;
    encoder_ = &encoder;
    reused_ = info.reused;
    const bool headers_only = body_.empty();
    encoder.encodeHeaders(*head_, headers_only);
    if (!headers_only) {
      // A copy per send: the body is kept for a send on a fresh connection (onUpstreamFailure).
      Buffer body;
      body.add(body_);
      encoder.encodeData(body, true);
    }
  }
  void onPoolFailure(upstream::PoolFailure failure) override {
    pending_ = nullptr;
    finish(failure == upstream::PoolFailure::kOverflow ? CalloutOutcome::kOverflow
                                                       : CalloutOutcome::kConnectFailure);
  }

  // ResponseDecoder
  void decodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override {
    if (done_) return;
    response_.status = head->status;
    response_.headers = std::move(head->headers);
    if (end_stream) complete();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    if (done_) {
      data.clear();
      return;
    }
    if (response_.body.size() + data.length() > options_.max_response_bytes) {
      // Not read further: the stream is reset (an HTTP/1 connection goes), the caller learns the
      // status only.
      data.clear();
      response_.body.clear();
      finish(CalloutOutcome::kOverflow);
      return;
    }
    const size_t at = response_.body.size();
    response_.body.resize(at + data.length());
    data.copyOut(0, data.length(), response_.body.data() + at);
    data.clear();
    if (end_stream) complete();
  }
  void decodeTrailers(std::unique_ptr<HeaderMap>) override {
    // Trailers end the response; a callout's consumer gets head and body only.
    if (!done_) complete();
  }
  void onUpstreamFailure(UpstreamFailure failure, bool) override {
    encoder_ = nullptr;  // the stream is over
    if (done_) return;
    // A kept-alive connection the service closed just as the request went out (its own idle
    // timeout), or a stream the service refused unprocessed (HTTP/2): the request was not
    // processed. Once, on a new connection, as proxied requests (within max_retries).
    const bool refused = failure == UpstreamFailure::kRefusedStream;
    if (refused) cluster_.stats().upstream_rq_refused_stream.inc();
    const bool stale = failure == UpstreamFailure::kClosedBeforeResponse && reused_ && idempotent_;
    if ((refused || stale) && !retried_) {
      upstream::Resource& retries = cluster_.resources().retries;
      if (retries.canCreate()) {
        retries.inc();  // until the callout ends (release)
        retry_counted_ = true;
        retried_ = true;
        (refused ? cluster_.stats().upstream_rq_retry_refused
                 : cluster_.stats().upstream_rq_retry_stale_connection)
            .inc();
        connect(/*fresh=*/true);
        return;
      }
      cluster_.stats().upstream_rq_retry_overflow.inc();
    }
    finish(failure == UpstreamFailure::kProtocolError ? CalloutOutcome::kProtocolError
                                                      : CalloutOutcome::kReset);
  }

 private:
  // Picks a host and asks its pool for a connection (`fresh`: not an idle one).
  void connect(bool fresh) {
    const upstream::WorkerClusters::PoolPick pick =
        clusters_.pickConnPool(cluster_, {}, dispatcher_);
    if (pick.pool == nullptr) {
      // No host (a name not resolved yet), or the cluster's max_connection_pools.
      finish(pick.overflow ? CalloutOutcome::kOverflow : CalloutOutcome::kConnectFailure);
      return;
    }
    // Calls back now (a connection with room, or overflow) or later.
    upstream::Cancellable* pending = pick.pool->newStream(*this, *this, fresh);
    if (!done_) pending_ = pending;
  }

  // The response is whole: the connection goes back to its pool (the codec hands it back).
  void complete() {
    encoder_ = nullptr;
    finish(CalloutOutcome::kResponse);
  }

  void finish(CalloutOutcome outcome, bool from_timer = false) {
    if (done_) return;
    done_ = true;
    response_.outcome = outcome;
    if (outcome != CalloutOutcome::kResponse && outcome != CalloutOutcome::kOverflow) {
      response_.status = 0;
      response_.headers.clear();
      response_.body.clear();
    }
    release();
    if (!from_timer) {
      // Told from the event loop, not from inside send() (the caller does not hold the handle
      // yet) nor from inside the codec or the pool: by then a whole exchange's connection is
      // back in its pool, so a callout started from the completion can reuse it, and the
      // callbacks run on a clean stack.
      deliver_ = true;
      timer_->enableTimer(std::chrono::milliseconds(0));
      return;
    }
    deliver();
  }

  void deliver() {
    deliver_ = false;
    // Last: the callbacks may hand this to deferredDelete (but not destroy it now).
    callbacks_.onCalloutComplete(response_);
  }

  // Lets go of the pool: a waiting request leaves the queue, an exchange under way closes its
  // connection. Disarms the timeout.
  void release() {
    timer_->disableTimer();
    if (retry_counted_) {
      retry_counted_ = false;
      cluster_.resources().retries.dec();
    }
    if (pending_ != nullptr) {
      pending_->cancel();
      pending_ = nullptr;
    }
    if (encoder_ != nullptr) {
      RequestEncoder* e = encoder_;
      encoder_ = nullptr;
      e->resetStream();
    }
  }

  void onTimer() {
    if (deliver_) {
      deliver();
      return;
    }
    finish(CalloutOutcome::kTimeout, /*from_timer=*/true);
  }

  event::Dispatcher& dispatcher_;
  upstream::WorkerClusters& clusters_;
  const upstream::Cluster& cluster_;
  const CalloutOptions options_;
  CalloutCallbacks& callbacks_;
  // The request lives until the exchange ends (the encoder may keep views of it).
  std::unique_ptr<RequestHead> head_;
  std::string body_;
  // The timeout; also delivers, on the next loop iteration, an outcome known inside send().
  event::TimerPtr timer_;
  upstream::Cancellable* pending_ = nullptr;
  // The stream on an upstream connection, from onPoolReady until the response ends or fails.
  RequestEncoder* encoder_ = nullptr;
  bool reused_ = false;
  CalloutResponse response_;
  bool done_ = false;
  bool idempotent_ = false;
  bool retried_ = false;
  bool retry_counted_ = false;  // in the cluster's retries (max_retries) while it runs
  bool deliver_ = false;        // an outcome waits for the timer to be told
};

}  // namespace

bool CalloutClientImpl::hasCluster(std::string_view cluster) const {
  return clusters_.manager().get(cluster) != nullptr;
}

absl::StatusOr<CalloutPtr> CalloutClientImpl::send(std::string_view cluster, CalloutRequest request,
                                                   const CalloutOptions& options,
                                                   CalloutCallbacks& callbacks) {
  const upstream::Cluster* c = clusters_.manager().get(cluster);
  if (c == nullptr)
    return absl::NotFoundError(
        absl::StrCat("no cluster named ", absl::string_view(cluster.data(), cluster.size())));
  if (request.method.empty() || request.path.empty()) {
    return absl::InvalidArgumentError("a callout needs a method and a path");
  }
  if (request.method == "CONNECT") {
    return absl::InvalidArgumentError("a callout cannot be a CONNECT");
  }
  if (options.timeout.count() <= 0) return absl::InvalidArgumentError("a callout needs a timeout");
  auto callout =
      std::make_unique<CalloutImpl>(dispatcher_, clusters_, *c, request, options, callbacks);
  callout->start();
  return CalloutPtr(std::move(callout));
}

}  // namespace sluice::router
