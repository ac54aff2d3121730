// Circuit breakers: a limit shared by threads, its "open" gauge, and the overshoot bound.

#include "source/upstream/resource_manager.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

TEST(ResourceTest, CountsAgainstItsMaximumAndSaysWhenOpen) {
  stats::Store store;
  stats::Gauge& open = store.gauge("open");
  Resource r(2, &open);
  EXPECT_TRUE(r.canCreate());
  r.inc();
  EXPECT_TRUE(r.canCreate());
  EXPECT_EQ(0, open.value());
  r.inc();
  EXPECT_FALSE(r.canCreate());
  EXPECT_EQ(1, open.value());
  r.dec();
  EXPECT_TRUE(r.canCreate());
  EXPECT_EQ(0, open.value());
  r.dec();
  EXPECT_EQ(0u, r.count());
}

TEST(ResourceTest, ZeroRefusesEverythingAndIsOpenFromTheStart) {
  stats::Store store;
  stats::Gauge& open = store.gauge("open");
  Resource r(0, &open);
  EXPECT_FALSE(r.canCreate());
  EXPECT_EQ(1, open.value());
}

TEST(ResourceTest, UnlimitedNeverRefuses) {
  Resource r(Resource::kUnlimited);
  for (int i = 0; i < 1000; ++i) r.inc();
  EXPECT_TRUE(r.canCreate());
}

// Workers take and give back units at once: the count is exact afterwards, and while they race,
// each overshoots by at most one (check, then increment).
TEST(ResourceTest, SharedByThreads) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  constexpr uint64_t kMax = 8;
  Resource r(kMax);
  std::atomic<uint64_t> most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        if (!r.canCreate()) continue;
        r.inc();
        uint64_t now = r.count();
        uint64_t seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        r.dec();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(0u, r.count());
  EXPECT_LE(most.load(), kMax + kThreads - 1);
}

}  // namespace
}  // namespace sluice::upstream
