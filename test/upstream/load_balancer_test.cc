// Maglev tables: even spread by weight, little disruption when a host goes; the stable hash.

#include "source/upstream/load_balancer.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

std::map<size_t, uint64_t> Shares(const MaglevTable& t) {
  std::map<size_t, uint64_t> counts;
  for (uint64_t h = 0; h < MaglevTable::kSize; ++h) ++counts[t.lookup(h)];
  return counts;
}

TEST(MaglevTest, EntriesFollowTheWeights) {
  const std::vector<std::string> hosts = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
  auto even = Shares(MaglevTable(hosts, {1, 1, 1}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(1.0 / 3, static_cast<double>(even[i]) / MaglevTable::kSize, 0.01) << i;
  }
  auto weighted = Shares(MaglevTable(hosts, {2, 1, 1}));
  EXPECT_NEAR(0.5, static_cast<double>(weighted[0]) / MaglevTable::kSize, 0.01);
  EXPECT_NEAR(0.25, static_cast<double>(weighted[1]) / MaglevTable::kSize, 0.01);
}

TEST(MaglevTest, RemovingAHostMovesLittleElse) {
  const std::vector<std::string> four = {"a:1", "b:1", "c:1", "d:1"};
  const std::vector<std::string> three = {"a:1", "b:1", "c:1"};
  MaglevTable before(four, {1, 1, 1, 1});
  MaglevTable after(three, {1, 1, 1});
  uint64_t kept = 0, surviving = 0;
  for (uint64_t h = 0; h < MaglevTable::kSize; ++h) {
    if (before.lookup(h) == 3) continue;  // d's keys must move
    ++surviving;
    if (before.lookup(h) == after.lookup(h)) ++kept;
  }
  // Maglev trades a little disruption for evenness; the paper reports a few percent.
  EXPECT_GT(static_cast<double>(kept) / surviving, 0.9);
}

TEST(StableHashTest, SameBytesSameHashDifferentSeedsDiffer) {
  EXPECT_EQ(StableHash("user-1"), StableHash("user-1"));
  EXPECT_NE(StableHash("user-1"), StableHash("user-2"));
  EXPECT_NE(StableHash("user-1", 1), StableHash("user-1", 2));
}

}  // namespace
}  // namespace sluice::upstream
