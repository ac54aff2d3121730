#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <list>
#include <memory>

#include "source/common/buffer.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/http2/settings.h"
#include "source/network/connection.h"

namespace sluice::http::http2 {

// HTTP/2 counters of a cluster's upstream connections ("cluster.<name>.http2.<name>").
struct Http2ClientStats {
  stats::Counter& rx_reset;           // RST_STREAM received
  stats::Counter& tx_reset;           // RST_STREAM sent
  stats::Counter& rx_protocol_error;  // connection errors of the upstream's
  stats::Counter& header_overflow;    // a response head over max_header_list_size or max_headers
};

class ClientStream;

// The client side of HTTP/2 on one upstream connection (nghttp2): many streams at once, each
// with its own flow control. Response bodies are credited back to the upstream only when the
// stream's reader takes them (a slow client holds back its own stream, never the others); the
// connection's window is credited at once. Request bodies are pulled by nghttp2 as the
// upstream's windows allow, straight from each stream's buffer, whose watermarks tell the
// stream's producer to stop and go on.
//
// What the pool is told about the connection (onStreamDone, onGoAway, onStreamLimitChanged,
// onCodecFailed) is told outside nghttp2's calls, once they return: the pool may start new
// streams then.
class ClientConnectionImpl : public ClientConnection, private event::DeadlineCallbacks {
 public:
  ClientConnectionImpl(network::Connection& connection, ClientConnectionCallbacks& callbacks,
                       const Http2Settings& settings, Http2ClientStats& stats,
                       event::Dispatcher& dispatcher, uint32_t stream_buffer_limit);
  ~ClientConnectionImpl() override;

  RequestEncoder& newStream(ResponseDecoder& decoder) override;
  void dispatch(Buffer& data) override;
  void onConnectionClosed() override;
  Protocol protocol() const override { return Protocol::kHttp2; }
  uint32_t streamLimit() const override;
  void goAway() override;
  void onUnderlyingConnectionAboveWriteBufferHighWatermark() override;
  void onUnderlyingConnectionBelowWriteBufferLowWatermark() override;

 private:
  friend class ClientStream;
  struct Callbacks;  // nghttp2's C callbacks, as static functions

  int onBeginHeaders(const nghttp2_frame& frame);
  int onHeader(const nghttp2_frame& frame, std::string_view name, std::string_view value);
  int onFrameRecv(const nghttp2_frame& frame);
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len);
  int onStreamClose(int32_t stream_id, uint32_t error_code);
  int onFrameSend(const nghttp2_frame& frame);
  ssize_t onSend(const uint8_t* data, size_t length);
  int onSendData(nghttp2_frame* frame, const uint8_t* framehd, size_t length);
  ClientStream* findStream(int32_t stream_id);
  // The response ended before the request: the rest of the request is not sent.
  void endEarly(ClientStream& stream);

  void sendPendingFrames();
  void scheduleSend();
  static void SendTrampoline(void* self);
  // The connection is unusable (a protocol error of the upstream's, or nghttp2 failed): GOAWAY,
  // streams fail with `failure`, the pool closes the connection.
  void terminate(uint32_t code, const char* why);
  // nghttp2 ended the session by itself (a connection error it answered with GOAWAY, or
  // GOAWAY both ways and no stream left): the streams fail and the pool is told.
  void checkSessionDone();
  // A stream is over: reported to the pool once nghttp2's call returns.
  void streamDone(ClientStream& stream);
  // Tells the pool what happened during nghttp2's calls.
  void flushReports();
  void onDeadline(event::Deadline& deadline) override;
  void armKeepalive();

  network::Connection& connection_;
  ClientConnectionCallbacks& callbacks_;
  const Http2Settings& settings_;
  Http2ClientStats& stats_;
  event::Dispatcher& dispatcher_;
  const uint32_t stream_buffer_limit_;
  nghttp2_session* session_ = nullptr;
  // Every stream from newStream() to its end (some not submitted yet: no id).
  std::list<std::unique_ptr<ClientStream>> streams_;
  Buffer out_;
  // Reports held until nghttp2 returns.
  uint32_t done_reports_ = 0;
  bool goaway_report_ = false;
  bool limit_report_ = false;
  bool failed_report_ = false;
  bool in_nghttp2_ = false;  // inside mem_recv or session_send
  bool write_blocked_ = false;
  bool send_scheduled_ = false;
  bool goaway_received_ = false;
  bool goaway_sent_ = false;
  bool terminated_ = false;
  bool closed_ = false;
  event::Deadline keepalive_deadline_;
  bool ping_outstanding_ = false;
};

}  // namespace sluice::http::http2
