/* Has the version hook but not the other required one (sl_on_config_new). */
#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }
