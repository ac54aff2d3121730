#include "source/exe/control_client.h"

#include <unistd.h>

#include <string_view>
#include <vector>

#include "source/server/control_frame.h"

namespace sluice::exe {

absl::Status AskControl(const std::string& path, const sluice::control::v1::Request& request,
                        sluice::control::v1::Response& response, int timeout_seconds) {
  auto fd = server::control::ConnectBlocking(path, timeout_seconds);
  if (!fd.ok()) return fd.status();
  std::vector<int> fds;
  auto s = server::control::Exchange(
      *fd, request.SerializeAsString(), fds, [&](std::string_view message) -> absl::StatusOr<bool> {
        if (!response.ParseFromArray(message.data(), static_cast<int>(message.size()))) {
          return absl::DataLossError("a response that does not parse");
        }
        if (!response.error().empty()) {
          return absl::FailedPreconditionError(response.error());
        }
        return false;
      });
  // No command asked here sends descriptors; any that came are not ours to keep.
  for (int f : fds) ::close(f);
  ::close(*fd);
  return s;
}

}  // namespace sluice::exe
