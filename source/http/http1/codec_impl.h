#pragma once

#include <memory>
#include <string>
#include <vector>

#include "source/common/block_cache.h"
#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/http1/parser.h"
#include "source/network/connection.h"

namespace sluice::http::http1 {

struct CodecSettings {
  Limits limits;
  // Largest request body; 0: unlimited. Over it: 413.
  uint64_t max_request_body_bytes = 0;
  // Upgrade tokens ("websocket", lower case) a request may ask for: such a request becomes a
  // tunnel once the response is 101. Any other Upgrade field is dropped (the request goes on as
  // an ordinary one).
  std::vector<std::string> upgrade_types;
  // CONNECT requests become tunnels once the response is a 2xx; refused with 501 otherwise.
  bool allow_connect = false;
};

// The server side of HTTP/1.1 on one connection. One request at a time: a pipelined request
// waits (unparsed, in this codec's buffer) until the response before it is complete, so
// responses go out in request order.
class ServerConnectionImpl : public ServerConnection, private ResponseEncoder {
 public:
  // Made at a request's first byte and freed when the connection goes idle: at every request on
  // a keep-alive connection, hence from the per-thread block cache.
  static void* operator new(size_t size) { return BlockCache::Allocate(size); }
  static void operator delete(void* p) { BlockCache::Free(p); }

  ServerConnectionImpl(network::Connection& connection, ServerConnectionCallbacks& callbacks,
                       const CodecSettings& settings);
  ~ServerConnectionImpl() override;

  void dispatch(Buffer& data) override;
  Protocol protocol() const override { return protocol_; }
  void shutdownNotice() override { close_after_response_ = true; }
  bool requestInProgress() const override { return state_ != State::kIdle || !buffer_.empty(); }
  void onUnderlyingConnectionAboveWriteBufferHighWatermark() override {
    if (decoder_ != nullptr) decoder_->onAboveWriteBufferHighWatermark();
  }
  void onUnderlyingConnectionBelowWriteBufferLowWatermark() override {
    if (decoder_ != nullptr) decoder_->onBelowWriteBufferLowWatermark();
  }
  // Parses what is buffered after a response completed (pipelining).
  void resume() override;
  size_t bufferedBytes() const override { return buffer_.length(); }
  // A request body not read to its end, a request after it, or bytes after a protocol error.
  bool inputUnread() const override { return input_unread_; }
  // The request side of a tunnel ends.
  void onRemoteHalfClose() override;

  // Waiting for the current response before parsing more.
  bool waitingForResponse() const { return state_ == State::kRequestDone; }
  // A stream exists (its request is being received or its response being sent).
  bool streamActive() const { return decoder_ != nullptr; }
  // The response switched the connection to a tunnel.
  bool tunneling() const { return state_ == State::kTunnel; }

 private:
  enum class State { kIdle, kHead, kBody, kRequestDone, kTunnel, kClosed };

  void process();
  bool processHead();
  bool processBody();
  void protocolError(uint16_t status, std::string_view reason);
  bool isAllowedUpgrade(const RequestHead& head) const;
  // The request-target as the protocol-neutral head has it (:path, :authority in Host, :scheme).
  void makeNeutral(RequestHead& head);
  void endRequest();

  // ResponseEncoder
  void encode100Continue() override;
  void encodeHeaders(ResponseHead& head, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void resetStream(StreamResetReason reason) override;
  void readDisable(bool disable) override;
  // The request in progress asked for a tunnel (an allowed Upgrade, or CONNECT): its stream is
  // not ended by the head; after a 101 (2xx to CONNECT) both directions carry raw bytes, which
  // the request and response bodies then are.
  bool tunnelRequest() const override { return tunnel_request_; }
  // While a response is pending, pipelined requests wait here unparsed; past a bound the
  // connection is not read until the response completes.
  void updatePipelineReadDisable();
  void completeResponse();
  // The body sent does not match the head's Content-Length: what was announced is sent at most,
  // and the connection closes after it (a short body then reads as truncated, never as the
  // start of another response).
  void responseLengthMismatch(const char* what);

  network::Connection& connection_;
  ServerConnectionCallbacks& callbacks_;
  const CodecSettings& settings_;
  Protocol protocol_ = Protocol::kHttp11;
  State state_ = State::kIdle;
  Buffer buffer_;  // received, not yet parsed
  HeadScanner scanner_;
  RequestDecoder* decoder_ = nullptr;
  BodyFraming framing_;
  uint64_t body_remaining_ = 0;
  uint64_t body_received_ = 0;
  std::unique_ptr<ChunkedDecoder> chunked_;
  Buffer body_;

  // The request being answered.
  bool request_keep_alive_ = true;
  bool request_is_head_ = false;
  bool request_http10_ = false;
  bool expect_continue_ = false;
  bool request_complete_ = false;
  // The response being sent.
  bool response_started_ = false;
  bool response_chunked_ = false;
  bool response_until_close_ = false;
  bool response_has_body_ = true;
  // Content-Length framing: the bytes the head announced that are still to be sent. Filters can
  // change a body without fixing its length; the encoder is the last place where a message
  // that does not match its framing can be stopped from reaching the client.
  bool response_counted_ = false;
  bool response_mismatch_ = false;
  uint64_t response_remaining_ = 0;
  bool response_complete_ = false;
  bool tunnel_response_ = false;
  bool tunnel_request_ = false;
  bool tunnel_is_connect_ = false;
  bool close_after_response_ = false;
  bool input_unread_ = false;
  bool in_dispatch_ = false;
  bool pipeline_read_disabled_ = false;
};

}  // namespace sluice::http::http1
