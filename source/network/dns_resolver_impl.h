#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "source/event/dispatcher.h"
#include "source/network/address.h"
#include "source/network/dns_resolver.h"

namespace sluice::network {

// A c-ares channel driven by a dispatcher: c-ares's sockets are watched by the loop and its
// retransmission timeouts run on a timer. `servers` empty: the system's (/etc/resolv.conf,
// /etc/hosts first).
absl::StatusOr<DnsResolverPtr> CreateDnsResolver(event::Dispatcher& dispatcher,
                                                 const std::vector<Address>& servers);

}  // namespace sluice::network
