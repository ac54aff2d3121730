#include "source/tls/context.h"

#include <fcntl.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/logging.h"
#include "source/tls/ocsp.h"

namespace sluice::tls {

namespace {
using google::protobuf::util::TimeUtil;

// TLS 1.2 suites when the config names none: forward secrecy and AEAD only. AES-GCM and
// ChaCha20 are of equal preference (the client picks: ChaCha20 on CPUs without AES
// instructions); 128-bit keys before 256 (as Envoy, nginx's Mozilla "intermediate" profile).
constexpr char kDefaultCiphers[] =
    "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]:"
    "[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr char kDefaultCurves[] = "X25519:P-256:P-384";
constexpr std::chrono::milliseconds kDefaultHandshakeTimeout{10000};
constexpr std::chrono::seconds kDefaultSessionTimeout{7200};

// The error queue as text (and cleared), for config errors.
std::string SslErrors() {
  std::vector<std::string> errors;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    errors.emplace_back(buf);
  }
  return errors.empty() ? "unknown error" : absl::StrJoin(errors, "; ");
}

int ContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

absl::StatusOr<uint16_t> ProtocolVersion(config::v1::TlsParameters::TlsProtocol v,
                                         uint16_t fallback, const std::string& path) {
  switch (v) {
    case config::v1::TlsParameters::TLS_AUTO:
      return fallback;
    case config::v1::TlsParameters::TLSv1_2:
      return TLS1_2_VERSION;
    case config::v1::TlsParameters::TLSv1_3:
      return TLS1_3_VERSION;
    case config::v1::TlsParameters::TLSv1_0:
    case config::v1::TlsParameters::TLSv1_1:
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       ": TLS 1.0 and 1.1 are not supported (deprecated by RFC 8996); the "
                       "oldest version sluice speaks is TLSv1_2"));
    default:
      return absl::InvalidArgumentError(absl::StrCat(path, ": unknown TLS version ", v));
  }
}

// Parses the server_name extension (RFC 6066 3): the first host_name, lower-cased.
std::string ServerNameOf(const SSL_CLIENT_HELLO* hello) {
  const uint8_t* data;
  size_t len;
  if (!SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_server_name, &data, &len) ||
      len < 2) {
    return {};
  }
  size_t list = (size_t{data[0]} << 8) | data[1];
  if (list + 2 > len) return {};
  size_t at = 2;
  while (at + 3 <= 2 + list) {
    const uint8_t type = data[at];
    const size_t n = (size_t{data[at + 1]} << 8) | data[at + 2];
    at += 3;
    if (at + n > 2 + list) return {};
    if (type == TLSEXT_NAMETYPE_host_name) {
      return absl::AsciiStrToLower(absl::string_view(reinterpret_cast<const char*>(data + at), n));
    }
    at += n;
  }
  return {};
}

// Whether the client can verify an ECDSA certificate: an ECDSA signature algorithm offered, and
// for a client that cannot do TLS 1.3, an ECDHE-ECDSA cipher suite too.
bool ClientTakesEcdsa(const SSL_CLIENT_HELLO* hello) {
  const uint8_t* data;
  size_t len;
  bool sigalg = false;
  if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &data, &len) &&
      len >= 2) {
    for (size_t i = 2; i + 1 < len; i += 2) {
      const uint16_t alg = static_cast<uint16_t>((data[i] << 8) | data[i + 1]);
      if (alg == SSL_SIGN_ECDSA_SECP256R1_SHA256 || alg == SSL_SIGN_ECDSA_SECP384R1_SHA384 ||
          alg == SSL_SIGN_ECDSA_SECP521R1_SHA512) {
        sigalg = true;
        break;
      }
    }
  }
  if (!sigalg) return false;
  if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_supported_versions, &data, &len) &&
      len >= 1) {
    for (size_t i = 1; i + 1 < len; i += 2) {
      if (((data[i] << 8) | data[i + 1]) == TLS1_3_VERSION) return true;
    }
  }
  for (size_t i = 0; i + 1 < hello->cipher_suites_len; i += 2) {
    const uint16_t id =
        static_cast<uint16_t>((hello->cipher_suites[i] << 8) | hello->cipher_suites[i + 1]);
    const SSL_CIPHER* cipher = SSL_get_cipher_by_value(id);
    if (cipher != nullptr && SSL_CIPHER_get_auth_nid(cipher) == NID_auth_ecdsa) return true;
  }
  return false;
}

// The DNS names a certificate serves: its DNS SANs, or its CN when it has none (as clients
// ignore the CN once SANs exist).
std::vector<std::string> DnsNames(X509* cert) {
  std::vector<std::string> names;
  for (std::string& san : SansOf(cert, /*typed=*/true)) {
    if (san.starts_with("DNS:")) names.push_back(san.substr(4));  // lower-cased by SansOf
  }
  if (!names.empty()) return names;
  X509_NAME* subject = X509_get_subject_name(cert);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
    names.push_back(absl::AsciiStrToLower(absl::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s))));
  }
  return names;
}
}  // namespace

SslStats::SslStats(const stats::Scope& scope)
    : handshake(scope.counter("ssl.handshake")),
      session_reused(scope.counter("ssl.session_reused")),
      connection_error(scope.counter("ssl.connection_error")),
      handshake_timeout(scope.counter("ssl.handshake_timeout")),
      sni_no_match(scope.counter("ssl.sni_no_match")),
      tls_v1_2(scope.counter("ssl.versions.TLSv1_2")),
      tls_v1_3(scope.counter("ssl.versions.TLSv1_3")),
      fail_verify_no_cert(scope.counter("ssl.fail_verify_no_cert")),
      fail_verify_error(scope.counter("ssl.fail_verify_error")),
      fail_verify_san(scope.counter("ssl.fail_verify_san")),
      fail_verify_cert_hash(scope.counter("ssl.fail_verify_cert_hash")),
      ocsp_staple_responses(scope.counter("ssl.ocsp_staple_responses")),
      ocsp_staple_omitted(scope.counter("ssl.ocsp_staple_omitted")),
      ocsp_staple_expired(scope.counter("ssl.ocsp_staple_expired")),
      ktls_unavailable(scope.counter("ssl.ktls_unavailable")) {}

std::string SubjectOf(X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    return {};
  }
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::vector<std::string> SansOf(X509* cert, bool typed) {
  std::vector<std::string> out;
  bssl::UniquePtr<GENERAL_NAMES> sans(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!sans) return out;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans.get(), i);
    const ASN1_STRING* s = nullptr;
    const char* type = nullptr;
    if (name->type == GEN_DNS) {
      s = name->d.dNSName;
      type = "DNS:";
    } else if (name->type == GEN_URI) {
      s = name->d.uniformResourceIdentifier;
      type = "URI:";
    } else {
      continue;
    }
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      ASN1_STRING_length(s));
    if (name->type == GEN_DNS) value = absl::AsciiStrToLower(value);
    out.push_back(typed ? absl::StrCat(type, value) : value);
  }
  return out;
}

std::string FingerprintOf(X509* cert) {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

PeerInfo PeerInfo::Of(const SSL* ssl) {
  PeerInfo info;
  bssl::UniquePtr<X509> cert(SSL_get_peer_certificate(ssl));
  if (!cert) return info;
  info.presented = true;
  info.validated = SSL_get_verify_result(ssl) == X509_V_OK;
  info.subject = SubjectOf(cert.get());
  info.sans = SansOf(cert.get(), /*typed=*/true);
  info.fingerprint = FingerprintOf(cert.get());
  return info;
}

const char* PeerCheck::check(X509* cert) const {
  if (!hashes.empty()) {
    const std::string fp = FingerprintOf(cert);
    if (std::find(hashes.begin(), hashes.end(), fp) == hashes.end()) return "hash";
  }
  if (sans.empty() && subjects.empty()) return nullptr;
  if (!subjects.empty()) {
    const std::string subject = SubjectOf(cert);
    if (std::find(subjects.begin(), subjects.end(), subject) != subjects.end()) return nullptr;
  }
  for (const std::string& san : SansOf(cert, /*typed=*/false)) {
    for (const std::string& allowed : sans) {
      if (san == allowed) return nullptr;
      // "*.example.com" allows one label in place of the star (RFC 6125 6.4.3), DNS only.
      if (allowed.size() > 2 && allowed[0] == '*' && allowed[1] == '.') {
        const size_t dot = san.find('.');
        if (dot != std::string::npos && dot > 0 && san.find(':') == std::string::npos &&
            san.substr(dot) == allowed.substr(1)) {
          return nullptr;
        }
      }
    }
  }
  return "san";
}

absl::StatusOr<std::string> ReadDataSource(const config::v1::DataSource& source,
                                           const std::string& path) {
  switch (source.specifier_case()) {
    case config::v1::DataSource::kInlineString:
      return source.inline_string();
    case config::v1::DataSource::kFilename:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": required (filename or inline_string)"));
  }
  const std::string& file = source.filename();
  const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open ", file));
  }
  std::string content;
  char buffer[16 * 1024];
  while (true) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      content.append(buffer, static_cast<size_t>(n));
      // Certificates, keys and staples are small; anything this large is the wrong file.
      if (content.size() > 4 * 1024 * 1024) {
        close(fd);
        return absl::InvalidArgumentError(absl::StrCat(path, ": ", file, " is over 4 MiB"));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int error = errno;
    close(fd);
    if (n < 0) return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot read ", file));
    return content;
  }
}

const SslContext* SslContext::FromSsl(const SSL* ssl) {
  return static_cast<const SslContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ContextIndex()));
}

void SslContext::attach(SSL_CTX* ctx) const {
  SSL_CTX_set_ex_data(ctx, ContextIndex(), const_cast<SslContext*>(this));
}

absl::StatusOr<PeerCheck> ParsePeerCheck(const config::v1::CertificateValidationContext& v,
                                         const std::string& path) {
  PeerCheck check;
  for (const std::string& san : v.match_subject_alt_names()) {
    // DNS names compare case-insensitively; "URI:..." entries as written.
    check.sans.push_back(san.find(':') == std::string::npos ? absl::AsciiStrToLower(san) : san);
  }
  check.subjects.assign(v.match_subjects().begin(), v.match_subjects().end());
  for (int h = 0; h < v.verify_certificate_hash_size(); ++h) {
    // As openssl prints them ("AB:CD:...") or plain hex.
    std::string hex;
    for (char c : v.verify_certificate_hash(h)) {
      if (c != ':') hex.push_back(absl::ascii_tolower(c));
    }
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".verify_certificate_hash[", h,
                                                     "]: not a SHA-256 in hex (64 digits)"));
    }
    check.hashes.push_back(std::move(hex));
  }
  return check;
}

absl::StatusOr<std::vector<bssl::UniquePtr<X509>>> LoadCaBundle(
    const config::v1::DataSource& source, const std::string& path) {
  auto pem = ReadDataSource(source, path);
  if (!pem.ok()) return pem.status();
  std::vector<bssl::UniquePtr<X509>> cas;
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem->data(), static_cast<long>(pem->size())));
  while (bssl::UniquePtr<X509> ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    cas.push_back(std::move(ca));
  }
  ERR_clear_error();  // the end of the PEM data
  if (cas.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no PEM certificate could be read"));
  }
  return cas;
}

absl::Status ApplyTlsParams(SSL_CTX* ctx, const config::v1::TlsParameters& params,
                            const std::string& params_path) {
  auto min = ProtocolVersion(params.tls_minimum_protocol_version(), TLS1_2_VERSION,
                             params_path + ".tls_minimum_protocol_version");
  if (!min.ok()) return min.status();
  auto max = ProtocolVersion(params.tls_maximum_protocol_version(), TLS1_3_VERSION,
                             params_path + ".tls_maximum_protocol_version");
  if (!max.ok()) return max.status();
  if (*min > *max) {
    return absl::InvalidArgumentError(
        absl::StrCat(params_path, ": the minimum version is above the maximum"));
  }
  SSL_CTX_set_min_proto_version(ctx, *min);
  SSL_CTX_set_max_proto_version(ctx, *max);
  const std::string ciphers = params.cipher_suites_size() > 0
                                  ? absl::StrJoin(params.cipher_suites(), ":")
                                  : std::string(kDefaultCiphers);
  if (SSL_CTX_set_strict_cipher_list(ctx, ciphers.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(params_path, ".cipher_suites: ", SslErrors()));
  }
  const std::string curves = params.ecdh_curves_size() > 0
                                 ? absl::StrJoin(params.ecdh_curves(), ":")
                                 : std::string(kDefaultCurves);
  if (SSL_CTX_set1_curves_list(ctx, curves.c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(params_path, ".ecdh_curves: unknown curve in \"", curves, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ServerContext>> ServerContext::Create(
    const config::v1::DownstreamTlsContext& config, const std::string& path,
    const std::vector<std::string>& default_alpn, std::shared_ptr<SslStats> stats,
    const std::vector<TicketKey>* generated_keys) {
  std::shared_ptr<ServerContext> context(new ServerContext());
  context->early_data_ = config.enable_early_data();
  context->ktls_ = config.enable_ktls();
  context->stats_ = std::move(stats);
  const auto& common = config.common_tls_context();
  const std::string common_path = absl::StrCat(path, ".common_tls_context");
  if (common.tls_certificates_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(common_path, ".tls_certificates: at least one certificate is required"));
  }
  const auto& protocols =
      common.alpn_protocols_size() > 0
          ? std::vector<std::string>(common.alpn_protocols().begin(), common.alpn_protocols().end())
          : default_alpn;
  for (size_t i = 0; i < protocols.size(); ++i) {
    const std::string& p = protocols[i];
    if (p.empty() || p.size() > 255) {
      return absl::InvalidArgumentError(absl::StrCat(common_path, ".alpn_protocols[", i,
                                                     "]: must be 1 to 255 bytes, got ", p.size()));
    }
    context->alpn_.push_back(static_cast<char>(p.size()));
    context->alpn_.append(p);
  }
  if (config.has_handshake_timeout()) {
    context->handshake_timeout_ =
        std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(config.handshake_timeout()));
    if (context->handshake_timeout_.count() <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".handshake_timeout: must be positive"));
    }
  } else {
    context->handshake_timeout_ = kDefaultHandshakeTimeout;
  }
  context->strict_stapling_ =
      config.ocsp_staple_policy() == config::v1::DownstreamTlsContext::STRICT_STAPLING;
  if (auto s = context->loadTicketKeys(config, path); !s.ok()) return s;
  if (context->ticket_keys_.empty() && generated_keys != nullptr) {
    context->ticket_keys_ = *generated_keys;
  }
  if (config.client_certificate() != config::v1::DownstreamTlsContext::NONE) {
    const auto& validation = common.validation_context();
    const std::string vpath = common_path + ".validation_context";
    if (!validation.has_trusted_ca()) {
      return absl::InvalidArgumentError(absl::StrCat(
          vpath, ".trusted_ca: required to verify client certificates (client_certificate is ",
          config::v1::DownstreamTlsContext::ClientCertificateMode_Name(config.client_certificate()),
          ")"));
    }
    auto cas = LoadCaBundle(validation.trusted_ca(), vpath + ".trusted_ca");
    if (!cas.ok()) return cas.status();
    context->client_cas_ = std::move(*cas);
    auto check = ParsePeerCheck(validation, vpath);
    if (!check.ok()) return check.status();
    context->peer_check_ = std::move(*check);
  } else if (common.has_validation_context()) {
    return absl::InvalidArgumentError(
        absl::StrCat(common_path,
                     ".validation_context: client certificates are not asked for; set "
                     "client_certificate to OPTIONAL or REQUIRE"));
  }
  for (int i = 0; i < common.tls_certificates_size(); ++i) {
    const std::string cert_path = absl::StrCat(common_path, ".tls_certificates[", i, "]");

    if (auto s = context->addCertificate(common.tls_certificates(i), cert_path); !s.ok()) return s;
    Certificate& cert = context->certs_.back();
    if (auto s = context->configureCtx(cert.ctx.get(), config, path, /*sessions=*/i == 0);
        !s.ok()) {
      return s;
    }
    if (auto s = context->configureValidation(cert.ctx.get(), config); !s.ok()) return s;
    const size_t index = context->certs_.size() - 1;
    context->all_.push_back(index);
    for (const std::string& name : cert.dns_names) {
      if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
        context->wildcard_[name.substr(1)].push_back(index);
      } else {
        context->exact_[name].push_back(index);
      }
    }
  }
  return std::shared_ptr<const ServerContext>(std::move(context));
}

absl::Status LoadCertificate(SSL_CTX* ctx, const config::v1::TlsCertificate& config,
                             const std::string& path, bssl::UniquePtr<X509>* leaf, bool* ecdsa) {
  auto chain = ReadDataSource(config.certificate_chain(), path + ".certificate_chain");
  if (!chain.ok()) return chain.status();
  auto key = ReadDataSource(config.private_key(), path + ".private_key");
  if (!key.ok()) return key.status();
  if (ecdsa != nullptr) *ecdsa = false;
  ERR_clear_error();
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(chain->data(), static_cast<long>(chain->size())));
  bssl::UniquePtr<X509> leaf_cert(PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf_cert || SSL_CTX_use_certificate(ctx, leaf_cert.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".certificate_chain: no PEM certificate could be read (", SslErrors(), ")"));
  }
  while (true) {
    bssl::UniquePtr<X509> ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!ca) break;
    if (SSL_CTX_add1_chain_cert(ctx, ca.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".certificate_chain: ", SslErrors()));
    }
  }
  // The loop ends at the end of the PEM data (an error it leaves in the queue); anything else is
  // a broken intermediate.
  const uint32_t last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".certificate_chain: an intermediate is broken (", SslErrors(), ")"));
  }
  ERR_clear_error();

  bssl::UniquePtr<BIO> key_bio(BIO_new_mem_buf(key->data(), static_cast<long>(key->size())));
  bssl::UniquePtr<EVP_PKEY> pkey(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  // The key's bytes are not needed any more: wipe them rather than leave them to the allocator.
  OPENSSL_cleanse(key->data(), key->size());
  if (!pkey) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".private_key: no PEM private key could be read (encrypted keys are not supported)"));
  }
  switch (EVP_PKEY_id(pkey.get())) {
    case EVP_PKEY_EC:
      if (ecdsa != nullptr) *ecdsa = true;
      break;
    case EVP_PKEY_RSA:
      if (EVP_PKEY_bits(pkey.get()) < 2048) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".private_key: RSA keys must have at least 2048 bits, got ",
                         EVP_PKEY_bits(pkey.get())));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".private_key: only RSA and ECDSA keys are supported"));
  }
  if (SSL_CTX_use_PrivateKey(ctx, pkey.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": the private key does not match the certificate"));
  }
  if (leaf != nullptr) *leaf = std::move(leaf_cert);
  return absl::OkStatus();
}

absl::Status ServerContext::addCertificate(const config::v1::TlsCertificate& config,
                                           const std::string& path) {
  Certificate cert;
  cert.ctx.reset(SSL_CTX_new(TLS_method()));
  if (!cert.ctx) return absl::ResourceExhaustedError("SSL_CTX_new failed");
  bssl::UniquePtr<X509> leaf;
  if (auto st = LoadCertificate(cert.ctx.get(), config, path, &leaf, &cert.ecdsa); !st.ok()) {
    return st;
  }
  cert.dns_names = DnsNames(leaf.get());
  if (config.has_ocsp_staple()) {
    auto der = ReadDataSource(config.ocsp_staple(), path + ".ocsp_staple");
    if (!der.ok()) return der.status();
    auto info = ParseOcspResponse(*der, leaf.get());
    if (!info.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".ocsp_staple: ", info.status().message()));
    }
    const int64_t now = static_cast<int64_t>(time(nullptr));
    if (info->next_update != 0 && info->next_update <= now) {
      if (strict_stapling_) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".ocsp_staple: the response has expired (STRICT_STAPLING)"));
      }
      SLUICE_LOG(kWarn, "%s.ocsp_staple: the response has expired; it is not stapled", path);
    }
    cert.ocsp = std::move(*der);
    cert.ocsp_next_update = info->next_update;
  }

  for (const Certificate& other : certs_) {
    if (other.ecdsa == cert.ecdsa && other.dns_names == cert.dns_names) {
      SLUICE_LOG(kWarn, "%s: another %s certificate serves the same names (%s); the first wins",
                 path, cert.ecdsa ? "ECDSA" : "RSA", absl::StrJoin(cert.dns_names, ", "));
    }
  }
  certs_.push_back(std::move(cert));
  return absl::OkStatus();
}

absl::Status ServerContext::configureCtx(SSL_CTX* ctx,
                                         const config::v1::DownstreamTlsContext& config,
                                         const std::string& path, bool sessions) {
  if (auto st = ApplyTlsParams(ctx, config.common_tls_context().tls_params(),
                               path + ".common_tls_context.tls_params");
      !st.ok()) {
    return st;
  }
  // The server's order decides among suites the client offers (the curated list is ours).
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  attach(ctx);
  SSL_CTX_set_select_certificate_cb(ctx, &ServerContext::SelectCertificate);
  if (!alpn_.empty()) SSL_CTX_set_alpn_select_cb(ctx, &ServerContext::SelectAlpn, this);

  // Sessions live on the first context (the one every connection starts on), whichever
  // certificate a connection then switches to.
  if (sessions) {
    const auto timeout = config.has_session_timeout()
                             ? std::chrono::seconds(config.session_timeout().seconds())
                             : kDefaultSessionTimeout;
    SSL_CTX_set_timeout(ctx, static_cast<uint32_t>(timeout.count()));
    SSL_CTX_set_session_psk_dhe_timeout(ctx, static_cast<uint32_t>(timeout.count()));
    // Tickets: BoringSSL generates the keys and rotates them; one SSL_CTX for all workers
    // means a ticket issued by one worker resumes on any other.
    if (config.disable_stateless_session_resumption()) {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    } else if (!ticket_keys_.empty()) {
      SSL_CTX_set_tlsext_ticket_key_cb(ctx, &ServerContext::TicketKeyCallback);
    }
    if (config.session_cache_size() > 0) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_sess_set_cache_size(ctx, config.session_cache_size());
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    // 0-RTT: BoringSSL accepts early data on resumption with a ticket that allowed it (it
    // marks the tickets it issues); the HTTP layer decides what may be served from it.
    if (early_data_) SSL_CTX_set_early_data_enabled(ctx, 1);
    static constexpr uint8_t kSessionContext[] = "sluice";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  }
  return absl::OkStatus();
}

bssl::UniquePtr<SSL> ServerContext::newSsl(const network::TransportSocketOptions*) const {
  bssl::UniquePtr<SSL> ssl(SSL_new(certs_.front().ctx.get()));
  if (ssl) SSL_set_accept_state(ssl.get());
  return ssl;
}

const std::vector<size_t>& ServerContext::candidates(std::string_view name, bool* matched) const {
  *matched = true;
  if (!name.empty()) {
    const absl::string_view key(name.data(), name.size());
    if (auto it = exact_.find(key); it != exact_.end()) return it->second;
    // "a.b.example.com" tries ".b.example.com" then ".example.com": the longest suffix first.
    for (size_t dot = key.find('.'); dot != absl::string_view::npos; dot = key.find('.', dot + 1)) {
      if (auto it = wildcard_.find(key.substr(dot)); it != wildcard_.end()) return it->second;
    }
  }
  *matched = false;
  return all_;
}

enum ssl_select_cert_result_t ServerContext::SelectCertificate(const SSL_CLIENT_HELLO* hello) {
  const ServerContext* self = FromSsl(hello->ssl);
  if (self == nullptr) return ssl_select_cert_error;
  const std::string name = ServerNameOf(hello);
  bool matched = false;
  const std::vector<size_t>& candidates = self->candidates(name, &matched);
  if (!matched && !name.empty()) self->stats_->sni_no_match.inc();
  size_t chosen = candidates.front();
  if (candidates.size() > 1) {
    const bool ecdsa = ClientTakesEcdsa(hello);
    for (size_t index : candidates) {
      if (self->certs_[index].ecdsa == ecdsa) {
        chosen = index;
        break;
      }
    }
  }
  const Certificate& cert = self->certs_[chosen];
  if (!cert.ocsp.empty()) {
    const bool expired =
        cert.ocsp_next_update != 0 && cert.ocsp_next_update <= static_cast<int64_t>(time(nullptr));
    if (expired && self->strict_stapling_) {
      // Must-Staple clients would refuse the certificate without a valid staple anyway.
      self->stats_->ocsp_staple_expired.inc();
      return ssl_select_cert_error;
    }
    const uint8_t* unused;
    size_t unused_len;
    if (SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_status_request, &unused,
                                             &unused_len)) {
      if (expired) {
        self->stats_->ocsp_staple_omitted.inc();
      } else {
        SSL_set_ocsp_response(hello->ssl, reinterpret_cast<const uint8_t*>(cert.ocsp.data()),
                              cert.ocsp.size());
        self->stats_->ocsp_staple_responses.inc();
      }
    }
  }
  SSL_CTX* ctx = cert.ctx.get();
  if (ctx != SSL_get_SSL_CTX(hello->ssl)) SSL_set_SSL_CTX(hello->ssl, ctx);
  return ssl_select_cert_success;
}

int ServerContext::SelectAlpn(SSL*, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                              unsigned in_len, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  // Our preference order decides among what the client offers.
  const auto* ours = reinterpret_cast<const uint8_t*>(self->alpn_.data());
  for (size_t i = 0; i < self->alpn_.size(); i += 1 + ours[i]) {
    for (unsigned j = 0; j < in_len; j += 1 + in[j]) {
      if (in[j] == ours[i] && j + 1 + in[j] <= in_len &&
          std::equal(in + j + 1, in + j + 1 + in[j], ours + i + 1)) {
        *out = in + j + 1;
        *out_len = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  // None in common: go on without ALPN (the client decides whether that is fatal).
  return SSL_TLSEXT_ERR_NOACK;
}

absl::Status ServerContext::loadTicketKeys(const config::v1::DownstreamTlsContext& config,
                                           const std::string& path) {
  for (int i = 0; i < config.session_ticket_keys_size(); ++i) {
    const std::string key_path = absl::StrCat(path, ".session_ticket_keys[", i, "]");
    auto bytes = ReadDataSource(config.session_ticket_keys(i), key_path);
    if (!bytes.ok()) return bytes.status();
    TicketKey key{};
    const auto* p = reinterpret_cast<const uint8_t*>(bytes->data());
    // nginx's layouts: 48 = name, AES-128 key, HMAC key (16 each); 80 = name, HMAC (32), AES-256.
    if (bytes->size() == 48) {
      key.key_len = 16;
      std::memcpy(key.name, p, 16);
      std::memcpy(key.aes, p + 16, 16);
      std::memcpy(key.hmac, p + 32, 16);
    } else if (bytes->size() == 80) {
      key.key_len = 32;
      std::memcpy(key.name, p, 16);
      std::memcpy(key.hmac, p + 16, 32);
      std::memcpy(key.aes, p + 48, 32);
    } else {
      const size_t size = bytes->size();
      OPENSSL_cleanse(bytes->data(), bytes->size());
      return absl::InvalidArgumentError(
          absl::StrCat(key_path, ": a ticket key is 80 bytes (or 48), got ", size,
                       " (make one with: openssl rand 80 > ticket.key)"));
    }
    OPENSSL_cleanse(bytes->data(), bytes->size());
    ticket_keys_.push_back(key);
  }
  return absl::OkStatus();
}

ServerContext::~ServerContext() {
  if (!ticket_keys_.empty()) {
    OPENSSL_cleanse(ticket_keys_.data(), ticket_keys_.size() * sizeof(TicketKey));
  }
}

int ServerContext::TicketKeyCallback(SSL* ssl, uint8_t* key_name, uint8_t* iv,
                                     EVP_CIPHER_CTX* cipher, HMAC_CTX* hmac, int encrypt) {
  const ServerContext* self = FromSsl(ssl);
  if (self == nullptr || self->ticket_keys_.empty()) return -1;
  const auto& keys = self->ticket_keys_;
  size_t index = 0;
  if (encrypt) {
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(key_name, keys[0].name, 16);
  } else {
    while (index < keys.size() && std::memcmp(key_name, keys[index].name, 16) != 0) ++index;
    if (index == keys.size()) return 0;  // an unknown key: a full handshake, and a new ticket
  }
  const TicketKey& key = keys[index];
  const EVP_CIPHER* aes = key.key_len == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
  if (HMAC_Init_ex(hmac, key.hmac, key.key_len, EVP_sha256(), nullptr) != 1) return -1;
  const int ok = encrypt ? EVP_EncryptInit_ex(cipher, aes, nullptr, key.aes, iv)
                         : EVP_DecryptInit_ex(cipher, aes, nullptr, key.aes, iv);
  if (ok != 1) return -1;
  // A ticket under an older key resumes, and gets a new ticket under the first key.
  return encrypt || index == 0 ? 1 : 2;
}

absl::Status ServerContext::configureValidation(SSL_CTX* ctx,
                                                const config::v1::DownstreamTlsContext& config) {
  if (config.client_certificate() == config::v1::DownstreamTlsContext::NONE) {
    return absl::OkStatus();
  }
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  bssl::UniquePtr<STACK_OF(X509_NAME)> names(sk_X509_NAME_new_null());
  for (const auto& ca : client_cas_) {
    if (X509_STORE_add_cert(store, ca.get()) != 1) ERR_clear_error();  // a duplicate in the bundle
    // The CAs named in the CertificateRequest, so that a client with several certificates picks
    // one we accept.
    X509_NAME* name = X509_NAME_dup(X509_get_subject_name(ca.get()));
    if (name != nullptr) sk_X509_NAME_push(names.get(), name);
  }
  SSL_CTX_set_client_CA_list(ctx, names.release());
  const auto& validation = config.common_tls_context().validation_context();
  SSL_CTX_set_verify_depth(ctx, validation.max_verify_depth() != 0
                                    ? static_cast<int>(validation.max_verify_depth())
                                    : 4);
  int mode = SSL_VERIFY_PEER;
  if (config.client_certificate() == config::v1::DownstreamTlsContext::REQUIRE) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(ctx, mode, &SslContext::VerifyPeer);
  return absl::OkStatus();
}

int SslContext::VerifyPeer(int preverify_ok, X509_STORE_CTX* store) {
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const SslContext* self = ssl != nullptr ? FromSsl(ssl) : nullptr;
  if (self == nullptr) return 0;
  if (!preverify_ok) {
    // The chain does not lead to a trusted CA, has expired, is too deep...: the handshake ends
    // with the alert for the error BoringSSL put in the store.
    self->stats_->fail_verify_error.inc();
    return 0;
  }
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  const char* failed = self->peer_check_.check(X509_STORE_CTX_get_current_cert(store));
  if (failed == nullptr) return 1;
  (std::string_view(failed) == "hash" ? self->stats_->fail_verify_cert_hash
                                      : self->stats_->fail_verify_san)
      .inc();
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

}  // namespace sluice::tls
