/* A plugin built against a newer minor version than the host's: refused too. */
#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) {
  return (uint32_t)((SL_ABI_VERSION_MAJOR << 16) | (SL_ABI_VERSION_MINOR + 1));
}
SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config, (void)out;
  return SL_OK;
}
