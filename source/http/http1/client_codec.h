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
class ClientConnectionImpl : public ClientConnection, public RequestEncoder {
 public:
  ClientConnectionImpl(network::Connection& connection, ClientConnectionCallbacks& callbacks,
                       const Limits& limits);

  // ClientConnection. One stream at a time: newStream again only after onStreamDone.
  RequestEncoder& newStream(ResponseDecoder& decoder) override;
  void dispatch(Buffer& data) override;
  // Ends a close-delimited body; fails anything else in progress.
  void onConnectionClosed() override;
  Protocol protocol() const override { return Protocol::kHttp11; }
  uint32_t streamLimit() const override { return 1; }
  void onUnderlyingConnectionAboveWriteBufferHighWatermark() override;
  void onUnderlyingConnectionBelowWriteBufferLowWatermark() override;

  // RequestEncoder
  void encodeHeaders(RequestHead& head, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  // The rest of the response is not read: the connection is not reused.
  void resetStream() override;
  void readDisable(bool disable) override { connection_.readDisable(disable); }

 private:
  enum class State { kIdle, kHead, kBody, kDone, kFailed };
  bool processHead();
  bool processBody();
  // Passes on the head held since processHead(), if any.
  void deliverHead();
  void completeResponse();
  void fail(UpstreamFailure failure, const char* reason);
  // Tells the owner the stream is over (once per stream).
  void streamDone(bool reusable);

  network::Connection& connection_;
  ClientConnectionCallbacks& callbacks_;
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
  bool stream_open_ = false;  // newStream() was not answered with onStreamDone yet
};

}  // namespace sluice::http::http1
