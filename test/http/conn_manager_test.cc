// The HTTP connection manager and its filter chain, over a real connection (socketpair) with test
// filters: ordering, pause/resume, stop-and-buffer, local replies, metadata, response rewriting,
// pipelining, keep-alive rules, limits and protocol errors.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"
#include "source/http/conn_manager.h"
#include "source/http/conn_manager_impl.h"
#include "source/network/connection_impl.h"
#include "source/network/idle_connection_list.h"
#include "source/network/transport_socket.h"
#include "source/upstream/cluster.h"
#include "test/network/test_filter_context.h"

namespace sluice::http {
namespace {

using TestContext = network::test::TestFilterContext;

// Shared log of what the test filters saw.
struct Log {
  std::vector<std::string> events;
};

// Records every hook; optional behaviours switch on per test.
class RecordingFilter : public StreamFilter {
 public:
  RecordingFilter(std::string name, Log& log) : name_(std::move(name)), log_(log) {}
  FilterHeadersStatus decodeHeaders(RequestHead& head, bool end_stream) override {
    log_.events.push_back(name_ + ".decodeHeaders" + (end_stream ? "(end)" : ""));
    return FilterHeadersStatus::kContinue;
  }
  FilterDataStatus decodeData(Buffer& data, bool end_stream) override {
    log_.events.push_back(name_ + ".decodeData(" + std::to_string(data.length()) +
                          (end_stream ? ",end)" : ")"));
    return FilterDataStatus::kContinue;
  }
  FilterHeadersStatus encodeHeaders(ResponseHead& head, bool end_stream) override {
    log_.events.push_back(name_ + ".encodeHeaders");
    return FilterHeadersStatus::kContinue;
  }
  void onStreamComplete() override { log_.events.push_back(name_ + ".complete"); }

 private:
  std::string name_;
  Log& log_;
};

// Terminal: answers with a body that describes the request (method, target, body length, and a
// metadata value when present). Sends headers and body separately (no Content-Length: chunked).
class EchoTerminal : public StreamFilter {
 public:
  FilterHeadersStatus decodeHeaders(RequestHead& head, bool end_stream) override {
    summary_ = std::string(head.method) + " " + std::string(head.path);
    if (end_stream) respond();
    return FilterHeadersStatus::kStopIteration;
  }
  FilterDataStatus decodeData(Buffer& data, bool end_stream) override {
    body_ += data.toString();
    data.drain(data.length());
    if (end_stream) respond();
    return FilterDataStatus::kStopIterationNoBuffer;
  }
  FilterTrailersStatus decodeTrailers(HeaderMap& trailers) override {
    if (const auto* t = trailers.get("x-trailer")) summary_ += " trailer=" + std::string(t->value);
    respond();
    return FilterTrailersStatus::kStopIteration;
  }

 private:
  void respond() {
    auto head = std::make_unique<ResponseHead>();
    head->status = 200;
    auto& md = decoder_callbacks_->streamInfo().metadata;
    if (auto it = md.find("tag"); it != md.end()) head->headers.add("x-tag", it->second);
    decoder_callbacks_->encodeHeaders(std::move(head), false);
    Buffer b;
    b.add(summary_ + " body=" + body_);
    decoder_callbacks_->encodeData(b, true);
  }
  std::string summary_;
  std::string body_;
};

class ConnManagerTest : public testing::Test {
 protected:
  void SetUp() override {
    dispatcher_ = event::CreateDispatcher("test");
    context_ = std::make_unique<TestContext>(*dispatcher_);
  }
  void TearDown() override {
    if (conn_) conn_->close(network::CloseType::kNoFlush);
    conn_.reset();
    if (peer_ >= 0) close(peer_);
  }

  // Builds the manager with `filters` (factories) and the given proto tweaks.
  void start(std::vector<StreamFilterFactory> filters,
             const std::function<void(config::v1::HttpConnectionManager&)>& tweak = nullptr) {
    config::v1::HttpConnectionManager proto;
    if (tweak) tweak(proto);
    auto cfg = BuildConnectionManagerConfig(proto, "test", store_);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    auto mutable_cfg = std::const_pointer_cast<ConnectionManagerConfig>(*cfg);
    for (auto& f : filters) mutable_cfg->filter_factories.push_back(std::move(f));
    config_ = mutable_cfg;
    int sv[2];
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    peer_ = sv[1];
    conn_ = std::make_unique<network::ConnectionImpl>(*dispatcher_, sv[0],
                                                      std::make_unique<network::RawBufferSocket>(),
                                                      network::Address(), network::Address());
    conn_->addReadFilter(std::make_unique<ConnectionManagerImpl>(config_, *context_));
    conn_->initializeReadFilters();
  }
  void send(std::string_view bytes) {
    ASSERT_EQ(static_cast<ssize_t>(bytes.size()), write(peer_, bytes.data(), bytes.size()));
  }
  // Runs the loop until the peer has received `n` complete responses (by counting status lines
  // of final responses is fragile; instead wait for `until` to appear in the received bytes)
  // or the connection closed; bounded.
  std::string runUntil(const std::function<bool(const std::string&)>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    event::TimerPtr t;
    t = dispatcher_->createTimer([&] {
      char buf[65536];
      ssize_t n;
      while ((n = read(peer_, buf, sizeof(buf))) > 0) received_.append(buf, n);
      if (n == 0) peer_closed_ = true;
      if (done(received_) || peer_closed_ || std::chrono::steady_clock::now() > deadline) {
        dispatcher_->exit();
      } else {
        t->enableTimer(std::chrono::milliseconds(1));
      }
    });
    t->enableTimer(std::chrono::milliseconds(0));
    dispatcher_->run();
    return received_;
  }
  std::string runUntilContains(std::string_view needle, int times = 1) {
    return runUntil([&](const std::string& s) {
      int found = 0;
      for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++found;
      return found >= times;
    });
  }
  std::string runUntilClosed() {
    return runUntil([](const std::string&) { return false; });
  }
  int64_t stat(const std::string& name) { return store_.valueOf("http.test." + name); }

  stats::Store store_;
  event::DispatcherPtr dispatcher_;
  std::unique_ptr<TestContext> context_;
  ConnectionManagerConfigPtr config_;
  std::unique_ptr<network::ConnectionImpl> conn_;
  int peer_ = -1;
  std::string received_;
  bool peer_closed_ = false;
  Log log_;
};

StreamFilterFactory Recording(const std::string& name, Log& log) {
  return [name, &log] { return std::make_unique<RecordingFilter>(name, log); };
}
StreamFilterFactory Echo() {
  return [] { return std::make_unique<EchoTerminal>(); };
}

TEST_F(ConnManagerTest, FiltersRunInOrderAndResponsesInReverse) {
  start({Recording("a", log_), Recording("b", log_), Echo()});
  send("GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("body=");
  EXPECT_NE(std::string::npos, out.find("HTTP/1.1 200 OK\r\n")) << out;
  EXPECT_NE(std::string::npos, out.find("Transfer-Encoding: chunked\r\n")) << out;
  EXPECT_NE(std::string::npos, out.find("GET /x body=")) << out;
  runUntilContains("0\r\n\r\n");
  const std::vector<std::string> expected = {"a.decodeHeaders(end)", "b.decodeHeaders(end)",
                                             "b.encodeHeaders",      "a.encodeHeaders",
                                             "a.complete",           "b.complete"};
  EXPECT_EQ(expected, log_.events);
  EXPECT_EQ(1, stat("downstream_rq_2xx"));
}

TEST_F(ConnManagerTest, KeepAliveAndPipeliningAnswerInOrder) {
  start({Echo()});
  send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string out = runUntilContains("0\r\n\r\n", 2);
  const size_t one = out.find("GET /1");
  const size_t two = out.find("GET /2");
  ASSERT_NE(std::string::npos, one) << out;
  ASSERT_NE(std::string::npos, two) << out;
  EXPECT_LT(one, two);
  send("GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  out = runUntilContains("0\r\n\r\n", 3);
  EXPECT_NE(std::string::npos, out.find("GET /3"));
  EXPECT_FALSE(peer_closed_);
  EXPECT_EQ(3, stat("downstream_rq_total"));
}

// Pauses in decodeHeaders and resumes from a timer.
class PauseFilter : public StreamFilter {
 public:
  explicit PauseFilter(Log& log) : log_(log) {}
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    timer_ = decoder_callbacks_->dispatcher().createTimer([this] {
      log_.events.push_back("resume");
      decoder_callbacks_->streamInfo().metadata["tag"] = "from-pause";
      decoder_callbacks_->continueDecoding();
    });
    timer_->enableTimer(std::chrono::milliseconds(1));
    log_.events.push_back("pause");
    return FilterHeadersStatus::kStopIteration;
  }
  // While paused, the body waits here with the headers.
  FilterDataStatus decodeData(Buffer&, bool) override {
    return FilterDataStatus::kStopIterationAndBuffer;
  }

 private:
  Log& log_;
  event::TimerPtr timer_;
};

TEST_F(ConnManagerTest, PauseAndResumeFromATimerWithMetadataForLaterFilters) {
  start({[this] { return std::make_unique<PauseFilter>(log_); }, Recording("after", log_), Echo()});
  send("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("x-tag: from-pause\r\n")) << out;
  // The body that arrived while paused was held and delivered after the headers.
  EXPECT_NE(std::string::npos, out.find("POST /p body=hello")) << out;
  ASSERT_GE(log_.events.size(), 4u);
  EXPECT_EQ("pause", log_.events[0]);
  EXPECT_EQ("resume", log_.events[1]);
  EXPECT_EQ("after.decodeHeaders", log_.events[2]);
  EXPECT_EQ("after.decodeData(5,end)", log_.events[3]);
}

// Buffers the whole request body, then checks it and continues.
class BufferFilter : public StreamFilter {
 public:
  explicit BufferFilter(Log& log) : log_(log) {}
  FilterDataStatus decodeData(Buffer& data, bool end_stream) override {
    log_.events.push_back("buffer.decodeData(" + data.toString() + (end_stream ? ",end)" : ")"));
    if (!end_stream) return FilterDataStatus::kStopIterationAndBuffer;
    return FilterDataStatus::kContinue;
  }
  FilterHeadersStatus encodeHeaders(ResponseHead& head, bool) override {
    head.headers.add("x-buffered", "yes");
    return FilterHeadersStatus::kContinue;
  }

 private:
  Log& log_;
};

TEST_F(ConnManagerTest, StopAndBufferDeliversTheWholeBodyAtOnce) {
  start(
      {[this] { return std::make_unique<BufferFilter>(log_); }, Recording("after", log_), Echo()});
  send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  // The first part is in before the rest is sent: the body arrives in two reads.
  runUntil([this](const std::string&) { return !log_.events.empty(); });
  send("3\r\ndef\r\n0\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("body=abcdef")) << out;
  EXPECT_NE(std::string::npos, out.find("x-buffered: yes")) << out;
  // The filter after the buffer saw one data call with everything.
  EXPECT_NE(log_.events.end(),
            std::find(log_.events.begin(), log_.events.end(), "after.decodeData(6,end)"));
  // The buffering filter itself was shown all it held each time, the whole body at the end
  // (SL_ACTION_STOP_AND_BUFFER's promise), however the body was split.
  std::vector<std::string> calls;
  for (const auto& e : log_.events) {
    if (e.rfind("buffer.", 0) == 0) calls.push_back(e);
  }
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ("buffer.decodeData(abcdef,end)", calls.back());
  EXPECT_EQ("buffer.decodeData(abc)", calls.front());
}

TEST_F(ConnManagerTest, BufferLimitGives413) {
  start({[this] { return std::make_unique<BufferFilter>(log_); }, Echo()},
        [](auto& p) { p.set_buffer_limit_bytes(1024); });
  // A chunked body that keeps coming: the buffering filter crosses the limit before the end.
  send("POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
  send("7d0\r\n" + std::string(2000, 'x') + "\r\n");
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 413 ")) << out;
  EXPECT_NE(std::string::npos, out.find("Connection: close")) << out;
}

// Rejects the request from the first filter.
class DenyFilter : public StreamFilter {
 public:
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    decoder_callbacks_->sendLocalReply(403, "denied\n",
                                       [](HeaderMap& h) { h.add("x-reason", "test"); });
    return FilterHeadersStatus::kStopIteration;
  }
};

TEST_F(ConnManagerTest, LocalReplyStopsTheChainAndRunsEncoders) {
  start({Recording("first", log_), [] { return std::make_unique<DenyFilter>(); },
         Recording("never", log_), Echo()});
  send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("denied\n");
  EXPECT_EQ(0u, out.find("HTTP/1.1 403 Forbidden\r\n")) << out;
  EXPECT_NE(std::string::npos, out.find("x-reason: test\r\n"));
  EXPECT_NE(std::string::npos, out.find("Content-Length: 7\r\n"));
  EXPECT_NE(std::string::npos, out.find("Server: sluice\r\n"));
  EXPECT_NE(std::string::npos, out.find("Date: "));
  for (const auto& e : log_.events) EXPECT_EQ(std::string::npos, e.find("never.decode")) << e;
  EXPECT_EQ(1, stat("downstream_rq_4xx"));
}

// Upper-cases the response body.
class UpperFilter : public StreamFilter {
 public:
  FilterDataStatus encodeData(Buffer& data, bool) override {
    std::string s = data.toString();
    for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    data.drain(data.length());
    data.add(s);
    return FilterDataStatus::kContinue;
  }
};

TEST_F(ConnManagerTest, EncoderFilterRewritesTheResponseBody) {
  start({[] { return std::make_unique<UpperFilter>(); }, Echo()});
  send("GET /lower HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("GET /LOWER BODY=")) << out;
}

// Answers with the given fields and body, whatever they say: what a buggy filter might send.
class RawReply : public StreamFilter {
 public:
  RawReply(std::vector<std::pair<std::string, std::string>> fields, std::string body)
      : fields_(std::move(fields)), body_(std::move(body)) {}
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    auto head = std::make_unique<ResponseHead>();
    head->status = 200;
    for (const auto& [n, v] : fields_) head->headers.add(n, v);
    decoder_callbacks_->encodeHeaders(std::move(head), body_.empty());
    if (!body_.empty()) {
      Buffer b;
      b.add(body_);
      decoder_callbacks_->encodeData(b, true);
    }
    return FilterHeadersStatus::kStopIteration;
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
  std::string body_;
};

// The encoder is the last place a response that does not match its own framing can be caught:
// it never sends more than the head announced, never lets a short body run into the next
// response, and never sends an invalid Content-Length (or a filter's Transfer-Encoding).
TEST_F(ConnManagerTest, ResponseFramingFromFiltersIsEnforced) {
  struct Case {
    const char* name;
    std::vector<std::pair<std::string, std::string>> fields;
    std::string body;
    std::string expect_head;  // must be in the head
    std::string expect_body;  // exactly what follows the head
    bool closed;              // the connection closes after it
    int framing_errors;       // downstream_rs_framing_error
  };
  const std::vector<Case> cases = {
      {"longer body: cut to the length, then close",
       {{"Content-Length", "3"}},
       "hello\n",
       "Content-Length: 3\r\n",
       "hel",
       true,
       1},
      {"shorter body: what there is, then close",
       {{"Content-Length", "10"}},
       "hello\n",
       "Content-Length: 10\r\n",
       "hello\n",
       true,
       1},
      {"no body at all for a length",
       {{"Content-Length", "4"}},
       "",
       "Content-Length: 4\r\n",
       "",
       true,
       1},
      {"invalid length: dropped, chunked",
       {{"Content-Length", "abc"}},
       "hello\n",
       "Transfer-Encoding: chunked\r\n",
       "6\r\nhello\n\r\n0\r\n\r\n",
       false,
       2},
      {"differing lengths: dropped, chunked",
       {{"Content-Length", "6"}, {"Content-Length", "7"}},
       "hello\n",
       "Transfer-Encoding: chunked\r\n",
       "6\r\nhello\n\r\n0\r\n\r\n",
       false,
       2},
      {"equal list: one value",
       {{"Content-Length", "6, 6"}},
       "hello\n",
       "Content-Length: 6\r\n",
       "hello\n",
       false,
       0},
      {"a filter's Transfer-Encoding is not the encoder's",
       {{"Transfer-Encoding", "chunked"}, {"Content-Length", "6"}},
       "hello\n",
       "Content-Length: 6\r\n",
       "hello\n",
       false,
       0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TearDown();
    received_.clear();
    peer_closed_ = false;
    SetUp();
    start({[&c] { return std::make_unique<RawReply>(c.fields, c.body); }});
    const int64_t errors_before = stat("downstream_rs_framing_error");
    // A second, pipelined request: it must be answered after a well-framed response, or not at
    // all when the connection closes — never read as part of the first response's body.
    send("GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    const std::string out =
        c.closed ? runUntilClosed() : runUntilContains("HTTP/1.1 200", /*times=*/2);
    const size_t head_end = out.find("\r\n\r\n");
    ASSERT_NE(std::string::npos, head_end) << out;
    const std::string head = out.substr(0, head_end + 2);
    EXPECT_NE(std::string::npos, head.find(c.expect_head)) << head;
    EXPECT_EQ(std::string::npos, head.find("Transfer-Encoding: chunked\r\nContent-Length")) << head;
    EXPECT_EQ(c.framing_errors, stat("downstream_rs_framing_error") - errors_before);
    if (c.closed) {
      EXPECT_TRUE(peer_closed_);
      EXPECT_EQ(c.expect_body, out.substr(head_end + 4)) << out;
    } else {
      EXPECT_EQ(0u, out.find(head)) << out;
      EXPECT_EQ(c.expect_body, out.substr(head_end + 4, c.expect_body.size())) << out;
      EXPECT_EQ(head_end + 4 + c.expect_body.size(), out.find("HTTP/1.1 200", 1)) << out;
    }
  }
}

TEST_F(ConnManagerTest, NoTerminalFilterGives404) {
  start({Recording("only", log_)});
  send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("no filter answered");
  EXPECT_EQ(0u, out.find("HTTP/1.1 404 Not Found\r\n")) << out;
}

TEST_F(ConnManagerTest, ProtocolErrorGives400AndCloses) {
  start({Echo()});
  send("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 400 Bad Request\r\n")) << out;
  EXPECT_NE(std::string::npos, out.find("Connection: close")) << out;
  EXPECT_TRUE(peer_closed_);
  EXPECT_EQ(1, stat("downstream_rq_protocol_error"));
  EXPECT_EQ(1, stat("downstream_rq_protocol_error_400"));
  EXPECT_EQ(0, stat("downstream_rq_total"));  // it never became a stream
}

TEST_F(ConnManagerTest, PipelinedRequestAfterABadOneIsNotProcessed) {
  start({Recording("f", log_), Echo()});
  send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 400 ")) << out;
  EXPECT_EQ(std::string::npos, out.find("GET /ok")) << out;
  EXPECT_TRUE(log_.events.empty());
}

TEST_F(ConnManagerTest, Http10ClosesUnlessKeepAlive) {
  start({Echo()});
  send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  std::string out = runUntilContains("body=");
  // HTTP/1.0 cannot take chunked: the body runs until close.
  EXPECT_EQ(0u, out.find("HTTP/1.1 200 OK\r\n")) << out;
  out = runUntilClosed();
  EXPECT_NE(std::string::npos, out.find("Connection: close")) << out;
  EXPECT_EQ(std::string::npos, out.find("chunked")) << out;
}

TEST_F(ConnManagerTest, ExpectContinueGetsAnInterimResponse) {
  start({Echo()});
  send("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  std::string out = runUntilContains("100 Continue");
  EXPECT_EQ(0u, out.find("HTTP/1.1 100 Continue\r\n\r\n")) << out;
  send("abc");
  out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("POST /e body=abc")) << out;
}

TEST_F(ConnManagerTest, MaxRequestsPerConnectionClosesAfterTheLast) {
  start({Echo()}, [](auto& p) { p.set_max_requests_per_connection(2); });
  send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilClosed();
  EXPECT_NE(std::string::npos, out.find("GET /2")) << out;
  const size_t second = out.find("HTTP/1.1 200", 1);
  ASSERT_NE(std::string::npos, second);
  EXPECT_NE(std::string::npos, out.find("Connection: close", second)) << out;
  EXPECT_EQ(1, stat("downstream_cx_max_requests_reached"));
}

TEST_F(ConnManagerTest, HeadResponseHasNoBody) {
  start({[] {
    class Fixed : public StreamFilter {
      FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
        decoder_callbacks_->sendLocalReply(200, "twelve bytes", nullptr);
        return FilterHeadersStatus::kStopIteration;
      }
    };
    return std::make_unique<Fixed>();
  }});
  send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\nHEAD /again HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("Content-Length: 12\r\n", 2);
  EXPECT_EQ(std::string::npos, out.find("twelve bytes")) << out;
}

TEST_F(ConnManagerTest, ChunkedRequestWithTrailers) {
  start({Echo()});
  send(
      "POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nwiki\r\n0\r\nx-trailer: yes\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("POST /t trailer=yes body=wiki")) << out;
}

TEST_F(ConnManagerTest, RequestHeadersTimeoutAnswers408) {
  start({Echo()}, [](auto& p) { p.mutable_request_headers_timeout()->set_nanos(20000000); });
  send("GET / HTTP/1.1\r\nHost: h\r\n");  // never finished
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 408 Request Timeout\r\n")) << out;
  EXPECT_EQ(1, stat("downstream_rq_headers_timeout"));
}

TEST_F(ConnManagerTest, SilentConnectionIsClosedByTheHeadersTimeout) {
  start({Echo()}, [](auto& p) { p.mutable_request_headers_timeout()->set_nanos(20000000); });
  const std::string out = runUntilClosed();
  EXPECT_EQ("", out);
  EXPECT_TRUE(peer_closed_);
  EXPECT_EQ(1, stat("downstream_rq_headers_timeout"));
}

TEST_F(ConnManagerTest, IdleKeepAliveConnectionIsClosed) {
  start({Echo()}, [](auto& p) { p.mutable_idle_timeout()->set_nanos(20000000); });
  send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  runUntilClosed();
  EXPECT_TRUE(peer_closed_);
  EXPECT_EQ(1, stat("downstream_cx_idle_timeout"));
  EXPECT_EQ(1, stat("downstream_rq_2xx"));
}

TEST_F(ConnManagerTest, BodyTimeoutAnswers408) {
  start({Echo()}, [](auto& p) { p.mutable_request_body_timeout()->set_nanos(20000000); });
  send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 408 ")) << out;
  EXPECT_EQ(1, stat("downstream_rq_body_timeout"));
}

TEST_F(ConnManagerTest, BodyOverMaxGives413BeforeAnyFilter) {
  start({Recording("f", log_), Echo()},
        [](auto& p) { p.mutable_max_request_body_bytes()->set_value(10); });
  send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n");
  const std::string out = runUntilClosed();
  EXPECT_EQ(0u, out.find("HTTP/1.1 413 ")) << out;
  EXPECT_TRUE(log_.events.empty());
}

// Pauses the headers, holds the body while paused, and resumes from a timer; records its name.
class TimedPauseFilter : public StreamFilter {
 public:
  TimedPauseFilter(std::string name, Log& log) : name_(std::move(name)), log_(log) {}
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    timer_ = decoder_callbacks_->dispatcher().createTimer([this] {
      log_.events.push_back(name_ + ".resume");
      paused_ = false;
      decoder_callbacks_->continueDecoding();
    });
    timer_->enableTimer(std::chrono::milliseconds(2));
    return FilterHeadersStatus::kStopIteration;
  }
  FilterDataStatus decodeData(Buffer& data, bool end_stream) override {
    log_.events.push_back(name_ + ".data(" + std::to_string(data.length()) +
                          (end_stream ? ",end)" : ")"));
    return paused_ ? FilterDataStatus::kStopIterationAndBuffer : FilterDataStatus::kContinue;
  }

 private:
  std::string name_;
  Log& log_;
  event::TimerPtr timer_;
  bool paused_ = true;
};

TEST_F(ConnManagerTest, TwoFiltersPauseInTurnAndTheBodyArrivesOnceInOrder) {
  start({[this] { return std::make_unique<TimedPauseFilter>("a", log_); },
         [this] { return std::make_unique<TimedPauseFilter>("b", log_); }, Echo()});
  send(
      "POST /two HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("POST /two body=onetwo")) << out;
  EXPECT_NE(log_.events.end(), std::find(log_.events.begin(), log_.events.end(), "a.resume"));
  EXPECT_NE(log_.events.end(), std::find(log_.events.begin(), log_.events.end(), "b.resume"));
}

TEST_F(ConnManagerTest, BodyHeldEarlierWhileHeadersPausedLater) {
  // "buffer" holds the body until the end; "pause" (after it) holds the headers until a timer.
  start({[this] { return std::make_unique<BufferFilter>(log_); },
         [this] { return std::make_unique<TimedPauseFilter>("pause", log_); }, Echo()});
  send("POST /held HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  send("3\r\ndef\r\n0\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n");
  EXPECT_NE(std::string::npos, out.find("POST /held body=abcdef")) << out;
}

// Holds the response headers until a timer; response data is held meanwhile.
class ResponsePauseFilter : public StreamFilter {
 public:
  FilterHeadersStatus encodeHeaders(ResponseHead& head, bool) override {
    head.headers.add("x-paused", "1");
    timer_ = encoder_callbacks_->dispatcher().createTimer([this] {
      paused_ = false;
      encoder_callbacks_->continueEncoding();
    });
    timer_->enableTimer(std::chrono::milliseconds(2));
    return FilterHeadersStatus::kStopIteration;
  }
  FilterDataStatus encodeData(Buffer&, bool) override {
    return paused_ ? FilterDataStatus::kStopIterationAndBuffer : FilterDataStatus::kContinue;
  }

 private:
  event::TimerPtr timer_;
  bool paused_ = true;
};

TEST_F(ConnManagerTest, EncoderPausesAndResumesTheResponse) {
  start({[] { return std::make_unique<ResponsePauseFilter>(); }, Echo()});
  send("GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilContains("0\r\n\r\n", 2);
  EXPECT_NE(std::string::npos, out.find("x-paused: 1")) << out;
  const size_t slow = out.find("GET /slow body=");
  const size_t next = out.find("GET /next body=");
  ASSERT_NE(std::string::npos, slow) << out;
  ASSERT_NE(std::string::npos, next) << out;
  EXPECT_LT(slow, next);  // pipelined: the second waits for the paused first
}

// Answers, then tries a local reply once the response has begun: the stream is reset (the
// connection closes) rather than a second response being sent.
class LateLocalReply : public StreamFilter {
 public:
  FilterHeadersStatus decodeHeaders(RequestHead&, bool) override {
    auto head = std::make_unique<ResponseHead>();
    head->status = 200;
    decoder_callbacks_->encodeHeaders(std::move(head), false);
    Buffer part;
    part.add("partial");
    decoder_callbacks_->encodeData(part, false);
    decoder_callbacks_->sendLocalReply(500, "late\n", nullptr);
    return FilterHeadersStatus::kStopIteration;
  }
};

TEST_F(ConnManagerTest, LocalReplyAfterTheResponseStartedResetsTheStream) {
  start({[] { return std::make_unique<LateLocalReply>(); }});
  send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  const std::string out = runUntilClosed();
  // A reset drops what was not yet written (the head and part were gathered for one writev),
  // so the client sees at most the start of the 200 — never a second response.
  EXPECT_TRUE(out.empty() || out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0) << out;
  EXPECT_EQ(std::string::npos, out.find("late")) << out;
  EXPECT_EQ(std::string::npos, out.find("500")) << out;
  EXPECT_TRUE(peer_closed_);
  EXPECT_EQ(1, stat("downstream_rq_reset"));
}

// Between requests the connection is in its listener's idle list, from which it can be closed
// to admit a new one; with a request in progress it is not.
class ConnManagerIdleTest : public ConnManagerTest {
 protected:
  void SetUp() override {
    ConnManagerTest::SetUp();
    context_->setIdleConnections(&idle_);
  }
  // Runs the loop until the manager has handled what the peer sent (bounded).
  void runUntilListed(bool listed) {
    runUntil([&](const std::string&) { return (idle_.size() == 1) == listed; });
  }

  uint64_t clock_ = 0;
  network::IdleConnectionList idle_{clock_};
};

TEST_F(ConnManagerIdleTest, IdleOnlyWhileNothingIsInProgress) {
  start({Echo()});
  // Not a byte yet: nothing in progress.
  EXPECT_EQ(1u, idle_.size());
  send("GET /1 HTTP/1.1\r\nHost: h\r\n");  // half a head
  runUntilListed(false);
  EXPECT_EQ(0u, idle_.size());
  send("\r\n");
  runUntilContains("0\r\n\r\n");
  runUntilListed(true);
  EXPECT_EQ(1u, idle_.size());
  // A body in progress.
  send("POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab");
  runUntilListed(false);
  EXPECT_EQ(0u, idle_.size());
  send("cd");
  runUntilContains("POST /2 body=abcd");
  runUntilListed(true);
  EXPECT_FALSE(peer_closed_);
}

TEST_F(ConnManagerIdleTest, ReclaimClosesAnIdleConnection) {
  start({Echo()});
  send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  runUntilContains("0\r\n\r\n");
  runUntilListed(true);
  EXPECT_TRUE(idle_.reclaimOldest());
  EXPECT_EQ(network::ConnectionState::kClosed, conn_->state());
  EXPECT_TRUE(idle_.empty());
  runUntilClosed();
  EXPECT_TRUE(peer_closed_);
  // Nothing was cut: the whole response came before the close.
  EXPECT_NE(std::string::npos, received_.find("GET /1 body=")) << received_;
}

TEST_F(ConnManagerIdleTest, ReclaimRefusedWhileTheNextRequestWaitsUnread) {
  start({Echo()});
  send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  runUntilContains("0\r\n\r\n");
  runUntilListed(true);
  // The next request is in the socket, not read yet: closing now would lose it.
  send("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_FALSE(idle_.reclaimOldest());
  EXPECT_EQ(network::ConnectionState::kOpen, conn_->state());
  runUntilContains("GET /2 body=");
  EXPECT_FALSE(peer_closed_);
}

TEST_F(ConnManagerIdleTest, ClosingLeavesTheList) {
  start({Echo()});
  EXPECT_EQ(1u, idle_.size());
  close(peer_);
  peer_ = -1;
  runUntilListed(false);
  EXPECT_EQ(network::ConnectionState::kClosed, conn_->state());
}

TEST_F(ConnManagerIdleTest, NotListedWithoutAPool) {
  context_->setIdleConnections(nullptr);
  start({Echo()});
  EXPECT_EQ(0u, idle_.size());
  send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n");
  runUntilContains("0\r\n\r\n");
  EXPECT_EQ(0u, idle_.size());
}

}  // namespace
}  // namespace sluice::http
