/* A plugin whose constructor loads a library into the process, as a dependency of a plugin would
 * (DT_NEEDED) — the loader must refuse it when that library clashes with sluice's own:
 * OpenSSL's libssl.so.3 (sluice uses BoringSSL) or a second protobuf runtime. BRINGS names the
 * library (a path or a soname), set per build of this file. */
#include <dlfcn.h>

#include "sluice/plugin/v1/sluice_plugin.h"

__attribute__((constructor)) static void bring(void) { dlopen(BRINGS, RTLD_NOW | RTLD_GLOBAL); }

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config;
  *out = 0;
  return SL_OK;
}
