/* A plugin that crashes the process when a request asks it to (request field x-crash): "segv"
 * dereferences NULL, "abort" calls abort(), "stack" recurses until the stack overflows. For the
 * crash handler's test (integration_crash_test): the report must name the signal, this plugin's
 * filter and file, and carry a backtrace. Its filter name comes from the file name ("crash"). */
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config;
  *out = 0;
  return SL_OK;
}

static int Is(sl_type_str v, const char* s) {
  return v.len == strlen(s) && memcmp(v.data, s, v.len) == 0;
}

/* Not inlined and not a tail call, so that every level takes stack. */
__attribute__((noinline)) static int Recurse(volatile char* previous, int depth) {
  volatile char frame[512];
  if (depth < 0) return 0; /* never: the stack runs out long before the int does */
  frame[0] = (char)depth;
  frame[511] = previous != 0 ? previous[0] : 0;
  return Recurse(frame, depth + 1) + frame[1];
}

__attribute__((noinline)) static void CrashAsAsked(sl_type_str how) {
  if (Is(how, "segv")) {
    volatile int* volatile nothing = 0;
    *nothing = 42;
  } else if (Is(how, "abort")) {
    abort();
  } else if (Is(how, "stack")) {
    Recurse(0, 0);
  }
}

SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream) {
  (void)filter, (void)end_stream;
  sl_type_str how = {0, 0};
  if (sl_host_header_get(stream, SL_HEADERS_REQUEST, (sl_type_str){"x-crash", 7}, 0, &how) ==
      SL_OK) {
    CrashAsAsked(how);
  }
  return SL_ACTION_CONTINUE;
}
