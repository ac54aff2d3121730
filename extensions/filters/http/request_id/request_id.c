/* request_id: gives every request an ID (a random UUIDv4) in a header, unless it already has
 * one it may keep, and echoes it on the response. The example of a plain C plugin with a JSON
 * config (see README.md). No per-stream state: sl_on_filter_new is absent, so the filter
 * pointer of every stream is the config, and nothing is allocated per request. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "sluice/plugin/v1/sluice_plugin.h"

typedef struct {
  char header[64];      /* field name, default "x-request-id" */
  int keep_incoming;    /* keep a request's own ID (default 1: trust it) */
  int echo_on_response; /* copy the ID onto the response (default 1) */
} config;

static sl_type_str str(const char* s, size_t n) {
  sl_type_str r = {s, n};
  return r;
}
static sl_type_str cstr(const char* s) { return str(s, strlen(s)); }

/* ----- a strict reader for the flat JSON object this filter takes ----- */

typedef struct {
  const char* start;
  const char* p;
  const char* end;
  char error[160];
} reader;

static void skip_ws(reader* r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
    ++r->p;
  }
}

static int fail(reader* r, const char* what) {
  snprintf(r->error, sizeof(r->error), "%s at offset %ld", what, (long)(r->p - r->start));
  return 0;
}

/* A JSON string without escapes (field names need none) into out[cap]. */
static int read_string(reader* r, char* out, size_t cap) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != '"') return fail(r, "expected a string");
  ++r->p;
  size_t n = 0;
  while (r->p < r->end && *r->p != '"') {
    if (*r->p == '\\' || (unsigned char)*r->p < 0x20) return fail(r, "unsupported character");
    if (n + 1 >= cap) return fail(r, "string too long");
    out[n++] = *r->p++;
  }
  if (r->p >= r->end) return fail(r, "unterminated string");
  ++r->p;
  out[n] = 0;
  return 1;
}

static int read_bool(reader* r, int* out) {
  skip_ws(r);
  if (r->end - r->p >= 4 && memcmp(r->p, "true", 4) == 0) {
    r->p += 4;
    *out = 1;
    return 1;
  }
  if (r->end - r->p >= 5 && memcmp(r->p, "false", 5) == 0) {
    r->p += 5;
    *out = 0;
    return 1;
  }
  return fail(r, "expected true or false");
}

static int is_token(const char* s) {
  if (*s == 0) return 0;
  for (; *s; ++s) {
    const unsigned char c = (unsigned char)*s;
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          strchr("!#$%&'*+-.^_`|~", c) != NULL)) {
      return 0;
    }
  }
  return 1;
}

static int parse(reader* r, config* c) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != '{') return fail(r, "expected a JSON object");
  ++r->p;
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    ++r->p;
    return 1;
  }
  for (;;) {
    char key[32];
    if (!read_string(r, key, sizeof(key))) return 0;
    skip_ws(r);
    if (r->p >= r->end || *r->p != ':') return fail(r, "expected ':'");
    ++r->p;
    if (strcmp(key, "header") == 0) {
      if (!read_string(r, c->header, sizeof(c->header))) return 0;
      if (!is_token(c->header)) {
        snprintf(r->error, sizeof(r->error), "header: \"%s\" is not a field name", c->header);
        return 0;
      }
    } else if (strcmp(key, "keep_incoming") == 0) {
      if (!read_bool(r, &c->keep_incoming)) return 0;
    } else if (strcmp(key, "echo_on_response") == 0) {
      if (!read_bool(r, &c->echo_on_response)) return 0;
    } else {
      snprintf(r->error, sizeof(r->error),
               "unknown field \"%s\" (known: header, keep_incoming, echo_on_response)", key);
      return 0;
    }
    skip_ws(r);
    if (r->p < r->end && *r->p == ',') {
      ++r->p;
      continue;
    }
    if (r->p < r->end && *r->p == '}') {
      ++r->p;
      break;
    }
    return fail(r, "expected ',' or '}'");
  }
  skip_ws(r);
  if (r->p != r->end) return fail(r, "trailing characters");
  return 1;
}

/* ----- IDs: a per-thread xorshift128+ seeded from getrandom, so no syscall per request ----- */

static _Thread_local uint64_t rng[2];

static uint64_t next_random(void) {
  if (rng[0] == 0 && rng[1] == 0) {
    if (getrandom(rng, sizeof(rng), 0) != sizeof(rng) || (rng[0] == 0 && rng[1] == 0)) {
      rng[0] = (uint64_t)(uintptr_t)&rng ^ 0x9e3779b97f4a7c15ull;
      rng[1] = 0xbf58476d1ce4e5b9ull;
    }
  }
  uint64_t s1 = rng[0];
  const uint64_t s0 = rng[1];
  rng[0] = s0;
  s1 ^= s1 << 23;
  rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return rng[1] + s0;
}

/* A version-4 UUID, 36 characters. */
static void uuid4(char out[37]) {
  uint64_t hi = next_random(), lo = next_random();
  hi = (hi & ~0xf000ull) | 0x4000ull;       /* version 4 */
  lo = (lo & ~(3ull << 62)) | (2ull << 62); /* variant 10 */
  snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(hi >> 32),
           (unsigned)((hi >> 16) & 0xffff), (unsigned)(hi & 0xffff), (unsigned)(lo >> 48),
           (unsigned long long)(lo & 0xffffffffffffull));
}

/* ----- hooks ----- */

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str json, void** out) {
  (void)name;
  config* c = calloc(1, sizeof(*c));
  if (c == NULL) return SL_ERR_LIMIT;
  strcpy(c->header, "x-request-id");
  c->keep_incoming = 1;
  c->echo_on_response = 1;
  reader r = {json.data, json.data, json.data + json.len, {0}};
  if (!parse(&r, c)) {
    sl_host_config_error(host, cstr(r.error));
    free(c);
    return SL_ERR_INVALID;
  }
  *out = c;
  return SL_OK;
}

SL_EXPORT void sl_on_config_destroy(void* c) { free(c); }

SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream) {
  (void)end_stream;
  const config* c = filter;
  sl_type_str existing;
  if (c->keep_incoming &&
      sl_host_header_get(stream, SL_HEADERS_REQUEST, cstr(c->header), 0, &existing) == SL_OK &&
      existing.len > 0) {
    return SL_ACTION_CONTINUE;
  }
  char id[37];
  uuid4(id);
  sl_host_header_set(stream, SL_HEADERS_REQUEST, cstr(c->header), str(id, 36));
  return SL_ACTION_CONTINUE;
}

SL_EXPORT sl_type_action sl_on_response_headers(void* filter, sl_type_stream* stream,
                                                int end_stream) {
  (void)end_stream;
  const config* c = filter;
  if (!c->echo_on_response) return SL_ACTION_CONTINUE;
  sl_type_str id;
  /* Absent when an earlier filter answered before this one saw the request. */
  if (sl_host_header_get(stream, SL_HEADERS_REQUEST, cstr(c->header), 0, &id) == SL_OK) {
    sl_host_header_set(stream, SL_HEADERS_RESPONSE, cstr(c->header), id);
  }
  return SL_ACTION_CONTINUE;
}
