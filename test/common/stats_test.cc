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

}  // namespace
}  // namespace sluice::stats
