#pragma once

#include <memory>
#include <string>

#include "source/common/buffer.h"
#include "source/http/codec.h"
#include "source/http/http1/parser.h"
#include "source/network/connection.h"

namespace sluice::http::http1 {

// The upstream side of one HTTP/1.1 connection: one exchange at a time (no pipelining upstream:
// after a failure, which of several queued requests the upstream acted on would be unknown),
// strict response parsing (the same rules as requests downstream: a proxy must not pass on
// framing its upstream and its client could read differently), and request framing owned by
// the codec.
class ClientConnectionImpl : public RequestEncoder {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // The exchange's response was decoded completely. `reusable`: the connection may carry
    // another request (HTTP/1.1, no "Connection: close", framing that ended on its own).
    virtual void onExchangeComplete(bool reusable) = 0;
    // The connection can no longer be used: the upstream broke the protocol or closed (the
    // exchange's decoder, if any, was told first).
    virtual void onCodecFailed() = 0;
  };

  ClientConnectionImpl(network::Connection& connection, Callbacks& callbacks, const Limits& limits);

  // Starts an exchange; `decoder` gets the response. One at a time: call again only after
  // onExchangeComplete.
  RequestEncoder& newExchange(ResponseDecoder& decoder);
  // Detaches the decoder of the exchange in progress (its stream went away): the rest of the
  // response is read and dropped if it can be, and the connection is not reused.
  void abandonExchange();
  // Bytes from the upstream.
  void dispatch(Buffer& data);
  // The upstream closed its side (or the connection died): ends a close-delimited body, fails
  // anything else in progress.
  void onUpstreamClosed();
  bool busy() const { return state_ != State::kIdle; }

  // RequestEncoder
  void encodeHeaders(RequestHead& head, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;

 private:
  enum class State { kIdle, kHead, kBody, kDone, kFailed };
  bool processHead();
  bool processBody();
  // Passes on the head held since processHead(), if any.
  void deliverHead();
  void completeResponse();
  void fail(UpstreamFailure failure, const char* reason);

  network::Connection& connection_;
  Callbacks& callbacks_;
  const Limits& limits_;
  ResponseDecoder* decoder_ = nullptr;
  State state_ = State::kIdle;
  Buffer buffer_;
  HeadScanner scanner_;
  BodyFraming framing_;
  uint64_t body_remaining_ = 0;
  std::unique_ptr<ChunkedDecoder> chunked_;
  // A response head is held until the body bytes that came with it in the same read have been
  // decoded: if they are broken (a garbage chunk-size line), the client gets a 502 instead of a
  // head followed by a reset.
  std::unique_ptr<ResponseHead> pending_head_;
  std::string request_method_;
  // An Upgrade or CONNECT: after a 101 (2xx to CONNECT) the connection is a tunnel, its bytes
  // the bodies both ways, and it is never reused.
  bool tunnel_request_ = false;
  bool tunnel_is_connect_ = false;
  bool tunneling_ = false;
  bool request_close_ = false;
  bool request_chunked_ = false;
  bool request_counted_ = false;
  uint64_t request_remaining_ = 0;
  // The whole request went out. A response that ends before (an origin answering early, as
  // with 401 or 413) leaves the origin still expecting body bytes: the connection cannot carry
  // another request.
  bool request_sent_ = false;
  bool response_started_ = false;
  bool response_bytes_ = false;  // some byte of this exchange's response arrived
  bool response_keep_alive_ = true;
  bool in_dispatch_ = false;
};

}  // namespace sluice::http::http1
