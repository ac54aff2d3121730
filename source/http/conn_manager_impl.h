#pragma once

#include <memory>
#include <string>
#include <vector>

#include "source/http/codec.h"
#include "source/http/conn_manager.h"
#include "source/http/filter.h"
#include "source/http/http1/codec_impl.h"
#include "source/network/connection.h"
#include "source/network/filter_context.h"
#include "source/network/idle_connections.h"

namespace sluice::http {

// The HTTP connection manager: a network filter that picks the codec (ALPN, or the HTTP/2
// connection preface on cleartext), owns it, turns each request into a stream and runs the
// stream through its filter chain (a FilterManager); it enforces the anti-Slowloris timeouts and
// turns every protocol error into a well-formed local reply (or a reset) and a counter. It
// knows no protocol: HTTP/1 has one stream at a time, HTTP/2 many, and both are the same list
// of active streams here. Between requests the connection is idle and reclaimable: it sits in
// its listener's idle list (when the context has one), from which the worker may close it to
// admit a new connection at a limit.
class ConnectionManagerImpl : public network::ReclaimableFilter,
                              private network::ConnectionCallbacks,
                              private ServerConnectionCallbacks,
                              private event::DeadlineCallbacks {
 public:
  ConnectionManagerImpl(ConnectionManagerConfigPtr config, network::FilterContext& context);
  ~ConnectionManagerImpl() override;

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(Buffer& data, bool end_stream) override;
  void onDrain() override;
  // network::ReclaimableFilter
  bool reclaim() override;

  // Date header value for this second ("Sun, 06 Nov 1994 08:49:37 GMT"), cached per thread.
  static const std::string& CachedDate();

 private:
  class ActiveStream;
  friend class ActiveStream;

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;
  // A slow client: the response being proxied pauses until the client catches up.
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // ServerConnectionCallbacks
  RequestDecoder& newStream(ResponseEncoder& encoder) override;
  void onProtocolError(uint16_t status, std::string_view reason, ResponseEncoder* encoder) override;
  void onStreamComplete(RequestDecoder& decoder) override;
  void onCodecIdle(bool close) override;
  void onRequestStart() override;
  void onResponseFramingError() override { stats().downstream_rs_framing_error.inc(); }
  void onResponseTrailersDropped() override { stats().downstream_rs_trailers_dropped.inc(); }

  // A response the codec writes without a stream (protocol errors, header timeout).
  void sendErrorResponse(ResponseEncoder& encoder, uint16_t status, std::string_view body);
  // The access logs' line for a request answered without a stream.
  void logWithoutStream(uint16_t status, std::string_view details);
  void onHeadersTimeout();
  void onIdleTimeout();
  // The drain timeout passed: an idle connection closes; HTTP/2 sends its final GOAWAY.
  void onDrainTimeout();
  // The codec for this connection, once the first bytes (or ALPN) tell: false while the bytes so
  // far could still be the HTTP/2 preface.
  bool createCodec(const Buffer& data);
  // Unlinks `stream`, ends it and frees it after the current event.
  void destroyStream(ActiveStream& stream);
  // A stream was reset (by the codec, the peer, or us through the codec).
  void onStreamReset(ActiveStream& stream, StreamResetReason reason);
  // Closes after the last response; `linger`: the client may still be sending.
  void closeConnection(bool linger);
  void chargeStatus(uint16_t status);
  // The connection is going away: it is no longer idle, whatever happens next.
  void beginClose();
  // Out of the listener's idle list, if in it.
  void leaveIdle() {
    if (idleListed()) context_.idleConnections()->remove(*this);
  }
  // Enters the listener's idle list when nothing is in progress (no stream, no partial
  // request, nothing buffered), leaves it otherwise.
  void updateIdle();
  bool http2() const { return codec_kind_ == CodecKind::kHttp2; }

  ConnectionManagerConfigPtr config_;
  // Through the config rather than a member of its own: every byte of this object is paid per
  // idle connection.
  const ConnectionManagerStats& stats() const { return *config_->stats; }
  network::FilterContext& context_;
  network::Connection* connection_ = nullptr;
  std::unique_ptr<ServerConnection> codec_;
  // The active streams (intrusive, doubly linked through the streams; owned here).
  ActiveStream* streams_ = nullptr;
  enum class TimerMode : uint8_t { kNone, kHeaders, kIdle, kResume, kDrain };
  void armTimer(TimerMode mode);
  void onDeadline(event::Deadline&) override;
  // One deadline serves every connection-level timeout, since only one applies at a time; it is
  // embedded (no timer object per connection: an idle connection is the common case).
  event::Deadline deadline_;
  uint32_t requests_ = 0;
  // Small, and after requests_, so that they share its word.
  TimerMode timer_mode_ = TimerMode::kNone;
  // Which codec the connection speaks: chosen on the first bytes, kept for its life (the HTTP/1
  // codec itself is freed between requests).
  enum class CodecKind : uint8_t { kUnknown, kHttp1, kHttp2 };
  CodecKind codec_kind_ = CodecKind::kUnknown;
  bool closing_ = false;
  // The server drains: every response is the connection's last.
  bool draining_ = false;
};

}  // namespace sluice::http
