/* stamp: sets `x-stamp: <the plugin ABI version it was built for>` on every response. The
 * example of a plain C plugin built out of tree with nothing but pkg-config (docs/plugins.md).
 * No config (it refuses one) and no per-stream state: sl_on_filter_new is absent, so nothing is
 * allocated per request. */

#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

static sl_type_str cstr(const char* s) {
  sl_type_str r = {s, strlen(s)};
  return r;
}

/* The header value, "1.3" for ABI 1.3: a constant, so every config shares it unchanged. */
#define STRINGIFY2(x) #x
#define STRINGIFY(x) STRINGIFY2(x)
static const char kStamp[] = STRINGIFY(SL_ABI_VERSION_MAJOR) "." STRINGIFY(SL_ABI_VERSION_MINOR);

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str json, void** out) {
  (void)name;
  /* Without a config type, the config comes as compact JSON: "{}" when there is none. */
  if (json.len != 2 || memcmp(json.data, "{}", 2) != 0) {
    sl_host_config_error(host, cstr("stamp takes no config"));
    return SL_ERR_INVALID;
  }
  *out = (void*)kStamp; /* the filter pointer of every stream (no sl_on_filter_new) */
  return SL_OK;
}

SL_EXPORT sl_type_action sl_on_response_headers(void* filter, sl_type_stream* stream,
                                                int end_stream) {
  (void)end_stream;
  sl_host_header_set(stream, SL_HEADERS_RESPONSE, cstr("x-stamp"), cstr((const char*)filter));
  return SL_ACTION_CONTINUE;
}
