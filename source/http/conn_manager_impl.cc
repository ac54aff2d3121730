#include "source/http/conn_manager_impl.h"

#include <time.h>

#include <atomic>
#include <optional>

#include "source/common/block_cache.h"
#include "source/common/logging.h"
#include "source/http/connect_tunnel.h"
#include "source/http/http1/parser.h"
#include "source/http/path_normalizer.h"
#include "source/http/upstream_request.h"
#include "source/upstream/cluster.h"

namespace sluice::http {

namespace {

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

// Pipelined bytes buffered while a response is in progress; above this, stop reading.
constexpr size_t kMaxPipelinedBytes = 64 * 1024;
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
// ActiveStream: one request/response exchange and its filter chain.
//
// Each direction iterates the filters in its order (requests: config order; responses: the
// reverse). A filter that stops holds that direction at its position: later data is buffered
// there (and trailers held) until the filter continues; filters before it keep seeing events.
class ConnectionManagerImpl::ActiveStream : public RequestDecoder,
                                            public event::DeferredDeletable,
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

  // Called by the manager once the codec wrote the last byte of the response, or on reset.
  void complete();
  bool responseStarted() const { return encode_.headers_entered; }
  bool tunneling() const { return tunneling_; }
  uint16_t responseCode() const { return info_.response_code; }
  void sendLocalReply(uint16_t status, std::string_view body,
                      const std::function<void(HeaderMap&)>& modify);
  void resetFromFilter();
  // A local reply once the response's head entered the filters but has not reached the codec.
  void sendDirectLocalReply(uint16_t status, std::string_view body,
                            const std::function<void(HeaderMap&)>& modify);
  void timeout(stats::Counter& counter, const char* flag);

 private:
  enum class Stop { kNone, kData, kTrailers };
  // One direction's iteration state. The headers and the body may be held at different
  // filters: the headers at the filter that paused them, the body at or before it (data never
  // passes the headers).
  struct Direction {
    bool decode;
    bool headers_stopped = false;
    size_t headers_stop_pos = 0;
    Stop stop = Stop::kNone;  // where data (and trailers) are held
    size_t stop_pos = 0;
    // The filter at stop_pos asked to buffer (kStopIterationAndBuffer): each later part is added
    // to `buffered` and the filter is called with all of it, so the call with end_stream sees
    // the whole body (the promise of SL_ACTION_STOP_AND_BUFFER).
    bool buffering = false;
    bool headers_entered = false;  // headers have begun iterating
    bool headers_end_stream = false;
    bool end_seen = false;  // the source sent its last part
    bool aborted = false;   // no more iteration (local reply, reset)
    // A filter added trailers to a message that had none (addTrailers) from the data hook that
    // carried the end: they follow the data from filter `trailers_from` once it passed.
    bool trailers_pending = false;
    // The data hook now under way carries the direction's end (addTrailers is allowed there).
    bool end_in_hook = false;
    size_t trailers_from = 0;
    Buffer buffered;
    std::unique_ptr<HeaderMap> trailers;
  };

  class FilterSlot : public DecoderFilterCallbacks, public EncoderFilterCallbacks {
   public:
    FilterSlot(ActiveStream& stream, size_t index) : stream_(stream), index_(index) {}
    ~FilterSlot() override {
      if (owned_) {
        delete filter_;
      } else if (filter_ != nullptr) {
        filter_->~StreamFilter();  // built in place in the stream's block
      }
    }
    void set(StreamFilter* filter, bool owned) {
      filter_ = filter;
      owned_ = owned;
    }
    StreamFilter& filter() { return *filter_; }
    void cacheHooks() { hooks_ = filter_->hooks(); }
    bool wants(uint32_t hook) const { return (hooks_ & hook) != 0; }

    event::Dispatcher& dispatcher() override { return stream_.hcm_.context_.dispatcher(); }
    StreamInfo& streamInfo() override { return stream_.info_; }
    uint64_t streamId() const override { return stream_.id_; }
    uint64_t connectionId() const override { return stream_.hcm_.connection_->id(); }
    void resetStream() override { stream_.resetFromFilter(); }
    bool continueDecoding() override { return stream_.resume(stream_.decode_, index_); }
    bool setUpstream(const UpstreamSpec& spec) override { return stream_.setUpstream(spec); }
    Buffer* decodingBuffer() override { return stream_.heldAt(stream_.decode_, index_); }
    void sendLocalReply(uint16_t status, std::string_view body,
                        const std::function<void(HeaderMap&)>& modify) override {
      stream_.sendLocalReply(status, body, modify);
    }
    void encodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override {
      stream_.startResponse(std::move(head), end_stream);
    }
    void encodeData(Buffer& data, bool end_stream) override {
      stream_.sourceData(stream_.encode_, data, end_stream);
    }
    void encodeTrailers(std::unique_ptr<HeaderMap> trailers) override {
      stream_.sourceTrailers(stream_.encode_, std::move(trailers));
    }
    RequestHead& requestHead() override { return *stream_.request_head_; }
    bool streamCompleted() const override { return stream_.completed_; }
    RequestHead* requestHeadIfAny() override { return stream_.request_head_.get(); }
    ResponseHead* responseHeadIfAny() override { return stream_.response_head_.get(); }
    HeaderMap* requestTrailers() override { return stream_.decode_.trailers.get(); }
    HeaderMap* responseTrailers() override { return stream_.encode_.trailers.get(); }
    CalloutClient* calloutClient() override { return stream_.hcm_.context_.calloutClient(); }
    uint32_t bufferLimit() const override { return stream_.hcm_.config_->buffer_limit; }
    HeaderMap* addTrailers(bool request) override {
      return stream_.addTrailers(request ? stream_.decode_ : stream_.encode_);
    }
    bool continueEncoding() override {
      return stream_.resume(stream_.encode_, stream_.filter_count_ - 1 - index_);
    }
    Buffer* encodingBuffer() override {
      return stream_.heldAt(stream_.encode_, stream_.filter_count_ - 1 - index_);
    }

   private:
    ActiveStream& stream_;
    const size_t index_;
    StreamFilter* filter_ = nullptr;
    uint32_t hooks_ = kAllHooks;
    bool owned_ = false;
  };

  ActiveStream(ConnectionManagerImpl& hcm, ResponseEncoder& encoder, FilterSlot* slots,
               char* in_place);

  FilterSlot& slotAt(const Direction& d, size_t pos) {
    return slots_[d.decode ? pos : filter_count_ - 1 - pos];
  }
  StreamFilter& filterAt(const Direction& d, size_t pos) { return slotAt(d, pos).filter(); }
  bool live(const Direction& d) const { return !d.aborted && !completed_; }
  // The body `d` holds at the filter at `pos` (in d's order), or nullptr when that filter holds
  // none of it: a filter may change only what it holds.
  Buffer* heldAt(Direction& d, size_t pos) {
    return d.stop != Stop::kNone && d.stop_pos == pos ? &d.buffered : nullptr;
  }

  void startResponse(std::unique_ptr<ResponseHead> head, bool end_stream);
  // Events from a direction's source (the codec for requests, a filter for responses).
  void sourceData(Direction& d, Buffer& data, bool end_stream);
  void sourceTrailers(Direction& d, std::unique_ptr<HeaderMap> trailers);
  // Resumes `d` after the filter at `pos` (in d's order) had stopped it.
  // Resumes direction `d` stopped at filter `pos`; false when it is not stopped there.
  bool resume(Direction& d, size_t pos);
  bool iterateHeaders(Direction& d, size_t from);
  bool deliverData(Direction& d, size_t from, Buffer& data, bool end_stream);
  bool deliverDataChain(Direction& d, size_t from, Buffer& data, bool end_stream);
  HeaderMap* addTrailers(Direction& d);
  bool deliverTrailers(Direction& d, size_t from);
  // The end of each chain: for requests nothing consumes the bytes yet (the router will); for
  // responses the codec.
  void sinkHeaders(Direction& d);
  void sinkData(Direction& d, Buffer& data, bool end_stream);
  void sinkTrailers(Direction& d);
  void requestReachedEnd();
  // Absolute-form to origin-form, then the path in canonical form (path_normalizer.h). False
  // when the request was answered instead (400, 307).
  bool normalizeTarget();
  bool overBufferLimit(Direction& d);
  void resetIdleTimer();
  void onDeadline(event::Deadline& deadline) override;

 public:
  bool setUpstream(const UpstreamSpec& spec);
  // The downstream's write buffer went above / below its watermarks.
  void onDownstreamWatermark(bool above) {
    if (upstream_ == nullptr) return;
    if (above) hcm_.stats().upstream_flow_control_paused_reading_total.inc();
    upstream_->readDisable(above);
  }

 private:
  void startUpstream(bool end_stream);
  // UpstreamRequestCallbacks
  void onUpstreamHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override;
  void onUpstreamData(Buffer& data, bool end_stream) override;
  void onUpstreamTrailers(std::unique_ptr<HeaderMap> trailers) override;
  void onUpstreamError(uint16_t status, const char* flag) override;
  void readDisableDownstream(bool disable) override;
  void onUpstreamAttemptDone(const UpstreamAttempt& attempt) override;

  ConnectionManagerImpl& hcm_;
  ResponseEncoder& encoder_;
  const uint64_t id_;
  StreamInfo info_;
  // In the block after this object: filter_count_ slots, then the filters built in place.
  FilterSlot* const slots_;
  const size_t filter_count_;
  std::unique_ptr<RequestHead> request_head_;
  std::unique_ptr<ResponseHead> response_head_;
  // The origin-form target as received, and the canonical one the filters were given (both
  // views into the request head's storage).
  std::string_view received_target_;
  std::string_view canonical_target_;
  Direction decode_{.decode = true};
  Direction encode_{.decode = false};
  // The terminal decision, and the exchange that carries it out.
  // In the stream's own block: no allocation per proxied request.
  std::optional<UpstreamTarget> upstream_target_;
  std::optional<UpstreamRequest> upstream_request_;
  std::unique_ptr<ConnectTunnel> connect_tunnel_;  // rare: CONNECT ending here
  UpstreamExchange* upstream_ = nullptr;           // whichever of the two carries the stream
  uint32_t downstream_read_disables_ = 0;
  // Embedded: no timer object (and no libevent timer) per request.
  event::Deadline body_deadline_;
  event::Deadline idle_deadline_;
  bool completed_ = false;
  bool request_complete_ = false;
  bool tunnel_request_ = false;  // the codec holds an allowed Upgrade or CONNECT
  bool early_data_ = false;      // read from TLS 1.3 early data (served: safe to replay)
  bool tunneling_ = false;       // ... and the response opened it
  // The response's head reached the codec: from here on the client may have (part of) it, and
  // a failure can only reset the stream.
  bool response_head_sent_ = false;
};

namespace {
constexpr size_t AlignUp(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
}  // namespace

std::unique_ptr<ConnectionManagerImpl::ActiveStream> ConnectionManagerImpl::ActiveStream::Create(
    ConnectionManagerImpl& hcm, ResponseEncoder& encoder) {
  const auto& factories = hcm.config_->filter_factories;
  constexpr size_t kAlign = StreamFilterFactory::kInPlaceAlign;
  const size_t slots_at = AlignUp(sizeof(ActiveStream), alignof(FilterSlot));
  const size_t filters_at = AlignUp(slots_at + factories.size() * sizeof(FilterSlot), kAlign);
  size_t total = filters_at;
  for (const auto& f : factories) total += f.inPlaceSize();
  static_assert(alignof(ActiveStream) <= 16 && kAlign <= 16);
  // Same-sized blocks come back at every request: a per-thread cache keeps them (a chain of
  // filters makes the block larger than malloc's own per-thread cache).
  char* block = static_cast<char*>(BlockCache::Allocate(total));
  auto* stream = new (block) ActiveStream(
      hcm, encoder, reinterpret_cast<FilterSlot*>(block + slots_at), block + filters_at);
  return std::unique_ptr<ActiveStream>(stream);
}

ConnectionManagerImpl::ActiveStream::ActiveStream(ConnectionManagerImpl& hcm,
                                                  ResponseEncoder& encoder, FilterSlot* slots,
                                                  char* in_place)
    : hcm_(hcm),
      encoder_(encoder),
      id_(g_next_stream_id.fetch_add(1, std::memory_order_relaxed)),
      slots_(slots),
      filter_count_(hcm.config_->filter_factories.size()) {
  info_.downstream_remote = hcm.connection_->remoteAddress();
  info_.downstream_local = hcm.connection_->localAddress();
  info_.downstream_ssl = hcm.connection_->ssl();
  info_.start = hcm.context_.dispatcher().now();
  const auto& factories = hcm.config_->filter_factories;
  for (size_t i = 0; i < filter_count_; ++i) {
    FilterSlot& slot = *new (&slots_[i]) FilterSlot(*this, i);
    const StreamFilterFactory& f = factories[i];
    if (f.inPlaceSize() != 0) {
      slot.set(f.construct(in_place), /*owned=*/false);
      in_place += f.inPlaceSize();
    } else {
      slot.set(f.create().release(), /*owned=*/true);
    }
    slot.filter().setDecoderFilterCallbacks(slot);
    slot.filter().setEncoderFilterCallbacks(slot);
    slot.cacheHooks();
  }
  if (hcm.config_->stream_idle_timeout.count() > 0) {
    hcm.context_.dispatcher().armDeadline(idle_deadline_, hcm.config_->stream_idle_timeout, *this);
  }
}

ConnectionManagerImpl::ActiveStream::~ActiveStream() {
  // Filters go before the stream state they may refer to, last built first.
  for (size_t i = filter_count_; i > 0; --i) slots_[i - 1].~FilterSlot();
}

void ConnectionManagerImpl::ActiveStream::resetIdleTimer() {
  if (idle_deadline_.armed()) {
    hcm_.context_.dispatcher().armDeadline(idle_deadline_, hcm_.config_->stream_idle_timeout,
                                           *this);
  }
}

void ConnectionManagerImpl::ActiveStream::onDeadline(event::Deadline& deadline) {
  if (&deadline == &body_deadline_) {
    timeout(hcm_.stats().downstream_rq_body_timeout, "request_body_timeout");
  } else {
    timeout(hcm_.stats().downstream_rq_stream_idle_timeout, "stream_idle_timeout");
  }
}

void ConnectionManagerImpl::ActiveStream::decodeHeaders(std::unique_ptr<RequestHead> head,
                                                        bool end_stream) {
  request_head_ = std::move(head);
  info_.protocol = request_head_->version_minor == 0 ? Protocol::kHttp10 : Protocol::kHttp11;
  decode_.headers_entered = true;
  decode_.headers_end_stream = end_stream;
  decode_.end_seen = end_stream;
  request_complete_ = end_stream;
  // A tunnel's request side is the client's bytes once it opens: no body deadline (the
  // stream's idle timeout still applies), nothing to continue.
  tunnel_request_ = hcm_.codec_->tunnelRequest();
  if (!end_stream && !tunnel_request_) {
    // The client may be waiting for permission to send the body.
    encoder_.encode100Continue();
    if (hcm_.config_->request_body_timeout.count() > 0) {
      hcm_.context_.dispatcher().armDeadline(body_deadline_, hcm_.config_->request_body_timeout,
                                             *this);
    }
  }
  // 0-RTT (RFC 8470): early data can be replayed by whoever recorded it, so only a request safe
  // to repeat is served from it; the client sends any other again after the handshake.
  if (info_.downstream_ssl != nullptr && info_.downstream_ssl->inEarlyData()) {
    const std::string_view method = request_head_->method;
    if ((method != "GET" && method != "HEAD" && method != "OPTIONS") || !end_stream) {
      hcm_.stats().downstream_rq_too_early.inc();
      info_.response_flags = "too_early";
      sendLocalReply(425, "too early: send this request again after the TLS handshake\n", nullptr);
      return;
    }
    early_data_ = true;
  }
  if (!normalizeTarget()) return;
  iterateHeaders(decode_, 0);
}

bool ConnectionManagerImpl::ActiveStream::normalizeTarget() {
  RequestHead& head = *request_head_;
  if (head.method == "CONNECT") return true;  // authority-form: no path
  thread_local std::string scratch;
  std::string_view authority;
  if (!head.target.empty() && head.target[0] != '/' &&
      SplitAbsoluteForm(head.target, authority, scratch)) {
    // RFC 9112 §3.2.2: the target's authority wins over Host. Upstreams get origin-form.
    head.headers.set("Host", authority);
    head.target = head.headers.keep(scratch);
  }
  received_target_ = head.target;
  canonical_target_ = head.target;
  const ConnectionManagerConfig& config = *hcm_.config_;
  const char* reason = "";
  switch (NormalizePath(head.target, config.path, scratch, reason)) {
    case PathResult::kUnchanged:
      return true;
    case PathResult::kNormalized:
      hcm_.stats().downstream_rq_path_normalized.inc();
      canonical_target_ = head.target = head.headers.keep(scratch);
      return true;
    case PathResult::kReject:
      hcm_.stats().downstream_rq_path_rejected.inc();
      info_.response_flags = "invalid_path";
      sendLocalReply(400, std::string(reason) + "\n", nullptr);
      return false;
    case PathResult::kRedirect: {
      hcm_.stats().downstream_rq_path_redirected.inc();
      const std::string_view location = head.headers.keep(scratch);
      sendLocalReply(307, "", [location](HeaderMap& h) { h.add("Location", location); });
      return false;
    }
  }
  return true;
}

void ConnectionManagerImpl::ActiveStream::decodeData(Buffer& data, bool end_stream) {
  info_.bytes_received += data.length();
  resetIdleTimer();
  if (end_stream) {
    request_complete_ = true;
    body_deadline_.cancel();
  } else if (body_deadline_.armed()) {
    hcm_.context_.dispatcher().armDeadline(body_deadline_, hcm_.config_->request_body_timeout,
                                           *this);
  }
  sourceData(decode_, data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  resetIdleTimer();
  request_complete_ = true;
  body_deadline_.cancel();
  sourceTrailers(decode_, std::move(trailers));
}

void ConnectionManagerImpl::ActiveStream::onResetStream(StreamResetReason) {
  decode_.aborted = true;
  encode_.aborted = true;
  info_.response_flags = "protocol_error";
}

void ConnectionManagerImpl::ActiveStream::startResponse(std::unique_ptr<ResponseHead> head,
                                                        bool end_stream) {
  if (encode_.headers_entered || completed_) return;
  response_head_ = std::move(head);
  encode_.headers_entered = true;
  encode_.headers_end_stream = end_stream;
  encode_.end_seen = end_stream;
  // Whatever is left of the request no longer reaches a filter: the answer is given. Except
  // in a tunnel, which the answer opens.
  const bool opens_tunnel =
      tunnel_request_ && OpensTunnel(request_head_->method == "CONNECT", response_head_->status);
  if (!request_complete_ && !opens_tunnel) decode_.aborted = true;
  iterateHeaders(encode_, 0);
}

void ConnectionManagerImpl::ActiveStream::sendLocalReply(
    uint16_t status, std::string_view body, const std::function<void(HeaderMap&)>& modify) {
  if (completed_) return;
  if (response_head_sent_) {
    // Too late for a reply of its own: the client already has (part of) another response.
    resetFromFilter();
    return;
  }
  if (encode_.headers_entered) {
    // A response is on its way through the filters (one of them failed on it), but the client
    // has nothing yet: it gets this reply instead.
    sendDirectLocalReply(status, body, modify);
    return;
  }
  decode_.aborted = true;
  auto head = std::make_unique<ResponseHead>();
  head->status = status;
  head->headers.add("Server", hcm_.config_->server_name);
  head->headers.add("Date", CachedDate());
  if (!body.empty()) head->headers.add("Content-Type", "text/plain; charset=utf-8");
  head->headers.add("Content-Length", std::to_string(body.size()));
  if (modify) modify(head->headers);
  startResponse(std::move(head), body.empty());
  if (!body.empty() && !completed_) {
    Buffer b;
    b.add(body);
    sourceData(encode_, b, true);
  }
}

void ConnectionManagerImpl::ActiveStream::sendDirectLocalReply(
    uint16_t status, std::string_view body, const std::function<void(HeaderMap&)>& modify) {
  // Straight to the codec, as Envoy does in this state: the filters already iterating the
  // abandoned response (one of them is on the stack) must not be shown a second one. The rest
  // of the abandoned response (an upstream's body) is dropped.
  decode_.aborted = true;
  encode_.aborted = true;
  ResponseHead head;
  head.status = status;
  head.headers.add("Server", hcm_.config_->server_name);
  head.headers.add("Date", CachedDate());
  if (!body.empty()) head.headers.add("Content-Type", "text/plain; charset=utf-8");
  head.headers.add("Content-Length", std::to_string(body.size()));
  if (modify) modify(head.headers);
  info_.response_code = status;
  response_head_sent_ = true;
  encoder_.encodeHeaders(head, body.empty());
  if (!body.empty() && !completed_) {
    Buffer b;
    b.add(body);
    info_.bytes_sent += b.length();
    encoder_.encodeData(b, true);
  }
}

void ConnectionManagerImpl::ActiveStream::resetFromFilter() {
  if (completed_) return;
  decode_.aborted = true;
  encode_.aborted = true;
  if (info_.response_flags.empty()) info_.response_flags = "reset";
  encoder_.resetStream();  // HTTP/1: closes the connection; onEvent destroys the stream
}

void ConnectionManagerImpl::ActiveStream::timeout(stats::Counter& counter, const char* flag) {
  if (completed_) return;
  counter.inc();
  info_.response_flags = flag;
  if (!encode_.headers_entered) {
    hcm_.codec_->shutdownNotice();
    sendLocalReply(408, "request timeout\n", nullptr);
  } else if (!response_head_sent_) {
    // A filter holds the response head (buffering its body, say): the client has nothing yet
    // and gets an answer rather than a cut connection.
    hcm_.codec_->shutdownNotice();
    sendLocalReply(504, "stream timeout\n", nullptr);
  } else {
    resetFromFilter();
  }
}

void ConnectionManagerImpl::ActiveStream::sourceData(Direction& d, Buffer& data, bool end_stream) {
  if (!live(d) || (!d.decode && !d.headers_entered)) {
    data.clear();
    return;
  }
  if (!d.decode) resetIdleTimer();
  if (end_stream) d.end_seen = true;
  deliverData(d, 0, data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::sourceTrailers(Direction& d,
                                                         std::unique_ptr<HeaderMap> trailers) {
  if (!live(d) || (!d.decode && !d.headers_entered)) return;
  d.end_seen = true;
  d.trailers = std::move(trailers);
  deliverTrailers(d, 0);
}

bool ConnectionManagerImpl::ActiveStream::iterateHeaders(Direction& d, size_t from) {
  const uint32_t hook = d.decode ? kHookDecodeHeaders : kHookEncodeHeaders;
  for (size_t pos = from; pos < filter_count_; ++pos) {
    FilterSlot& slot = slotAt(d, pos);
    if (!slot.wants(hook)) continue;
    StreamFilter& f = slot.filter();
    const FilterHeadersStatus st = d.decode
                                       ? f.decodeHeaders(*request_head_, d.headers_end_stream)
                                       : f.encodeHeaders(*response_head_, d.headers_end_stream);
    if (!live(d)) return false;
    if (st == FilterHeadersStatus::kStopIteration) {
      d.headers_stopped = true;
      d.headers_stop_pos = pos;
      return false;
    }
  }
  sinkHeaders(d);
  return live(d);
}

HeaderMap* ConnectionManagerImpl::ActiveStream::addTrailers(Direction& d) {
  if (!live(d) || !d.end_in_hook) return nullptr;
  if (d.trailers == nullptr) d.trailers = std::make_unique<HeaderMap>();
  return d.trailers.get();
}

// Passes `data` on, then the trailers a filter added on the way (if it let the data go on;
// otherwise they wait with it, see deliverDataChain).
bool ConnectionManagerImpl::ActiveStream::deliverData(Direction& d, size_t from, Buffer& data,
                                                      bool end_stream) {
  const bool ok = deliverDataChain(d, from, data, end_stream);
  if (d.trailers_pending && live(d)) {
    d.trailers_pending = false;
    return deliverTrailers(d, d.trailers_from);
  }
  return ok;
}

// Passes `data` from filter `from` on. The filter that paused the headers still gets the data:
// it decides what happens to the body (keep it with kStopIterationAndBuffer, take it with
// kStopIterationNoBuffer, or let everything go on with kContinue, which releases the headers too).
bool ConnectionManagerImpl::ActiveStream::deliverDataChain(Direction& d, size_t from, Buffer& data,
                                                           bool end_stream) {
  for (size_t pos = from; pos < filter_count_; ++pos) {
    if (d.stop == Stop::kTrailers && pos == d.stop_pos) {
      data.clear();  // Nothing can follow trailers.
      return false;
    }
    const bool at_data_stop = d.stop == Stop::kData && pos == d.stop_pos;
    const bool at_headers_stop = d.headers_stopped && pos == d.headers_stop_pos;
    FilterSlot& slot = slotAt(d, pos);
    if (!at_data_stop && !at_headers_stop &&
        !slot.wants(d.decode ? kHookDecodeData : kHookEncodeData)) {
      continue;
    }
    StreamFilter& f = slot.filter();
    // A buffering filter sees everything it holds, the new part at its end; never more than the
    // buffer limit (checked before the call, so the last call too).
    const bool whole = at_data_stop && d.buffering;
    if (whole) {
      d.buffered.move(data);
      if (overBufferLimit(d)) return false;
    }
    Buffer& arg = whole ? d.buffered : data;
    const bool had_trailers = d.trailers != nullptr;
    d.end_in_hook = end_stream;
    const FilterDataStatus st =
        d.decode ? f.decodeData(arg, end_stream) : f.encodeData(arg, end_stream);
    d.end_in_hook = false;
    if (!live(d)) return false;
    if (end_stream && !had_trailers && d.trailers != nullptr) {
      // This filter added trailers: the message no longer ends with this data.
      end_stream = false;
      if (st != FilterDataStatus::kContinue) {
        // It holds the data: the trailers wait here with it and go on when it resumes.
        d.stop = Stop::kTrailers;
        d.stop_pos = pos;
        d.buffering = st == FilterDataStatus::kStopIterationAndBuffer;
        d.buffered.move(data);  // what the filter left of it, as below
        overBufferLimit(d);
        return false;
      }
      d.trailers_pending = true;
      d.trailers_from = pos + 1;
    }
    if (st == FilterDataStatus::kContinue) {
      if (at_data_stop) {
        d.stop = Stop::kNone;
        d.buffering = false;
        // Everything held at this filter goes on first, in order.
        d.buffered.move(data);
        data.move(d.buffered);
      }
      if (at_headers_stop) {
        d.headers_stopped = false;
        if (!iterateHeaders(d, pos + 1)) {
          // Paused again further on: the data follows the headers up to there.
          return live(d) && deliverDataChain(d, pos + 1, data, end_stream);
        }
      }
      continue;
    }
    if (!at_data_stop) {
      d.stop = Stop::kData;
      d.stop_pos = pos;
    }
    // Either way what is left of what the filter was shown waits here until it continues:
    // kStopIterationAndBuffer shows it again with each later part, kStopIterationNoBuffer does
    // not (the filter drained what it took; later parts are shown one by one).
    d.buffering = st == FilterDataStatus::kStopIterationAndBuffer;
    d.buffered.move(data);
    overBufferLimit(d);
    return false;
  }
  sinkData(d, data, end_stream);
  return live(d);
}

bool ConnectionManagerImpl::ActiveStream::deliverTrailers(Direction& d, size_t from) {
  for (size_t pos = from; pos < filter_count_; ++pos) {
    const bool at_data_stop = d.stop == Stop::kData && pos == d.stop_pos;
    const bool at_headers_stop = d.headers_stopped && pos == d.headers_stop_pos;
    FilterSlot& slot = slotAt(d, pos);
    if (!at_data_stop && !at_headers_stop &&
        !slot.wants(d.decode ? kHookDecodeTrailers : kHookEncodeTrailers)) {
      continue;
    }
    StreamFilter& f = slot.filter();
    const FilterTrailersStatus st =
        d.decode ? f.decodeTrailers(*d.trailers) : f.encodeTrailers(*d.trailers);
    if (!live(d)) return false;
    if (st == FilterTrailersStatus::kStopIteration) {
      // Held here, with any data this filter holds.
      d.stop = Stop::kTrailers;
      d.stop_pos = pos;
      return false;
    }
    if (at_headers_stop) {
      d.headers_stopped = false;
      if (!iterateHeaders(d, pos + 1) && !live(d)) return false;
    }
    if (at_data_stop || at_headers_stop) {
      // The filter lets go: its held data, then the trailers, move on from the next filter.
      if (at_data_stop) {
        d.stop = Stop::kNone;
        d.buffering = false;
      }
      Buffer held;
      held.move(d.buffered);
      if (!held.empty() && !deliverData(d, pos + 1, held, false)) return false;
      return deliverTrailers(d, pos + 1);
    }
  }
  sinkTrailers(d);
  return live(d);
}

bool ConnectionManagerImpl::ActiveStream::resume(Direction& d, size_t pos) {
  if (!live(d)) return false;
  const bool headers_here = d.headers_stopped && d.headers_stop_pos == pos;
  const bool data_here = d.stop != Stop::kNone && d.stop_pos == pos;
  if (!headers_here && !data_here) return false;  // not stopped at this filter
  const size_t from = pos + 1;
  if (headers_here) {
    d.headers_stopped = false;
    if (!iterateHeaders(d, from) && !live(d)) return true;
  }
  // Only data held at this very filter moves on; data held earlier waits for that filter.
  if (!data_here) return true;
  const bool held_trailers = d.stop == Stop::kTrailers;
  d.stop = Stop::kNone;
  d.buffering = false;
  if (!d.headers_end_stream) {
    const bool end = d.end_seen && !d.trailers;
    if (!d.buffered.empty() || (end && !held_trailers)) {
      Buffer held;
      held.move(d.buffered);
      if (!deliverData(d, from, held, end)) return true;
    }
  }
  if (held_trailers) deliverTrailers(d, from);
  return true;
}

void ConnectionManagerImpl::ActiveStream::sinkHeaders(Direction& d) {
  if (d.decode) {
    if (upstream_target_) {
      startUpstream(d.headers_end_stream);
      return;
    }
    if (d.headers_end_stream) requestReachedEnd();
    return;
  }
  info_.response_code = response_head_->status;
  response_head_sent_ = true;
  encoder_.encodeHeaders(*response_head_, d.headers_end_stream);
  if (!completed_ && hcm_.codec_ && hcm_.codec_->tunneling() && !tunneling_) {
    tunneling_ = true;
    hcm_.stats().downstream_cx_upgrades_total.inc();
    hcm_.stats().downstream_cx_upgrades_active.inc();
  }
}

void ConnectionManagerImpl::ActiveStream::sinkData(Direction& d, Buffer& data, bool end_stream) {
  if (d.decode) {
    if (upstream_ != nullptr) {
      upstream_->sendData(data, end_stream);
      return;
    }
    data.clear();  // No filter took it and nothing goes upstream.
    if (end_stream) requestReachedEnd();
    return;
  }
  info_.bytes_sent += data.length();
  encoder_.encodeData(data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::sinkTrailers(Direction& d) {
  if (d.decode) {
    if (upstream_ != nullptr) {
      // HTTP/1 upstream: a body the codec frames by Content-Length has no place for trailers.
      if (!d.trailers->empty() && !tunnel_request_ &&
          request_head_->headers.count(KnownHeader::kContentLength) != 0) {
        hcm_.stats().upstream_rq_trailers_dropped.inc();
      }
      upstream_->sendTrailers(*d.trailers);
      return;
    }
    requestReachedEnd();
    return;
  }
  encoder_.encodeTrailers(*d.trailers);
}

void ConnectionManagerImpl::ActiveStream::requestReachedEnd() {
  // The whole request went through every filter and none answered.
  if (!encode_.headers_entered && !completed_) {
    sendLocalReply(404, "no filter answered this request\n", nullptr);
  }
}

bool ConnectionManagerImpl::ActiveStream::overBufferLimit(Direction& d) {
  if (d.buffered.length() <= hcm_.config_->buffer_limit) return false;
  d.buffered.clear();
  if (d.decode) {
    hcm_.stats().downstream_rq_too_large.inc();
    if (info_.response_flags.empty()) info_.response_flags = "request_too_large";
    hcm_.codec_->shutdownNotice();  // the rest of the body is not read
    sendLocalReply(413, "request body too large to buffer\n", nullptr);
    return true;
  }
  hcm_.stats().downstream_rs_too_large.inc();
  if (info_.response_flags.empty()) info_.response_flags = "response_too_large";
  if (!d.headers_stopped) {
    resetFromFilter();  // its head is out: the client must see the response cut
    return true;
  }
  // Its head is still held by a filter: nothing reached the client, so it can be told with a
  // response of its own. The rest of the upstream's response is not read (its connection is
  // not reused), and the reply starts afresh through every response filter.
  if (upstream_ != nullptr) upstream_->reset();
  response_head_.reset();
  d.headers_stopped = false;
  d.stop = Stop::kNone;
  d.buffering = false;
  d.headers_entered = false;
  d.headers_end_stream = false;
  d.end_seen = false;
  d.trailers_pending = false;
  d.trailers.reset();
  sendLocalReply(500, "response body too large to buffer\n", nullptr);
  return true;
}

bool ConnectionManagerImpl::ActiveStream::setUpstream(const UpstreamSpec& spec) {
  const upstream::Cluster* cluster =
      hcm_.context_.clusters().manager().get(std::string(spec.cluster));
  if (cluster == nullptr || upstream_ != nullptr) return false;
  UpstreamTarget& target = upstream_target_.emplace();
  target.cluster = cluster;
  target.route_name.assign(spec.route_name);
  target.timeout = spec.timeout;
  target.response_headers_timeout = spec.response_headers_timeout;
  target.idle_timeout = spec.idle_timeout;
  target.hash_key.assign(spec.hash_key);
  target.terminate_connect = spec.terminate_connect;
  target.request_buffer_bytes = spec.request_buffer_bytes;
  info_.route_name = target.route_name;
  info_.cluster_name = cluster->name();
  return true;
}

void ConnectionManagerImpl::ActiveStream::startUpstream(bool end_stream) {
  RequestHead& head = *request_head_;
  UpstreamRequestCallbacks& callbacks = *this;
  if (upstream_target_->terminate_connect && tunnel_request_ && head.method == "CONNECT") {
    // The tunnel ends here: no request goes upstream, so no proxy fields either.
    connect_tunnel_ = std::make_unique<ConnectTunnel>(callbacks, hcm_.context_.dispatcher(),
                                                      hcm_.context_.clusters(), *upstream_target_,
                                                      hcm_.config_->buffer_limit);
    upstream_ = connect_tunnel_.get();
    upstream_->start(head, end_stream, tunnel_request_);
    return;
  }
  // Proxy fields (RFC 7239's de-facto predecessors): the client's address in X-Forwarded-For
  // as configured, the scheme it used in X-Forwarded-Proto (this hop's).
  using ForwardedFor = ConnectionManagerConfig::ForwardedFor;
  const ForwardedFor xff = hcm_.config_->forwarded_for;
  if (xff != ForwardedFor::kKeep) {
    const std::string client = info_.downstream_remote.ip();
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
  head.headers.set("X-Forwarded-Proto", info_.scheme());
  // The upstream learns the request may be a replay and can answer 425 itself (RFC 8470 5.1).
  if (early_data_) head.headers.set("Early-Data", "1");
  SetForwardedClientCert(head.headers, hcm_.config_->forward_client_cert, info_.downstream_ssl);
  if (!hcm_.config_->via.empty()) head.headers.add("Via", hcm_.config_->via);
  if (hcm_.config_->forward_path_as_received && head.target.data() == canonical_target_.data() &&
      head.target.size() == canonical_target_.size()) {
    head.target = received_target_;  // no filter rewrote it
  }
  upstream_ =
      &upstream_request_.emplace(callbacks, hcm_.context_.dispatcher(), hcm_.context_.clusters(),
                                 *upstream_target_, hcm_.config_->buffer_limit);
  // Attempts are measured only for a chain with a filter that observes them.
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookUpstreamAttempt)) {
      upstream_request_->observeAttempts();
      break;
    }
  }
  upstream_->start(head, end_stream, tunnel_request_);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamHeaders(std::unique_ptr<ResponseHead> head,
                                                            bool end_stream) {
  if (!hcm_.config_->via.empty()) head->headers.add("Via", hcm_.config_->via);
  startResponse(std::move(head), end_stream);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamData(Buffer& data, bool end_stream) {
  sourceData(encode_, data, end_stream);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamTrailers(std::unique_ptr<HeaderMap> trailers) {
  sourceTrailers(encode_, std::move(trailers));
}

void ConnectionManagerImpl::ActiveStream::onUpstreamError(uint16_t status, const char* flag) {
  if (info_.response_flags.empty()) info_.response_flags = flag;
  if (response_head_sent_) {
    resetFromFilter();  // part of a response is out: the client must see it cut
    return;
  }
  // Nothing is out yet, even if a filter holds the upstream's head: the client gets the error
  // as a response of its own (sendLocalReply drops what is left of the upstream's).
  sendLocalReply(status, std::string(flag) + "\n", nullptr);
}

void ConnectionManagerImpl::ActiveStream::onUpstreamAttemptDone(const UpstreamAttempt& attempt) {
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookUpstreamAttempt)) slots_[i].filter().onUpstreamAttemptDone(attempt);
  }
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
  if (hcm_.connection_->state() == network::ConnectionState::kOpen) {
    hcm_.connection_->readDisable(disable);
  }
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
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookStreamComplete)) slots_[i].filter().onStreamComplete();
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
  if (stream_) {
    stream_->complete();
    stats().downstream_rq_active.dec();
  }
}

void ConnectionManagerImpl::initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) {
  connection_ = &cb.connection();
  connection_->addConnectionCallbacks(*this);
}

network::FilterStatus ConnectionManagerImpl::onNewConnection() {
  stats().downstream_cx_http1_total.inc();
  // The first request's head must arrive within the timeout from the connection's start:
  // a client that connects and trickles (or sends nothing) is cut off.
  armTimer(TimerMode::kHeaders);
  // Nothing in progress yet: reclaimable like a keep-alive connection between requests (as in
  // nginx), the least recently active first, so a flood of silent connections cannot hold every
  // slot until the headers timeout.
  updateIdle();
  return network::FilterStatus::kContinue;
}

network::FilterStatus ConnectionManagerImpl::onData(Buffer& data, bool end_stream) {
  if (closing_) {
    data.clear();
    return network::FilterStatus::kStopIteration;
  }
  // Activity: out of the idle list while these bytes are handled; back in at the most recent
  // end if they leave nothing in progress.
  leaveIdle();
  if (!codec_) {
    // Created on the first byte of a request and released when the connection goes idle: an
    // idle keep-alive connection holds no codec state.
    ServerConnectionCallbacks& callbacks = *this;
    codec_ = std::make_unique<http1::ServerConnectionImpl>(*connection_, callbacks, config_->codec);
  }
  codec_->dispatch(data);
  // Only a tunnel reads half-closes (otherwise a FIN closes the connection).
  if (end_stream && codec_) codec_->onRemoteHalfClose();
  updateReadDisable();
  updateIdle();
  return network::FilterStatus::kStopIteration;
}

void ConnectionManagerImpl::onDrain() {
  if (closing_) return;
  if (stream_ || (codec_ && codec_->requestInProgress())) {
    codec_->shutdownNotice();  // the response in progress is the last one
    return;
  }
  beginClose();
  connection_->close(network::CloseType::kFlushWrite);
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
  const bool idle = !closing_ && !stream_ && !(codec_ && codec_->requestInProgress()) &&
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

void ConnectionManagerImpl::updateReadDisable() {
  if (!codec_ || closing_ || connection_->state() != network::ConnectionState::kOpen) return;
  // While a response is pending, pipelined requests wait in the codec; cap how much.
  const bool disable = codec_->waitingForResponse() && codec_->bufferedBytes() > kMaxPipelinedBytes;
  if (disable != read_disabled_) {
    read_disabled_ = disable;
    connection_->readDisable(disable);
  }
}

void ConnectionManagerImpl::onAboveWriteBufferHighWatermark() {
  if (stream_) stream_->onDownstreamWatermark(true);
}

void ConnectionManagerImpl::onBelowWriteBufferLowWatermark() {
  if (stream_) stream_->onDownstreamWatermark(false);
}

void ConnectionManagerImpl::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::kConnected) return;
  beginClose();
  armTimer(TimerMode::kNone);
  if (stream_) {
    // The connection went away with a stream unfinished (for a tunnel that is how it ends).
    if (!stream_->tunneling()) stats().downstream_rq_reset.inc();
    destroyStream();
  }
}

RequestDecoder& ConnectionManagerImpl::newStream(ResponseEncoder& encoder) {
  // From here the stream's own timeouts apply.
  armTimer(TimerMode::kNone);
  leaveIdle();
  ++requests_;
  stats().downstream_rq_total.inc();
  stats().downstream_rq_active.inc();
  if (requests_ >= config_->max_requests_per_connection) {
    // This response is the connection's last.
    stats().downstream_cx_max_requests_reached.inc();
    codec_->shutdownNotice();
  }
  stream_ = ActiveStream::Create(*this, encoder);
  return *stream_;
}

void ConnectionManagerImpl::onRequestStart() {
  // The first request's deadline runs from the connection's start.
  if (timer_mode_ != TimerMode::kHeaders) armTimer(TimerMode::kHeaders);
}

void ConnectionManagerImpl::armTimer(TimerMode mode) {
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
    case TimerMode::kResume:
      if (codec_ && !closing_) {
        codec_->resume();
        updateReadDisable();
        // Nothing was pipelined after all: the connection is idle.
        if (!stream_ && !codec_->requestInProgress() && !closing_) {
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
  stats().protocolErrorCounter(status).inc();
  armTimer(TimerMode::kNone);
  if (stream_) destroyStream();
  if (encoder != nullptr) {
    sendErrorResponse(*encoder, status, std::string(reason) + "\n");
  } else {
    closeConnection(/*linger=*/true);
  }
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
  encoder.encodeData(b, true);  // completes the response: onResponseComplete(close=true)
}

void ConnectionManagerImpl::onResponseComplete(bool close) {
  if (stream_) {
    chargeStatus(stream_->responseCode());
    destroyStream();
  }
  if (close) {
    closeConnection(codec_->inputUnread());
    return;
  }
  if (read_disabled_) {
    read_disabled_ = false;
    connection_->readDisable(false);
  }
  // Pipelined requests already buffered are parsed outside this callback chain.
  if (codec_->bufferedBytes() > 0) {
    armTimer(TimerMode::kResume);
    return;
  }
  // The connection is idle now: let go of the codec (we are inside one of its calls, so it is
  // freed after this event) until the next request's first byte.
  context_.dispatcher().deferredDelete(std::move(codec_));
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

void ConnectionManagerImpl::destroyStream() {
  std::unique_ptr<ActiveStream> stream = std::move(stream_);
  stream->complete();
  stats().downstream_rq_active.dec();
  // We may be inside one of the stream's callbacks: free it after this event.
  context_.dispatcher().deferredDelete(std::move(stream));
}

void ConnectionManagerImpl::onHeadersTimeout() {
  if (closing_ || stream_) return;
  stats().downstream_rq_headers_timeout.inc();
  SLUICE_LOG(kDebug, "[C%d] request headers timeout", connection_->id());
  beginClose();
  if (codec_ && codec_->requestInProgress()) {
    // Part of a request arrived: say why before closing, as nginx and Envoy do.
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
  }
  // Not lingering: a client this slow is what the timeout is for (Slowloris).
  closeConnection(/*linger=*/false);
}

void ConnectionManagerImpl::onIdleTimeout() {
  if (closing_ || stream_ || (codec_ && codec_->requestInProgress())) return;
  stats().downstream_cx_idle_timeout.inc();
  beginClose();
  connection_->close(network::CloseType::kFlushWrite);
}

}  // namespace sluice::http
