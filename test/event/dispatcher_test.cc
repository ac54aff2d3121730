// Dispatcher: post() from other threads, ordering, deferred deletion, timers, embedded file
// events.

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
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

// One end of a socketpair with an embedded event that records what it was told.
struct Watched {
  int fds[2] = {-1, -1};
  EmbeddedFileEvent event;
  std::vector<uint32_t> ready;
  std::function<void(uint32_t)> on_ready;

  explicit Watched(Dispatcher& d) {
    EXPECT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds));
    event.assign(d, fds[0], &EmbeddedFileEvent::Trampoline<Watched, &Watched::onReady>, this);
  }
  ~Watched() {
    event.reset();
    close(fds[0]);
    close(fds[1]);
  }
  void onReady(uint32_t r) {
    ready.push_back(r);
    if (on_ready) on_ready(r);
  }
};

TEST(EmbeddedFileEventTest, DeliversReadAndWriteReadinessAsAsked) {
  auto d = CreateDispatcher("test");
  Watched w(*d);
  // Writable at once; nothing to read yet.
  w.event.setEnabled(kRead | kWrite);
  w.on_ready = [&](uint32_t r) {
    if (w.ready.size() == 1) {
      EXPECT_EQ(kWrite, r);
      w.event.setEnabled(kRead);
      ASSERT_EQ(1, write(w.fds[1], "x", 1));
    } else {
      EXPECT_EQ(kRead, r);
      w.event.setEnabled(0);
      d->exit();
    }
  };
  d->run();
  EXPECT_EQ((std::vector<uint32_t>{kWrite, kRead}), w.ready);
  EXPECT_EQ(0u, w.event.enabled());
}

TEST(EmbeddedFileEventTest, HangUpReportsTheInterestedKinds) {
  auto d = CreateDispatcher("test");
  Watched w(*d);
  w.event.setEnabled(kRead);
  close(w.fds[1]);
  w.fds[1] = -1;
  w.on_ready = [&](uint32_t) {
    w.event.setEnabled(0);
    d->exit();
  };
  d->run();
  ASSERT_EQ(1u, w.ready.size());
  EXPECT_EQ(kRead, w.ready[0]);
}

// A transport holding input no socket event will announce activates its event by hand: the
// readiness arrives from the loop, masked by the interest at delivery, merged when repeated, and
// never after a reset.
TEST(EmbeddedFileEventTest, ActivateDeliversFromTheLoopMaskedAndMerged) {
  auto d = CreateDispatcher("test");
  Watched w(*d);
  // Nothing is readable on the socket: only the activation can wake it.
  w.event.setEnabled(kRead);
  w.event.activate(kRead);
  w.event.activate(kRead | kWrite);  // merged into one delivery; kWrite is not asked for
  EXPECT_TRUE(w.ready.empty());      // never from inside activate()
  w.on_ready = [&](uint32_t) {
    w.event.setEnabled(0);
    d->exit();
  };
  d->run();
  ASSERT_EQ(1u, w.ready.size());
  EXPECT_EQ(kRead, w.ready[0]);
}

TEST(EmbeddedFileEventTest, ActivateIsDroppedAfterResetOrWithoutInterest) {
  auto d = CreateDispatcher("test");
  auto gone = std::make_unique<Watched>(*d);
  Watched quiet(*d);
  Watched marker(*d);
  gone->event.setEnabled(kRead);
  gone->event.activate(kRead);
  gone.reset();                 // destroyed before the loop runs: nothing may reach it
  quiet.event.activate(kRead);  // no interest: nothing to deliver
  marker.event.setEnabled(kRead);
  marker.event.activate(kRead);
  marker.on_ready = [&](uint32_t) {
    marker.event.setEnabled(0);
    d->exit();
  };
  d->run();
  EXPECT_EQ(1u, marker.ready.size());
  EXPECT_TRUE(quiet.ready.empty());
}

// Readiness collected in one batch is not delivered to an event reset (or destroyed) by an
// earlier callback of the same batch: the connection that owned it may be gone.
TEST(EmbeddedFileEventTest, NothingIsDeliveredAfterResetOrDestructionWithinABatch) {
  for (bool destroy : {false, true}) {
    SCOPED_TRACE(destroy ? "destroyed" : "reset");
    auto d = CreateDispatcher("test");
    std::unique_ptr<Watched> a = std::make_unique<Watched>(*d);
    std::unique_ptr<Watched> b = std::make_unique<Watched>(*d);
    int calls = 0;
    auto first = [&](Watched& self, std::unique_ptr<Watched>& other) {
      return [&](uint32_t) {
        ++calls;
        self.event.setEnabled(0);
        if (destroy) {
          other.reset();
        } else {
          other->event.reset();
        }
        d->exit();
      };
    };
    a->on_ready = first(*a, b);
    b->on_ready = first(*b, a);
    // Both writable before the loop starts: one epoll_wait returns both.
    a->event.setEnabled(kWrite);
    b->event.setEnabled(kWrite);
    d->run();
    EXPECT_EQ(1, calls);
  }
}

TEST(EmbeddedFileEventTest, ReassignAfterResetAndDestroyUnassigned) {
  auto d = CreateDispatcher("test");
  Watched w(*d);
  w.event.setEnabled(kWrite);
  w.event.reset();
  EXPECT_FALSE(w.event.assigned());
  w.event.setEnabled(kWrite);  // ignored while unassigned
  EXPECT_EQ(0u, w.event.enabled());
  w.event.assign(*d, w.fds[0], &EmbeddedFileEvent::Trampoline<Watched, &Watched::onReady>, &w);
  w.on_ready = [&](uint32_t) {
    w.event.setEnabled(0);
    d->exit();
  };
  w.event.setEnabled(kWrite);
  d->run();
  EXPECT_EQ((std::vector<uint32_t>{kWrite}), w.ready);
  EmbeddedFileEvent never_assigned;  // destroying it is a no-op
}

// What a callback defers runs once it has returned (not before, not outside a callback), and a
// withdrawn entry never runs: the write gathering of connections relies on it.
TEST(EmbeddedFileEventTest, DeferredToTheEndOfTheCallback) {
  auto d = CreateDispatcher("test");
  Watched w(*d);
  std::vector<std::string> order;
  EXPECT_FALSE(w.event.deferToEndOfCallback([](void*) {}, &w));  // not inside a callback
  static std::vector<std::string>* log;
  log = &order;
  int kept = 1, withdrawn = 2;
  w.on_ready = [&](uint32_t) {
    order.push_back("callback");
    EXPECT_TRUE(w.event.deferToEndOfCallback(
        [](void* p) { log->push_back("deferred " + std::to_string(*static_cast<int*>(p))); },
        &kept));
    EXPECT_TRUE(
        w.event.deferToEndOfCallback([](void*) { log->push_back("withdrawn ran"); }, &withdrawn));
    w.event.cancelDeferred(&withdrawn);
    order.push_back("callback end");
    w.event.setEnabled(0);
    d->exit();
  };
  w.event.setEnabled(kWrite);
  d->run();
  EXPECT_EQ((std::vector<std::string>{"callback", "callback end", "deferred 1"}), order);
}

}  // namespace
}  // namespace sluice::event
