// greeting: sets a greeting from its typed config on requests and responses, and answers one
// path itself. The example of a C++ plugin with its own protobuf config, built out of tree
// against an installed sluice (docs/plugins.md).

#include <memory>
#include <string>

#include "acme/greeting/v1/greeting.pb.h"
#include "sluice/sdk/filter.h"

namespace {

using sluice::sdk::ConfigContext;
using sluice::sdk::Filter;
using sluice::sdk::FilterConfig;
using sluice::sdk::Stream;

class GreetingConfig;

class GreetingFilter : public Filter {
 public:
  explicit GreetingFilter(const GreetingConfig& config) : config_(config) {}
  sl_type_action onRequestHeaders(Stream& stream, bool end_stream) override;
  sl_type_action onResponseHeaders(Stream& stream, bool end_stream) override;

 private:
  const GreetingConfig& config_;
};

class GreetingConfig : public FilterConfig {
 public:
  acme::greeting::v1::Greeting proto;

  // Runs on the main thread when sluice loads the config (and for `sluice --mode validate`):
  // everything that would fail on a stream is refused here, with its field path.
  static std::unique_ptr<GreetingConfig> create(ConfigContext& ctx) {
    auto config = std::make_unique<GreetingConfig>();
    if (!ctx.parse(config->proto)) {
      ctx.fail("cannot decode the Greeting config");
      return nullptr;
    }
    auto& p = config->proto;
    if (p.header().empty()) p.set_header("x-greeting");
    if (p.message().empty() || !sluice::sdk::IsValidFieldValue(p.message())) {
      ctx.fail("message: required, without CR, LF or NUL");
      return nullptr;
    }
    if (!sluice::sdk::IsValidFieldName(p.header())) {
      ctx.fail("header: \"" + p.header() + "\" is not a field name");
      return nullptr;
    }
    if (!p.reply_path().empty() &&
        (p.reply_path()[0] != '/' || !sluice::sdk::IsValidFieldValue(p.reply_path()))) {
      ctx.fail("reply_path: \"" + p.reply_path() + "\" is not a path");
      return nullptr;
    }
    return config;
  }

  // No per-stream state: every stream shares one filter.
  Filter* sharedFilter() override { return &shared_; }
  std::unique_ptr<Filter> newFilter(Stream&) override {
    return std::make_unique<GreetingFilter>(*this);
  }

 private:
  GreetingFilter shared_{*this};
};

sl_type_action GreetingFilter::onRequestHeaders(Stream& stream, bool) {
  const auto& p = config_.proto;
  if (!p.reply_path().empty() && stream.requestHeaders().get(":path") == p.reply_path()) {
    // A local reply; it runs back through this filter's onResponseHeaders.
    stream.sendResponse(200, p.message() + "\n", {{"content-type", "text/plain"}});
    return SL_ACTION_STOP;
  }
  stream.requestHeaders().set(p.header(), p.message());
  return SL_ACTION_CONTINUE;
}

sl_type_action GreetingFilter::onResponseHeaders(Stream& stream, bool) {
  stream.responseHeaders().set(config_.proto.header(), config_.proto.message());
  return SL_ACTION_CONTINUE;
}

}  // namespace

SLUICE_PLUGIN_FILTERS(sluice::sdk::Register<GreetingConfig>("greeting",
                                                            "acme.greeting.v1.Greeting"))
