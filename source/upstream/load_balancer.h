#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/network/address.h"
#include "source/upstream/host.h"

namespace sluice::upstream {

// Maglev lookup table (Google's Maglev paper, NSDI 2016) for a cluster's hosts and weights:
// consistent hashing with even spread and minimal disruption when hosts change. Built once per
// host set (immutable, shared by the workers).
class MaglevTable {
 public:
  static constexpr uint64_t kSize = 65537;  // prime, well above 100 entries per host
  // `names` identify hosts (their addresses as text); `weights` > 0.
  MaglevTable(const std::vector<std::string>& names, const std::vector<uint32_t>& weights);
  size_t lookup(uint64_t hash) const { return table_[hash % kSize]; }

 private:
  std::vector<uint32_t> table_;
};

// A cluster's hosts at one moment: the Host objects (shared with the host sets before and after
// this one while they stay), their addresses and weights, and (for MAGLEV) the lookup table.
// Immutable; a change (DNS, health) makes a new one, which the main thread posts to each worker.
// The set a worker balances over holds the healthy hosts, or every host in panic (`panic`:
// the pick path counts lb_healthy_panic without looking at any host's health).
class HostSet {
 public:
  HostSet(std::vector<HostSharedPtr> hosts, bool with_maglev, bool panic = false);
  // The same hosts (and Maglev table, shared), marked as a panic set or not.
  HostSet(const HostSet& other, bool panic);
  bool panic() const { return panic_; }
  size_t size() const { return addresses_.size(); }
  bool empty() const { return addresses_.empty(); }
  const HostSharedPtr& host(size_t i) const { return hosts_[i]; }
  const std::vector<HostSharedPtr>& hosts() const { return hosts_; }
  const network::Address& address(size_t i) const { return addresses_[i]; }
  const std::vector<network::Address>& addresses() const { return addresses_; }
  const std::vector<uint32_t>& weights() const { return weights_; }
  uint64_t totalWeight() const { return total_weight_; }
  const MaglevTable* maglev() const { return maglev_.get(); }

 private:
  const std::vector<HostSharedPtr> hosts_;
  std::vector<network::Address> addresses_;
  std::vector<uint32_t> weights_;
  uint64_t total_weight_ = 0;
  std::shared_ptr<const MaglevTable> maglev_;
  const bool panic_ = false;
};
using HostSetPtr = std::shared_ptr<const HostSet>;

enum class LbPolicy { kRoundRobin, kLeastRequest, kRandom, kMaglev };

// What a pick may depend on: the request's hash key (consistent hashing), and how busy each
// host is on this worker (least request).
struct LbContext {
  std::string_view hash_key;  // empty: none
  // Hosts a retry should avoid (the earlier attempts'): the pick is made again, a bounded
  // number of times, while it lands on one of them (Envoy's previous_hosts predicate).
  const Host* const* excluded = nullptr;
  size_t excluded_count = 0;
  bool isExcluded(const Host* host) const {
    for (size_t i = 0; i < excluded_count; ++i) {
      if (excluded[i] == host) return true;
    }
    return false;
  }
};

// The active requests per host of one cluster on this worker, for least-request picks (the
// connection pools know them).
class HostLoad {
 public:
  virtual ~HostLoad() = default;
  virtual uint64_t activeRequests(size_t host_index) const = 0;
};

// Picks the host for a request from a non-empty host set (which must outlive it). One instance
// per worker and cluster (replaced with the host set); worker thread only.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  virtual size_t pickIndex(const LbContext& context) = 0;

 protected:
  explicit LoadBalancer(const HostSet& hosts) : hosts_(hosts) {}
  const HostSet& hosts_;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

// A stable 64-bit hash of bytes (FNV-1a with a splitmix64 finish): the same key picks the same
// host in every worker and after a restart, which a per-process seeded hash would not give.
uint64_t StableHash(std::string_view bytes, uint64_t seed = 0);

// The load balancer a cluster's lb_policy names, for one worker (`worker` offsets the start of
// round robin so workers do not all begin with the same host; it also seeds random picks).
LoadBalancerPtr CreateLoadBalancer(LbPolicy policy, const HostSet& hosts, size_t worker,
                                   const HostLoad& load);

}  // namespace sluice::upstream
