/* A filter without sl_on_callout_done that calls sl_host_callout anyway (refused: its
 * completion would have nowhere to go) and with a NULL id; it answers with both results, e.g.
 * "state=-3 null_id=-2". Filter name: "callout_no_hook". */
#include <stdio.h>

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
  (void)filter, (void)end_stream;
  sl_type_header h[2] = {{{":method", 7}, {"GET", 3}}, {{":path", 5}, {"/", 1}}};
  sl_type_str cluster = {"svc", 3};
  sl_type_str none = {0, 0};
  uint64_t id = 99;
  sl_type_result state = sl_host_callout(stream, cluster, h, 2, none, 0, &id);
  sl_type_result null_id = sl_host_callout(stream, cluster, h, 2, none, 0, 0);
  char body[64];
  int n = snprintf(body, sizeof(body), "state=%d null_id=%d id=%llu", (int)state, (int)null_id,
                   (unsigned long long)id);
  sl_type_str b = {body, (size_t)n};
  sl_host_send_response(stream, 200, 0, 0, b, none);
  return SL_ACTION_STOP;
}
