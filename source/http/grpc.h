#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "source/http/header_map.h"

// What the proxy knows of gRPC (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
// enough to pass calls through, honour their deadlines and answer them in their own terms.
namespace sluice::http::grpc {

// A gRPC request: content-type "application/grpc" or "application/grpc+<codec>"
// ("application/grpc-web" is another protocol and is not one).
bool IsGrpcRequest(const HeaderMap& headers);

// The grpc-status a proxy's own HTTP answer means (gRPC's "HTTP to gRPC status code mapping",
// except that 504, which sluice answers when a deadline passed, is DEADLINE_EXCEEDED).
uint32_t StatusFromHttp(uint16_t http_status);

// grpc-timeout ("1*8DIGIT unit", units H M S m u n), rounded up to whole milliseconds; nullopt
// when malformed (the call then has no deadline of its own, as gRPC servers treat it).
std::optional<std::chrono::milliseconds> ParseTimeout(std::string_view value);

// grpc-message's percent-encoding: bytes outside 0x20..0x7E, and '%', as %XX.
std::string EncodeMessage(std::string_view message);

}  // namespace sluice::http::grpc
