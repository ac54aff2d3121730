#pragma once

#include "google/protobuf/message.h"

namespace sluice::config {

// What a redacted value shows instead of the secret.
inline constexpr char kRedacted[] = "[redacted]";

// Replaces every secret in `message` with kRedacted, in place, for showing a config (the admin's
// /config_dump). A secret is a field annotated `(sluice.config.v1.sensitive) = true`
// (api/sluice/config/v1/annotations.proto): a string or bytes field of its own, or, when it is a
// message, every non-empty string and bytes field anywhere inside it, except those annotated
// `(sluice.config.v1.secret_location) = true` (a file path says where a secret is, not what it
// is). Found by reflection over the message's descriptors, so a new secret field needs only the
// annotation. Empty values stay empty (an unset secret is not one). google.protobuf.Value /
// Struct fields (plugin configs) have no schema here and are kept as they are.
void RedactSecrets(google::protobuf::Message& message);

}  // namespace sluice::config
