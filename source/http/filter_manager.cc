#include "source/http/filter_manager.h"

#include <new>
#include <string>

#include "source/http/grpc.h"

namespace sluice::http {

namespace {
constexpr size_t AlignUp(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
}  // namespace

// A filter's view of its stream: both callback interfaces, and its position in the chain.
class FilterManager::FilterSlot : public DecoderFilterCallbacks, public EncoderFilterCallbacks {
 public:
  FilterSlot(FilterManager& fm, size_t index) : fm_(fm), index_(index) {}
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

  event::Dispatcher& dispatcher() override { return fm_.callbacks_.dispatcher(); }
  StreamInfo& streamInfo() override { return fm_.info_; }
  uint64_t streamId() const override { return fm_.id_; }
  uint64_t connectionId() const override { return fm_.callbacks_.connectionId(); }
  void resetStream() override { fm_.resetFromFilter(); }
  bool continueDecoding() override { return fm_.resume(fm_.decode_, index_); }
  bool setUpstream(const UpstreamSpec& spec) override { return fm_.callbacks_.setUpstream(spec); }
  bool enableRetries(const RetryOptions& options) override {
    if (fm_.retry_slot_ != kNoSlot || index_ >= kNoSlot) return false;
    if (!fm_.callbacks_.enableRetries(options)) return false;
    fm_.retry_slot_ = static_cast<uint8_t>(index_);
    return true;
  }
  Buffer* decodingBuffer() override { return fm_.heldAt(fm_.decode_, index_); }
  void sendLocalReply(uint16_t status, std::string_view body,
                      const std::function<void(HeaderMap&)>& modify) override {
    fm_.sendLocalReply(status, body, modify);
  }
  void encodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override {
    fm_.encodeHeaders(std::move(head), end_stream);
  }
  void encodeData(Buffer& data, bool end_stream) override { fm_.encodeData(data, end_stream); }
  void encodeTrailers(std::unique_ptr<HeaderMap> trailers) override {
    fm_.encodeTrailers(std::move(trailers));
  }
  RequestHead& requestHead() override { return *fm_.request_head_; }
  bool streamCompleted() const override { return fm_.completed_; }
  RequestHead* requestHeadIfAny() override { return fm_.request_head_.get(); }
  ResponseHead* responseHeadIfAny() override { return fm_.response_head_.get(); }
  HeaderMap* requestTrailers() override { return fm_.decode_.trailers.get(); }
  HeaderMap* responseTrailers() override { return fm_.encode_.trailers.get(); }
  CalloutClient* calloutClient() override { return fm_.callbacks_.calloutClient(); }
  uint32_t bufferLimit() const override { return fm_.buffer_limit_; }
  HeaderMap* addTrailers(bool request) override {
    return fm_.addTrailers(request ? fm_.decode_ : fm_.encode_);
  }
  bool continueEncoding() override {
    return fm_.resume(fm_.encode_, fm_.filter_count_ - 1 - index_);
  }
  Buffer* encodingBuffer() override {
    return fm_.heldAt(fm_.encode_, fm_.filter_count_ - 1 - index_);
  }

 private:
  FilterManager& fm_;
  const size_t index_;
  StreamFilter* filter_ = nullptr;
  uint32_t hooks_ = kAllHooks;
  bool owned_ = false;
};

size_t FilterManager::TrailingStorageSize(const std::vector<StreamFilterFactory>& factories) {
  size_t total = AlignUp(factories.size() * sizeof(FilterSlot), kStorageAlign);
  for (const auto& f : factories) total += f.inPlaceSize();
  return total;
}

FilterManager::FilterManager(FilterManagerCallbacks& callbacks,
                             const std::vector<StreamFilterFactory>& factories, void* storage,
                             uint64_t stream_id, uint32_t buffer_limit)
    : callbacks_(callbacks),
      id_(stream_id),
      buffer_limit_(buffer_limit),
      slots_(static_cast<FilterSlot*>(storage)),
      filter_count_(factories.size()) {
  static_assert(alignof(FilterSlot) <= kStorageAlign);
  char* in_place =
      static_cast<char*>(storage) + AlignUp(filter_count_ * sizeof(FilterSlot), kStorageAlign);
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
}

FilterManager::~FilterManager() {
  // Filters go before the stream state they may refer to, last built first.
  for (size_t i = filter_count_; i > 0; --i) slots_[i - 1].~FilterSlot();
}

FilterManager::FilterSlot& FilterManager::slotAt(const Direction& d, size_t pos) {
  return slots_[d.decode ? pos : filter_count_ - 1 - pos];
}

void FilterManager::decodeHeaders(std::unique_ptr<RequestHead> head, bool end_stream) {
  request_head_ = std::move(head);
  decode_.headers_entered = true;
  decode_.headers_end_stream = end_stream;
  decode_.end_seen = end_stream;
  request_complete_ = end_stream;
  if (!live(decode_)) return;  // answered before the filters (a refused request)
  iterateHeaders(decode_, 0);
}

void FilterManager::decodeData(Buffer& data, bool end_stream) {
  info_.bytes_received += data.length();
  if (end_stream) request_complete_ = true;
  sourceData(decode_, data, end_stream);
}

void FilterManager::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  request_complete_ = true;
  sourceTrailers(decode_, std::move(trailers));
}

void FilterManager::encodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) {
  if (encode_.headers_entered || completed_) return;
  response_head_ = std::move(head);
  encode_.headers_entered = true;
  encode_.headers_end_stream = end_stream;
  encode_.end_seen = end_stream;
  // The request goes on streaming while the response does (full duplex: gRPC's streaming
  // calls, an upstream that answers as it reads); once the response has ended, whatever is left
  // of the request no longer reaches a filter. Except in a tunnel, which the answer opens.
  response_opens_tunnel_ = tunnel_request_ && OpensTunnel(tunnel_connect_, response_head_->status);
  if (end_stream) responseEnded();
  iterateHeaders(encode_, 0);
}

void FilterManager::encodeData(Buffer& data, bool end_stream) {
  if (end_stream && encode_.headers_entered) responseEnded();
  sourceData(encode_, data, end_stream);
}

void FilterManager::encodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  if (encode_.headers_entered) responseEnded();
  sourceTrailers(encode_, std::move(trailers));
}

void FilterManager::responseEnded() {
  if (!request_complete_ && !response_opens_tunnel_) decode_.aborted = true;
}

void FilterManager::sendLocalReply(uint16_t status, std::string_view body,
                                   const std::function<void(HeaderMap&)>& modify) {
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
  body = localReplyHead(status, body, modify, *head);
  encodeHeaders(std::move(head), body.empty());
  if (!body.empty() && !completed_) {
    Buffer b;
    b.add(body);
    sourceData(encode_, b, true);
  }
}

std::string_view FilterManager::localReplyHead(uint16_t status, std::string_view body,
                                               const std::function<void(HeaderMap&)>& modify,
                                               ResponseHead& head) {
  callbacks_.addLocalReplyHeaders(head.headers);
  if (request_head_ != nullptr && grpc::IsGrpcRequest(request_head_->headers)) {
    // A gRPC client reads a call's outcome from grpc-status, not from the HTTP status: a
    // "trailers-only" response (HTTP 200, the status in the head, no body), as Envoy answers.
    head.status = 200;
    head.headers.add("Content-Type", "application/grpc");
    head.headers.add("grpc-status", std::to_string(grpc::StatusFromHttp(status)));
    std::string_view message = body;
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
      message.remove_suffix(1);
    }
    if (!message.empty()) head.headers.add("grpc-message", grpc::EncodeMessage(message));
    if (modify) modify(head.headers);
    return {};
  }
  head.status = status;
  if (!body.empty()) head.headers.add("Content-Type", "text/plain; charset=utf-8");
  head.headers.add("Content-Length", std::to_string(body.size()));
  if (modify) modify(head.headers);
  return body;
}

void FilterManager::sendDirectLocalReply(uint16_t status, std::string_view body,
                                         const std::function<void(HeaderMap&)>& modify) {
  // Straight to the codec, as Envoy does in this state: the filters already iterating the
  // abandoned response (one of them is on the stack) must not be shown a second one. The rest
  // of the abandoned response (an upstream's body) is dropped.
  decode_.aborted = true;
  encode_.aborted = true;
  ResponseHead head;
  body = localReplyHead(status, body, modify, head);
  info_.response_code = head.status;
  response_head_sent_ = true;
  callbacks_.onResponseHeadersDone(head, body.empty());
  if (!body.empty() && !completed_) {
    Buffer b;
    b.add(body);
    info_.bytes_sent += b.length();
    callbacks_.onResponseDataDone(b, true);
  }
}

void FilterManager::resetFromFilter() {
  if (completed_) return;
  abort();
  info_.setResponseFlag(ResponseFlag::kLocalReset, "filter_reset");
  callbacks_.onResetFromFilter();
}

void FilterManager::sinkHeaders(Direction& d) {
  if (d.decode) {
    callbacks_.onRequestHeadersDone(*request_head_, d.headers_end_stream);
    return;
  }
  info_.response_code = response_head_->status;
  response_head_sent_ = true;
  callbacks_.onResponseHeadersDone(*response_head_, d.headers_end_stream);
}

void FilterManager::sinkData(Direction& d, Buffer& data, bool end_stream) {
  if (d.decode) {
    callbacks_.onRequestDataDone(data, end_stream);
    return;
  }
  info_.bytes_sent += data.length();
  callbacks_.onResponseDataDone(data, end_stream);
}

void FilterManager::sinkTrailers(Direction& d) {
  if (d.decode) {
    callbacks_.onRequestTrailersDone(*d.trailers);
    return;
  }
  callbacks_.onResponseTrailersDone(*d.trailers);
}

void FilterManager::complete() {
  if (completed_) return;
  completed_ = true;
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookStreamComplete)) slots_[i].filter().onStreamComplete();
  }
}

bool FilterManager::observesUpstreamAttempts() const {
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookUpstreamAttempt)) return true;
  }
  return false;
}

void FilterManager::onUpstreamAttemptDone(const UpstreamAttempt& attempt) {
  for (size_t i = 0; i < filter_count_; ++i) {
    if (slots_[i].wants(kHookUpstreamAttempt)) slots_[i].filter().onUpstreamAttemptDone(attempt);
  }
}

RetryVerdict FilterManager::onUpstreamRetry(const UpstreamAttempt& attempt,
                                            RetryDecision& decision) {
  if (retry_slot_ == kNoSlot || completed_) return RetryVerdict::kNo;
  return slots_[retry_slot_].filter().onUpstreamRetry(attempt, decision);
}

void FilterManager::sourceData(Direction& d, Buffer& data, bool end_stream) {
  if (!live(d) || (!d.decode && !d.headers_entered)) {
    data.clear();
    return;
  }
  if (!d.decode) callbacks_.onStreamActivity();
  if (end_stream) d.end_seen = true;
  deliverData(d, 0, data, end_stream);
}

void FilterManager::sourceTrailers(Direction& d, std::unique_ptr<HeaderMap> trailers) {
  if (!live(d) || (!d.decode && !d.headers_entered)) return;
  d.end_seen = true;
  d.trailers = std::move(trailers);
  deliverTrailers(d, 0);
}

bool FilterManager::iterateHeaders(Direction& d, size_t from) {
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

HeaderMap* FilterManager::addTrailers(Direction& d) {
  if (!live(d) || !d.end_in_hook) return nullptr;
  if (d.trailers == nullptr) d.trailers = std::make_unique<HeaderMap>();
  return d.trailers.get();
}

// Passes `data` on, then the trailers a filter added on the way (if it let the data go on;
// otherwise they wait with it, see deliverDataChain).
bool FilterManager::deliverData(Direction& d, size_t from, Buffer& data, bool end_stream) {
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
bool FilterManager::deliverDataChain(Direction& d, size_t from, Buffer& data, bool end_stream) {
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

bool FilterManager::deliverTrailers(Direction& d, size_t from) {
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

bool FilterManager::resume(Direction& d, size_t pos) {
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

bool FilterManager::overBufferLimit(Direction& d) {
  if (d.buffered.length() <= buffer_limit_) return false;
  d.buffered.clear();
  if (d.decode) {
    info_.setResponseFlag(ResponseFlag::kBufferLimit, "request_too_large");
    callbacks_.onRequestBufferOverflow();  // the rest of the body is not read
    sendLocalReply(413, "request body too large to buffer\n", nullptr);
    return true;
  }
  info_.setResponseFlag(ResponseFlag::kBufferLimit, "response_too_large");
  callbacks_.onResponseBufferOverflow(/*head_held=*/d.headers_stopped);
  if (!d.headers_stopped) {
    resetFromFilter();  // its head is out: the client must see the response cut
    return true;
  }
  // Its head is still held by a filter: nothing reached the client, so it can be told with a
  // response of its own. The rest of the upstream's response is not read (its connection is
  // not reused), and the reply starts afresh through every response filter.
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

}  // namespace sluice::http
