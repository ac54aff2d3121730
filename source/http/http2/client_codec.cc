#include "source/http/http2/client_codec.h"

#include <algorithm>
#include <string>
#include <vector>

#include "source/common/logging.h"
#include "source/http/http1/header_utils.h"
#include "source/http/http2/nghttp2_util.h"

namespace sluice::http::http2 {

// One request/response exchange on the connection.
class ClientStream : public RequestEncoder, public event::DeferredDeletable {
 public:
  ClientStream(ClientConnectionImpl& parent, ResponseDecoder& decoder)
      : parent_(parent), decoder_(&decoder) {}

  // RequestEncoder
  void encodeHeaders(RequestHead& head, bool end_stream) override;
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void resetStream() override;
  void readDisable(bool disable) override;

  ssize_t readData(size_t length, uint32_t* flags);
  void sendData(Buffer& out, const uint8_t* framehd, size_t length);
  void consume(size_t n);
  void checkWatermarks();
  // Ends the stream for its decoder (once): the failure, unless the response was whole.
  void fail(UpstreamFailure failure);
  bool hasDataToSend() const { return !pending_.empty() || local_end_; }

  ClientConnectionImpl& parent_;
  ResponseDecoder* decoder_;  // null once the response ended, failed or was reset by us
  std::list<std::unique_ptr<ClientStream>>::iterator self_;
  int32_t id_ = -1;                      // -1 until the head is submitted
  std::unique_ptr<ResponseHead> head_;   // the response head while its fields arrive
  std::unique_ptr<HeaderMap> trailers_;  // response trailers while they arrive
  Buffer body_;                          // the DATA frame being received
  size_t header_bytes_ = 0;
  uint32_t header_count_ = 0;
  bool header_overflow_ = false;
  bool malformed_ = false;  // refused by us as a malformed response (RST_STREAM PROTOCOL_ERROR)
  bool response_started_ = false;  // decodeHeaders was called
  bool remote_end_ = false;
  bool local_end_ = false;  // the request's last part was handed to us
  bool data_deferred_ = false;
  bool above_watermark_ = false;
  bool closed_ = false;    // nghttp2 closed it (or it never opened)
  bool reported_ = false;  // the pool was told it is done
  uint64_t unconsumed_ = 0;
  uint32_t read_disabled_ = 0;
  Buffer pending_;  // request body waiting for the upstream's window
  std::unique_ptr<HeaderMap> pending_trailers_;
};

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks

struct ClientConnectionImpl::Callbacks {
  static ClientConnectionImpl& Self(void* user_data) {
    return *static_cast<ClientConnectionImpl*>(user_data);
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
  static ssize_t ReadData(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
    return static_cast<ClientStream*>(source->ptr)->readData(length, flags);
  }

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
      return c;
    }();
    return callbacks;
  }
};

// ---------------------------------------------------------------------------------------------
// The stream

void ClientStream::encodeHeaders(RequestHead& head, bool end_stream) {
  if (id_ >= 0 || closed_) return;
  // The hop's fields stay with the hop (RFC 9113 §8.2.2), as the HTTP/1 codec removes them;
  // but "TE: trailers" is how a client says it takes trailers, and gRPC servers require it.
  const bool te_trailers = http1::AnyHeaderHasToken(head.headers, KnownHeader::kTe, "trailers");
  http1::RemoveHopByHop(head.headers, /*keep_upgrade=*/false);
  const bool connect = head.method == "CONNECT";
  thread_local NameLowering names;
  thread_local std::vector<nghttp2_nv> nva;
  names.prepare(head.headers);
  nva.clear();
  nva.push_back(Nv(":method", head.method));
  std::string_view scheme = head.scheme;
  if (scheme.empty()) scheme = parent_.connection_.ssl() != nullptr ? "https" : "http";
  const HeaderMap::Entry* host = head.headers.get(KnownHeader::kHost);
  if (connect) {
    // RFC 9113 §8.5: :authority only.
    if (host != nullptr) nva.push_back(Nv(":authority", host->value));
  } else {
    nva.push_back(Nv(":scheme", scheme));
    // RFC 9113 §8.3.1: :authority instead of Host (kept as Host in the neutral head).
    if (host != nullptr) nva.push_back(Nv(":authority", host->value));
    nva.push_back(Nv(":path", head.path.empty() ? std::string_view("/") : head.path));
  }
  if (te_trailers) nva.push_back(Nv("te", "trailers"));
  for (const HeaderMap::Entry& e : head.headers.entries()) {
    if (e.name.empty() || e.known == KnownHeader::kHost) continue;
    if (connect && e.known == KnownHeader::kContentLength) continue;
    nva.push_back(Nv(names.lower(e.name), e.value));
  }
  local_end_ = end_stream;
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = &ClientConnectionImpl::Callbacks::ReadData;
  const int32_t id = nghttp2_submit_request(parent_.session_, nullptr, nva.data(), nva.size(),
                                            end_stream ? nullptr : &provider, this);
  if (id < 0) {
    // Stream ids ran out (NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) or the session is going away:
    // the request was never sent, another connection can take it.
    SLUICE_LOG(kDebug, "[C%d] HTTP/2 request not submitted: %s", parent_.connection_.id(),
               nghttp2_strerror(id));
    closed_ = true;
    parent_.goaway_report_ = true;
    fail(UpstreamFailure::kRefusedStream);
    parent_.streamDone(*this);
    parent_.flushReports();
    return;
  }
  id_ = id;
  parent_.scheduleSend();
}

void ClientStream::encodeData(Buffer& data, bool end_stream) {
  if (id_ < 0 || closed_ || local_end_) {
    data.clear();
    return;
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

void ClientStream::encodeTrailers(const HeaderMap& trailers) {
  if (id_ < 0 || closed_ || local_end_) return;
  auto copy = std::make_unique<HeaderMap>();
  for (const HeaderMap::Entry& e : trailers.entries()) {
    if (!e.name.empty()) copy->add(e.name, e.value);
  }
  if (!copy->empty()) pending_trailers_ = std::move(copy);
  local_end_ = true;
  if (data_deferred_) {
    data_deferred_ = false;
    nghttp2_session_resume_data(parent_.session_, id_);
  }
  parent_.scheduleSend();
}

void ClientStream::resetStream() {
  decoder_ = nullptr;
  if (closed_) return;
  if (id_ < 0) {
    closed_ = true;
    parent_.streamDone(*this);
    parent_.flushReports();
    return;
  }
  nghttp2_submit_rst_stream(parent_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  parent_.scheduleSend();
}

void ClientStream::readDisable(bool disable) {
  if (disable) {
    ++read_disabled_;
    return;
  }
  if (read_disabled_ == 0) return;
  if (--read_disabled_ == 0 && unconsumed_ > 0 && !closed_) {
    nghttp2_session_consume_stream(parent_.session_, id_, unconsumed_);
    unconsumed_ = 0;
    parent_.scheduleSend();
  }
}

void ClientStream::consume(size_t n) {
  if (n == 0 || closed_) return;
  if (read_disabled_ > 0) {
    unconsumed_ += n;
    return;
  }
  nghttp2_session_consume_stream(parent_.session_, id_, n);
}

ssize_t ClientStream::readData(size_t length, uint32_t* flags) {
  const size_t n = std::min(length, pending_.length());
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

void ClientStream::sendData(Buffer& out, const uint8_t* framehd, size_t length) {
  out.add(framehd, 9);
  out.move(pending_, length);
  checkWatermarks();
}

void ClientStream::checkWatermarks() {
  if (decoder_ == nullptr) return;
  const size_t high = parent_.stream_buffer_limit_;
  if (!above_watermark_ && pending_.length() > high) {
    above_watermark_ = true;
    decoder_->onAboveWriteBufferHighWatermark();
  } else if (above_watermark_ && pending_.length() < high / 2) {
    above_watermark_ = false;
    decoder_->onBelowWriteBufferLowWatermark();
  }
}

void ClientStream::fail(UpstreamFailure failure) {
  ResponseDecoder* d = decoder_;
  decoder_ = nullptr;
  if (d != nullptr) d->onUpstreamFailure(failure, response_started_);
}

// ---------------------------------------------------------------------------------------------
// The connection

ClientConnectionImpl::ClientConnectionImpl(network::Connection& connection,
                                           ClientConnectionCallbacks& callbacks,
                                           const Http2Settings& settings, Http2ClientStats& stats,
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
  // Credit goes back to the upstream only as each stream's reader takes its bytes.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_max_outbound_ack(option, settings_.max_outbound_control_frames);
  nghttp2_option_set_max_settings(option, 32);
  nghttp2_option_set_max_continuations(option, settings_.max_continuations);
  nghttp2_option_set_max_deflate_dynamic_table_size(option, 4096);
  nghttp2_session_client_new3(&session_, Callbacks::Get(), this, option, SessionAllocator());
  nghttp2_option_del(option);
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.initial_stream_window_size},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, settings_.max_frame_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_size},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, settings_.header_table_size},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  if (settings_.initial_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(
        session_, NGHTTP2_FLAG_NONE, 0,
        static_cast<int32_t>(settings_.initial_connection_window_size));
  }
  connection_.enableBatchedWrites();
  armKeepalive();
  // The connection preface and our SETTINGS go out at once (RFC 9113 §3.4).
  sendPendingFrames();
}

ClientConnectionImpl::~ClientConnectionImpl() {
  keepalive_deadline_.cancel();
  if (send_scheduled_) dispatcher_.cancelDeferred(this);
  streams_.clear();
  nghttp2_session_del(session_);
}

uint32_t ClientConnectionImpl::streamLimit() const {
  if (goaway_received_ || terminated_) return 0;
  const uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::min(peer, settings_.max_concurrent_streams);
}

RequestEncoder& ClientConnectionImpl::newStream(ResponseDecoder& decoder) {
  streams_.push_back(std::make_unique<ClientStream>(*this, decoder));
  ClientStream& s = *streams_.back();
  s.self_ = std::prev(streams_.end());
  return s;
}

ClientStream* ClientConnectionImpl::findStream(int32_t stream_id) {
  return static_cast<ClientStream*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

void ClientConnectionImpl::dispatch(Buffer& data) {
  if (terminated_ || closed_) {
    data.clear();
    return;
  }
  in_nghttp2_ = true;
  struct iovec iov[16];
  while (!data.empty() && !terminated_) {
    const size_t n = data.peek(iov, 16);
    size_t consumed = 0;
    for (size_t i = 0; i < n && !terminated_; ++i) {
      const ssize_t rv = nghttp2_session_mem_recv(
          session_, static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      if (rv < 0) {
        stats_.rx_protocol_error.inc();
        terminate(NGHTTP2_PROTOCOL_ERROR, nghttp2_strerror(static_cast<int>(rv)));
        break;
      }
      consumed += iov[i].iov_len;
    }
    data.drain(std::min(consumed, data.length()));
  }
  data.clear();
  in_nghttp2_ = false;
  sendPendingFrames();
  flushReports();
}

void ClientConnectionImpl::terminate(uint32_t code, const char* why) {
  if (terminated_) return;
  terminated_ = true;
  SLUICE_LOG(kDebug, "[C%d] upstream HTTP/2 connection ended: %s", connection_.id(), why);
  // The session may be broken: the GOAWAY is written by hand.
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
  // Every stream in flight fails as a protocol error (the pool closes the connection next).
  // streamDone takes a stream off the list: the next one is found first.
  for (auto it = streams_.begin(); it != streams_.end();) {
    ClientStream& st = **it;
    ++it;
    if (st.closed_) continue;
    st.closed_ = true;
    st.fail(UpstreamFailure::kProtocolError);
    streamDone(st);
  }
  failed_report_ = true;
}

void ClientConnectionImpl::goAway() {
  if (goaway_sent_ || terminated_ || closed_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  scheduleSend();
}

void ClientConnectionImpl::onConnectionClosed() {
  if (closed_) return;
  closed_ = true;
  keepalive_deadline_.cancel();
  // The upstream closed (or the connection broke): streams in flight fail. Those the upstream
  // never saw a byte of are as unprocessed as a refused one only if it said so (GOAWAY): here
  // nothing is known.
  for (auto& s : streams_) {
    if (s->closed_) continue;
    s->closed_ = true;
    s->fail(s->response_started_ ? UpstreamFailure::kConnectionClosed
                                 : UpstreamFailure::kClosedBeforeResponse);
    if (!s->reported_) {
      s->reported_ = true;
      callbacks_.onStreamDone(false);
    }
  }
  // Streams that ended before and were not reported yet.
  while (done_reports_ > 0) {
    --done_reports_;
    callbacks_.onStreamDone(false);
  }
}

void ClientConnectionImpl::onUnderlyingConnectionAboveWriteBufferHighWatermark() {
  write_blocked_ = true;
}

void ClientConnectionImpl::onUnderlyingConnectionBelowWriteBufferLowWatermark() {
  write_blocked_ = false;
  for (auto& s : streams_) {
    if (s->data_deferred_ && s->id_ >= 0 && !s->closed_ && s->hasDataToSend()) {
      s->data_deferred_ = false;
      nghttp2_session_resume_data(session_, s->id_);
    }
  }
  scheduleSend();
}

void ClientConnectionImpl::scheduleSend() {
  if (in_nghttp2_ || send_scheduled_) return;  // sent when nghttp2 returns
  if (dispatcher_.deferToEndOfBatch(&ClientConnectionImpl::SendTrampoline, this)) {
    send_scheduled_ = true;
    return;
  }
  sendPendingFrames();
}

void ClientConnectionImpl::SendTrampoline(void* self) {
  auto* codec = static_cast<ClientConnectionImpl*>(self);
  codec->send_scheduled_ = false;
  codec->sendPendingFrames();
  codec->flushReports();
}

void ClientConnectionImpl::sendPendingFrames() {
  if (in_nghttp2_ || terminated_ || closed_) return;
  in_nghttp2_ = true;
  const int rv = nghttp2_session_send(session_);
  in_nghttp2_ = false;
  if (rv != 0) {
    terminate(NGHTTP2_INTERNAL_ERROR, nghttp2_strerror(rv));
    return;
  }
  if (out_.length() > 0) connection_.write(out_, false);
  checkSessionDone();
  flushReports();
}

void ClientConnectionImpl::checkSessionDone() {
  if (terminated_ || closed_) return;
  if (nghttp2_session_want_read(session_) != 0 || nghttp2_session_want_write(session_) != 0) {
    return;
  }
  // nghttp2 is done with the connection: it found a connection error of the upstream's (DATA
  // on stream 0, a broken HPACK block, a PUSH_PROMISE, ...) and wrote its GOAWAY, or both sides
  // said GOAWAY and no stream is left. Streams still open fail; the pool closes the connection.
  terminated_ = true;
  bool failed_streams = false;
  for (auto it = streams_.begin(); it != streams_.end();) {
    ClientStream& st = **it;
    ++it;
    if (st.closed_) continue;
    st.closed_ = true;
    failed_streams = true;
    st.fail(UpstreamFailure::kProtocolError);
    streamDone(st);
  }
  if (failed_streams || (!goaway_received_ && !goaway_sent_)) {
    stats_.rx_protocol_error.inc();
    SLUICE_LOG(kDebug, "[C%d] upstream HTTP/2 connection error: the session ended",
               connection_.id());
  }
  failed_report_ = true;
}

void ClientConnectionImpl::streamDone(ClientStream& stream) {
  if (stream.reported_) return;
  stream.reported_ = true;
  ++done_reports_;
  // Freed after the current event: the pool or the stream's owner may be inside its calls.
  std::unique_ptr<ClientStream> owned = std::move(*stream.self_);
  streams_.erase(stream.self_);
  dispatcher_.deferredDelete(std::move(owned));
}

void ClientConnectionImpl::flushReports() {
  if (in_nghttp2_) return;
  // Each call may re-enter (the pool starts a stream, a stream's owner resets another): what is
  // reported is cleared first. The GOAWAY first, so that the pool gives no stream to this
  // connection when told that streams ended.
  if (goaway_report_ && !closed_) {
    goaway_report_ = false;
    callbacks_.onGoAway();
  }
  while (done_reports_ > 0) {
    --done_reports_;
    callbacks_.onStreamDone(/*reusable=*/!terminated_ && !closed_);
  }
  if (closed_) return;
  if (failed_report_) {
    failed_report_ = false;
    callbacks_.onCodecFailed();
    return;
  }
  if (limit_report_) {
    limit_report_ = false;
    callbacks_.onStreamLimitChanged();
  }
}

ssize_t ClientConnectionImpl::onSend(const uint8_t* data, size_t length) {
  out_.add(data, length);
  return static_cast<ssize_t>(length);
}

int ClientConnectionImpl::onSendData(nghttp2_frame* frame, const uint8_t* framehd, size_t length) {
  ClientStream* stream = findStream(frame->hd.stream_id);
  if (stream == nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
  stream->sendData(out_, framehd, length);
  return 0;
}

int ClientConnectionImpl::onBeginHeaders(const nghttp2_frame& frame) {
  if (frame.hd.type != NGHTTP2_HEADERS) return 0;
  ClientStream* stream = findStream(frame.hd.stream_id);
  if (stream == nullptr) return 0;
  stream->header_bytes_ = 0;
  stream->header_count_ = 0;
  if (frame.headers.cat == NGHTTP2_HCAT_HEADERS && stream->response_started_) {
    stream->trailers_ = std::make_unique<HeaderMap>();
  } else {
    // A response head (again after an interim 1xx).
    stream->head_ = std::make_unique<ResponseHead>();
  }
  return 0;
}

int ClientConnectionImpl::onHeader(const nghttp2_frame& frame, std::string_view name,
                                   std::string_view value) {
  ClientStream* stream = findStream(frame.hd.stream_id);
  if (stream == nullptr || stream->decoder_ == nullptr) return 0;
  // RFC 9113 §6.5.2's size: name, value and 32 bytes of overhead per field.
  stream->header_bytes_ += name.size() + value.size() + 32;
  ++stream->header_count_;
  if (stream->header_bytes_ > settings_.max_header_list_size ||
      stream->header_count_ > settings_.max_headers) {
    if (!stream->header_overflow_) {
      stream->header_overflow_ = true;
      stats_.header_overflow.inc();
    }
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM; the stream closes
  }
  if (stream->trailers_ != nullptr) {
    stream->trailers_->add(name, value);
    return 0;
  }
  if (stream->head_ == nullptr) return 0;
  ResponseHead& head = *stream->head_;
  if (name == ":status") {
    // nghttp2 checked it is there, once, three digits (RFC 9113 §8.3.2), not 101; a status
    // below 100 is no status at all (RFC 9110 §15): a malformed response, as for HTTP/1.
    uint16_t status = 0;
    for (char c : value) status = static_cast<uint16_t>(status * 10 + (c - '0'));
    if (status < 100) {
      stream->malformed_ = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // RST_STREAM; the stream closes
    }
    head.status = status;
    return 0;
  }
  head.headers.add(name, value);
  return 0;
}

int ClientConnectionImpl::onFrameRecv(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_HEADERS: {
      ClientStream* stream = findStream(frame.hd.stream_id);
      if (stream == nullptr || stream->decoder_ == nullptr) break;
      const bool end_stream = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end_stream) stream->remote_end_ = true;
      if (stream->trailers_ != nullptr) {
        std::unique_ptr<HeaderMap> trailers = std::move(stream->trailers_);
        ResponseDecoder* d = stream->decoder_;
        stream->decoder_ = nullptr;  // the response is whole
        d->decodeTrailers(std::move(trailers));
        endEarly(*stream);
        break;
      }
      if (stream->head_ == nullptr) break;
      if (stream->head_->status >= 100 && stream->head_->status < 200) {
        // Interim responses are this hop's (nghttp2 refuses 101 in HTTP/2).
        stream->head_.reset();
        break;
      }
      std::unique_ptr<ResponseHead> head = std::move(stream->head_);
      head->version_minor = 1;
      stream->response_started_ = true;
      ResponseDecoder* d = stream->decoder_;
      if (end_stream) stream->decoder_ = nullptr;
      d->decodeHeaders(std::move(head), end_stream);
      if (end_stream) endEarly(*stream);
      break;
    }
    case NGHTTP2_DATA: {
      ClientStream* stream = findStream(frame.hd.stream_id);
      if (stream == nullptr) break;
      const bool end_stream = (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end_stream) stream->remote_end_ = true;
      const size_t n = stream->body_.length();
      if (stream->decoder_ != nullptr && !stream->response_started_) {
        // DATA before the final head (nghttp2 lets an empty one through after a 1xx): a
        // malformed response (RFC 9113 §8.1).
        stream->malformed_ = true;
        stream->fail(UpstreamFailure::kProtocolError);
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, frame.hd.stream_id,
                                  NGHTTP2_PROTOCOL_ERROR);
      }
      if (stream->decoder_ == nullptr) {
        stream->body_.clear();
        stream->consume(n);
        break;
      }
      ResponseDecoder* d = stream->decoder_;
      if (end_stream) stream->decoder_ = nullptr;
      d->decodeData(stream->body_, end_stream);
      stream->body_.clear();
      stream->consume(n);
      if (end_stream) endEarly(*stream);
      break;
    }
    case NGHTTP2_RST_STREAM:
      stats_.rx_reset.inc();
      break;
    case NGHTTP2_SETTINGS:
      if ((frame.hd.flags & NGHTTP2_FLAG_ACK) == 0) limit_report_ = true;
      break;
    case NGHTTP2_PING:
      if ((frame.hd.flags & NGHTTP2_FLAG_ACK) != 0) ping_outstanding_ = false;
      break;
    case NGHTTP2_GOAWAY:
      // Streams above its last stream id were not processed: nghttp2 closes them with
      // REFUSED_STREAM (onStreamClose), and they may go elsewhere. The others finish.
      goaway_received_ = true;
      goaway_report_ = true;
      if (frame.goaway.error_code != NGHTTP2_NO_ERROR) {
        SLUICE_LOG(kDebug, "[C%d] upstream GOAWAY with error %u", connection_.id(),
                   frame.goaway.error_code);
      }
      break;
    default:
      break;
  }
  if (settings_.keepalive_interval.count() > 0 && !ping_outstanding_) armKeepalive();
  return 0;
}

void ClientConnectionImpl::endEarly(ClientStream& stream) {
  // RFC 9113 §8.1: the response is whole while the request is not (an early answer): nobody
  // will send the rest, and the stream must not stay half-open on the connection.
  if (!stream.local_end_ && !stream.closed_ && stream.id_ >= 0) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream.id_, NGHTTP2_NO_ERROR);
  }
}

int ClientConnectionImpl::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  // The connection's window is credited at once: a stream that does not read holds back only
  // its own window, never the others'.
  nghttp2_session_consume_connection(session_, len);
  ClientStream* stream = findStream(stream_id);
  if (stream == nullptr) return 0;
  stream->body_.add(data, len);
  return 0;
}

int ClientConnectionImpl::onStreamClose(int32_t stream_id, uint32_t error_code) {
  ClientStream* stream = findStream(stream_id);
  if (stream == nullptr) return 0;
  nghttp2_session_set_stream_user_data(session_, stream_id, nullptr);
  stream->closed_ = true;
  if (stream->decoder_ != nullptr) {
    // The response did not end: refused unprocessed (REFUSED_STREAM, or above a GOAWAY's last
    // stream id), or reset.
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      stream->fail(UpstreamFailure::kRefusedStream);
    } else if (error_code == NGHTTP2_PROTOCOL_ERROR || stream->header_overflow_ ||
               stream->malformed_) {
      stream->fail(UpstreamFailure::kProtocolError);
    } else {
      stream->fail(UpstreamFailure::kRemoteReset);
    }
  }
  streamDone(*stream);
  return 0;
}

int ClientConnectionImpl::onFrameSend(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_RST_STREAM:
      stats_.tx_reset.inc();
      break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      break;
    default:
      break;
  }
  return 0;
}

void ClientConnectionImpl::armKeepalive() {
  if (settings_.keepalive_interval.count() <= 0) return;
  dispatcher_.armDeadline(keepalive_deadline_, settings_.keepalive_interval, *this);
}

void ClientConnectionImpl::onDeadline(event::Deadline&) {
  if (closed_ || terminated_) return;
  if (ping_outstanding_) {
    // No answer within the timeout: the upstream (or the path to it) is gone.
    terminate(NGHTTP2_NO_ERROR, "PING keep-alive timeout");
    flushReports();
    return;
  }
  ping_outstanding_ = true;
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  dispatcher_.armDeadline(keepalive_deadline_, settings_.keepalive_timeout, *this);
  scheduleSend();
}

}  // namespace sluice::http::http2
