#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "source/common/buffer.h"
#include "source/http/header_map.h"

namespace sluice::http {

// The HTTP protocol a codec speaks on a connection.
enum class Protocol { kHttp10, kHttp11, kHttp2 };

// Why a stream ended before its response was complete.
enum class StreamResetReason {
  kConnectionTermination,  // the downstream connection closed
  kLocalReset,             // we reset it (timeout, protocol error, filter)
  kProtocolError,
};

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
  // Abandons the response: HTTP/1 closes the connection (there is no other way to signal it).
  virtual void resetStream() = 0;
};

// Client side (upstream): sends one request. The codec owns framing as on the server side.
class RequestEncoder {
 public:
  virtual ~RequestEncoder() = default;
  virtual void encodeHeaders(RequestHead& head, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
};

// Why an upstream exchange ended without a whole response.
enum class UpstreamFailure {
  kConnectionClosed,  // the upstream closed or reset the connection during its response
  // ... before any byte of a response: on a reused connection, most likely closed by the
  // upstream's keep-alive timeout as the request went out (the request was never processed).
  kClosedBeforeResponse,
  kProtocolError,  // the upstream sent something that is not a valid response
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
};

// Server side: receives one request from the codec.
class RequestDecoder {
 public:
  virtual ~RequestDecoder() = default;
  virtual void decodeHeaders(std::unique_ptr<RequestHead> head, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  // Trailers end the request.
  virtual void decodeTrailers(std::unique_ptr<HeaderMap> trailers) = 0;
  virtual void onResetStream(StreamResetReason reason) = 0;
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
  // A response was written completely; `close` when the connection must close after it.
  virtual void onResponseComplete(bool close) = 0;
  // The first bytes of a new request arrived (the request-headers timeout starts).
  virtual void onRequestStart() = 0;
  // A response body did not match the Content-Length its head announced (a filter's mistake):
  // the codec sent at most what was announced and closes the connection after it.
  virtual void onResponseFramingError() {}
  // Response trailers were dropped: the body was not chunked (Content-Length, or HTTP/1.0).
  virtual void onResponseTrailersDropped() {}
};

// Server side of an HTTP connection: bytes in, streams out.
class ServerConnection {
 public:
  virtual ~ServerConnection() = default;
  // Consumes what it can from `data` (bytes it cannot use yet stay there, e.g. a pipelined
  // request while the previous response is in progress).
  virtual void dispatch(Buffer& data) = 0;
  virtual Protocol protocol() const = 0;
  // Ask the peer to close after the current response (drain, max requests): HTTP/1 adds
  // "Connection: close" to it.
  virtual void shutdownNotice() = 0;
  // True while bytes of a request that has begun are buffered or expected.
  virtual bool requestInProgress() const = 0;
};
using ServerConnectionPtr = std::unique_ptr<ServerConnection>;

}  // namespace sluice::http
