#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "source/network/address.h"

namespace sluice::upstream {

class Cluster;

// What a pick may depend on: the request's hash key (consistent hashing), and how busy each
// host is on this worker (least request).
struct LbContext {
  std::string_view hash_key;  // empty: none
};

// The active requests per host of one cluster on this worker, for least-request picks (the
// connection pools know them).
class HostLoad {
 public:
  virtual ~HostLoad() = default;
  virtual uint64_t activeRequests(size_t host_index) const = 0;
};

// Picks the host for a request. One instance per worker and cluster; worker thread only.
class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  virtual size_t pickIndex(const LbContext& context) = 0;
  const network::Address& pick(const LbContext& context = {});

 protected:
  explicit LoadBalancer(const Cluster& cluster) : cluster_(cluster) {}
  const Cluster& cluster_;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

// A stable 64-bit hash of bytes (FNV-1a with a splitmix64 finish): the same key picks the same
// host in every worker and after a restart, which a per-process seeded hash would not give.
uint64_t StableHash(std::string_view bytes, uint64_t seed = 0);

// Maglev lookup table (Google's Maglev paper, NSDI 2016) for a cluster's hosts and weights:
// consistent hashing with even spread and minimal disruption when hosts change. Built once per
// cluster config (immutable, shared by the workers).
class MaglevTable {
 public:
  static constexpr uint64_t kSize = 65537;  // prime, well above 100 entries per host
  // `names` identify hosts (their addresses as text); `weights` > 0.
  MaglevTable(const std::vector<std::string>& names, const std::vector<uint32_t>& weights);
  size_t lookup(uint64_t hash) const { return table_[hash % kSize]; }

 private:
  std::vector<uint32_t> table_;
};

// The load balancer a cluster's lb_policy names, for one worker (`worker` offsets the start of
// round robin so workers do not all begin with the same host; it also seeds random picks).
LoadBalancerPtr CreateLoadBalancer(const Cluster& cluster, size_t worker, const HostLoad& load);

}  // namespace sluice::upstream
