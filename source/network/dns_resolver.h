#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/network/address.h"

namespace sluice::network {

// Which addresses of a name a lookup returns.
enum class DnsLookupFamily {
  kV4Preferred,  // the IPv4 addresses if there are any, else the IPv6 ones
  kV4Only,
  kV6Only,
  kAll,
};

struct DnsResponse {
  // Sorted, without duplicates, each with the port asked for.
  std::vector<Address> addresses;
  // The shortest TTL of the records used; 0 when unknown (e.g. /etc/hosts, an IP literal).
  std::chrono::seconds ttl{0};
};

// A lookup in progress.
class DnsQuery {
 public:
  virtual ~DnsQuery() = default;
  // The callback will not run. The query is freed by the resolver.
  virtual void cancel() = 0;
};

// Asynchronous name resolution on one dispatcher's thread: lookups never block the loop.
class DnsResolver {
 public:
  // An error status (NOT_FOUND for a name that does not exist or has no address of the
  // family, UNAVAILABLE for a server that failed or did not answer), or the addresses.
  using Callback = std::function<void(absl::StatusOr<DnsResponse>)>;
  virtual ~DnsResolver() = default;
  // Resolves `name` (a DNS name, or an IP literal returned as is). The callback runs later on
  // the dispatcher's thread, never inside this call. The returned query stays valid until the
  // callback runs or it is cancelled.
  virtual DnsQuery* resolve(const std::string& name, uint16_t port, DnsLookupFamily family,
                            Callback callback) = 0;
};
using DnsResolverPtr = std::unique_ptr<DnsResolver>;

}  // namespace sluice::network
