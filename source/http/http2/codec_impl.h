#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "source/common/buffer.h"
#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/http2/settings.h"
#include "source/network/connection.h"

namespace sluice::http::http2 {

// HTTP/2 counters ("<prefix>http2.<name>"), as Envoy names them where it has the same one.
struct Http2Stats {
  stats::Counter& rx_reset;  // RST_STREAM received
  stats::Counter& tx_reset;  // RST_STREAM sent
  stats::Counter& goaway_sent;
  stats::Counter& rx_messaging_error;   // malformed requests (stream errors)
  stats::Counter& rx_protocol_error;    // connection errors
  stats::Counter& header_overflow;      // header lists over max_header_list_size (431)
  stats::Counter& rx_reset_flood;       // over max_resets_per_second
  stats::Counter& control_frame_flood;  // over max_control_frames_per_second
  stats::Counter& inbound_empty_frames_flood;
  stats::Counter& inbound_priority_frames_flood;
  stats::Counter& too_many_continuations;
  stats::Counter& outbound_flood;  // the client reads none of what we queue
  stats::Counter& header_bomb;     // a header block far over the limit
  stats::Counter& stream_refused;  // over max_concurrent_streams, or after GOAWAY
  stats::Counter& keepalive_timeout;
  stats::Counter& stream_id_exhausted;        // GOAWAY before the client runs out of stream ids
  stats::Counter& pending_send_bytes_paused;  // a stream's response paused: the client's window
};

class ServerStream;

// The server side of HTTP/2 on one connection (nghttp2): many streams at once, each with its
// own flow control. Request bodies are credited back to the client (WINDOW_UPDATE) only when
// the stream's reader takes them: a stream whose upstream is slow stops its own client, never
// the others, and never buffers more than its window. Responses are pulled by nghttp2 as the
// client's windows allow, straight from each stream's buffer (no copy of DATA payloads).
class ServerConnectionImpl : public ServerConnection, private event::DeadlineCallbacks {
 public:
  ServerConnectionImpl(network::Connection& connection, ServerConnectionCallbacks& callbacks,
                       const Http2Settings& settings, Http2Stats& stats,
                       event::Dispatcher& dispatcher, uint32_t stream_buffer_limit);
  ~ServerConnectionImpl() override;

  void dispatch(Buffer& data) override;
  Protocol protocol() const override { return Protocol::kHttp2; }
  // GOAWAY (NO_ERROR) with the last stream id processed: streams above it were never seen, and
  // the client may send them again elsewhere. Streams below finish; then the connection closes.
  void shutdownNotice() override;
  bool requestInProgress() const override;
  void onUnderlyingConnectionAboveWriteBufferHighWatermark() override;
  void onUnderlyingConnectionBelowWriteBufferLowWatermark() override;
  bool releasableWhenIdle() const override { return false; }
  // The client may be sending when we close (frames in flight after our GOAWAY): the close
  // lingers, so that unread bytes do not make the kernel reset what we wrote.
  bool inputUnread() const override { return true; }
  void goAway() override;

  size_t activeStreams() const { return streams_.size(); }

 private:
  friend class ServerStream;
  struct Callbacks;  // nghttp2's C callbacks, as static functions

  int onBeginHeaders(const nghttp2_frame& frame);
  int onHeader(const nghttp2_frame& frame, std::string_view name, std::string_view value);
  int onFrameRecv(const nghttp2_frame& frame);
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len);
  int onStreamClose(int32_t stream_id, uint32_t error_code);
  int onFrameSend(const nghttp2_frame& frame);
  int onBeginFrame(const nghttp2_frame_hd& hd);
  ssize_t onSend(const uint8_t* data, size_t length);
  int onSendData(nghttp2_frame* frame, const uint8_t* framehd, size_t length);

  // Writes what nghttp2 has queued (unless the connection's write buffer is full); closes the
  // connection when nghttp2 has nothing left to do (after GOAWAY).
  void sendPendingFrames();
  // What streams queue is sent once, at the end of the current dispatch or batch of events
  // (every response that arrived in it, in one pass of nghttp2 and one write); at once when
  // outside of both.
  void scheduleSend();
  static void SendTrampoline(void* self);
  // Ends the connection at once: GOAWAY `code` (written by hand when the session is broken),
  // counted in `counter`.
  void terminate(uint32_t code, stats::Counter* counter, const char* why);
  ServerStream* findStream(int32_t stream_id);
  void onStreamHeadersComplete(ServerStream& stream, bool end_stream);
  // Tells the manager the codec went idle (after a stream closed), once outside nghttp2's calls.
  void reportIdle();
  // The GOAWAY with the last stream processed (once): no stream is accepted after it.
  void sendFinalGoAway();
  // Starts a new one-second window for the flood counts when the last one is over.
  void rollWindow();
  void onDeadline(event::Deadline& deadline) override;
  void armKeepalive();

  network::Connection& connection_;
  ServerConnectionCallbacks& callbacks_;
  const Http2Settings& settings_;
  Http2Stats& stats_;
  event::Dispatcher& dispatcher_;
  const uint32_t stream_buffer_limit_;
  nghttp2_session* session_ = nullptr;
  absl::flat_hash_map<int32_t, std::unique_ptr<ServerStream>> streams_;
  // Frames nghttp2 wrote while we send: goes to the connection at the end of sendPendingFrames.
  Buffer out_;
  bool dispatching_ = false;
  bool sending_ = false;
  bool write_blocked_ = false;  // the connection's write buffer is over its high watermark
  bool goaway_sent_ = false;    // the final GOAWAY (with the last stream id processed)
  bool notice_sent_ = false;    // the notice GOAWAY (2^31-1) and its PING, awaiting the ack
  bool terminated_ = false;
  bool idle_pending_ = false;
  bool goaway_received_ = false;
  bool send_scheduled_ = false;
  bool reset_flood_ = false;  // set while sending: the connection ends once the send is done
  ServerStream* last_stream_ = nullptr;  // findStream's one-entry cache
  // The GOAWAY code a callback asked for when it failed the session (a flood).
  uint32_t flood_code_ = 0;
  // Flood accounting: per second windows.
  std::chrono::steady_clock::time_point window_start_{};
  uint32_t resets_in_window_ = 0;
  uint32_t control_in_window_ = 0;
  uint32_t consecutive_empty_ = 0;
  uint64_t priority_frames_ = 0;
  uint64_t streams_opened_ = 0;
  int32_t max_client_stream_id_ = 0;
  // Keep-alive PING.
  event::Deadline keepalive_deadline_;
  bool ping_outstanding_ = false;
};

}  // namespace sluice::http::http2
