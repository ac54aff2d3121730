// Outlier detection: what each result counts for, the thresholds, the one-post guard when many
// workers cross together, max_ejection_percent, the ejection time growing and coming down,
// bringing hosts back (a test clock and the main dispatcher driven by hand), and the host sets
// the workers get.

#include "source/upstream/outlier_detection.h"

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "source/http/client_codecs.h"
#include "source/upstream/cluster.h"

namespace sluice::upstream {
namespace {

using std::chrono::milliseconds;

// A dispatcher that counts what is posted to it and otherwise is the real one: the test sees
// how many crossings the workers posted, not only what the main thread made of them.
class CountingDispatcher : public event::Dispatcher {
 public:
  explicit CountingDispatcher(event::DispatcherPtr inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  event::FileEventPtr createFileEvent(int fd, event::FileReadyCb cb, uint32_t events) override {
    return inner_->createFileEvent(fd, std::move(cb), events);
  }
  event::TimerPtr createTimer(std::function<void()> cb) override {
    return inner_->createTimer(std::move(cb));
  }
  void armDeadline(event::Deadline& d, milliseconds delay,
                   event::DeadlineCallbacks& callbacks) override {
    inner_->armDeadline(d, delay, callbacks);
  }
  void armVariableDeadline(event::Deadline& d, milliseconds delay,
                           event::DeadlineCallbacks& callbacks) override {
    inner_->armVariableDeadline(d, delay, callbacks);
  }
  event::SignalEventPtr listenForSignal(int signum, std::function<void()> cb) override {
    return inner_->listenForSignal(signum, std::move(cb));
  }
  void post(std::function<void()> cb) override {
    posted.fetch_add(1);
    inner_->post(std::move(cb));
  }
  void deferredDelete(event::DeferredDeletablePtr obj) override {
    inner_->deferredDelete(std::move(obj));
  }
  void run() override { inner_->run(); }
  void exit() override { inner_->exit(); }
  bool isThreadSafe() const override { return inner_->isThreadSafe(); }
  std::chrono::steady_clock::time_point now() override { return inner_->now(); }

  // Runs what was posted so far (the main thread's turn), then returns.
  void drain() {
    inner_->post([this] { inner_->exit(); });
    inner_->run();
  }

  std::atomic<int> posted{0};

 private:
  event::DispatcherPtr inner_;
};

class OutlierDetectionTest : public ::testing::Test {
 protected:
  // A STATIC cluster "svc" of `n` hosts 10.0.0.1.. with outlier detection `settings`, on the
  // test clock; the host sets the workers would get are kept in `posted_sets_`.
  void build(size_t n, const OutlierDetectionSettings& settings) {
    config::v1::Bootstrap bootstrap;
    auto* c = bootstrap.add_clusters();
    c->set_name("svc");
    for (size_t i = 0; i < n; ++i) {
      auto* ep = c->add_endpoints()->mutable_address();
      ep->set_address("10.0.0." + std::to_string(i + 1));
      ep->set_port(80);
    }
    manager_ =
        std::move(*ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
    cluster_ = manager_->clusters().front().get();
    cluster_->setOutlierDetection(
        settings,
        OutlierDetectionStats::Create(stats::Scope(store_)
                                          .tagged("cluster", "cluster_name", "svc")
                                          .child("outlier_detection")),
        [this] { return std::chrono::steady_clock::time_point(milliseconds(now_ms_.load())); });
    cluster_->setHostSetPublisher(
        [this](const Cluster&, HostSetPtr hosts) { posted_sets_.push_back(std::move(hosts)); });
    detector().start(main_);
  }

  OutlierDetector& detector() { return *cluster_->outlierDetector(); }
  const Host& host(size_t i) { return *cluster_->hosts()->host(i); }
  OutlierMonitor& monitor(size_t i) { return *host(i).outlier(); }
  void report(size_t i, HostResult r, uint16_t status = 0, int times = 1) {
    for (int k = 0; k < times; ++k) ReportHostResult(host(i), r, status);
  }
  bool ejected(size_t i) { return host(i).hasHealthFlag(Host::kFailedOutlierCheck); }
  int64_t stat(const std::string& name) {
    return store_.valueOf("cluster.svc.outlier_detection." + name);
  }
  void advance(milliseconds d) { now_ms_ += d.count(); }
  // The addresses of the last host set posted to the workers.
  std::set<std::string> lastPosted() {
    std::set<std::string> out;
    if (posted_sets_.empty()) return out;
    for (const auto& h : posted_sets_.back()->hosts()) out.insert(h->addressString());
    return out;
  }

  stats::Store store_;
  CountingDispatcher main_{event::CreateDispatcher("main")};
  std::atomic<int64_t> now_ms_{1'000'000};
  std::unique_ptr<ClusterManager> manager_;
  Cluster* cluster_ = nullptr;
  std::vector<HostSetPtr> posted_sets_;
};

OutlierDetectionSettings Settings(uint32_t consecutive_5xx, uint32_t gateway = 0,
                                  uint32_t max_fails = 0) {
  OutlierDetectionSettings s;
  s.consecutive_5xx = consecutive_5xx;
  s.consecutive_gateway_failure = gateway;
  s.max_fails = max_fails;
  s.max_ejection_percent = 100;
  s.interval = milliseconds(1000);
  s.base_ejection_time = milliseconds(1000);
  s.max_ejection_time = milliseconds(3000);
  s.fail_timeout = milliseconds(10000);
  return s;
}

TEST(OutlierDetectionSettingsTest, DefaultsAndConfig) {
  config::v1::OutlierDetection config;
  OutlierDetectionSettings d = OutlierDetectionSettings::FromConfig(config);
  EXPECT_EQ(5u, d.consecutive_5xx);
  EXPECT_EQ(0u, d.consecutive_gateway_failure);
  EXPECT_EQ(milliseconds(10000), d.interval);
  EXPECT_EQ(milliseconds(30000), d.base_ejection_time);
  EXPECT_EQ(milliseconds(300000), d.max_ejection_time);
  EXPECT_EQ(10u, d.max_ejection_percent);
  EXPECT_EQ(0u, d.max_fails);
  EXPECT_EQ(milliseconds(10000), d.fail_timeout);

  config.mutable_consecutive_5xx()->set_value(0);  // set to 0: off, not the default
  config.mutable_consecutive_gateway_failure()->set_value(3);
  config.mutable_base_ejection_time()->set_nanos(200'000'000);
  config.mutable_max_fails()->set_value(4);
  config.mutable_fail_timeout()->set_seconds(2);
  OutlierDetectionSettings s = OutlierDetectionSettings::FromConfig(config);
  EXPECT_EQ(0u, s.consecutive_5xx);
  EXPECT_EQ(3u, s.consecutive_gateway_failure);
  EXPECT_EQ(milliseconds(200), s.base_ejection_time);
  EXPECT_EQ(4u, s.max_fails);
  EXPECT_EQ(milliseconds(2000), s.fail_timeout);
}

TEST(OutlierDetectionConfigTest, ClustersWithoutItHaveNoMonitorAndWithItStats) {
  config::v1::Bootstrap bootstrap;
  for (const char* name : {"plain", "watched"}) {
    auto* c = bootstrap.add_clusters();
    c->set_name(name);
    auto* ep = c->add_endpoints()->mutable_address();
    ep->set_address("10.0.0.1");
    ep->set_port(80);
  }
  bootstrap.mutable_clusters(1)->mutable_outlier_detection()->mutable_consecutive_5xx()->set_value(
      2);
  stats::Store store;
  auto manager = ClusterManager::create(bootstrap, store, &http::CreateClientCodecFactory);
  ASSERT_TRUE(manager.ok()) << manager.status();
  const Cluster& plain = *(*manager)->get("plain");
  const Cluster& watched = *(*manager)->get("watched");
  EXPECT_EQ(nullptr, plain.outlierDetector());
  EXPECT_EQ(nullptr, plain.hosts()->host(0)->outlier());
  // Reporting for a cluster without outlier detection does nothing (and is allowed).
  ReportHostResult(*plain.hosts()->host(0), HostResult::kConnectFailure);
  ASSERT_NE(nullptr, watched.outlierDetector());
  EXPECT_EQ(2u, watched.outlierDetector()->settings().consecutive_5xx);
  EXPECT_NE(nullptr, watched.hosts()->host(0)->outlier());
  const std::string text = store.dumpText();
  for (const char* s :
       {"ejections_active", "ejections_total", "ejections_consecutive_5xx",
        "ejections_consecutive_gateway_failure", "ejections_max_fails", "ejections_overflow"}) {
    EXPECT_NE(std::string::npos, text.find(std::string("cluster.watched.outlier_detection.") + s))
        << s;
    EXPECT_EQ(std::string::npos, text.find(std::string("cluster.plain.outlier_detection.") + s));
  }
}

TEST_F(OutlierDetectionTest, Consecutive5xxEjectsAndASuccessResetsTheCount) {
  build(3, Settings(3));
  report(0, HostResult::kHttp5xx, 503, 2);
  report(0, HostResult::kSuccess, 200);
  EXPECT_EQ(0u, monitor(0).consecutive5xx());
  report(0, HostResult::kHttp5xx, 500, 2);
  EXPECT_FALSE(monitor(0).ejectionPending());
  EXPECT_EQ(0, main_.posted.load());
  report(0, HostResult::kHttp5xx, 501);
  EXPECT_TRUE(monitor(0).ejectionPending());
  EXPECT_FALSE(ejected(0));  // the main thread decides
  main_.drain();
  EXPECT_TRUE(ejected(0));
  EXPECT_FALSE(monitor(0).ejectionPending());
  EXPECT_EQ(0u, monitor(0).consecutive5xx());  // counted from zero when it is back
  EXPECT_EQ(1, stat("ejections_total"));
  EXPECT_EQ(1, stat("ejections_consecutive_5xx"));
  EXPECT_EQ(0, stat("ejections_consecutive_gateway_failure"));
  EXPECT_EQ(1, stat("ejections_active"));
  // The workers get the two others.
  ASSERT_EQ(1u, posted_sets_.size());
  EXPECT_EQ((std::set<std::string>{"10.0.0.2:80", "10.0.0.3:80"}), lastPosted());
  // The cluster's own set still has all three (DNS compares against it; the sweep reads it).
  EXPECT_EQ(3u, cluster_->hosts()->size());
}

TEST_F(OutlierDetectionTest, FailuresWithoutAResponseCountAs5xxAsInEnvoy) {
  build(3, Settings(2));
  report(1, HostResult::kConnectFailure);
  report(1, HostResult::kTimeout);
  main_.drain();
  EXPECT_TRUE(ejected(1));
  EXPECT_EQ(1, stat("ejections_consecutive_5xx"));
}

TEST_F(OutlierDetectionTest, ConsecutiveGatewayFailures) {
  build(3, Settings(/*consecutive_5xx=*/0, /*gateway=*/3));
  // A 500 is a 5xx but no gateway failure: it breaks the run.
  report(0, HostResult::kConnectFailure, 0, 2);
  report(0, HostResult::kHttp5xx, 500);
  EXPECT_EQ(0u, monitor(0).consecutiveGatewayFailures());
  report(0, HostResult::kConnectFailure);
  report(0, HostResult::kReset);
  EXPECT_FALSE(monitor(0).ejectionPending());
  report(0, HostResult::kHttp5xx, 502);
  EXPECT_TRUE(monitor(0).ejectionPending());
  main_.drain();
  EXPECT_TRUE(ejected(0));
  EXPECT_EQ(1, stat("ejections_consecutive_gateway_failure"));
  EXPECT_EQ(0, stat("ejections_consecutive_5xx"));

  // 503 and 504 responses and timeouts are gateway failures too.
  report(1, HostResult::kHttp5xx, 503);
  report(1, HostResult::kHttp5xx, 504);
  report(1, HostResult::kTimeout);
  main_.drain();
  EXPECT_TRUE(ejected(1));
  EXPECT_EQ(2, stat("ejections_consecutive_gateway_failure"));
  EXPECT_EQ(2, stat("ejections_active"));
}

TEST_F(OutlierDetectionTest, MaxFailsCountsGatewayFailuresWithinFailTimeout) {
  build(3, Settings(/*consecutive_5xx=*/0, /*gateway=*/0, /*max_fails=*/3));
  // Successes between them do not matter; a 500 is no gateway failure.
  report(0, HostResult::kConnectFailure);
  report(0, HostResult::kSuccess, 200);
  report(0, HostResult::kHttp5xx, 500);
  report(0, HostResult::kReset);
  EXPECT_EQ(2u, monitor(0).failuresInWindow(detector().nowMs()));
  advance(milliseconds(9999));
  report(0, HostResult::kSuccess, 200);
  report(0, HostResult::kHttp5xx, 504);
  main_.drain();
  EXPECT_TRUE(ejected(0));
  EXPECT_EQ(1, stat("ejections_max_fails"));

  // Failures further apart than fail_timeout: each window holds too few.
  report(1, HostResult::kTimeout, 0, 2);
  advance(milliseconds(10000));  // the window closes
  EXPECT_EQ(0u, monitor(1).failuresInWindow(detector().nowMs()));
  report(1, HostResult::kTimeout, 0, 2);
  EXPECT_EQ(2u, monitor(1).failuresInWindow(detector().nowMs()));
  main_.drain();
  EXPECT_FALSE(ejected(1));
  report(1, HostResult::kTimeout);
  main_.drain();
  EXPECT_TRUE(ejected(1));
  EXPECT_EQ(2, stat("ejections_max_fails"));
}

TEST_F(OutlierDetectionTest, WorkersCrossingTogetherPostOnce) {
  build(3, Settings(5, 5, 5));
  constexpr int kThreads = 8;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      stats::SetThreadSlot(t + 1);
      while (!go.load()) {
      }
      for (int i = 0; i < 2000; ++i) ReportHostResult(host(0), HostResult::kConnectFailure);
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  // Three thresholds crossed by eight threads, 16,000 failures: one request to the main thread.
  EXPECT_EQ(1, main_.posted.load());
  EXPECT_TRUE(monitor(0).ejectionPending());
  main_.drain();
  EXPECT_TRUE(ejected(0));
  EXPECT_EQ(1, stat("ejections_total"));
  // Once ejected, its late results are not counted (nothing is posted).
  report(0, HostResult::kConnectFailure, 0, 10);
  EXPECT_EQ(0u, monitor(0).consecutive5xx());
  EXPECT_EQ(1, main_.posted.load());
}

TEST_F(OutlierDetectionTest, MaxEjectionPercentCapsEjections) {
  OutlierDetectionSettings s = Settings(1);
  s.max_ejection_percent = 20;
  build(10, s);
  report(0, HostResult::kHttp5xx, 500);
  report(1, HostResult::kHttp5xx, 500);
  main_.drain();
  EXPECT_EQ(2, stat("ejections_active"));  // 20%
  report(2, HostResult::kHttp5xx, 500);
  main_.drain();
  EXPECT_FALSE(ejected(2));  // 30% would be too many
  EXPECT_EQ(1, stat("ejections_overflow"));
  EXPECT_EQ(2, stat("ejections_total"));
  EXPECT_EQ(0u, monitor(2).consecutive5xx());  // counted again from zero
  EXPECT_FALSE(monitor(2).ejectionPending());
  EXPECT_EQ(8u, lastPosted().size());
}

TEST_F(OutlierDetectionTest, OneHostMayAlwaysBeEjected) {
  OutlierDetectionSettings s = Settings(1);
  s.max_ejection_percent = 10;  // 10% of 3 hosts is less than one
  build(3, s);
  report(0, HostResult::kHttp5xx, 500);
  report(1, HostResult::kHttp5xx, 500);
  main_.drain();
  EXPECT_TRUE(ejected(0));
  EXPECT_FALSE(ejected(1));
  EXPECT_EQ(1, stat("ejections_overflow"));
}

TEST_F(OutlierDetectionTest, EjectionTimeGrowsIsCappedAndComesDownInService) {
  build(3, Settings(1));  // base 1s, max 3s
  auto eject_and_time = [&]() -> int64_t {
    report(0, HostResult::kHttp5xx, 500);
    main_.drain();
    EXPECT_TRUE(ejected(0));
    // Swept every 1ms of test time until it is back: how long it stayed out.
    int64_t waited = 0;
    while (ejected(0) && waited < 100'000) {
      advance(milliseconds(1));
      ++waited;
      detector().sweep();
    }
    return waited;
  };
  EXPECT_EQ(1000, eject_and_time());
  EXPECT_EQ(2000, eject_and_time());
  EXPECT_EQ(3000, eject_and_time());
  EXPECT_EQ(3000, eject_and_time());  // capped at max_ejection_time
  EXPECT_EQ(3u, monitor(0).ejectionMultiplier());
  // Each interval in service takes one off: after two, the next ejection lasts 1s * (1 + 1).
  detector().sweep();
  detector().sweep();
  EXPECT_EQ(1u, monitor(0).ejectionMultiplier());
  EXPECT_EQ(2000, eject_and_time());
  EXPECT_EQ(5, stat("ejections_total"));
}

TEST_F(OutlierDetectionTest, SweepBringsHostsBackAndTheWorkersGetThem) {
  build(3, Settings(2));
  report(2, HostResult::kHttp5xx, 503, 2);
  main_.drain();
  ASSERT_TRUE(ejected(2));
  EXPECT_EQ((std::set<std::string>{"10.0.0.1:80", "10.0.0.2:80"}), lastPosted());
  advance(milliseconds(999));
  detector().sweep();
  EXPECT_TRUE(ejected(2));
  EXPECT_EQ(1u, posted_sets_.size());  // nothing changed: nothing posted
  advance(milliseconds(1));
  detector().sweep();
  EXPECT_FALSE(ejected(2));
  EXPECT_EQ(0, stat("ejections_active"));
  EXPECT_EQ(3u, lastPosted().size());
  // All healthy: the workers get the cluster's own set (no new set, no table rebuilt).
  EXPECT_EQ(cluster_->hosts(), posted_sets_.back());
}

TEST_F(OutlierDetectionTest, TheHealthCheckersFlagKeepsAHostOutAfterItsEjection) {
  build(3, Settings(1));
  cluster_->hosts()->host(0)->setHealthFlag(Host::kFailedActiveHealthCheck);
  report(0, HostResult::kHttp5xx, 500);
  main_.drain();
  advance(milliseconds(1000));
  detector().sweep();
  EXPECT_FALSE(ejected(0));
  EXPECT_FALSE(host(0).healthy());
  EXPECT_EQ((std::set<std::string>{"10.0.0.2:80", "10.0.0.3:80"}), lastPosted());
  cluster_->hosts()->host(0)->clearHealthFlag(Host::kFailedActiveHealthCheck);
  cluster_->refreshHealth();
  EXPECT_EQ(3u, lastPosted().size());
}

TEST_F(OutlierDetectionTest, WhenNoHostIsHealthyTheWorkersGetAll) {
  build(2, Settings(1));
  report(0, HostResult::kHttp5xx, 500);
  report(1, HostResult::kHttp5xx, 500);
  main_.drain();
  EXPECT_EQ(2, stat("ejections_active"));
  EXPECT_EQ(2u, lastPosted().size());  // panic: better all than none
}

TEST_F(OutlierDetectionTest, ACrossingForAHostThatLeftIsDropped) {
  build(2, Settings(1));
  HostSharedPtr leaving = cluster_->hosts()->host(1);
  ReportHostResult(*leaving, HostResult::kHttp5xx, 500);
  // The host leaves (DNS) before the main thread handles it; a new host comes with a monitor.
  cluster_->setHosts({*network::Address::fromIpPort("10.0.0.1", 80),
                      *network::Address::fromIpPort("10.0.0.9", 80)},
                     {1, 1});
  main_.drain();
  EXPECT_FALSE(leaving->hasHealthFlag(Host::kFailedOutlierCheck));
  EXPECT_EQ(0, stat("ejections_total"));
  EXPECT_NE(nullptr, host(1).outlier());
  EXPECT_EQ("10.0.0.9:80", host(1).addressString());
}

TEST_F(OutlierDetectionTest, AnEjectedHostThatLeavesIsNoLongerCountedActive) {
  build(2, Settings(1));
  report(1, HostResult::kHttp5xx, 500);
  main_.drain();
  EXPECT_EQ(1, stat("ejections_active"));
  cluster_->setHosts({*network::Address::fromIpPort("10.0.0.1", 80)}, {1});
  EXPECT_EQ(0, stat("ejections_active"));
}

TEST_F(OutlierDetectionTest, ACrossingQueuedWhenTheClusterGoesIsDropped) {
  build(2, Settings(1));
  report(0, HostResult::kHttp5xx, 500);
  EXPECT_EQ(1, main_.posted.load());
  manager_.reset();  // the cluster, its detector and its hosts
  cluster_ = nullptr;
  main_.drain();  // runs the queued crossing: it finds the detector gone
  SUCCEED();
}

TEST(OutlierDetectorNotStartedTest, CrossingsAreDroppedWithoutAMainThread) {
  config::v1::Bootstrap bootstrap;
  auto* c = bootstrap.add_clusters();
  c->set_name("svc");
  auto* ep = c->add_endpoints()->mutable_address();
  ep->set_address("10.0.0.1");
  ep->set_port(80);
  c->mutable_outlier_detection()->mutable_consecutive_5xx()->set_value(1);
  stats::Store store;
  auto manager = ClusterManager::create(bootstrap, store, &http::CreateClientCodecFactory);
  ASSERT_TRUE(manager.ok());
  const Host& h = *(*manager)->get("svc")->hosts()->host(0);
  ReportHostResult(h, HostResult::kHttp5xx, 500);
  EXPECT_FALSE(h.outlier()->ejectionPending());
  EXPECT_TRUE(h.healthy());
}

}  // namespace
}  // namespace sluice::upstream
