#include "source/http/http1/client_codec.h"

#include "source/common/logging.h"
#include "source/http/http1/header_utils.h"

namespace sluice::http::http1 {

ClientConnectionImpl::ClientConnectionImpl(network::Connection& connection,
                                           ClientConnectionCallbacks& callbacks,
                                           const Limits& limits)
    : connection_(connection), callbacks_(callbacks), limits_(limits) {}

RequestEncoder& ClientConnectionImpl::newStream(ResponseDecoder& decoder) {
  decoder_ = &decoder;
  stream_open_ = true;
  state_ = State::kHead;
  scanner_.reset();
  chunked_.reset();
  body_remaining_ = 0;
  response_started_ = false;
  response_bytes_ = false;
  pending_head_.reset();
  response_keep_alive_ = true;
  tunnel_request_ = false;
  tunnel_is_connect_ = false;
  tunneling_ = false;
  request_close_ = false;
  request_chunked_ = false;
  request_counted_ = false;
  request_remaining_ = 0;
  request_sent_ = false;
  return *this;
}

void ClientConnectionImpl::resetStream() {
  decoder_ = nullptr;
  // Whatever the upstream still sends for it cannot be told apart from what a next request
  // would get unless it is read to its end; simplest and safe: this connection is done.
  response_keep_alive_ = false;
  state_ = State::kFailed;
  streamDone(false);
}

void ClientConnectionImpl::streamDone(bool reusable) {
  if (!stream_open_) return;
  stream_open_ = false;
  callbacks_.onStreamDone(reusable);
}

void ClientConnectionImpl::onUnderlyingConnectionAboveWriteBufferHighWatermark() {
  if (decoder_ != nullptr) decoder_->onAboveWriteBufferHighWatermark();
}

void ClientConnectionImpl::onUnderlyingConnectionBelowWriteBufferLowWatermark() {
  if (decoder_ != nullptr) decoder_->onBelowWriteBufferLowWatermark();
}

void ClientConnectionImpl::encodeHeaders(RequestHead& head, bool end_stream) {
  // The codec owns framing and the hop: whatever filters left, recompute it here.
  // The server side kept Upgrade only on an allowed upgrade request.
  tunnel_is_connect_ = head.method == "CONNECT";
  const bool upgrade = !tunnel_is_connect_ && head.headers.count(KnownHeader::kUpgrade) > 0;
  tunnel_request_ = upgrade || tunnel_is_connect_;
  RemoveHopByHop(head.headers, upgrade);
  request_method_.assign(head.method);
  if (tunnel_request_) {
    // No body of its own: what follows is the tunnel's, once the response opens it.
    head.headers.remove(KnownHeader::kContentLength);
  } else if (end_stream) {
    // No body: a Content-Length only where a body is meaningful (RFC 9110 §8.6: a user agent
    // should send one for POST/PUT without a body).
    head.headers.remove(KnownHeader::kContentLength);
    if (head.method == "POST" || head.method == "PUT" || head.method == "PATCH") {
      head.headers.add("Content-Length", "0");
    }
  } else {
    uint64_t length = 0;
    if (ParseResponseContentLength(head.headers, length)) {
      request_counted_ = true;
      request_remaining_ = length;
      head.headers.set("Content-Length", std::to_string(length));
    } else {
      head.headers.remove(KnownHeader::kContentLength);
      head.headers.add("Transfer-Encoding", "chunked");
      request_chunked_ = true;
    }
  }
  if (upgrade) head.headers.add("Connection", "upgrade");
  head.version_minor = 1;
  request_sent_ = end_stream;
  Buffer out;
  EncodeRequestHead(head, out);
  connection_.write(out, false);
}

void ClientConnectionImpl::encodeData(Buffer& data, bool end_stream) {
  if (state_ == State::kFailed || state_ == State::kIdle) {
    data.clear();
    return;
  }
  if (tunnel_request_) {
    if (!tunneling_) {
      // Before the upstream opened the tunnel there is nowhere for these bytes: they would be
      // read as a next request. (The downstream codec holds the client's until then.)
      SLUICE_LOG(kDebug, "[C%d] data for a tunnel that is not open; dropped", connection_.id());
      data.clear();
      response_keep_alive_ = false;
      return;
    }
    // The client's half-close is passed on as ours.
    connection_.write(data, end_stream);
    return;
  }
  if (end_stream) request_sent_ = true;
  if (request_chunked_) {
    Buffer out;
    if (!data.empty()) EncodeChunk(data, out);
    if (end_stream) EncodeLastChunk(nullptr, out);
    connection_.write(out, false);
    return;
  }
  if (request_counted_) {
    // Never more than announced: the rest would be read as a next request (smuggling).
    if (!FitToLength(data, end_stream, request_remaining_)) request_close_ = true;
  }
  connection_.write(data, false);
  if (request_close_) {
    // The request did not match its own length: the upstream cannot frame what follows.
    SLUICE_LOG(kDebug, "[C%d] upstream request body does not match its Content-Length",
               connection_.id());
    response_keep_alive_ = false;
  }
}

void ClientConnectionImpl::encodeTrailers(const HeaderMap& trailers) {
  if (state_ == State::kFailed || state_ == State::kIdle) return;
  request_sent_ = true;
  if (request_chunked_) {
    Buffer out;
    EncodeLastChunk(&trailers, out);
    connection_.write(out, false);
  }
  // A counted body has no place for trailers (HTTP/1.1): they are dropped.
}

void ClientConnectionImpl::dispatch(Buffer& data) {
  if (!data.empty()) response_bytes_ = true;
  buffer_.move(data);
  if (in_dispatch_) return;
  in_dispatch_ = true;
  bool progress = true;
  while (progress) {
    switch (state_) {
      case State::kHead:
        progress = processHead();
        break;
      case State::kBody:
        progress = processBody();
        break;
      case State::kIdle:
        // Bytes with no request outstanding: the upstream is confused; nothing it sends now can
        // be trusted to belong to the next response.
        if (!buffer_.empty()) fail(UpstreamFailure::kProtocolError, "data before a request");
        progress = false;
        break;
      case State::kDone:
      case State::kFailed:
        buffer_.clear();
        progress = false;
        break;
    }
  }
  // Everything that came with the head decoded cleanly (or nothing did yet).
  if (state_ == State::kBody) deliverHead();
  in_dispatch_ = false;
}

void ClientConnectionImpl::deliverHead() {
  if (!pending_head_) return;
  response_started_ = true;
  std::unique_ptr<ResponseHead> head = std::move(pending_head_);
  if (decoder_ != nullptr) decoder_->decodeHeaders(std::move(head), false);
}

bool ClientConnectionImpl::processHead() {
  switch (scanner_.scan(buffer_, limits_, /*is_request=*/false)) {
    case HeadScanner::Result::kNeedMore:
      return false;
    case HeadScanner::Result::kComplete:
      break;
    case HeadScanner::Result::kRequestLineTooLong:
    case HeadScanner::Result::kHeadTooLarge:
      fail(UpstreamFailure::kProtocolError, "response head too large");
      return false;
    case HeadScanner::Result::kBadLineEnding:
      fail(UpstreamFailure::kProtocolError, "bare CR or LF in the response head");
      return false;
  }
  const size_t length = scanner_.headLength();
  auto storage = std::make_unique<char[]>(length);
  buffer_.copyOut(0, length, storage.get());
  buffer_.drain(length);
  auto head = std::make_unique<ResponseHead>();
  if (auto err = ParseResponseHead(std::move(storage), length, limits_, *head)) {
    fail(UpstreamFailure::kProtocolError, err->reason.c_str());
    return false;
  }
  if (head->status >= 100 && head->status < 200 && head->status != 101) {
    // Interim responses (100 Continue, 103 Early Hints) are this hop's: read the next head.
    scanner_.reset();
    return true;
  }
  if (head->status == 101 && (!tunnel_request_ || tunnel_is_connect_)) {
    fail(UpstreamFailure::kProtocolError, "101 to a request that asked for no upgrade");
    return false;
  }
  tunneling_ = tunnel_request_ && OpensTunnel(tunnel_is_connect_, head->status);
  if (tunneling_) {
    // Raw bytes until the upstream closes (RFC 9110 §9.3.6, §15.2.2), whatever fields it sent.
    framing_ = BodyFraming{};
    framing_.kind = BodyFraming::Kind::kUntilClose;
    head->headers.remove(KnownHeader::kContentLength);
  } else if (auto err = ResponseFraming(*head, request_method_, framing_)) {
    fail(UpstreamFailure::kProtocolError, err->reason.c_str());
    return false;
  }
  // A refused tunnel: the upstream may have read on past the head; do not reuse.
  if (tunnel_request_) response_keep_alive_ = false;
  response_keep_alive_ = response_keep_alive_ && !request_close_ && head->version_minor == 1 &&
                         !AnyHeaderHasToken(head->headers, KnownHeader::kConnection, "close") &&
                         framing_.kind != BodyFraming::Kind::kUntilClose;
  // The hop's own fields stay here; the downstream codec writes its own framing.
  RemoveHopByHop(head->headers, /*keep_upgrade=*/tunneling_ && !tunnel_is_connect_);
  if (framing_.kind == BodyFraming::Kind::kChunked) {
    head->headers.remove(KnownHeader::kContentLength);
    chunked_ = std::make_unique<ChunkedDecoder>();
  }
  body_remaining_ =
      framing_.kind == BodyFraming::Kind::kContentLength ? framing_.content_length : 0;
  const bool no_body = framing_.kind == BodyFraming::Kind::kNone ||
                       (framing_.kind == BodyFraming::Kind::kContentLength && body_remaining_ == 0);
  if (no_body) {
    response_started_ = true;
    state_ = State::kDone;
    if (decoder_ != nullptr) decoder_->decodeHeaders(std::move(head), true);
    completeResponse();
    return false;
  }
  state_ = State::kBody;
  pending_head_ = std::move(head);
  return true;
}

bool ClientConnectionImpl::processBody() {
  switch (framing_.kind) {
    case BodyFraming::Kind::kContentLength: {
      if (buffer_.empty()) return false;
      const uint64_t n = std::min<uint64_t>(body_remaining_, buffer_.length());
      Buffer chunk;
      chunk.move(buffer_, n);
      body_remaining_ -= n;
      const bool end = body_remaining_ == 0;
      deliverHead();
      if (end) state_ = State::kDone;
      if (decoder_ != nullptr) decoder_->decodeData(chunk, end);
      if (end) {
        completeResponse();
        return false;
      }
      return !buffer_.empty();
    }
    case BodyFraming::Kind::kChunked: {
      Buffer out;
      const ChunkedDecoder::Result r = chunked_->decode(buffer_, out, limits_);
      if (r == ChunkedDecoder::Result::kError) {
        fail(UpstreamFailure::kProtocolError, chunked_->error().reason.c_str());
        return false;
      }
      const bool done = r == ChunkedDecoder::Result::kDone;
      const bool has_trailers = done && !chunked_->trailers().empty();
      deliverHead();
      if (done) state_ = State::kDone;
      if (decoder_ != nullptr && (!out.empty() || (done && !has_trailers))) {
        decoder_->decodeData(out, done && !has_trailers);
      }
      if (has_trailers && decoder_ != nullptr) {
        decoder_->decodeTrailers(std::make_unique<HeaderMap>(std::move(chunked_->trailers())));
      }
      if (done) {
        completeResponse();
        return false;
      }
      return false;  // kNeedMore: everything available was consumed
    }
    case BodyFraming::Kind::kUntilClose:
      deliverHead();
      if (!buffer_.empty() && decoder_ != nullptr) decoder_->decodeData(buffer_, false);
      buffer_.clear();
      return false;
    case BodyFraming::Kind::kNone:
      return false;
  }
  return false;
}

void ClientConnectionImpl::onConnectionClosed() {
  if (state_ == State::kBody && framing_.kind == BodyFraming::Kind::kUntilClose) {
    deliverHead();  // normally done already, at the end of the dispatch that read it
    state_ = State::kDone;
    Buffer empty;
    if (decoder_ != nullptr) decoder_->decodeData(empty, true);
    response_keep_alive_ = false;
    completeResponse();
    return;
  }
  if (state_ == State::kHead && !response_bytes_) {
    fail(UpstreamFailure::kClosedBeforeResponse,
         "upstream closed the connection before a response");
  } else if (state_ == State::kHead || state_ == State::kBody) {
    fail(UpstreamFailure::kConnectionClosed, "upstream closed the connection");
  }
}

void ClientConnectionImpl::completeResponse() {
  const bool reusable =
      response_keep_alive_ && request_sent_ && buffer_.empty() && decoder_ != nullptr;
  decoder_ = nullptr;
  state_ = reusable ? State::kIdle : State::kFailed;
  streamDone(reusable);
}

void ClientConnectionImpl::fail(UpstreamFailure failure, const char* reason) {
  SLUICE_LOG(kDebug, "[C%d] upstream exchange failed: %s", connection_.id(), reason);
  state_ = State::kFailed;
  buffer_.clear();
  ResponseDecoder* decoder = decoder_;
  decoder_ = nullptr;
  if (decoder != nullptr) decoder->onUpstreamFailure(failure, response_started_);
  if (stream_open_) {
    streamDone(false);
  } else {
    callbacks_.onCodecFailed();
  }
}

}  // namespace sluice::http::http1
