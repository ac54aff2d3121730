#pragma once

#include <openssl/base.h>

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::tls {

// What a stapled OCSP response says, as far as serving it needs (RFC 6960).
struct OcspResponseInfo {
  enum class CertStatus { kGood, kRevoked, kUnknown };
  CertStatus status = CertStatus::kUnknown;
  // Seconds since the epoch; 0: the response has no nextUpdate (it never expires by itself).
  int64_t this_update = 0;
  int64_t next_update = 0;
};

// Reads a DER OCSPResponse: it must be successful, basic, and about `leaf` (its serial number).
// BoringSSL has no OCSP parser (it staples bytes as given), hence this one over its CBS reader.
absl::StatusOr<OcspResponseInfo> ParseOcspResponse(std::string_view der, X509* leaf);

}  // namespace sluice::tls
