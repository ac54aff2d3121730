#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/sluice/config/v1/bootstrap.pb.h"
#include "source/config/loader.h"

namespace sluice::config {

// Semantic checks that the schema cannot express: required fields, ranges, unique names,
// references (a tcp_proxy's cluster exists), one terminal filter last, strings that reach the
// wire, logs or stat names. Reports every problem, one per line, each as
// "<source>: <field path>: <what is wrong>", followed by " at line N, column M" when `sources`
// (from the ParseInto of `bootstrap`) knows where the field, or its closest parent, was written.
absl::Status ValidateBootstrap(const v1::Bootstrap& bootstrap, std::string_view source,
                               const ValueSources* sources = nullptr);

// The admin's bearer token (RFC 6750 token characters, at least kMinBearerTokenLength of them):
// OK or why not. For an inline token at validation, and a token read from its file at start.
inline constexpr size_t kMinBearerTokenLength = 16;
absl::Status CheckBearerToken(std::string_view token);
// An octal file mode ("0600", "660") of at most 0777, or nullopt.
std::optional<uint32_t> ParseFileMode(std::string_view mode);

// LoadFile + ValidateBootstrap. `sources` (optional) keeps where free-form values came from,
// for the plugin configs checked later.
absl::StatusOr<v1::Bootstrap> LoadBootstrap(const std::string& path,
                                            ValueSources* sources = nullptr);

}  // namespace sluice::config
