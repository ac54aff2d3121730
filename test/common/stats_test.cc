// Stats: per-thread slots summed on read; the text dump the admin endpoint serves.

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/common/stats.h"

namespace sluice::stats {
namespace {

TEST(StatsTest, CountersAndGaugesSumOverThreads) {
  Store store;
  Counter& c = store.counter("test.requests");
  Gauge& g = store.gauge("test.active");
  constexpr int kThreads = 20;  // more than kMaxSlots: slots are shared, sums stay exact
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SetThreadSlot(t);
      for (int i = 0; i < kPerThread; ++i) {
        c.inc();
        g.inc();
      }
      for (int i = 0; i < kPerThread / 2; ++i) g.dec();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(g.value(), int64_t{kThreads} * kPerThread / 2);
  // A gauge dropped on one thread after rising on another still sums right.
  std::thread up([&] {
    SetThreadSlot(3);
    g.add(5);
  });
  up.join();
  g.add(-5);
  EXPECT_EQ(g.value(), int64_t{kThreads} * kPerThread / 2);
  EXPECT_EQ(store.valueOf("test.requests"), int64_t{kThreads} * kPerThread);
}

TEST(StatsTest, SetReplacesTheSumAndDumpIsSorted) {
  Store store;
  store.gauge("b.gauge").add(7);
  store.gauge("b.gauge").set(3);
  store.counter("a.counter").add(2);
  EXPECT_EQ(store.dumpText(), "a.counter 2\nb.gauge 3\n");
  EXPECT_EQ(store.valueOf("missing"), 0);
}

TEST(HistogramTest, BucketsAreLogLinearAndContiguous) {
  // Every value lands in the bucket whose upper bound is the first one not below it.
  for (uint64_t v : {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 6ull, 7ull, 8ull, 11ull, 12ull, 1000ull,
                     (1ull << 40) + 12345, ~0ull}) {
    const size_t b = Histogram::BucketOf(v);
    ASSERT_LT(b, Histogram::kBuckets);
    EXPECT_LE(v, Histogram::UpperBound(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, Histogram::UpperBound(b - 1)) << v;
    }
  }
  EXPECT_EQ(5u, Histogram::UpperBound(Histogram::BucketOf(5)));  // [4, 6)
  EXPECT_EQ(7u, Histogram::UpperBound(Histogram::BucketOf(6)));  // [6, 8)
}

TEST(HistogramTest, CountSumAndQuantilesOverThreads) {
  Store store;
  Histogram& h = store.histogram("test.latency");
  EXPECT_EQ(0u, h.quantile(0.5));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      SetThreadSlot(static_cast<uint32_t>(t));
      for (uint64_t v = 1; v <= 100; ++v) h.record(v);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(400u, h.count());
  EXPECT_EQ(4u * 5050u, h.sum());
  // Bucket bounds: the median (50) is in [48, 64), p99 (99) in [96, 128).
  EXPECT_EQ(63u, h.quantile(0.5));
  EXPECT_EQ(127u, h.quantile(0.99));
  EXPECT_EQ(1u, h.quantile(0.001));
  const std::string dump = store.dumpText();
  EXPECT_NE(std::string::npos, dump.find("test.latency.count 400\n"));
  EXPECT_NE(std::string::npos, dump.find("test.latency.sum 20200\n"));
  EXPECT_NE(std::string::npos, dump.find("test.latency.p50 63\n"));
}

TEST(StatsTest, TaggedStatsAreOnePerValueSetInAnyOrder) {
  Store store;
  Counter& a = store.counter("t.req", {{"method", "GET"}, {"code", "200"}});
  Counter& b = store.counter("t.req", {{"code", "200"}, {"method", "GET"}});
  Counter& c = store.counter("t.req", {{"code", "500"}, {"method", "GET"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.add(2);
  c.inc();
  store.counter("t.req").add(7);  // the unlabelled one is its own stat
  store.histogram("t.lat", {{"q", "a\"b\\c"}}).record(5);
  const std::string text = store.dumpText();
  EXPECT_NE(text.find("t.req 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t.req{code=\"200\",method=\"GET\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t.req{code=\"500\",method=\"GET\"} 1\n"), std::string::npos) << text;
  // Histogram suffixes go before the labels; quotes and backslashes in values are escaped.
  EXPECT_NE(text.find("t.lat.count{q=\"a\\\"b\\\\c\"} 1\n"), std::string::npos) << text;
}

TEST(StatsTest, PrometheusFormat) {
  Store store;
  store.counter("http.web.rq-total").add(3);
  store.counter("p.req", {{"m", "GET"}}).add(2);
  store.counter("p.req", {{"m", "PUT"}}).add(1);
  store.gauge("p.level").set(-4);
  Histogram& h = store.histogram("p.size", {{"d", "rs"}});
  h.record(0);
  h.record(1);
  h.record(4);
  h.record(6);
  const std::string text = store.dumpPrometheus();
  const char* const expected[] = {
      "# HELP http_web_rq_total http.web.rq-total\n# TYPE http_web_rq_total counter\n"
      "http_web_rq_total 3\n",
      "# TYPE p_level gauge\np_level -4\n",
      "# TYPE p_req counter\np_req{m=\"GET\"} 2\np_req{m=\"PUT\"} 1\n",
      // Buckets: le 0, 1, 2, 3, 5, 7 (bounds of the log-linear buckets, cumulative; bucket
      // [1.5, 2) holds no integer and is not listed), up to the highest one used, then +Inf.
      "# TYPE p_size histogram\n"
      "p_size_bucket{d=\"rs\",le=\"0\"} 1\n"
      "p_size_bucket{d=\"rs\",le=\"1\"} 2\n"
      "p_size_bucket{d=\"rs\",le=\"2\"} 2\n"
      "p_size_bucket{d=\"rs\",le=\"3\"} 2\n"
      "p_size_bucket{d=\"rs\",le=\"5\"} 3\n"
      "p_size_bucket{d=\"rs\",le=\"7\"} 4\n"
      "p_size_bucket{d=\"rs\",le=\"+Inf\"} 4\n"
      "p_size_sum{d=\"rs\"} 11\n"
      "p_size_count{d=\"rs\"} 4\n",
  };
  for (const char* e : expected) EXPECT_NE(text.find(e), std::string::npos) << e << "\n" << text;
  // One TYPE line per family.
  size_t types = 0;
  for (size_t p = text.find("# TYPE"); p != std::string::npos; p = text.find("# TYPE", p + 1)) {
    ++types;
  }
  EXPECT_EQ(types, 4u);
  // An empty histogram: only +Inf, sum and count.
  Store empty;
  empty.histogram("e");
  EXPECT_EQ(empty.dumpPrometheus(),
            "# HELP e e\n# TYPE e histogram\ne_bucket{le=\"0\"} 0\ne_bucket{le=\"+Inf\"} 0\n"
            "e_sum 0\ne_count 0\n");
}

TEST(StatsTest, PrometheusNamesThatClashAreNotMerged) {
  // "a.b" and "a_b" both expose a_b: the second is listed as a comment, not merged into the
  // first's family (a gauge under a counter's TYPE, or two series Prometheus would reject).
  Store store;
  store.counter("a.b").add(1);
  store.gauge("a_b").set(7);
  store.counter("a_b").add(2);
  EXPECT_EQ(store.dumpPrometheus(),
            "# HELP a_b a.b\n# TYPE a_b counter\na_b 1\n"
            "# sluice: a_b (counter) is not exported: its name a_b is a.b's\n"
            "# sluice: a_b (gauge) is not exported: its name a_b is a.b's\n");
}

}  // namespace
}  // namespace sluice::stats
