#include "source/http/codec.h"

namespace sluice::http {

std::string_view StreamResetReasonName(StreamResetReason reason) {
  switch (reason) {
    case StreamResetReason::kConnectionTermination:
      return "connection_termination";
    case StreamResetReason::kLocalReset:
      return "local_reset";
    case StreamResetReason::kRemoteReset:
      return "remote_reset";
    case StreamResetReason::kProtocolError:
      return "protocol_error";
    case StreamResetReason::kRefusedStream:
      return "refused_stream";
    case StreamResetReason::kOverflow:
      return "overflow";
    case StreamResetReason::kConnectError:
      return "connect_error";
  }
  return "reset";
}

}  // namespace sluice::http
