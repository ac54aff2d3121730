#pragma once

#include <dlfcn.h>

#include <cstdint>

#include "api/sluice/plugin/v1/sluice_plugin.h"

// The hooks of a plugin and how they are found in it: shared by the loader and the plugin test
// harness (extensions/sdk/test_harness), so that both see the same hooks of the same plugin.
// Header-only: the harness links no sluice library for it.

namespace sluice::plugin {

// The hooks one plugin exports (null: absent; abi_version and config_new never are).
struct Hooks {
  uint32_t (*abi_version)(void) = nullptr;
  const char* const* (*filter_names)(void) = nullptr;
  sl_type_result (*config_type)(sl_type_str, sl_type_config_type*) = nullptr;
  sl_type_result (*config_new)(sl_type_config_host*, sl_type_str, sl_type_str, void**) = nullptr;
  void (*config_destroy)(void*) = nullptr;
  void* (*filter_new)(void*, sl_type_stream*) = nullptr;
  void (*filter_destroy)(void*) = nullptr;
  sl_type_action (*request_headers)(void*, sl_type_stream*, int) = nullptr;
  sl_type_action (*request_body)(void*, sl_type_stream*, int) = nullptr;
  sl_type_action (*request_trailers)(void*, sl_type_stream*) = nullptr;
  sl_type_action (*response_headers)(void*, sl_type_stream*, int) = nullptr;
  sl_type_action (*response_body)(void*, sl_type_stream*, int) = nullptr;
  sl_type_action (*response_trailers)(void*, sl_type_stream*) = nullptr;
  void (*stream_complete)(void*, sl_type_stream*) = nullptr;
  void (*timer)(void*, sl_type_stream*, uint64_t) = nullptr;
  void (*callout_done)(void*, sl_type_stream*, uint64_t, const sl_type_callout_result*) = nullptr;
  int (*upstream_attempt_done)(void*, sl_type_stream*, const sl_type_attempt_result*,
                               uint64_t*) = nullptr;
  // Since 1.3 (looked up only in plugins built for 1.3 or later).
  sl_type_result (*route_config_type)(sl_type_str, sl_type_config_type*) = nullptr;
  sl_type_result (*route_config_new)(sl_type_config_host*, void*, sl_type_str, sl_type_str,
                                     void**) = nullptr;
  void (*route_config_destroy)(void*) = nullptr;
  const sl_type_route* (*route_select)(void*, sl_type_stream*) = nullptr;
  // Since 1.4.
  int (*upstream_retry)(void*, sl_type_stream*, const sl_type_attempt_result*,
                        sl_type_retry_decision*) = nullptr;
};

namespace hooks_internal {
template <class Fn>
void Lookup(void* handle, const char* symbol, Fn*& out) {
  out = reinterpret_cast<Fn*>(dlsym(handle, symbol));
}
}  // namespace hooks_internal

// Every optional hook of a plugin built for ABI minor `minor` (abi_version and config_new, which
// the caller checks first, are left alone).
inline void LookupOptionalHooks(void* handle, uint32_t minor, Hooks& hooks) {
  using hooks_internal::Lookup;
  Lookup(handle, "sl_on_filter_names", hooks.filter_names);
  Lookup(handle, "sl_on_config_type", hooks.config_type);
  Lookup(handle, "sl_on_config_destroy", hooks.config_destroy);
  Lookup(handle, "sl_on_filter_new", hooks.filter_new);
  Lookup(handle, "sl_on_filter_destroy", hooks.filter_destroy);
  Lookup(handle, "sl_on_request_headers", hooks.request_headers);
  Lookup(handle, "sl_on_request_body", hooks.request_body);
  Lookup(handle, "sl_on_request_trailers", hooks.request_trailers);
  Lookup(handle, "sl_on_response_headers", hooks.response_headers);
  Lookup(handle, "sl_on_response_body", hooks.response_body);
  Lookup(handle, "sl_on_response_trailers", hooks.response_trailers);
  Lookup(handle, "sl_on_stream_complete", hooks.stream_complete);
  Lookup(handle, "sl_on_timer", hooks.timer);
  Lookup(handle, "sl_on_callout_done", hooks.callout_done);
  // A plugin built for an older minor cannot mean the later hooks (a same-named function of
  // its own would be called with arguments it does not expect).
  if (minor >= 3) {
    // Declared since 1.0 but first called in 1.3: the C++ SDK of 1.0-1.2 exported it from every
    // plugin, which would make every stream of theirs measure its upstream attempts for nobody.
    Lookup(handle, "sl_on_upstream_attempt_done", hooks.upstream_attempt_done);
    Lookup(handle, "sl_on_route_config_type", hooks.route_config_type);
    Lookup(handle, "sl_on_route_config_new", hooks.route_config_new);
    Lookup(handle, "sl_on_route_config_destroy", hooks.route_config_destroy);
    Lookup(handle, "sl_on_route_select", hooks.route_select);
  }
  if (minor >= 4) Lookup(handle, "sl_on_upstream_retry", hooks.upstream_retry);
}

}  // namespace sluice::plugin
