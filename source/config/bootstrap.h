#pragma once

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

// LoadFile + ValidateBootstrap. `sources` (optional) keeps where free-form values came from,
// for the plugin configs checked later.
absl::StatusOr<v1::Bootstrap> LoadBootstrap(const std::string& path,
                                            ValueSources* sources = nullptr);

}  // namespace sluice::config
