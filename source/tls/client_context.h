#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/sluice/config/v1/tls.pb.h"
#include "source/network/transport_socket.h"
#include "source/tls/context.h"

namespace sluice::tls {

// An immutable client TLS context: one cluster's TLS to its hosts. Shared by the workers.
//
// Resumption: the last session each server name handed us (TLS 1.3 tickets arrive after the
// handshake, through BoringSSL's new-session callback) is kept and offered by the next
// connection. The store takes a mutex: a new upstream TLS connection is rare next to the
// requests pooled connections carry, and BoringSSL itself locks its SSL_CTX on the same path.
class ClientContext : public SslContext {
 public:
  static absl::StatusOr<std::shared_ptr<const ClientContext>> Create(
      const config::v1::UpstreamTlsContext& config, const std::string& path,
      std::shared_ptr<SslStats> stats);

  bssl::UniquePtr<SSL> newSsl(const network::TransportSocketOptions* options) const override;
  std::chrono::milliseconds handshakeTimeout() const override { return {}; }
  bool isServer() const override { return false; }

  // The system's CA bundle (Debian's ca-certificates), the default trust.
  static constexpr char kSystemCaBundle[] = "/etc/ssl/certs/ca-certificates.crt";

 private:
  ClientContext() = default;
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);

  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string sni_;
  // The name the upstream's certificate must carry (X509_VERIFY_PARAM_set1_host); empty: none.
  std::string verify_name_;
  std::string alpn_;  // wire form
  size_t max_sessions_ = 1024;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, bssl::UniquePtr<SSL_SESSION>> sessions_
      ABSL_GUARDED_BY(mu_);
};

// Builds the client TLS sockets of one cluster.
class ClientSslSocketFactory : public network::TransportSocketFactory {
 public:
  explicit ClientSslSocketFactory(std::shared_ptr<const ClientContext> context)
      : context_(std::move(context)) {}
  network::TransportSocketPtr createTransportSocket(
      const network::TransportSocketOptions* options = nullptr) const override;
  bool implementsSecureTransport() const override { return true; }

 private:
  std::shared_ptr<const ClientContext> context_;
};

}  // namespace sluice::tls
