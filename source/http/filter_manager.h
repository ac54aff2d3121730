#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/http/filter.h"
#include "source/http/header_map.h"

namespace sluice::http {

// What a FilterManager needs from the stream that owns it: where each direction goes once it
// has passed every filter, and the stream's services that filters may ask for. The connection
// manager's stream implements it for a codec's stream; a test implements it without any codec.
class FilterManagerCallbacks {
 public:
  // The request left the last filter (toward the upstream, if the stream has one).
  virtual void onRequestHeadersDone(RequestHead& head, bool end_stream) = 0;
  virtual void onRequestDataDone(Buffer& data, bool end_stream) = 0;
  virtual void onRequestTrailersDone(HeaderMap& trailers) = 0;
  // The response left the last filter: to the codec.
  virtual void onResponseHeadersDone(ResponseHead& head, bool end_stream) = 0;
  virtual void onResponseDataDone(Buffer& data, bool end_stream) = 0;
  virtual void onResponseTrailersDone(HeaderMap& trailers) = 0;
  // A filter or a limit ended the stream at once (the codec resets it: RST_STREAM on HTTP/2, a
  // closed connection on HTTP/1).
  virtual void onResetFromFilter() = 0;
  // A buffering filter held more of the request than the buffer limit: the filter manager
  // answers 413 next; the stream stops reading the rest of the request.
  virtual void onRequestBufferOverflow() = 0;
  // The same for the response; `head_held`: no byte of it reached the client (a 500 follows),
  // else the stream is reset. The upstream's response (if any) is abandoned.
  virtual void onResponseBufferOverflow(bool head_held) = 0;
  // Services filters ask for (StreamFilterCallbacks).
  virtual event::Dispatcher& dispatcher() = 0;
  virtual uint64_t connectionId() const = 0;
  virtual CalloutClient* calloutClient() = 0;
  virtual bool setUpstream(const UpstreamSpec& spec) = 0;
  // A filter makes the stream retryable (DecoderFilterCallbacks::enableRetries).
  virtual bool enableRetries(const RetryOptions&) { return false; }
  // Response data entered the filters (the stream is not idle).
  virtual void onStreamActivity() {}
  // Fields every local reply carries ("Server", "Date").
  virtual void addLocalReplyHeaders(HeaderMap& headers) = 0;

 protected:
  ~FilterManagerCallbacks() = default;
};

// The HTTP filter chain of one stream, and nothing of the wire: it owns the stream's filters
// (built from the chain's factories), its heads, trailers and StreamInfo, and iterates each
// direction through the filters (requests in config order, responses in reverse). A filter that
// stops holds its direction at its position: later data is buffered there (and trailers held)
// until the filter continues; filters before it keep seeing events. The same chain runs for
// every protocol: HTTP/1 and HTTP/2 streams differ only in the codec behind the callbacks.
//
// Storage: the slots and every filter that can be built in place live in a block the owner
// provides (TrailingStorageSize bytes, kStorageAlign-aligned), so a stream with its whole chain
// is one allocation.
class FilterManager {
 public:
  static constexpr size_t kStorageAlign = StreamFilterFactory::kInPlaceAlign;
  static size_t TrailingStorageSize(const std::vector<StreamFilterFactory>& factories);

  FilterManager(FilterManagerCallbacks& callbacks,
                const std::vector<StreamFilterFactory>& factories, void* storage,
                uint64_t stream_id, uint32_t buffer_limit);
  FilterManager(const FilterManager&) = delete;
  FilterManager& operator=(const FilterManager&) = delete;
  // Destroys the filters (last built first).
  ~FilterManager();

  // Events from the request's source (the codec).
  void decodeHeaders(std::unique_ptr<RequestHead> head, bool end_stream);
  void decodeData(Buffer& data, bool end_stream);
  void decodeTrailers(std::unique_ptr<HeaderMap> trailers);
  // Events of the response's source (a filter, the upstream).
  void encodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream);
  void encodeData(Buffer& data, bool end_stream);
  void encodeTrailers(std::unique_ptr<HeaderMap> trailers);

  // Answers the request without going further: through the response filters when no response
  // has entered them, straight to the codec when one entered but none left, a reset when a
  // response already left.
  void sendLocalReply(uint16_t status, std::string_view body,
                      const std::function<void(HeaderMap&)>& modify);
  // No more iteration either way (the stream is being reset).
  void abort() {
    decode_.aborted = true;
    encode_.aborted = true;
  }
  // The request side stops (refused before the filters, or answered while still coming).
  void abortRequest() { decode_.aborted = true; }
  // The request asked for a tunnel (an allowed Upgrade, CONNECT): a response that opens it
  // keeps the request side going (its body is then the client's bytes).
  void setTunnelRequest(bool connect) {
    tunnel_request_ = true;
    tunnel_connect_ = connect;
  }
  // The response opened the tunnel the request asked for.
  bool tunnelOpened() const {
    return tunnel_request_ && response_head_sent_ &&
           OpensTunnel(tunnel_connect_, info_.response_code);
  }
  // The stream is over: no filter is called again, except onStreamComplete (called now).
  void complete();
  // Tells the filters that asked (kHookUpstreamAttempt) how an upstream attempt went.
  void onUpstreamAttemptDone(const UpstreamAttempt& attempt);
  bool observesUpstreamAttempts() const;
  // Asks the filter that enabled retries (kNo when none did).
  RetryVerdict onUpstreamRetry(const UpstreamAttempt& attempt, RetryDecision& decision);

  StreamInfo& streamInfo() { return info_; }
  const StreamInfo& streamInfo() const { return info_; }
  uint64_t streamId() const { return id_; }
  RequestHead* requestHead() { return request_head_.get(); }
  ResponseHead* responseHead() { return response_head_.get(); }
  const HeaderMap* responseTrailers() const { return encode_.trailers.get(); }
  bool completed() const { return completed_; }
  // A response entered the filters (from a filter, the upstream or a local reply).
  bool responseStarted() const { return encode_.headers_entered; }
  // The response's head reached the codec: the client may have (part of) it.
  bool responseHeadSent() const { return response_head_sent_; }
  bool requestComplete() const { return request_complete_; }

 private:
  enum class Stop : uint8_t { kNone, kData, kTrailers };
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

  class FilterSlot;

  FilterSlot& slotAt(const Direction& d, size_t pos);
  bool live(const Direction& d) const { return !d.aborted && !completed_; }
  // The response's source sent its last part: the request's rest goes nowhere.
  void responseEnded();
  // The head of a local reply (a gRPC request gets a trailers-only gRPC response); returns the
  // body that goes with it.
  std::string_view localReplyHead(uint16_t status, std::string_view body,
                                  const std::function<void(HeaderMap&)>& modify,
                                  ResponseHead& head);
  // The body `d` holds at the filter at `pos` (in d's order), or nullptr when that filter holds
  // none of it: a filter may change only what it holds.
  Buffer* heldAt(Direction& d, size_t pos) {
    return d.stop != Stop::kNone && d.stop_pos == pos ? &d.buffered : nullptr;
  }
  void sourceData(Direction& d, Buffer& data, bool end_stream);
  void sourceTrailers(Direction& d, std::unique_ptr<HeaderMap> trailers);
  // Resumes direction `d` stopped at filter `pos` (in d's order); false when it is not stopped
  // there.
  bool resume(Direction& d, size_t pos);
  bool iterateHeaders(Direction& d, size_t from);
  bool deliverData(Direction& d, size_t from, Buffer& data, bool end_stream);
  bool deliverDataChain(Direction& d, size_t from, Buffer& data, bool end_stream);
  HeaderMap* addTrailers(Direction& d);
  bool deliverTrailers(Direction& d, size_t from);
  // The end of each chain: the callbacks.
  void sinkHeaders(Direction& d);
  void sinkData(Direction& d, Buffer& data, bool end_stream);
  void sinkTrailers(Direction& d);
  bool overBufferLimit(Direction& d);
  // A local reply once the response's head entered the filters but has not reached the codec.
  void sendDirectLocalReply(uint16_t status, std::string_view body,
                            const std::function<void(HeaderMap&)>& modify);
  void resetFromFilter();

  FilterManagerCallbacks& callbacks_;
  const uint64_t id_;
  const uint32_t buffer_limit_;
  StreamInfo info_;
  // In the owner's block: filter_count_ slots, then the filters built in place.
  FilterSlot* const slots_;
  const size_t filter_count_;
  std::unique_ptr<RequestHead> request_head_;
  std::unique_ptr<ResponseHead> response_head_;
  Direction decode_{.decode = true};
  Direction encode_{.decode = false};
  bool completed_ = false;
  // The slot of the filter that enabled retries; kNoSlot: none.
  static constexpr uint8_t kNoSlot = 0xff;
  uint8_t retry_slot_ = kNoSlot;
  bool request_complete_ = false;  // the codec delivered the request's last part
  bool response_head_sent_ = false;
  bool tunnel_request_ = false;
  bool tunnel_connect_ = false;
  bool response_opens_tunnel_ = false;
};

}  // namespace sluice::http
