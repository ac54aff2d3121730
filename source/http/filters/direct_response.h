#pragma once

#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "api/sluice/config/v1/http_connection_manager.pb.h"
#include "source/http/filter.h"

namespace sluice::http {

// Built-in terminal filter: answers every request with a fixed response. It ships in the binary
// so that a config answers something before any plugin is loaded (the quickstart uses it).
class DirectResponseFilter : public StreamFilter {
 public:
  struct Config {
    uint16_t status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  // `config` outlives the filter (its factory owns it).
  explicit DirectResponseFilter(const Config* config) : config_(config) {}

  FilterHeadersStatus decodeHeaders(RequestHead& head, bool end_stream) override;

 private:
  const Config* config_;
};

StreamFilterFactory DirectResponseFilterFactory(const config::v1::DirectResponse& proto);

}  // namespace sluice::http
