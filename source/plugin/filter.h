#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source/http/filter.h"
#include "source/plugin/filter_config.h"
#include "source/plugin/host_types.h"

namespace sluice::plugin {

// The bridge between one plugin filter instance and the stream's filter chain: it calls the
// plugin's hooks with views of the stream's heads and body (no copies), and is itself the
// sl_type_stream the host functions receive.
class PluginFilter : public http::StreamFilter, public sl_type_stream {
 public:
  explicit PluginFilter(const PluginFilterConfig& config);
  ~PluginFilter() override;

  static PluginFilter& From(sl_type_stream* s) { return *static_cast<PluginFilter*>(s); }

  // http::StreamFilter
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  http::FilterDataStatus decodeData(Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus decodeTrailers(http::HeaderMap& trailers) override;
  http::FilterHeadersStatus encodeHeaders(http::ResponseHead& head, bool end_stream) override;
  http::FilterDataStatus encodeData(Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus encodeTrailers(http::HeaderMap& trailers) override;
  void onStreamComplete() override;

  // For the host functions.
  const PluginFilterConfig& config() const { return config_; }
  void* pluginFilter() const { return plugin_filter_; }
  http::DecoderFilterCallbacks& decoder() { return *decoder_callbacks_; }
  http::EncoderFilterCallbacks& encoder() { return *encoder_callbacks_; }
  http::RequestHead* requestHead() { return request_head_; }
  http::ResponseHead* responseHead() { return response_head_; }
  http::HeaderMap* requestTrailers() { return request_trailers_; }
  http::HeaderMap* responseTrailers() { return response_trailers_; }
  // The body sl_host_body_* works on: the chunk in the current body hook, else what the
  // stream buffered for this direction (nullptr: none).
  Buffer* body(bool request);
  bool completed() const { return completed_; }
  // Counts a host call refused as invalid; returns `result` for convenience.
  sl_type_result rejected(sl_type_result result);
  void fail(std::string_view reason);

  sl_type_result startTimer(uint64_t token, uint64_t delay_ms);
  sl_type_result cancelTimer(uint64_t token);
  sl_type_stream_ref* ref();

 private:
  struct PluginTimer {
    uint64_t token;
    event::TimerPtr timer;
  };
  void onTimer(uint64_t token);
  bool alive() const { return plugin_filter_ != nullptr || !config_.hooks().filter_new; }
  static http::FilterDataStatus DataStatus(sl_type_action action);

  const PluginFilterConfig& config_;
  void* plugin_filter_ = nullptr;
  bool failed_new_ = false;
  bool completed_ = false;
  http::RequestHead* request_head_ = nullptr;
  http::ResponseHead* response_head_ = nullptr;
  http::HeaderMap* request_trailers_ = nullptr;
  http::HeaderMap* response_trailers_ = nullptr;
  Buffer* request_chunk_ = nullptr;   // during sl_on_request_body
  Buffer* response_chunk_ = nullptr;  // during sl_on_response_body
  std::vector<PluginTimer> timers_;   // few per stream, if any
  sl_type_stream_ref* ref_ = nullptr;
};

}  // namespace sluice::plugin
