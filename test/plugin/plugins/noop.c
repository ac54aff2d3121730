/* The cheapest possible filter: no per-stream state (no sl_on_filter_new), one hook that
 * continues. Used by tools/bench/plugin_overhead and the plugin tests. Its filter name comes
 * from the file name ("noop"). */
#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config;
  *out = 0;
  return SL_OK;
}

SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream) {
  (void)filter, (void)stream, (void)end_stream;
  return SL_ACTION_CONTINUE;
}
