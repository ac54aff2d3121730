/* A plugin that hands the host hostile text, to prove that what reaches a log or a terminal is
 * bounded and escaped. Its filter name comes from the file name ("loud").
 *  - config: a JSON string; one starting with "bad" is refused with an error that holds an ESC
 *    sequence, a CR LF and invalid UTF-8, and is 10 000 bytes long.
 *  - request field x-loud: "log" logs a line with terminal escapes, a forged log line and
 *    invalid UTF-8; "huge" logs 100 000 bytes; "fail" fails the stream with such a reason. */
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

static const char kHostile[] =
    "loud says \x1b[31mred\x1b[0m\r\n[2026-01-01T00:00:00.000Z] [error] [main] forged \xff\xfe end";

static sl_type_str Str(const char* s) { return (sl_type_str){s, strlen(s)}; }

static int Is(sl_type_str v, const char* s) {
  return v.len == strlen(s) && memcmp(v.data, s, v.len) == 0;
}

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)name;
  *out = 0;
  if (config.len >= 4 && memcmp(config.data, "\"bad", 4) == 0) {
    static char error[10000];
    memset(error, 'x', sizeof(error));
    memcpy(error, kHostile, sizeof(kHostile) - 1);
    sl_host_config_error(host, (sl_type_str){error, sizeof(error)});
    return SL_ERR_INVALID;
  }
  return SL_OK;
}

SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream) {
  (void)filter, (void)end_stream;
  sl_type_str how = {0, 0};
  if (sl_host_header_get(stream, SL_HEADERS_REQUEST, Str("x-loud"), 0, &how) != SL_OK) {
    return SL_ACTION_CONTINUE;
  }
  if (Is(how, "log")) {
    sl_host_log(SL_LOG_WARN, Str(kHostile));
  } else if (Is(how, "huge")) {
    const size_t n = 100000;
    char* big = malloc(n);
    if (big == 0) return SL_ACTION_CONTINUE;
    memset(big, 'h', n);
    memcpy(big, "huge:", 5);
    sl_host_log(SL_LOG_WARN, (sl_type_str){big, n});
    free(big);
  } else if (Is(how, "fail")) {
    sl_host_fail_stream(stream, Str(kHostile));
    return SL_ACTION_STOP;
  }
  return SL_ACTION_CONTINUE;
}
