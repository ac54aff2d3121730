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
#include "source/network/transport_socket.h"

namespace sluice::tls {

// Counters of one TLS context (a listener's filter chain), as Envoy names them under
// `<scope>.ssl.`.
struct SslStats {
  explicit SslStats(const stats::Scope& scope);
  stats::Counter& handshake;         // handshakes completed
  stats::Counter& session_reused;    // ... of which resumed
  stats::Counter& connection_error;  // handshakes that failed (alert, bad record, reset)
  stats::Counter& handshake_timeout;
  stats::Counter& sni_no_match;  // a client sent a server name no certificate matches
  stats::Counter& tls_v1_2;
  stats::Counter& tls_v1_3;
  // mTLS refusals: no certificate when one is required, a chain that does not verify, a SAN or
  // subject not allowed, a fingerprint not listed.
  stats::Counter& fail_verify_no_cert;
  stats::Counter& fail_verify_error;
  stats::Counter& fail_verify_san;
  stats::Counter& fail_verify_cert_hash;
  stats::Counter& ocsp_staple_responses;  // handshakes that got a staple
  stats::Counter& ocsp_staple_omitted;    // asked for one; none valid to give
  stats::Counter& ocsp_staple_expired;    // STRICT_STAPLING refused a handshake
  // enable_ktls asked for, but the records stay in user space (see KernelTlsAvailable).
  stats::Counter& ktls_unavailable;
};

// A session ticket key (80 bytes as nginx and Envoy write them, or 48).
struct TicketKey {
  uint8_t name[16];
  uint8_t hmac[32];
  uint8_t aes[32];
  size_t key_len;  // 16 (a 48-byte file: AES-128, HMAC key 16) or 32
};

// The peer-certificate checks beyond the chain (CertificateValidationContext).
struct PeerCheck {
  std::vector<std::string> sans;      // DNS (with "*." wildcards) or URI, lower case for DNS
  std::vector<std::string> subjects;  // RFC 2253
  std::vector<std::string> hashes;    // SHA-256, lower-case hex without colons
  bool empty() const { return sans.empty() && subjects.empty() && hashes.empty(); }
  // Which check failed (nullptr: none): "san", "hash".
  const char* check(X509* cert) const;
};

// What the handshake learned about the peer's certificate (PeerCertificateInfo).
struct PeerInfo {
  bool presented = false;
  bool validated = false;
  std::string subject;
  std::vector<std::string> sans;
  std::string fingerprint;
  static PeerInfo Of(const SSL* ssl);
};
// RFC 2253 subject; DNS and URI SANs ("DNS:a.example", "URI:spiffe://..."); SHA-256 hex.
std::string SubjectOf(X509* cert);
std::vector<std::string> SansOf(X509* cert, bool typed);
std::string FingerprintOf(X509* cert);

// What a TLS socket needs of its context, server or client. Set as ex_data on every SSL_CTX it
// makes, so BoringSSL's callbacks find their way back.
class SslContext {
 public:
  virtual ~SslContext() = default;
  // A new SSL for one connection (null only when out of memory).
  virtual bssl::UniquePtr<SSL> newSsl(const network::TransportSocketOptions* options) const = 0;
  // 0: none of its own (a client's handshake is bounded by the cluster's connect timeout).
  virtual std::chrono::milliseconds handshakeTimeout() const = 0;
  virtual bool isServer() const = 0;
  SslStats& stats() const { return *stats_; }

  static const SslContext* FromSsl(const SSL* ssl);

 protected:
  // Sets the ex_data that FromSsl reads and the peer verification callback's checks.
  void attach(SSL_CTX* ctx) const;
  // Verification of the peer's chain plus the PeerCheck allow-lists, counted in stats_.
  static int VerifyPeer(int preverify_ok, X509_STORE_CTX* store);

  std::shared_ptr<SslStats> stats_;
  PeerCheck peer_check_;
};

// The allow-lists of a CertificateValidationContext (SANs, subjects, pinned SHA-256 hashes,
// checked as hex); `path` names it for errors.
absl::StatusOr<PeerCheck> ParsePeerCheck(const config::v1::CertificateValidationContext& v,
                                         const std::string& path);
// The PEM certificates of a CA bundle (at least one, or an error naming `path`).
absl::StatusOr<std::vector<bssl::UniquePtr<X509>>> LoadCaBundle(
    const config::v1::DataSource& source, const std::string& path);

// Applies TlsParameters (versions, TLS 1.2 ciphers, curves) to `ctx`; `path` names the field for
// errors.
absl::Status ApplyTlsParams(SSL_CTX* ctx, const config::v1::TlsParameters& params,
                            const std::string& path);
// Loads a PEM chain and key (TlsCertificate) into `ctx`; sets *leaf and *ecdsa when given.
absl::Status LoadCertificate(SSL_CTX* ctx, const config::v1::TlsCertificate& cert,
                             const std::string& path, bssl::UniquePtr<X509>* leaf, bool* ecdsa);

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
class ServerContext : public SslContext {
 public:
  // `path` names the config field for errors; `default_alpn` applies when the config lists
  // none (the HTTP listener's protocols).
  // `generated_keys`: the ticket keys used when the config names no key files (the first
  // encrypts) — made by the owner (the chain's factory, from GeneratedTicketKeys), so that
  // tickets outlive a certificate reload and a hot restart.
  static absl::StatusOr<std::shared_ptr<const ServerContext>> Create(
      const config::v1::DownstreamTlsContext& config, const std::string& path,
      const std::vector<std::string>& default_alpn, std::shared_ptr<SslStats> stats,
      const std::vector<TicketKey>* generated_keys = nullptr);
  bool earlyDataEnabled() const { return early_data_; }
  // enable_ktls was asked for (and could not be honoured: see tls.proto).
  bool ktlsRequested() const { return ktls_; }
  ~ServerContext();

  bssl::UniquePtr<SSL> newSsl(const network::TransportSocketOptions* options) const override;
  std::chrono::milliseconds handshakeTimeout() const override { return handshake_timeout_; }
  bool isServer() const override { return true; }

  // What the server context of an SSL is, from BoringSSL's callbacks.
  static const ServerContext* FromSsl(const SSL* ssl) {
    return static_cast<const ServerContext*>(SslContext::FromSsl(ssl));
  }

 private:
  struct Certificate {
    bssl::UniquePtr<SSL_CTX> ctx;
    bool ecdsa = false;
    std::vector<std::string> dns_names;  // lower case, "*.example.com" kept as written
    std::string ocsp;                    // DER; empty: none configured
    int64_t ocsp_next_update = 0;        // seconds since the epoch; 0: does not expire
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
  static int TicketKeyCallback(SSL* ssl, uint8_t* key_name, uint8_t* iv, EVP_CIPHER_CTX* cipher,
                               HMAC_CTX* hmac, int encrypt);
  absl::Status loadTicketKeys(const config::v1::DownstreamTlsContext& config,
                              const std::string& path);
  absl::Status configureValidation(SSL_CTX* ctx, const config::v1::DownstreamTlsContext& config);

  std::vector<Certificate> certs_;
  // Server name → indexes into certs_, in config order. Wildcards keyed without the star
  // (".example.com").
  absl::flat_hash_map<std::string, std::vector<size_t>> exact_;
  absl::flat_hash_map<std::string, std::vector<size_t>> wildcard_;
  std::vector<size_t> all_;
  // ALPN protocols in wire form (length-prefixed), in preference order.
  std::string alpn_;
  std::chrono::milliseconds handshake_timeout_{10000};
  std::vector<TicketKey> ticket_keys_;  // empty: BoringSSL's own
  bool strict_stapling_ = false;
  bool early_data_ = false;
  bool ktls_ = false;
  // The client CA bundle, PEM, parsed once and added to every certificate's SSL_CTX.
  std::vector<bssl::UniquePtr<X509>> client_cas_;
};

// Reads a DataSource (file or inline) for errors that name `path`.
absl::StatusOr<std::string> ReadDataSource(const config::v1::DataSource& source,
                                           const std::string& path);

}  // namespace sluice::tls
