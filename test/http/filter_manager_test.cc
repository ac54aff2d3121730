// The FilterManager alone: no codec, no connection, no HTTP/1 bytes. A recording
// FilterManagerCallbacks stands where the connection manager's stream stands (the codec on one
// side, the upstream on the other); test filters drive every iteration rule.

#include "source/http/filter_manager.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"

namespace sluice::http {
namespace {

// What reached the ends of the chain, as text.
class RecordingCallbacks : public FilterManagerCallbacks {
 public:
  explicit RecordingCallbacks(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

  void onRequestHeadersDone(RequestHead& head, bool end_stream) override {
    log.push_back("upstream.headers " + std::string(head.method) + " " + std::string(head.path) +
                  (end_stream ? " end" : ""));
  }
  void onRequestDataDone(Buffer& data, bool end_stream) override {
    log.push_back("upstream.data " + std::to_string(data.length()) + (end_stream ? " end" : ""));
    data.clear();
  }
  void onRequestTrailersDone(HeaderMap& trailers) override {
    log.push_back("upstream.trailers " + std::to_string(trailers.size()));
  }
  void onResponseHeadersDone(ResponseHead& head, bool end_stream) override {
    log.push_back("codec.headers " + std::to_string(head.status) + (end_stream ? " end" : ""));
  }
  void onResponseDataDone(Buffer& data, bool end_stream) override {
    std::string body(data.length(), '\0');
    data.copyOut(0, data.length(), body.data());
    log.push_back("codec.data " + body + (end_stream ? " end" : ""));
    data.clear();
  }
  void onResponseTrailersDone(HeaderMap& trailers) override {
    log.push_back("codec.trailers " + std::to_string(trailers.size()));
  }
  void onResetFromFilter() override { log.push_back("reset"); }
  void onRequestBufferOverflow() override { log.push_back("request overflow"); }
  void onResponseBufferOverflow(bool head_held) override {
    log.push_back(std::string("response overflow") + (head_held ? " held" : ""));
  }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  uint64_t connectionId() const override { return 7; }
  CalloutClient* calloutClient() override { return nullptr; }
  bool setUpstream(const UpstreamSpec&) override { return false; }
  void addLocalReplyHeaders(HeaderMap& headers) override { headers.add("Server", "test"); }

  std::vector<std::string> log;

 private:
  event::Dispatcher& dispatcher_;
};

// Records the hooks it sees into a shared log; behaviours switch on per test.
class TestFilter : public StreamFilter {
 public:
  TestFilter(std::string name, std::vector<std::string>& log) : name_(std::move(name)), log_(log) {}

  FilterHeadersStatus decodeHeaders(RequestHead&, bool end_stream) override {
    log_.push_back(name_ + ".decodeHeaders" + (end_stream ? " end" : ""));
    if (reply_status != 0) {
      decoder_callbacks_->sendLocalReply(reply_status, "denied", nullptr);
      return FilterHeadersStatus::kStopIteration;
    }
    return stop_headers ? FilterHeadersStatus::kStopIteration : FilterHeadersStatus::kContinue;
  }
  FilterDataStatus decodeData(Buffer& data, bool end_stream) override {
    log_.push_back(name_ + ".decodeData " + std::to_string(data.length()) +
                   (end_stream ? " end" : ""));
    if (buffer_request && !end_stream) return FilterDataStatus::kStopIterationAndBuffer;
    return FilterDataStatus::kContinue;
  }
  FilterTrailersStatus decodeTrailers(HeaderMap&) override {
    log_.push_back(name_ + ".decodeTrailers");
    return FilterTrailersStatus::kContinue;
  }
  FilterHeadersStatus encodeHeaders(ResponseHead& head, bool) override {
    log_.push_back(name_ + ".encodeHeaders " + std::to_string(head.status));
    return FilterHeadersStatus::kContinue;
  }
  FilterDataStatus encodeData(Buffer& data, bool end_stream) override {
    log_.push_back(name_ + ".encodeData " + std::to_string(data.length()) +
                   (end_stream ? " end" : ""));
    return FilterDataStatus::kContinue;
  }
  void onStreamComplete() override { log_.push_back(name_ + ".complete"); }

  DecoderFilterCallbacks& decoder() { return *decoder_callbacks_; }

  bool stop_headers = false;
  bool buffer_request = false;
  uint16_t reply_status = 0;

 private:
  std::string name_;
  std::vector<std::string>& log_;
};

class FilterManagerTest : public testing::Test {
 protected:
  void SetUp() override { dispatcher_ = event::CreateDispatcher("test"); }
  void TearDown() override { fm_.reset(); }

  // A chain of `n` TestFilters named a, b, c...; they log into the callbacks' log.
  void build(size_t n, uint32_t buffer_limit = 1024) {
    callbacks_ = std::make_unique<RecordingCallbacks>(*dispatcher_);
    factories_.clear();
    filters_.assign(n, nullptr);
    for (size_t i = 0; i < n; ++i) {
      factories_.emplace_back([this, i]() -> StreamFilterPtr {
        auto f = std::make_unique<TestFilter>(std::string(1, static_cast<char>('a' + i)),
                                              callbacks_->log);
        filters_[i] = f.get();
        return f;
      });
    }
    ASSERT_LE(FilterManager::TrailingStorageSize(factories_), sizeof(storage_));
    fm_ = std::make_unique<FilterManager>(*callbacks_, factories_, storage_, 1, buffer_limit);
  }

  static std::unique_ptr<RequestHead> Request(std::string_view method = "POST") {
    auto head = std::make_unique<RequestHead>();
    head->method = method;
    head->path = "/p";
    head->scheme = "http";
    head->headers.add("host", "example.com");
    return head;
  }
  static std::unique_ptr<ResponseHead> Response(uint16_t status) {
    auto head = std::make_unique<ResponseHead>();
    head->status = status;
    return head;
  }
  void body(std::string_view s, bool end) {
    Buffer b;
    b.add(s);
    fm_->decodeData(b, end);
  }
  void respond(uint16_t status, std::string_view s) {
    fm_->encodeHeaders(Response(status), s.empty());
    if (s.empty()) return;
    Buffer b;
    b.add(s);
    fm_->encodeData(b, true);
  }
  std::vector<std::string>& log() { return callbacks_->log; }
  bool logged(std::string_view what) const {
    for (const auto& e : callbacks_->log) {
      if (e == what) return true;
    }
    return false;
  }

  std::unique_ptr<event::Dispatcher> dispatcher_;
  std::unique_ptr<RecordingCallbacks> callbacks_;
  std::vector<StreamFilterFactory> factories_;
  std::vector<TestFilter*> filters_;
  alignas(FilterManager::kStorageAlign) char storage_[4096];
  std::unique_ptr<FilterManager> fm_;
};

TEST_F(FilterManagerTest, RequestsRunInOrderResponsesInReverse) {
  build(2);
  fm_->decodeHeaders(Request(), false);
  body("hello", true);
  respond(200, "ok");
  fm_->complete();
  EXPECT_EQ(log(), (std::vector<std::string>{
                       "a.decodeHeaders", "b.decodeHeaders", "upstream.headers POST /p",
                       "a.decodeData 5 end", "b.decodeData 5 end", "upstream.data 5 end",
                       "b.encodeHeaders 200", "a.encodeHeaders 200", "codec.headers 200",
                       "b.encodeData 2 end", "a.encodeData 2 end", "codec.data ok end",
                       "a.complete", "b.complete"}));
  EXPECT_EQ(fm_->streamInfo().response_code, 200);
  EXPECT_EQ(fm_->streamInfo().bytes_received, 5u);
  EXPECT_EQ(fm_->streamInfo().bytes_sent, 2u);
  EXPECT_TRUE(fm_->completed());
}

TEST_F(FilterManagerTest, StopAndBufferShowsTheWholeBodyOnce) {
  build(2);
  filters_[0]->buffer_request = true;
  fm_->decodeHeaders(Request(), false);
  body("abc", false);
  body("defg", false);
  body("hi", true);
  // a is shown what it holds each time, b once: everything, with the end.
  EXPECT_EQ(log(), (std::vector<std::string>{"a.decodeHeaders", "b.decodeHeaders",
                                             "upstream.headers POST /p", "a.decodeData 3",
                                             "a.decodeData 7", "a.decodeData 9 end",
                                             "b.decodeData 9 end", "upstream.data 9 end"}));
}

TEST_F(FilterManagerTest, PausedHeadersResumeWithTheDataHeldBehindThem) {
  build(2);
  // a pauses the headers, and holds the body that arrives meanwhile (a filter that let the data
  // continue would release the headers with it).
  filters_[0]->stop_headers = true;
  filters_[0]->buffer_request = true;
  fm_->decodeHeaders(Request(), false);
  body("abc", false);
  EXPECT_FALSE(logged("b.decodeHeaders"));
  EXPECT_TRUE(filters_[0]->decoder().continueDecoding());
  EXPECT_TRUE(logged("b.decodeHeaders"));
  EXPECT_TRUE(logged("upstream.data 3"));
  body("de", true);
  EXPECT_TRUE(logged("upstream.data 2 end"));
  // Not stopped there any more.
  EXPECT_FALSE(filters_[0]->decoder().continueDecoding());
}

TEST_F(FilterManagerTest, LocalReplyRunsTheResponseFiltersAndStopsTheRequest) {
  build(3);
  filters_[1]->reply_status = 403;
  fm_->decodeHeaders(Request(), false);
  body("ignored", true);
  EXPECT_EQ(log(), (std::vector<std::string>{
                       "a.decodeHeaders", "b.decodeHeaders",
                       // From b: c never sees the request; the reply passes every encoder.
                       "c.encodeHeaders 403", "b.encodeHeaders 403", "a.encodeHeaders 403",
                       "codec.headers 403", "c.encodeData 6 end", "b.encodeData 6 end",
                       "a.encodeData 6 end", "codec.data denied end"}));
  EXPECT_TRUE(fm_->responseHeadSent());
}

TEST_F(FilterManagerTest, RequestOverTheBufferLimitIs413) {
  build(1, /*buffer_limit=*/8);
  filters_[0]->buffer_request = true;
  fm_->decodeHeaders(Request(), false);
  body("12345", false);
  body("67890", false);
  EXPECT_TRUE(logged("request overflow"));
  EXPECT_TRUE(logged("codec.headers 413"));
  EXPECT_EQ(fm_->streamInfo().response_details, "request_too_large");
  EXPECT_EQ(fm_->streamInfo().response_flags, FlagBit(ResponseFlag::kBufferLimit));
  EXPECT_FALSE(logged("upstream.data 10"));
}

TEST_F(FilterManagerTest, LocalReplyAfterTheResponseLeftResetsTheStream) {
  build(1);
  fm_->decodeHeaders(Request("GET"), true);
  fm_->encodeHeaders(Response(200), false);
  fm_->sendLocalReply(500, "late", nullptr);
  EXPECT_EQ(log().back(), "reset");
  EXPECT_EQ(fm_->streamInfo().response_details, "filter_reset");
  EXPECT_EQ(fm_->streamInfo().response_flags, FlagBit(ResponseFlag::kLocalReset));
}

TEST_F(FilterManagerTest, ATunnelKeepsTheRequestGoingAfterItOpens) {
  build(1);
  fm_->setTunnelRequest(/*connect=*/true);
  fm_->decodeHeaders(Request("CONNECT"), false);
  fm_->encodeHeaders(Response(200), false);
  EXPECT_TRUE(fm_->tunnelOpened());
  body("bytes", false);
  EXPECT_TRUE(logged("upstream.data 5"));
}

TEST_F(FilterManagerTest, AnAnswerBeforeTheEndOfTheRequestStopsTheRequest) {
  build(1);
  fm_->decodeHeaders(Request(), false);
  respond(200, "early");
  body("late", true);
  EXPECT_FALSE(logged("a.decodeData 4 end"));
  EXPECT_FALSE(fm_->tunnelOpened());
}

}  // namespace
}  // namespace sluice::http
