#include "source/http/http2/codec_impl.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "source/common/block_cache.h"
#include "source/common/logging.h"
#include "source/http/http2/nghttp2_util.h"

namespace sluice::http::http2 {

namespace {

// RFC 9113 §8.2.2: connection-specific fields have no place in HTTP/2 (nghttp2 refuses them in
// requests; responses from an HTTP/1 upstream may carry them, and they are dropped here).
bool IsConnectionSpecific(const HeaderMap::Entry& e) {
  switch (e.known) {
    case KnownHeader::kConnection:
    case KnownHeader::kKeepAlive:
    case KnownHeader::kProxyConnection:
    case KnownHeader::kTransferEncoding:
    case KnownHeader::kUpgrade:
      return true;
    default:
      return false;
  }
}

uint32_t ResetCode(StreamResetReason reason) {
  switch (reason) {
    case StreamResetReason::kRefusedStream:
      return NGHTTP2_REFUSED_STREAM;
    case StreamResetReason::kProtocolError:
      return NGHTTP2_PROTOCOL_ERROR;
    case StreamResetReason::kConnectError:
      return NGHTTP2_CONNECT_ERROR;
    case StreamResetReason::kOverflow:
      return NGHTTP2_FLOW_CONTROL_ERROR;
    default:
      return NGHTTP2_INTERNAL_ERROR;
  }
}

constexpr std::string_view kStatusCodes =
    "100101102103200201202203204205206207208226300301302303304305306307308400401402403404405406"
    "407408409410411412413414415416417418421422423424425426428429431451500501502503504505506507"
    "508510511";

// ":status" as three digits (a view that outlives the call: nghttp2 copies it anyway).
std::string_view StatusText(uint16_t status, char (&buf)[4]) {
  buf[0] = static_cast<char>('0' + status / 100 % 10);
  buf[1] = static_cast<char>('0' + status / 10 % 10);
  buf[2] = static_cast<char>('0' + status % 10);
  buf[3] = 0;
  return std::string_view(buf, 3);
}

}  // namespace

// One stream: the request being received, and the response's encoder.
class ServerStream : public ResponseEncoder, public event::DeferredDeletable {
 public:
  // One per request: from the per-thread block cache.
  static void* operator new(size_t size) { return BlockCache::Allocate(size); }
  static void operator delete(void* p) { BlockCache::Free(p); }

  ServerStream(ServerConnectionImpl& parent, int32_t id) : parent_(parent), id_(id) {}

  // ResponseEncoder
  void encode100Continue() override;
  void encodeHeaders(ResponseHead& head, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void resetStream(StreamResetReason reason) override;
  void readDisable(bool disable) override;
  bool tunnelRequest() const override { return tunnel_request_; }

  // nghttp2's data source for the response body.
  ssize_t readData(uint8_t* buf, size_t length, uint32_t* flags);
  // The bytes of a DATA frame nghttp2 is sending now (NGHTTP2_DATA_FLAG_NO_COPY).
  void sendData(Buffer& out, const uint8_t* framehd, size_t length);
  // Request body bytes the reader took: credit them back unless reading is disabled.
  void consume(size_t n);
  // A response the codec gives by itself (431, 413): no decoder is involved.
  void localReply(uint16_t status);
  void checkWatermarks();
  bool hasDataToSend() const { return !pending_.empty() || local_end_; }
  // Detaches the decoder (the stream is over) and returns it.
  RequestDecoder* takeDecoder() {
    RequestDecoder* d = decoder_;
    decoder_ = nullptr;
    return d;
  }

  ServerConnectionImpl& parent_;
  const int32_t id_;
  RequestDecoder* decoder_ = nullptr;
  std::unique_ptr<RequestHead> head_;    // the request head while its fields arrive
  std::unique_ptr<HeaderMap> trailers_;  // request trailers while they arrive
  Buffer body_;                          // request body of the DATA frame being received
  size_t header_bytes_ = 0;
  uint32_t header_count_ = 0;
  uint16_t refuse_status_ = 0;  // the head broke a limit: answered with this, never decoded
  uint64_t body_received_ = 0;
  uint64_t unconsumed_ = 0;  // request bytes received but not credited back (reading disabled)
  uint32_t read_disabled_ = 0;
  bool headers_done_ = false;  // the request head was delivered
  bool remote_end_ = false;
  bool tunnel_request_ = false;
  bool tunnel_connect_ = false;  // CONNECT (no :protocol): 2xx opens it
  bool tunnel_open_ = false;     // ... and the response opened it
  bool request_is_head_ = false;
  bool expect_continue_ = false;  // the client waits for "100" before its body
  // The response.
  bool response_started_ = false;
  bool response_has_body_ = true;
  bool local_end_ = false;  // the response's last part was handed to us
  bool end_sent_ = false;   // ... and nghttp2 sent END_STREAM
  bool data_deferred_ = false;
  bool above_watermark_ = false;
  bool closed_ = false;
  bool reset_ = false;  // reset (either side) before the response ended
  bool counted_ = false;
  uint64_t remaining_ = 0;  // Content-Length framing: announced bytes still to send
  Buffer pending_;          // response body waiting for the client's window
  std::unique_ptr<HeaderMap> pending_trailers_;
};

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks

struct ServerConnectionImpl::Callbacks {
  static ServerConnectionImpl& Self(void* user_data) {
    return *static_cast<ServerConnectionImpl*>(user_data);
  }
  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int, void* u) {
    return Self(u).onSend(data, length);
  }
  static int SendData(nghttp2_session*, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                      nghttp2_data_source*, void* u) {
    return Self(u).onSendData(frame, framehd, length);
  }
  static int BeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    return Self(u).onBeginHeaders(*frame);
  }
  static int Header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                    size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* u) {
    return Self(u).onHeader(*frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
                            std::string_view(reinterpret_cast<const char*>(value), valuelen));
  }
  static int FrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    return Self(u).onFrameRecv(*frame);
  }
  static int DataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                       size_t len, void* u) {
    return Self(u).onDataChunk(stream_id, data, len);
  }
  static int StreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* u) {
    return Self(u).onStreamClose(stream_id, error_code);
  }
  static int FrameSend(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    return Self(u).onFrameSend(*frame);
  }
  static int BeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* u) {
    return Self(u).onBeginFrame(*hd);
  }
  static ssize_t ReadData(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    (void)session;
    (void)stream_id;
    return static_cast<ServerStream*>(source->ptr)->readData(buf, length, flags);
  }

  // Built once: every session of the process shares them.
  static nghttp2_session_callbacks* Get() {
    static nghttp2_session_callbacks* const callbacks = [] {
      nghttp2_session_callbacks* c = nullptr;
      nghttp2_session_callbacks_new(&c);
      nghttp2_session_callbacks_set_send_callback(c, &Send);
      nghttp2_session_callbacks_set_send_data_callback(c, &SendData);
      nghttp2_session_callbacks_set_on_begin_headers_callback(c, &BeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(c, &Header);
      nghttp2_session_callbacks_set_on_frame_recv_callback(c, &FrameRecv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, &DataChunk);
      nghttp2_session_callbacks_set_on_stream_close_callback(c, &StreamClose);
      nghttp2_session_callbacks_set_on_frame_send_callback(c, &FrameSend);
      nghttp2_session_callbacks_set_on_begin_frame_callback(c, &BeginFrame);
      return c;
    }();
    return callbacks;
  }
};

// ---------------------------------------------------------------------------------------------
// The connection

ServerConnectionImpl::ServerConnectionImpl(network::Connection& connection,
                                           ServerConnectionCallbacks& callbacks,
                                           const Http2Settings& settings, Http2Stats& stats,
                                           event::Dispatcher& dispatcher,
                                           uint32_t stream_buffer_limit)
    : connection_(connection),
      callbacks_(callbacks),
      settings_(settings),
      stats_(stats),
      dispatcher_(dispatcher),
      stream_buffer_limit_(stream_buffer_limit) {
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Credit goes back to the client only as each stream's reader takes its bytes.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_outbound_ack(option, settings_.max_outbound_control_frames);
  nghttp2_option_set_max_settings(option, 32);
  nghttp2_option_set_max_continuations(option, settings_.max_continuations);
  // Our own count (max_resets_per_second) ends the connection first, with a counter; nghttp2's
  // is the backstop.
  nghttp2_option_set_stream_reset_rate_limit(option, uint64_t{settings_.max_resets_per_second} * 2,
                                             settings_.max_resets_per_second * 2);
  nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
  nghttp2_session_server_new3(&session_, Callbacks::Get(), this, option, SessionAllocator());
  nghttp2_option_del(option);

  std::vector<nghttp2_settings_entry> iv = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.initial_stream_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings_.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_size},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, settings_.header_table_size},
  };
  if (!settings_.connect_protocols.empty()) {
    iv.push_back({NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1});
  }
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  if (settings_.initial_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(
        session_, NGHTTP2_FLAG_NONE, 0,
        static_cast<int32_t>(settings_.initial_connection_window_size));
  }
  connection_.enableBatchedWrites();
  window_start_ = dispatcher_.now();
  armKeepalive();
  // Our SETTINGS go out at once (RFC 9113 §3.4: the server preface).
  sendPendingFrames();
}

ServerConnectionImpl::~ServerConnectionImpl() {
  keepalive_deadline_.cancel();
  if (send_scheduled_) dispatcher_.cancelDeferred(this);
  // Streams still here are ended by the connection's close (the manager was told through its
  // own close event): nothing is called back any more.
  for (auto& [id, stream] : streams_) stream->takeDecoder();
  streams_.clear();
  nghttp2_session_del(session_);
}

void ServerConnectionImpl::dispatch(Buffer& data) {
  if (terminated_) {
    data.clear();
    return;
  }
  dispatching_ = true;
  // nghttp2 reads contiguous bytes: each slice as it is (a read usually fills one).
  struct iovec iov[16];
  while (!data.empty() && !terminated_) {
    const size_t n = data.peek(iov, 16);
    size_t consumed = 0;
    for (size_t i = 0; i < n && !terminated_; ++i) {
      const ssize_t rv = nghttp2_session_mem_recv(
          session_, static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      if (rv < 0) {
        switch (rv) {
          case NGHTTP2_ERR_FLOODED:
            terminate(NGHTTP2_ENHANCE_YOUR_CALM, &stats_.outbound_flood,
                      "the client does not read its acks");
            break;
          case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
            terminate(NGHTTP2_ENHANCE_YOUR_CALM, &stats_.too_many_continuations,
                      "too many CONTINUATION frames");
            break;
          case NGHTTP2_ERR_CALLBACK_FAILURE:
            // One of our callbacks asked for the end (a flood); it said why.
            terminate(flood_code_ != 0 ? flood_code_ : uint32_t{NGHTTP2_INTERNAL_ERROR}, nullptr,
                      "");
            break;
          case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
            terminate(NGHTTP2_PROTOCOL_ERROR, &stats_.rx_protocol_error,
                      "not the HTTP/2 connection preface");
            break;
          default:
            terminate(NGHTTP2_PROTOCOL_ERROR, &stats_.rx_protocol_error, nghttp2_strerror(rv));
            break;
        }
        break;
      }
      consumed += iov[i].iov_len;
    }
    data.drain(std::min(consumed, data.length()));
  }
  data.clear();
  dispatching_ = false;
  sendPendingFrames();
}

void ServerConnectionImpl::reportIdle() {
  if (!idle_pending_ || terminated_ || dispatching_ || sending_) return;
  idle_pending_ = false;
  // After a GOAWAY either way, no stream will come: the connection closes.
  if (streams_.empty()) callbacks_.onCodecIdle(/*close=*/goaway_sent_ || goaway_received_);
}

void ServerConnectionImpl::terminate(uint32_t code, stats::Counter* counter, const char* why) {
  if (terminated_) return;
  terminated_ = true;
  if (counter != nullptr) counter->inc();
  if (why != nullptr && *why != 0) {
    SLUICE_LOG(kDebug, "[C%d] HTTP/2 connection ended: %s", connection_.id(), why);
  }
  // The session may be broken: the GOAWAY is written by hand, after what is queued already.
  const int32_t last = nghttp2_session_get_last_proc_stream_id(session_);
  uint8_t frame[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
  frame[9] = static_cast<uint8_t>((last >> 24) & 0x7f);
  frame[10] = static_cast<uint8_t>(last >> 16);
  frame[11] = static_cast<uint8_t>(last >> 8);
  frame[12] = static_cast<uint8_t>(last);
  frame[13] = static_cast<uint8_t>(code >> 24);
  frame[14] = static_cast<uint8_t>(code >> 16);
  frame[15] = static_cast<uint8_t>(code >> 8);
  frame[16] = static_cast<uint8_t>(code);
  out_.add(frame, sizeof(frame));
  connection_.write(out_, false);
  stats_.goaway_sent.inc();
  goaway_sent_ = true;
  // Every stream ends with the connection; the manager closes it (after the GOAWAY is out).
  callbacks_.onProtocolError(0, "HTTP/2 connection error", nullptr);
}

namespace {
// The opaque data of the PING that follows the notice GOAWAY (keep-alive PINGs carry zeros).
constexpr uint8_t kDrainPing[8] = {'s', 'l', 'd', 'r', 'a', 'i', 'n', '1'};
}  // namespace

void ServerConnectionImpl::shutdownNotice() {
  if (goaway_sent_ || notice_sent_ || terminated_) return;
  // RFC 9113 §6.8's graceful shutdown, as Envoy and h2o do it: a GOAWAY with the highest stream
  // id tells the client to open no more streams, while those it sent meanwhile are still
  // served; the final GOAWAY (the last stream processed) follows a round trip later, when the
  // PING sent with the notice comes back. A single GOAWAY would refuse the streams in flight —
  // a client sees them fail during every drain.
  notice_sent_ = true;
  nghttp2_submit_shutdown_notice(session_);
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kDrainPing);
  sendPendingFrames();
}

void ServerConnectionImpl::sendFinalGoAway() {
  if (goaway_sent_ || terminated_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  if (streams_.empty()) idle_pending_ = true;
}

void ServerConnectionImpl::goAway() {
  if (terminated_) return;
  sendFinalGoAway();
  sendPendingFrames();
}

bool ServerConnectionImpl::requestInProgress() const { return !streams_.empty(); }

void ServerConnectionImpl::onUnderlyingConnectionAboveWriteBufferHighWatermark() {
  // No more DATA for now (the streams' own buffers fill, and each tells its producer); control
  // frames still go (RST_STREAM, a local reply's head, acks, GOAWAY): they are small, bounded,
  // and they are what lets streams end while the client does not read.
  write_blocked_ = true;
}

void ServerConnectionImpl::onUnderlyingConnectionBelowWriteBufferLowWatermark() {
  write_blocked_ = false;
  for (auto& [id, stream] : streams_) {
    if (stream->data_deferred_ && stream->hasDataToSend()) {
      stream->data_deferred_ = false;
      nghttp2_session_resume_data(session_, id);
    }
  }
  sendPendingFrames();
}

void ServerConnectionImpl::rollWindow() {
  const auto now = dispatcher_.now();
  if (now - window_start_ >= std::chrono::seconds(1)) {
    window_start_ = now;
    resets_in_window_ = 0;
    control_in_window_ = 0;
  }
}

ServerStream* ServerConnectionImpl::findStream(int32_t stream_id) {
  // nghttp2 calls back for one stream many times in a row (a field at a time).
  if (last_stream_ != nullptr && last_stream_->id_ == stream_id) return last_stream_;
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return nullptr;
  last_stream_ = it->second.get();
  return last_stream_;
}

void ServerConnectionImpl::scheduleSend() {
  if (dispatching_ || send_scheduled_) return;  // sent when the dispatch (or batch) ends
  if (dispatcher_.deferToEndOfBatch(&ServerConnectionImpl::SendTrampoline, this)) {
    send_scheduled_ = true;
    return;
  }
  sendPendingFrames();
}

void ServerConnectionImpl::SendTrampoline(void* self) {
  auto* codec = static_cast<ServerConnectionImpl*>(self);
  codec->send_scheduled_ = false;
  codec->sendPendingFrames();
}

void ServerConnectionImpl::sendPendingFrames() {
  if (sending_ || terminated_ || dispatching_) return;
  sending_ = true;
  const int rv = nghttp2_session_send(session_);
  if (rv != 0) {
    sending_ = false;
    terminate(NGHTTP2_INTERNAL_ERROR, nullptr, nghttp2_strerror(rv));
    return;
  }
  if (out_.length() > 0) connection_.write(out_, false);
  sending_ = false;
  if (reset_flood_) {
    // The client made us reset too many streams (malformed requests, refused streams): the
    // same attack as resetting them itself.
    terminate(NGHTTP2_ENHANCE_YOUR_CALM, &stats_.rx_reset_flood, "stream reset flood");
    return;
  }
  if (idle_pending_) {
    reportIdle();
    return;
  }
  // nghttp2 is done with the connection (it sent GOAWAY after a connection error, or the client
  // sent one and no stream is left): close once what was written is out. The close lingers
  // (inputUnread), so frames the client still sends do not turn it into a reset.
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 &&
      !terminated_) {
    terminated_ = true;
    for (auto& [id, stream] : streams_) {
      if (RequestDecoder* d = stream->takeDecoder()) {
        d->onResetStream(StreamResetReason::kConnectionTermination);
      }
    }
    callbacks_.onCodecIdle(/*close=*/true);
  }
}

ssize_t ServerConnectionImpl::onSend(const uint8_t* data, size_t length) {
  out_.add(data, length);
  return static_cast<ssize_t>(length);
}

int ServerConnectionImpl::onSendData(nghttp2_frame* frame, const uint8_t* framehd, size_t length) {
  ServerStream* stream = findStream(frame->hd.stream_id);
  if (stream == nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
  stream->sendData(out_, framehd, length);
  return 0;
}

int ServerConnectionImpl::onBeginFrame(const nghttp2_frame_hd& hd) {
  // Flood accounting happens as frames begin: a frame that floods is never processed.
  rollWindow();
  auto flood = [&](stats::Counter& counter, const char* why) {
    counter.inc();
    flood_code_ = NGHTTP2_ENHANCE_YOUR_CALM;
    SLUICE_LOG(kDebug, "[C%d] HTTP/2 flood: %s", connection_.id(), why);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  };
  switch (hd.type) {
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
      if ((hd.flags & NGHTTP2_FLAG_ACK) == 0 &&
          ++control_in_window_ > settings_.max_control_frames_per_second) {
        return flood(stats_.control_frame_flood, "SETTINGS/PING flood");
      }
      break;
    case NGHTTP2_PRIORITY:
      if (++priority_frames_ >
          uint64_t{settings_.max_priority_frames_per_stream} * (1 + streams_opened_)) {
        return flood(stats_.inbound_priority_frames_flood, "PRIORITY flood");
      }
      break;
    case NGHTTP2_RST_STREAM:
      if (++resets_in_window_ > settings_.max_resets_per_second) {
        return flood(stats_.rx_reset_flood, "stream reset flood (rapid reset)");
      }
      break;
    case NGHTTP2_HEADERS:
      // RFC 9113 §5.1.1: a new stream's id is larger than every earlier one; a HEADERS frame on
      // a lower id that names no stream nghttp2 still knows is a connection error (nghttp2
      // ignores it instead).
      if ((hd.stream_id & 1) != 0) {
        if (hd.stream_id > max_client_stream_id_) {
          max_client_stream_id_ = hd.stream_id;
        } else if (nghttp2_session_find_stream(session_, hd.stream_id) == nullptr) {
          stats_.rx_protocol_error.inc();
          flood_code_ = NGHTTP2_PROTOCOL_ERROR;
          return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
      }
      break;
    case NGHTTP2_DATA:
      if (hd.length == 0 && (hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
        if (++consecutive_empty_ > settings_.max_consecutive_empty_frames) {
          return flood(stats_.inbound_empty_frames_flood, "empty DATA frames");
        }
      } else {
        consecutive_empty_ = 0;
      }
      break;
    default:
      break;
  }
  return 0;
}

int ServerConnectionImpl::onBeginHeaders(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_HEADERS) return 0;
  ServerStream* existing = findStream(frame.hd.stream_id);
  if (frame.headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers (HEADERS after the head).
    if (existing != nullptr) existing->trailers_ = std::make_unique<HeaderMap>();
    return 0;
  }
  ++streams_opened_;
  // Stream ids run out at 2^31: well before, a graceful GOAWAY makes the client reconnect. The
  // final one at once, naming this stream: no notice is needed, since streams the client sends
  // meanwhile would only bring it nearer the end (it is sent with the writes after this
  // dispatch).
  if (frame.hd.stream_id > (1 << 30) && !goaway_sent_) {
    stats_.stream_id_exhausted.inc();
    sendFinalGoAway();
  }
  auto stream = std::make_unique<ServerStream>(*this, frame.hd.stream_id);
  stream->head_ = std::make_unique<RequestHead>();
  nghttp2_session_set_stream_user_data(session_, frame.hd.stream_id, stream.get());
  streams_[frame.hd.stream_id] = std::move(stream);
  return 0;
}

int ServerConnectionImpl::onHeader(const nghttp2_frame& frame, std::string_view name,
                                   std::string_view value) {
  ServerStream* stream = findStream(frame.hd.stream_id);
  if (stream == nullptr) return 0;
  // RFC 9113 §6.5.2's size: name, value and 32 bytes of overhead per field.
  stream->header_bytes_ += name.size() + value.size() + 32;
  ++stream->header_count_;
  if (stream->header_bytes_ > uint64_t{settings_.max_header_list_size} * 4) {
    // Far beyond anything honest: the decoded size of an HPACK "bomb" (tiny on the wire,
    // references to a large table entry). The connection ends.
    stats_.header_bomb.inc();
    flood_code_ = NGHTTP2_ENHANCE_YOUR_CALM;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (stream->header_bytes_ > settings_.max_header_list_size ||
      stream->header_count_ > settings_.max_headers) {
    // Decoded on (the HPACK table must stay in sync) but not kept: answered 431.
    if (stream->refuse_status_ == 0) {
      stream->refuse_status_ = 431;
      stats_.header_overflow.inc();
    }
    return 0;
  }
  if (stream->refuse_status_ != 0) return 0;
  if (stream->trailers_ != nullptr) {
    stream->trailers_->add(name, value);
    return 0;
  }
  RequestHead& head = *stream->head_;
  if (!name.empty() && name[0] == ':') {
    // nghttp2 checked them (RFC 9113 §8.3): known, once each, before the regular fields, the
    // right set for the method.
    if (name == ":method") {
      head.method = head.headers.keep(value);
    } else if (name == ":path") {
      head.path = head.headers.keep(value);
    } else if (name == ":scheme") {
      head.scheme = head.headers.keep(value);
    } else if (name == ":authority") {
      // Kept where HTTP/1 keeps it (RFC 9113 §8.3.1: it replaces Host), first in the map.
      head.headers.set("host", value);
    } else if (name == ":protocol") {
      head.protocol = head.headers.keep(value);
    }
    return 0;
  }
  if (name == "host" && head.headers.get(KnownHeader::kHost) != nullptr) {
    // :authority came first (pseudo-fields precede): it wins (RFC 9113 §8.3.1).
    return 0;
  }
  head.headers.add(name, value);
  return 0;
}

int ServerConnectionImpl::onFrameRecv(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_HEADERS: {
      ServerStream* stream = findStream(frame.hd.stream_id);
      if (stream == nullptr) return 0;
      const bool end_stream = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end_stream) stream->remote_end_ = true;
      if (frame.headers.cat == NGHTTP2_HCAT_REQUEST) {
        onStreamHeadersComplete(*stream, end_stream);
      } else if (stream->trailers_ != nullptr) {
        std::unique_ptr<HeaderMap> trailers = std::move(stream->trailers_);
        if (stream->decoder_ == nullptr || stream->refuse_status_ != 0) break;
        // RFC 9110 §6.5.1: no framing or routing fields in trailers (an HTTP/1 upstream that
        // merged them into the head would reframe or reroute the request). As HTTP/1's
        // chunked trailers: a malformed request.
        if (trailers->count(KnownHeader::kContentLength) != 0 ||
            trailers->count(KnownHeader::kHost) != 0) {
          stats_.rx_messaging_error.inc();
          stream->resetStream(StreamResetReason::kProtocolError);
          break;
        }
        stream->decoder_->decodeTrailers(std::move(trailers));
      }
      break;
    }
    case NGHTTP2_DATA: {
      ServerStream* stream = findStream(frame.hd.stream_id);
      if (stream == nullptr) return 0;
      const bool end_stream = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end_stream) stream->remote_end_ = true;
      if (stream->decoder_ == nullptr) {
        // Answered already (a refused head): the bytes are dropped, the credit given back.
        stream->consume(stream->body_.length());
        stream->body_.clear();
        return 0;
      }
      const size_t n = stream->body_.length();
      stream->body_received_ += n;
      if (settings_.max_request_body_bytes != 0 &&
          stream->body_received_ > settings_.max_request_body_bytes) {
        stream->body_.clear();
        stream->consume(n);
        stream->localReply(413);
        return 0;
      }
      stream->decoder_->decodeData(stream->body_, end_stream);
      stream->body_.clear();
      // The decoder took them (into a filter's buffer or the upstream's write buffer; each is
      // bounded by its own watermark, which disables reading this stream).
      stream->consume(n);
      break;
    }
    case NGHTTP2_RST_STREAM: {
      stats_.rx_reset.inc();
      ServerStream* stream = findStream(frame.hd.stream_id);
      if (stream != nullptr) stream->reset_ = true;
      break;
    }
    case NGHTTP2_PING:
      if ((frame.hd.flags & NGHTTP2_FLAG_ACK) == 0) break;
      if (notice_sent_ &&
          std::memcmp(frame.ping.opaque_data, kDrainPing, sizeof(kDrainPing)) == 0) {
        // A round trip after the notice: every stream the client opened before it saw the
        // notice has arrived. The final GOAWAY is sent with the writes after this dispatch.
        sendFinalGoAway();
      } else {
        ping_outstanding_ = false;
      }
      break;
    case NGHTTP2_GOAWAY:
      // The client will open no more streams; those in progress finish, then it closes.
      goaway_received_ = true;
      if (streams_.empty()) idle_pending_ = true;
      break;
    default:
      break;
  }
  // Any frame from the client is a sign of life.
  if (settings_.keepalive_interval.count() > 0 && !ping_outstanding_) armKeepalive();
  return 0;
}

void ServerConnectionImpl::onStreamHeadersComplete(ServerStream& stream, bool end_stream) {
  std::unique_ptr<RequestHead> head = std::move(stream.head_);
  if (stream.refuse_status_ != 0) {
    stream.localReply(stream.refuse_status_);
    return;
  }
  if (head->method == "CONNECT") {
    // RFC 9113 §8.5 (a tunnel to :authority) and RFC 8441 (extended CONNECT, :protocol): nghttp2
    // checked the pseudo-fields each needs.
    if (head->protocol.empty()) {
      if (!settings_.allow_connect) {
        stream.localReply(501);
        return;
      }
      stream.tunnel_connect_ = true;
      head->path = {};
      head->scheme = {};
    } else {
      bool allowed = false;
      for (const std::string& p : settings_.connect_protocols) {
        allowed |= HeaderNameEquals(p, head->protocol);
      }
      if (!allowed) {
        stream.localReply(501);
        return;
      }
    }
    stream.tunnel_request_ = true;
  }
  stream.request_is_head_ = head->method == "HEAD";
  if (const HeaderMap::Entry* expect = head->headers.get(KnownHeader::kExpect)) {
    stream.expect_continue_ = !end_stream && HeaderNameEquals(expect->value, "100-continue");
    head->headers.remove(KnownHeader::kExpect);
  }
  // RFC 9113 §8.2.3: cookie pairs may come as separate fields; HTTP/1 wants one.
  if (head->headers.count("cookie") > 1) {
    std::string joined;
    for (std::string_view v : head->headers.getAll("cookie")) {
      if (!joined.empty()) joined.append("; ");
      joined.append(v);
    }
    head->headers.set("cookie", joined);
  }
  // TE: nghttp2 allowed only "trailers" (§8.2.2); it goes upstream only where it means that.
  head->version_minor = 1;
  stream.headers_done_ = true;
  stream.decoder_ = &callbacks_.newStream(stream);
  stream.decoder_->decodeHeaders(std::move(head), end_stream && !stream.tunnel_request_);
}

int ServerConnectionImpl::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  // The connection's window is credited at once: a stream that does not read holds back only
  // its own window, never the others'.
  nghttp2_session_consume_connection(session_, len);
  ServerStream* stream = findStream(stream_id);
  if (stream == nullptr) return 0;
  stream->body_.add(data, len);
  return 0;
}

int ServerConnectionImpl::onStreamClose(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return 0;
  std::unique_ptr<ServerStream> stream = std::move(it->second);
  streams_.erase(it);
  if (last_stream_ == stream.get()) last_stream_ = nullptr;
  stream->closed_ = true;
  if (RequestDecoder* decoder = stream->takeDecoder()) {
    if (stream->end_sent_ && !stream->reset_) {
      callbacks_.onStreamComplete(*decoder);
    } else {
      const StreamResetReason reason =
          error_code == NGHTTP2_PROTOCOL_ERROR   ? StreamResetReason::kProtocolError
          : error_code == NGHTTP2_REFUSED_STREAM ? StreamResetReason::kRefusedStream
                                                 : StreamResetReason::kRemoteReset;
      if (reason == StreamResetReason::kProtocolError) stats_.rx_messaging_error.inc();
      decoder->onResetStream(reason);
    }
  } else if (!stream->headers_done_ && error_code == NGHTTP2_PROTOCOL_ERROR) {
    stats_.rx_messaging_error.inc();  // a malformed head, refused before it became a stream
  }
  dispatcher_.deferredDelete(std::move(stream));
  // Told once nghttp2's call returns and what it queued is written (closing now would drop it).
  if (streams_.empty()) idle_pending_ = true;
  return 0;
}

int ServerConnectionImpl::onFrameSend(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_RST_STREAM: {
      stats_.tx_reset.inc();
      const uint32_t code = frame.rst_stream.error_code;
      if (code == NGHTTP2_REFUSED_STREAM) stats_.stream_refused.inc();
      // Resets the client caused (a malformed request, a refused stream, a window it broke)
      // count towards the same limit as resets it sends (rapid reset, CVE-2023-44487).
      if (code == NGHTTP2_PROTOCOL_ERROR || code == NGHTTP2_REFUSED_STREAM ||
          code == NGHTTP2_FLOW_CONTROL_ERROR || code == NGHTTP2_STREAM_CLOSED) {
        rollWindow();
        if (++resets_in_window_ > settings_.max_resets_per_second) reset_flood_ = true;
      }
      break;
    }
    case NGHTTP2_GOAWAY:
      // (The notice's 2^31-1 is not the final GOAWAY: streams may still come.)
      if (frame.goaway.last_stream_id != (1u << 31) - 1) goaway_sent_ = true;
      stats_.goaway_sent.inc();
      // nghttp2 found a connection error of the client's (a malformed frame, a broken window,
      // bad HPACK, too many streams) and says so with this GOAWAY.
      if (frame.goaway.error_code != NGHTTP2_NO_ERROR) stats_.rx_protocol_error.inc();
      break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      if ((frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        ServerStream* stream = findStream(frame.hd.stream_id);
        if (stream == nullptr) break;
        stream->end_sent_ = true;
        // RFC 9113 §8.1: the response is complete while the request is not (an early answer,
        // a refused tunnel): the client is asked to stop sending, without error. Open tunnels
        // end both ways by themselves.
        if (!stream->remote_end_ && !stream->tunnel_open_) {
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->id_, NGHTTP2_NO_ERROR);
        }
      }
      break;
    default:
      break;
  }
  return 0;
}

void ServerConnectionImpl::armKeepalive() {
  if (settings_.keepalive_interval.count() <= 0) return;
  dispatcher_.armDeadline(keepalive_deadline_, settings_.keepalive_interval, *this);
}

void ServerConnectionImpl::onDeadline(event::Deadline&) {
  if (terminated_) return;
  if (ping_outstanding_) {
    stats_.keepalive_timeout.inc();
    goAway();
    terminated_ = true;
    callbacks_.onProtocolError(0, "HTTP/2 keep-alive timeout", nullptr);
    return;
  }
  ping_outstanding_ = true;
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  dispatcher_.armDeadline(keepalive_deadline_, settings_.keepalive_timeout, *this);
  sendPendingFrames();
}

// ---------------------------------------------------------------------------------------------
// ServerStream

void ServerStream::encode100Continue() {
  if (!expect_continue_ || response_started_ || closed_) return;
  expect_continue_ = false;
  const nghttp2_nv nva[] = {Nv(":status", "100")};
  nghttp2_submit_headers(parent_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, nva, 1, nullptr);
  parent_.scheduleSend();
}

void ServerStream::localReply(uint16_t status) {
  if (response_started_ || closed_) return;
  response_started_ = true;
  local_end_ = true;
  char buf[4];
  const nghttp2_nv nva[] = {Nv(":status", StatusText(status, buf)), Nv("content-length", "0")};
  nghttp2_submit_response(parent_.session_, id_, nva, 2, nullptr);
  parent_.scheduleSend();
}

void ServerStream::encodeHeaders(ResponseHead& head, bool end_stream) {
  if (response_started_ || closed_) return;
  uint16_t status = head.status;
  if (tunnel_request_ && !tunnel_connect_ && status == 101) {
    // RFC 8441 §5: an HTTP/1 upstream's 101 to the WebSocket upgrade is a 200 here.
    status = 200;
  }
  response_started_ = true;
  const bool opens_tunnel = tunnel_request_ && status / 100 == 2;
  tunnel_open_ = opens_tunnel;
  response_has_body_ = !(request_is_head_ || status == 204 || status == 304) || opens_tunnel;
  thread_local NameLowering names;
  thread_local std::vector<nghttp2_nv> nva;
  names.prepare(head.headers);
  nva.clear();
  char buf[4];
  nva.push_back(Nv(":status", StatusText(status, buf)));
  counted_ = false;
  remaining_ = 0;
  for (const HeaderMap::Entry& e : head.headers.entries()) {
    if (e.name.empty() || IsConnectionSpecific(e)) continue;
    if (opens_tunnel && (e.known == KnownHeader::kContentLength ||
                         HeaderNameEquals(e.name, "sec-websocket-accept"))) {
      continue;  // a tunnel has no length; RFC 8441 has no accept key
    }
    if (e.known == KnownHeader::kContentLength && response_has_body_ && !counted_) {
      uint64_t n = 0;
      bool ok = !e.value.empty();
      for (char c : e.value) ok &= c >= '0' && c <= '9';
      if (ok && e.value.size() < 19) {
        for (char c : e.value) n = n * 10 + static_cast<uint64_t>(c - '0');
        counted_ = true;
        remaining_ = n;
      } else {
        parent_.callbacks_.onResponseFramingError();
        continue;
      }
    }
    nva.push_back(Nv(names.lower(e.name), e.value));
  }
  if (!response_has_body_) end_stream = true;
  local_end_ = end_stream;
  if (end_stream) {
    if (counted_ && remaining_ != 0 && !request_is_head_ && head.status != 304) {
      parent_.callbacks_.onResponseFramingError();
    }
    nghttp2_submit_response(parent_.session_, id_, nva.data(), nva.size(), nullptr);
  } else {
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = &ServerConnectionImpl::Callbacks::ReadData;
    nghttp2_submit_response(parent_.session_, id_, nva.data(), nva.size(), &provider);
  }
  parent_.scheduleSend();
}

void ServerStream::encodeData(Buffer& data, bool end_stream) {
  if (!response_started_ || local_end_ || closed_) {
    data.clear();
    return;
  }
  if (!response_has_body_) {
    data.clear();
  } else if (counted_) {
    // Content-Length framing: what was announced at most; a mismatch is a malformed response
    // (RFC 9113 §8.1.1), so the stream is reset rather than ended.
    if (data.length() > remaining_ || (end_stream && data.length() != remaining_)) {
      data.clear();
      parent_.callbacks_.onResponseFramingError();
      resetStream(StreamResetReason::kLocalReset);
      return;
    }
    remaining_ -= data.length();
  }
  pending_.move(data);
  local_end_ = end_stream;
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(parent_.session_, id_);
  }
  parent_.scheduleSend();
  checkWatermarks();
}

void ServerStream::encodeTrailers(const HeaderMap& trailers) {
  if (!response_started_ || local_end_ || closed_) return;
  if (counted_ && remaining_ != 0) {
    parent_.callbacks_.onResponseFramingError();
    resetStream(StreamResetReason::kLocalReset);
    return;
  }
  auto copy = std::make_unique<HeaderMap>();
  for (const HeaderMap::Entry& e : trailers.entries()) {
    if (e.name.empty() || IsConnectionSpecific(e)) continue;
    copy->add(e.name, e.value);
  }
  local_end_ = true;
  if (copy->empty()) {
    // Nothing to send as trailers: the body just ends.
  } else {
    pending_trailers_ = std::move(copy);
  }
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(parent_.session_, id_);
  }
  parent_.scheduleSend();
}

ssize_t ServerStream::readData(uint8_t*, size_t length, uint32_t* flags) {
  const size_t n = std::min(length, pending_.length());
  // Nothing to send yet, or the client is not reading what the connection already holds.
  if ((n == 0 && !local_end_) || (n > 0 && parent_.write_blocked_)) {
    data_deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (local_end_ && n == pending_.length()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (pending_trailers_ != nullptr) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      thread_local NameLowering names;
      thread_local std::vector<nghttp2_nv> nva;
      names.prepare(*pending_trailers_);
      nva.clear();
      for (const HeaderMap::Entry& e : pending_trailers_->entries()) {
        if (!e.name.empty()) nva.push_back(Nv(names.lower(e.name), e.value));
      }
      nghttp2_submit_trailer(parent_.session_, id_, nva.data(), nva.size());
      pending_trailers_.reset();
    }
  }
  return static_cast<ssize_t>(n);
}

void ServerStream::sendData(Buffer& out, const uint8_t* framehd, size_t length) {
  out.add(framehd, 9);
  out.move(pending_, length);
  checkWatermarks();
}

void ServerStream::checkWatermarks() {
  if (decoder_ == nullptr) return;
  const size_t high = parent_.stream_buffer_limit_;
  if (!above_watermark_ && pending_.length() > high) {
    above_watermark_ = true;
    parent_.stats_.pending_send_bytes_paused.inc();
    decoder_->onAboveWriteBufferHighWatermark();
  } else if (above_watermark_ && pending_.length() < high / 2) {
    above_watermark_ = false;
    decoder_->onBelowWriteBufferLowWatermark();
  }
}

void ServerStream::consume(size_t n) {
  if (n == 0 || closed_) return;
  if (read_disabled_ > 0) {
    unconsumed_ += n;
    return;
  }
  nghttp2_session_consume_stream(parent_.session_, id_, n);
}

void ServerStream::readDisable(bool disable) {
  if (closed_) return;
  if (disable) {
    ++read_disabled_;
    return;
  }
  if (read_disabled_ == 0 || --read_disabled_ > 0) return;
  if (unconsumed_ > 0) {
    const uint64_t n = unconsumed_;
    unconsumed_ = 0;
    nghttp2_session_consume_stream(parent_.session_, id_, n);
    parent_.scheduleSend();
  }
}

void ServerStream::resetStream(StreamResetReason reason) {
  if (closed_ || reset_) return;
  reset_ = true;
  nghttp2_submit_rst_stream(parent_.session_, NGHTTP2_FLAG_NONE, id_, ResetCode(reason));
  if (RequestDecoder* d = takeDecoder()) d->onResetStream(reason);
  parent_.scheduleSend();
}

}  // namespace sluice::http::http2
