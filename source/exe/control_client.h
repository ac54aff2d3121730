#pragma once

#include <string>

#include "absl/status/status.h"
#include "api/sluice/control/v1/control.pb.h"

namespace sluice::exe {

// One request and its one response over a fresh connection to the control socket at `path`,
// each step bounded by `timeout_seconds` (a peer that does not answer fails the call, never
// hangs it). A response carrying an error is a FailedPrecondition with that error; one that
// does not parse is DataLoss; a socket that cannot be reached keeps its connect error.
absl::Status AskControl(const std::string& path, const sluice::control::v1::Request& request,
                        sluice::control::v1::Response& response, int timeout_seconds = 10);

}  // namespace sluice::exe
