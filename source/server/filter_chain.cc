#include "source/server/filter_chain.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::server {

absl::StatusOr<CidrPrefix> CidrPrefix::Parse(const config::v1::CidrRange& range) {
  CidrPrefix p;
  const std::string& text = range.address_prefix();
  if (inet_pton(AF_INET, text.c_str(), p.bytes.data()) == 1) {
    p.family = AF_INET;
    if (range.prefix_len() > 32) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix_len ", range.prefix_len(), " is over 32 for IPv4 ", text));
    }
  } else if (inet_pton(AF_INET6, text.c_str(), p.bytes.data()) == 1) {
    p.family = AF_INET6;
    if (range.prefix_len() > 128) {
      return absl::InvalidArgumentError(
          absl::StrCat("prefix_len ", range.prefix_len(), " is over 128 for IPv6 ", text));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not an IP address"));
  }
  p.length = range.prefix_len();
  return p;
}

bool CidrPrefix::contains(const network::Address& address) const {
  const uint8_t* ip;
  uint8_t mapped[16];
  if (address.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.sockaddr_ptr());
    if (family == AF_INET) {
      ip = reinterpret_cast<const uint8_t*>(&in->sin_addr);
    } else {
      // An IPv6 prefix matches an IPv4 client in its IPv4-mapped form (::ffff:a.b.c.d).
      std::memset(mapped, 0, 10);
      mapped[10] = mapped[11] = 0xff;
      std::memcpy(mapped + 12, &in->sin_addr, 4);
      ip = mapped;
    }
  } else if (address.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address.sockaddr_ptr());
    ip = reinterpret_cast<const uint8_t*>(&in6->sin6_addr);
    if (family == AF_INET) {
      // An IPv4 prefix matches an IPv4-mapped IPv6 client (a dual-stack listener).
      static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(ip, kMappedPrefix, 12) != 0) return false;
      ip += 12;
    }
  } else {
    return false;
  }
  const uint32_t full = length / 8;
  if (std::memcmp(ip, bytes.data(), full) != 0) return false;
  const uint32_t rest = length % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip[full] & mask) == (bytes[full] & mask);
}

bool FilterChain::match(const ChainMatchInput& in, Specificity* out) const {
  Specificity s;
  if (destination_port != 0) {
    if (in.destination_port != destination_port) return false;
    s.port = 1;
  }
  if (!exact_names.empty() || !wildcard_suffixes.empty()) {
    if (in.server_name.empty()) return false;
    if (std::find(exact_names.begin(), exact_names.end(), in.server_name) != exact_names.end()) {
      s.name = 1000 + static_cast<uint32_t>(in.server_name.size());
    } else {
      for (const std::string& suffix : wildcard_suffixes) {
        // "*.example.com" takes "a.example.com" and "a.b.example.com", not "example.com".
        if (in.server_name.size() > suffix.size() && in.server_name.ends_with(suffix)) {
          s.name = std::max<uint32_t>(s.name, 1 + static_cast<uint32_t>(suffix.size()));
        }
      }
      if (s.name == 0) return false;
    }
  }
  if (!alpn.empty()) {
    if (in.alpn == nullptr) return false;
    const bool any = std::any_of(alpn.begin(), alpn.end(), [&](const std::string& p) {
      return std::find(in.alpn->begin(), in.alpn->end(), p) != in.alpn->end();
    });
    if (!any) return false;
    s.alpn = 1;
  }
  if (!source_prefixes.empty()) {
    if (in.source == nullptr) return false;
    uint32_t best = 0;
    for (const CidrPrefix& p : source_prefixes) {
      if (p.contains(*in.source)) best = std::max(best, 1 + p.length);
    }
    if (best == 0) return false;
    s.source = best;
  }
  *out = s;
  return true;
}

absl::StatusOr<std::unique_ptr<FilterChainSet>> FilterChainSet::Create(
    std::vector<std::unique_ptr<FilterChain>> chains, std::unique_ptr<FilterChain> fallback,
    const std::string& path) {
  auto set = std::make_unique<FilterChainSet>();
  // Two chains with the same criteria: the second could never be chosen.
  auto key = [](const FilterChain& c) {
    std::vector<std::string> names = c.exact_names;
    for (const auto& w : c.wildcard_suffixes) names.push_back("*" + w);
    std::sort(names.begin(), names.end());
    std::vector<std::string> alpn = c.alpn;
    std::sort(alpn.begin(), alpn.end());
    std::vector<std::string> prefixes;
    for (const auto& p : c.source_prefixes) {
      prefixes.push_back(
          absl::StrCat(p.family, "/", std::string(p.bytes.begin(), p.bytes.end()), "/", p.length));
    }
    std::sort(prefixes.begin(), prefixes.end());
    return absl::StrCat(c.destination_port, "|", absl::StrJoin(names, ","), "|",
                        absl::StrJoin(alpn, ","), "|", absl::StrJoin(prefixes, ","));
  };
  for (size_t i = 0; i < chains.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (key(*chains[i]) == key(*chains[j])) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".filter_chains[", i, "]: matches exactly what filter_chains[", j,
                         "] matches; give one of them another filter_chain_match"));
      }
    }
  }
  for (const auto& c : chains) {
    if (c->matchesOnClientHello()) set->needs_client_hello_ = true;
    if (c->secure()) set->any_secure_ = true;
    if (c->destination_port != 0) set->matches_port_ = true;
  }
  if (fallback && fallback->secure()) set->any_secure_ = true;
  const bool criteria_free = chains.size() == 1 && chains[0]->exact_names.empty() &&
                             chains[0]->wildcard_suffixes.empty() && chains[0]->alpn.empty() &&
                             chains[0]->destination_port == 0 && chains[0]->source_prefixes.empty();
  set->chains_ = std::move(chains);
  set->default_ = std::move(fallback);
  if (set->chains_.empty() && set->default_) set->only_ = set->default_.get();
  if (criteria_free) set->only_ = set->chains_[0].get();
  return set;
}

const FilterChain* FilterChainSet::find(const ChainMatchInput& input) const {
  const FilterChain* best = nullptr;
  FilterChain::Specificity best_s;
  for (const auto& c : chains_) {
    FilterChain::Specificity s;
    if (!c->match(input, &s)) continue;
    // Ties cannot happen between distinct criteria sets except across criteria kinds; the first
    // in config order wins then.
    if (best == nullptr || s > best_s) {
      best = c.get();
      best_s = s;
    }
  }
  return best != nullptr ? best : default_.get();
}

}  // namespace sluice::server
