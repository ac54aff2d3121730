#pragma once

namespace sluice::tls {

// Whether this kernel offers the TLS upper-layer protocol (kTLS): one probe per process, a
// setsockopt(TCP_ULP, "tls") on a fresh socket (ENOENT: no TLS ULP; ENOTCONN or success: it
// exists, a connected socket could take it).
bool KernelTlsAvailable();

}  // namespace sluice::tls
