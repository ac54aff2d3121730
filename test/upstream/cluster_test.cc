// A worker's view of a cluster whose hosts change (DNS): pools follow their host's address,
// hosts that left stop being picked, an empty host set answers "no host" and counts it.

#include "source/upstream/cluster.h"
#include "source/http/client_codecs.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice::upstream {
namespace {

network::Address Addr(const std::string& ip, uint16_t port = 80) {
  return *network::Address::fromIpPort(ip, port);
}

class WorkerClustersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::v1::Bootstrap bootstrap;
    auto* c = bootstrap.add_clusters();
    c->set_name("svc");
    for (const char* ip : {"10.0.0.1", "10.0.0.2"}) {
      auto* ep = c->add_endpoints()->mutable_address();
      ep->set_address(ip);
      ep->set_port(80);
    }
    manager_ =
        std::move(*ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory));
    cluster_ = manager_->clusters().front().get();
  }

  // The pools of `n` round-robin picks, by their host's address.
  std::vector<std::pair<std::string, ConnPool*>> pick(WorkerClusters& wc, size_t n) {
    std::vector<std::pair<std::string, ConnPool*>> out;
    for (size_t i = 0; i < n; ++i) {
      ConnPool* p = wc.pickConnPool(*cluster_, {}, *dispatcher_).pool;
      out.emplace_back(p != nullptr ? p->host().addressString() : "none", p);
    }
    return out;
  }

  HostSetPtr hosts(std::vector<network::Address> addresses) {
    std::vector<uint32_t> weights(addresses.size(), 1);
    cluster_->setHosts(std::move(addresses), std::move(weights));
    return cluster_->hosts();
  }

  stats::Store store_;
  event::DispatcherPtr dispatcher_ = event::CreateDispatcher("test");
  std::unique_ptr<ClusterManager> manager_;
  Cluster* cluster_ = nullptr;
};

TEST_F(WorkerClustersTest, PoolsFollowTheirHostAcrossHostSets) {
  WorkerClusters wc(*manager_, 0);
  auto before = pick(wc, 2);
  std::map<std::string, ConnPool*> by_host(before.begin(), before.end());
  ASSERT_EQ(2u, by_host.size());
  ASSERT_TRUE(by_host.count("10.0.0.2:80"));

  // 10.0.0.1 leaves, 10.0.0.3 joins; 10.0.0.2 moves to index 0.
  wc.updateHosts(*cluster_, hosts({Addr("10.0.0.2"), Addr("10.0.0.3")}));
  std::map<std::string, ConnPool*> after;
  for (auto& [host, pool] : pick(wc, 4)) after[host] = pool;
  EXPECT_EQ((std::set<std::string>{"10.0.0.2:80", "10.0.0.3:80"}),
            (std::set<std::string>{after.begin()->first, std::next(after.begin())->first}));
  // The host that stayed keeps its pool (and its idle connections).
  EXPECT_EQ(by_host["10.0.0.2:80"], after["10.0.0.2:80"]);
}

TEST_F(WorkerClustersTest, NoHostsMeansNoPoolAndACounter) {
  WorkerClusters wc(*manager_, 0);
  wc.updateHosts(*cluster_, hosts({}));
  EXPECT_EQ(nullptr, wc.pickConnPool(*cluster_, {}, *dispatcher_).pool);
  EXPECT_EQ(nullptr, wc.pickHost(*cluster_));
  EXPECT_EQ(2u, cluster_->stats().upstream_rq_no_host.value());
  EXPECT_EQ(0u, cluster_->stats().membership_total.value());
  // Hosts again: picks resume.
  wc.updateHosts(*cluster_, hosts({Addr("10.0.0.9")}));
  ASSERT_NE(nullptr, wc.pickHost(*cluster_));
  EXPECT_EQ("10.0.0.9:80", wc.pickHost(*cluster_)->addressString());
}

TEST_F(WorkerClustersTest, AWorkerBuiltLaterStartsFromTheCurrentHosts) {
  hosts({Addr("10.0.0.7")});
  WorkerClusters wc(*manager_, 1);
  EXPECT_EQ("10.0.0.7:80", wc.pickHost(*cluster_)->addressString());
}

// A host that stays across host sets is the same object: what a health checker or the outlier
// detector wrote on it (atomic flags) and its counters survive a DNS refresh, and every
// worker's set shares it.
TEST_F(WorkerClustersTest, HostsThatStayKeepTheirObjectAndState) {
  HostSetPtr first = hosts({Addr("10.0.0.1"), Addr("10.0.0.2")});
  HostSharedPtr kept = first->host(1);
  kept->setHealthFlag(Host::kFailedOutlierCheck);
  kept->stats().rq_total.inc();
  EXPECT_FALSE(kept->healthy());

  HostSetPtr second = hosts({Addr("10.0.0.2"), Addr("10.0.0.3")});
  EXPECT_EQ(kept.get(), second->host(0).get());
  EXPECT_TRUE(second->host(0)->hasHealthFlag(Host::kFailedOutlierCheck));
  EXPECT_EQ(1u, second->host(0)->stats().rq_total.value());
  EXPECT_TRUE(second->host(1)->healthy());

  WorkerClusters a(*manager_, 0);
  WorkerClusters b(*manager_, 1);
  // Both workers see the one host (and a flag cleared on one thread is clear for all).
  kept->clearHealthFlag(Host::kFailedOutlierCheck);
  EXPECT_TRUE(second->host(0)->healthy());
}

// A health flag changed on the main thread: refreshHealth() hands the workers the hosts without
// flags, or all of them in panic (none healthy here); a worker built now starts from the same
// set.
TEST_F(WorkerClustersTest, RefreshHealthHandsTheWorkersTheHealthyHosts) {
  std::vector<HostSetPtr> posted;
  cluster_->setHostSetPublisher(
      [&](const Cluster&, HostSetPtr set) { posted.push_back(std::move(set)); });
  HostSetPtr all = hosts({Addr("10.0.0.1"), Addr("10.0.0.2")});
  all->host(0)->setHealthFlag(Host::kFailedOutlierCheck);
  cluster_->refreshHealth();
  // (setHosts published the first set too.)
  ASSERT_EQ(2u, posted.size());
  ASSERT_EQ(1u, posted.back()->size());
  EXPECT_EQ("10.0.0.2:80", posted.back()->host(0)->addressString());
  WorkerClusters later(*manager_, 0);
  EXPECT_EQ("10.0.0.2:80", later.pickHost(*cluster_)->addressString());
  EXPECT_EQ("10.0.0.2:80", later.pickHost(*cluster_)->addressString());

  all->host(1)->setHealthFlag(Host::kFailedActiveHealthCheck);
  cluster_->refreshHealth();
  // None healthy: all of them (the panic threshold's case).
  EXPECT_TRUE(posted.back()->panic());
  EXPECT_EQ(2u, posted.back()->size());

  all->host(0)->clearHealthFlag(Host::kFailedOutlierCheck);
  all->host(1)->clearHealthFlag(Host::kFailedActiveHealthCheck);
  cluster_->refreshHealth();
  EXPECT_EQ(all, posted.back());  // all healthy: the cluster's own set, no copy
  // The worker applies what it is posted.
  later.updateHosts(*cluster_, posted.back());
  std::set<std::string> seen;
  for (int i = 0; i < 4; ++i) seen.insert(later.pickHost(*cluster_)->addressString());
  EXPECT_EQ(2u, seen.size());
}

TEST_F(WorkerClustersTest, EndpointMetadataAndWeightReachTheHost) {
  config::v1::Bootstrap bootstrap;
  auto* c = bootstrap.add_clusters();
  c->set_name("meta");
  auto* ep = c->add_endpoints();
  ep->mutable_address()->set_address("10.1.0.1");
  ep->mutable_address()->set_port(8080);
  ep->set_weight(7);
  (*ep->mutable_metadata())["zone"] = "a";
  auto manager = ClusterManager::create(bootstrap, store_, &http::CreateClientCodecFactory);
  ASSERT_TRUE(manager.ok()) << manager.status();
  const Host& h = *(*manager)->get("meta")->hosts()->host(0);
  EXPECT_EQ("10.1.0.1:8080", h.addressString());
  EXPECT_EQ(7u, h.weight());
  ASSERT_EQ(1u, h.metadata().count("zone"));
  EXPECT_EQ("a", h.metadata().at("zone"));
}

}  // namespace
}  // namespace sluice::upstream
