#include "source/http/filters/direct_response.h"

#include "source/http/conn_manager_impl.h"

namespace sluice::http {

FilterHeadersStatus DirectResponseFilter::decodeHeaders(RequestHead&, bool) {
  const Config& c = *config_;
  decoder_callbacks_->sendLocalReply(c.status, c.body, [&c](HeaderMap& headers) {
    for (const auto& [name, value] : c.headers) {
      // Configured fields replace the defaults of a local reply (e.g. Content-Type).
      if (HeaderNameEquals(name, "content-type")) headers.remove("content-type");
      headers.add(name, value);
    }
  });
  return FilterHeadersStatus::kStopIteration;
}

StreamFilterFactory DirectResponseFilterFactory(const config::v1::DirectResponse& proto) {
  auto config = std::make_shared<DirectResponseFilter::Config>();
  config->status = proto.status() != 0 ? static_cast<uint16_t>(proto.status()) : 200;
  config->body = proto.body();
  for (const auto& h : proto.headers()) config->headers.emplace_back(h.name(), h.value());
  // In place, holding a plain pointer: the factory (and with it the config) outlives every
  // stream, and a shared_ptr copy per request would bounce its count between the workers.
  return StreamFilterFactory::InPlace(sizeof(DirectResponseFilter), [config](void* storage) {
    return new (storage) DirectResponseFilter(config.get());
  });
}

}  // namespace sluice::http
