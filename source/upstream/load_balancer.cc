#include "source/upstream/load_balancer.h"

#include <numeric>

namespace sluice::upstream {

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A small fast generator for random picks (xorshift64*), one per worker and cluster.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(SplitMix64(seed) | 1) {}
  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dull;
  }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((__uint128_t{next()} * n) >> 64); }

 private:
  uint64_t state_;
};

// Smooth weighted round robin (as nginx's): with weights 5:1:1 the order is a a b a c a a, not
// five a's in a row. Equal weights reduce to plain round robin.
class RoundRobin : public LoadBalancer {
 public:
  RoundRobin(const HostSet& hosts, size_t worker) : LoadBalancer(hosts), current_(hosts.size(), 0) {
    // Workers start at different hosts so that N workers do not all hit host 0 first.
    for (size_t i = 0; i < worker % std::max<size_t>(1, current_.size()); ++i) pickIndex({});
  }
  size_t pickIndex(const LbContext&) override {
    const auto& w = hosts_.weights();
    const int64_t total = hosts_.totalWeight();
    size_t best = 0;
    for (size_t i = 0; i < current_.size(); ++i) {
      current_[i] += w[i];
      if (current_[i] > current_[best]) best = i;
    }
    current_[best] -= total;
    return best;
  }

 private:
  std::vector<int64_t> current_;
};

// Random, weighted.
class RandomLb : public LoadBalancer {
 public:
  RandomLb(const HostSet& hosts, size_t worker) : LoadBalancer(hosts), random_(worker + 1) {}
  size_t pickIndex(const LbContext&) override {
    return weighted(random_.below(hosts_.totalWeight()));
  }

 protected:
  size_t weighted(uint64_t n) const {
    const auto& w = hosts_.weights();
    for (size_t i = 0; i < w.size(); ++i) {
      if (n < w[i]) return i;
      n -= w[i];
    }
    return w.size() - 1;
  }
  Random random_;
};

// Least request with the power of two choices: two random hosts (by weight), the one with
// fewer active requests on this worker per unit of weight wins. Nearly as good as scanning
// every host, at constant cost, and without herding onto one idle host.
class LeastRequest : public RandomLb {
 public:
  LeastRequest(const HostSet& hosts, size_t worker, const HostLoad& load)
      : RandomLb(hosts, worker), load_(load) {}
  size_t pickIndex(const LbContext&) override {
    const size_t n = hosts_.size();
    if (n == 1) return 0;
    const size_t a = weighted(random_.below(hosts_.totalWeight()));
    size_t b = weighted(random_.below(hosts_.totalWeight()));
    if (b == a) b = (a + 1 + random_.below(n - 1)) % n;
    const auto& w = hosts_.weights();
    // Compare active_a / w_a with active_b / w_b without division.
    const uint64_t la = load_.activeRequests(a) * w[b];
    const uint64_t lb = load_.activeRequests(b) * w[a];
    if (la != lb) return la < lb ? a : b;
    return random_.below(2) == 0 ? a : b;
  }

 private:
  const HostLoad& load_;
};

// Maglev consistent hashing on the request's hash key; without a key, a random pick.
class Maglev : public RandomLb {
 public:
  Maglev(const HostSet& hosts, size_t worker) : RandomLb(hosts, worker) {}
  size_t pickIndex(const LbContext& context) override {
    if (context.hash_key.empty() || hosts_.maglev() == nullptr) return RandomLb::pickIndex(context);
    return hosts_.maglev()->lookup(StableHash(context.hash_key));
  }
};

}  // namespace

HostSet::HostSet(const HostSet& other, bool panic)
    : hosts_(other.hosts_),
      addresses_(other.addresses_),
      weights_(other.weights_),
      total_weight_(other.total_weight_),
      maglev_(other.maglev_),
      panic_(panic) {}

HostSet::HostSet(std::vector<HostSharedPtr> hosts, bool with_maglev, bool panic)
    : hosts_(std::move(hosts)), panic_(panic) {
  addresses_.reserve(hosts_.size());
  weights_.reserve(hosts_.size());
  for (const HostSharedPtr& h : hosts_) {
    addresses_.push_back(h->address());
    weights_.push_back(h->weight());
    total_weight_ += h->weight();
  }
  if (with_maglev && !addresses_.empty()) {
    std::vector<std::string> names;
    names.reserve(addresses_.size());
    for (const auto& a : addresses_) names.push_back(a.asString());
    maglev_ = std::make_shared<const MaglevTable>(names, weights_);
  }
}

uint64_t StableHash(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ SplitMix64(seed);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return SplitMix64(h);
}

MaglevTable::MaglevTable(const std::vector<std::string>& names,
                         const std::vector<uint32_t>& weights)
    : table_(kSize, 0) {
  const size_t n = names.size();
  if (n == 0) return;
  // Each host's preference list is a permutation of the table: offset + j * skip (mod M).
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  const uint32_t max_weight = *std::max_element(weights.begin(), weights.end());
  for (size_t i = 0; i < n; ++i) {
    offset[i] = StableHash(names[i], 1) % kSize;
    skip[i] = StableHash(names[i], 2) % (kSize - 1) + 1;
  }
  std::vector<bool> taken(kSize, false);
  // Weighted Maglev: a host claims entries in proportion to its weight (each round, host i
  // claims when its accumulated weight reaches the largest weight).
  std::vector<uint64_t> credit(n, 0);
  uint64_t filled = 0;
  while (filled < kSize) {
    for (size_t i = 0; i < n && filled < kSize; ++i) {
      credit[i] += weights[i];
      if (credit[i] < max_weight) continue;
      credit[i] -= max_weight;
      uint64_t c = (offset[i] + next[i] * skip[i]) % kSize;
      while (taken[c]) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % kSize;
      }
      taken[c] = true;
      table_[c] = static_cast<uint32_t>(i);
      ++next[i];
      ++filled;
    }
  }
}

LoadBalancerPtr CreateLoadBalancer(LbPolicy policy, const HostSet& hosts, size_t worker,
                                   const HostLoad& load) {
  switch (policy) {
    case LbPolicy::kLeastRequest:
      return std::make_unique<LeastRequest>(hosts, worker, load);
    case LbPolicy::kRandom:
      return std::make_unique<RandomLb>(hosts, worker);
    case LbPolicy::kMaglev:
      return std::make_unique<Maglev>(hosts, worker);
    case LbPolicy::kRoundRobin:
      break;
  }
  return std::make_unique<RoundRobin>(hosts, worker);
}

}  // namespace sluice::upstream
