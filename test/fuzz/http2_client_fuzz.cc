// libFuzzer target: arbitrary bytes as the upstream's side of an HTTP/2 connection, fed to the
// HTTP/2 client codec (http2::ClientConnectionImpl, nghttp2) over a fake connection (no
// sockets), after the target opened a few streams (GET or POST, bodies sent at once or later,
// trailers, some reset by us), and more as the codec's stream limit allows, as the pool would.
// The owner of the codec behaves as the pool does: it closes the connection when a stream is
// done unreusable, when the codec failed, or on a GOAWAY with nothing in flight.
//
// Invariants (a violation aborts):
// - each stream ends exactly once for its decoder: a whole response (END_STREAM on HEADERS or
//   DATA, or trailers) or one onUpstreamFailure, with response_started true exactly when
//   decodeHeaders was called; nothing reaches it after that, nor after we reset it;
// - the decoder sees at most one final head (status 200..999; interim 1xx stay in the codec),
//   then data, then trailers;
// - onStreamDone is called once per stream opened: never more than were opened, exactly as many
//   once the connection closed; nothing is called back after onConnectionClosed;
// - what the codec writes starts with the client connection preface.
//
// Input layout: byte 0 picks the settings; byte 1 the size of the reads the input is delivered
// in (1..256); byte 2: bits 0-1 the streams opened first (1..4), bit 2 an empty SETTINGS frame
// prepended to the input, bits 3-5 streams opened later (0..7); bytes 3-6 each stream's plan
// (see Plan); the rest is what the upstream sends. With SLUICE_FUZZ_TRACE set in the
// environment, each input's streams and how they ended are printed (for writing seeds).
//
// test/fuzz/corpus_pending/http2_client holds inputs that crash today (terminate() with a stream
// open: a use-after-free in the codec); they join corpus/http2_client once that is fixed.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/common/stats.h"
#include "source/event/dispatcher.h"
#include "source/http/codec.h"
#include "source/http/http2/client_codec.h"
#include "source/http/http2/settings.h"
#include "test/network/fake_connection.h"

namespace sluice::http::http2::fuzz {
namespace {

#define SLUICE_FUZZ_CHECK(cond)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kEmptySettings("\0\0\0\x04\0\0\0\0\0", 9);

struct Setup {
  event::DispatcherPtr dispatcher = event::CreateDispatcher("fuzz2c");
  stats::Store store;
  Http2ClientStats stats{store.counter("rx_reset"), store.counter("tx_reset"),
                         store.counter("rx_protocol_error"), store.counter("header_overflow")};
  std::vector<Http2Settings> settings;
  Setup() {
    // 0: the defaults; 1: small limits (two streams, small windows, header list, few fields and
    // CONTINUATIONs); 2: the defaults with PING keep-alive armed (never due within a run).
    Http2Settings defaults;
    settings.push_back(defaults);
    Http2Settings small;
    small.max_concurrent_streams = 2;
    small.initial_stream_window_size = 65535;
    small.initial_connection_window_size = 65535;
    small.max_header_list_size = 512;
    small.max_headers = 8;
    small.max_continuations = 2;
    small.max_outbound_control_frames = 16;
    settings.push_back(small);
    Http2Settings keepalive;
    keepalive.keepalive_interval = std::chrono::milliseconds(60000);
    settings.push_back(keepalive);
  }
};

// What one stream does with its request, from a byte of the input.
struct Plan {
  explicit Plan(uint8_t b)
      : body_mode(b & 3),
        post((b & 4) != 0),
        reset_early((b & 8) != 0),
        read_disabled((b & 16) != 0),
        reset_late((b & 32) != 0) {}
  // 0: headers only (END_STREAM on HEADERS); 1: a body sent at once; 2: a body, then trailers;
  // 3: headers now, the body (and END_STREAM) once half the input was delivered.
  uint8_t body_mode;
  bool post;
  bool reset_early;    // resetStream() after the first read
  bool read_disabled;  // readDisable(true) from the start until half the input
  bool reset_late;     // resetStream() once half the input was delivered
};

class Owner;

// One stream's decoder: checks that the stream ends exactly once, in order.
class Stream : public ResponseDecoder {
 public:
  Stream(Owner& owner, Plan plan) : owner_(owner), plan_(plan) {}

  void open(ClientConnection& codec);
  void atHalf();
  void resetByUs();
  bool ended() const { return ended_; }
  bool wasReset() const { return reset_; }
  // "200", "200+trailers", "failure 3 (started)", "reset by us", "open" (SLUICE_FUZZ_TRACE).
  std::string outcome() const {
    return reset_ ? "reset by us" : outcome_.empty() ? "open" : outcome_;
  }

  void decodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(std::unique_ptr<HeaderMap> trailers) override;
  void onUpstreamFailure(UpstreamFailure failure, bool response_started) override;
  void onAboveWriteBufferHighWatermark() override { ++watermark_; }
  void onBelowWriteBufferLowWatermark() override {
    SLUICE_FUZZ_CHECK(watermark_ > 0);
    --watermark_;
  }

 private:
  void callback();
  void end() { ended_ = true; }

  Owner& owner_;
  const Plan plan_;
  RequestEncoder* encoder_ = nullptr;
  bool headers_ = false;
  bool ended_ = false;
  bool reset_ = false;
  bool body_pending_ = false;
  bool read_disabled_ = false;
  int watermark_ = 0;
  uint16_t status_ = 0;
  std::string outcome_;
};

// The codec's owner, as the pool's client is.
class Owner : public ClientConnectionCallbacks, public network::ConnectionCallbacks {
 public:
  Owner(event::Dispatcher& dispatcher, const Http2Settings& settings, Http2ClientStats& stats)
      : conn_(dispatcher) {
    conn_.addConnectionCallbacks(*this);
    codec_ = std::make_unique<ClientConnectionImpl>(conn_, *this, settings, stats, dispatcher,
                                                    /*stream_buffer_limit=*/1024);
  }

  ClientConnection& codec() { return *codec_; }
  bool closed() const { return closed_; }
  // Streams that may be opened now (the pool's test: room on a connection not draining).
  bool hasRoom() const { return !closed_ && !goaway_ && opened_ - done_ < codec_->streamLimit(); }
  void opened() { ++opened_; }

  void receive(std::string_view bytes) {
    if (closed_) return;
    Buffer b;
    b.add(bytes);
    codec_->dispatch(b);
  }
  void close() {
    if (!closed_) conn_.close(network::CloseType::kNoFlush);
  }
  // Checks what the end of the connection must show; frees the codec.
  void finish(std::vector<std::unique_ptr<Stream>>& streams) {
    close();
    SLUICE_FUZZ_CHECK(done_ == opened_);
    for (const auto& s : streams) SLUICE_FUZZ_CHECK(s->ended() || s->wasReset());
    const std::string& out = conn_.output();
    SLUICE_FUZZ_CHECK(out.compare(0, kClientPreface.size(), kClientPreface) == 0);
    codec_.reset();
  }
  // A decoder was called: never after the connection's end was reported.
  void checkAlive() const { SLUICE_FUZZ_CHECK(!after_close_); }

  // ClientConnectionCallbacks
  void onStreamDone(bool reusable) override {
    checkAlive();
    ++done_;
    SLUICE_FUZZ_CHECK(done_ <= opened_);
    if (!reusable) close();
  }
  void onGoAway() override {
    checkAlive();
    goaway_ = true;
    if (opened_ == done_) close();
  }
  void onStreamLimitChanged() override { checkAlive(); }
  void onCodecFailed() override {
    checkAlive();
    close();
  }

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::kConnected) return;
    closed_ = true;
    codec_->onConnectionClosed();
    after_close_ = true;
  }

 private:
  network::test::FakeConnection conn_;
  std::unique_ptr<ClientConnectionImpl> codec_;
  uint32_t opened_ = 0;
  uint32_t done_ = 0;
  bool goaway_ = false;
  bool closed_ = false;
  bool after_close_ = false;
};

void Stream::open(ClientConnection& codec) {
  owner_.opened();
  encoder_ = &codec.newStream(*this);
  RequestHead head;
  head.method = plan_.post ? "POST" : "GET";
  head.path = "/fuzz";
  head.headers.add("Host", "upstream");
  head.headers.add("TE", "trailers");
  head.headers.add("Connection", "keep-alive");
  const bool end_on_head = plan_.body_mode == 0;
  if (plan_.read_disabled) {
    read_disabled_ = true;
    encoder_->readDisable(true);
  }
  RequestEncoder* e = encoder_;
  e->encodeHeaders(head, end_on_head);
  // encodeHeaders may fail the stream at once (no stream id left): it is over then.
  if (ended_ || encoder_ == nullptr) return;
  if (plan_.body_mode == 1 || plan_.body_mode == 2) {
    Buffer body;
    body.add(std::string(3000, 'b'));
    encoder_->encodeData(body, plan_.body_mode == 1);
    if (plan_.body_mode == 2 && encoder_ != nullptr) {
      HeaderMap trailers;
      trailers.add("x-checksum", "1");
      encoder_->encodeTrailers(trailers);
    }
  } else if (plan_.body_mode == 3) {
    body_pending_ = true;
  }
}

void Stream::atHalf() {
  if (encoder_ == nullptr) return;
  if (read_disabled_) {
    read_disabled_ = false;
    encoder_->readDisable(false);
  }
  if (encoder_ != nullptr && body_pending_) {
    body_pending_ = false;
    Buffer body;
    body.add(std::string(70000, 'c'));  // over a small window: some waits for WINDOW_UPDATE
    encoder_->encodeData(body, true);
  }
  if (encoder_ != nullptr && plan_.reset_late) resetByUs();
}

void Stream::resetByUs() {
  if (encoder_ == nullptr) return;
  RequestEncoder* e = encoder_;
  encoder_ = nullptr;
  reset_ = true;
  e->resetStream();
}

void Stream::callback() {
  owner_.checkAlive();
  SLUICE_FUZZ_CHECK(!ended_);
  SLUICE_FUZZ_CHECK(!reset_);
}

void Stream::decodeHeaders(std::unique_ptr<ResponseHead> head, bool end_stream) {
  callback();
  SLUICE_FUZZ_CHECK(!headers_);
  SLUICE_FUZZ_CHECK(head != nullptr && head->status >= 200 && head->status <= 999);
  headers_ = true;
  status_ = head->status;
  if (end_stream) outcome_ = std::to_string(status_);
  if (end_stream) {
    end();
    encoder_ = nullptr;
  }
}

void Stream::decodeData(Buffer& data, bool end_stream) {
  callback();
  SLUICE_FUZZ_CHECK(headers_);
  data.clear();
  if (end_stream) outcome_ = std::to_string(status_);
  if (end_stream) {
    end();
    encoder_ = nullptr;
  }
}

void Stream::decodeTrailers(std::unique_ptr<HeaderMap> trailers) {
  callback();
  SLUICE_FUZZ_CHECK(headers_);
  SLUICE_FUZZ_CHECK(trailers != nullptr);
  outcome_ = std::to_string(status_) + "+trailers";
  end();
  encoder_ = nullptr;
}

void Stream::onUpstreamFailure(UpstreamFailure failure, bool response_started) {
  callback();
  outcome_ = "failure " + std::to_string(static_cast<int>(failure)) +
             (response_started ? " (started)" : "");
  SLUICE_FUZZ_CHECK(response_started == headers_);
  end();
  encoder_ = nullptr;
}

}  // namespace
}  // namespace sluice::http::http2::fuzz

extern "C" int SluiceFuzzHttp2Client(const uint8_t* data, size_t size) {
  using namespace sluice::http::http2::fuzz;
  static Setup* setup = new Setup();
  constexpr size_t kHeader = 7;
  if (size < kHeader) return 0;
  const auto& settings = setup->settings[data[0] % setup->settings.size()];
  const size_t chunk = static_cast<size_t>(data[1]) + 1;
  const int first = 1 + (data[2] & 3);
  const bool prepend_settings = (data[2] & 4) != 0;
  int later = (data[2] >> 3) & 7;
  std::string input;
  if (prepend_settings) input.append(kEmptySettings);
  input.append(reinterpret_cast<const char*>(data) + kHeader, size - kHeader);
  {
    std::vector<std::unique_ptr<Stream>> streams;
    Owner owner(*setup->dispatcher, settings, setup->stats);
    size_t next_plan = 0;
    auto open_one = [&] {
      streams.push_back(std::make_unique<Stream>(owner, Plan(data[3 + next_plan % 4])));
      ++next_plan;
      streams.back()->open(owner.codec());
    };
    for (int i = 0; i < first && owner.hasRoom(); ++i) open_one();
    const size_t half = input.size() / 2;
    bool at_half = false;
    for (size_t off = 0; off < input.size() && !owner.closed(); off += chunk) {
      owner.receive(std::string_view(input).substr(off, chunk));
      if (off == 0) {
        for (size_t i = 0; i < streams.size() && i < 4; ++i) {
          if (Plan(data[3 + i]).reset_early) streams[i]->resetByUs();
        }
      }
      if (!at_half && off + chunk >= half) {
        at_half = true;
        for (size_t i = 0; i < streams.size(); ++i) streams[i]->atHalf();
      }
      // More streams as the codec allows them (the pool would give it waiting ones).
      while (later > 0 && owner.hasRoom()) {
        --later;
        open_one();
      }
    }
    if (!at_half) {
      for (size_t i = 0; i < streams.size(); ++i) streams[i]->atHalf();
    }
    // Deferred sends and deletions run, then the connection closes.
    setup->dispatcher->exit();
    setup->dispatcher->run();
    owner.finish(streams);
    static const bool trace = std::getenv("SLUICE_FUZZ_TRACE") != nullptr;
    if (trace) {
      std::fprintf(stderr, "http2_client:");
      for (const auto& s : streams) std::fprintf(stderr, " [%s]", s->outcome().c_str());
      std::fprintf(stderr, "\n");
    }
    setup->dispatcher->exit();
    setup->dispatcher->run();
  }
  return 0;
}

#ifndef SLUICE_FUZZ_REPLAY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return SluiceFuzzHttp2Client(data, size);
}
#endif
