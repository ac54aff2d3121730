// Callouts of a plugin filter (sl_host_callout / sl_on_callout_done): HTTP requests to a
// cluster of the config through the worker's CalloutClient, completed on the stream's worker
// and withdrawn when the stream ends.

#include <algorithm>
#include <cstring>

#include "source/common/logging.h"
#include "source/http/http1/parser.h"
#include "source/plugin/filter.h"

namespace sluice::plugin {

namespace {
std::string_view View(sl_type_str s) {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.len);
}
bool Valid(sl_type_str s) { return s.data != nullptr || s.len == 0; }

// Origin-form (or asterisk) on a request line: no whitespace or controls.
bool ValidPath(std::string_view p) {
  if (p.empty() || (p[0] != '/' && p != "*")) return false;
  for (unsigned char c : p) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

sl_type_attempt_outcome Outcome(http::CalloutOutcome o) {
  switch (o) {
    case http::CalloutOutcome::kResponse:
      return SL_ATTEMPT_RESPONSE;
    case http::CalloutOutcome::kConnectFailure:
      return SL_ATTEMPT_CONNECT_FAILURE;
    case http::CalloutOutcome::kReset:
      return SL_ATTEMPT_RESET;
    case http::CalloutOutcome::kProtocolError:
      return SL_ATTEMPT_PROTOCOL_ERROR;
    case http::CalloutOutcome::kTimeout:
      return SL_ATTEMPT_TIMEOUT;
    case http::CalloutOutcome::kOverflow:
      return SL_ATTEMPT_OVERFLOW;
  }
  return SL_ATTEMPT_RESET;
}
}  // namespace

sl_type_result PluginFilter::startCallout(sl_type_str cluster, const sl_type_header* headers,
                                          size_t header_count, sl_type_str body,
                                          uint64_t timeout_ms, uint64_t* callout_id) {
  if (callout_id != nullptr) *callout_id = 0;
  if (!Valid(cluster) || !Valid(body) || (headers == nullptr && header_count != 0) ||
      callout_id == nullptr) {
    return rejected(SL_ERR_INVALID);
  }
  // Its completion would have nowhere to go.
  if (completed() || config_.hooks().callout_done == nullptr) return rejected(SL_ERR_STATE);
  http::CalloutClient* client = decoder_callbacks_->calloutClient();
  if (client == nullptr) return SL_ERR_UNSUPPORTED;
  if (extras_ && extras_->callouts.size() >= SL_CALLOUT_MAX_IN_FLIGHT) {
    return rejected(SL_ERR_LIMIT);
  }
  const uint32_t limit = decoder_callbacks_->bufferLimit();
  if (body.len > limit) return rejected(SL_ERR_LIMIT);

  http::CalloutRequest request;
  for (size_t i = 0; i < header_count; ++i) {
    const sl_type_header& h = headers[i];
    if (!Valid(h.name) || !Valid(h.value)) return rejected(SL_ERR_INVALID);
    const std::string_view name = View(h.name);
    const std::string_view value = View(h.value);
    if (!http::http1::IsValidFieldValue(value)) return rejected(SL_ERR_INVALID);
    if (name == ":method") {
      if (!http::http1::IsValidFieldName(value)) return rejected(SL_ERR_INVALID);  // a token
      request.method.assign(value);
    } else if (name == ":path") {
      if (!ValidPath(value)) return rejected(SL_ERR_INVALID);
      request.path.assign(value);
    } else if (name == ":authority") {
      if (value.empty()) return rejected(SL_ERR_INVALID);
      request.authority.assign(value);
    } else if (name == ":scheme") {
      // The cluster decides how it is reached.
    } else if (!http::http1::IsValidFieldName(name)) {
      return rejected(SL_ERR_INVALID);  // includes any other pseudo-header
    } else {
      request.headers.add(name, value);
    }
  }
  if (request.method.empty() || request.path.empty() || request.method == "CONNECT") {
    return rejected(SL_ERR_INVALID);
  }
  // Checked before the request is built further: an unknown name is the plugin's config
  // mistake, answered now rather than as an outcome.
  if (!client->hasCluster(View(cluster))) return SL_ERR_NOT_FOUND;
  request.body.assign(View(body));

  http::CalloutOptions options;
  options.timeout =
      std::chrono::milliseconds(timeout_ms != 0 ? timeout_ms : SL_CALLOUT_DEFAULT_TIMEOUT_MS);
  options.max_response_bytes = limit;
  Extras& x = extras();
  auto active = std::make_unique<ActiveCallout>(*this, x.last_callout_id + 1);
  auto sent = client->send(View(cluster), std::move(request), options, *active);
  if (!sent.ok()) {
    SLUICE_LOG(kDebug, "plugin filter %s: callout refused: %s", config_.name(),
               sent.status().message());
    return sent.status().code() == absl::StatusCode::kNotFound ? SL_ERR_NOT_FOUND
                                                               : rejected(SL_ERR_INVALID);
  }
  active->callout = std::move(*sent);
  ++x.last_callout_id;
  *callout_id = active->id;
  x.callouts.push_back(std::move(active));
  config_.callouts_started.inc();
  return SL_OK;
}

void PluginFilter::onCalloutComplete(ActiveCallout& callout, http::CalloutResponse& response) {
  // Out of the list first: the hook may start new callouts, or end the stream (which withdraws
  // the others). The callout object goes after this event (it is still on the stack).
  auto& list = extras_->callouts;
  auto it =
      std::find_if(list.begin(), list.end(), [&](const auto& c) { return c.get() == &callout; });
  if (it == list.end()) return;  // not ours any more: cannot happen (withdrawn ones are quiet)
  std::unique_ptr<ActiveCallout> owned = std::move(*it);
  list.erase(it);
  decoder_callbacks_->dispatcher().deferredDelete(std::move(owned->callout));

  switch (response.outcome) {
    case http::CalloutOutcome::kResponse:
      config_.callouts_ok.inc();
      break;
    case http::CalloutOutcome::kTimeout:
      config_.callouts_timeout.inc();
      break;
    case http::CalloutOutcome::kOverflow:
      config_.callouts_overflow.inc();
      break;
    default:
      config_.callouts_failed.inc();
      break;
  }
  if (completed()) return;  // the stream ended (withdrawal makes this unreachable)

  // Views into the response: valid while the hook runs.
  std::vector<sl_type_header> fields;
  fields.reserve(response.headers.size());
  for (const auto& e : response.headers.entries()) {
    if (e.name.empty()) continue;
    fields.push_back(
        sl_type_header{{e.name.data(), e.name.size()}, {e.value.data(), e.value.size()}});
  }
  sl_type_callout_result result;
  std::memset(&result, 0, sizeof(result));
  result.size = sizeof(result);
  result.status = response.status;
  result.outcome = Outcome(response.outcome);
  result.headers = fields.data();
  result.header_count = fields.size();
  result.body = sl_type_str{response.body.data(), response.body.size()};
  crash::PluginCallScope call(config_.name().c_str(), "sl_on_callout_done");
  config_.hooks().callout_done(plugin_filter_, this, owned->id, &result);
}

bool PluginFilter::cancelCallout(uint64_t id) {
  if (!extras_) return false;
  auto& list = extras_->callouts;
  auto it = std::find_if(list.begin(), list.end(), [id](const auto& c) { return c->id == id; });
  if (it == list.end()) return false;
  // Out of the list before it is destroyed (destroying withdraws it; nothing calls back).
  std::unique_ptr<ActiveCallout> owned = std::move(*it);
  list.erase(it);
  config_.callouts_cancelled.inc();
  return true;
}

void PluginFilter::cancelCallouts() {
  if (!extras_ || extras_->callouts.empty()) return;
  // Destroying each withdraws it (a waiting request leaves its pool's queue, an exchange under
  // way closes its connection); none completes.
  config_.callouts_cancelled.add(extras_->callouts.size());
  auto list = std::move(extras_->callouts);
  extras_->callouts.clear();
  list.clear();
}

}  // namespace sluice::plugin
