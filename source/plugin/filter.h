#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "source/common/crash_handler.h"
#include "source/http/callout.h"
#include "source/http/filter.h"
#include "source/plugin/filter_config.h"
#include "source/plugin/host_types.h"

namespace sluice::plugin {

// The bridge between one plugin filter instance and the stream's filter chain: it calls the
// plugin's hooks with views of the stream's heads and body (no copies), and is itself the
// sl_type_stream the host functions receive.
class PluginFilter : public http::StreamFilter, public http::RouteSelector, public sl_type_stream {
 public:
  explicit PluginFilter(const PluginFilterConfig& config);
  ~PluginFilter() override;

  static PluginFilter& From(sl_type_stream* s) { return *static_cast<PluginFilter*>(s); }

  // http::StreamFilter
  void setEncoderFilterCallbacks(http::EncoderFilterCallbacks& callbacks) override;
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  http::FilterDataStatus decodeData(Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus decodeTrailers(http::HeaderMap& trailers) override;
  http::FilterHeadersStatus encodeHeaders(http::ResponseHead& head, bool end_stream) override;
  http::FilterDataStatus encodeData(Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus encodeTrailers(http::HeaderMap& trailers) override;
  void onStreamComplete() override;
  void onUpstreamAttemptDone(const http::UpstreamAttempt& attempt) override;
  http::RetryVerdict onUpstreamRetry(const http::UpstreamAttempt& attempt,
                                     http::RetryDecision& decision) override;
  uint32_t hooks() const override;

  // For the host functions.
  const PluginFilterConfig& config() const { return config_; }
  void* pluginFilter() const { return plugin_filter_; }
  http::DecoderFilterCallbacks& decoder() { return *decoder_callbacks_; }
  http::EncoderFilterCallbacks& encoder() { return *encoder_callbacks_; }
  http::RequestHead* requestHead() { return decoder_callbacks_->requestHeadIfAny(); }
  http::ResponseHead* responseHead() { return decoder_callbacks_->responseHeadIfAny(); }
  http::HeaderMap* requestTrailers() { return decoder_callbacks_->requestTrailers(); }
  http::HeaderMap* responseTrailers() { return decoder_callbacks_->responseTrailers(); }
  // The body sl_host_body_* works on: the chunk in the current body hook, else what the
  // stream buffered for this direction (nullptr: none).
  Buffer* body(bool request);
  bool completed() const { return decoder_callbacks_->streamCompleted(); }
  // Inside sl_on_upstream_attempt_done or sl_on_upstream_retry (nothing may change).
  bool observing() const { return observing_; }
  // sl_host_trailers_add on a message without trailers: allowed in this filter's body hook of
  // that direction with end_stream (nullptr otherwise).
  http::HeaderMap* addTrailers(bool request) {
    if (hook_ == nullptr || hook_request_ != request || !hook_end_stream_ ||
        (request ? request_chunk_ : response_chunk_) == nullptr) {
      return nullptr;
    }
    return decoder_callbacks_->addTrailers(request);
  }
  // sl_host_trailers_expect: inside this filter's headers hook of that direction, which did not
  // end the message.
  bool inHeadersHook(bool request) const {
    return hook_ != nullptr && hook_request_ == request && hook_headers_ && !hook_end_stream_;
  }
  // Counts a host call refused as invalid; returns `result` for convenience.
  sl_type_result rejected(sl_type_result result);
  void fail(std::string_view reason);
  // sl_host_continue_request / _response: false when that direction is not paused at this
  // filter (or the call was a misuse, which ends the stream when the hook returns).
  bool continueRequest() {
    if (hook_ != nullptr && hook_request_) {
      misuse(config_.misuse_continue_inside_hook,
             "sl_host_continue_request from inside its own hook");
      return false;
    }
    request_paused_ = false;
    return decoder_callbacks_->continueDecoding();
  }
  bool continueResponse() {
    if (hook_ != nullptr && !hook_request_) {
      misuse(config_.misuse_continue_inside_hook,
             "sl_host_continue_response from inside its own hook");
      return false;
    }
    response_paused_ = false;
    return encoder_callbacks_->continueEncoding();
  }
  // A send_response the host refused (the response had started) from inside a response hook:
  // the plugin meant to end the stream, so it ends.
  void onRefusedReply() {
    if (hook_ != nullptr && !hook_request_) {
      misuse(config_.misuse_refused_reply, "sl_host_send_response after the response started");
    }
  }

  // http::RouteSelector (registered for the stream when this filter's config defines routes).
  const http::RouteHandle* selectRoute() override;
  // The stream's route, chosen now if it is not yet (nullptr: none matched, or no selector).
  const sl_type_route* route();
  void clearRoute();

  sl_type_result startTimer(uint64_t token, uint64_t delay_ms);
  sl_type_result cancelTimer(uint64_t token);
  sl_type_stream_ref* ref();

  // sl_host_callout (filter_callout.cc).
  sl_type_result startCallout(sl_type_str cluster, const sl_type_header* headers,
                              size_t header_count, sl_type_str body, uint64_t timeout_ms,
                              uint64_t* callout_id);

 private:
  // A callout in flight: its handle, and where its completion goes (this filter, under its id).
  struct ActiveCallout : http::CalloutCallbacks {
    ActiveCallout(PluginFilter& filter, uint64_t id) : filter(filter), id(id) {}
    void onCalloutComplete(http::CalloutResponse& response) override {
      filter.onCalloutComplete(*this, response);
    }
    PluginFilter& filter;
    const uint64_t id;
    http::CalloutPtr callout;
  };
  void onCalloutComplete(ActiveCallout& callout, http::CalloutResponse& response);
  // The stream is over: every callout in flight is withdrawn (and counted), none completes.
  void cancelCallouts();

 public:
  // sl_host_callout_cancel: withdraws one callout in flight (false: none with that id).
  bool cancelCallout(uint64_t id);

 private:
  struct PluginTimer {
    uint64_t token;
    event::TimerPtr timer;
  };
  // What few streams use (timers, cross-thread references), allocated on first use: a chain of
  // plugin filters is built inside each stream's block, so every byte here is paid per request.
  struct Extras {
    std::vector<PluginTimer> timers;  // few per stream, if any
    sl_type_stream_ref* ref = nullptr;
    std::vector<std::unique_ptr<ActiveCallout>> callouts;  // in flight, at most a few
    uint64_t last_callout_id = 0;
  };
  Extras& extras() {
    if (!extras_) extras_ = std::make_unique<Extras>();
    return *extras_;
  }
  void onTimer(uint64_t token);
  static http::FilterDataStatus DataStatus(sl_type_action action, bool paused);
  // An ABI misuse in the hook under way: recorded, and acted on once the hook returns (the
  // stream is ended then, not from under the plugin's feet).
  void misuse(stats::Counter& counter, const char* what);
  // After a hook returned: ends the stream if the hook misused the ABI (true).
  bool endIfMisused() {
    // Inline: after every hook call, and almost never true.
    if (misuse_what_ == nullptr) [[likely]]
      return false;
    endMisusedStream();
    return true;
  }
  void endMisusedStream();
  // Checks a hook's action against what that kind of hook may return; false (a misuse
  // recorded) when it may not.
  bool validAction(sl_type_action action, bool headers_hook, bool trailers_hook);
  // Marks the hook under way (for the misuse checks): its name and direction.
  // Also tells the thread's log lines and crash report which filter's hook is running.
  struct HookScope {
    HookScope(PluginFilter& f, const char* name, bool request, bool headers = false,
              bool end_stream = false)
        : f(f), call(f.config_.name().c_str(), name) {
      f.hook_ = name;
      f.hook_request_ = request;
      f.hook_headers_ = headers;
      f.hook_end_stream_ = end_stream;
    }
    ~HookScope() {
      f.hook_ = nullptr;
      f.hook_headers_ = false;
      f.hook_end_stream_ = false;
    }
    PluginFilter& f;
    crash::PluginCallScope call;
  };

  const PluginFilterConfig& config_;
  void* plugin_filter_ = nullptr;
  Buffer* request_chunk_ = nullptr;   // during sl_on_request_body
  Buffer* response_chunk_ = nullptr;  // during sl_on_response_body
  std::unique_ptr<Extras> extras_;
  bool failed_new_ = false;
  // This filter stopped that direction's headers and has no body/trailers hook: it holds what
  // follows (buffered) until it continues, as a paused plugin expects.
  bool request_paused_ = false;
  bool response_paused_ = false;
  bool hook_request_ = false;
  bool hook_headers_ = false;     // the hook under way is a headers hook
  bool hook_end_stream_ = false;  // ... and its end_stream
  bool observing_ = false;        // in sl_on_upstream_attempt_done or sl_on_upstream_retry
  const char* hook_ = nullptr;    // the hook under way, or nullptr
  // The misuse recorded in the hook under way (what, and its counter).
  const char* misuse_what_ = nullptr;
  stats::Counter* misuse_counter_ = nullptr;
};

}  // namespace sluice::plugin
