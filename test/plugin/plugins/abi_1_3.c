/* A plugin built for plugin ABI 1.3 (before the 1.4 additions): newer hosts must keep
 * loading it and building its config (the versioning promise: same major, older minor). It
 * reports its version by number, as a plugin compiled against the 1.3 header did. */
#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return (uint32_t)((1u << 16) | 3u); }

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
