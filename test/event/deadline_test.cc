// Deadlines: the per-duration FIFOs (armDeadline) and the heap (armVariableDeadline), what
// callbacks may do to other deadlines of the same pass, and that FIFO lists are retired.
//
// No assertion here is about elapsed time. Where an exact order is expected, the deadlines are
// armed from inside one batch of I/O callbacks (BatchRunner): there the dispatcher's now() is the
// batch's time, the same for every arming, so a deadline's expiry is that time plus its delay and
// the order they must fire in follows from the delays and the arming order alone.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"
#include "source/event/dispatcher_impl.h"

namespace sluice::event {
namespace {

using std::chrono::milliseconds;

// Logs its id when its deadline fires, then runs on_fire (if any).
class Recorder : public DeadlineCallbacks {
 public:
  Recorder(std::vector<int>& log, int id) : log_(log), id_(id) {}
  void onDeadline(Deadline& d) override {
    EXPECT_EQ(&d, &deadline);
    EXPECT_FALSE(deadline.armed());  // popped before its callback
    log_.push_back(id_);
    if (on_fire) on_fire();
  }
  int id() const { return id_; }

  Deadline deadline;
  std::function<void()> on_fire;

 private:
  std::vector<int>& log_;
  int id_;
};

// Runs a function from inside an embedded file event's callback, i.e. within one I/O batch.
class BatchRunner {
 public:
  explicit BatchRunner(Dispatcher& d) {
    EXPECT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_));
    event_.assign(d, fds_[0], &EmbeddedFileEvent::Trampoline<BatchRunner, &BatchRunner::onReady>,
                  this);
  }
  ~BatchRunner() {
    event_.reset();
    close(fds_[0]);
    close(fds_[1]);
  }
  // `fn` runs once the loop runs (the socket is writable at once).
  void runInBatch(std::function<void()> fn) {
    fn_ = std::move(fn);
    event_.setEnabled(kWrite);
  }

 private:
  void onReady(uint32_t) {
    event_.setEnabled(0);
    auto fn = std::move(fn_);
    fn();
  }
  int fds_[2] = {-1, -1};
  EmbeddedFileEvent event_;
  std::function<void()> fn_;
};

// Runs the loop until `d.exit()`; a guard stops a test whose deadlines never all fire (which then
// fails on what it counted) rather than let it hang. The guard is no timing assertion.
void RunWithGuard(Dispatcher& d) {
  auto guard = d.createTimer([&] {
    ADD_FAILURE() << "guard fired: the expected deadlines did not all fire";
    d.exit();
  });
  guard->enableTimer(milliseconds(10000));
  d.run();
}

enum class Kind { kFifo, kHeap };

void Arm(Dispatcher& d, Kind kind, Recorder& r, milliseconds delay) {
  if (kind == Kind::kFifo) {
    d.armDeadline(r.deadline, delay, r);
  } else {
    d.armVariableDeadline(r.deadline, delay, r);
  }
}

TEST(DeadlineTest, SizeStaysFiveWords) {
  // Embedded in every connection and stream: the heap's fields share the FIFO links' space.
  EXPECT_LE(sizeof(Deadline), 40u);  // as before the heap existed
}

TEST(DeadlineTest, HeapFiresRandomDurationsInExpiryThenArmingOrder) {
  auto d = CreateDispatcher("test");
  std::vector<int> log;
  constexpr int kCount = 1000;
  std::mt19937 rng(15);
  std::vector<std::unique_ptr<Recorder>> rs;
  std::vector<int> delays;
  for (int i = 0; i < kCount; ++i) {
    rs.push_back(std::make_unique<Recorder>(log, i));
    delays.push_back(static_cast<int>(rng() % 20));  // many ties among 1000
    rs.back()->on_fire = [&] {
      if (log.size() == kCount) d->exit();
    };
  }
  BatchRunner batch(*d);
  batch.runInBatch([&] {
    for (int i = 0; i < kCount; ++i)
      d->armVariableDeadline(rs[i]->deadline, milliseconds(delays[i]), *rs[i]);
  });
  RunWithGuard(*d);
  std::vector<int> expected(kCount);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return delays[a] < delays[b]; });
  EXPECT_EQ(expected, log);
}

// Equal expiries fire in the order of the latest arming, in both kinds; a re-arm moves a deadline
// behind the others of its (new) expiry.
TEST(DeadlineTest, EqualExpiriesFireInArmingOrder) {
  for (Kind kind : {Kind::kFifo, Kind::kHeap}) {
    SCOPED_TRACE(kind == Kind::kFifo ? "fifo" : "heap");
    auto d = CreateDispatcher("test");
    std::vector<int> log;
    constexpr int kCount = 50;
    std::vector<std::unique_ptr<Recorder>> rs;
    for (int i = 0; i < kCount; ++i) rs.push_back(std::make_unique<Recorder>(log, i));
    rs.back()->on_fire = [&] { d->exit(); };
    // Armed in a shuffled order; then the even ones re-armed (moved to the back, in order).
    std::vector<int> order(kCount - 1);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    std::vector<int> expected;
    for (int i : order) {
      if (i % 2 == 1) expected.push_back(i);
    }
    for (int i = 0; i < kCount - 1; i += 2) expected.push_back(i);
    expected.push_back(kCount - 1);
    BatchRunner batch(*d);
    batch.runInBatch([&] {
      for (int i : order) Arm(*d, kind, *rs[i], milliseconds(2));
      for (int i = 0; i < kCount - 1; i += 2) Arm(*d, kind, *rs[i], milliseconds(2));
      Arm(*d, kind, *rs.back(), milliseconds(2));  // last: it stops the loop
    });
    RunWithGuard(*d);
    EXPECT_EQ(expected, log);
  }
}

// The first deadline of a pass cancels one due in the same pass and destroys another; the rest of
// the pass is unharmed. What it arms for "now" fires after the pass's remaining due deadlines.
TEST(DeadlineTest, CallbackCancelsAndDestroysOthersDueInTheSamePass) {
  for (Kind kind : {Kind::kFifo, Kind::kHeap}) {
    SCOPED_TRACE(kind == Kind::kFifo ? "fifo" : "heap");
    auto d = CreateDispatcher("test");
    std::vector<int> log;
    Recorder a(log, 1), b(log, 2), e(log, 5), later(log, 6);
    auto c = std::make_unique<Recorder>(log, 3);
    a.on_fire = [&] {
      EXPECT_TRUE(b.deadline.armed());
      b.deadline.cancel();
      EXPECT_FALSE(b.deadline.armed());
      c.reset();  // destroyed while armed and due
      Arm(*d, kind, later, milliseconds(0));
    };
    later.on_fire = [&] { d->exit(); };
    BatchRunner batch(*d);
    batch.runInBatch([&] {
      // Equal expiries: all four are due in the same pass.
      Arm(*d, kind, a, milliseconds(1));
      Arm(*d, kind, b, milliseconds(1));
      Arm(*d, kind, *c, milliseconds(1));
      Arm(*d, kind, e, milliseconds(1));
    });
    RunWithGuard(*d);
    EXPECT_EQ((std::vector<int>{1, 5, 6}), log);
  }
}

TEST(DeadlineTest, RearmFromItsOwnCallback) {
  for (Kind kind : {Kind::kFifo, Kind::kHeap}) {
    SCOPED_TRACE(kind == Kind::kFifo ? "fifo" : "heap");
    auto d = CreateDispatcher("test");
    std::vector<int> log;
    Recorder a(log, 1), other(log, 2);
    int fires = 0;
    a.on_fire = [&] {
      ++fires;
      if (fires < 20) {
        // Zero delays included: each fires on a later pass, so this ends.
        Arm(*d, kind, a, milliseconds(fires % 2));
        EXPECT_TRUE(a.deadline.armed());
      } else {
        d->exit();
      }
    };
    Arm(*d, kind, a, milliseconds(0));
    // An unrelated deadline, far off, is not disturbed by the churn in front of it.
    Arm(*d, kind, other, milliseconds(60000));
    RunWithGuard(*d);
    EXPECT_EQ(20, fires);
    EXPECT_EQ(std::vector<int>(20, 1), log);
    EXPECT_TRUE(other.deadline.armed());
  }
}

TEST(DeadlineTest, DestroyingArmedDeadlinesUnlinksThem) {
  for (Kind kind : {Kind::kFifo, Kind::kHeap}) {
    SCOPED_TRACE(kind == Kind::kFifo ? "fifo" : "heap");
    auto d = CreateDispatcher("test");
    std::vector<int> log;
    constexpr int kCount = 30;
    std::vector<std::unique_ptr<Recorder>> rs;
    std::vector<int> delays;
    for (int i = 0; i < kCount; ++i) {
      rs.push_back(std::make_unique<Recorder>(log, i));
      // The heap's get three expiries, so that removals sift both ways.
      delays.push_back(kind == Kind::kHeap ? 1 + (kCount - i) % 3 : 1);
    }
    Recorder stop(log, -1);
    stop.on_fire = [&] { d->exit(); };
    BatchRunner batch(*d);
    batch.runInBatch([&] {
      for (int i = 0; i < kCount; ++i) Arm(*d, kind, *rs[i], milliseconds(delays[i]));
      Arm(*d, kind, stop, milliseconds(10));
      // The first, the last and others between, before the loop gets to them.
      for (int i = 0; i < kCount; i += 3) rs[i].reset();
      rs[kCount - 1].reset();
    });
    RunWithGuard(*d);
    // Every survivor fired once, in order, never one destroyed (ASan would also catch a
    // dangling link).
    std::vector<int> expected;
    for (int i = 0; i < kCount - 1; ++i) {
      if (i % 3 != 0) expected.push_back(i);
    }
    std::stable_sort(expected.begin(), expected.end(),
                     [&](int a, int b) { return delays[a] < delays[b]; });
    expected.push_back(-1);
    EXPECT_EQ(expected, log);
  }
}

// A Deadline outliving its dispatcher is disarmed by it, and its destruction then touches nothing.
TEST(DeadlineTest, DispatcherDestroyedWithDeadlinesArmed) {
  std::vector<int> log;
  Recorder fifo(log, 1), heap(log, 2), heap2(log, 3);
  {
    auto d = CreateDispatcher("test");
    d->armDeadline(fifo.deadline, milliseconds(1000), fifo);
    d->armVariableDeadline(heap.deadline, milliseconds(1000), heap);
    d->armVariableDeadline(heap2.deadline, milliseconds(5), heap2);
    EXPECT_TRUE(fifo.deadline.armed());
    EXPECT_TRUE(heap.deadline.armed());
  }
  EXPECT_FALSE(fifo.deadline.armed());
  EXPECT_FALSE(heap.deadline.armed());
  EXPECT_FALSE(heap2.deadline.armed());
  fifo.deadline.cancel();  // harmless
  EXPECT_TRUE(log.empty());
}

// Re-arming with the other call moves a Deadline between a FIFO and the heap; its FIFO neighbours
// and the heap stay intact, and it fires once per arming.
TEST(DeadlineTest, SwitchBetweenFifoAndHeap) {
  auto d = CreateDispatcher("test");
  std::vector<int> log;
  Recorder x(log, 1), y(log, 2), z(log, 3);
  auto stop_when_done = [&] {
    if (log.size() == 5) d->exit();  // y three times, x and z once
  };
  x.on_fire = stop_when_done;
  z.on_fire = stop_when_done;
  int y_fires = 0;
  y.on_fire = [&] {
    ++y_fires;
    if (y_fires == 1) {
      // Heap -> FIFO, from its own callback.
      d->armDeadline(y.deadline, milliseconds(1), y);
    } else if (y_fires == 2) {
      // FIFO -> heap -> FIFO -> cancelled: nothing left armed anywhere; then the heap again.
      d->armVariableDeadline(y.deadline, milliseconds(60000), y);
      d->armDeadline(y.deadline, milliseconds(60000), y);
      EXPECT_TRUE(y.deadline.armed());
      y.deadline.cancel();
      EXPECT_FALSE(y.deadline.armed());
      d->armVariableDeadline(y.deadline, milliseconds(0), y);
    }
    stop_when_done();
  };
  BatchRunner batch(*d);
  batch.runInBatch([&] {
    d->armDeadline(x.deadline, milliseconds(20), x);
    d->armDeadline(y.deadline, milliseconds(20), y);
    d->armDeadline(z.deadline, milliseconds(20), z);
    // y leaves the middle of the 20 ms FIFO for the heap, due earlier.
    d->armVariableDeadline(y.deadline, milliseconds(1), y);
  });
  RunWithGuard(*d);
  EXPECT_EQ(3, y_fires);
  ASSERT_EQ(5u, log.size());
  EXPECT_EQ(2, log[0]);  // the heap's 1 ms before the list's 20 ms
  // Whether y's later fires come before x and z depends on the machine's pace; x before z not.
  std::vector<int> xz;
  for (int id : log) {
    if (id != 2) xz.push_back(id);
  }
  EXPECT_EQ((std::vector<int>{1, 3}), xz);
  EXPECT_FALSE(y.deadline.armed());
}

// Lists follow the durations in use: after each round of new durations has drained (fired or
// been cancelled), no more than the spare lists remain, however many durations were ever used.
TEST(DeadlineTest, EmptyListsAreRetired) {
  InitializeLibevent();
  DispatcherImpl d("test");
  std::vector<int> log;
  constexpr int kRounds = 4;
  constexpr int kPerRound = 8;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    std::vector<std::unique_ptr<Recorder>> rs;
    for (int k = 0; k < kPerRound; ++k) {
      rs.push_back(std::make_unique<Recorder>(log, k));
      // Durations never used before: round * kPerRound + k + 1 ms.
      d.armDeadline(rs.back()->deadline, milliseconds(round * kPerRound + k + 1), *rs.back());
    }
    EXPECT_GE(d.deadlineListCountForTest(), static_cast<size_t>(kPerRound));
    // Half are cancelled: their lists empty without a fire, the timer still set.
    for (int k = 0; k < kPerRound; k += 2) rs[k]->deadline.cancel();
    // Heap, well after every list above: libevent runs expired timers in expiry order, so each
    // list's timer has fired (and retired the list) when this one stops the loop.
    Recorder stop(log, -1);
    stop.on_fire = [&] { d.exit(); };
    d.armVariableDeadline(stop.deadline, milliseconds((round + 1) * kPerRound + 20), stop);
    RunWithGuard(d);
    EXPECT_LE(d.deadlineListCountForTest(), DispatcherImpl::kMaxSpareDeadlineLists);
  }
  // A duration armed and drained over and over (the zero-delay resume) reuses a spare list.
  Recorder again(log, 100);
  int fires = 0;
  again.on_fire = [&] {
    EXPECT_LE(d.deadlineListCountForTest(), DispatcherImpl::kMaxSpareDeadlineLists);
    if (++fires < 10) {
      d.armDeadline(again.deadline, milliseconds(fires), again);
    } else {
      d.exit();
    }
  };
  d.armDeadline(again.deadline, milliseconds(0), again);
  RunWithGuard(d);
  EXPECT_EQ(10, fires);
  EXPECT_LE(d.deadlineListCountForTest(), DispatcherImpl::kMaxSpareDeadlineLists);
}

// 10,000 heap deadlines: arms, re-arms (moves) and cancels in random order before the loop runs,
// then cancels from inside callbacks; the order of what fires is checked against a model.
TEST(DeadlineTest, TenThousandHeapDeadlinesWithRandomCancels) {
  auto d = CreateDispatcher("test");
  std::vector<int> log;
  constexpr int kCount = 10000;
  constexpr int kMaxDelay = 16;
  std::vector<std::unique_ptr<Recorder>> rs;
  for (int i = 0; i < kCount; ++i) rs.push_back(std::make_unique<Recorder>(log, i));
  // The model: per deadline, its delay and the rank of its latest arming; cancelled or not.
  std::vector<int> delay(kCount), rank(kCount);
  std::vector<bool> cancelled(kCount, false);
  std::mt19937 setup_rng(42);
  // The callbacks draw from their own generator, and the model replays the same draws.
  std::mt19937 fire_rng(4242);
  std::vector<int> expected;
  int expected_fires = 0;
  int fired = 0;
  for (auto& r : rs) {
    r->on_fire = [&] {
      ++fired;
      if (fire_rng() % 4 == 0) rs[fire_rng() % kCount]->deadline.cancel();
      if (fired == expected_fires) d->exit();
    };
  }
  BatchRunner batch(*d);
  batch.runInBatch([&] {
    int next_rank = 0;
    auto arm = [&](int i) {
      delay[i] = static_cast<int>(setup_rng() % kMaxDelay);
      rank[i] = next_rank++;
      cancelled[i] = false;
      d->armVariableDeadline(rs[i]->deadline, milliseconds(delay[i]), *rs[i]);
    };
    for (int i = 0; i < kCount; ++i) arm(i);
    for (int step = 0; step < kCount; ++step) {
      const int i = static_cast<int>(setup_rng() % kCount);
      switch (setup_rng() % 3) {
        case 0:
          rs[i]->deadline.cancel();
          cancelled[i] = true;
          break;
        case 1:
          arm(i);  // armed or not: (re-)armed
          break;
        default:
          break;
      }
    }
    // The model's run: survivors in (delay, rank) order, each maybe cancelling one not yet fired.
    std::vector<int> order;
    for (int i = 0; i < kCount; ++i) {
      if (!cancelled[i]) order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return delay[a] != delay[b] ? delay[a] < delay[b] : rank[a] < rank[b];
    });
    std::mt19937 model_rng(4242);
    std::vector<bool> gone(kCount, false);
    for (int i : order) {
      if (gone[i]) continue;
      gone[i] = true;  // fired
      expected.push_back(i);
      if (model_rng() % 4 == 0) gone[model_rng() % kCount] = true;
    }
    expected_fires = static_cast<int>(expected.size());
    ASSERT_GT(expected_fires, 0);
  });
  RunWithGuard(*d);
  EXPECT_EQ(expected, log);
  EXPECT_GT(log.size(), static_cast<size_t>(kCount / 4));
}

}  // namespace
}  // namespace sluice::event
