// libFuzzer target: arbitrary bytes from a client through the HTTP/1 server codec and the
// connection manager with its filter chain, over a fake connection (no sockets): whatever the
// input, the manager must answer with well-formed responses or close, never crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <string>
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

struct Setup {
  event::DispatcherPtr dispatcher = event::CreateDispatcher("fuzz");
  stats::Store store;
  std::vector<ConnectionManagerConfigPtr> configs;
  Setup() {
    // 0: a terminal answering everything; 1: no filter (bodies read to the end, then 404);
    // 2: small limits (431, 413 and 414 on modest inputs).
    for (int mode = 0; mode < 3; ++mode) {
      config::v1::HttpConnectionManager p;
      // HTTP/1 only: the HTTP/2 preface is then a request like any other (answered 505); the
      // HTTP/2 server side has its own target (http2_server_fuzz).
      p.set_codec_type(config::v1::HttpConnectionManager::HTTP1);
      if (mode == 0) {
        auto* dr = p.add_http_filters()->mutable_direct_response();
        dr->set_status(200);
        dr->set_body("fuzz\n");
      }
      if (mode == 2) {
        p.set_max_request_line_bytes(256);
        p.set_max_request_headers_bytes(1024);
        p.set_max_request_headers_count(8);
        p.mutable_max_request_body_bytes()->set_value(64);
      }
      configs.push_back(*BuildConnectionManagerConfig(p, "fuzz", store));
    }
  }
};

}  // namespace
}  // namespace sluice::http::fuzz

extern "C" int SluiceFuzzHttp1Server(const uint8_t* data, size_t size) {
  using namespace sluice::http::fuzz;
  static Setup* setup = new Setup();
  if (size < 2) return 0;
  // First byte: the config; second: the chunk size the input is delivered in (1..256 bytes).
  const auto& config = setup->configs[data[0] % setup->configs.size()];
  const size_t chunk = static_cast<size_t>(data[1]) + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 2), size - 2);
  const std::string out = RunServerConnection(*setup->dispatcher, config, input, chunk);
  // Whatever was answered is a sequence of HTTP/1.1 responses.
  if (!out.empty() && out.rfind("HTTP/1.1 ", 0) != 0) __builtin_trap();
  return 0;
}

#ifndef SLUICE_FUZZ_REPLAY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return SluiceFuzzHttp1Server(data, size);
}
#endif
