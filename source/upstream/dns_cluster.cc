#include "source/upstream/dns_cluster.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "source/common/logging.h"
#include "source/network/dns_resolver_impl.h"

namespace sluice::upstream {

namespace {
// With respect_dns_ttl, records with a TTL below this are looked up again after this long:
// a zero-TTL record must not turn into a lookup loop.
constexpr std::chrono::seconds kMinTtlRefresh{1};
}  // namespace

DnsClusterUpdater::DnsClusterUpdater(Cluster& cluster, event::Dispatcher& dispatcher,
                                     network::DnsResolverPtr resolver)
    : cluster_(cluster),
      settings_(*cluster.dns()),
      dispatcher_(dispatcher),
      resolver_(std::move(resolver)),
      timer_(dispatcher.createTimer([this] { resolveAll(); })),
      queries_(settings_.names.size(), nullptr),
      results_(settings_.names.size()) {}

DnsClusterUpdater::~DnsClusterUpdater() {
  for (network::DnsQuery* q : queries_) {
    if (q != nullptr) q->cancel();
  }
}

void DnsClusterUpdater::start(std::function<void()> first_done) {
  first_done_ = std::move(first_done);
  resolveAll();
}

void DnsClusterUpdater::resolveAll() {
  cluster_.stats().update_attempt.inc();
  outstanding_ = settings_.names.size();
  round_failed_ = false;
  round_ttl_ = std::chrono::seconds(0);
  for (size_t i = 0; i < settings_.names.size(); ++i) {
    const DnsSettings::Name& n = settings_.names[i];
    queries_[i] = resolver_->resolve(n.name, n.port, settings_.family,
                                     [this, i](absl::StatusOr<network::DnsResponse> result) {
                                       onResolved(i, std::move(result));
                                     });
  }
}

void DnsClusterUpdater::onResolved(size_t index, absl::StatusOr<network::DnsResponse> result) {
  queries_[index] = nullptr;
  const DnsSettings::Name& n = settings_.names[index];
  if (result.ok()) {
    results_[index] = std::move(result->addresses);
    if (result->ttl.count() > 0 && (round_ttl_.count() == 0 || result->ttl < round_ttl_)) {
      round_ttl_ = result->ttl;
    }
  } else if (absl::IsNotFound(result.status())) {
    // The DNS answered that the name has no address (any more): strictly, no hosts for it.
    SLUICE_LOG(kDebug, "cluster %s: %s has no address: %s", cluster_.name(), n.name,
               std::string(result.status().message()));
    results_[index].clear();
  } else {
    // No answer: the last known hosts stay.
    SLUICE_LOG(kWarn, "cluster %s: looking up %s failed: %s", cluster_.name(), n.name,
               std::string(result.status().message()));
    round_failed_ = true;
  }
  if (--outstanding_ == 0) finishRound();
}

void DnsClusterUpdater::finishRound() {
  (round_failed_ ? cluster_.stats().update_failure : cluster_.stats().update_success).inc();
  std::vector<Cluster::HostEntry> entries;
  absl::flat_hash_set<std::string> seen;  // two names may share an address: one host
  for (size_t i = 0; i < results_.size(); ++i) {
    const DnsSettings::Name& n = settings_.names[i];
    for (const network::Address& a : results_[i]) {
      if (!seen.insert(a.asString()).second) continue;
      entries.push_back({a, n.weight, n.name, n.metadata});
    }
  }
  const HostSet& current = *cluster_.hosts();
  bool changed = current.size() != entries.size();
  for (size_t i = 0; !changed && i < entries.size(); ++i) {
    const Host& h = *current.host(i);
    changed = h.addressString() != entries[i].address.asString() ||
              h.weight() != entries[i].weight || h.hostname() != entries[i].hostname;
  }
  if (changed) {
    SLUICE_LOG(kInfo, "cluster %s: %d hosts (was %d)", cluster_.name(),
               static_cast<int>(entries.size()), static_cast<int>(current.size()));
    cluster_.stats().membership_change.inc();
    cluster_.setHosts(std::move(entries));  // publishes to the workers
  }
  std::chrono::milliseconds next = settings_.refresh_rate;
  if (settings_.respect_ttl && round_ttl_.count() > 0) {
    next = std::max<std::chrono::milliseconds>(round_ttl_, kMinTtlRefresh);
  }
  timer_->enableTimer(next);
  if (first_done_) {
    std::function<void()> done = std::move(first_done_);
    first_done_ = nullptr;
    done();
  }
}

absl::Status DnsClusters::init(ClusterManager& manager, event::Dispatcher& dispatcher) {
  for (const auto& c : manager.clusters()) {
    if (c->dns() == nullptr) continue;
    auto resolver = network::CreateDnsResolver(dispatcher, c->dns()->resolvers);
    if (!resolver.ok()) {
      return absl::Status(resolver.status().code(),
                          absl::StrCat("cluster ", c->name(), ": ", resolver.status().message()));
    }
    updaters_.push_back(std::make_unique<DnsClusterUpdater>(*c, dispatcher, std::move(*resolver)));
  }
  return absl::OkStatus();
}

void DnsClusters::start(std::function<void()> all_done) {
  all_done_ = std::move(all_done);
  pending_first_ = updaters_.size();
  if (pending_first_ == 0) {
    all_done_();
    return;
  }
  for (auto& u : updaters_) {
    u->start([this] {
      if (--pending_first_ == 0 && all_done_) {
        std::function<void()> done = std::move(all_done_);
        all_done_ = nullptr;
        done();
      }
    });
  }
}

}  // namespace sluice::upstream
