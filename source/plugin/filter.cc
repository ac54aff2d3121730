#include "source/plugin/filter.h"

#include "absl/strings/str_cat.h"
#include "source/common/logging.h"

namespace sluice::plugin {

using http::FilterDataStatus;
using http::FilterHeadersStatus;
using http::FilterTrailersStatus;

PluginFilterConfig::PluginFilterConfig(const LoadedPlugin& plugin, std::string name,
                                       void* plugin_config, stats::Store& store)
    : failures(store.counter(absl::StrCat("plugin.", name, ".failures"))),
      rejected_calls(store.counter(absl::StrCat("plugin.", name, ".rejected_calls"))),
      plugin_(plugin),
      name_(std::move(name)),
      plugin_config_(plugin_config) {}

PluginFilterConfig::~PluginFilterConfig() {
  if (hooks().config_destroy != nullptr) hooks().config_destroy(plugin_config_);
}

http::StreamFilterFactory PluginFilterFactory(PluginFilterConfigSharedPtr config) {
  return [config = std::move(config)]() -> http::StreamFilterPtr {
    return std::make_unique<PluginFilter>(*config);
  };
}

PluginFilter::PluginFilter(const PluginFilterConfig& config) : config_(config) {
  const Hooks& h = config_.hooks();
  if (h.filter_new == nullptr) {
    plugin_filter_ = config_.pluginConfig();
  } else {
    plugin_filter_ = h.filter_new(config_.pluginConfig(), this);
    // Answered (500) when the request headers reach this filter: the callbacks to do it are
    // not set yet.
    failed_new_ = plugin_filter_ == nullptr;
  }
}

PluginFilter::~PluginFilter() {
  timers_.clear();  // no sl_on_timer after this point
  if (ref_ != nullptr) {
    ref_->filter = nullptr;  // posts still queued see a gone stream
    ref_->release();
  }
  if (config_.hooks().filter_new != nullptr && plugin_filter_ != nullptr &&
      config_.hooks().filter_destroy != nullptr) {
    config_.hooks().filter_destroy(plugin_filter_);
  }
}

sl_type_result PluginFilter::rejected(sl_type_result result) {
  config_.rejected_calls.inc();
  return result;
}

void PluginFilter::fail(std::string_view reason) {
  config_.failures.inc();
  SLUICE_LOG(kWarn, "plugin filter %s failed stream %u: %s", config_.name(),
             decoder_callbacks_->streamId(), reason);
  auto& info = decoder_callbacks_->streamInfo();
  if (info.response_flags.empty()) info.response_flags = "plugin_failure";
  // A reply of its own when no response has started; a reset otherwise (sendLocalReply decides).
  decoder_callbacks_->sendLocalReply(500, "internal error\n", nullptr);
}

Buffer* PluginFilter::body(bool request) {
  if (request)
    return request_chunk_ != nullptr ? request_chunk_ : decoder_callbacks_->decodingBuffer();
  return response_chunk_ != nullptr ? response_chunk_ : encoder_callbacks_->encodingBuffer();
}

FilterDataStatus PluginFilter::DataStatus(sl_type_action action) {
  switch (action) {
    case SL_ACTION_STOP:
      return FilterDataStatus::kStopIterationNoBuffer;
    case SL_ACTION_STOP_AND_BUFFER:
      return FilterDataStatus::kStopIterationAndBuffer;
    default:
      return FilterDataStatus::kContinue;
  }
}

FilterHeadersStatus PluginFilter::decodeHeaders(http::RequestHead& head, bool end_stream) {
  request_head_ = &head;
  if (failed_new_) {
    fail("sl_on_filter_new returned NULL");
    return FilterHeadersStatus::kStopIteration;
  }
  if (config_.hooks().request_headers == nullptr) return FilterHeadersStatus::kContinue;
  const sl_type_action a = config_.hooks().request_headers(plugin_filter_, this, end_stream);
  return a == SL_ACTION_CONTINUE ? FilterHeadersStatus::kContinue
                                 : FilterHeadersStatus::kStopIteration;
}

FilterDataStatus PluginFilter::decodeData(Buffer& data, bool end_stream) {
  if (config_.hooks().request_body == nullptr || failed_new_) return FilterDataStatus::kContinue;
  request_chunk_ = &data;
  const sl_type_action a = config_.hooks().request_body(plugin_filter_, this, end_stream);
  request_chunk_ = nullptr;
  return DataStatus(a);
}

FilterTrailersStatus PluginFilter::decodeTrailers(http::HeaderMap& trailers) {
  request_trailers_ = &trailers;
  if (config_.hooks().request_trailers == nullptr || failed_new_) {
    return FilterTrailersStatus::kContinue;
  }
  const sl_type_action a = config_.hooks().request_trailers(plugin_filter_, this);
  return a == SL_ACTION_CONTINUE ? FilterTrailersStatus::kContinue
                                 : FilterTrailersStatus::kStopIteration;
}

FilterHeadersStatus PluginFilter::encodeHeaders(http::ResponseHead& head, bool end_stream) {
  response_head_ = &head;
  if (config_.hooks().response_headers == nullptr || failed_new_) {
    return FilterHeadersStatus::kContinue;
  }
  const sl_type_action a = config_.hooks().response_headers(plugin_filter_, this, end_stream);
  return a == SL_ACTION_CONTINUE ? FilterHeadersStatus::kContinue
                                 : FilterHeadersStatus::kStopIteration;
}

FilterDataStatus PluginFilter::encodeData(Buffer& data, bool end_stream) {
  if (config_.hooks().response_body == nullptr || failed_new_) return FilterDataStatus::kContinue;
  response_chunk_ = &data;
  const sl_type_action a = config_.hooks().response_body(plugin_filter_, this, end_stream);
  response_chunk_ = nullptr;
  return DataStatus(a);
}

FilterTrailersStatus PluginFilter::encodeTrailers(http::HeaderMap& trailers) {
  response_trailers_ = &trailers;
  if (config_.hooks().response_trailers == nullptr || failed_new_) {
    return FilterTrailersStatus::kContinue;
  }
  const sl_type_action a = config_.hooks().response_trailers(plugin_filter_, this);
  return a == SL_ACTION_CONTINUE ? FilterTrailersStatus::kContinue
                                 : FilterTrailersStatus::kStopIteration;
}

void PluginFilter::onStreamComplete() {
  completed_ = true;
  // Disarmed, not freed: this may run inside one of them (a timer hook that sent a response).
  for (auto& t : timers_) t.timer->disableTimer();
  if (config_.hooks().stream_complete != nullptr && !failed_new_) {
    config_.hooks().stream_complete(plugin_filter_, this);
  }
}

sl_type_result PluginFilter::startTimer(uint64_t token, uint64_t delay_ms) {
  if (completed_) return rejected(SL_ERR_STATE);
  if (config_.hooks().timer == nullptr) return rejected(SL_ERR_STATE);
  for (auto& t : timers_) {
    if (t.token == token) {
      t.timer->enableTimer(std::chrono::milliseconds(delay_ms));
      return SL_OK;
    }
  }
  if (timers_.size() >= 64) return rejected(SL_ERR_LIMIT);
  auto timer = decoder_callbacks_->dispatcher().createTimer([this, token] { onTimer(token); });
  timer->enableTimer(std::chrono::milliseconds(delay_ms));
  timers_.push_back(PluginTimer{token, std::move(timer)});
  return SL_OK;
}

sl_type_result PluginFilter::cancelTimer(uint64_t token) {
  // Disarmed, not freed: the hook cancelling may be running inside this very timer's callback.
  for (auto& t : timers_) {
    if (t.token == token && t.timer->enabled()) {
      t.timer->disableTimer();
      return SL_OK;
    }
  }
  return SL_ERR_NOT_FOUND;
}

void PluginFilter::onTimer(uint64_t token) {
  // Timer objects stay until the stream ends (a fired one is re-armed if its token is started
  // again), so none is freed while its own callback runs.
  if (completed_) return;
  config_.hooks().timer(plugin_filter_, this, token);
}

sl_type_stream_ref* PluginFilter::ref() {
  if (ref_ == nullptr) {
    ref_ = new sl_type_stream_ref;
    ref_->dispatcher = &decoder_callbacks_->dispatcher();
    ref_->filter = this;
  }
  ref_->refs.fetch_add(1, std::memory_order_relaxed);
  return ref_;
}

}  // namespace sluice::plugin
