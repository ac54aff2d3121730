#pragma once

#include <string>

namespace sluice::tls {

// The TLS library sluice is linked against, e.g. "BoringSSL". TLS termination itself comes with
// the TLS issue; linking it now proves the build never picks OpenSSL's libssl.so.3 up instead.
std::string LibraryVersion();

}  // namespace sluice::tls
