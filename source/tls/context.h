#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "api/sluice/config/v1/tls.pb.h"
#include "source/common/stats.h"

namespace sluice::tls {

// Counters of one TLS context (a listener's filter chain), as Envoy names them under
// `<scope>.ssl.`.
struct SslStats {
  explicit SslStats(stats::Store& store, const std::string& scope);
  stats::Counter& handshake;         // handshakes completed
  stats::Counter& session_reused;    // ... of which resumed
  stats::Counter& connection_error;  // handshakes that failed (alert, bad record, reset)
  stats::Counter& handshake_timeout;
  stats::Counter& no_certificate;  // a client sent a server name no certificate matches
  stats::Counter& tls_v1_2;
  stats::Counter& tls_v1_3;
};

// An immutable server TLS context: the certificates of one filter chain, chosen per connection
// by SNI and by the client's signature algorithms, with the protocol settings they share.
// Shared by every worker (BoringSSL's SSL_CTX is thread-safe for SSL_new and the session cache;
// nothing here changes after Create) and kept alive by every connection that uses it, so that a
// reload can replace it under running connections.
//
// BoringSSL's SSL_CTX holds one certificate, so each certificate gets its own SSL_CTX, set up
// alike; connections start on the first and switch (SSL_set_SSL_CTX) in the early ClientHello
// callback, as Envoy does. Sessions (tickets, cache) stay with the first: they resume whichever
// certificate the session was made with.
class ServerContext {
 public:
  // `path` names the config field for errors; `default_alpn` applies when the config lists
  // none (the HTTP listener's protocols).
  static absl::StatusOr<std::shared_ptr<const ServerContext>> Create(
      const config::v1::DownstreamTlsContext& config, const std::string& path,
      const std::vector<std::string>& default_alpn, std::shared_ptr<SslStats> stats);
  ~ServerContext();

  // A new server-side SSL for one connection (null only when out of memory).
  bssl::UniquePtr<SSL> newSsl() const;
  std::chrono::milliseconds handshakeTimeout() const { return handshake_timeout_; }
  SslStats& stats() const { return *stats_; }

  // What the context of an SSL is, from BoringSSL's callbacks.
  static const ServerContext* FromSsl(const SSL* ssl);

 private:
  struct Certificate {
    bssl::UniquePtr<SSL_CTX> ctx;
    bool ecdsa = false;
    std::vector<std::string> dns_names;  // lower case, "*.example.com" kept as written
  };
  ServerContext() = default;
  absl::Status addCertificate(const config::v1::TlsCertificate& cert, const std::string& path);
  absl::Status configureCtx(SSL_CTX* ctx, const config::v1::DownstreamTlsContext& config,
                            const std::string& path, bool sessions);
  // The certificates serving `server_name` (exact, then the longest wildcard, else all).
  const std::vector<size_t>& candidates(std::string_view server_name, bool* matched) const;

  static enum ssl_select_cert_result_t SelectCertificate(const SSL_CLIENT_HELLO* hello);
  static int SelectAlpn(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                        unsigned in_len, void* arg);

  std::vector<Certificate> certs_;
  // Server name → indexes into certs_, in config order. Wildcards keyed without the star
  // (".example.com").
  absl::flat_hash_map<std::string, std::vector<size_t>> exact_;
  absl::flat_hash_map<std::string, std::vector<size_t>> wildcard_;
  std::vector<size_t> all_;
  // ALPN protocols in wire form (length-prefixed), in preference order.
  std::string alpn_;
  std::chrono::milliseconds handshake_timeout_{10000};
  std::shared_ptr<SslStats> stats_;
};

// Reads a DataSource (file or inline) for errors that name `path`.
absl::StatusOr<std::string> ReadDataSource(const config::v1::DataSource& source,
                                           const std::string& path);

}  // namespace sluice::tls
