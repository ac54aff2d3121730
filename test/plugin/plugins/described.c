/* A plain C plugin with a typed config whose type comes from an embedded descriptor set (no
 * protobuf library in the plugin). It decodes the two string fields of sluice.test.described.Tag
 * from the wire format itself and sets that response field. */
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

extern const unsigned char described_descriptor_set[];
extern const size_t described_descriptor_set_size;

typedef struct {
  char* header;
  char* value;
} tag_config;

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

static const char* const kNames[] = {"tag", NULL};
SL_EXPORT const char* const* sl_on_filter_names(void) { return kNames; }

SL_EXPORT sl_type_result sl_on_config_type(sl_type_str name, sl_type_config_type* out) {
  (void)name;
  out->message_type.data = "sluice.test.described.Tag";
  out->message_type.len = strlen(out->message_type.data);
  out->descriptor_set.data = (const char*)described_descriptor_set;
  out->descriptor_set.len = described_descriptor_set_size;
  return SL_OK;
}

/* Reads a varint; returns bytes used or 0. */
static size_t varint(const unsigned char* p, size_t n, uint64_t* v) {
  *v = 0;
  for (size_t i = 0; i < n && i < 10; ++i) {
    *v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) return i + 1;
  }
  return 0;
}

static char* dup_bytes(const unsigned char* p, size_t n) {
  char* s = malloc(n + 1);
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)name;
  tag_config* c = calloc(1, sizeof(*c));
  const unsigned char* p = (const unsigned char*)config.data;
  size_t n = config.len;
  while (n > 0) {
    uint64_t key, len;
    size_t used = varint(p, n, &key);
    if (used == 0) break;
    p += used, n -= used;
    if ((key & 7) != 2) break; /* only length-delimited fields here */
    used = varint(p, n, &len);
    if (used == 0 || len > n - used) break;
    p += used, n -= used;
    if ((key >> 3) == 1) c->header = dup_bytes(p, len);
    if ((key >> 3) == 2) c->value = dup_bytes(p, len);
    p += len, n -= len;
  }
  if (c->header == NULL) {
    const char* msg = "header is required";
    sl_host_config_error(host, (sl_type_str){msg, strlen(msg)});
    free(c->value);
    free(c);
    return SL_ERR_INVALID;
  }
  *out = c;
  return SL_OK;
}

SL_EXPORT void sl_on_config_destroy(void* config) {
  tag_config* c = config;
  free(c->header);
  free(c->value);
  free(c);
}

SL_EXPORT sl_type_action sl_on_response_headers(void* filter, sl_type_stream* stream,
                                                int end_stream) {
  (void)end_stream;
  const tag_config* c = filter; /* no sl_on_filter_new: the filter pointer is the config */
  const char* v = c->value != NULL ? c->value : "";
  sl_host_header_set(stream, SL_HEADERS_RESPONSE, (sl_type_str){c->header, strlen(c->header)},
                     (sl_type_str){v, strlen(v)});
  return SL_ACTION_CONTINUE;
}
