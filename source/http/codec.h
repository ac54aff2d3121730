#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "source/common/buffer.h"
#include "source/event/dispatcher.h"
#include "source/http/header_map.h"
#include "source/network/connection.h"

namespace sluice::http {

// The HTTP protocol a codec speaks on a connection.
enum class Protocol { kHttp10, kHttp11, kHttp2 };

// Why a stream ended before its response was complete.
enum class StreamResetReason : uint8_t {
  kConnectionTermination,  // the connection closed under it
  kLocalReset,     // we reset it (a filter, a timeout, an upstream that failed mid-response)
  kRemoteReset,    // the peer reset it (HTTP/2 RST_STREAM)
  kProtocolError,  // the peer broke the protocol on it (a malformed request)
  kRefusedStream,  // refused unprocessed (over a limit, or after GOAWAY): safe to retry
  kOverflow,       // a buffer limit of the stream was exceeded
  kConnectError,   // the tunnel a CONNECT asked for failed (HTTP/2 CONNECT_ERROR)
};
std::string_view StreamResetReasonName(StreamResetReason reason);

// Whether a response with `status` turns a tunnel request into a tunnel: a 2xx to CONNECT
// (RFC 9110 §9.3.6), a 101 to an Upgrade (§15.2.2).
inline bool OpensTunnel(bool connect, uint16_t status) {
  return connect ? status / 100 == 2 : status == 101;
}

// Server side: sends the response of one request. Codec-neutral (HTTP/1 now, HTTP/2 later).
class ResponseEncoder {
 public:
  virtual ~ResponseEncoder() = default;
  // "100 Continue" for a request that sent "Expect: 100-continue" (HTTP/1.1 only; no-op else).
  virtual void encode100Continue() = 0;
  // The codec owns framing: it removes any Transfer-Encoding and hop-by-hop fields, keeps a
  // Content-Length that is present, and otherwise picks chunked (HTTP/1.1) or close-delimited.
  virtual void encodeHeaders(ResponseHead& head, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // Abandons the stream: HTTP/2 sends RST_STREAM with the reason's code and tells the stream's
  // decoder (onResetStream); HTTP/1 closes the connection (there is no other way to signal it),
  // which ends the stream through the connection's close.
  virtual void resetStream(StreamResetReason reason) = 0;
  // Stops (true) or resumes (false) reading this stream's request; calls nest (each true needs
  // a false). HTTP/1: the connection is not read; HTTP/2: the stream's flow-control credit is
  // withheld, so its client stops while the connection's other streams go on.
  virtual void readDisable(bool disable) = 0;
  // The request asked for a tunnel (an allowed Upgrade or CONNECT; on HTTP/2 CONNECT or an
  // extended CONNECT): a response that opens it (OpensTunnel) makes both bodies the tunnel's
  // bytes.
  virtual bool tunnelRequest() const = 0;
};

// Client side (upstream): sends one request on a stream of a ClientConnection. The codec owns
// framing as on the server side. Valid until the stream's decoder is told the response ended or
// failed, or until resetStream().
class RequestEncoder {
 public:
  virtual ~RequestEncoder() = default;
  virtual void encodeHeaders(RequestHead& head, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // Abandons the stream (its downstream went away): HTTP/2 sends RST_STREAM(CANCEL) and the
  // connection carries on; HTTP/1 cannot tell the rest of the response from a next one, so the
  // connection is not reused. Nothing more reaches the decoder.
  virtual void resetStream() = 0;
  // Stops (true) or resumes (false) reading this stream's response; calls nest. HTTP/1: the
  // connection is not read; HTTP/2: the stream's flow-control credit is withheld.
  virtual void readDisable(bool disable) = 0;
};

// Why an upstream exchange ended without a whole response.
enum class UpstreamFailure {
  kConnectionClosed,  // the upstream closed or reset the connection during its response
  // ... before any byte of a response: on a reused connection, most likely closed by the
  // upstream's keep-alive timeout as the request went out (the request was never processed).
  kClosedBeforeResponse,
  kProtocolError,  // the upstream sent something that is not a valid response
  // Refused unprocessed (HTTP/2 REFUSED_STREAM, or above the last stream id of a GOAWAY): the
  // upstream did nothing with it, so sending it again is safe whatever its method.
  kRefusedStream,
  kRemoteReset,  // the upstream reset the stream (HTTP/2 RST_STREAM with another code)
};

// Client side: receives one response from the codec.
class ResponseDecoder {
 public:
  virtual ~ResponseDecoder() = default;
  virtual void decodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  virtual void decodeTrailers(std::unique_ptr<HeaderMap> trailers) = 0;
  // The exchange failed; nothing more comes. `response_started`: decodeHeaders was called.
  virtual void onUpstreamFailure(UpstreamFailure failure, bool response_started) = 0;
  // The request cannot go out as fast as it is produced (HTTP/1: the connection's write buffer
  // is full; HTTP/2: the stream's, which the upstream's window drains): stop sending its body
  // until onBelowWriteBufferLowWatermark.
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

// What a client connection tells its owner (the connection pool's client).
class ClientConnectionCallbacks {
 public:
  virtual ~ClientConnectionCallbacks() = default;
  // A stream of newStream() is over, exactly once each: its response came whole, it failed
  // (its decoder was told), or it was reset. `reusable` false: the connection must not carry
  // another stream (HTTP/1 "Connection: close", a broken exchange): close it.
  virtual void onStreamDone(bool reusable) = 0;
  // The peer takes no new stream on this connection (HTTP/2 GOAWAY); those in flight go on
  // (streams it will not process fail with kRefusedStream).
  virtual void onGoAway() {}
  // The number of streams the peer allows at once changed (HTTP/2 SETTINGS).
  virtual void onStreamLimitChanged() {}
  // The connection cannot be used any more (a protocol error, not within a stream that could
  // report it): close it. Streams in flight were told.
  virtual void onCodecFailed() = 0;
};

// Client side of an HTTP connection (upstream): streams in, bytes out. HTTP/1 carries one
// stream at a time; HTTP/2 up to the peer's limit.
class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  // A new stream; `decoder` gets its response. Only while streamLimit() allows one more.
  virtual RequestEncoder& newStream(ResponseDecoder& decoder) = 0;
  // Bytes from the upstream.
  virtual void dispatch(Buffer& data) = 0;
  // The connection closed (either side): streams in flight fail (a close-delimited HTTP/1
  // body ends). Nothing is called back after this returns.
  virtual void onConnectionClosed() = 0;
  virtual Protocol protocol() const = 0;
  // Streams the connection may carry at once now (HTTP/1: 1; HTTP/2: the peer's
  // SETTINGS_MAX_CONCURRENT_STREAMS, capped by our own setting).
  virtual uint32_t streamLimit() const = 0;
  // We stop using the connection (its host left, or it carried its maximum of requests):
  // HTTP/2 says so with GOAWAY; streams in flight finish.
  virtual void goAway() {}
  // The connection's write buffer went over / under its watermarks.
  virtual void onUnderlyingConnectionAboveWriteBufferHighWatermark() = 0;
  virtual void onUnderlyingConnectionBelowWriteBufferLowWatermark() = 0;
};
using ClientConnectionPtr = std::unique_ptr<ClientConnection>;

// Makes the codec of each upstream connection of a cluster, once it is connected (with TLS,
// ALPN then says which protocol the server chose). The HTTP codecs implement it; the pools
// know codecs only through it.
class ClientCodecFactory {
 public:
  virtual ~ClientCodecFactory() = default;
  virtual ClientConnectionPtr create(network::Connection& connection,
                                     ClientConnectionCallbacks& callbacks,
                                     event::Dispatcher& dispatcher) const = 0;
  // How many streams a connection being set up is expected to carry (before its codec
  // exists): what a pool counts on when deciding whether to open another one for the requests
  // that wait. HTTP/1: 1; 0: not known before the handshake (ALPN).
  virtual uint32_t expectedStreamLimit() const = 0;
};

// Server side: receives one request from the codec.
class RequestDecoder {
 public:
  virtual ~RequestDecoder() = default;
  virtual void decodeHeaders(std::unique_ptr<RequestHead> head, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  // Trailers end the request.
  virtual void decodeTrailers(std::unique_ptr<HeaderMap> trailers) = 0;
  // The stream is gone (nothing more is called on this decoder, nor may its encoder be used).
  virtual void onResetStream(StreamResetReason reason) = 0;
  // The response cannot go out as fast as it is produced (HTTP/1: the connection's write buffer
  // is full; HTTP/2: the stream's buffer, which the client's window drains): stop producing it
  // until onBelowWriteBufferLowWatermark.
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

class ServerConnectionCallbacks {
 public:
  virtual ~ServerConnectionCallbacks() = default;
  // A new request begins; the returned decoder receives it. `encoder` lives until the stream
  // completes or is reset.
  virtual RequestDecoder& newStream(ResponseEncoder& encoder) = 0;
  // The peer sent something that cannot be parsed, or broke a limit, outside or inside a
  // request. The codec has stopped parsing, and the stream in progress (if any) has been reset.
  // When `encoder` is not null no response has started: the callee answers through it with
  // `status`; either way the connection closes after that.
  virtual void onProtocolError(uint16_t status, std::string_view reason,
                               ResponseEncoder* encoder) = 0;
  // `decoder`'s stream is over, its response out whole (HTTP/1: written; HTTP/2: the stream
  // closed). Not called for a stream whose decoder was told onResetStream.
  virtual void onStreamComplete(RequestDecoder& decoder) = 0;
  // No stream is in progress on the codec now. `close`: the connection must close after what
  // was written (HTTP/1: "Connection: close", an error; HTTP/2: after GOAWAY); it lingers when
  // the codec has input unread (inputUnread).
  virtual void onCodecIdle(bool close) = 0;
  // The first bytes of a new request arrived (the request-headers timeout starts). HTTP/1 only.
  virtual void onRequestStart() {}
  // A response body did not match the Content-Length its head announced (a filter's mistake):
  // the codec sent at most what was announced and closes the connection after it.
  virtual void onResponseFramingError() {}
  // Response trailers were dropped: the body was not chunked (Content-Length, or HTTP/1.0).
  virtual void onResponseTrailersDropped() {}
};

// Server side of an HTTP connection: bytes in, streams out. Freed after the current event when
// the connection goes idle (its caller may be inside one of its calls).
class ServerConnection : public event::DeferredDeletable {
 public:
  ~ServerConnection() override = default;
  // Consumes what it can from `data` (bytes it cannot use yet stay there, e.g. a pipelined
  // request while the previous response is in progress).
  virtual void dispatch(Buffer& data) = 0;
  virtual Protocol protocol() const = 0;
  // Ask the peer to close after the streams in progress (drain, max requests): HTTP/1 adds
  // "Connection: close" to the current response; HTTP/2 sends GOAWAY with the last stream id it
  // processed. The codec reports onCodecIdle(close) once they are done.
  virtual void shutdownNotice() = 0;
  // True while bytes of a request that has begun are buffered or expected.
  virtual bool requestInProgress() const = 0;
  // The connection closes now (a timeout): HTTP/2 writes a final GOAWAY; HTTP/1 has nothing
  // to say.
  virtual void goAway() {}
  // The connection's write buffer went over / under its watermarks: the codec passes it on to
  // the streams whose responses fill it (HTTP/1: the stream; HTTP/2: it stops writing, and each
  // stream's own buffer then fills against its own watermark).
  virtual void onUnderlyingConnectionAboveWriteBufferHighWatermark() = 0;
  virtual void onUnderlyingConnectionBelowWriteBufferLowWatermark() = 0;
  // HTTP/1's pipelining: parses what is buffered once the response before it completed (the
  // owner calls it outside any stream callback). Nothing for multiplexing codecs.
  virtual void resume() {}
  // Bytes received but not parsed yet.
  virtual size_t bufferedBytes() const { return 0; }
  // The last response closes the connection with input unread: the client may still be sending
  // (the connection is closed lingering).
  virtual bool inputUnread() const { return false; }
  // The peer half-closed (passed on only in a tunnel, whose connection reads half-closes).
  virtual void onRemoteHalfClose() {}
  // The codec holds no state between requests and may be freed when idle (HTTP/1), or it lives
  // as long as the connection (HTTP/2: HPACK tables, settings, stream ids).
  virtual bool releasableWhenIdle() const { return true; }
};
using ServerConnectionPtr = std::unique_ptr<ServerConnection>;

}  // namespace sluice::http
