#include "source/http/conn_manager_impl.h"

#include <time.h>

#include <atomic>
#include <cstring>
#include <optional>
#include <random>

#include "absl/strings/escaping.h"

#include "source/common/block_cache.h"
#include "source/common/logging.h"
#include "source/http/filter_manager.h"
#include "source/http/http1/parser.h"
#include "source/http/http2/codec_impl.h"
#include "source/http/path_normalizer.h"
#include "source/http/upstream.h"

namespace sluice::http {

namespace {

constexpr size_t AlignUp(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

// X-Forwarded-Client-Cert as Envoy writes it (forward_client_cert_details).
void SetForwardedClientCert(HeaderMap& headers, ConnectionManagerConfig::ForwardClientCert mode,
                            const network::SslConnectionInfo* ssl) {
  using Mode = ConnectionManagerConfig::ForwardClientCert;
  if (mode == Mode::kForwardOnly) return;
  std::string value;
  if (mode == Mode::kAppendForward) {
    for (std::string_view v : headers.getAll("x-forwarded-client-cert")) {
      if (!value.empty()) value.append(",");
      value.append(v);
    }
  }
  headers.remove(KnownHeader::kXForwardedClientCert);
  const bool ours = mode != Mode::kSanitize && ssl != nullptr && ssl->peerCertificatePresented() &&
                    ssl->peerCertificateValidated();
  if (ours) {
    if (!value.empty()) value.append(",");
    value.append("Hash=").append(ssl->peerFingerprintSha256());
    // A quoted-string: '"' and '\\' escaped (RFC 2253 subjects may hold both).
    value.append(";Subject=\"");
    for (char c : ssl->peerSubject()) {
      if (c == '"' || c == '\\') value.push_back('\\');
      value.push_back(c);
    }
    value.append("\"");
    for (const std::string& san : ssl->peerSans()) {
      // "DNS:a.example" -> ";DNS=a.example", "URI:spiffe://..." -> ";URI=spiffe://...".
      const size_t colon = san.find(':');
      if (colon == std::string::npos) continue;
      value.append(";").append(san, 0, colon).append("=").append(san, colon + 1);
    }
  }
  // Field values carry no control characters: certificate text could (a SAN with a CR in it).
  for (char& c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (!value.empty()) headers.set("X-Forwarded-Client-Cert", value);
}
std::atomic<uint64_t> g_next_stream_id{1};

// An extended CONNECT (RFC 8441 §4: :method CONNECT, :protocol, :path) as the HTTP/1.1 Upgrade
// request it stands for (RFC 6455 §4.1 for WebSocket): GET, Upgrade: <protocol>,
// Connection: Upgrade. HTTP/2 has no Sec-WebSocket-Key (RFC 8441 §5): an HTTP/1.1 upstream needs
// one, so a fresh one is made (its Sec-WebSocket-Accept is dropped on the way back).
void ExtendedConnectToUpgrade(RequestHead& head) {
  head.method = "GET";
  head.headers.set("Upgrade", head.protocol);
  head.headers.set("Connection", "Upgrade");
  if (HeaderNameEquals(head.protocol, "websocket") &&
      head.headers.get("sec-websocket-key") == nullptr) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char nonce[16];
    const uint64_t a = rng(), b = rng();
    std::memcpy(nonce, &a, 8);
    std::memcpy(nonce + 8, &b, 8);
    head.headers.add("Sec-WebSocket-Key", absl::Base64Escape(absl::string_view(nonce, 16)));
  }
}
}  // namespace

const std::string& ConnectionManagerImpl::CachedDate() {
  thread_local time_t cached_second = 0;
  thread_local std::string cached;
  const time_t now = time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    const size_t n = strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached.assign(buf, n);
  }
  return cached;
}

// ---------------------------------------------------------------------------------------------
// ActiveStream: one request/response exchange. Its filter chain is a FilterManager; this class
// is what lies around the chain: the codec's stream on one side, the upstream on the other,
// and the stream's timeouts and counters.
class ConnectionManagerImpl::ActiveStream : public RequestDecoder,
                                            public event::DeferredDeletable,
                                            private FilterManagerCallbacks,
                                            private event::DeadlineCallbacks,
                                            private UpstreamRequestCallbacks {
 public:
  // One allocation holds the stream, its filter slots and the filters built in place.
  static std::unique_ptr<ActiveStream> Create(ConnectionManagerImpl& hcm, ResponseEncoder& encoder);
  ~ActiveStream() override;
  // Frees the block Create() allocated (the stream and what trails it).
  static void operator delete(void* p) { BlockCache::Free(p); }

  // RequestDecoder
  void decodeHeaders(std::unique_ptr<RequestHead> head, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(std::unique_ptr<HeaderMap> trailers) override;
  void onResetStream(StreamResetReason reason) override;
  void onAboveWriteBufferHighWatermark() override { onDownstreamWatermark(true); }
  void onBelowWriteBufferLowWatermark() override { onDownstreamWatermark(false); }

  // The manager's list of active streams.
  ActiveStream* prev_ = nullptr;
  ActiveStream* next_ = nullptr;
  bool linked_ = false;

  // Called by the manager once the codec wrote the last byte of the response, or on reset.
  void complete();
  bool tunneling() const { return tunneling_; }
  bool responseHeadSent() const { return fm_.responseHeadSent(); }
  uint16_t responseCode() const { return fm_.streamInfo().response_code; }
  const StreamInfo& info() { return fm_.streamInfo(); }
  void sendLocalReply(uint16_t status, std::string_view body,
                      const std::function<void(HeaderMap&)>& modify) {
    fm_.sendLocalReply(status, body, modify);
  }
  void timeout(stats::Counter& counter, ResponseFlag flag, std::string_view details);
  void rearmAfterLocalReply();
  // The downstream's write buffer went above / below its watermarks.
  void onDownstreamWatermark(bool above) {
    if (upstream_ == nullptr) return;
    if (above) hcm_.stats().upstream_flow_control_paused_reading_total.inc();
    upstream_->readDisable(above);
  }

 private:
  ActiveStream(ConnectionManagerImpl& hcm, ResponseEncoder& encoder, void* filter_storage);

  // FilterManagerCallbacks
  void onRequestHeadersDone(RequestHead& head, bool end_stream) override;
  void onRequestDataDone(Buffer& data, bool end_stream) override;
  void onRequestTrailersDone(HeaderMap& trailers) override;
  void onResponseHeadersDone(ResponseHead& head, bool end_stream) override;
  void onResponseDataDone(Buffer& data, bool end_stream) override;
  void onResponseTrailersDone(HeaderMap& trailers) override;
  void onResetFromFilter() override;
  void onRequestBufferOverflow() override;
  void onResponseBufferOverflow(bool head_held) override;
  void onStreamActivity() override { resetIdleTimer(); }
  event::Dispatcher& dispatcher() override { return hcm_.context_.dispatcher(); }
  uint64_t connectionId() const override { return hcm_.connection_->id(); }
  CalloutClient* calloutClient() override { return hcm_.context_.calloutClient(); }
  bool setUpstream(const UpstreamSpec& spec) override;
  bool enableRetries(const RetryOptions& options) override;
  void addLocalReplyHeaders(HeaderMap& headers) override {
    headers.add("Server", hcm_.config_->server_name);
    headers.add("Date", CachedDate());
  }

  // The whole request went through every filter and none answered.
  void requestReachedEnd() {
    if (!fm_.responseStarted() && !fm_.completed()) {
      fm_.sendLocalReply(404, "no filter answered this request\n", nullptr);
    }
  }
  // Absolute-form to origin-form, then the path in canonical form (path_normalizer.h). On
  // kReject `reason` says why; on kRedirect the head's target is the Location.
  PathResult normalizeTarget(RequestHead& head, const char*& reason, std::string_view& location);
  void resetIdleTimer();
  void onDeadline(event::Deadline& deadline) override;

  void startUpstream(bool end_stream);
  // Request ids and tracing (tracer.h), when the config has them.
  void startTracing(RequestHead& head);
  void finishSpan();
  static constexpr size_t ExchangeOffset() {
    return AlignUp(sizeof(ActiveStream), UpstreamFactory::kExchangeAlign);
  }
  void* exchangeStorage() { return reinterpret_cast<char*>(this) + ExchangeOffset(); }
  void destroyUpstream();
  // UpstreamRequestCallbacks
  void onUpstreamHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override;
  void onUpstreamData(Buffer& data, bool end_stream) override;
  void onUpstreamTrailers(std::unique_ptr<HeaderMap> trailers) override;
  void onUpstreamError(UpstreamErrorKind kind, uint64_t flags) override;
  void readDisableDownstream(bool disable) override;
  void onUpstreamTrailersDropped() override { hcm_.stats().upstream_rq_trailers_dropped.inc(); }
  void onUpstreamAttemptDone(const UpstreamAttempt& attempt) override {
    if (span_ != nullptr) span_->upstream_host.assign(attempt.host);
    fm_.onUpstreamAttemptDone(attempt);
  }
  RetryVerdict onUpstreamRetry(const UpstreamAttempt& attempt, RetryDecision& decision) override {
    return fm_.onUpstreamRetry(attempt, decision);
  }
  void onUpstreamAttemptStart() override { ++fm_.streamInfo().upstream_attempts; }
  void addResponseFlags(uint64_t flags) override { fm_.streamInfo().response_flags |= flags; }

  ConnectionManagerImpl& hcm_;
  ResponseEncoder& encoder_;
  FilterManager fm_;
  // The origin-form target as received, and the canonical one the filters were given (both
  // views into the request head's storage).
  std::string_view received_target_;
  std::string_view canonical_target_;
  // The terminal decision's exchange (UpstreamFactory), built in the stream's own block: no
  // allocation per proxied request.
  UpstreamExchange* upstream_ = nullptr;
  bool upstream_started_ = false;
  // Retries a filter asked for (enableRetries) before the exchange existed; allocated only
  // for streams that retry.
  std::unique_ptr<RetryOptions> retry_options_;
  // The span of a sampled stream (tracing configured), else null.
  std::unique_ptr<ActiveSpan> span_;
  bool terminate_connect_ = false;  // the decision: a CONNECT ends here (no proxy fields)
  uint32_t downstream_read_disables_ = 0;
  // Embedded: no timer object (and no libevent timer) per request.
  event::Deadline body_deadline_;
  event::Deadline idle_deadline_;
  bool completed_ = false;
  bool tunnel_request_ = false;  // the codec holds an allowed Upgrade or CONNECT
  bool early_data_ = false;      // read from TLS 1.3 early data (served: safe to replay)
  bool tunneling_ = false;       // ... and the response opened it
  bool timed_out_ = false;       // answered 408/504 by a timeout already
  bool echo_id_ = false;         // the response carries the request's id back
};

std::unique_ptr<ConnectionManagerImpl::ActiveStream> ConnectionManagerImpl::ActiveStream::Create(
    ConnectionManagerImpl& hcm, ResponseEncoder& encoder) {
  const auto& factories = hcm.config_->filter_factories;
  // [ActiveStream][the upstream exchange's storage, if any][the filters]
  UpstreamFactory* upstreams = hcm.context_.upstreamFactory();
  const size_t exchange_end =
      ExchangeOffset() + (upstreams != nullptr ? upstreams->exchangeSize() : 0);
  const size_t storage_at = AlignUp(exchange_end, FilterManager::kStorageAlign);
  const size_t total = storage_at + FilterManager::TrailingStorageSize(factories);
  static_assert(alignof(ActiveStream) <= FilterManager::kStorageAlign);
  static_assert(alignof(ActiveStream) <= UpstreamFactory::kExchangeAlign);
  // Same-sized blocks come back at every request: a per-thread cache keeps them (a chain of
  // filters makes the block larger than malloc's own per-thread cache).
  char* block = static_cast<char*>(BlockCache::Allocate(total));
  auto* stream = new (block) ActiveStream(hcm, encoder, block + storage_at);
  return std::unique_ptr<ActiveStream>(stream);
}

ConnectionManagerImpl::ActiveStream::ActiveStream(ConnectionManagerImpl& hcm,
                                                  ResponseEncoder& encoder, void* filter_storage)
    : hcm_(hcm),
      encoder_(encoder),
      fm_(*this, hcm.config_->filter_factories, filter_storage,
          g_next_stream_id.fetch_add(1, std::memory_order_relaxed), hcm.config_->buffer_limit) {
  StreamInfo& info = fm_.streamInfo();
  info.downstream_remote = hcm.connection_->remoteAddress();
  info.downstream_local = hcm.connection_->localAddress();
  info.downstream_ssl = hcm.connection_->ssl();
  info.start = hcm.context_.dispatcher().now();
  if (!hcm.config_->access_logs.empty()) info.start_wall = std::chrono::system_clock::now();
  if (hcm.config_->stream_idle_timeout.count() > 0) {
    hcm.context_.dispatcher().armDeadline(idle_deadline_, hcm.config_->stream_idle_timeout, *this);
  }
}

ConnectionManagerImpl::ActiveStream::~ActiveStream() { destroyUpstream(); }

void ConnectionManagerImpl::ActiveStream::destroyUpstream() {
  if (upstream_ == nullptr) return;
  UpstreamExchange* exchange = upstream_;
  upstream_ = nullptr;
  exchange->~UpstreamExchange();
}

void ConnectionManagerImpl::ActiveStream::resetIdleTimer() {
  if (idle_deadline_.armed()) {
    hcm_.context_.dispatcher().armDeadline(idle_deadline_, hcm_.config_->stream_idle_timeout,
                                           *this);
  }
}

void ConnectionManagerImpl::ActiveStream::onDeadline(event::Deadline& deadline) {
  if (&deadline == &body_deadline_) {
    timeout(hcm_.stats().downstream_rq_body_timeout, ResponseFlag::kDurationTimeout,
            "request_body_timeout");
  } else {
    timeout(hcm_.stats().downstream_rq_stream_idle_timeout, ResponseFlag::kStreamIdleTimeout,
            "stream_idle_timeout");
  }
}

void ConnectionManagerImpl::ActiveStream::decodeHeaders(std::unique_ptr<RequestHead> head,
                                                        bool end_stream) {
  StreamInfo& info = fm_.streamInfo();
  info.protocol = hcm_.codec_->protocol();
  // A tunnel's request side is the client's bytes once it opens: no body deadline (the
  // stream's idle timeout still applies), nothing to continue.
  tunnel_request_ = encoder_.tunnelRequest();
  // RFC 8441: an extended CONNECT (HTTP/2's WebSocket) is HTTP/1.1's Upgrade to the filters
  // and to the upstream, so that one route and one plugin serve both.
  if (tunnel_request_ && !head->protocol.empty()) ExtendedConnectToUpgrade(*head);
  if (tunnel_request_) fm_.setTunnelRequest(head->method == "CONNECT");
  if (hcm_.config_->request_id != nullptr || hcm_.config_->tracer != nullptr) startTracing(*head);
  if (!end_stream && !tunnel_request_) {
    // The client may be waiting for permission to send the body.
    encoder_.encode100Continue();
    if (hcm_.config_->request_body_timeout.count() > 0) {
      hcm_.context_.dispatcher().armDeadline(body_deadline_, hcm_.config_->request_body_timeout,
                                             *this);
    }
  }
  // A request refused before any filter sees it still enters the filter manager (the response
  // filters and the log phase see its head), but does not iterate.
  struct Refusal {
    uint16_t status = 0;
    std::string body;
    std::string_view location;
  } refusal;
  // 0-RTT (RFC 8470): early data can be replayed by whoever recorded it, so only a request safe
  // to repeat is served from it; the client sends any other again after the handshake.
  if (info.downstream_ssl != nullptr && info.downstream_ssl->inEarlyData()) {
    const std::string_view method = head->method;
    if ((method != "GET" && method != "HEAD" && method != "OPTIONS") || !end_stream) {
      hcm_.stats().downstream_rq_too_early.inc();
      info.setResponseDetails("too_early");
      refusal.status = 425;
      refusal.body = "too early: send this request again after the TLS handshake\n";
    } else {
      early_data_ = true;
    }
  }
  if (refusal.status == 0) {
    const char* reason = "";
    switch (normalizeTarget(*head, reason, refusal.location)) {
      case PathResult::kUnchanged:
      case PathResult::kNormalized:
        break;
      case PathResult::kReject:
        refusal.status = 400;
        refusal.body = std::string(reason) + "\n";
        break;
      case PathResult::kRedirect:
        refusal.status = 307;
        break;
    }
  }
  if (refusal.status != 0) fm_.abortRequest();
  fm_.decodeHeaders(std::move(head), end_stream);
  if (refusal.status == 0) return;
  const std::string_view location = refusal.location;
  fm_.sendLocalReply(refusal.status, refusal.body, [location](HeaderMap& h) {
    if (!location.empty()) h.add("Location", location);
  });
}

PathResult ConnectionManagerImpl::ActiveStream::normalizeTarget(RequestHead& head,
                                                                const char*& reason,
                                                                std::string_view& location) {
  if (head.path.empty()) return PathResult::kUnchanged;  // CONNECT: no path
  thread_local std::string scratch;
  received_target_ = head.path;
  canonical_target_ = head.path;
  const PathResult result = NormalizePath(head.path, hcm_.config_->path, scratch, reason);
  switch (result) {
    case PathResult::kUnchanged:
      break;
    case PathResult::kNormalized:
      hcm_.stats().downstream_rq_path_normalized.inc();
      canonical_target_ = head.path = head.headers.keep(scratch);
      break;
    case PathResult::kReject:
      hcm_.stats().downstream_rq_path_rejected.inc();
      fm_.streamInfo().setResponseFlag(ResponseFlag::kDownstreamProtocolError, "invalid_path");
      break;
    case PathResult::kRedirect:
      hcm_.stats().downstream_rq_path_redirected.inc();
      location = head.headers.keep(scratch);
      break;
  }
  return result;
}

void ConnectionManagerImpl::ActiveStream::decodeData(Buffer& data, bool end_stream) {
  resetIdleTimer();
  if (end_stream) {
    body_deadline_.cancel();
  } else if (body_deadline_.armed()) {
    hcm_.context_.dispatcher().armDeadline(body_deadline_, hcm_.config_->request_body_timeout,
                                           *this);
  }
  fm_.decodeData(data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  resetIdleTimer();
  body_deadline_.cancel();
  fm_.decodeTrailers(std::move(trailers));
}

void ConnectionManagerImpl::ActiveStream::onResetStream(StreamResetReason reason) {
  fm_.abort();
  StreamInfo& info = fm_.streamInfo();
  ResponseFlag flag = ResponseFlag::kDownstreamConnectionTermination;
  switch (reason) {
    case StreamResetReason::kProtocolError:
      flag = ResponseFlag::kDownstreamProtocolError;
      break;
    case StreamResetReason::kLocalReset:
    case StreamResetReason::kOverflow:
      flag = ResponseFlag::kLocalReset;
      break;
    case StreamResetReason::kConnectError:
      flag = ResponseFlag::kUpstreamConnectionFailure;
      break;
    case StreamResetReason::kConnectionTermination:
    case StreamResetReason::kRemoteReset:
    case StreamResetReason::kRefusedStream:
      break;
  }
  info.setResponseFlag(flag, StreamResetReasonName(reason));
  hcm_.onStreamReset(*this, reason);
}

void ConnectionManagerImpl::ActiveStream::startTracing(RequestHead& head) {
  const ConnectionManagerConfig& config = *hcm_.config_;
  StreamInfo& info = fm_.streamInfo();
  if (config.request_id != nullptr) {
    info.request_id = ApplyRequestId(*config.request_id, head.headers);
    echo_id_ = config.request_id->echo_on_response;
  }
  if (config.tracer == nullptr) return;
  span_ = config.tracer->onRequestHeaders(head.headers);
  if (span_ != nullptr) {
    // The stream's start on the wall clock (the clocks are read for sampled streams only).
    span_->start = std::chrono::system_clock::now() -
                   std::chrono::duration_cast<std::chrono::system_clock::duration>(
                       std::chrono::steady_clock::now() - info.start);
  }
}

void ConnectionManagerImpl::ActiveStream::finishSpan() {
  const std::unique_ptr<ActiveSpan> span = std::move(span_);
  hcm_.config_->tracer->onStreamEnd(
      *span, SpanEnd{fm_.streamInfo(), fm_.requestHead(), canonical_target_}, hcm_.context_);
}

void ConnectionManagerImpl::ActiveStream::rearmAfterLocalReply() {
  // A reply that cannot get out (a client that reads nothing) gets one more idle period; then
  // the stream is reset (its head is out by then), so it never outlives its timeouts.
  if (!completed_ && hcm_.config_->stream_idle_timeout.count() > 0) {
    hcm_.context_.dispatcher().armDeadline(idle_deadline_, hcm_.config_->stream_idle_timeout,
                                           *this);
  }
}

void ConnectionManagerImpl::ActiveStream::timeout(stats::Counter& counter, ResponseFlag flag,
                                                  std::string_view details) {
  if (completed_) return;
  if (timed_out_) {
    // The reply to the first timeout did not get out within another idle period.
    fm_.abort();
    onResetFromFilter();
    return;
  }
  timed_out_ = true;
  counter.inc();
  fm_.streamInfo().setResponseFlag(flag, details);
  // HTTP/1: the connection closes after the answer (the request may be half read). HTTP/2
  // ends only this stream.
  if (!fm_.responseStarted()) {
    if (!hcm_.http2()) hcm_.codec_->shutdownNotice();
    fm_.sendLocalReply(408, "request timeout\n", nullptr);
    rearmAfterLocalReply();
  } else if (!fm_.responseHeadSent()) {
    // A filter holds the response head (buffering its body, say): the client has nothing yet
    // and gets an answer rather than a cut connection.
    if (!hcm_.http2()) hcm_.codec_->shutdownNotice();
    fm_.sendLocalReply(504, "stream timeout\n", nullptr);
    rearmAfterLocalReply();
  } else {
    fm_.abort();
    onResetFromFilter();
  }
}

void ConnectionManagerImpl::ActiveStream::onRequestHeadersDone(RequestHead&, bool end_stream) {
  if (upstream_ != nullptr) {
    startUpstream(end_stream);
    return;
  }
  if (end_stream) requestReachedEnd();
}

void ConnectionManagerImpl::ActiveStream::onRequestDataDone(Buffer& data, bool end_stream) {
  if (upstream_ != nullptr) {
    upstream_->sendData(data, end_stream);
    return;
  }
  data.clear();  // No filter took it and nothing goes upstream.
  if (end_stream) requestReachedEnd();
}

void ConnectionManagerImpl::ActiveStream::onRequestTrailersDone(HeaderMap& trailers) {
  if (upstream_ != nullptr) {
    upstream_->sendTrailers(trailers);
    return;
  }
  requestReachedEnd();
}

void ConnectionManagerImpl::ActiveStream::onResponseHeadersDone(ResponseHead& head,
                                                                bool end_stream) {
  if (echo_id_) {
    EchoRequestId(*hcm_.config_->request_id, fm_.streamInfo().request_id, head.headers);
  }
  encoder_.encodeHeaders(head, end_stream);
  if (!completed_ && fm_.tunnelOpened() && !tunneling_) {
    tunneling_ = true;
    hcm_.stats().downstream_cx_upgrades_total.inc();
    hcm_.stats().downstream_cx_upgrades_active.inc();
  }
}

void ConnectionManagerImpl::ActiveStream::onResponseDataDone(Buffer& data, bool end_stream) {
  encoder_.encodeData(data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::onResponseTrailersDone(HeaderMap& trailers) {
  encoder_.encodeTrailers(trailers);
}

void ConnectionManagerImpl::ActiveStream::onResetFromFilter() {
  if (completed_) return;
  // HTTP/2: RST_STREAM, and the codec tells us (onResetStream); HTTP/1: the connection closes,
  // and its close ends the stream.
  encoder_.resetStream(StreamResetReason::kLocalReset);
}

void ConnectionManagerImpl::ActiveStream::onRequestBufferOverflow() {
  hcm_.stats().downstream_rq_too_large.inc();
  // HTTP/1: the rest of the body is not read, so the connection closes after the 413. (HTTP/2
  // resets the stream's request side after the response: RST_STREAM NO_ERROR.)
  if (!hcm_.http2()) hcm_.codec_->shutdownNotice();
}

void ConnectionManagerImpl::ActiveStream::onResponseBufferOverflow(bool head_held) {
  hcm_.stats().downstream_rs_too_large.inc();
  // Its head still held by a filter: a 500 follows, and the rest of the upstream's response is
  // not read (its connection is not reused).
  if (head_held && upstream_ != nullptr) upstream_->reset();
}

bool ConnectionManagerImpl::ActiveStream::setUpstream(const UpstreamSpec& spec) {
  UpstreamFactory* upstreams = hcm_.context_.upstreamFactory();
  if (upstreams == nullptr || upstream_started_) return false;
  // A later decision replaces an earlier one, which must stay if the new one is refused.
  if (upstream_ != nullptr) {
    if (!upstreams->hasCluster(spec.cluster)) return false;
    destroyUpstream();
  }
  UpstreamOptions options;
  options.buffer_limit = hcm_.config_->buffer_limit;
  // Attempts are measured only for a chain with a filter that observes them.
  options.observe_attempts = fm_.observesUpstreamAttempts() || span_ != nullptr;
  // The upstream's host and timings are recorded for whoever reads them (the access logs).
  if (!hcm_.config_->access_logs.empty()) options.upstream_info = &fm_.streamInfo().upstream;
  upstream_ = upstreams->create(exchangeStorage(), spec, *this, options);
  if (upstream_ == nullptr) return false;
  if (retry_options_ != nullptr && !upstream_->enableRetries(*retry_options_)) {
    retry_options_.reset();  // a tunnel that ends here: nothing to retry
  }
  terminate_connect_ = spec.terminate_connect;
  fm_.streamInfo().route_name.assign(spec.route_name);
  fm_.streamInfo().cluster_name.assign(spec.cluster);
  return true;
}

bool ConnectionManagerImpl::ActiveStream::enableRetries(const RetryOptions& options) {
  if (upstream_started_ || tunnel_request_) return false;
  retry_options_ = std::make_unique<RetryOptions>(options);
  if (upstream_ != nullptr && !upstream_->enableRetries(options)) {
    retry_options_.reset();
    return false;
  }
  return true;
}

void ConnectionManagerImpl::ActiveStream::startUpstream(bool end_stream) {
  RequestHead& head = *fm_.requestHead();
  upstream_started_ = true;
  if (terminate_connect_ && tunnel_request_ && head.method == "CONNECT") {
    // The tunnel ends here: no request goes upstream, so no proxy fields either.
    upstream_->start(head, end_stream, tunnel_request_);
    return;
  }
  // Proxy fields (RFC 7239's de-facto predecessors): the client's address in X-Forwarded-For
  // as configured, the scheme it used in X-Forwarded-Proto (this hop's).
  using ForwardedFor = ConnectionManagerConfig::ForwardedFor;
  const ForwardedFor xff = hcm_.config_->forwarded_for;
  if (xff != ForwardedFor::kKeep) {
    const std::string client = fm_.streamInfo().downstream_remote.ip();
    const HeaderMap::Entry* existing = head.headers.get(KnownHeader::kXForwardedFor);
    if (xff == ForwardedFor::kAppend && existing != nullptr) {
      // Every X-Forwarded-For field, joined, then ours (RFC 9110 §5.3: one list).
      std::string joined;
      for (std::string_view v : head.headers.getAll("x-forwarded-for")) {
        if (!joined.empty()) joined.append(", ");
        joined.append(v);
      }
      joined.append(", ").append(client);
      head.headers.set("X-Forwarded-For", joined);
    } else {
      head.headers.set("X-Forwarded-For", client);
    }
  }
  head.headers.set("X-Forwarded-Proto", fm_.streamInfo().scheme());
  // The upstream learns the request may be a replay and can answer 425 itself (RFC 8470 5.1).
  if (early_data_) head.headers.set("Early-Data", "1");
  SetForwardedClientCert(head.headers, hcm_.config_->forward_client_cert,
                         fm_.streamInfo().downstream_ssl);
  if (!hcm_.config_->via.empty()) head.headers.add("Via", hcm_.config_->via);
  if (hcm_.config_->forward_path_as_received && head.path.data() == canonical_target_.data() &&
      head.path.size() == canonical_target_.size()) {
    head.path = received_target_;  // no filter rewrote it
  }
  upstream_->start(head, end_stream, tunnel_request_);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamHeaders(std::unique_ptr<ResponseHead> head,
                                                            bool end_stream) {
  if (!hcm_.config_->via.empty()) head->headers.add("Via", hcm_.config_->via);
  fm_.encodeHeaders(std::move(head), end_stream);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamData(Buffer& data, bool end_stream) {
  fm_.encodeData(data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamTrailers(std::unique_ptr<HeaderMap> trailers) {
  fm_.encodeTrailers(std::move(trailers));
}

void ConnectionManagerImpl::ActiveStream::onUpstreamError(UpstreamErrorKind kind, uint64_t flags) {
  StreamInfo& info = fm_.streamInfo();
  const UpstreamErrorInfo& error = DescribeUpstreamError(kind);
  info.setResponseFlag(error.flag, error.details);
  info.response_flags |= flags;
  if (fm_.responseHeadSent()) {
    // Part of a response is out: the client must see it cut.
    fm_.abort();
    onResetFromFilter();
    return;
  }
  // Nothing is out yet, even if a filter holds the upstream's head: the client gets the error
  // as a response of its own (sendLocalReply drops what is left of the upstream's).
  fm_.sendLocalReply(error.status, std::string(error.details) + "\n", nullptr);
}

void ConnectionManagerImpl::ActiveStream::readDisableDownstream(bool disable) {
  if (disable) {
    if (downstream_read_disables_ == 0) {
      hcm_.stats().downstream_flow_control_paused_reading_total.inc();
    }
    ++downstream_read_disables_;
  } else if (downstream_read_disables_ > 0) {
    --downstream_read_disables_;
  } else {
    return;
  }
  encoder_.readDisable(disable);
}

void ConnectionManagerImpl::ActiveStream::complete() {
  if (completed_) return;
  completed_ = true;
  if (tunneling_) hcm_.stats().downstream_cx_upgrades_active.dec();
  // A request still in flight upstream is abandoned (freed with the stream, after this event).
  if (upstream_ != nullptr) upstream_->reset();
  while (downstream_read_disables_ > 0) readDisableDownstream(false);
  body_deadline_.cancel();
  idle_deadline_.cancel();
  if (span_ != nullptr) finishSpan();
  fm_.complete();
  // After the filters' log phase (what they set in the stream's metadata is in the line).
  if (!hcm_.config_->access_logs.empty()) {
    const AccessLogContext context{.info = fm_.streamInfo(),
                                   .request = fm_.requestHead(),
                                   .response = fm_.responseHead(),
                                   .response_trailers = fm_.responseTrailers(),
                                   .original_path = received_target_,
                                   .stream_id = fm_.streamId(),
                                   .connection_id = connectionId(),
                                   .end = hcm_.context_.dispatcher().now()};
    for (const auto& log : hcm_.config_->access_logs) log->log(context);
  }
}

// ---------------------------------------------------------------------------------------------

ConnectionManagerImpl::ConnectionManagerImpl(ConnectionManagerConfigPtr config,
                                             network::FilterContext& context)
    : config_(std::move(config)), context_(context) {}

// Paid per idle keep-alive connection (tools/bench/idle_memory): 152 bytes is malloc's 160-byte
// chunk, the idle-list links included. Check the benchmark before growing it.
static_assert(sizeof(ConnectionManagerImpl) <= 152, "ConnectionManagerImpl grew");

ConnectionManagerImpl::~ConnectionManagerImpl() {
  leaveIdle();
  while (streams_ != nullptr) {
    ActiveStream* stream = streams_;
    streams_ = stream->next_;
    stream->complete();
    stats().downstream_rq_active.dec();
    delete stream;
  }
}

void ConnectionManagerImpl::initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) {
  connection_ = &cb.connection();
  connection_->addConnectionCallbacks(*this);
}

network::FilterStatus ConnectionManagerImpl::onNewConnection() {
  // The first request's head must arrive within the timeout from the connection's start:
  // a client that connects and trickles (or sends nothing) is cut off.
  armTimer(TimerMode::kHeaders);
  // Nothing in progress yet: reclaimable like a keep-alive connection between requests (as in
  // nginx), the least recently active first, so a flood of silent connections cannot hold every
  // slot until the headers timeout.
  updateIdle();
  return network::FilterStatus::kContinue;
}

namespace {
// RFC 9113 §3.4: what an HTTP/2 client sends first, with prior knowledge or after ALPN.
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
}  // namespace

bool ConnectionManagerImpl::createCodec(const Buffer& data) {
  if (codec_kind_ == CodecKind::kUnknown) {
    CodecKind kind = CodecKind::kHttp1;
    switch (config_->codec_type) {
      case ConnectionManagerConfig::CodecType::kHttp1:
        break;
      case ConnectionManagerConfig::CodecType::kHttp2:
        kind = CodecKind::kHttp2;
        break;
      case ConnectionManagerConfig::CodecType::kAuto: {
        const std::string_view alpn = connection_->nextProtocol();
        if (alpn == "h2") {
          kind = CodecKind::kHttp2;
        } else if (alpn.empty()) {
          // Cleartext (or TLS without ALPN): HTTP/2 with prior knowledge starts with the preface,
          // which no HTTP/1 request does. Undecided while what came so far is a prefix of it.
          char head[kHttp2Preface.size()];
          const size_t n = std::min(data.length(), kHttp2Preface.size());
          data.copyOut(0, n, head);
          if (std::string_view(head, n) == kHttp2Preface.substr(0, n)) {
            if (n < kHttp2Preface.size()) return false;
            kind = CodecKind::kHttp2;
          }
        }
        break;
      }
    }
    codec_kind_ = kind;
    if (kind == CodecKind::kHttp2) {
      stats().downstream_cx_http2_total.inc();
    } else {
      stats().downstream_cx_http1_total.inc();
    }
  }
  ServerConnectionCallbacks& callbacks = *this;
  if (codec_kind_ == CodecKind::kHttp2) {
    // What one stream's response may hold while the client's window (or the client) lags, before
    // its upstream stops being read: HAProxy keeps one 16 KiB buffer per stream, nginx about the
    // same. A connection of 100 streams then holds at most 6.4 MiB for a client that reads nothing.
    constexpr uint32_t kHttp2StreamSendBuffer = 64 * 1024;
    codec_ = std::make_unique<http2::ServerConnectionImpl>(
        *connection_, callbacks, config_->http2, *config_->http2_stats, context_.dispatcher(),
        std::min(config_->buffer_limit, kHttp2StreamSendBuffer));
  } else {
    // Created on the first byte of a request and released when the connection goes idle: an
    // idle keep-alive connection holds no codec state.
    codec_ = std::make_unique<http1::ServerConnectionImpl>(*connection_, callbacks, config_->codec);
  }
  return true;
}

network::FilterStatus ConnectionManagerImpl::onData(Buffer& data, bool end_stream) {
  if (closing_) {
    data.clear();
    return network::FilterStatus::kStopIteration;
  }
  // Activity: out of the idle list while these bytes are handled; back in at the most recent
  // end if they leave nothing in progress.
  leaveIdle();
  if (!codec_ && !createCodec(data)) {
    // Part of what may be the HTTP/2 preface: wait for the rest (under the headers timeout).
    if (end_stream) closeConnection(/*linger=*/false);
    return network::FilterStatus::kStopIteration;
  }
  codec_->dispatch(data);
  // The drain found this connection before its first bytes: HTTP/2's notice goes out now (an
  // HTTP/1 request learns it in newStream).
  if (draining_ && http2() && codec_) codec_->shutdownNotice();
  // Only a tunnel reads half-closes (otherwise a FIN closes the connection).
  if (end_stream && codec_) codec_->onRemoteHalfClose();
  updateIdle();
  return network::FilterStatus::kStopIteration;
}

void ConnectionManagerImpl::onDrain() {
  if (closing_ || draining_) return;
  draining_ = true;
  // Nothing is closed here. A connection with a request in progress (or its bytes in the
  // socket, unread) closes after that response ("Connection: close"; HTTP/2: the notice GOAWAY,
  // then the final one). An idle one may be about to carry a request — a keep-alive client
  // sending its next one, or a connection accepted a moment before the drain whose first bytes
  // are still on their way — and closing it now would reset that request: it gets the drain
  // timeout to send one, which is answered with "Connection: close" (nginx closes idle
  // keep-alive connections at once on a graceful stop, and a client racing it fails).
  // HTTP/1: a response whose head is out already cannot carry the notice; closing after it
  // would fail the client's next request on this connection, so the connection stays for the
  // drain timeout after it instead, and the next response says "Connection: close".
  if (codec_ && (http2() || streams_ == nullptr || !streams_->responseHeadSent())) {
    codec_->shutdownNotice();
  }
  // HTTP/2's wait for the PING ack is bounded by it too. (A partial HTTP/1 request keeps its
  // headers or body timeout.)
  if (http2() || (streams_ == nullptr && !(codec_ && codec_->requestInProgress()))) {
    armTimer(TimerMode::kDrain);
  }
}

void ConnectionManagerImpl::onDrainTimeout() {
  if (closing_) return;
  if (http2() && codec_) {
    // The client did not answer the notice's PING in time: the final GOAWAY now. The streams
    // in progress finish; the codec reports the connection idle (close) after the last one.
    codec_->goAway();
    if (streams_ == nullptr && !codec_->requestInProgress()) {
      stats().downstream_cx_drain_close.inc();
      closeConnection(/*linger=*/true);  // frames the client still sends are read, not reset
    }
    return;
  }
  if (streams_ != nullptr || (codec_ && codec_->requestInProgress())) return;
  if (connection_->inputPending()) {
    // A request arrived in this very loop iteration: it is read next and served (then closed).
    armTimer(TimerMode::kDrain);
    return;
  }
  stats().downstream_cx_drain_close.inc();
  SLUICE_LOG(kDebug, "[C%d] idle connection closed by the drain", connection_->id());
  closeConnection(/*linger=*/false);
}

bool ConnectionManagerImpl::reclaim() {
  // Listed only while nothing is in progress here. What the manager does not see: the last
  // response's bytes still in the write buffer (a slow reader), and the client's next request
  // already in the socket, unread — closing then would lose either.
  if (connection_->writeBufferLength() > 0 || connection_->inputPending()) return false;
  SLUICE_LOG(kDebug, "[C%d] idle connection closed to make room for a new one", connection_->id());
  beginClose();
  armTimer(TimerMode::kNone);
  connection_->close(network::CloseType::kNoFlush);
  return true;
}

void ConnectionManagerImpl::beginClose() {
  closing_ = true;
  leaveIdle();
}

void ConnectionManagerImpl::updateIdle() {
  const bool idle = !closing_ && streams_ == nullptr && !(codec_ && codec_->requestInProgress()) &&
                    connection_->state() == network::ConnectionState::kOpen;
  if (idle == idleListed()) return;
  network::IdleConnectionPool* pool = context_.idleConnections();
  if (pool == nullptr) return;
  if (idle) {
    pool->add(*this);
  } else {
    pool->remove(*this);
  }
}

void ConnectionManagerImpl::onAboveWriteBufferHighWatermark() {
  if (codec_) codec_->onUnderlyingConnectionAboveWriteBufferHighWatermark();
}

void ConnectionManagerImpl::onBelowWriteBufferLowWatermark() {
  if (codec_) codec_->onUnderlyingConnectionBelowWriteBufferLowWatermark();
}

void ConnectionManagerImpl::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::kConnected) return;
  beginClose();
  armTimer(TimerMode::kNone);
  // The connection went away with streams unfinished (for a tunnel that is how it ends).
  while (streams_ != nullptr) {
    if (!streams_->tunneling()) stats().downstream_rq_reset.inc();
    destroyStream(*streams_);
  }
}

RequestDecoder& ConnectionManagerImpl::newStream(ResponseEncoder& encoder) {
  // From here the stream's own timeouts apply.
  armTimer(TimerMode::kNone);
  leaveIdle();
  ++requests_;
  stats().downstream_rq_total.inc();
  stats().downstream_rq_active.inc();
  if (requests_ == config_->max_requests_per_connection) {
    // This stream is the connection's last.
    stats().downstream_cx_max_requests_reached.inc();
    codec_->shutdownNotice();
  } else if (draining_ && !http2()) {
    codec_->shutdownNotice();  // "Connection: close" on this response
  }
  ActiveStream* stream = ActiveStream::Create(*this, encoder).release();
  stream->linked_ = true;
  stream->next_ = streams_;
  if (streams_ != nullptr) streams_->prev_ = stream;
  streams_ = stream;
  return *stream;
}

void ConnectionManagerImpl::destroyStream(ActiveStream& stream) {
  if (!stream.linked_) return;
  stream.linked_ = false;
  if (stream.prev_ != nullptr) {
    stream.prev_->next_ = stream.next_;
  } else {
    streams_ = stream.next_;
  }
  if (stream.next_ != nullptr) stream.next_->prev_ = stream.prev_;
  stream.prev_ = stream.next_ = nullptr;
  stream.complete();
  stats().downstream_rq_active.dec();
  const StreamInfo& info = stream.info();
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            context_.dispatcher().now() - info.start)
                                            .count());
  stats().downstream_rq_time.record(ms);
  if (info.route != nullptr && info.route->stats != nullptr) {
    const RouteHandle::Stats& rs = *info.route->stats;
    rs.rq_total.inc();
    if (info.response_code >= 100 && info.response_code < 600) {
      rs.rq_xx[info.response_code / 100 - 1]->inc();
    }
    rs.rq_time.record(ms);
  }
  // Why streams ended as they did, typed (a bit test per flag only when any is set).
  if (uint64_t flags = info.response_flags; flags != 0) {
    for (int i = 0; i < kResponseFlagCount; ++i) {
      if ((flags & (uint64_t{1} << i)) != 0) stats().response_flag[i]->inc();
    }
  }
  // We may be inside one of the stream's callbacks: free it after this event.
  context_.dispatcher().deferredDelete(std::unique_ptr<ActiveStream>(&stream));
}

void ConnectionManagerImpl::onStreamReset(ActiveStream& stream, StreamResetReason reason) {
  if (!stream.linked_) return;
  if (reason != StreamResetReason::kProtocolError) {
    stats().downstream_rq_reset.inc();
  } else if (http2()) {
    // (HTTP/1 counts its protocol errors in onProtocolError, which follows.)
    stats().downstream_rq_protocol_error.inc();
  }
  destroyStream(stream);
}

void ConnectionManagerImpl::onStreamComplete(RequestDecoder& decoder) {
  auto& stream = static_cast<ActiveStream&>(decoder);
  chargeStatus(stream.responseCode());
  destroyStream(stream);
}

void ConnectionManagerImpl::onRequestStart() {
  // The first request's deadline runs from the connection's start.
  if (timer_mode_ != TimerMode::kHeaders) armTimer(TimerMode::kHeaders);
}

void ConnectionManagerImpl::armTimer(TimerMode mode) {
  // Idle while the server drains: the drain's (shorter) wait for a last request applies.
  if (mode == TimerMode::kIdle && draining_) mode = TimerMode::kDrain;
  timer_mode_ = mode;
  std::chrono::milliseconds delay{0};
  switch (mode) {
    case TimerMode::kNone:
      break;
    case TimerMode::kHeaders:
      delay = config_->request_headers_timeout;
      break;
    case TimerMode::kIdle:
      delay = config_->idle_timeout;
      break;
    case TimerMode::kDrain:
      // "0s" is not "never": idle connections close at the loop's next turn.
      context_.dispatcher().armDeadline(deadline_, config_->drain_timeout, *this);
      return;
    case TimerMode::kResume:
      context_.dispatcher().armDeadline(deadline_, std::chrono::milliseconds(0), *this);
      return;
  }
  if (delay.count() > 0) {
    context_.dispatcher().armDeadline(deadline_, delay, *this);
  } else {
    timer_mode_ = TimerMode::kNone;  // disabled by config ("0s")
    deadline_.cancel();
  }
}

void ConnectionManagerImpl::onDeadline(event::Deadline&) {
  const TimerMode mode = timer_mode_;
  timer_mode_ = TimerMode::kNone;
  switch (mode) {
    case TimerMode::kNone:
      break;
    case TimerMode::kHeaders:
      onHeadersTimeout();
      break;
    case TimerMode::kIdle:
      onIdleTimeout();
      break;
    case TimerMode::kDrain:
      onDrainTimeout();
      break;
    case TimerMode::kResume:
      if (codec_ && !closing_) {
        codec_->resume();
        // Nothing was pipelined after all: the connection is idle.
        if (streams_ == nullptr && !codec_->requestInProgress() && !closing_) {
          armTimer(TimerMode::kIdle);
          updateIdle();
        }
      }
      break;
  }
}

void ConnectionManagerImpl::onProtocolError(uint16_t status, std::string_view reason,
                                            ResponseEncoder* encoder) {
  stats().downstream_rq_protocol_error.inc();
  if (status != 0) stats().protocolErrorCounter(status).inc();
  armTimer(TimerMode::kNone);
  // A request the codec refused before it became a stream is logged as Envoy does (DPE).
  if (streams_ == nullptr && encoder != nullptr) logWithoutStream(status, reason);
  while (streams_ != nullptr) destroyStream(*streams_);
  if (encoder != nullptr) {
    sendErrorResponse(*encoder, status, std::string(reason) + "\n");
  } else {
    closeConnection(/*linger=*/true);
  }
}

void ConnectionManagerImpl::logWithoutStream(uint16_t status, std::string_view details) {
  if (config_->access_logs.empty()) return;
  StreamInfo info;
  info.downstream_remote = connection_->remoteAddress();
  info.downstream_local = connection_->localAddress();
  info.downstream_ssl = connection_->ssl();
  info.protocol = codec_ ? codec_->protocol() : Protocol::kHttp11;
  info.start = context_.dispatcher().now();
  info.start_wall = std::chrono::system_clock::now();
  info.response_code = status;
  info.setResponseFlag(ResponseFlag::kDownstreamProtocolError, details);
  const AccessLogContext context{
      .info = info, .connection_id = connection_->id(), .end = info.start};
  for (const auto& log : config_->access_logs) log->log(context);
}

void ConnectionManagerImpl::closeConnection(bool linger) {
  beginClose();
  if (linger && config_->lingering_timeout.count() > 0) {
    stats().downstream_cx_lingering_close.inc();
    connection_->closeLingering(config_->lingering_timeout, config_->lingering_time);
    return;
  }
  connection_->close(network::CloseType::kFlushWrite);
}

void ConnectionManagerImpl::sendErrorResponse(ResponseEncoder& encoder, uint16_t status,
                                              std::string_view body) {
  chargeStatus(status);
  ResponseHead head;
  head.status = status;
  head.headers.add("Server", config_->server_name);
  head.headers.add("Date", CachedDate());
  head.headers.add("Content-Type", "text/plain; charset=utf-8");
  head.headers.add("Content-Length", std::to_string(body.size()));
  encoder.encodeHeaders(head, false);
  Buffer b;
  b.add(body);
  encoder.encodeData(b, true);  // completes the response: onCodecIdle(close=true)
}

void ConnectionManagerImpl::onCodecIdle(bool close) {
  if (closing_) return;
  if (close) {
    if (draining_) stats().downstream_cx_drain_close.inc();
    closeConnection(codec_->inputUnread());
    return;
  }
  // Pipelined requests already buffered are parsed outside this callback chain.
  if (codec_->bufferedBytes() > 0) {
    armTimer(TimerMode::kResume);
    return;
  }
  // The connection is idle now. An HTTP/1 codec is let go (we are inside one of its calls, so
  // it is freed after this event) until the next request's first byte.
  if (codec_->releasableWhenIdle()) context_.dispatcher().deferredDelete(std::move(codec_));
  armTimer(TimerMode::kIdle);
  updateIdle();
}

void ConnectionManagerImpl::chargeStatus(uint16_t status) {
  if (status == 0) return;
  switch (status / 100) {
    case 1:
      stats().downstream_rq_1xx.inc();
      break;
    case 2:
      stats().downstream_rq_2xx.inc();
      break;
    case 3:
      stats().downstream_rq_3xx.inc();
      break;
    case 4:
      stats().downstream_rq_4xx.inc();
      break;
    default:
      stats().downstream_rq_5xx.inc();
      break;
  }
}

void ConnectionManagerImpl::onHeadersTimeout() {
  if (closing_ || streams_ != nullptr) return;
  stats().downstream_rq_headers_timeout.inc();
  SLUICE_LOG(kDebug, "[C%d] request headers timeout", connection_->id());
  beginClose();
  if (codec_ && codec_->protocol() != Protocol::kHttp2 && codec_->requestInProgress()) {
    // Part of an HTTP/1 request arrived: say why before closing, as nginx and Envoy do.
    chargeStatus(408);
    ResponseHead head;
    head.status = 408;
    const std::string body = "request headers timeout\n";
    head.headers.add("Server", config_->server_name);
    head.headers.add("Date", CachedDate());
    head.headers.add("Content-Type", "text/plain; charset=utf-8");
    head.headers.add("Content-Length", std::to_string(body.size()));
    head.headers.add("Connection", "close");
    Buffer out;
    http1::EncodeResponseHead(head, out);
    out.add(body);
    connection_->write(out, false);
  } else if (codec_) {
    codec_->goAway();
  }
  // Not lingering: a client this slow is what the timeout is for (Slowloris).
  closeConnection(/*linger=*/false);
}

void ConnectionManagerImpl::onIdleTimeout() {
  if (closing_ || streams_ != nullptr || (codec_ && codec_->requestInProgress())) return;
  stats().downstream_cx_idle_timeout.inc();
  beginClose();
  if (codec_) codec_->goAway();
  connection_->close(network::CloseType::kFlushWrite);
}

}  // namespace sluice::http
