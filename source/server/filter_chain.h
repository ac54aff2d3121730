#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/listener.pb.h"
#include "source/network/address.h"
#include "source/network/filter_context.h"
#include "source/network/transport_socket.h"

namespace sluice::server {

// An IP prefix (CidrRange), for matching a client's address.
struct CidrPrefix {
  int family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  uint32_t length = 0;

  static absl::StatusOr<CidrPrefix> Parse(const config::v1::CidrRange& range);
  bool contains(const network::Address& address) const;
};

// What is known of a new connection when its chain is chosen.
struct ChainMatchInput {
  uint16_t destination_port = 0;
  const network::Address* source = nullptr;
  std::string_view server_name;                    // from the ClientHello; empty: none or not TLS
  const std::vector<std::string>* alpn = nullptr;  // offered by the client; null: none
};

// One listener filter chain, built: its match, its transport, its network filters. Immutable;
// shared by the workers.
struct FilterChain {
  std::string name;
  // Match (FilterChainMatch); empty criteria match anything.
  std::vector<std::string> exact_names;        // lower case
  std::vector<std::string> wildcard_suffixes;  // "*.example.com" kept as ".example.com"
  std::vector<std::string> alpn;
  uint32_t destination_port = 0;
  std::vector<CidrPrefix> source_prefixes;

  // Null: plaintext (the connection's embedded raw socket).
  std::unique_ptr<network::TransportSocketFactory> transport;
  std::vector<network::FilterFactory> filter_factories;

  bool secure() const { return transport != nullptr && transport->implementsSecureTransport(); }
  bool matchesOnClientHello() const {
    return !exact_names.empty() || !wildcard_suffixes.empty() || !alpn.empty();
  }

  // How specifically this chain matches `input`, compared as a tuple in Envoy's order (port,
  // server name, ALPN, source prefix); nullopt when it does not match.
  struct Specificity {
    uint32_t port = 0;
    uint32_t name = 0;  // 0 none, 1 + suffix length for a wildcard, 1000 + length for exact
    uint32_t alpn = 0;
    uint32_t source = 0;  // 1 + prefix length
    auto operator<=>(const Specificity&) const = default;
  };
  bool match(const ChainMatchInput& input, Specificity* out) const;
};

// The chains of one listener and the choice between them.
class FilterChainSet {
 public:
  // Takes the chains in config order; `fallback` may be null (unmatched connections close).
  // Fails when two chains have the same match (the choice between them would be arbitrary).
  static absl::StatusOr<std::unique_ptr<FilterChainSet>> Create(
      std::vector<std::unique_ptr<FilterChain>> chains, std::unique_ptr<FilterChain> fallback,
      const std::string& path);

  // The most specific matching chain, else the default; null when neither.
  const FilterChain* find(const ChainMatchInput& input) const;
  // Whether choosing needs the ClientHello (some chain matches on server name or ALPN).
  bool needsClientHello() const { return needs_client_hello_; }
  // The one chain when there is no choice to make (a single chain with no criteria, or only a
  // default): accepted connections skip matching.
  const FilterChain* only() const { return only_; }
  bool anySecure() const { return any_secure_; }
  // Whether some chain matches on the destination port (the accepted socket's local port must
  // be looked up).
  bool matchesDestinationPort() const { return matches_port_; }

 private:
  std::vector<std::unique_ptr<FilterChain>> chains_;
  std::unique_ptr<FilterChain> default_;
  bool needs_client_hello_ = false;
  bool any_secure_ = false;
  bool matches_port_ = false;
  const FilterChain* only_ = nullptr;
};

}  // namespace sluice::server
