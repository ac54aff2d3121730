#include "source/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "source/common/logging.h"
#include "source/tls/ssl_socket.h"

namespace sluice::tls {

absl::StatusOr<std::shared_ptr<const ClientContext>> ClientContext::Create(
    const config::v1::UpstreamTlsContext& config, const std::string& path,
    std::shared_ptr<SslStats> stats) {
  std::shared_ptr<ClientContext> c(new ClientContext());
  c->stats_ = std::move(stats);
  c->ctx_.reset(SSL_CTX_new(TLS_method()));
  if (!c->ctx_) return absl::ResourceExhaustedError("SSL_CTX_new failed");
  SSL_CTX* ctx = c->ctx_.get();
  const auto& common = config.common_tls_context();
  const std::string common_path = path + ".common_tls_context";
  if (auto st = ApplyTlsParams(ctx, common.tls_params(), common_path + ".tls_params"); !st.ok()) {
    return st;
  }
  if (common.tls_certificates_size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(common_path, ".tls_certificates: at most one client certificate"));
  }
  if (common.tls_certificates_size() == 1) {
    if (auto st = LoadCertificate(ctx, common.tls_certificates(0),
                                  common_path + ".tls_certificates[0]", nullptr, nullptr);
        !st.ok()) {
      return st;
    }
  }
  for (const std::string& p : common.alpn_protocols()) {
    if (p.empty() || p.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat(common_path, ".alpn_protocols: each must be 1 to 255 bytes"));
    }
    c->alpn_.push_back(static_cast<char>(p.size()));
    c->alpn_.append(p);
  }
  c->sni_ = absl::AsciiStrToLower(config.sni());
  if (config.max_session_keys() != 0) c->max_sessions_ = config.max_session_keys();

  const auto& validation = common.validation_context();
  const std::string vpath = common_path + ".validation_context";
  if (config.insecure_skip_verify()) {
    SLUICE_LOG(kWarn, "%s.insecure_skip_verify: the upstream's certificate is not verified", path);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    if (validation.has_trusted_ca()) {
      auto cas = LoadCaBundle(validation.trusted_ca(), vpath + ".trusted_ca");
      if (!cas.ok()) return cas.status();
      for (const auto& ca : *cas) {
        if (X509_STORE_add_cert(store, ca.get()) != 1) ERR_clear_error();  // a duplicate
      }
    } else {
      if (access(kSystemCaBundle, R_OK) != 0 ||
          X509_STORE_load_locations(store, kSystemCaBundle, nullptr) != 1) {
        ERR_clear_error();
        return absl::InvalidArgumentError(
            absl::StrCat(vpath, ".trusted_ca: not given, and the system bundle ", kSystemCaBundle,
                         " cannot be read (install ca-certificates, or name a CA file)"));
      }
    }
    auto check = ParsePeerCheck(validation, vpath);
    if (!check.ok()) return check.status();
    c->peer_check_ = std::move(*check);
    // Without an explicit list, the certificate must name the server we asked for.
    if (c->peer_check_.sans.empty() && c->peer_check_.subjects.empty()) c->verify_name_ = c->sni_;
    SSL_CTX_set_verify_depth(ctx, validation.max_verify_depth() != 0
                                      ? static_cast<int>(validation.max_verify_depth())
                                      : 4);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, &SslContext::VerifyPeer);
  }
  // Sessions to resume: BoringSSL hands each new one (TLS 1.3: each ticket) to OnNewSession.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, &ClientContext::OnNewSession);
  c->attach(ctx);
  return std::shared_ptr<const ClientContext>(std::move(c));
}

bssl::UniquePtr<SSL> ClientContext::newSsl(const network::TransportSocketOptions* options) const {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl) return ssl;
  SSL_set_connect_state(ssl.get());
  const std::string& name =
      options != nullptr && !options->server_name.empty() ? options->server_name : sni_;
  if (!name.empty()) SSL_set_tlsext_host_name(ssl.get(), name.c_str());
  if (!verify_name_.empty()) {
    X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl.get()), verify_name_.data(),
                                verify_name_.size());
  }
  if (!alpn_.empty()) {
    SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const uint8_t*>(alpn_.data()), alpn_.size());
  }
  absl::MutexLock lock(&mu_);
  if (auto it = sessions_.find(name); it != sessions_.end())
    SSL_set_session(ssl.get(), it->second.get());
  return ssl;
}

int ClientContext::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  const auto* self = static_cast<const ClientContext*>(SslContext::FromSsl(ssl));
  if (self == nullptr) return 0;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  absl::MutexLock lock(&self->mu_);
  auto it = self->sessions_.find(name != nullptr ? name : "");
  if (it == self->sessions_.end() && self->sessions_.size() >= self->max_sessions_) {
    self->sessions_.erase(self->sessions_.begin());  // any: the bound matters, not which
  }
  // Ownership of `session` is ours when we return 1.
  self->sessions_[name != nullptr ? name : ""].reset(session);
  return 1;
}

network::TransportSocketPtr ClientSslSocketFactory::createTransportSocket(
    const network::TransportSocketOptions* options) const {
  return std::make_unique<SslSocket>(context_, options);
}

}  // namespace sluice::tls
