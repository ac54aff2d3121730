/* "callout": asks cluster "auth" (GET /check, the request's x-user in x-user) before the request
 * goes on; a 200 answer's body becomes x-auth on the request, anything else is a 403. For the
 * plugin test harness's tests (the harness answers callouts with what the test gives). */
#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

static sl_type_str S(const char* s) {
  sl_type_str r = {s, strlen(s)};
  return r;
}

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** config_out) {
  (void)host, (void)name, (void)config;
  *config_out = NULL;
  return SL_OK;
}

SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream) {
  (void)filter, (void)end_stream;
  sl_type_str user = {NULL, 0};
  sl_host_header_get(stream, SL_HEADERS_REQUEST, S("x-user"), 0, &user);
  sl_type_header headers[3] = {
      {S(":method"), S("GET")}, {S(":path"), S("/check")}, {S("x-user"), user}};
  uint64_t id = 0;
  if (sl_host_callout(stream, S("auth"), headers, 3, S(""), 500, &id) != SL_OK) {
    sl_host_send_response(stream, 503, NULL, 0, S("no auth\n"), S("callout_refused"));
  }
  return SL_ACTION_STOP;
}

SL_EXPORT void sl_on_callout_done(void* filter, sl_type_stream* stream, uint64_t callout_id,
                                  const sl_type_callout_result* result) {
  (void)filter, (void)callout_id;
  if (result->status == 200) {
    sl_host_header_set(stream, SL_HEADERS_REQUEST, S("x-auth"), result->body);
    sl_host_continue_request(stream);
  } else {
    sl_host_send_response(stream, 403, NULL, 0, S("denied\n"), S("auth_denied"));
  }
}
