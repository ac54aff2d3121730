/* Proves the SL_ACTION_STOP_AND_BUFFER contract through the raw C ABI (no SDK): a filter that
 * holds a head, buffers the body and, at its end, replaces it and sets Content-Length.
 *
 * The request field x-whole-body says which bodies: "request", "response" or "both" (absent:
 * the filter passes everything). For each such body the filter holds the head (STOP from the
 * headers hook), returns STOP_AND_BUFFER until end_stream, checking at every call that it is
 * shown everything so far (the length never shrinks and the chunks add up to it), and at the
 * end replaces the body with a summary the test can check against what it sent:
 *   "whole <length> <fnv-1a 64, hex> calls=<body hook calls> grew=<1: never shrank> ends=<1>\n"
 * The end is the body hook with end_stream, or the trailers hook when trailers follow (the body
 * hook then never sees end_stream; sl_host_body_* there reads the whole body).
 *
 * Two more modes of x-whole-body:
 *   "response-late": the response head passes (CONTINUE); the body is buffered and passed on
 *     unchanged at its end (over the buffer limit the client sees the response cut).
 *   "request-drop-first": the request head passes; the body hook drains the body's first byte
 *     and returns STOP until the end, then CONTINUE: what is left of each part waits, and all of
 *     it goes on in order (SL_ACTION_STOP from a body hook keeps the undrained rest).
 *   "probe": the response headers hook tries sl_host_body_append on both bodies, which this
 *     filter does not hold, and reports the results in x-append-request / x-append-response.
 * Filter name "whole_body" (from the file name). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/plugin/v1/sluice_plugin.h"

typedef struct {
  int buffering;  /* this direction's body is buffered by this filter */
  int late;       /* ... with its head passed on already: the body goes on unchanged */
  int drop_first; /* STOP mode: drain the first byte, hold the rest until the end */
  unsigned calls;
  unsigned ends;
  size_t last_len;
  int grew; /* every call saw at least what the previous one did */
} direction;

typedef struct {
  direction d[2]; /* SL_BODY_REQUEST, SL_BODY_RESPONSE */
} whole_body;

static sl_type_str str(const char* s) {
  sl_type_str r = {s, strlen(s)};
  return r;
}

SL_EXPORT uint32_t sl_on_abi_version(void) { return SL_ABI_VERSION; }

SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str name,
                                          sl_type_str config, void** out) {
  (void)host, (void)name, (void)config;
  *out = 0;
  return SL_OK;
}

SL_EXPORT void* sl_on_filter_new(void* config, sl_type_stream* stream) {
  (void)config, (void)stream;
  return calloc(1, sizeof(whole_body));
}

SL_EXPORT void sl_on_filter_destroy(void* filter) { free(filter); }

/* Length and FNV-1a 64 of the whole body, read chunk by chunk (views, no copy). */
static size_t digest(sl_type_stream* s, sl_type_body which, uint64_t* hash) {
  sl_type_str few[16];
  const size_t n = sl_host_body_chunks(s, which, few, 16);
  sl_type_str* chunks = few;
  if (n > 16) {
    chunks = malloc(n * sizeof(*chunks));
    sl_host_body_chunks(s, which, chunks, n);
  }
  uint64_t h = 1469598103934665603ull;
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = (const unsigned char*)chunks[i].data;
    for (size_t j = 0; j < chunks[i].len; ++j) {
      h ^= p[j];
      h *= 1099511628211ull;
    }
    total += chunks[i].len;
  }
  if (chunks != few) free(chunks);
  *hash = h;
  return total;
}

static void see(direction* d, sl_type_stream* s, sl_type_body which) {
  const size_t len = sl_host_body_length(s, which);
  if (len < d->last_len) d->grew = 0;
  d->last_len = len;
  ++d->calls;
}

/* The end of the body: replace it with the summary. `set_length`: the head is still held and the
 * body ends here (no trailers), so it gets the new Content-Length. */
static void finish(direction* d, sl_type_stream* s, sl_type_body which, int set_length) {
  ++d->ends;
  uint64_t hash = 0;
  const size_t total = digest(s, which, &hash);
  const size_t len = sl_host_body_length(s, which);
  char summary[160];
  snprintf(summary, sizeof(summary), "whole %zu %016llx calls=%u grew=%d ends=%u\n",
           total == len ? total : (size_t)-1, (unsigned long long)hash, d->calls, d->grew, d->ends);
  sl_host_body_replace(s, which, str(summary));
  if (set_length) {
    char n[32];
    snprintf(n, sizeof(n), "%zu", strlen(summary));
    sl_host_header_remove(s, which == SL_BODY_REQUEST ? SL_HEADERS_REQUEST : SL_HEADERS_RESPONSE,
                          str("transfer-encoding"), NULL);
    sl_host_header_set(s, which == SL_BODY_REQUEST ? SL_HEADERS_REQUEST : SL_HEADERS_RESPONSE,
                       str("content-length"), str(n));
  }
}

static int is(sl_type_stream* s, const char* mode) {
  sl_type_str v;
  if (sl_host_header_get(s, SL_HEADERS_REQUEST, str("x-whole-body"), 0, &v) != SL_OK) return 0;
  return v.len == strlen(mode) && memcmp(v.data, mode, v.len) == 0;
}

static int wants(sl_type_stream* s, const char* which) { return is(s, which) || is(s, "both"); }

static void probe(sl_type_stream* s) {
  char r[16];
  snprintf(r, sizeof(r), "%d", (int)sl_host_body_append(s, SL_BODY_REQUEST, str("x")));
  sl_host_header_set(s, SL_HEADERS_RESPONSE, str("x-append-request"), str(r));
  snprintf(r, sizeof(r), "%d", (int)sl_host_body_append(s, SL_BODY_RESPONSE, str("x")));
  sl_host_header_set(s, SL_HEADERS_RESPONSE, str("x-append-response"), str(r));
}

static sl_type_action on_headers(whole_body* f, sl_type_stream* s, sl_type_body which,
                                 int end_stream) {
  direction* d = &f->d[which];
  if (which == SL_BODY_RESPONSE && is(s, "probe")) probe(s);
  d->buffering = !end_stream && wants(s, which == SL_BODY_REQUEST ? "request" : "response");
  d->calls = d->ends = 0;
  d->last_len = 0;
  d->grew = 1;
  d->late = which == SL_BODY_RESPONSE && !end_stream && is(s, "response-late");
  d->drop_first = which == SL_BODY_REQUEST && !end_stream && is(s, "request-drop-first");
  if (d->late || d->drop_first) d->buffering = 1;
  return d->buffering && !d->late && !d->drop_first ? SL_ACTION_STOP : SL_ACTION_CONTINUE;
}

static sl_type_action on_body(whole_body* f, sl_type_stream* s, sl_type_body which,
                              int end_stream) {
  direction* d = &f->d[which];
  if (!d->buffering) return SL_ACTION_CONTINUE;
  if (d->drop_first) {
    if (d->calls++ == 0) sl_host_body_drain(s, which, 1);
    return end_stream ? SL_ACTION_CONTINUE : SL_ACTION_STOP;
  }
  see(d, s, which);
  if (!end_stream) return SL_ACTION_STOP_AND_BUFFER;
  if (d->late) return SL_ACTION_CONTINUE;
  finish(d, s, which, 1);
  return SL_ACTION_CONTINUE;
}

static sl_type_action on_trailers(whole_body* f, sl_type_stream* s, sl_type_body which) {
  direction* d = &f->d[which];
  if (!d->buffering || d->late || d->drop_first) return SL_ACTION_CONTINUE;
  finish(d, s, which, 0);
  return SL_ACTION_CONTINUE;
}

SL_EXPORT sl_type_action sl_on_request_headers(void* f, sl_type_stream* s, int end_stream) {
  return on_headers(f, s, SL_BODY_REQUEST, end_stream);
}
SL_EXPORT sl_type_action sl_on_request_body(void* f, sl_type_stream* s, int end_stream) {
  return on_body(f, s, SL_BODY_REQUEST, end_stream);
}
SL_EXPORT sl_type_action sl_on_request_trailers(void* f, sl_type_stream* s) {
  return on_trailers(f, s, SL_BODY_REQUEST);
}
SL_EXPORT sl_type_action sl_on_response_headers(void* f, sl_type_stream* s, int end_stream) {
  return on_headers(f, s, SL_BODY_RESPONSE, end_stream);
}
SL_EXPORT sl_type_action sl_on_response_body(void* f, sl_type_stream* s, int end_stream) {
  return on_body(f, s, SL_BODY_RESPONSE, end_stream);
}
SL_EXPORT sl_type_action sl_on_response_trailers(void* f, sl_type_stream* s) {
  return on_trailers(f, s, SL_BODY_RESPONSE);
}
