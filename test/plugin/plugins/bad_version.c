/* A plugin built for another ABI major version: the host must refuse it. */
#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return (uint32_t)(2u << 16); }
SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config, (void)out;
  return SL_OK;
}
