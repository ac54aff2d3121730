// The idle-connection LRU list: order, removal, refusals, and one order over the lists that share
// a clock (a worker's listeners).

#include "source/network/idle_connection_list.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::network {
namespace {

class TestFilter : public ReclaimableFilter {
 public:
  TestFilter(std::string name, std::vector<std::string>& closed) : name_(name), closed_(closed) {}
  void initializeReadFilterCallbacks(ReadFilterCallbacks&) override {}
  FilterStatus onData(Buffer&, bool) override { return FilterStatus::kContinue; }
  bool reclaim() override {
    ++asked;
    if (refuse) return false;
    closed_.push_back(name_);
    return true;
  }
  bool refuse = false;
  int asked = 0;

 private:
  std::string name_;
  std::vector<std::string>& closed_;
};

TEST(IdleConnectionListTest, ReclaimsLeastRecentlyIdleFirst) {
  uint64_t clock = 0;
  IdleConnectionList list(clock);
  std::vector<std::string> closed;
  TestFilter a("a", closed), b("b", closed), c("c", closed);
  EXPECT_FALSE(list.reclaimOldest());
  list.add(a);
  list.add(b);
  list.add(c);
  EXPECT_EQ(3u, list.size());
  EXPECT_TRUE(a.idleListed());
  // `a` is used again: it goes to the most recent end.
  list.remove(a);
  EXPECT_FALSE(a.idleListed());
  list.add(a);
  EXPECT_TRUE(list.reclaimOldest());
  EXPECT_TRUE(list.reclaimOldest());
  EXPECT_EQ((std::vector<std::string>{"b", "c"}), closed);
  EXPECT_FALSE(b.idleListed());
  EXPECT_EQ(1u, list.size());
  list.remove(b);  // not listed: no-op
  EXPECT_EQ(1u, list.size());
  list.remove(a);
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(0u, list.oldestOrder());
  EXPECT_FALSE(list.reclaimOldest());
}

TEST(IdleConnectionListTest, RemovesFromTheMiddleAndEnds) {
  uint64_t clock = 0;
  IdleConnectionList list(clock);
  std::vector<std::string> closed;
  TestFilter a("a", closed), b("b", closed), c("c", closed), d("d", closed);
  for (auto* f : {&a, &b, &c, &d}) list.add(*f);
  list.remove(b);  // middle
  list.remove(d);  // tail
  list.add(b);
  list.remove(a);  // head
  while (list.reclaimOldest()) {
  }
  EXPECT_EQ((std::vector<std::string>{"c", "b"}), closed);
  EXPECT_TRUE(list.empty());
}

TEST(IdleConnectionListTest, AnEntryThatCannotGoBecomesTheMostRecent) {
  uint64_t clock = 0;
  IdleConnectionList list(clock);
  std::vector<std::string> closed;
  TestFilter a("a", closed), b("b", closed);
  list.add(a);
  list.add(b);
  a.refuse = true;
  EXPECT_FALSE(list.reclaimOldest());
  EXPECT_EQ(1, a.asked);
  EXPECT_TRUE(a.idleListed());
  EXPECT_EQ(2u, list.size());
  // `b` is the least recently active now.
  EXPECT_TRUE(list.reclaimOldest());
  EXPECT_EQ((std::vector<std::string>{"b"}), closed);
  list.remove(a);
}

TEST(IdleConnectionListTest, ListsSharingAClockAreOrderedTogether) {
  uint64_t clock = 0;
  IdleConnectionList first(clock), second(clock);
  std::vector<std::string> closed;
  TestFilter a("a", closed), b("b", closed), c("c", closed);
  second.add(a);
  first.add(b);
  second.add(c);
  // The least recently idle over both lists heads the second one.
  EXPECT_LT(second.oldestOrder(), first.oldestOrder());
  second.remove(a);
  EXPECT_LT(first.oldestOrder(), second.oldestOrder());
  first.remove(b);
  second.remove(c);
}

TEST(IdleConnectionListTest, DestroyedListLeavesItsEntriesUnlisted) {
  uint64_t clock = 0;
  std::vector<std::string> closed;
  TestFilter a("a", closed);
  {
    IdleConnectionList list(clock);
    list.add(a);
  }
  EXPECT_FALSE(a.idleListed());
}

}  // namespace
}  // namespace sluice::network
