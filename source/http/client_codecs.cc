#include "source/http/client_codecs.h"

#include "source/http/http1/client_codec.h"
#include "source/http/http1/parser.h"
#include "source/http/http2/client_codec.h"
#include "source/http/http2/settings.h"

namespace sluice::http {

namespace {

// What one HTTP/2 stream may hold of its request body before its producer is told to stop
// (the same bound as a downstream stream's response buffer).
constexpr uint32_t kHttp2StreamBuffer = 64 * 1024;

class ClientCodecFactoryImpl : public ClientCodecFactory {
 public:
  ClientCodecFactoryImpl(config::v1::Cluster::UpstreamProtocol protocol,
                         const http2::Http2Settings& h2, const stats::Scope& scope)
      : protocol_(protocol),
        h2_(h2),
        h2_stats_{scope.counter("http2.rx_reset"), scope.counter("http2.tx_reset"),
                  scope.counter("http2.rx_protocol_error"),
                  scope.counter("http2.header_overflow")} {}

  ClientConnectionPtr create(network::Connection& connection, ClientConnectionCallbacks& callbacks,
                             event::Dispatcher& dispatcher) const override {
    bool h2 = protocol_ == config::v1::Cluster::HTTP2;
    if (protocol_ == config::v1::Cluster::AUTO) {
      h2 = connection.ssl() != nullptr && connection.ssl()->alpn() == "h2";
    }
    if (h2) {
      return std::make_unique<http2::ClientConnectionImpl>(connection, callbacks, h2_, h2_stats_,
                                                           dispatcher, kHttp2StreamBuffer);
    }
    return std::make_unique<http1::ClientConnectionImpl>(connection, callbacks, limits_);
  }

  uint32_t expectedStreamLimit() const override {
    switch (protocol_) {
      case config::v1::Cluster::HTTP2:
        return h2_.max_concurrent_streams;
      case config::v1::Cluster::AUTO:
        return 0;  // ALPN decides
      default:
        return 1;
    }
  }

 private:
  const config::v1::Cluster::UpstreamProtocol protocol_;
  const http1::Limits limits_;
  const http2::Http2Settings h2_;
  mutable http2::Http2ClientStats h2_stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientCodecFactory>> CreateClientCodecFactory(
    const config::v1::Cluster& cluster, const stats::Scope& scope) {
  http2::Http2Settings h2;
  // Response heads are bounded as HTTP/1's are.
  const http1::Limits limits;
  h2.max_header_list_size = limits.max_header_bytes;
  h2.max_headers = limits.max_headers;
  http2::ApplyProtocolOptions(cluster.http2_protocol_options(), h2);
  return std::unique_ptr<ClientCodecFactory>(
      new ClientCodecFactoryImpl(cluster.protocol(), h2, scope));
}

}  // namespace sluice::http
