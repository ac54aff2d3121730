// libFuzzer target: arbitrary frames from a client through the HTTP/2 server codec (nghttp2) and
// the connection manager with its filter chain, over a fake connection (no sockets): whatever the
// input, the server must answer with frames (its SETTINGS first) or close, never crash, leak or
// hang. The client preface is prepended: the input is what follows it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "source/event/dispatcher.h"
#include "source/http/conn_manager.h"
#include "source/http/conn_manager_impl.h"
#include "source/network/connection.h"
#include "source/network/filter_context.h"
#include "source/upstream/cluster.h"
#include "test/fuzz/server_fuzz_driver.h"

namespace sluice::http::fuzz {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct Http2Setup {
  event::DispatcherPtr dispatcher = event::CreateDispatcher("fuzz2");
  stats::Store store;
  std::vector<ConnectionManagerConfigPtr> configs;
  Http2Setup() {
    // 0: a terminal answering everything; 1: no filter (bodies read to the end, then 404);
    // 2: small limits (few streams, small windows and header lists, low flood thresholds).
    for (int mode = 0; mode < 3; ++mode) {
      config::v1::HttpConnectionManager p;
      p.set_codec_type(config::v1::HttpConnectionManager::HTTP2);
      p.add_upgrade_types("websocket");
      p.add_upgrade_types("CONNECT");
      if (mode == 0) {
        auto* dr = p.add_http_filters()->mutable_direct_response();
        dr->set_status(200);
        dr->set_body("fuzz\n");
      }
      if (mode == 2) {
        auto* o = p.mutable_http2_protocol_options();
        o->mutable_max_concurrent_streams()->set_value(2);
        o->mutable_initial_stream_window_size()->set_value(65535);
        o->mutable_max_header_list_size()->set_value(1024);
        o->mutable_max_resets_per_second()->set_value(4);
        o->mutable_max_control_frames_per_second()->set_value(4);
        o->mutable_max_continuation_frames()->set_value(2);
        p.set_max_request_headers_count(8);
        p.mutable_max_request_body_bytes()->set_value(64);
      }
      configs.push_back(*BuildConnectionManagerConfig(p, "fuzz", store));
    }
  }
};

}  // namespace
}  // namespace sluice::http::fuzz

extern "C" int SluiceFuzzHttp2Server(const uint8_t* data, size_t size) {
  using namespace sluice::http::fuzz;
  static Http2Setup* setup = new Http2Setup();
  if (size < 2) return 0;
  // First byte: the config; second: the chunk size the input is delivered in (1..256 bytes).
  const auto& config = setup->configs[data[0] % setup->configs.size()];
  const size_t chunk = static_cast<size_t>(data[1]) + 1;
  std::string input(kPreface);
  input.append(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string out = RunServerConnection(*setup->dispatcher, config, input, chunk);
  // Whatever was answered starts with the server's SETTINGS frame (RFC 9113 §3.4).
  if (!out.empty() && (out.size() < 9 || out[3] != 0x04 || out[4] != 0)) __builtin_trap();
  return 0;
}

#ifndef SLUICE_FUZZ_REPLAY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return SluiceFuzzHttp2Server(data, size);
}
#endif
