#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sluice::server::control {

// The control socket's framing (api/sluice/control/v1/control.proto): a 4-byte big-endian
// length, then that many bytes of one serialized message.
inline constexpr size_t kFrameHeaderBytes = 4;
// A message larger than this is a protocol error (the largest, a counter snapshot, is far
// smaller; a peer that sends more is not one of ours).
inline constexpr size_t kMaxMessageBytes = 16 * 1024 * 1024;

// `message` framed.
std::string EncodeFrame(std::string_view message);

// Collects bytes as they arrive and hands out whole messages.
class FrameDecoder {
 public:
  void append(std::string_view bytes) { pending_.append(bytes.data(), bytes.size()); }
  // The next whole message, nullopt until one is complete; an error for a length over
  // kMaxMessageBytes (the stream is then unusable).
  absl::StatusOr<std::optional<std::string>> next();
  // Bytes received and not yet handed out.
  size_t buffered() const { return pending_.size() - consumed_; }

 private:
  std::string pending_;
  size_t consumed_ = 0;
};

// The most descriptors one sendmsg carries (the kernel's SCM_MAX_FD is 253).
inline constexpr size_t kMaxFdsPerMessage = 200;

// One sendmsg of `bytes` on the unix stream socket `sock`, with `fds` (at most
// kMaxFdsPerMessage) as SCM_RIGHTS on its first byte. `wait`: block until some bytes go;
// otherwise 0 when the socket is full. How many bytes went (the descriptors went with any).
absl::StatusOr<size_t> SendSome(int sock, std::string_view bytes, absl::Span<const int> fds,
                                bool wait);

// Sends `bytes` (not empty) with `fds` as SCM_RIGHTS on `sock` (blocking), whole. The
// descriptors travel with the first byte.
absl::Status SendWithFds(int sock, std::string_view bytes, absl::Span<const int> fds);

// Reads up to `max` bytes from `sock` (blocking) into `out` (appended), with any descriptors
// that came with them appended to `fds` (close-on-exec). 0 bytes read: the peer closed.
absl::StatusOr<size_t> RecvWithFds(int sock, size_t max, std::string& out, std::vector<int>& fds);

// A client's blocking connection to the control socket at `path`, with send and receive
// timeouts of `timeout_seconds` (a peer that does not answer fails the call, never hangs it):
// its descriptor, for the caller to close.
absl::StatusOr<int> ConnectBlocking(const std::string& path, int timeout_seconds);

// On a blocking connection: sends `request` framed, then reads framed messages, handing each to
// `on_message` until it returns false or an error (which ends the exchange). Descriptors that
// arrive are appended to `fds`: the caller's to close, whatever the outcome.
absl::Status Exchange(int sock, std::string_view request, std::vector<int>& fds,
                      const std::function<absl::StatusOr<bool>(std::string_view)>& on_message);

}  // namespace sluice::server::control
