// Active health checks: the thresholds (HostHealthTracker), the gRPC health messages (checked
// against protobuf's own encoding of messages of the same shape), the cluster's load-balancing
// set and panic (Cluster::refreshHealth, WorkerClusters), and the HTTP and TCP checkers against
// loopback origins served by threads (blocking sockets, short polls so that every thread
// notices the end). Every wait runs the dispatcher until a predicate holds or 10 s pass.

#include "source/upstream/health_checker_impl.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "source/http/client_codecs.h"
#include "source/upstream/cluster.h"
#include "test/network/loopback.h"

namespace sluice::upstream {
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Thresholds

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() {
    host_.setHealthFlag(Host::kPendingActiveHealthCheck);
    host_.setHealthFlag(Host::kFailedActiveHealthCheck);
  }
  stats::Store store_;
  Host host_{*network::Address::fromIpPort("127.0.0.1", 80), 1, stats::Scope(store_)};
  HostHealthTracker tracker_{host_, /*unhealthy=*/3, /*healthy=*/2};
};

TEST_F(TrackerTest, AFreshHostIsUnhealthyUntilOneSuccessMakesItHealthy) {
  EXPECT_FALSE(host_.healthy());
  EXPECT_FALSE(tracker_.healthy());
  EXPECT_TRUE(tracker_.onSuccess());  // one is enough for a host never checked
  EXPECT_TRUE(host_.healthy());
  EXPECT_TRUE(tracker_.healthy());
}

TEST_F(TrackerTest, AFreshHostThatFailsStaysUnhealthyAndNeedsTheHealthyThreshold) {
  EXPECT_TRUE(tracker_.onFailure());  // no longer pending: checked and failed
  EXPECT_FALSE(host_.hasHealthFlag(Host::kPendingActiveHealthCheck));
  EXPECT_TRUE(host_.hasHealthFlag(Host::kFailedActiveHealthCheck));
  EXPECT_FALSE(tracker_.onSuccess());
  EXPECT_FALSE(host_.healthy());
  EXPECT_TRUE(tracker_.onSuccess());
  EXPECT_TRUE(host_.healthy());
}

TEST_F(TrackerTest, ConsecutiveResultsCountAndTheOtherKindStartsOver) {
  ASSERT_TRUE(tracker_.onSuccess());
  // Two failures, a success (the count starts over), then three in a row.
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_FALSE(tracker_.onSuccess());
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_TRUE(host_.healthy());
  EXPECT_TRUE(tracker_.onFailure());
  EXPECT_FALSE(host_.healthy());
  // Further failures change nothing; one success, a failure, then two successes.
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_FALSE(tracker_.onSuccess());
  EXPECT_FALSE(tracker_.onFailure());
  EXPECT_FALSE(tracker_.onSuccess());
  EXPECT_FALSE(host_.healthy());
  EXPECT_TRUE(tracker_.onSuccess());
  EXPECT_TRUE(host_.healthy());
}

TEST_F(TrackerTest, OtherFlagsAreNotTheCheckersBusiness) {
  ASSERT_TRUE(tracker_.onSuccess());
  host_.setHealthFlag(Host::kFailedOutlierCheck);
  EXPECT_TRUE(tracker_.healthy());  // the checker's own verdict
  EXPECT_FALSE(host_.healthy());    // the host's, all writers together
  for (int i = 0; i < 3; ++i) tracker_.onFailure();
  for (int i = 0; i < 2; ++i) tracker_.onSuccess();
  EXPECT_TRUE(host_.hasHealthFlag(Host::kFailedOutlierCheck));
}

TEST(TrackerThresholdOneTest, EveryResultDecides) {
  stats::Store store;
  Host host(*network::Address::fromIpPort("127.0.0.1", 80), 1, stats::Scope(store));
  HostHealthTracker tracker(host, 1, 1);
  EXPECT_FALSE(tracker.onSuccess());  // healthy already (not pending): no change
  EXPECT_TRUE(tracker.onFailure());
  EXPECT_TRUE(tracker.onSuccess());
}

// ---------------------------------------------------------------------------------------------
// gRPC health messages: HealthCheckRequest has the shape of google.protobuf.StringValue (field 1,
// string) and HealthCheckResponse that of UInt32Value (field 1, varint): protobuf's own
// encoding of those is the reference.

TEST(GrpcHealthTest, RequestIsWhatProtobufEncodes) {
  for (const std::string& service : {std::string(), std::string("svc"),
                                     std::string("grpc.health.v1.Health"), std::string(300, 's')}) {
    google::protobuf::StringValue ref;
    ref.set_value(service);
    EXPECT_EQ(ref.SerializeAsString(), grpc_health::EncodeRequest(service)) << service.size();
  }
}

TEST(GrpcHealthTest, ResponseDecodesWhatProtobufEncodes) {
  for (uint32_t status : {0u, 1u, 2u, 3u, 127u, 128u, 300000u}) {
    google::protobuf::UInt32Value ref;
    ref.set_value(status);
    auto got = grpc_health::DecodeResponse(ref.SerializeAsString());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(status, *got);
  }
}

TEST(GrpcHealthTest, ResponseSkipsUnknownFieldsAndRefusesMalformedOnes) {
  using grpc_health::DecodeResponse;
  // Unknown fields of every wire type around the status; the last status wins.
  const std::string unknown = std::string("\x12\x02xy", 4) + std::string("\x19", 1) +
                              std::string(8, '\x01') + std::string("\x25", 1) +
                              std::string(4, '\x02') + std::string("\x30\x05", 2);
  EXPECT_EQ(2u, *DecodeResponse(unknown + std::string("\x08\x01\x08\x02", 4)));
  EXPECT_EQ(0u, *DecodeResponse(unknown));                            // no status: UNKNOWN
  EXPECT_FALSE(DecodeResponse(std::string("\x08", 1)).ok());          // truncated varint
  EXPECT_FALSE(DecodeResponse(std::string("\x08\x80", 2)).ok());      // truncated varint
  EXPECT_FALSE(DecodeResponse(std::string("\x12\x05xy", 4)).ok());    // truncated bytes
  EXPECT_FALSE(DecodeResponse(std::string("\x0a\x01x", 3)).ok());     // status not a varint
  EXPECT_FALSE(DecodeResponse(std::string("\x0b", 1)).ok());          // a group
  EXPECT_FALSE(DecodeResponse(std::string("\x00\x01", 2)).ok());      // field 0
  EXPECT_FALSE(DecodeResponse(std::string("\x19\x01\x02", 3)).ok());  // truncated fixed64
  EXPECT_FALSE(DecodeResponse(std::string(11, '\xff')).ok());         // a key too long
}

TEST(GrpcHealthTest, FramesAndUnframes) {
  const std::string message = grpc_health::EncodeRequest("svc");
  const std::string frame = grpc_health::Frame(message);
  EXPECT_EQ(std::string("\x00\x00\x00\x00\x05\x0a\x03svc", 10), frame);
  EXPECT_EQ(message, *grpc_health::Unframe(frame));
  EXPECT_EQ("", *grpc_health::Unframe(grpc_health::Frame("")));
  // A second message after the first is not read.
  EXPECT_EQ(message, *grpc_health::Unframe(frame + frame));
  EXPECT_FALSE(grpc_health::Unframe(frame.substr(0, 4)).ok());
  EXPECT_FALSE(grpc_health::Unframe(frame.substr(0, 9)).ok());
  std::string compressed = frame;
  compressed[0] = 1;
  EXPECT_FALSE(grpc_health::Unframe(compressed).ok());
}

// ---------------------------------------------------------------------------------------------
// The load-balancing set and panic

config::v1::Bootstrap ClusterConfig(
    int hosts, bool health_check, int panic = -1,
    config::v1::Cluster::LbPolicy policy = config::v1::Cluster::ROUND_ROBIN) {
  config::v1::Bootstrap bootstrap;
  auto* c = bootstrap.add_clusters();
  c->set_name("svc");
  c->set_lb_policy(policy);
  for (int i = 0; i < hosts; ++i) {
    auto* a = c->add_endpoints()->mutable_address();
    a->set_address("10.0.0." + std::to_string(i + 1));
    a->set_port(80);
  }
  if (health_check) {
    auto* hc = c->add_health_checks();
    hc->mutable_timeout()->set_seconds(1);
    hc->mutable_interval()->set_seconds(1);
    hc->mutable_http_health_check()->set_path("/health");
  }
  if (panic >= 0)
    c->mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(panic);
  return bootstrap;
}

class LbHealthTest : public ::testing::Test {
 protected:
  void make(const config::v1::Bootstrap& bootstrap) {
    manager_ =
        std::move(*ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
    cluster_ = manager_->clusters().front().get();
    cluster_->setHostSetPublisher([this](const Cluster&, HostSetPtr hosts) {
      published_.push_back(hosts);
      if (workers_ != nullptr) workers_->updateHosts(*cluster_, hosts);
    });
  }
  Host& host(size_t i) { return *cluster_->hosts()->host(i); }
  void setHealthy(size_t i, bool healthy) {
    host(i).clearHealthFlag(Host::kPendingActiveHealthCheck);
    if (healthy) {
      host(i).clearHealthFlag(Host::kFailedActiveHealthCheck);
    } else {
      host(i).setHealthFlag(Host::kFailedActiveHealthCheck);
    }
    cluster_->refreshHealth();
  }
  // The addresses `n` picks went to.
  std::multiset<std::string> picks(size_t n) {
    std::multiset<std::string> out;
    for (size_t i = 0; i < n; ++i) {
      const Host* h = workers_->pickHost(*cluster_);
      out.insert(h != nullptr ? h->addressString() : "none");
    }
    return out;
  }
  std::set<std::string> distinct(size_t n) {
    auto p = picks(n);
    return {p.begin(), p.end()};
  }
  int64_t value(const std::string& name) { return store_.valueOf("cluster.svc." + name); }

  stats::Store store_;
  std::unique_ptr<ClusterManager> manager_;
  Cluster* cluster_ = nullptr;
  std::vector<HostSetPtr> published_;
  std::unique_ptr<WorkerClusters> workers_;
};

TEST_F(LbHealthTest, WithoutHealthChecksEveryHostIsUsedAsTheSameSet) {
  make(ClusterConfig(3, false));
  EXPECT_EQ(cluster_->hosts(), cluster_->lbHosts());
  EXPECT_FALSE(cluster_->lbHosts()->panic());
  EXPECT_EQ(3, value("membership_healthy"));
  cluster_->refreshHealth();
  EXPECT_TRUE(published_.empty());  // nothing changed
}

TEST_F(LbHealthTest, HostsAwaitingTheirFirstCheckAreUsedInPanicUntilEnoughAreHealthy) {
  make(ClusterConfig(4, true));
  workers_ = std::make_unique<WorkerClusters>(*manager_, 0);
  // All pending: panic, every host.
  EXPECT_TRUE(cluster_->lbHosts()->panic());
  EXPECT_EQ(4u, cluster_->lbHosts()->size());
  EXPECT_EQ(4u, distinct(8).size());
  EXPECT_EQ(8, value("lb_healthy_panic"));
  // One of four (25%) healthy: still panic (no new set published: the same one).
  setHealthy(0, true);
  EXPECT_TRUE(published_.empty());
  // Two of four: 50% is not below the default threshold: only those two.
  setHealthy(1, true);
  ASSERT_EQ(1u, published_.size());
  EXPECT_FALSE(published_.back()->panic());
  EXPECT_EQ((std::set<std::string>{"10.0.0.1:80", "10.0.0.2:80"}), distinct(8));
  EXPECT_EQ(8, value("lb_healthy_panic"));  // no picks in panic since
  EXPECT_EQ(2, value("membership_healthy"));
  // The third host's failure publishes nothing (it was not used).
  setHealthy(2, false);
  EXPECT_EQ(1u, published_.size());
  // All four healthy: the cluster's own set again.
  setHealthy(2, true);
  setHealthy(3, true);
  EXPECT_EQ(cluster_->hosts(), cluster_->lbHosts());
  EXPECT_EQ(4u, distinct(16).size());
  // Three fail: 25% < 50%: panic, all four used again, and counted.
  setHealthy(0, false);
  setHealthy(1, false);
  setHealthy(2, false);
  EXPECT_TRUE(cluster_->lbHosts()->panic());
  EXPECT_EQ(4u, distinct(8).size());
  EXPECT_EQ(16, value("lb_healthy_panic"));
  EXPECT_EQ(4, value("membership_healthy"));
}

TEST_F(LbHealthTest, PanicThresholdZeroNeverPanics) {
  make(ClusterConfig(2, true, /*panic=*/0));
  workers_ = std::make_unique<WorkerClusters>(*manager_, 0);
  EXPECT_TRUE(cluster_->lbHosts()->empty());
  EXPECT_EQ(nullptr, workers_->pickHost(*cluster_));
  EXPECT_EQ(1, value("upstream_rq_no_host"));
  setHealthy(1, true);
  EXPECT_EQ((std::set<std::string>{"10.0.0.2:80"}), distinct(4));
  EXPECT_EQ(0, value("lb_healthy_panic"));
}

TEST_F(LbHealthTest, PanicThresholdHundredPanicsUnlessAllAreHealthy) {
  make(ClusterConfig(2, true, /*panic=*/100));
  setHealthy(0, true);
  EXPECT_TRUE(cluster_->lbHosts()->panic());
  setHealthy(1, true);
  EXPECT_FALSE(cluster_->lbHosts()->panic());
}

TEST_F(LbHealthTest, EveryBalancerKeepsToTheHealthyHosts) {
  for (auto policy : {config::v1::Cluster::ROUND_ROBIN, config::v1::Cluster::LEAST_REQUEST,
                      config::v1::Cluster::RANDOM, config::v1::Cluster::MAGLEV}) {
    make(ClusterConfig(4, true, 50, policy));
    workers_ = std::make_unique<WorkerClusters>(*manager_, 0);
    for (size_t i = 0; i < 4; ++i) setHealthy(i, i != 2);
    EXPECT_EQ(3u, cluster_->lbHosts()->size());
    if (policy == config::v1::Cluster::MAGLEV) {
      EXPECT_NE(nullptr, cluster_->lbHosts()->maglev());
    }
    for (size_t i = 0; i < 200; ++i) {
      std::string key = "user-" + std::to_string(i);
      const Host* h = workers_->pickHost(*cluster_, LbContext{key});
      ASSERT_NE(nullptr, h);
      EXPECT_NE("10.0.0.3:80", h->addressString()) << policy;
    }
    workers_.reset();
  }
}

TEST_F(LbHealthTest, NewHostsStartPendingAndKeptHostsKeepTheirHealth) {
  make(ClusterConfig(2, true));
  setHealthy(0, true);
  setHealthy(1, true);
  HostSharedPtr kept = cluster_->hosts()->host(0);
  int updates = 0;
  auto handle = cluster_->addMemberUpdateCallback([&] { ++updates; });
  std::vector<network::Address> addresses = {*network::Address::fromIpPort("10.0.0.1", 80),
                                             *network::Address::fromIpPort("10.0.0.9", 80)};
  cluster_->setHosts(std::move(addresses), {1, 1});
  EXPECT_EQ(1, updates);
  EXPECT_EQ(kept, cluster_->hosts()->host(0));
  EXPECT_TRUE(kept->healthy());
  EXPECT_TRUE(cluster_->hosts()->host(1)->hasHealthFlag(Host::kPendingActiveHealthCheck));
  // One of two healthy (50%): the kept host alone.
  ASSERT_EQ(1u, cluster_->lbHosts()->size());
  EXPECT_EQ(kept, cluster_->lbHosts()->host(0));
  handle.reset();
  cluster_->setHosts({}, {});
  EXPECT_EQ(1, updates);  // unregistered
}

// ---------------------------------------------------------------------------------------------
// Checkers against loopback origins

// A loopback origin: each connection served by a thread of its own. HTTP mode answers every
// request head with `status` (keep-alive, Content-Length); silent mode reads and never answers;
// pong mode answers "PING" with "..PO" then "NG..".
class Origin {
 public:
  enum class Mode { kHttp, kSilent, kPong };
  explicit Origin(Mode mode) : mode_(mode) {
    fd_ = network::test::ListenOnLoopback(64, port_);
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~Origin() {
    stop_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }
  std::atomic<int> status{200};
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> l(mu_);
    return heads_;
  }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++accepted_;
      conns_.emplace_back([this, c] {
        serve(c);
        close(c);
      });
    }
  }
  // Reads what is there (waiting up to 20ms); false when the peer closed or the test ends.
  bool readSome(int fd, std::string& in) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in.append(buf, static_cast<size_t>(n));
      return true;
    }
    return false;
  }
  void serve(int fd) {
    std::string in;
    while (readSome(fd, in)) {
      if (mode_ == Mode::kSilent) continue;
      if (mode_ == Mode::kPong) {
        if (in.find("PING") == std::string::npos) continue;
        send(fd, "..PO", 4, MSG_NOSIGNAL);
        std::this_thread::sleep_for(milliseconds(5));  // two reads on the other side
        send(fd, "NG..", 4, MSG_NOSIGNAL);
        in.clear();
        continue;
      }
      size_t end;
      while ((end = in.find("\r\n\r\n")) != std::string::npos) {
        {
          std::lock_guard<std::mutex> l(mu_);
          heads_.push_back(in.substr(0, end));
        }
        in.erase(0, end + 4);
        const std::string body = "ok";
        const std::string out = "HTTP/1.1 " + std::to_string(status.load()) +
                                " X\r\nContent-Length: " + std::to_string(body.size()) +
                                "\r\n\r\n" + body;
        send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      }
    }
  }

  const Mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> conns_;
  std::mutex mu_;
  std::vector<std::string> heads_;
};

class CheckerTest : public ::testing::Test {
 protected:
  ~CheckerTest() override {
    checker_.reset();
    // The deferred deletions (sessions, connections) run.
    dispatcher_->exit();
    dispatcher_->run();
  }
  // A cluster of one host per port, with `hc` (interval 5ms, timeout 1s unless set).
  void make(const std::vector<uint16_t>& ports, config::v1::HealthCheck hc) {
    config::v1::Bootstrap bootstrap;
    auto* c = bootstrap.add_clusters();
    c->set_name("svc");
    for (uint16_t port : ports) {
      auto* a = c->add_endpoints()->mutable_address();
      a->set_address("127.0.0.1");
      a->set_port(port);
    }
    if (!hc.has_interval()) hc.mutable_interval()->set_nanos(5'000'000);
    if (!hc.has_timeout()) hc.mutable_timeout()->set_seconds(1);
    *c->add_health_checks() = hc;
    manager_ =
        std::move(*ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
    cluster_ = manager_->clusters().front().get();
    checker_ = CreateHealthChecker(*cluster_, hc, *dispatcher_, store_);
    checker_->start();
  }
  static config::v1::HealthCheck Http(const std::string& path) {
    config::v1::HealthCheck hc;
    hc.mutable_http_health_check()->set_path(path);
    hc.mutable_unhealthy_threshold()->set_value(2);
    hc.mutable_healthy_threshold()->set_value(2);
    return hc;
  }
  bool runUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    event::TimerPtr t;
    t = dispatcher_->createTimer([&] {
      if (done() || std::chrono::steady_clock::now() > deadline) {
        dispatcher_->exit();
      } else {
        t->enableTimer(milliseconds(1));
      }
    });
    t->enableTimer(milliseconds(0));
    dispatcher_->run();
    return done();
  }
  int64_t value(const std::string& name) {
    return store_.valueOf("cluster.svc.health_check." + name);
  }

  stats::Store store_;
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  std::unique_ptr<ClusterManager> manager_;
  Cluster* cluster_ = nullptr;
  HealthCheckerPtr checker_;
};

TEST_F(CheckerTest, HttpCheckFollowsTheStatusOverOneKeptConnection) {
  Origin origin(Origin::Mode::kHttp);
  auto hc = Http("/healthz");
  auto* h = hc.mutable_http_health_check()->add_request_headers_to_add();
  h->set_name("x-check");
  h->set_value("1");
  make({origin.port()}, hc);
  Host& host = *cluster_->hosts()->host(0);
  EXPECT_TRUE(host.hasHealthFlag(Host::kPendingActiveHealthCheck));
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 1; }));
  EXPECT_TRUE(host.healthy());
  ASSERT_TRUE(runUntil([&] { return value("success") >= 5; }));
  EXPECT_EQ(1, origin.accepted());  // kept between checks
  const std::string head = origin.heads().front();
  EXPECT_EQ(0u, head.find("GET /healthz HTTP/1.1\r\n")) << head;
  EXPECT_NE(std::string::npos, head.find("\r\nhost: svc")) << head;
  EXPECT_NE(std::string::npos, head.find("\r\nuser-agent: sluice-health-check")) << head;
  EXPECT_NE(std::string::npos, head.find("\r\nx-check: 1")) << head;

  origin.status = 503;
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 0; }));
  EXPECT_TRUE(host.hasHealthFlag(Host::kFailedActiveHealthCheck));
  EXPECT_GE(value("failure"), 2);
  EXPECT_EQ(0, value("network_failure"));
  EXPECT_GE(origin.accepted(), 2);  // a failed check's connection is not kept

  origin.status = 204;  // in the default [200, 300)
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 1; }));
  EXPECT_TRUE(host.healthy());
  EXPECT_GE(value("attempt"), value("success") + value("failure"));
}

TEST_F(CheckerTest, ExpectedStatusesReplaceTheDefault) {
  Origin origin(Origin::Mode::kHttp);
  origin.status = 200;
  auto hc = Http("/");
  auto* r = hc.mutable_http_health_check()->add_expected_statuses();
  r->set_start(418);
  r->set_end(419);
  make({origin.port()}, hc);
  ASSERT_TRUE(runUntil([&] { return value("failure") >= 1; }));
  EXPECT_FALSE(cluster_->hosts()->host(0)->healthy());
  origin.status = 418;
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 1; }));
}

TEST_F(CheckerTest, ClosedPortIsANetworkFailure) {
  uint16_t port;
  close(network::test::ListenOnLoopback(1, port));  // nothing listens there now
  config::v1::HealthCheck hc;
  hc.mutable_tcp_health_check();
  make({port}, hc);
  ASSERT_TRUE(runUntil([&] { return value("network_failure") >= 2; }));
  EXPECT_FALSE(cluster_->hosts()->host(0)->healthy());
  EXPECT_FALSE(cluster_->hosts()->host(0)->hasHealthFlag(Host::kPendingActiveHealthCheck));
  EXPECT_EQ(0, value("healthy"));
  EXPECT_EQ(0, value("success"));
}

TEST_F(CheckerTest, TcpCheckSendsAndFindsTheAnswerAcrossReads) {
  Origin origin(Origin::Mode::kPong);
  config::v1::HealthCheck hc;
  hc.mutable_tcp_health_check()->set_send("PING");
  hc.mutable_tcp_health_check()->set_receive("PONG");
  make({origin.port()}, hc);
  ASSERT_TRUE(runUntil([&] { return value("success") >= 3; }));
  EXPECT_TRUE(cluster_->hosts()->host(0)->healthy());
  EXPECT_GE(origin.accepted(), 3);  // a connection per check
}

TEST_F(CheckerTest, TcpConnectOnly) {
  Origin silent(Origin::Mode::kSilent);
  config::v1::HealthCheck hc;
  hc.mutable_tcp_health_check();
  make({silent.port()}, hc);
  ASSERT_TRUE(runUntil([&] { return value("success") >= 2; }));
  EXPECT_EQ(1, value("healthy"));
}

TEST_F(CheckerTest, TcpAnswerWithoutTheExpectedBytesTimesOut) {
  Origin origin(Origin::Mode::kPong);
  config::v1::HealthCheck hc;
  hc.mutable_tcp_health_check()->set_send("PING");
  hc.mutable_tcp_health_check()->set_receive("PONGS");
  hc.mutable_timeout()->set_nanos(50'000'000);
  make({origin.port()}, hc);
  ASSERT_TRUE(runUntil([&] { return value("timeout") >= 2; }));
  EXPECT_EQ(0, value("success"));
  EXPECT_FALSE(cluster_->hosts()->host(0)->healthy());
}

TEST_F(CheckerTest, NoAnswerIsATimeout) {
  Origin origin(Origin::Mode::kSilent);
  auto hc = Http("/");
  hc.mutable_timeout()->set_nanos(20'000'000);
  make({origin.port()}, hc);
  ASSERT_TRUE(runUntil([&] { return value("timeout") >= 2; }));
  EXPECT_FALSE(cluster_->hosts()->host(0)->healthy());
  EXPECT_EQ(value("timeout"), value("failure"));
  EXPECT_GE(origin.accepted(), 2);  // a timed-out check's connection is closed
}

TEST_F(CheckerTest, HostsThatLeaveAreNoLongerCheckedAndNewOnesAre) {
  Origin a(Origin::Mode::kHttp);
  Origin b(Origin::Mode::kHttp);
  make({a.port()}, Http("/"));
  auto* base = static_cast<HealthCheckerImplBase*>(checker_.get());
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 1; }));
  cluster_->setHosts({*network::Address::fromIpPort("127.0.0.1", b.port())}, {1});
  EXPECT_EQ(1u, base->sessionCount());
  EXPECT_EQ(0, value("healthy"));  // the new host awaits its first check
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 1 && b.heads().size() >= 2; }));
  const size_t seen_by_a = a.heads().size();
  const int64_t successes = value("success");
  ASSERT_TRUE(runUntil([&] { return value("success") >= successes + 3; }));
  EXPECT_EQ(seen_by_a, a.heads().size());
}

TEST_F(CheckerTest, AVerdictChangeReachesTheLoadBalancingSet) {
  Origin good(Origin::Mode::kHttp);
  Origin bad(Origin::Mode::kHttp);
  bad.status = 500;
  Origin good2(Origin::Mode::kHttp);
  make({good.port(), bad.port(), good2.port()}, Http("/"));
  std::vector<HostSetPtr> published;
  cluster_->setHostSetPublisher(
      [&](const Cluster&, HostSetPtr hosts) { published.push_back(std::move(hosts)); });
  ASSERT_TRUE(runUntil([&] { return value("healthy") == 2 && value("failure") >= 1; }));
  ASSERT_FALSE(published.empty());
  const HostSetPtr& last = published.back();
  EXPECT_FALSE(last->panic());
  ASSERT_EQ(2u, last->size());
  for (const auto& h : last->hosts()) EXPECT_NE(bad.port(), h->address().port());
  EXPECT_EQ(last, cluster_->lbHosts());
}

}  // namespace
}  // namespace sluice::upstream
