#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/sluice/config/v1/cluster.pb.h"
#include "source/common/stats.h"
#include "source/http/codec.h"

namespace sluice::http {

// The codec factory of a cluster's upstream connections (cluster.proto, protocol): HTTP/1.1,
// HTTP/2 (h2c with prior knowledge, or over TLS), or AUTO: HTTP/2 when the TLS handshake's
// ALPN chose "h2", HTTP/1.1 otherwise. HTTP/2 counters are "<stat_prefix>http2.<name>". It is
// what upstream::ClusterManager::create takes (upstream::ClientCodecFactoryBuilder).
absl::StatusOr<std::unique_ptr<ClientCodecFactory>> CreateClientCodecFactory(
    const config::v1::Cluster& cluster, const stats::Scope& scope);

}  // namespace sluice::http
