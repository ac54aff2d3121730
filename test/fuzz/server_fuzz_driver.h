#pragma once

// What the server-side fuzz targets (HTTP/1, HTTP/2) share: a client's bytes, in chunks of a
// given size, through a connection manager on a fake connection (no sockets), and what the
// manager wrote back.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "source/event/dispatcher.h"
#include "source/http/conn_manager.h"
#include "source/http/conn_manager_impl.h"
#include "test/network/fake_connection.h"
#include "test/network/test_filter_context.h"

namespace sluice::http::fuzz {

// Feeds `input` in `chunk`-byte reads, lets the manager finish, closes, and runs the deferred
// deletions (streams, codecs) before the connection's owners go away. Returns the output.
inline std::string RunServerConnection(event::Dispatcher& dispatcher,
                                       const ConnectionManagerConfigPtr& config,
                                       std::string_view input, size_t chunk) {
  std::string output;
  {
    network::test::TestFilterContext context(dispatcher);
    network::test::FakeConnection conn(dispatcher);
    conn.addReadFilter(std::make_unique<ConnectionManagerImpl>(config, context));
    conn.initializeReadFilters();
    for (size_t off = 0; off < input.size(); off += chunk) {
      conn.receive(input.substr(off, chunk));
    }
    conn.drain();
    conn.close(network::CloseType::kNoFlush);
    output = conn.output();
    dispatcher.exit();
    dispatcher.run();
  }
  return output;
}

}  // namespace sluice::http::fuzz
