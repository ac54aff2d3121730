#include "source/http/http1/codec_impl.h"

#include <cstring>

#include "source/common/logging.h"
#include "source/http/http1/header_utils.h"
#include "source/http/path_normalizer.h"

namespace sluice::http::http1 {

ServerConnectionImpl::ServerConnectionImpl(network::Connection& connection,
                                           ServerConnectionCallbacks& callbacks,
                                           const CodecSettings& settings)
    : connection_(connection), callbacks_(callbacks), settings_(settings) {}

ServerConnectionImpl::~ServerConnectionImpl() = default;

void ServerConnectionImpl::dispatch(Buffer& data) {
  if (state_ == State::kClosed) {
    data.clear();
    return;
  }
  buffer_.move(data);
  process();
  updatePipelineReadDisable();
}

namespace {
// Pipelined bytes buffered while a response is in progress; above this, stop reading.
constexpr size_t kMaxPipelinedBytes = 64 * 1024;
}  // namespace

void ServerConnectionImpl::updatePipelineReadDisable() {
  if (state_ == State::kClosed || connection_.state() != network::ConnectionState::kOpen) return;
  const bool disable = waitingForResponse() && buffer_.length() > kMaxPipelinedBytes;
  if (disable != pipeline_read_disabled_) {
    pipeline_read_disabled_ = disable;
    connection_.readDisable(disable);
  }
}

void ServerConnectionImpl::readDisable(bool disable) {
  if (connection_.state() == network::ConnectionState::kOpen) connection_.readDisable(disable);
}

void ServerConnectionImpl::resume() {
  if (state_ == State::kIdle && !buffer_.empty()) process();
  updatePipelineReadDisable();
}

void ServerConnectionImpl::process() {
  if (in_dispatch_) return;  // A callback re-entered us; the outer loop continues.
  in_dispatch_ = true;
  bool progress = true;
  while (progress) {
    switch (state_) {
      case State::kIdle:
        if (buffer_.empty()) {
          progress = false;
          break;
        }
        state_ = State::kHead;
        scanner_.reset();
        // A new exchange: nothing of the previous response carries over (an error reply to
        // this request must be possible).
        response_started_ = false;
        response_complete_ = false;
        request_complete_ = false;
        tunnel_response_ = false;
        tunnel_request_ = false;
        expect_continue_ = false;
        request_is_head_ = false;
        request_http10_ = false;
        request_keep_alive_ = true;
        callbacks_.onRequestStart();
        break;
      case State::kHead:
        progress = processHead();
        break;
      case State::kBody:
        progress = processBody();
        break;
      case State::kTunnel:
        if (!buffer_.empty() && decoder_ != nullptr) decoder_->decodeData(buffer_, false);
        buffer_.clear();
        progress = false;
        break;
      case State::kRequestDone:
      case State::kClosed:
        progress = false;
        break;
    }
  }
  in_dispatch_ = false;
}

bool ServerConnectionImpl::processHead() {
  switch (scanner_.scan(buffer_, settings_.limits, /*is_request=*/true)) {
    case HeadScanner::Result::kNeedMore:
      return false;
    case HeadScanner::Result::kRequestLineTooLong:
      protocolError(414, "request line too long");
      return false;
    case HeadScanner::Result::kHeadTooLarge:
      protocolError(431, "request head too large");
      return false;
    case HeadScanner::Result::kBadLineEnding:
      protocolError(400, "bare CR or LF in the request head");
      return false;
    case HeadScanner::Result::kComplete:
      break;
  }
  const size_t length = scanner_.headLength();
  auto storage = std::make_unique<char[]>(length);
  buffer_.copyOut(0, length, storage.get());
  buffer_.drain(length);
  auto head = std::make_unique<RequestHead>();
  if (auto err = ParseRequestHead(std::move(storage), length, settings_.limits, *head)) {
    protocolError(err->status, err->reason);
    return false;
  }
  if (auto err = RequestFraming(*head, framing_)) {
    protocolError(err->status, err->reason);
    return false;
  }
  if (framing_.kind == BodyFraming::Kind::kContentLength && settings_.max_request_body_bytes != 0 &&
      framing_.content_length > settings_.max_request_body_bytes) {
    protocolError(413, "request body larger than max_request_body_bytes");
    return false;
  }

  // Per-request state for the response side.
  request_http10_ = head->version_minor == 0;
  protocol_ = request_http10_ ? Protocol::kHttp10 : Protocol::kHttp11;
  request_is_head_ = head->method == "HEAD";
  if (request_http10_) {
    request_keep_alive_ = AnyHeaderHasToken(head->headers, KnownHeader::kConnection, "keep-alive");
  } else {
    request_keep_alive_ = !AnyHeaderHasToken(head->headers, KnownHeader::kConnection, "close");
  }
  const bool has_body =
      framing_.kind == BodyFraming::Kind::kChunked ||
      (framing_.kind == BodyFraming::Kind::kContentLength && framing_.content_length > 0);
  expect_continue_ = !request_http10_ && has_body &&
                     AnyHeaderHasToken(head->headers, KnownHeader::kExpect, "100-continue");
  response_started_ = false;
  response_complete_ = false;
  request_complete_ = false;
  tunnel_response_ = false;
  body_received_ = 0;
  body_remaining_ =
      framing_.kind == BodyFraming::Kind::kContentLength ? framing_.content_length : 0;
  if (framing_.kind == BodyFraming::Kind::kChunked) chunked_ = std::make_unique<ChunkedDecoder>();

  // Tunnels: CONNECT (RFC 9110 §9.3.6) and Upgrade (§7.8), each only where configured. Either
  // carries no body of its own; what follows the head is the tunnel's, held in the buffer until
  // the response opens the tunnel (sent ahead of a refusal, it must not be read as a request).
  tunnel_is_connect_ = head->method == "CONNECT";
  tunnel_request_ = false;
  if (tunnel_is_connect_) {
    if (!settings_.allow_connect) {
      protocolError(501, "CONNECT is not enabled on this listener");
      return false;
    }
    if (has_body) {
      protocolError(400, "CONNECT request with a body");
      return false;
    }
    tunnel_request_ = true;
  } else if (!has_body && !request_http10_ && isAllowedUpgrade(*head)) {
    tunnel_request_ = true;
  }

  makeNeutral(*head);
  // The codec owns the hop: framing and connection fields are not the filters' business.
  RemoveHopByHop(head->headers, tunnel_request_ && !tunnel_is_connect_);
  head->headers.remove(KnownHeader::kExpect);
  if (framing_.kind == BodyFraming::Kind::kChunked)
    head->headers.remove(KnownHeader::kContentLength);

  state_ = State::kBody;
  // Mark the request complete before delivering its last part: a filter may answer (and the
  // response complete) inside the call, and must not find the request unfinished.
  if (!has_body) endRequest();
  decoder_ = &callbacks_.newStream(*this);
  decoder_->decodeHeaders(std::move(head), !has_body && !tunnel_request_);
  return state_ != State::kClosed;
}

void ServerConnectionImpl::makeNeutral(RequestHead& head) {
  if (head.method == "CONNECT") {
    // Authority-form (RFC 9112 §3.2.3): the target is the authority; no :path.
    head.headers.set("Host", head.path);
    head.path = {};
  } else if (!head.path.empty() && head.path[0] != '/' && head.path != "*") {
    thread_local std::string origin_form;
    std::string_view authority;
    if (SplitAbsoluteForm(head.path, authority, origin_form)) {
      // RFC 9112 §3.2.2: the target's authority wins over Host. Upstreams get origin-form.
      head.scheme = head.path[4] == 's' || head.path[4] == 'S' ? "https" : "http";
      head.headers.set("Host", authority);
      head.path = head.headers.keep(origin_form);
    }
  }
  if (head.scheme.empty()) head.scheme = connection_.ssl() != nullptr ? "https" : "http";
}

bool ServerConnectionImpl::isAllowedUpgrade(const RequestHead& head) const {
  if (settings_.upgrade_types.empty()) return false;
  if (!AnyHeaderHasToken(head.headers, KnownHeader::kConnection, "upgrade")) return false;
  const HeaderMap::Entry* upgrade = head.headers.get(KnownHeader::kUpgrade);
  if (upgrade == nullptr || head.headers.count(KnownHeader::kUpgrade) != 1) return false;
  // One protocol (a list of several asks the server to choose, which a proxy cannot do for it).
  for (const std::string& type : settings_.upgrade_types) {
    if (HeaderNameEquals(upgrade->value, type)) return true;
  }
  return false;
}

void ServerConnectionImpl::onRemoteHalfClose() {
  if (state_ != State::kTunnel || decoder_ == nullptr) return;
  Buffer empty;
  decoder_->decodeData(empty, true);
}

bool ServerConnectionImpl::processBody() {
  if (decoder_ == nullptr || state_ != State::kBody) return false;
  if (framing_.kind == BodyFraming::Kind::kContentLength) {
    const uint64_t n = std::min<uint64_t>(body_remaining_, buffer_.length());
    if (n == 0) return false;
    body_.move(buffer_, n);
    body_remaining_ -= n;
    body_received_ += n;
    const bool end = body_remaining_ == 0;
    if (end) endRequest();
    decoder_->decodeData(body_, end);
    body_.clear();
    return state_ != State::kClosed && !buffer_.empty();
  }
  // Chunked.
  const ChunkedDecoder::Result r = chunked_->decode(buffer_, body_, settings_.limits);
  if (r == ChunkedDecoder::Result::kError) {
    ParseError err = chunked_->error();
    protocolError(err.status, err.reason);
    return false;
  }
  body_received_ += body_.length();
  if (settings_.max_request_body_bytes != 0 && body_received_ > settings_.max_request_body_bytes) {
    protocolError(413, "request body larger than max_request_body_bytes");
    return false;
  }
  const bool done = r == ChunkedDecoder::Result::kDone;
  const bool has_trailers = done && !chunked_->trailers().empty();
  std::unique_ptr<HeaderMap> trailers;
  if (has_trailers) trailers = std::make_unique<HeaderMap>(std::move(chunked_->trailers()));
  if (done) endRequest();
  if (!body_.empty() || (done && !has_trailers)) {
    decoder_->decodeData(body_, done && !has_trailers);
    body_.clear();
  }
  // The data callback may have ended the stream (a local reply, a reset).
  if (trailers && decoder_ != nullptr) decoder_->decodeTrailers(std::move(trailers));
  if (done) return state_ != State::kClosed && !buffer_.empty();
  return false;  // kNeedMore
}

void ServerConnectionImpl::endRequest() {
  request_complete_ = true;
  if (state_ == State::kBody) state_ = State::kRequestDone;
}

void ServerConnectionImpl::protocolError(uint16_t status, std::string_view reason) {
  SLUICE_LOG(kDebug, "[C%d] HTTP/1 protocol error %d: %s", connection_.id(), status,
             std::string(reason));
  state_ = State::kClosed;
  close_after_response_ = true;
  buffer_.clear();
  RequestDecoder* decoder = decoder_;
  decoder_ = nullptr;
  if (decoder != nullptr) decoder->onResetStream(StreamResetReason::kProtocolError);
  // A response can still be sent unless one has begun.
  request_is_head_ = false;
  callbacks_.onProtocolError(status, reason, response_started_ ? nullptr : this);
}

void ServerConnectionImpl::encode100Continue() {
  if (!expect_continue_ || response_started_) return;
  expect_continue_ = false;
  Buffer out;
  out.add("HTTP/1.1 100 Continue\r\n\r\n");
  connection_.write(out, false);
}

void ServerConnectionImpl::encodeHeaders(ResponseHead& head, bool end_stream) {
  if (response_started_) return;
  response_started_ = true;
  expect_continue_ = false;
  const uint16_t status = head.status;
  // A 101 to an allowed Upgrade, or a 2xx to CONNECT, switches to raw bytes both ways.
  tunnel_response_ = tunnel_request_ && OpensTunnel(tunnel_is_connect_, status);
  if (status == 101 && !tunnel_response_) {
    // Nothing asked to switch protocols (a filter's mistake): the client must not be told so.
    SLUICE_LOG(kDebug, "[C%d] 101 response to a request that asked for no upgrade; closing",
               connection_.id());
    callbacks_.onResponseFramingError();
    resetStream(StreamResetReason::kLocalReset);
    return;
  }
  // A refused tunnel: what the client sent after its head may be the tunnel's first bytes.
  if (tunnel_request_ && !tunnel_response_) close_after_response_ = true;
  RemoveHopByHop(head.headers, tunnel_response_ && !tunnel_is_connect_);
  // RFC 9110 §9.3.6: no framing fields on a 2xx to CONNECT.
  if (tunnel_response_) head.headers.remove(KnownHeader::kContentLength);
  response_has_body_ = !(request_is_head_ || status < 200 || status == 204 || status == 304);
  response_chunked_ = false;
  response_until_close_ = false;

  if (!request_keep_alive_) close_after_response_ = true;
  if (!request_complete_ &&
      !(state_ == State::kBody && framing_.kind == BodyFraming::Kind::kContentLength &&
        buffer_.length() >= body_remaining_)) {
    // Answered before the request's body arrived: the rest of it cannot be told apart from a
    // next request, so this is the connection's last response, and it says so.
    close_after_response_ = true;
  }
  response_counted_ = false;
  response_remaining_ = 0;
  response_mismatch_ = false;
  if (response_has_body_ && !tunnel_response_ &&
      head.headers.count(KnownHeader::kContentLength) != 0) {
    // RFC 9110 §8.6, as strictly as for requests. Anything else (a filter's mistake) is
    // dropped and the body goes chunked; a valid list ("5, 5") is written as one value.
    uint64_t length = 0;
    const bool valid = ParseResponseContentLength(head.headers, length);
    if (valid) {
      response_counted_ = true;
      response_remaining_ = length;
      const std::string canonical = std::to_string(length);  // short: no allocation
      if (head.headers.count(KnownHeader::kContentLength) != 1 ||
          head.headers.get(KnownHeader::kContentLength)->value != canonical) {
        head.headers.set("Content-Length", canonical);
      }
    } else {
      SLUICE_LOG(kDebug, "[C%d] response Content-Length is invalid; sending it chunked",
                 connection_.id());
      callbacks_.onResponseFramingError();
      head.headers.remove(KnownHeader::kContentLength);
    }
  }
  if (tunnel_response_) {
    if (!tunnel_is_connect_) head.headers.add("Connection", "upgrade");
  } else if (response_has_body_) {
    if (head.headers.count(KnownHeader::kContentLength) == 0) {
      if (end_stream) {
        head.headers.add("Content-Length", "0");
      } else if (!request_http10_) {
        head.headers.add("Transfer-Encoding", "chunked");
        response_chunked_ = true;
      } else {
        response_until_close_ = true;  // HTTP/1.0: the end of the body is the end of the stream
        close_after_response_ = true;
      }
    }
  } else if (status == 204 || (status < 200 && status != 101)) {
    head.headers.remove(KnownHeader::kContentLength);
  }
  if (!tunnel_response_) {
    if (close_after_response_) {
      head.headers.add("Connection", "close");
    } else if (request_http10_) {
      head.headers.add("Connection", "keep-alive");
    }
  }
  head.version_minor = 1;
  Buffer out;
  EncodeResponseHead(head, out);
  connection_.write(out, false);
  if (tunnel_response_) {
    // From here on, both directions are raw bytes, and a half-close from the client ends only
    // its direction (the upstream may still answer).
    state_ = State::kTunnel;
    connection_.enableHalfClose(true);
    if (!buffer_.empty()) process();
    return;
  }
  if (end_stream) {
    if (response_counted_ && response_remaining_ != 0) responseLengthMismatch("no body");
    completeResponse();
  }
}

void ServerConnectionImpl::responseLengthMismatch(const char* what) {
  if (response_mismatch_) return;  // once per response
  response_mismatch_ = true;
  SLUICE_LOG(kDebug, "[C%d] response body does not match its Content-Length (%s); closing after it",
             connection_.id(), what);
  close_after_response_ = true;
  callbacks_.onResponseFramingError();
}

void ServerConnectionImpl::encodeData(Buffer& data, bool end_stream) {
  if (!response_started_ || response_complete_) {
    data.clear();
    return;
  }
  if (tunnel_response_) {
    connection_.write(data, false);
    if (end_stream) {
      // The upstream side ended: nothing more can flow either way.
      close_after_response_ = true;
      completeResponse();
    }
    return;
  }
  if (!response_has_body_) {
    data.clear();
  } else if (response_chunked_) {
    Buffer out;
    if (!data.empty()) EncodeChunk(data, out);
    if (end_stream) EncodeLastChunk(nullptr, out);
    connection_.write(out, false);
  } else if (response_counted_) {
    const bool matches = FitToLength(data, end_stream, response_remaining_);
    connection_.write(data, false);
    if (!matches) responseLengthMismatch("body longer or shorter than its Content-Length");
  } else {
    connection_.write(data, false);
  }
  if (end_stream) completeResponse();
}

void ServerConnectionImpl::encodeTrailers(const HeaderMap& trailers) {
  if (!response_started_ || response_complete_) return;
  if (response_counted_ && response_remaining_ != 0) responseLengthMismatch("body shorter");
  if (response_chunked_) {
    Buffer out;
    EncodeLastChunk(&trailers, out);
    connection_.write(out, false);
  } else if (!trailers.empty()) {
    callbacks_.onResponseTrailersDropped();  // nowhere to put them in this framing
  }
  completeResponse();
}

void ServerConnectionImpl::resetStream(StreamResetReason) {
  // HTTP/1 has no way to abort one response but closing the connection.
  decoder_ = nullptr;
  state_ = State::kClosed;
  connection_.close(network::CloseType::kNoFlush);
}

void ServerConnectionImpl::completeResponse() {
  response_complete_ = true;
  if (!request_complete_ && state_ == State::kBody &&
      framing_.kind == BodyFraming::Kind::kContentLength && buffer_.length() >= body_remaining_) {
    // Answered before the body was read (a local reply), but the rest of the body is already
    // here: drop it and keep the connection.
    buffer_.drain(body_remaining_);
    body_remaining_ = 0;
    request_complete_ = true;
  }
  // A request whose body was not read to the end leaves the connection out of sync.
  if (!request_complete_) close_after_response_ = true;
  const bool close = close_after_response_ || response_until_close_;
  RequestDecoder* decoder = decoder_;
  decoder_ = nullptr;
  if (close) {
    input_unread_ = !request_complete_ || !buffer_.empty();
    state_ = State::kClosed;
    buffer_.clear();
  } else {
    state_ = State::kIdle;
  }
  if (pipeline_read_disabled_) {
    pipeline_read_disabled_ = false;
    if (!close) connection_.readDisable(false);
  }
  if (decoder != nullptr) callbacks_.onStreamComplete(*decoder);
  callbacks_.onCodecIdle(close);
}

}  // namespace sluice::http::http1
