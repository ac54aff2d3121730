// The upstream HTTP/2 codec on a fake connection: how a connection error of the upstream's ends
// the streams and the connection. (The rest of its behaviour is covered against a real origin by
// test/upstream/conn_pool_test.cc, and by the http2_client fuzz target.)

#include "source/http/http2/client_codec.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "test/network/fake_connection.h"

namespace sluice::http::http2 {
namespace {

struct Recorder : ResponseDecoder, ClientConnectionCallbacks {
  void decodeHeaders(std::unique_ptr<ResponseHead> head, bool) override {
    status = head->status;
    events += "headers;";
  }
  void decodeData(Buffer& data, bool) override {
    data.clear();
    events += "data;";
  }
  void decodeTrailers(std::unique_ptr<HeaderMap>) override {}
  void onUpstreamFailure(UpstreamFailure f, bool) override { failure = f; }
  void onStreamDone(bool r) override {
    ++done;
    reusable = r;
  }
  void onGoAway() override { ++goaways; }
  void onCodecFailed() override { ++codec_failed; }

  uint16_t status = 0;
  std::string events;
  std::optional<UpstreamFailure> failure;
  int done = 0;
  bool reusable = true;
  int goaways = 0;
  int codec_failed = 0;
};

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>(stream >> 24));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  return f + payload;
}

class Http2ClientCodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    codec_ =
        std::make_unique<ClientConnectionImpl>(conn_, rec_, settings_, stats_, *dispatcher_, 65536);
    RequestHead head;
    head.method = "GET";
    head.path = "/";
    head.headers.add("Host", "h");
    codec_->newStream(rec_).encodeHeaders(head, true);  // stream 1
  }
  void TearDown() override {
    codec_.reset();
    dispatcher_->exit();
    dispatcher_->run();
  }
  void feed(const std::string& bytes) {
    Buffer b;
    b.add(bytes);
    codec_->dispatch(b);
  }
  // Whether the codec wrote a GOAWAY frame (type 7) after its preface.
  bool wroteGoAway() const {
    const std::string& out = conn_.output();
    size_t at = 24;  // the client preface
    while (at + 9 <= out.size()) {
      const size_t n = (static_cast<uint8_t>(out[at]) << 16) |
                       (static_cast<uint8_t>(out[at + 1]) << 8) | static_cast<uint8_t>(out[at + 2]);
      if (out[at + 3] == 7) return true;
      at += 9 + n;
    }
    return false;
  }

  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  network::test::FakeConnection conn_{*dispatcher_};
  stats::Store store_;
  Http2ClientStats stats_{store_.counter("rx_reset"), store_.counter("tx_reset"),
                          store_.counter("rx_protocol_error"), store_.counter("header_overflow")};
  Http2Settings settings_;
  Recorder rec_;
  std::unique_ptr<ClientConnectionImpl> codec_;
};

const std::string kSettings = Frame(4, 0, 0, "");

// An error nghttp2 reports as fatal (more CONTINUATION frames than allowed): the codec ends the
// connection itself.
// A regression test: terminate() walks streams_ with a range-for
// and calls streamDone() on each open stream, which erases that stream's node from streams_:
// the loop then advances from a freed node (heap use-after-free; a segfault here). Reached by
// every terminate(): a fatal nghttp2 error in dispatch (too many CONTINUATIONs or SETTINGS
// entries, an upstream flooding us with PINGs it does not read the acks of), nghttp2_session_send
// failing, and the PING keep-alive timeout, whenever a stream is open.
TEST_F(Http2ClientCodecTest, AFatalErrorFailsTheStreamsAndTheConnection) {
  std::string in =
      kSettings + Frame(1, 0, 1, std::string("\x88", 1));  // :status 200, no END_HEADERS
  for (uint32_t i = 0; i <= settings_.max_continuations; ++i) in += Frame(9, 0, 1, "");
  feed(in);
  EXPECT_EQ(UpstreamFailure::kProtocolError, rec_.failure);
  EXPECT_EQ(1, rec_.done);
  EXPECT_FALSE(rec_.reusable);
  EXPECT_EQ(1, rec_.codec_failed);
  EXPECT_EQ(0u, codec_->streamLimit());
  EXPECT_TRUE(wroteGoAway());
}

// A regression test: A connection error that nghttp2 handles itself
// (here DATA on stream 0, RFC 9113 §6.1: PROTOCOL_ERROR; likewise a bad HPACK block, a
// PUSH_PROMISE, an invalid SETTINGS value, HEADERS on an idle stream, an oversized frame): nghttp2
// writes GOAWAY and ignores everything after (nghttp2_session_want_read and want_write turn 0),
// but mem_recv succeeds, so the codec neither fails its streams nor tells the pool
// (onCodecFailed), and streamLimit() still shows room: the streams hang until the upstream
// closes the connection, and new streams given to it are refused. The server side checks
// want_read/want_write after sending (codec_impl.cc); the client side does not.
TEST_F(Http2ClientCodecTest, AConnectionErrorHandledByNghttp2FailsTheStreamsAndTheConnection) {
  feed(kSettings + Frame(0, 0, 0, "x"));
  EXPECT_TRUE(wroteGoAway());  // nghttp2 ended the connection (holds today)
  EXPECT_EQ(UpstreamFailure::kProtocolError, rec_.failure);
  EXPECT_EQ(1, rec_.done);
  EXPECT_EQ(1, rec_.codec_failed);
  EXPECT_EQ(0u, codec_->streamLimit());
}

// HPACK: :status (static name 8) with a literal value, not indexed.
std::string Status(const std::string& code) { return std::string("\x08\x03", 2) + code; }

// A regression test: after an interim 1xx, an empty DATA frame (no END_STREAM) reached the
// decoder as decodeData before any decodeHeaders (nghttp2 checks DATA before a final response
// only for DATA with a payload). DATA before the final head is a malformed response (RFC 9113
// §8.1), whatever its length: the stream fails as a protocol error, nothing reaches the decoder.
TEST_F(Http2ClientCodecTest, NoDataBeforeTheFinalHead) {
  feed(kSettings + Frame(1, 4, 1, Status("100")) + Frame(0, 0, 1, "") +
       Frame(1, 5, 1, std::string("\x88", 1)));
  EXPECT_EQ("", rec_.events);
  EXPECT_EQ(UpstreamFailure::kProtocolError, rec_.failure);
}

// A regression test: nghttp2 takes any three digits as :status but 101, so "001" or "000"
// reached the decoder as a final status 1 or 0 (0 is "no status" in a ResponseHead). As the
// HTTP/1 client codec does, a status below 100 is a malformed response: the stream fails as a
// protocol error.
TEST_F(Http2ClientCodecTest, StatusBelow100IsAProtocolError) {
  feed(kSettings + Frame(1, 5, 1, Status("001")));
  EXPECT_EQ("", rec_.events);
  EXPECT_EQ(UpstreamFailure::kProtocolError, rec_.failure);
}

}  // namespace
}  // namespace sluice::http::http2
