// Stats: per-thread slots summed on read; the text dump the admin endpoint serves.

#include <malloc.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "source/common/stats.h"

namespace sluice::stats {
namespace {

TEST(StatsTest, CountersAndGaugesSumOverThreads) {
  Store store(8);
  Counter& c = store.counter("test.requests");
  Gauge& g = store.gauge("test.active");
  // More threads than the store has slots for: the others share slot 0, sums stay exact.
  constexpr int kThreads = 20;
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
      "# HELP sluice_http_web_rq_total http.web.rq-total\n"
      "# TYPE sluice_http_web_rq_total counter\nsluice_http_web_rq_total 3\n",
      "# TYPE sluice_p_level gauge\nsluice_p_level -4\n",
      "# TYPE sluice_p_req counter\nsluice_p_req{m=\"GET\"} 2\nsluice_p_req{m=\"PUT\"} 1\n",
      // Buckets: le 0, 1, 2, 3, 5, 7 (bounds of the log-linear buckets, cumulative; bucket
      // [1.5, 2) holds no integer and is not listed), up to the highest one used, then +Inf.
      "# TYPE sluice_p_size histogram\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"0\"} 1\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"1\"} 2\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"2\"} 2\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"3\"} 2\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"5\"} 3\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"7\"} 4\n"
      "sluice_p_size_bucket{d=\"rs\",le=\"+Inf\"} 4\n"
      "sluice_p_size_sum{d=\"rs\"} 11\n"
      "sluice_p_size_count{d=\"rs\"} 4\n",
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
            "# HELP sluice_e e\n# TYPE sluice_e histogram\nsluice_e_bucket{le=\"0\"} 0\n"
            "sluice_e_bucket{le=\"+Inf\"} 0\nsluice_e_sum 0\nsluice_e_count 0\n");
}

TEST(StatsTest, PrometheusNamesThatClashAreNotMerged) {
  // "a.b" and "a_b" both expose sluice_a_b: the second is listed as a comment, not merged into
  // the first's family (a gauge under a counter's TYPE, or two series Prometheus would reject).
  Store store;
  store.counter("a.b").add(1);
  store.gauge("a_b").set(7);
  EXPECT_EQ(store.dumpPrometheus(),
            "# HELP sluice_a_b a.b\n# TYPE sluice_a_b counter\nsluice_a_b 1\n"
            "# sluice: a_b (gauge) is not exported: its name sluice_a_b is a.b's\n");
}

TEST(StatsTest, ScopesNameStatsAndTagThem) {
  Store store(2);
  const Scope cluster = Scope(store).tagged("cluster", "cluster_name", "back.end");
  cluster.counter("upstream_rq_total").add(3);
  ResponseClassCounter(cluster, "upstream_rq_", 5).add(2);
  ResponseClassCounter(cluster, "upstream_rq_", 2).add(1);
  const Scope host = cluster.tagged("host", "host", "127.0.0.1:80");
  host.gauge("cx_active").set(4);
  Scope(store).tagged("cluster", "cluster_name", "other").counter("upstream_rq_total").inc();
  // The same name from another scope object is the same stat.
  EXPECT_EQ(&cluster.counter("upstream_rq_total"),
            &store.counter("cluster.back.end.upstream_rq_total"));
  EXPECT_EQ(store.valueOf("cluster.back.end.upstream_rq_5xx"), 2);
  EXPECT_EQ(store.valueOf("cluster.back.end.host.127.0.0.1:80.cx_active"), 4);
  EXPECT_EQ(store.dumpText(),
            "cluster.back.end.host.127.0.0.1:80.cx_active 4\n"
            "cluster.back.end.upstream_rq_2xx 1\n"
            "cluster.back.end.upstream_rq_5xx 2\n"
            "cluster.back.end.upstream_rq_total 3\n"
            "cluster.other.upstream_rq_total 1\n");
  // Prometheus: the family without the values, the values as labels (a dotted cluster name is
  // one label value, never split).
  EXPECT_EQ(
      store.dumpPrometheus(),
      "# HELP sluice_cluster_host_cx_active cluster.host.cx_active\n"
      "# TYPE sluice_cluster_host_cx_active gauge\n"
      "sluice_cluster_host_cx_active{cluster_name=\"back.end\",host=\"127.0.0.1:80\"} 4\n"
      "# HELP sluice_cluster_upstream_rq_total cluster.upstream_rq_total\n"
      "# TYPE sluice_cluster_upstream_rq_total counter\n"
      "sluice_cluster_upstream_rq_total{cluster_name=\"back.end\"} 3\n"
      "sluice_cluster_upstream_rq_total{cluster_name=\"other\"} 1\n"
      "# HELP sluice_cluster_upstream_rq_xx cluster.upstream_rq_xx\n"
      "# TYPE sluice_cluster_upstream_rq_xx counter\n"
      "sluice_cluster_upstream_rq_xx{cluster_name=\"back.end\",response_code_class=\"2\"} 1\n"
      "sluice_cluster_upstream_rq_xx{cluster_name=\"back.end\",response_code_class=\"5\"} 2\n");
}

TEST(StatsTest, JsonAndFilters) {
  Store store;
  const Scope l = Scope(store).tagged("listener", "listener_name", "web");
  l.counter("downstream_cx_total").add(5);
  l.histogram("downstream_cx_length_ms").record(3);
  store.counter("p.req", {{"m", "G\"E\nT\xff"}}).inc();
  const re2::RE2 listener("^listener\\.");
  EXPECT_EQ(store.dumpText(&listener),
            "listener.web.downstream_cx_length_ms.count 1\n"
            "listener.web.downstream_cx_length_ms.p50 3\n"
            "listener.web.downstream_cx_length_ms.p90 3\n"
            "listener.web.downstream_cx_length_ms.p99 3\n"
            "listener.web.downstream_cx_length_ms.sum 3\n"
            "listener.web.downstream_cx_total 5\n");
  const re2::RE2 total("cx_total");
  EXPECT_EQ(store.dumpPrometheus(&total),
            "# HELP sluice_listener_downstream_cx_total listener.downstream_cx_total\n"
            "# TYPE sluice_listener_downstream_cx_total counter\n"
            "sluice_listener_downstream_cx_total{listener_name=\"web\"} 5\n");
  // The filter sees the name before its labels.
  const re2::RE2 anchored("^p\\.req$");
  EXPECT_EQ(
      store.dumpJson(&anchored),
      "{\"stats\":[\n{\"name\":\"p.req{m=\\\"G\\\\\\\"E\\\\nT\\u00ff\\\"}\",\"type\":\"counter\","
      "\"value\":1,\"tags\":{\"m\":\"G\\\"E\\nT\\u00ff\"}}\n]}\n");
  EXPECT_EQ(store.dumpJson(&total),
            "{\"stats\":[\n{\"name\":\"listener.web.downstream_cx_total\",\"type\":\"counter\","
            "\"value\":5,\"tags\":{\"listener_name\":\"web\"}}\n]}\n");
  const std::string all = store.dumpJson();
  EXPECT_NE(all.find("{\"name\":\"listener.web.downstream_cx_length_ms\",\"type\":\"histogram\","
                     "\"count\":1,\"sum\":3,\"p50\":3,\"p90\":3,\"p99\":3,"
                     "\"tags\":{\"listener_name\":\"web\"}}"),
            std::string::npos)
      << all;
}

// The property the old gauge lacked: a set racing with adds on other threads loses none of them
// (it used to zero every slot, wiping an add that landed in between for good). One thread adds
// +1 then -1, over and over; another sets 7, over and over. Whatever the interleaving, after the
// last set the adder's remaining steps net 0 or -1, so the value ends at 7 or 6. Lost adds would
// drift it anywhere.
TEST(StatsTest, GaugeSetRacingAddsLosesNothing) {
  Store store(2);
  Gauge& g = store.gauge("g");
  constexpr int kRounds = 200000;
  std::thread adder([&] {
    SetThreadSlot(0);
    for (int i = 0; i < kRounds; ++i) {
      g.inc();
      g.dec();
    }
  });
  std::thread setter([&] {
    SetThreadSlot(1);
    for (int i = 0; i < kRounds; ++i) g.set(7);
  });
  adder.join();
  setter.join();
  const int64_t v = g.value();
  EXPECT_TRUE(v == 7 || v == 6) << v;
  g.set(7);
  EXPECT_EQ(g.value(), 7);
}

TEST(StatsTest, ThreadsBeyondTheStoresSlotsShareSlotZero) {
  Store store(1);  // slots for the main thread and worker 0
  Counter& c = store.counter("c");
  Histogram& h = store.histogram("h");
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      SetThreadSlot(w);
      for (int i = 0; i < 1000; ++i) {
        c.inc();
        h.record(i);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 4000u);
  EXPECT_EQ(h.count(), 4000u);
  EXPECT_EQ(store.threadSlots(), 2u);
}

// What a stat costs, for the docs: the heap bytes stats take in a store sized for 4 workers
// (5 slots), for per-host stats (a scope per host, its 6 stats, names as long as real ones) and
// for stats that share one scope (per-route histograms before any thread records). The bounds
// are what docs/observability.md quotes, with room for allocator noise.
TEST(StatsTest, BytesPerStat) {
  auto measure = [](int stats, auto make) {
    malloc_trim(0);
    const size_t before = mallinfo2().uordblks;
    auto store = std::make_unique<Store>(4);
    make(*store);
    const size_t after = mallinfo2().uordblks;
    return static_cast<double>(after - before) / stats;
  };
  constexpr int kHosts = 2000;
  const double host_stat = measure(kHosts * 6, [](Store& s) {
    const Scope c = Scope(s).tagged("cluster", "cluster_name", "backend");
    for (int i = 0; i < kHosts; ++i) {
      const Scope h =
          c.tagged("host", "host", absl::StrCat("10.0.", i / 256, ".", i % 256, ":8080"));
      for (const char* leaf : {"cx_total", "cx_connect_fail", "rq_total", "rq_error"}) {
        h.counter(leaf);
      }
      h.gauge("cx_active");
      h.gauge("rq_active");
    }
  });
  constexpr int kStats = 10000;
  const double histogram_idle = measure(kStats, [](Store& s) {
    const Scope r = Scope(s).tagged("route", "route_name", "api");
    for (int i = 0; i < kStats; ++i) r.histogram(absl::StrCat("upstream_rq_time_", i));
  });
  const double counter = measure(kStats, [](Store& s) {
    const Scope r = Scope(s).tagged("cluster", "cluster_name", "backend");
    for (int i = 0; i < kStats; ++i) r.counter(absl::StrCat("upstream_rq_", i));
  });
  std::printf("bytes per per-host stat (6 per host, 4 workers): %.0f\n", host_stat);
  std::printf("bytes per counter in a shared scope (4 workers): %.0f\n", counter);
  std::printf("bytes per histogram before any thread records: %.0f (+%zu per recording thread)\n",
              histogram_idle, sizeof(uint64_t) * (Histogram::kBuckets + 1));
  EXPECT_LT(host_stat, 400);
  EXPECT_LT(counter, 320);
  EXPECT_LT(histogram_idle, 350);
}

TEST(StatsTest, CounterValuesCarryOverToAnotherStoreByFullName) {
  // A hot restart: the old store's counters by name, added to the new store's counters of the
  // same name (the successor's config may have dropped some, or added others).
  Store old_store(2);
  old_store.counter("http.web.downstream_rq_total").add(7);
  old_store.counter("cluster.gone.upstream_rq_total").add(3);
  old_store.counter("requests", {{"route", "a"}}).add(2);
  old_store.gauge("server.downstream_cx_active").set(5);
  auto values = old_store.counterValues();
  ASSERT_EQ(3u, values.size());  // counters only: gauges are the new process's own

  Store new_store(1);
  new_store.counter("http.web.downstream_rq_total").add(1);
  new_store.counter("requests", {{"route", "a"}});
  new_store.gauge("server.downstream_cx_active").set(1);
  EXPECT_EQ(2u, new_store.addToCounters(values));
  EXPECT_EQ(8, new_store.valueOf("http.web.downstream_rq_total"));
  EXPECT_EQ(2, new_store.valueOf("requests{route=\"a\"}"));
  EXPECT_EQ(1, new_store.valueOf("server.downstream_cx_active"));
  // A counter the new config does not have is not made.
  EXPECT_EQ(0, new_store.valueOf("cluster.gone.upstream_rq_total"));
  EXPECT_EQ(3u, new_store.size());
}

}  // namespace
}  // namespace sluice::stats
