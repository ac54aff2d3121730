// Dispatcher: post() from other threads, ordering, deferred deletion, timers.

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/event/dispatcher.h"

namespace sluice::event {
namespace {

TEST(DispatcherTest, PostFromOtherThreadsRunsOnTheLoopInOrder) {
  auto d = CreateDispatcher("test");
  std::vector<int> seen;
  std::thread::id loop_thread;
  constexpr int kPerThread = 1000;
  std::atomic<int> done_threads{0};
  d->post([&] { loop_thread = std::this_thread::get_id(); });
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        d->post([&, t, i] {
          EXPECT_EQ(loop_thread, std::this_thread::get_id());
          EXPECT_TRUE(d->isThreadSafe());
          seen.push_back(t * kPerThread + i);
          if (seen.size() == 2 * kPerThread) d->exit();
        });
      }
      done_threads++;
    });
  }
  d->run();
  for (auto& t : threads) t.join();
  ASSERT_EQ(2u * kPerThread, seen.size());
  // Per producer, posts run in the order they were made.
  int last[2] = {-1, -1};
  for (int v : seen) {
    const int t = v / kPerThread;
    EXPECT_LT(last[t], v);
    last[t] = v;
  }
}

class Tracked : public DeferredDeletable {
 public:
  explicit Tracked(bool* destroyed) : destroyed_(destroyed) {}
  ~Tracked() override { *destroyed_ = true; }

 private:
  bool* destroyed_;
};

TEST(DispatcherTest, DeferredDeleteWaitsForTheCurrentCallback) {
  auto d = CreateDispatcher("test");
  bool destroyed = false;
  bool destroyed_inside_callback = true;
  auto timer = d->createTimer([&] {
    d->deferredDelete(std::make_unique<Tracked>(&destroyed));
    destroyed_inside_callback = destroyed;
    d->exit();
  });
  timer->enableTimer(std::chrono::milliseconds(0));
  d->run();
  EXPECT_FALSE(destroyed_inside_callback);
  EXPECT_TRUE(destroyed);
}

TEST(DispatcherTest, TimersFireOnceAndCanBeDisabled) {
  auto d = CreateDispatcher("test");
  int fired = 0;
  int disabled_fired = 0;
  auto disabled = d->createTimer([&] { ++disabled_fired; });
  disabled->enableTimer(std::chrono::milliseconds(1));
  EXPECT_TRUE(disabled->enabled());
  disabled->disableTimer();
  EXPECT_FALSE(disabled->enabled());
  auto t = d->createTimer([&] { ++fired; });
  t->enableTimer(std::chrono::milliseconds(5));
  auto stop = d->createTimer([&] { d->exit(); });
  stop->enableTimer(std::chrono::milliseconds(30));
  d->run();
  EXPECT_EQ(1, fired);
  EXPECT_EQ(0, disabled_fired);
}

TEST(DispatcherTest, ExitFromAnotherThread) {
  auto d = CreateDispatcher("test");
  std::thread t([&] { d->exit(); });
  d->run();  // Returns: the posted loopbreak reached the loop.
  t.join();
  SUCCEED();
}

class RecordingDeadline : public DeadlineCallbacks {
 public:
  RecordingDeadline(std::vector<int>& log, int id) : log_(log), id_(id) {}
  void onDeadline(Deadline&) override {
    log_.push_back(id_);
    if (on_fire) on_fire();
  }
  Deadline deadline;
  std::function<void()> on_fire;

 private:
  std::vector<int>& log_;
  int id_;
};

TEST(DeadlineTest, FireInExpiryOrderAcrossDurationsAndCancel) {
  auto d = CreateDispatcher("test");
  std::vector<int> log;
  RecordingDeadline a(log, 1), b(log, 2), c(log, 3), e(log, 4);
  d->armDeadline(a.deadline, std::chrono::milliseconds(30), a);
  d->armDeadline(b.deadline, std::chrono::milliseconds(5), b);
  d->armDeadline(c.deadline, std::chrono::milliseconds(30), c);
  d->armDeadline(e.deadline, std::chrono::milliseconds(5), e);
  EXPECT_TRUE(e.deadline.armed());
  e.deadline.cancel();
  EXPECT_FALSE(e.deadline.armed());
  c.on_fire = [&] { d->exit(); };
  d->run();
  EXPECT_EQ((std::vector<int>{2, 1, 3}), log);
  EXPECT_FALSE(a.deadline.armed());
}

TEST(DeadlineTest, RearmFromItsOwnCallbackAndDestroyWhileArmed) {
  auto d = CreateDispatcher("test");
  std::vector<int> log;
  RecordingDeadline a(log, 1);
  int fires = 0;
  a.on_fire = [&] {
    if (++fires < 3) {
      d->armDeadline(a.deadline, std::chrono::milliseconds(1), a);
    } else {
      d->exit();
    }
  };
  d->armDeadline(a.deadline, std::chrono::milliseconds(1), a);
  {
    // Destroyed armed: it must unlink itself, never fire.
    RecordingDeadline gone(log, 9);
    d->armDeadline(gone.deadline, std::chrono::milliseconds(1), gone);
  }
  d->run();
  EXPECT_EQ((std::vector<int>{1, 1, 1}), log);
}

}  // namespace
}  // namespace sluice::event
