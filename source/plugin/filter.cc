#include "source/plugin/filter.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "source/common/logging.h"

namespace sluice::plugin {

using http::FilterDataStatus;
using http::FilterHeadersStatus;
using http::FilterTrailersStatus;

namespace {
uint32_t HookMask(const Hooks& h) {
  // Headers always: a failed sl_on_filter_new is answered there. Bodies and trailers of a
  // direction whose headers this filter paused reach it anyway (see StreamFilter::hooks()).
  uint32_t mask = http::kHookDecodeHeaders;
  if (h.request_body != nullptr) mask |= http::kHookDecodeData;
  if (h.request_trailers != nullptr) mask |= http::kHookDecodeTrailers;
  if (h.response_headers != nullptr) mask |= http::kHookEncodeHeaders;
  if (h.response_body != nullptr) mask |= http::kHookEncodeData;
  if (h.response_trailers != nullptr) mask |= http::kHookEncodeTrailers;
  // Timers are disarmed and callouts withdrawn at the stream's end.
  if (h.stream_complete != nullptr || h.timer != nullptr || h.callout_done != nullptr) {
    mask |= http::kHookStreamComplete;
  }
  // Only an exporter makes the core measure upstream attempts.
  if (h.upstream_attempt_done != nullptr) mask |= http::kHookUpstreamAttempt;
  return mask;
}
}  // namespace

PluginFilterConfig::PluginFilterConfig(const LoadedPlugin& plugin, std::string name,
                                       void* plugin_config, stats::Store& store)
    : failures(stats::Scope(store).tagged("plugin", "plugin", name).counter("failures")),
      rejected_calls(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("rejected_calls")),
      misuse_unknown_action(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("misuse_unknown_action")),
      misuse_buffer_from_headers(stats::Scope(store)
                                     .tagged("plugin", "plugin", name)
                                     .counter("misuse_buffer_from_headers")),
      misuse_continue_inside_hook(stats::Scope(store)
                                      .tagged("plugin", "plugin", name)
                                      .counter("misuse_continue_inside_hook")),
      misuse_refused_reply(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("misuse_refused_reply")),
      callouts_started(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_started")),
      callouts_ok(stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_ok")),
      callouts_timeout(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_timeout")),
      callouts_failed(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_failed")),
      callouts_overflow(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_overflow")),
      callouts_cancelled(
          stats::Scope(store).tagged("plugin", "plugin", name).counter("callouts_cancelled")),
      plugin_(plugin),
      name_(std::move(name)),
      plugin_config_(plugin_config),
      hook_mask_(HookMask(plugin.hooks())) {}

PluginFilterConfig::~PluginFilterConfig() {
  crash::PluginCallScope call(name_.c_str(), "sl_on_config_destroy");
  if (hooks().route_config_destroy != nullptr) {
    for (void* c : route_configs_) hooks().route_config_destroy(c);
  }
  if (hooks().config_destroy != nullptr) hooks().config_destroy(plugin_config_);
}

void PluginFilterConfig::adoptRoutes(std::vector<std::unique_ptr<sl_type_route>> routes) {
  for (auto& r : routes) {
    r->owner = this;
    route_set_.insert(r.get());
  }
  routes_ = std::move(routes);
}

http::StreamFilterFactory PluginFilterFactory(PluginFilterConfigSharedPtr config) {
  // Built inside the stream's allocation: a chain of plugins costs no allocation per filter.
  return http::StreamFilterFactory::InPlace(sizeof(PluginFilter), [config](void* storage) {
    return new (storage) PluginFilter(*config);
  });
}

PluginFilter::PluginFilter(const PluginFilterConfig& config) : config_(config) {}

void PluginFilter::setEncoderFilterCallbacks(http::EncoderFilterCallbacks& callbacks) {
  http::StreamFilter::setEncoderFilterCallbacks(callbacks);
  // The stream's callbacks are both set now (decoder first, then encoder): only from here may
  // the plugin's sl_on_filter_new use host functions on its stream.
  const Hooks& h = config_.hooks();
  if (h.filter_new == nullptr) {
    plugin_filter_ = config_.pluginConfig();
  } else {
    crash::PluginCallScope call(config_.name().c_str(), "sl_on_filter_new");
    plugin_filter_ = h.filter_new(config_.pluginConfig(), this);
    // Answered (500) when the request headers reach this filter.
    failed_new_ = plugin_filter_ == nullptr;
  }
  if (config_.definesRoutes()) callbacks.streamInfo().route_selector = this;
}

const http::RouteHandle* PluginFilter::selectRoute() {
  if (failed_new_ || config_.hooks().route_select == nullptr) return nullptr;
  crash::PluginCallScope call(config_.name().c_str(), "sl_on_route_select");
  const sl_type_route* route = config_.hooks().route_select(plugin_filter_, this);
  if (route != nullptr && !config_.ownsRoute(route)) {
    // Not a handle of this filter's config: a plugin bug, and a dangerous one to follow.
    config_.rejected_calls.inc();
    SLUICE_LOG(kError, "plugin filter %s: sl_on_route_select returned a route it did not define",
               config_.name());
    return nullptr;
  }
  return route;
}

const sl_type_route* PluginFilter::route() {
  http::StreamInfo& info = decoder_callbacks_->streamInfo();
  if (!info.route_selected) {
    // Set first: a selector asking for the route from inside its own selection sees none.
    info.route_selected = true;
    info.route = info.route_selector != nullptr ? info.route_selector->selectRoute() : nullptr;
  }
  return static_cast<const sl_type_route*>(info.route);
}

void PluginFilter::clearRoute() {
  http::StreamInfo& info = decoder_callbacks_->streamInfo();
  info.route_selected = false;
  info.route = nullptr;
}

PluginFilter::~PluginFilter() {
  if (extras_) {
    cancelCallouts();         // no sl_on_callout_done after this point
    extras_->timers.clear();  // no sl_on_timer after this point
    if (extras_->ref != nullptr) {
      extras_->ref->filter = nullptr;  // posts still queued see a gone stream
      extras_->ref->release();
    }
  }
  if (config_.hooks().filter_new != nullptr && plugin_filter_ != nullptr &&
      config_.hooks().filter_destroy != nullptr) {
    crash::PluginCallScope call(config_.name().c_str(), "sl_on_filter_destroy");
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
  info.setResponseFlag(http::ResponseFlag::kPluginFailure, "plugin_failure");
  // 500 while no response head has reached the codec (even one the filters are passing on, as
  // in a response hook); a reset otherwise (sendLocalReply decides).
  decoder_callbacks_->sendLocalReply(500, "internal error\n", nullptr);
}

Buffer* PluginFilter::body(bool request) {
  if (request)
    return request_chunk_ != nullptr ? request_chunk_ : decoder_callbacks_->decodingBuffer();
  return response_chunk_ != nullptr ? response_chunk_ : encoder_callbacks_->encodingBuffer();
}

void PluginFilter::misuse(stats::Counter& counter, const char* what) {
  if (misuse_what_ != nullptr) return;  // the first one decides
  misuse_what_ = what;
  misuse_counter_ = &counter;
}

void PluginFilter::endMisusedStream() {
  const char* what = misuse_what_;
  misuse_what_ = nullptr;
  misuse_counter_->inc();
  SLUICE_LOG(kError, "plugin filter %s misused the plugin ABI in %s: %s; stream %u ended",
             config_.name(), hook_ != nullptr ? hook_ : "a hook", what,
             decoder_callbacks_->streamId());
  auto& info = decoder_callbacks_->streamInfo();
  info.setResponseFlag(http::ResponseFlag::kPluginFailure, "plugin_misuse");
  // 500 while no response head has reached the codec; a reset otherwise.
  decoder_callbacks_->sendLocalReply(500, "internal error\n", nullptr);
}

bool PluginFilter::validAction(sl_type_action action, bool headers_hook, bool trailers_hook) {
  switch (action) {
    case SL_ACTION_CONTINUE:
    case SL_ACTION_STOP:
      return true;
    case SL_ACTION_STOP_AND_BUFFER:
      if (!headers_hook && !trailers_hook) return true;
      misuse(headers_hook ? config_.misuse_buffer_from_headers : config_.misuse_unknown_action,
             headers_hook ? "SL_ACTION_STOP_AND_BUFFER from a headers hook (body hooks only)"
                          : "SL_ACTION_STOP_AND_BUFFER from a trailers hook (body hooks only)");
      return false;
    case SL_ACTION_DEFAULT:
      if (!headers_hook) return true;
      misuse(config_.misuse_unknown_action,
             "SL_ACTION_DEFAULT from a headers hook (body and trailers hooks only)");
      return false;
    default:
      misuse(config_.misuse_unknown_action, "an unknown action");
      return false;
  }
}

FilterDataStatus PluginFilter::DataStatus(sl_type_action action, bool paused) {
  switch (action) {
    case SL_ACTION_DEFAULT:
      return paused ? FilterDataStatus::kStopIterationAndBuffer : FilterDataStatus::kContinue;
    case SL_ACTION_STOP:
      return FilterDataStatus::kStopIterationNoBuffer;
    case SL_ACTION_STOP_AND_BUFFER:
      return FilterDataStatus::kStopIterationAndBuffer;
    default:
      return FilterDataStatus::kContinue;
  }
}

uint32_t PluginFilter::hooks() const { return config_.hookMask(); }

FilterHeadersStatus PluginFilter::decodeHeaders(http::RequestHead&, bool end_stream) {
  if (failed_new_) {
    fail("sl_on_filter_new returned NULL");
    return FilterHeadersStatus::kStopIteration;
  }
  request_paused_ = false;  // each head decides afresh
  if (config_.hooks().request_headers == nullptr) return FilterHeadersStatus::kContinue;
  HookScope scope(*this, "sl_on_request_headers", /*request=*/true, /*headers=*/true, end_stream);
  const sl_type_action a = config_.hooks().request_headers(plugin_filter_, this, end_stream);
  validAction(a, true, false);  // records a misuse when it is not valid
  if (endIfMisused()) return FilterHeadersStatus::kStopIteration;
  if (a == SL_ACTION_CONTINUE) return FilterHeadersStatus::kContinue;
  request_paused_ = true;
  return FilterHeadersStatus::kStopIteration;
}

FilterDataStatus PluginFilter::decodeData(Buffer& data, bool end_stream) {
  if (failed_new_) return FilterDataStatus::kContinue;
  if (config_.hooks().request_body == nullptr) {
    // Paused without a body hook: keep the body until the plugin continues.
    return request_paused_ ? FilterDataStatus::kStopIterationAndBuffer
                           : FilterDataStatus::kContinue;
  }
  request_chunk_ = &data;
  HookScope scope(*this, "sl_on_request_body", /*request=*/true, /*headers=*/false, end_stream);
  const sl_type_action a = config_.hooks().request_body(plugin_filter_, this, end_stream);
  request_chunk_ = nullptr;
  validAction(a, false, false);  // records a misuse when it is not valid
  if (endIfMisused()) {
    return FilterDataStatus::kStopIterationNoBuffer;
  }
  if (a != SL_ACTION_DEFAULT) request_paused_ = false;  // the plugin decided about this body
  return DataStatus(a, request_paused_);
}

FilterTrailersStatus PluginFilter::decodeTrailers(http::HeaderMap&) {
  if (failed_new_) return FilterTrailersStatus::kContinue;
  if (config_.hooks().request_trailers == nullptr) {
    return request_paused_ ? FilterTrailersStatus::kStopIteration : FilterTrailersStatus::kContinue;
  }
  HookScope scope(*this, "sl_on_request_trailers", /*request=*/true);
  const sl_type_action a = config_.hooks().request_trailers(plugin_filter_, this);
  validAction(a, false, true);  // records a misuse when it is not valid
  if (endIfMisused()) return FilterTrailersStatus::kStopIteration;
  if (a == SL_ACTION_DEFAULT) {
    return request_paused_ ? FilterTrailersStatus::kStopIteration : FilterTrailersStatus::kContinue;
  }
  return a == SL_ACTION_CONTINUE ? FilterTrailersStatus::kContinue
                                 : FilterTrailersStatus::kStopIteration;
}

FilterHeadersStatus PluginFilter::encodeHeaders(http::ResponseHead&, bool end_stream) {
  // Each response head decides afresh: a local reply that replaces a response this filter held
  // (a body over the buffer limit) comes through here again.
  response_paused_ = false;
  if (config_.hooks().response_headers == nullptr || failed_new_) {
    return FilterHeadersStatus::kContinue;
  }
  HookScope scope(*this, "sl_on_response_headers", /*request=*/false, /*headers=*/true, end_stream);
  const sl_type_action a = config_.hooks().response_headers(plugin_filter_, this, end_stream);
  validAction(a, true, false);  // records a misuse when it is not valid
  if (endIfMisused()) return FilterHeadersStatus::kStopIteration;
  if (a == SL_ACTION_CONTINUE) return FilterHeadersStatus::kContinue;
  response_paused_ = true;
  return FilterHeadersStatus::kStopIteration;
}

FilterDataStatus PluginFilter::encodeData(Buffer& data, bool end_stream) {
  if (failed_new_) return FilterDataStatus::kContinue;
  if (config_.hooks().response_body == nullptr) {
    return response_paused_ ? FilterDataStatus::kStopIterationAndBuffer
                            : FilterDataStatus::kContinue;
  }
  response_chunk_ = &data;
  HookScope scope(*this, "sl_on_response_body", /*request=*/false, /*headers=*/false, end_stream);
  const sl_type_action a = config_.hooks().response_body(plugin_filter_, this, end_stream);
  response_chunk_ = nullptr;
  validAction(a, false, false);  // records a misuse when it is not valid
  if (endIfMisused()) {
    return FilterDataStatus::kStopIterationNoBuffer;
  }
  if (a != SL_ACTION_DEFAULT) response_paused_ = false;
  return DataStatus(a, response_paused_);
}

FilterTrailersStatus PluginFilter::encodeTrailers(http::HeaderMap&) {
  if (failed_new_) return FilterTrailersStatus::kContinue;
  if (config_.hooks().response_trailers == nullptr) {
    return response_paused_ ? FilterTrailersStatus::kStopIteration
                            : FilterTrailersStatus::kContinue;
  }
  HookScope scope(*this, "sl_on_response_trailers", /*request=*/false);
  const sl_type_action a = config_.hooks().response_trailers(plugin_filter_, this);
  validAction(a, false, true);  // records a misuse when it is not valid
  if (endIfMisused()) return FilterTrailersStatus::kStopIteration;
  if (a == SL_ACTION_DEFAULT) {
    return response_paused_ ? FilterTrailersStatus::kStopIteration
                            : FilterTrailersStatus::kContinue;
  }
  return a == SL_ACTION_CONTINUE ? FilterTrailersStatus::kContinue
                                 : FilterTrailersStatus::kStopIteration;
}

void PluginFilter::onStreamComplete() {
  // Disarmed, not freed: this may run inside one of them (a timer hook that sent a response).
  if (extras_) {
    for (auto& t : extras_->timers) t.timer->disableTimer();
    cancelCallouts();
  }
  if (config_.hooks().stream_complete != nullptr && !failed_new_) {
    crash::PluginCallScope call(config_.name().c_str(), "sl_on_stream_complete");
    config_.hooks().stream_complete(plugin_filter_, this);
  }
}

namespace {
// The plugin ABI's values are the core's (SL_UPSTREAM_ERROR_*, SL_RETRY_SAFETY_*,
// SL_RESPONSE_FLAG_*): converted by a cast.
static_assert(SL_UPSTREAM_ERROR_SEND_TIMEOUT ==
              static_cast<uint32_t>(http::UpstreamErrorKind::kSendTimeout));
static_assert(SL_UPSTREAM_ERROR_CONNECTION_CLOSED ==
              static_cast<uint32_t>(http::UpstreamErrorKind::kConnectionClosed));
static_assert(SL_RETRY_SAFETY_NEVER == static_cast<uint32_t>(http::RetrySafety::kNever));
static_assert(SL_RESPONSE_FLAG_UPSTREAM_PER_TRY_TIMEOUT ==
              http::FlagBit(http::ResponseFlag::kUpstreamPerTryTimeout));
static_assert(SL_RESPONSE_FLAG_UPSTREAM_RETRY_LIMIT_EXCEEDED ==
              http::FlagBit(http::ResponseFlag::kUpstreamRetryLimitExceeded));
static_assert(SL_RESPONSE_FLAG_PLUGIN_FAILURE == http::FlagBit(http::ResponseFlag::kPluginFailure));

void FillAttempt(const http::UpstreamAttempt& a, sl_type_attempt_result& r) {
  std::memset(&r, 0, sizeof(r));
  r.size = sizeof(r);
  switch (a.outcome) {
    case http::UpstreamAttempt::Outcome::kResponse:
      r.outcome = SL_ATTEMPT_RESPONSE;
      break;
    case http::UpstreamAttempt::Outcome::kConnectFailure:
      r.outcome = SL_ATTEMPT_CONNECT_FAILURE;
      break;
    case http::UpstreamAttempt::Outcome::kReset:
      r.outcome = SL_ATTEMPT_RESET;
      break;
    case http::UpstreamAttempt::Outcome::kTimeout:
      r.outcome = SL_ATTEMPT_TIMEOUT;
      break;
    case http::UpstreamAttempt::Outcome::kOverflow:
      r.outcome = SL_ATTEMPT_OVERFLOW;
      break;
    case http::UpstreamAttempt::Outcome::kProtocolError:
      r.outcome = SL_ATTEMPT_PROTOCOL_ERROR;
      break;
    case http::UpstreamAttempt::Outcome::kCancelled:
      r.outcome = SL_ATTEMPT_CANCELLED;
      break;
  }
  r.status = a.status;
  r.attempt = a.attempt;
  r.host = sl_type_str{a.host.data(), a.host.size()};
  r.bytes_sent = a.bytes_sent;
  r.bytes_received = a.bytes_received;
  r.duration_us = static_cast<uint64_t>(a.duration.count());
  r.error_kind = static_cast<sl_type_upstream_error>(a.error);
  r.retry_safety = static_cast<uint32_t>(a.safety);
}
}  // namespace

void PluginFilter::onUpstreamAttemptDone(const http::UpstreamAttempt& a) {
  if (failed_new_ || config_.hooks().upstream_attempt_done == nullptr) return;
  sl_type_attempt_result r;
  FillAttempt(a, r);
  uint64_t retry_after_ms = 0;
  observing_ = true;
  crash::PluginCallScope call(config_.name().c_str(), "sl_on_upstream_attempt_done");
  // Observation only: retries are sl_on_upstream_retry's.
  (void)config_.hooks().upstream_attempt_done(plugin_filter_, this, &r, &retry_after_ms);
  observing_ = false;
}

http::RetryVerdict PluginFilter::onUpstreamRetry(const http::UpstreamAttempt& a,
                                                 http::RetryDecision& decision) {
  if (failed_new_ || config_.hooks().upstream_retry == nullptr) return http::RetryVerdict::kNo;
  sl_type_attempt_result r;
  FillAttempt(a, r);
  // The response head's fields, as sl_host_header_list gives them (views into the head).
  std::vector<sl_type_header> headers;
  if (a.response_headers != nullptr) {
    headers.reserve(a.response_headers->size());
    for (const auto& e : a.response_headers->entries()) {
      if (e.name.empty() || e.name[0] == ':') continue;
      headers.push_back(
          {sl_type_str{e.name.data(), e.name.size()}, sl_type_str{e.value.data(), e.value.size()}});
    }
    r.headers = headers.data();
    r.header_count = headers.size();
  }
  sl_type_retry_decision d;
  std::memset(&d, 0, sizeof(d));
  d.size = sizeof(d);
  observing_ = true;
  int verdict;
  {
    crash::PluginCallScope call(config_.name().c_str(), "sl_on_upstream_retry");
    verdict = config_.hooks().upstream_retry(plugin_filter_, this, &r, &d);
  }
  observing_ = false;
  switch (verdict) {
    case SL_RETRY_YES:
      decision.delay = std::chrono::milliseconds(
          std::min<uint64_t>(d.delay_ms, static_cast<uint64_t>(INT32_MAX)));
      // A budget the plugin got wrong (NaN, negative) is no budget at all.
      decision.budget_percent = d.budget_percent > 0 ? std::min(d.budget_percent, 100.0) : 0.0;
      decision.min_retry_concurrency = d.min_retry_concurrency;
      return http::RetryVerdict::kYes;
    case SL_RETRY_LIMIT_EXCEEDED:
      return http::RetryVerdict::kLimitExceeded;
    default:
      return http::RetryVerdict::kNo;
  }
}

sl_type_result PluginFilter::startTimer(uint64_t token, uint64_t delay_ms) {
  if (completed()) return rejected(SL_ERR_STATE);
  if (config_.hooks().timer == nullptr) return rejected(SL_ERR_STATE);
  auto& timers = extras().timers;
  for (auto& t : timers) {
    if (t.token == token) {
      t.timer->enableTimer(std::chrono::milliseconds(delay_ms));
      return SL_OK;
    }
  }
  if (timers.size() >= 64) return rejected(SL_ERR_LIMIT);
  auto timer = decoder_callbacks_->dispatcher().createTimer([this, token] { onTimer(token); });
  timer->enableTimer(std::chrono::milliseconds(delay_ms));
  timers.push_back(PluginTimer{token, std::move(timer)});
  return SL_OK;
}

sl_type_result PluginFilter::cancelTimer(uint64_t token) {
  // Disarmed, not freed: the hook cancelling may be running inside this very timer's callback.
  if (!extras_) return SL_ERR_NOT_FOUND;
  for (auto& t : extras_->timers) {
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
  if (completed()) return;
  crash::PluginCallScope call(config_.name().c_str(), "sl_on_timer");
  config_.hooks().timer(plugin_filter_, this, token);
}

sl_type_stream_ref* PluginFilter::ref() {
  sl_type_stream_ref*& ref = extras().ref;
  if (ref == nullptr) {
    ref = new sl_type_stream_ref;  // one count held by this filter
    ref->dispatcher = &decoder_callbacks_->dispatcher();
    ref->filter_name = config_.name().c_str();
    ref->filter = this;
  }
  ref->refs.fetch_add(1, std::memory_order_relaxed);
  return ref;
}

}  // namespace sluice::plugin
