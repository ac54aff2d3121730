#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "api/sluice/config/v1/http_connection_manager.pb.h"

namespace sluice::http::http2 {

// HTTP/2 settings and limits (http_connection_manager.proto and cluster.proto,
// http2_protocol_options), with the defaults applied. The client side uses the SETTINGS, the
// header limits and the keep-alive; the flood limits are the server side's.
struct Http2Settings {
  // SETTINGS we announce.
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_stream_window_size = 256 * 1024;
  uint32_t initial_connection_window_size = 1024 * 1024;
  uint32_t max_frame_size = 16384;
  // Decoded request header block (names + values + 32 per field, RFC 9113 §6.5.2); a larger one
  // is answered 431, a much larger one (4x) ends the connection.
  uint32_t max_header_list_size = 60 * 1024;
  // Most fields in a request head (as HTTP/1's max_request_headers_count); more: 431.
  uint32_t max_headers = 100;
  uint32_t header_table_size = 4096;
  // Protections. Each ends the connection with GOAWAY (ENHANCE_YOUR_CALM) and a counter.
  // Streams the client resets (or has reset by protocol errors) per second (CVE-2023-44487).
  uint32_t max_resets_per_second = 200;
  // SETTINGS and PING frames (not acks) per second.
  uint32_t max_control_frames_per_second = 100;
  // DATA frames without payload and without END_STREAM in a row (Envoy's
  // max_consecutive_inbound_frames_with_empty_payload).
  uint32_t max_consecutive_empty_frames = 1;
  // PRIORITY frames per opened stream, plus this many (Envoy's
  // max_inbound_priority_frames_per_stream).
  uint32_t max_priority_frames_per_stream = 100;
  // CONTINUATION frames per header block (CVE-2024-27316 class).
  uint32_t max_continuations = 8;
  // Control frames we queue (acks) that the client does not read (a client that never reads).
  uint32_t max_outbound_control_frames = 1000;
  // PING keep-alive: sent after this much silence (0: off); no answer within the timeout ends
  // the connection.
  std::chrono::milliseconds keepalive_interval{0};
  std::chrono::milliseconds keepalive_timeout{20000};
  // Tunnels: CONNECT (RFC 9113 §8.5) and extended CONNECT (RFC 8441) for these :protocol values
  // (the HTTP/1 upgrade tokens, "websocket").
  bool allow_connect = false;
  std::vector<std::string> connect_protocols;
  // The largest request body (0: unlimited): over it, RST_STREAM after a 413.
  uint64_t max_request_body_bytes = 0;
};

// Sets what `options` sets (a field left out keeps the default already in `settings`).
void ApplyProtocolOptions(const config::v1::Http2ProtocolOptions& options, Http2Settings& settings);

}  // namespace sluice::http::http2
