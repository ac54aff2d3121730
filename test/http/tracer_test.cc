// Request ids and tracing without a network: the request head's rewriting (traceparent,
// tracestate, the id), the span's OTLP JSON, and a worker's batch (bounded, one export in
// flight, drops counted) against a scripted callout client.

#include "source/http/tracer.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "source/event/dispatcher.h"
#include "source/http/callout.h"
#include "test/network/test_filter_context.h"

namespace sluice::http {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr const char* kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::string Get(const HeaderMap& h, std::string_view name) {
  const HeaderMap::Entry* e = h.get(name);
  return e == nullptr ? "<none>" : std::string(e->value);
}

std::shared_ptr<const Tracer> MakeTracer(
    stats::Store& store, double sampling = 100, uint32_t max_batch = 512,
    std::chrono::milliseconds flush = std::chrono::seconds(5)) {
  Tracer::Options o;
  o.random_sampling = sampling;
  o.collector_cluster = "otel";
  o.max_batch = max_batch;
  o.flush_interval = flush;
  return Tracer::Create(o, store, "test");
}

TEST(RequestIdTest, GeneratedKeptReplaced) {
  RequestIdConfig config;
  HeaderMap h;
  const std::string_view id = ApplyRequestId(config, h);
  EXPECT_EQ(36u, id.size());
  EXPECT_EQ(std::string(id), Get(h, "x-request-id"));

  HeaderMap incoming;
  incoming.add("X-Request-Id", "client-chose-this");
  EXPECT_EQ("client-chose-this", ApplyRequestId(config, incoming));
  EXPECT_EQ(1u, incoming.count("x-request-id"));

  // An empty value is no id.
  HeaderMap empty;
  empty.add("x-request-id", "");
  EXPECT_EQ(36u, ApplyRequestId(config, empty).size());
  EXPECT_EQ(1u, empty.count("x-request-id"));

  config.keep_incoming = false;
  config.header_name = "x-trace-me";
  HeaderMap replaced;
  replaced.add("x-trace-me", "a");
  replaced.add("x-trace-me", "b");
  const std::string_view fresh = ApplyRequestId(config, replaced);
  EXPECT_EQ(36u, fresh.size());
  EXPECT_EQ(1u, replaced.count("x-trace-me"));
  EXPECT_EQ(std::string(fresh), Get(replaced, "x-trace-me"));
}

TEST(TracerTest, ValidParentKeepsTraceAndDecision) {
  stats::Store store;
  auto tracer = MakeTracer(store, /*sampling=*/0);
  HeaderMap h;
  h.add("traceparent", kParent);
  h.add("tracestate", "rojo=1");
  h.add("tracestate", "congo=2");
  auto span = tracer->onRequestHeaders(h);
  ASSERT_NE(nullptr, span);  // sampled by the parent, whatever random_sampling says
  const std::string tp = Get(h, "traceparent");
  ASSERT_EQ(55u, tp.size());
  EXPECT_EQ("00-4bf92f3577b34da6a3ce929d0e0e4736-", tp.substr(0, 36));
  EXPECT_EQ("-01", tp.substr(52));
  EXPECT_NE("00f067aa0ba902b7", tp.substr(36, 16));  // a new span id
  auto sent = tracing::ParseTraceparent(tp);
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(span->span_id, sent->parent_id);
  EXPECT_TRUE(span->has_parent);
  EXPECT_EQ(tracing::ParseTraceparent(kParent)->parent_id, span->parent_id);
  // The two fields become one list, passed on.
  EXPECT_EQ(1u, h.count("tracestate"));
  EXPECT_EQ("rojo=1,congo=2", Get(h, "tracestate"));
  EXPECT_EQ("rojo=1,congo=2", span->tracestate);
}

TEST(TracerTest, UnsampledParentIsHonoured) {
  stats::Store store;
  auto tracer = MakeTracer(store, /*sampling=*/100);
  HeaderMap h;
  h.add("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  h.add("tracestate", "rojo=1");
  EXPECT_EQ(nullptr, tracer->onRequestHeaders(h));
  const std::string tp = Get(h, "traceparent");
  EXPECT_EQ("00-4bf92f3577b34da6a3ce929d0e0e4736-", tp.substr(0, 36));
  EXPECT_EQ("-00", tp.substr(52));
  EXPECT_EQ("rojo=1", Get(h, "tracestate"));
}

TEST(TracerTest, InvalidParentStartsANewTrace) {
  stats::Store store;
  for (const char* bad : {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                          "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"}) {
    for (double sampling : {0.0, 100.0}) {
      auto tracer = MakeTracer(store, sampling);
      HeaderMap h;
      h.add("traceparent", bad);
      h.add("tracestate", "rojo=1");
      auto span = tracer->onRequestHeaders(h);
      EXPECT_EQ(sampling == 100, span != nullptr) << bad;
      auto sent = tracing::ParseTraceparent(Get(h, "traceparent"));
      ASSERT_TRUE(sent.has_value()) << bad;
      EXPECT_NE("4bf92f3577b34da6a3ce929d0e0e4736", Get(h, "traceparent").substr(3, 32));
      EXPECT_EQ(sampling == 100, sent->sampled());
      EXPECT_EQ(0u, h.count("tracestate")) << bad;  // not passed on without its traceparent
      if (span != nullptr) {
        EXPECT_FALSE(span->has_parent);
        EXPECT_EQ(span->trace_id, sent->trace_id);
      }
    }
  }
  // Two traceparent fields are invalid too.
  auto tracer = MakeTracer(store);
  HeaderMap h;
  h.add("traceparent", kParent);
  h.add("traceparent", kParent);
  auto span = tracer->onRequestHeaders(h);
  ASSERT_NE(nullptr, span);
  EXPECT_FALSE(span->has_parent);
  EXPECT_EQ(1u, h.count("traceparent"));
}

TEST(TracerTest, InvalidTracestateIsDropped) {
  stats::Store store;
  auto tracer = MakeTracer(store);
  HeaderMap h;
  h.add("traceparent", kParent);
  h.add("tracestate", "Bad Key=1");
  auto span = tracer->onRequestHeaders(h);
  ASSERT_NE(nullptr, span);
  EXPECT_EQ(0u, h.count("tracestate"));
  EXPECT_TRUE(span->tracestate.empty());
}

TEST(TracerTest, RandomSamplingIsRoughlyThePercentage) {
  stats::Store store;
  auto tracer = MakeTracer(store, 25);
  int sampled = 0;
  for (int i = 0; i < 10000; ++i) {
    HeaderMap h;
    if (tracer->onRequestHeaders(h) != nullptr) ++sampled;
  }
  // 2500 expected; the bounds are 10 standard deviations (43) away.
  EXPECT_GT(sampled, 2070);
  EXPECT_LT(sampled, 2930);
}

Struct ParseJson(const std::string& json) {
  Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << status << "\n" << json;
  return s;
}

std::map<std::string, Value> Attributes(const Struct& span) {
  std::map<std::string, Value> out;
  for (const Value& a : span.fields().at("attributes").list_value().values()) {
    const auto& f = a.struct_value().fields();
    const auto& v = f.at("value").struct_value().fields();
    out[f.at("key").string_value()] = v.begin()->second;
  }
  return out;
}

TEST(TracerTest, SpanJson) {
  StreamInfo info;
  info.downstream_remote = *network::Address::fromIpPort("192.0.2.7", 5555);
  info.protocol = Protocol::kHttp2;
  info.response_code = 503;
  info.cluster_name = "backend";
  info.setResponseFlag(ResponseFlag::kUpstreamConnectionFailure, "upstream_connect_failure");
  info.request_id = "rid-1";
  RequestHead head;
  head.method = "GET";
  head.path = "/a/b?q=1";
  head.headers.add("User-Agent", "curl\x01\xff\xc3\xa9\"");
  ActiveSpan span;
  span.trace_id = tracing::NewTraceId();
  span.span_id = tracing::NewSpanId();
  span.parent_id = tracing::NewSpanId();
  span.has_parent = true;
  span.tracestate = "rojo=1";
  span.upstream_host = "10.0.0.1:80";
  span.start = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  std::string json;
  Tracer::AppendSpanJson(span, SpanEnd{info, &head, head.path},
                         span.start + std::chrono::milliseconds(12), json);
  const Struct s = ParseJson(json);
  const auto& f = s.fields();
  char hex[32];
  tracing::HexEncode(span.trace_id.data(), 16, hex);
  EXPECT_EQ(std::string(hex, 32), f.at("traceId").string_value());
  tracing::HexEncode(span.span_id.data(), 8, hex);
  EXPECT_EQ(std::string(hex, 16), f.at("spanId").string_value());
  tracing::HexEncode(span.parent_id.data(), 8, hex);
  EXPECT_EQ(std::string(hex, 16), f.at("parentSpanId").string_value());
  EXPECT_EQ("rojo=1", f.at("traceState").string_value());
  EXPECT_EQ("GET /a/b", f.at("name").string_value());
  EXPECT_EQ(2, f.at("kind").number_value());
  EXPECT_EQ("1700000000000000000", f.at("startTimeUnixNano").string_value());
  EXPECT_EQ("1700000000012000000", f.at("endTimeUnixNano").string_value());
  EXPECT_EQ(2, f.at("status").struct_value().fields().at("code").number_value());
  EXPECT_EQ("upstream_connect_failure",
            f.at("status").struct_value().fields().at("message").string_value());
  auto a = Attributes(s);
  EXPECT_EQ("GET", a["http.request.method"].string_value());
  EXPECT_EQ("/a/b", a["url.path"].string_value());
  EXPECT_EQ("http", a["url.scheme"].string_value());
  EXPECT_EQ("503", a["http.response.status_code"].string_value());  // int64: a JSON string
  EXPECT_EQ("curl\x01\xc3\xbf\xc3\xa9\"", a["user_agent.original"].string_value());
  EXPECT_EQ("192.0.2.7", a["client.address"].string_value());
  EXPECT_EQ("2", a["network.protocol.version"].string_value());
  EXPECT_EQ("backend", a["sluice.upstream.cluster"].string_value());
  EXPECT_EQ("10.0.0.1:80", a["sluice.upstream.host"].string_value());
  EXPECT_EQ("UF", a["sluice.response_flags"].string_value());
  EXPECT_EQ("rid-1", a["sluice.request_id"].string_value());

  // A 200 through a named route: no status, the route's name.
  StreamInfo ok;
  ok.response_code = 200;
  ok.route_name = "api";
  span.has_parent = false;
  span.tracestate.clear();
  std::string json2;
  Tracer::AppendSpanJson(span, SpanEnd{ok, &head, "/a/b"}, span.start, json2);
  const Struct s2 = ParseJson(json2);
  EXPECT_EQ("GET api", s2.fields().at("name").string_value());
  EXPECT_FALSE(s2.fields().contains("status"));
  EXPECT_FALSE(s2.fields().contains("parentSpanId"));
  EXPECT_FALSE(s2.fields().contains("traceState"));
}

// Callouts recorded, answered by the test.
class ScriptedCallouts : public CalloutClient {
 public:
  struct Sent {
    CalloutRequest request;
    CalloutCallbacks* callbacks;
    bool cancelled = false;
  };
  class Handle : public Callout {
   public:
    explicit Handle(Sent& sent) : sent_(sent) {}
    ~Handle() override { cancel(); }
    void cancel() override { sent_.cancelled = true; }

   private:
    Sent& sent_;
  };

  explicit ScriptedCallouts(event::Dispatcher& d) : dispatcher_(d) {}
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  bool hasCluster(std::string_view cluster) const override { return cluster == "otel"; }
  absl::StatusOr<CalloutPtr> send(std::string_view cluster, CalloutRequest request,
                                  const CalloutOptions& options,
                                  CalloutCallbacks& callbacks) override {
    EXPECT_EQ("otel", cluster);
    EXPECT_GT(options.timeout.count(), 0);
    sent_.push_back(std::make_unique<Sent>(Sent{std::move(request), &callbacks}));
    return CalloutPtr(std::make_unique<Handle>(*sent_.back()));
  }
  // Answers callout `i`.
  void answer(size_t i, CalloutOutcome outcome, uint16_t status) {
    CalloutResponse r;
    r.outcome = outcome;
    r.status = status;
    sent_.at(i)->callbacks->onCalloutComplete(r);
  }
  std::vector<std::unique_ptr<Sent>> sent_;

 private:
  event::Dispatcher& dispatcher_;
};

class Context : public network::test::TestFilterContext {
 public:
  Context(event::Dispatcher& d, CalloutClient& c) : TestFilterContext(d), callouts_(c) {}
  CalloutClient* calloutClient() override { return &callouts_; }
  network::WorkerLocals* workerLocals() override { return &locals_; }
  network::WorkerLocals locals_;

 private:
  CalloutClient& callouts_;
};

class BatchTest : public testing::Test {
 protected:
  BatchTest()
      : dispatcher_(event::CreateDispatcher("test")),
        callouts_(*dispatcher_),
        context_(*dispatcher_, callouts_) {}
  ~BatchTest() override { context_.locals_.close(); }

  void end(const Tracer& tracer, int n = 1) {
    for (int i = 0; i < n; ++i) {
      ActiveSpan span;
      span.trace_id = tracing::NewTraceId();
      span.span_id = tracing::NewSpanId();
      StreamInfo info;
      info.response_code = 200;
      tracer.onStreamEnd(span, SpanEnd{info, nullptr, "/x"}, context_);
    }
  }
  int64_t stat(const char* name) { return store_.valueOf(std::string("tracing.test.") + name); }
  // The spans of export `i` (its body parsed as OTLP JSON).
  int spansIn(size_t i, std::string* service = nullptr) {
    const auto& req = callouts_.sent_.at(i)->request;
    EXPECT_EQ("POST", req.method);
    EXPECT_EQ("/v1/traces", req.path);
    EXPECT_EQ("application/json", Get(req.headers, "content-type"));
    const Struct s = ParseJson(req.body);
    const auto& rs = s.fields().at("resourceSpans").list_value().values(0).struct_value();
    if (service != nullptr) {
      const auto& attr = rs.fields().at("resource").struct_value().fields().at("attributes");
      *service = attr.list_value()
                     .values(0)
                     .struct_value()
                     .fields()
                     .at("value")
                     .struct_value()
                     .fields()
                     .at("stringValue")
                     .string_value();
    }
    const auto& ss = rs.fields().at("scopeSpans").list_value().values(0).struct_value();
    return ss.fields().at("spans").list_value().values_size();
  }

  stats::Store store_;
  event::DispatcherPtr dispatcher_;
  ScriptedCallouts callouts_;
  Context context_;
};

TEST_F(BatchTest, FullBatchGoesAtOnceAndOneExportIsInFlight) {
  auto tracer = MakeTracer(store_, 100, /*max_batch=*/3);
  end(*tracer, 2);
  EXPECT_EQ(0u, callouts_.sent_.size());  // waiting for the interval
  end(*tracer);
  ASSERT_EQ(1u, callouts_.sent_.size());  // full: sent at once
  std::string service;
  EXPECT_EQ(3, spansIn(0, &service));
  EXPECT_EQ("sluice", service);
  // In flight: the next three wait, the rest are dropped.
  end(*tracer, 5);
  EXPECT_EQ(1u, callouts_.sent_.size());
  EXPECT_EQ(8, stat("spans_sampled"));
  EXPECT_EQ(2, stat("spans_dropped"));
  callouts_.answer(0, CalloutOutcome::kResponse, 200);
  EXPECT_EQ(3, stat("spans_exported"));
  // The full batch went as soon as the export was done.
  ASSERT_EQ(2u, callouts_.sent_.size());
  EXPECT_EQ(3, spansIn(1));
  callouts_.answer(1, CalloutOutcome::kResponse, 503);
  EXPECT_EQ(1, stat("export_failures"));
  EXPECT_EQ(5, stat("spans_dropped"));
  EXPECT_EQ(3, stat("spans_exported"));
  callouts_.answer(1, CalloutOutcome::kResponse, 200);  // (a second answer changes nothing)
}

TEST_F(BatchTest, IntervalFlushesAPartialBatch) {
  auto tracer = MakeTracer(store_, 100, 100, std::chrono::milliseconds(1));
  end(*tracer, 2);
  EXPECT_EQ(0u, callouts_.sent_.size());
  // Run the loop until the interval's export (bounded).
  event::TimerPtr poll;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  poll = dispatcher_->createTimer([&] {
    if (!callouts_.sent_.empty() || std::chrono::steady_clock::now() > deadline) {
      dispatcher_->exit();
    } else {
      poll->enableTimer(std::chrono::milliseconds(1));
    }
  });
  poll->enableTimer(std::chrono::milliseconds(0));
  dispatcher_->run();
  ASSERT_EQ(1u, callouts_.sent_.size());
  EXPECT_EQ(2, spansIn(0));
  callouts_.answer(0, CalloutOutcome::kTimeout, 0);
  EXPECT_EQ(1, stat("export_failures"));
  EXPECT_EQ(2, stat("spans_dropped"));
}

TEST_F(BatchTest, ClosedWorkerDropsAndCancels) {
  auto tracer = MakeTracer(store_, 100, 1);
  end(*tracer);
  ASSERT_EQ(1u, callouts_.sent_.size());
  context_.locals_.close();
  EXPECT_TRUE(callouts_.sent_[0]->cancelled);
  end(*tracer);
  EXPECT_EQ(1u, callouts_.sent_.size());
  EXPECT_EQ(2, stat("spans_sampled"));
  EXPECT_EQ(1, stat("spans_dropped"));
}

}  // namespace
}  // namespace sluice::http
