#include "source/tls/version.h"

#include <openssl/base.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#ifndef OPENSSL_IS_BORINGSSL
#error "sluice must be built against BoringSSL (android-libboringssl-dev), not OpenSSL"
#endif

namespace sluice::tls {

std::string LibraryVersion() {
  // TLS_method() lives in libssl: calling it keeps libssl.so.0 linked even with --as-needed.
  return TLS_method() != nullptr ? OpenSSL_version(OPENSSL_VERSION) : "none";
}

}  // namespace sluice::tls
