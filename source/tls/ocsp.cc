#include "source/tls/ocsp.h"

#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace sluice::tls {

namespace {
// id-pkix-ocsp-basic, 1.3.6.1.5.5.7.48.1.1
constexpr uint8_t kOcspBasic[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("not a valid OCSP response (", std::string(what), ")"));
}

// GeneralizedTime "YYYYMMDDHHMMSS[.fff]Z" to seconds since the epoch.
bool ParseGeneralizedTime(CBS* time, int64_t* out) {
  const auto* p = CBS_data(time);
  const size_t n = CBS_len(time);
  if (n < 15 || p[n - 1] != 'Z') return false;
  auto digits = [&](size_t at, size_t count, int* v) {
    *v = 0;
    for (size_t i = at; i < at + count; ++i) {
      if (p[i] < '0' || p[i] > '9') return false;
      *v = *v * 10 + (p[i] - '0');
    }
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, &year) || !digits(4, 2, &mon) || !digits(6, 2, &day) || !digits(8, 2, &hour) ||
      !digits(10, 2, &min) || !digits(12, 2, &sec)) {
    return false;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return false;
  }
  struct tm tm = {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  *out = static_cast<int64_t>(timegm(&tm));
  return true;
}
}  // namespace

absl::StatusOr<OcspResponseInfo> ParseOcspResponse(std::string_view der, X509* leaf) {
  CBS cbs, response, status, bytes_wrapper, bytes, type, basic_octets, basic, tbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(der.data()), der.size());
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ... }
  if (!CBS_get_asn1(&cbs, &response, CBS_ASN1_SEQUENCE) || CBS_len(&cbs) != 0) {
    return Malformed("outer SEQUENCE");
  }
  if (!CBS_get_asn1(&response, &status, CBS_ASN1_ENUMERATED) || CBS_len(&status) != 1) {
    return Malformed("responseStatus");
  }
  if (CBS_data(&status)[0] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the OCSP response is not successful (responseStatus ", CBS_data(&status)[0], ")"));
  }
  if (!CBS_get_asn1(&response, &bytes_wrapper,
                    CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
      !CBS_get_asn1(&bytes_wrapper, &bytes, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&bytes, &type, CBS_ASN1_OBJECT) ||
      !CBS_get_asn1(&bytes, &basic_octets, CBS_ASN1_OCTETSTRING)) {
    return Malformed("responseBytes");
  }
  if (!CBS_mem_equal(&type, kOcspBasic, sizeof(kOcspBasic))) {
    return absl::InvalidArgumentError("the OCSP response is not a basic response");
  }
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, ... }
  if (!CBS_get_asn1(&basic_octets, &basic, CBS_ASN1_SEQUENCE) ||
      !CBS_get_asn1(&basic, &tbs, CBS_ASN1_SEQUENCE)) {
    return Malformed("BasicOCSPResponse");
  }
  // ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID, producedAt,
  //                             responses SEQUENCE OF SingleResponse, ... }
  CBS version, responder, produced, responses;
  if (!CBS_get_optional_asn1(&tbs, &version, nullptr,
                             CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0) ||
      !CBS_get_any_asn1(&tbs, &responder, nullptr) ||
      !CBS_get_asn1(&tbs, &produced, CBS_ASN1_GENERALIZEDTIME) ||
      !CBS_get_asn1(&tbs, &responses, CBS_ASN1_SEQUENCE)) {
    return Malformed("ResponseData");
  }
  // The serial of `leaf`, as DER INTEGER contents, to find its SingleResponse.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(leaf);
  uint8_t* serial_der = nullptr;
  const int serial_len = i2d_ASN1_INTEGER(serial, &serial_der);
  std::unique_ptr<uint8_t, void (*)(void*)> serial_owner(serial_der, OPENSSL_free);
  if (serial_len <= 0) return absl::InternalError("cannot encode the certificate's serial");
  CBS serial_cbs, serial_value;
  CBS_init(&serial_cbs, serial_der, static_cast<size_t>(serial_len));
  if (!CBS_get_asn1(&serial_cbs, &serial_value, CBS_ASN1_INTEGER)) {
    return absl::InternalError("cannot encode the certificate's serial");
  }
  while (CBS_len(&responses) > 0) {
    // SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate,
    //                               nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, ... }
    // CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber }
    CBS single, cert_id, hash_alg, name_hash, key_hash, number, cert_status, this_update;
    if (!CBS_get_asn1(&responses, &single, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&single, &cert_id, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&cert_id, &hash_alg, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&cert_id, &name_hash, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&cert_id, &key_hash, CBS_ASN1_OCTETSTRING) ||
        !CBS_get_asn1(&cert_id, &number, CBS_ASN1_INTEGER)) {
      return Malformed("SingleResponse");
    }
    if (!CBS_mem_equal(&number, CBS_data(&serial_value), CBS_len(&serial_value))) continue;
    unsigned tag = 0;
    if (!CBS_get_any_asn1(&single, &cert_status, &tag) ||
        !CBS_get_asn1(&single, &this_update, CBS_ASN1_GENERALIZEDTIME)) {
      return Malformed("certStatus");
    }
    OcspResponseInfo info;
    // good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL.
    if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 0)) {
      info.status = OcspResponseInfo::CertStatus::kGood;
    } else if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 1)) {
      info.status = OcspResponseInfo::CertStatus::kRevoked;
    } else if (tag == (CBS_ASN1_CONTEXT_SPECIFIC | 2)) {
      info.status = OcspResponseInfo::CertStatus::kUnknown;
    } else {
      return Malformed("certStatus");
    }
    if (!ParseGeneralizedTime(&this_update, &info.this_update)) return Malformed("thisUpdate");
    CBS next_wrapper, next;
    int has_next = 0;
    if (!CBS_get_optional_asn1(&single, &next_wrapper, &has_next,
                               CBS_ASN1_CONTEXT_SPECIFIC | CBS_ASN1_CONSTRUCTED | 0)) {
      return Malformed("nextUpdate");
    }
    if (has_next) {
      if (!CBS_get_asn1(&next_wrapper, &next, CBS_ASN1_GENERALIZEDTIME) ||
          !ParseGeneralizedTime(&next, &info.next_update)) {
        return Malformed("nextUpdate");
      }
    }
    return info;
  }
  return absl::InvalidArgumentError(
      "the OCSP response is about another certificate (no entry has this certificate's serial)");
}

}  // namespace sluice::tls
