/*
 * sluice plugin ABI, version 1.4: the one header an HTTP filter plugin includes.
 *
 * This header is the reference for the ABI. It is pure C (C99, no C++ types), so a plugin may be
 * written in C, C++ (see extensions/sdk/cpp/ for a header-only wrapper) or anything that speaks
 * the C calling convention.
 *
 * NAMES
 *   sl_type_*   types and constants.
 *   sl_on_*     hooks: functions the plugin exports (extern "C", default visibility) and the host
 *               calls. The host looks each one up with dlsym when it loads the plugin; every hook
 *               but sl_on_abi_version and sl_on_config_new is optional.
 *   sl_host_*   host functions: exported by the sluice executable; the plugin calls them. They
 *               resolve when the host dlopen()s the plugin (RTLD_NOW), so link the plugin
 *               without them (they are not in any library) and allow undefined symbols (the
 *               default for shared objects).
 *
 * VERSIONING
 *   sl_on_abi_version returns SL_ABI_VERSION as the plugin was compiled. The host loads a plugin
 *   whose major equals its own and whose minor is not newer than its own, and refuses any other
 *   with an error naming the file, the plugin's version and the host's. Within a major version:
 *   nothing is removed or changed, hooks and host functions are only added (with a minor bump),
 *   enums only gain values, and structs only grow at their end. Every struct passed across the
 *   ABI starts with a `size` field that its writer sets to sizeof as it knows it; a reader reads
 *   only what both know. The two plain view types, sl_type_str and sl_type_header, are frozen as
 *   they are (a pointer and a length; two of those) and carry no size. Every enum is a fixed-width
 * integer type with unassigned values reserved; treat unknown values as the documentation of each
 * says.
 *
 * OWNERSHIP
 *   sl_type_str values the host passes (names, values, body chunks, config bytes) are *views*
 *   into host memory: valid until the hook that received them returns, or until the plugin
 *   changes the object they view (e.g. sets a header of the map it read from), whichever comes
 *   first. Copy what you keep. Bytes the plugin passes to a host function are copied by the host
 *   before it returns (unless the function says otherwise). Objects the plugin creates (its
 *   config, its filters) are owned by the plugin; the host tells it when to destroy them.
 *
 * LIFECYCLE (one filter in one chain)
 *
 *   main thread:  sl_on_abi_version -> sl_on_config_type? -> sl_on_config_new ......... (config)
 *                                                                 |
 *   a worker, per stream:  sl_on_filter_new                       |
 *                            -> sl_on_request_headers             |
 *                            -> sl_on_request_body*  (if any)     |
 *                            -> sl_on_request_trailers (if any)   |
 *                            -> sl_on_response_headers            |
 *                            -> sl_on_response_body* (if any)     |
 *                            -> sl_on_response_trailers (if any)  |
 *                            -> sl_on_stream_complete (log phase: always, once)
 *                            -> sl_on_filter_destroy              |
 *   main thread:  sl_on_config_destroy  <-------------------------+  (after its last stream)
 *
 *   Requests run the filters in config order, responses in reverse. A hook may be skipped when
 *   its part does not exist (no body, no trailers) or when the stream ended early (a reset, a
 *   local reply from an earlier filter); sl_on_stream_complete and sl_on_filter_destroy always
 *   come.
 *
 * THREADS
 *   Config hooks run on the main thread. A filter instance belongs to the worker that called
 *   sl_on_filter_new: every per-stream hook for it, every timer, post and callout completion of
 *   it runs on that worker, one at a time, and none arrives after sl_on_filter_destroy. A plugin's
 *   config object is shared by every worker's filters: read it only (or synchronize yourself).
 *   Host functions taking an sl_type_stream* must be called on that stream's worker from inside a
 *   hook or a completion of it; the exceptions are marked (any thread).
 *
 * FAILURES (docs/plugins.md, "When a plugin fails")
 *   Hooks are C functions: nothing may unwind out of them. A C++ exception that escapes a hook
 *   unwinds through the host's C frames — undefined behaviour, in practice std::terminate — so
 *   catch everything at the hook's edge (the C++ SDK does, and fails the stream) and report it
 *   with sl_host_fail_stream. A plugin that crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
 *   takes the process down; the host first writes a report to stderr naming the signal, the
 *   thread, the filter and hook under way, the plugin's file and a backtrace.
 */

#ifndef SLUICE_PLUGIN_V1_SLUICE_PLUGIN_H_
#define SLUICE_PLUGIN_V1_SLUICE_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Versions and export                                                                         */

#define SL_ABI_VERSION_MAJOR 1
#define SL_ABI_VERSION_MINOR 4
/* major in the high 16 bits, minor in the low 16. */
#define SL_ABI_VERSION ((uint32_t)((SL_ABI_VERSION_MAJOR << 16) | SL_ABI_VERSION_MINOR))

/* Put before every hook definition, e.g. `SL_EXPORT uint32_t sl_on_abi_version(void) {...}`. */
#if defined(__GNUC__)
#define SL_EXPORT __attribute__((visibility("default")))
#else
#define SL_EXPORT
#endif

/* ------------------------------------------------------------------------------------------ */
/* Basic types                                                                                 */

/* A byte string: a view (data, len), not NUL-terminated; data may be NULL when len is 0. */
typedef struct sl_type_str {
  const char* data;
  size_t len;
} sl_type_str;

/* A header field (views), for lists the plugin hands to the host. */
typedef struct sl_type_header {
  sl_type_str name;
  sl_type_str value;
} sl_type_header;

/* What a host function reports. Negative values are errors; new errors may be added. */
typedef int32_t sl_type_result;
#define SL_OK 0
#define SL_ERR_NOT_FOUND (-1)   /* no such header, metadata key, timer, ... */
#define SL_ERR_INVALID (-2)     /* an argument is malformed (e.g. CR/LF in a header value) */
#define SL_ERR_STATE (-3)       /* not possible now (e.g. response headers before a response) */
#define SL_ERR_UNSUPPORTED (-4) /* this host cannot do it (yet), e.g. a feature not built */
#define SL_ERR_LIMIT (-5)       /* a configured size or count limit would be exceeded */

/* What a per-stream hook asks the host to do next. */
typedef uint32_t sl_type_action;
/* Go on with the next filter. */
#define SL_ACTION_CONTINUE 0u
/* Pause this direction at this filter; resume with sl_host_continue_request/_response (from a
 * timer, a post or a callout completion). From a body hook: what is left of the part just shown
 * (drain what you do not want to pass) is kept here, and so are later parts, each shown alone to
 * the body hook as it arrives; all of it goes on, in order, when the direction resumes (or a
 * later body hook returns CONTINUE). What is kept counts against the buffer limit, as below.
 * Also the return value after sl_host_send_response. */
#define SL_ACTION_STOP 1u
/* Body hooks only: pause and let the host keep the body (this part and the ones after it)
 * buffered. The body hook is called again as each later part arrives, each time with everything
 * buffered so far (the new part at its end), so the call with end_stream = 1 sees the whole body,
 * once; return STOP_AND_BUFFER to go on buffering, CONTINUE to pass it all on. When trailers
 * follow, no body call has end_stream: the trailers hook is the end, and sl_host_body_* there
 * reads the whole body. The buffer limit (the connection manager's buffer_limit_bytes) is checked
 * before every call, the last one too: over it the filter is not called; a request is answered
 * 413, a response 500 if a filter still holds its head, else it is reset (counted in
 * downstream_rq_too_large / downstream_rs_too_large). To change the body's length, hold the
 * head (STOP from the headers hook) and set Content-Length in the last call: the head then goes
 * on with it and frames the new body, whatever framing the body came with. */
#define SL_ACTION_STOP_AND_BUFFER 2u
/* Body and trailers hooks only: do what the host does when the hook is absent — continue,
 * unless this filter paused this direction's headers, in which case the data (or trailers)
 * waits, buffered, until the filter continues. For hooks that exist only to look (the C++ SDK's
 * defaults return it), so that looking never releases a pause by accident. */
#define SL_ACTION_DEFAULT 3u

/* Which header map of the stream. */
typedef uint32_t sl_type_header_map;
/* Request headers. Also holds the pseudo-headers :method, :path, :authority and :scheme, which
 * can be read and set (not added or removed) like fields; :authority is the Host field. */
#define SL_HEADERS_REQUEST 0u
/* Response headers, with the pseudo-header :status ("200"; settable to a 3-digit code). */
#define SL_HEADERS_RESPONSE 1u
#define SL_TRAILERS_REQUEST 2u
#define SL_TRAILERS_RESPONSE 3u

/* Which direction's body. */
typedef uint32_t sl_type_body;
#define SL_BODY_REQUEST 0u
#define SL_BODY_RESPONSE 1u

typedef uint32_t sl_type_log_level;
#define SL_LOG_TRACE 0u
#define SL_LOG_DEBUG 1u
#define SL_LOG_INFO 2u
#define SL_LOG_WARN 3u
#define SL_LOG_ERROR 4u

typedef uint32_t sl_type_metric_kind;
#define SL_METRIC_COUNTER 0u   /* monotonic, uint64 */
#define SL_METRIC_GAUGE 1u     /* a level that goes up and down, int64 */
#define SL_METRIC_HISTOGRAM 2u /* a distribution of uint64 values (latencies in us, sizes) */

typedef uint32_t sl_type_protocol;
#define SL_PROTOCOL_HTTP10 0u
#define SL_PROTOCOL_HTTP11 1u
#define SL_PROTOCOL_HTTP2 2u
#define SL_PROTOCOL_HTTP3 3u

/* ------------------------------------------------------------------------------------------ */
/* Opaque handles (host objects; the plugin only passes them back)                            */

/* The config being built, during sl_on_config_new only (main thread). */
typedef struct sl_type_config_host sl_type_config_host;
/* One filter's view of its stream: from sl_on_filter_new to sl_on_filter_destroy. */
typedef struct sl_type_stream sl_type_stream;
/* A metric declared at config time; valid while the config exists, usable on any thread. */
typedef struct sl_type_metric sl_type_metric;
/* A counted reference to a stream's worker and filter that other threads may hold (see
 * sl_host_stream_ref). */
typedef struct sl_type_stream_ref sl_type_stream_ref;

/* ------------------------------------------------------------------------------------------ */
/* Structs (each starts with `size`: set it to sizeof(the struct) before passing it)          */

/* An IP socket address, raw (no formatting on the hot path). */
typedef struct sl_type_address {
  uint32_t size;
  uint32_t family; /* 4 or 6; 0: none */
  uint8_t ip[16];  /* network order; IPv4 in the first 4 bytes */
  uint16_t port;
} sl_type_address;

/* What the host knows about a stream (see sl_host_stream_info). Views are valid until the
 * hook returns. Fields the host does not know yet are empty / zero. */
typedef struct sl_type_stream_info {
  uint32_t size;
  uint64_t stream_id;        /* unique in this process */
  uint64_t connection_id;    /* the downstream connection */
  sl_type_protocol protocol; /* downstream protocol */
  sl_type_address downstream_remote;
  sl_type_address downstream_local;
  uint32_t tls;                 /* 1 when the downstream connection is TLS */
  sl_type_str tls_sni;          /* server name the client asked for */
  sl_type_str tls_alpn;         /* negotiated protocol */
  sl_type_str tls_peer_subject; /* client certificate subject (mTLS), RFC 2253 */
  sl_type_str route_name;       /* set by sl_host_set_upstream */
  sl_type_str cluster_name;     /* set by sl_host_set_upstream */
  sl_type_str filter_name;      /* this filter's name in the chain */
  /* Since 1.4. Why the stream ended as it did so far: SL_RESPONSE_FLAG_* bits (0: nothing
   * went wrong), and the detail the core or a filter gave (e.g. "upstream_connect_timeout",
   * or a local reply's details); empty when none. */
  uint64_t response_flags;
  sl_type_str response_details;
  /* Since 1.4. Upstream attempts made so far (retries included); 0 before the first. */
  uint32_t upstream_attempts;
} sl_type_stream_info;

/* Since 1.4. Response flags (sl_type_stream_info.response_flags; Envoy's names and short forms,
 * which the access log prints). Bits only get added. */
#define SL_RESPONSE_FLAG_FAILED_LOCAL_HEALTH_CHECK (1ull << 0)          /* LH */
#define SL_RESPONSE_FLAG_NO_HEALTHY_UPSTREAM (1ull << 1)                /* UH */
#define SL_RESPONSE_FLAG_UPSTREAM_REQUEST_TIMEOUT (1ull << 2)           /* UT */
#define SL_RESPONSE_FLAG_LOCAL_RESET (1ull << 3)                        /* LR */
#define SL_RESPONSE_FLAG_UPSTREAM_REMOTE_RESET (1ull << 4)              /* UR */
#define SL_RESPONSE_FLAG_UPSTREAM_CONNECTION_FAILURE (1ull << 5)        /* UF */
#define SL_RESPONSE_FLAG_UPSTREAM_CONNECTION_TERMINATION (1ull << 6)    /* UC */
#define SL_RESPONSE_FLAG_UPSTREAM_OVERFLOW (1ull << 7)                  /* UO */
#define SL_RESPONSE_FLAG_NO_ROUTE_FOUND (1ull << 8)                     /* NR */
#define SL_RESPONSE_FLAG_RATE_LIMITED (1ull << 9)                       /* RL */
#define SL_RESPONSE_FLAG_UNAUTHORIZED_EXTERNAL_SERVICE (1ull << 10)     /* UAEX */
#define SL_RESPONSE_FLAG_UPSTREAM_RETRY_LIMIT_EXCEEDED (1ull << 11)     /* URX */
#define SL_RESPONSE_FLAG_STREAM_IDLE_TIMEOUT (1ull << 12)               /* SI */
#define SL_RESPONSE_FLAG_DOWNSTREAM_CONNECTION_TERMINATION (1ull << 13) /* DC */
#define SL_RESPONSE_FLAG_UPSTREAM_PROTOCOL_ERROR (1ull << 14)           /* UPE */
#define SL_RESPONSE_FLAG_DOWNSTREAM_PROTOCOL_ERROR (1ull << 15)         /* DPE */
#define SL_RESPONSE_FLAG_NO_CLUSTER_FOUND (1ull << 16)                  /* NC */
#define SL_RESPONSE_FLAG_DURATION_TIMEOUT (1ull << 17)         /* DT: a downstream timeout */
#define SL_RESPONSE_FLAG_LOCAL_REPLY_LIMIT (1ull << 18)        /* BL: a buffer limit */
#define SL_RESPONSE_FLAG_PLUGIN_FAILURE (1ull << 19)           /* PF: a plugin failed */
#define SL_RESPONSE_FLAG_UPSTREAM_PER_TRY_TIMEOUT (1ull << 20) /* UPT */

/* The type of a filter's config (see sl_on_config_type). */
typedef struct sl_type_config_type {
  uint32_t size;
  /* Full protobuf message name, e.g. "acme.filters.v1.AddHeaders". Empty: the filter takes its
   * config as JSON text. */
  sl_type_str message_type;
  /* Optional: a serialized google.protobuf.FileDescriptorSet holding the message's file and
   * its imports (protoc --include_imports --descriptor_set_out), for plugins that do not
   * register generated code in the host's protobuf library. Must stay valid while the plugin is
   * loaded (static data). */
  sl_type_str descriptor_set;
} sl_type_config_type;

/* Where and how the core sends a stream upstream (sl_host_set_upstream). */
typedef struct sl_type_upstream_request {
  uint32_t size;
  sl_type_str cluster;         /* required: a cluster name from the config */
  sl_type_str route_name;      /* for logs and stats; may be empty */
  uint64_t timeout_ms;         /* whole exchange, from the end of the request; 0: none */
  uint64_t per_try_timeout_ms; /* one attempt, 0: the whole timeout */
  uint64_t idle_timeout_ms;    /* longest silence of the upstream (nginx's proxy_read_timeout);
                                * 0: the cluster's read_timeout (since 1.4; before: none) */
  sl_type_str hash_key;        /* for consistent-hashing load balancers; empty: none */
  /* Since 1.1: SL_UPSTREAM_* bits. */
  uint32_t flags;
  /* Since 1.2: from the end of the request until the response head arrives; 0: none. What
   * bounds a slow origin without cutting a long, healthy download (timeout_ms bounds the whole
   * exchange and is for when that is wanted). For a tunnel, the wait for the upstream's answer. */
  uint64_t response_headers_timeout_ms;
  /* Since 1.2: request buffering (nginx's proxy_request_buffering). Above 0, a request body of
   * up to this many bytes is read whole before a connection to the upstream is taken, so a slow
   * upload holds no upstream connection; a body that turns out larger (or announces a larger
   * Content-Length) is streamed as it arrives, as with 0. The downstream's request body timeout
   * still bounds each pause of the upload. */
  uint64_t request_buffer_bytes;
  /* Since 1.4: nginx's proxy_connect_timeout for this route: the longest wait for a connection
   * (a new one's connect and TLS handshake, or a pooled one's turn) per attempt; 0: the
   * cluster's connect_timeout alone. */
  uint64_t connect_timeout_ms;
  /* Since 1.4: nginx's proxy_send_timeout: the longest time the upstream may take no request
   * body bytes while some wait to go; 0: the cluster's send_timeout (none by default). */
  uint64_t send_timeout_ms;
} sl_type_upstream_request;
/* A timeout field of sl_type_upstream_request (idle, connect, send; since 1.4) set to this
 * means "none", whatever the cluster's default is (0 means "the cluster's"). */
#define SL_TIMEOUT_NONE UINT64_MAX

/* sl_type_upstream_request.flags */
/* A CONNECT request (on a listener that allows CONNECT) ends here: the core opens a TCP
 * connection to a host of the cluster, answers 200 once it is up, and relays the client's bytes
 * to it as they are (the target in the request is not used: the cluster decides). Without it a
 * CONNECT is forwarded to the cluster like any request. Ignored for other methods. */
#define SL_UPSTREAM_TERMINATE_CONNECT 1u

/* How one upstream attempt ended (sl_on_upstream_attempt_done). */
typedef uint32_t sl_type_attempt_outcome;
#define SL_ATTEMPT_RESPONSE 0u        /* a response head arrived: see `status` */
#define SL_ATTEMPT_CONNECT_FAILURE 1u /* no connection could be made */
#define SL_ATTEMPT_RESET 2u           /* the upstream reset or closed before a response */
#define SL_ATTEMPT_TIMEOUT 3u         /* per-try timeout */
#define SL_ATTEMPT_OVERFLOW 4u        /* circuit breaker / pool full */
/* Since 1.3. */
#define SL_ATTEMPT_PROTOCOL_ERROR 5u /* the upstream's response was malformed */
#define SL_ATTEMPT_CANCELLED 6u      /* the stream ended first (client gone, reset, local reply) */

/* Since 1.4. What went wrong with an attempt, finer than its outcome
 * (sl_type_attempt_result.error_kind). */
typedef uint32_t sl_type_upstream_error;
#define SL_UPSTREAM_ERROR_NONE 0u
#define SL_UPSTREAM_ERROR_CONNECT_REFUSED 1u   /* refused, unreachable: nothing was sent */
#define SL_UPSTREAM_ERROR_CONNECT_TIMEOUT 2u   /* the cluster's (or route's) connect timeout */
#define SL_UPSTREAM_ERROR_TLS_FAILURE 3u       /* the TLS handshake failed */
#define SL_UPSTREAM_ERROR_OVERFLOW 4u          /* a circuit breaker / pool limit */
#define SL_UPSTREAM_ERROR_NO_HEALTHY_HOST 5u   /* the cluster has no host to try */
#define SL_UPSTREAM_ERROR_REFUSED_STREAM 6u    /* refused unprocessed (REFUSED_STREAM, GOAWAY) */
#define SL_UPSTREAM_ERROR_CONNECTION_CLOSED 7u /* closed or reset before any response byte */
#define SL_UPSTREAM_ERROR_RESET 8u             /* closed or reset after the response started */
#define SL_UPSTREAM_ERROR_PROTOCOL_ERROR 9u    /* the response was not valid HTTP */
#define SL_UPSTREAM_ERROR_TIMEOUT 10u          /* the route's whole-exchange timeout */
#define SL_UPSTREAM_ERROR_PER_TRY_TIMEOUT 11u  /* this attempt's timeout */
#define SL_UPSTREAM_ERROR_IDLE_TIMEOUT 12u     /* the upstream was silent too long (read timeout) */
#define SL_UPSTREAM_ERROR_HEADERS_TIMEOUT 13u  /* no response head in time */
#define SL_UPSTREAM_ERROR_SEND_TIMEOUT 14u     /* the upstream stopped taking the request body */

/* Since 1.4. Whether the request may be sent again after an attempt ended this way
 * (sl_type_attempt_result.retry_safety), as the core sees it. */
#define SL_RETRY_SAFETY_SAFE 0u            /* nothing reached the upstream application */
#define SL_RETRY_SAFETY_IDEMPOTENT_ONLY 1u /* the upstream may have acted on it */
#define SL_RETRY_SAFETY_NEVER 2u           /* part of the response went to the client */

typedef struct sl_type_attempt_result {
  uint32_t size;
  sl_type_attempt_outcome outcome;
  uint32_t status;  /* with SL_ATTEMPT_RESPONSE */
  uint32_t attempt; /* 1 for the first try */
  sl_type_str host; /* the upstream host tried, "ip:port"; empty when none was reached */
  /* Since 1.3 (sl_on_upstream_attempt_done). */
  uint64_t bytes_sent;     /* request body bytes written to this attempt's connection */
  uint64_t bytes_received; /* response body bytes read from it */
  uint64_t duration_us;    /* from the attempt's start (asking for a connection) to its end */
  /* Since 1.4. */
  sl_type_upstream_error error_kind; /* SL_UPSTREAM_ERROR_NONE with SL_ATTEMPT_RESPONSE */
  uint32_t retry_safety;             /* SL_RETRY_SAFETY_* */
  /* The response head's fields (pseudo-headers not included), in sl_on_upstream_retry only
   * (for Retry-After and retriable headers); NULL/0 elsewhere. */
  const sl_type_header* headers;
  size_t header_count;
} sl_type_attempt_result;

/* Since 1.4. Retries (sl_host_upstream_retry_enable, sl_on_upstream_retry): the policy is the
 * plugin's (which failures, how many times, backoff, budget), the mechanism the core's (the
 * request kept, bounded; a new attempt on another host; per-try timeouts). */
typedef struct sl_type_retry_options {
  uint32_t size;
  /* Each attempt's timeout, from the later of its start and the end of the request; 0: the
   * route's (sl_type_upstream_request.per_try_timeout_ms), and none when that is 0 too. The
   * route's timeout_ms still bounds the whole exchange, every attempt and pause included. */
  uint64_t per_try_timeout_ms;
  /* Request body bytes kept for a retry until the response starts; 0: the stream's buffer
   * limit. A body that grows past it is sent on but not kept: no retry for that stream (counted
   * in cluster.<name>.upstream_rq_retry_body_overflow). */
  uint64_t max_replay_bytes;
  uint32_t flags; /* SL_RETRY_* */
} sl_type_retry_options;
/* Each attempt carries x-sluice-attempt-count: N upstream (1 for the first). */
#define SL_RETRY_ATTEMPT_COUNT_HEADER 1u

/* Since 1.4. What sl_on_upstream_retry asks of the core when it returns SL_RETRY_YES. */
typedef struct sl_type_retry_decision {
  uint32_t size;
  /* Wait this long before the next attempt (backoff, Retry-After); 0: at once. */
  uint64_t delay_ms;
  /* A retry budget (Envoy's): the retry is made only while the cluster's retries in flight
   * (on all workers) stay below max(min_retry_concurrency, budget_percent% of its requests in
   * flight and waiting). budget_percent 0: no budget. The cluster's circuit_breakers.max_retries
   * applies in every case. Over either: no retry (cluster.<name>.upstream_rq_retry_overflow,
   * and the attempt's outcome stands). */
  double budget_percent;
  uint32_t min_retry_concurrency;
} sl_type_retry_decision;
/* sl_on_upstream_retry's return values. */
#define SL_RETRY_NO 0  /* the outcome stands */
#define SL_RETRY_YES 1 /* try again (see sl_type_retry_decision) */
#define SL_RETRY_LIMIT_EXCEEDED                              \
  2 /* the outcome stands; the policy's retries were used up \
     * (response flag URX, counted upstream_rq_retry_limit_exceeded) */

/* How an HTTP callout ended (sl_on_callout_done); its views are valid until the hook returns.
 * By `outcome`:
 *   SL_ATTEMPT_RESPONSE        a whole response arrived: its final `status`, its
 *                              header fields (pseudo-headers not included) and the whole body.
 *   SL_ATTEMPT_CONNECT_FAILURE no connection could be made (refused, unreachable, the cluster's
 *                              connect timeout, no host resolved yet): status 0, nothing else.
 *   SL_ATTEMPT_RESET           the service closed or reset the connection before the response
 *                              was whole: status 0, nothing else.
 *   SL_ATTEMPT_PROTOCOL_ERROR  the service sent something that is not a valid HTTP response:
 *                              status 0, nothing else (the connection is closed).
 *   SL_ATTEMPT_TIMEOUT         the callout's timeout passed first: status 0, nothing else.
 *   SL_ATTEMPT_OVERFLOW        the response body was larger than the stream's buffer limit
 *                              (status and headers as they arrived, body empty; the rest was
 *                              not read and the connection closed), or the cluster's pool had
 *                              too many requests waiting (status 0).
 * SL_ATTEMPT_CANCELLED never comes: a callout withdrawn because its stream ended has no
 * completion at all (it is counted in plugin.<filter>.callouts_cancelled). */
typedef struct sl_type_callout_result {
  uint32_t size;
  /* 0 when no response arrived (then `outcome` says why), else the HTTP status. */
  uint32_t status;
  sl_type_attempt_outcome outcome;
  const sl_type_header* headers;
  size_t header_count;
  sl_type_str body;
} sl_type_callout_result;

/* sl_host_callout's timeout when it is given as 0, in milliseconds. */
#define SL_CALLOUT_DEFAULT_TIMEOUT_MS 5000u
/* The most callouts one filter of one stream may have in flight (beyond: SL_ERR_LIMIT). */
#define SL_CALLOUT_MAX_IN_FLIGHT 16u

/* Since 1.3. Routes and per-route filter config (see ROUTES below). */
/* A route a plugin (the router) defined at config time (sl_host_config_route_define). A host
 * object: valid as long as the config of the filter that defined it. */
typedef struct sl_type_route sl_type_route;

/* Config for one filter of the chain, carried by a route (Envoy's typed_per_filter_config). */
typedef struct sl_type_route_filter_config {
  uint32_t size;
  /* The name of a filter in the same http_filters list (its `name`, or its `filter` when it
   * has none). */
  sl_type_str filter_name;
  /* The config, in `format`. */
  sl_type_str value;
  /* SL_ROUTE_CONFIG_PROTO_VALUE: a serialized google.protobuf.Value, as a
   * `map<string, google.protobuf.Value>` field of the definer's own config carried it (the host
   * kept where each part was written, so its errors name the line). SL_ROUTE_CONFIG_JSON: JSON
   * text. Either way the host parses it as the target filter's per-route config type. */
  uint32_t format;
  /* Where the value is in the defining filter's config, in proto field names, e.g.
   * `virtual_hosts[0].routes[2].typed_per_filter_config["auth"]`: errors start with it. */
  sl_type_str field_path;
} sl_type_route_filter_config;
#define SL_ROUTE_CONFIG_PROTO_VALUE 0u
#define SL_ROUTE_CONFIG_JSON 1u

/* A route, as its defining plugin describes it to the host (sl_host_config_route_define). */
typedef struct sl_type_route_def {
  uint32_t size;
  /* For logs and errors, e.g. "vhost/route". */
  sl_type_str name;
  /* The definer's own object for the route: sl_host_route_data gives it back to the definer
   * (only) for the stream's route. Owned by the definer. */
  void* data;
  /* Key -> value strings any filter of the stream may read (sl_host_route_metadata_get). */
  const sl_type_header* metadata;
  size_t metadata_count;
  /* Config for other filters of the chain on this route (at most one per filter). */
  const sl_type_route_filter_config* filter_configs;
  size_t filter_config_count;
} sl_type_route_def;

/* ------------------------------------------------------------------------------------------ */
/* Hooks the plugin exports                                                                    */

/* REQUIRED. Return SL_ABI_VERSION (as compiled). Called first, once per load. */
SL_EXPORT uint32_t sl_on_abi_version(void);

/* Optional. The names of the filters this plugin provides, NULL-terminated (static data).
 * Absent: the plugin provides exactly one filter, whose name is the plugin's file name without
 * "lib" and ".so". A config naming a filter the plugin does not list is refused. */
SL_EXPORT const char* const* sl_on_filter_names(void);

/* Optional. The config type of filter `filter_name`: fill `out` (its size is set by the host)
 * and return SL_OK; or return SL_ERR_NOT_FOUND (or leave the hook out) to take JSON text. */
SL_EXPORT sl_type_result sl_on_config_type(sl_type_str filter_name, sl_type_config_type* out);

/* REQUIRED. Builds the config of one instance of filter `filter_name` (main thread). `config`
 * is the serialized protobuf message of the type sl_on_config_type named (the host has parsed
 * and type-checked it), or JSON text ("{}" when the config gave none). Declare metrics through
 * `host` here. On success set *config_out (any pointer, NULL allowed) and return SL_OK; on
 * failure call sl_host_config_error with a message and return an error: the host refuses the
 * config with the filter's name and that message. */
SL_EXPORT sl_type_result sl_on_config_new(sl_type_config_host* host, sl_type_str filter_name,
                                          sl_type_str config, void** config_out);

/* Optional. Frees a config (main thread), once no stream uses it. */
SL_EXPORT void sl_on_config_destroy(void* config);

/* Optional. Creates the filter instance for a new stream (on its worker) and returns it; the
 * host passes it to every per-stream hook. Return NULL to fail the stream (it is answered 500
 * and counted). Absent: every stream's filter pointer is the config pointer (a stateless
 * filter), and no allocation happens per stream. */
SL_EXPORT void* sl_on_filter_new(void* config, sl_type_stream* stream);

/* Optional. Frees a filter instance: the last call for it. */
SL_EXPORT void sl_on_filter_destroy(void* filter);

/* Optional per-stream hooks; absent ones act as if they returned SL_ACTION_CONTINUE.
 * `end_stream` is 1 when this is the last part of its direction (no body or trailers follow).
 * Headers hooks return CONTINUE or STOP; trailers hooks CONTINUE, STOP or DEFAULT; body hooks
 * any action. Note (as in Envoy): a body hook that returns CONTINUE while this filter holds the
 * headers of its direction paused releases them with the data. */
SL_EXPORT sl_type_action sl_on_request_headers(void* filter, sl_type_stream* stream,
                                               int end_stream);
/* The chunk is readable and changeable with sl_host_body_*(stream, SL_BODY_REQUEST, ...). */
SL_EXPORT sl_type_action sl_on_request_body(void* filter, sl_type_stream* stream, int end_stream);
SL_EXPORT sl_type_action sl_on_request_trailers(void* filter, sl_type_stream* stream);
SL_EXPORT sl_type_action sl_on_response_headers(void* filter, sl_type_stream* stream,
                                                int end_stream);
SL_EXPORT sl_type_action sl_on_response_body(void* filter, sl_type_stream* stream, int end_stream);
SL_EXPORT sl_type_action sl_on_response_trailers(void* filter, sl_type_stream* stream);

/* Optional. The stream is over (response sent, or reset): log, count. Headers, trailers and
 * stream info are still readable; nothing can be changed or sent. */
SL_EXPORT void sl_on_stream_complete(void* filter, sl_type_stream* stream);

/* Optional. A timer this filter started (sl_host_timer_start) fired. */
SL_EXPORT void sl_on_timer(void* filter, sl_type_stream* stream, uint64_t token);

/* Optional. A callout this filter started (sl_host_callout) finished. The result's views are
 * valid until this hook returns. */
SL_EXPORT void sl_on_callout_done(void* filter, sl_type_stream* stream, uint64_t callout_id,
                                  const sl_type_callout_result* result);

/* Optional. An upstream attempt of this stream ended (only for streams sent upstream with
 * sl_host_set_upstream). Return 1 and set *retry_after_ms to ask the core to try again after
 * that delay (it re-sends the request if it still can); return 0 to let the outcome stand.
 * Called since 1.3 (1.0-1.2 hosts looked it up and never called it), and looked up only in
 * plugins built for 1.3 or later (older C++ SDKs exported it from every plugin): once per
 * attempt, on the
 * stream's worker, after the attempt's last response byte arrived and before it is passed on
 * (so before sl_on_stream_complete), or when it failed (before the local reply the failure
 * becomes), or when the stream ended while it was under way (SL_ATTEMPT_CANCELLED). The core's
 * own retry (a reused connection that closed before answering an idempotent request) is a
 * second attempt, reported as such. Observe-only until retries land: the return value and
 * *retry_after_ms are ignored, and nothing may be changed, paused or sent from it. Not called
 * for a CONNECT tunnel that ends here (SL_UPSTREAM_TERMINATE_CONNECT). A filter that does not
 * export it costs nothing: the core measures attempts only for chains with an observer. */
SL_EXPORT int sl_on_upstream_attempt_done(void* filter, sl_type_stream* stream,
                                          const sl_type_attempt_result* result,
                                          uint64_t* retry_after_ms);

/* Optional, since 1.4. Called on the filter that enabled retries for its stream
 * (sl_host_upstream_retry_enable) each time an attempt ended in a way the core could still
 * retry: at a response head, before it is passed on (`status`, `headers`), and at a failure
 * (connect failure, reset, refused stream, protocol error, timeouts, overflow), before it
 * becomes a local reply. Not called once part of a response went downstream, once the kept
 * request body overflowed its bound, when the route's whole timeout passed, or after the stream
 * ended. Return SL_RETRY_YES with *decision filled to try again: the core drops this attempt
 * (an HTTP/1 connection with a response under way is closed, an HTTP/2 stream reset), waits
 * delay_ms, and sends the request again, to another host of the cluster when it has one. Return
 * SL_RETRY_NO or SL_RETRY_LIMIT_EXCEEDED to let the outcome stand. Nothing may be changed,
 * paused or sent from it. The core's own transparent retry (a reused connection that closed
 * before answering an idempotent request, a refused stream) comes first and does not reach it.
 * sl_on_upstream_attempt_done still reports every attempt to observers. */
SL_EXPORT int sl_on_upstream_retry(void* filter, sl_type_stream* stream,
                                   const sl_type_attempt_result* result,
                                   sl_type_retry_decision* decision);

/* ROUTES (since 1.3)
 *   One filter of a chain may define routes (the router does): in sl_on_config_new it calls
 *   sl_host_config_route_define for each, with the route's metadata and the config it carries
 *   for other filters of the chain, and it exports sl_on_route_select. The stream's route is
 *   chosen lazily, as Envoy's route cache is: the first time any filter of the stream asks for
 *   it (sl_host_route_config, sl_host_route_metadata_get, sl_host_route_data), the host calls
 *   the definer's sl_on_route_select with the request as it is then, and keeps the answer for
 *   the stream — so a filter placed before the router in the chain sees the route the router
 *   will take. A filter that changes what routing looks at (the path, the authority, a header a
 *   route matches) and wants the route chosen again calls sl_host_route_clear.
 *   A filter that accepts per-route config exports sl_on_route_config_new (and, optionally,
 *   sl_on_route_config_type and sl_on_route_config_destroy); the host parses each route's value
 *   for it (typed like the filter's config, errors with field path and line) after the whole
 *   chain is configured, whatever the order of the filters in it, and refuses a config that
 *   names a filter not in the chain or one that takes no per-route config. */

/* Optional (since 1.3). The type of filter `filter_name`'s per-route config, as
 * sl_on_config_type (SL_ERR_NOT_FOUND or empty: JSON text). Absent: the same type as the
 * filter's own config. */
SL_EXPORT sl_type_result sl_on_route_config_type(sl_type_str filter_name, sl_type_config_type* out);

/* Optional (since 1.3). Builds a per-route config of filter `filter_name` (main thread, after
 * every filter of the chain has its config): `config` is that filter's own config object,
 * `route_config` the parsed bytes (serialized message, or JSON text). Set *route_config_out and
 * return SL_OK, or refuse with sl_host_config_error and an error. Absent: per-route config for
 * this filter is refused at load. */
SL_EXPORT sl_type_result sl_on_route_config_new(sl_type_config_host* host, void* config,
                                                sl_type_str filter_name, sl_type_str route_config,
                                                void** route_config_out);

/* Optional (since 1.3). Frees a per-route config (main thread), before the filter's own config
 * is destroyed and after the last stream that could read it. */
SL_EXPORT void sl_on_route_config_destroy(void* route_config);

/* Optional (since 1.3), for a filter that defines routes. Chooses the stream's route from its
 * request (headers readable as in a request hook; nothing may be changed, paused or sent here):
 * a route this filter's config defined, or NULL when none matches. Called at most once per
 * stream until sl_host_route_clear, from inside whichever hook first needed the route (possibly
 * another filter's). */
SL_EXPORT const sl_type_route* sl_on_route_select(void* filter, sl_type_stream* stream);

/* ------------------------------------------------------------------------------------------ */
/* Host functions: config time (main thread, inside sl_on_config_new)                          */

/* Sets the message sl_on_config_new's failure is reported with (copied; cut at 4 KiB and escaped
 * like sl_host_log's messages). Every filter's refusal in a config is reported, not just the
 * first. */
void sl_host_config_error(sl_type_config_host* host, sl_type_str message);

/* Declares a metric named "plugin.<filter name>.<name>" (name: [a-zA-Z0-9_.]+). Declaring the
 * same name and kind again returns the same metric. The metric lives as long as the process;
 * updates are lock-free and may come from any thread (a gauge's set and add included: an add
 * racing with a set is never lost). Prometheus sees it as sluice_plugin_<name> with the label
 * plugin="<filter name>". */
sl_type_result sl_host_metric_define(sl_type_config_host* host, sl_type_metric_kind kind,
                                     sl_type_str name, sl_type_metric** metric_out);

/* Since 1.3. A labelled metric: "plugin.<filter name>.<name>" with `tag_count` tags (labels),
 * each a key ([a-zA-Z_][a-zA-Z0-9_]*, not "le" or "plugin" nor starting with "__"; at most 8, no
 * key twice) and a value (at most 256 bytes, no CR, LF or NUL). Each distinct set of tag values is
 * its own metric (order of the tags does not matter); declaring the same name, kind and tags
 * again returns the same one. One name has one kind whatever its tags (SL_ERR_INVALID
 * otherwise). Define one metric per value set you need at config time: tag values are not
 * chosen per update (that would take a lookup and a lock on the hot path). The admin endpoint
 * shows them as `name{key="value",...}` in /stats and as Prometheus labels in
 * /stats/prometheus. */
sl_type_result sl_host_metric_define_tagged(sl_type_config_host* host, sl_type_metric_kind kind,
                                            sl_type_str name, const sl_type_header* tags,
                                            size_t tag_count, sl_type_metric** metric_out);

/* Since 1.2. The clusters of the config being built (the bootstrap's `clusters`), so that a
 * filter which names clusters (a router) can refuse a name that does not exist when the config
 * is loaded, with the name's field path, rather than answer 503 for it at run time. Both are
 * host functions a 1.0 or 1.1 plugin never calls; a plugin that calls them is built against
 * 1.2 and so only loads into a host that has them. */
/* Fills up to `cap` views of the cluster names, in config order (valid until sl_on_config_new
 * returns; `names` may be NULL when `cap` is 0) and returns how many clusters there are. */
size_t sl_host_config_clusters(sl_type_config_host* host, sl_type_str* names, size_t cap);
/* SL_OK when the config has a cluster named exactly `name`, SL_ERR_NOT_FOUND when it has not,
 * SL_ERR_INVALID for a NULL host or a NULL name with a length. */
sl_type_result sl_host_config_cluster_exists(sl_type_config_host* host, sl_type_str name);

/* Since 1.3. Defines a route (see ROUTES): copies `def` (names, metadata, values) and returns
 * the host's handle in *route_out, which sl_on_route_select returns for it. Per-route configs
 * are checked after the chain is built (errors then name def->filter_configs[i].field_path).
 * SL_ERR_INVALID: a metadata key that is empty, a value with CR/LF/NUL, the same filter twice,
 * an unknown format. At most one filter of a chain may define routes. */
sl_type_result sl_host_config_route_define(sl_type_config_host* host, const sl_type_route_def* def,
                                           const sl_type_route** route_out);

/* ------------------------------------------------------------------------------------------ */
/* Host functions: any thread                                                                  */

void sl_host_counter_add(sl_type_metric* counter, uint64_t delta);
void sl_host_gauge_add(sl_type_metric* gauge, int64_t delta);
void sl_host_gauge_set(sl_type_metric* gauge, int64_t value);
void sl_host_histogram_record(sl_type_metric* histogram, uint64_t value);

/* 1 when a message at `level` would be written. */
int sl_host_log_enabled(sl_type_log_level level);
/* Writes one log line (the host adds time, level, thread and "[plugin:<filter name>]" when called
 * from one of the filter's hooks). Never log secrets. The message is cut at 1 KiB and escaped:
 * control characters (ESC, CR, LF...), C1 controls and bytes that are not UTF-8 are written as
 * \xNN, so one call is one line whatever it holds. */
void sl_host_log(sl_type_log_level level, sl_type_str message);

/* Runs `fn(ctx, filter, stream)` on the stream's worker, soon, in post order: the filter
 * instance and its stream handle, or NULL for both when the stream is gone by then (free `ctx`
 * in that case). Always runs
 * exactly once. (any thread) */
sl_type_result sl_host_post(sl_type_stream_ref* ref,
                            void (*fn)(void* ctx, void* filter, sl_type_stream* stream), void* ctx);
/* Drops a reference from sl_host_stream_ref. (any thread) */
void sl_host_stream_ref_release(sl_type_stream_ref* ref);

/* ------------------------------------------------------------------------------------------ */
/* Host functions: per stream (its worker, inside a hook or completion)                        */

/* A reference to this stream that other threads may use with sl_host_post and must release
 * with sl_host_stream_ref_release. It stays valid (posts then see stream == NULL) after the
 * stream is gone. */
sl_type_stream_ref* sl_host_stream_ref(sl_type_stream* stream);

/* Fills `info` (set info->size first). */
void sl_host_stream_info(sl_type_stream* stream, sl_type_stream_info* info);

/* Headers. Names compare case-insensitively. */
/* The index-th value of `name` (0 = first) in *value. SL_ERR_NOT_FOUND past the last. */
sl_type_result sl_host_header_get(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  size_t index, sl_type_str* value);
/* How many fields the map has (pseudo-headers not counted), and the index-th in order. Since
 * 1.3 header_at is O(1) (1.0-1.2: O(index)), so a loop over it is linear. */
size_t sl_host_header_count(sl_type_stream* stream, sl_type_header_map map);
sl_type_result sl_host_header_at(sl_type_stream* stream, sl_type_header_map map, size_t index,
                                 sl_type_str* name, sl_type_str* value);
/* Since 1.3. Every field of the map (pseudo-headers not included) in one call: fills up to
 * `cap` entries of `out` in order (`out` may be NULL when `cap` is 0) and sets *count to how
 * many fields there are, so a caller whose `cap` was too small can size an array and call
 * again. The views are valid until the map is next changed (by any filter, through any host
 * function) or the hook returns, whichever comes first. SL_ERR_STATE (*count 0) when the map
 * does not exist yet, as for sl_host_header_get. */
sl_type_result sl_host_header_list(sl_type_stream* stream, sl_type_header_map map,
                                   sl_type_header* out, size_t cap, size_t* count);
/* Replaces every field `name` with one (at the first one's place, or at the end). */
sl_type_result sl_host_header_set(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value);
/* Appends a field. */
sl_type_result sl_host_header_add(sl_type_stream* stream, sl_type_header_map map, sl_type_str name,
                                  sl_type_str value);
/* Removes every field `name`; *removed (may be NULL) gets how many. */
sl_type_result sl_host_header_remove(sl_type_stream* stream, sl_type_header_map map,
                                     sl_type_str name, size_t* removed);
/* Names must be tokens (RFC 9110 §5.6.2) and values free of CR, LF and NUL: anything else is
 * SL_ERR_INVALID and changes nothing. Trailer maps exist only once trailers arrived (or, since
 * 1.3, once a filter added the first one with sl_host_trailers_add); before that they are
 * SL_ERR_STATE. Response maps are SL_ERR_STATE before the response head exists. */

/* Since 1.3: trailers on a message that has none (what gRPC needs: grpc-status after the body).
 * `which` is SL_TRAILERS_REQUEST or SL_TRAILERS_RESPONSE.
 * sl_host_trailers_add appends a trailer field. When the message already has trailers it is
 * sl_host_header_add on that map. When it has none, it may be called from this filter's body
 * hook of that direction with end_stream == 1 (the last body hook; a message without a body
 * has none, so it cannot get trailers): the host creates the trailers, the body goes on to the
 * next filters with end_stream == 0 and the trailers follow it, through the trailers hooks of
 * the filters after this one (not this one's). Elsewhere: SL_ERR_STATE. Same checks as
 * sl_host_header_add.
 * HTTP/1 framing: trailers can only follow a chunked body. A message that goes out with a
 * Content-Length (or, to an HTTP/1.0 client, delimited by the connection's close) loses them:
 * the body is sent as it is and the trailers are dropped and counted
 * (http.<stat_prefix>.downstream_rs_trailers_dropped for responses,
 * http.<stat_prefix>.upstream_rq_trailers_dropped for requests). A filter that will add
 * trailers calls sl_host_trailers_expect from that direction's headers hook: the host then
 * removes the message's Content-Length, so HTTP/1 sends the body chunked and the trailers with
 * it. SL_ERR_STATE outside that headers hook, or when the headers end the message (end_stream
 * == 1: no body hook follows). */
sl_type_result sl_host_trailers_add(sl_type_stream* stream, sl_type_header_map which,
                                    sl_type_str name, sl_type_str value);
sl_type_result sl_host_trailers_expect(sl_type_stream* stream, sl_type_header_map which);

/* Body of one direction: inside that direction's body hook, what the hook is shown (the part
 * just arrived; while SL_ACTION_STOP_AND_BUFFER is in effect, everything buffered so far).
 * Outside it (its trailers hook, another hook, a timer, a completion): what this filter holds of
 * that body (kept by STOP_AND_BUFFER or STOP), and none when it holds none: length and chunks 0,
 * changes SL_ERR_STATE. Views into the host's buffer, no copy. */
size_t sl_host_body_length(sl_type_stream* stream, sl_type_body body);
/* Fills up to `cap` views of the body's chunks in order; returns how many chunks there are. */
size_t sl_host_body_chunks(sl_type_stream* stream, sl_type_body body, sl_type_str* chunks,
                           size_t cap);
sl_type_result sl_host_body_append(sl_type_stream* stream, sl_type_body body, sl_type_str data);
sl_type_result sl_host_body_prepend(sl_type_stream* stream, sl_type_body body, sl_type_str data);
/* Removes the first `len` bytes (all of them if fewer). */
sl_type_result sl_host_body_drain(sl_type_stream* stream, sl_type_body body, size_t len);
/* Replaces the whole body with `data`. */
sl_type_result sl_host_body_replace(sl_type_stream* stream, sl_type_body body, sl_type_str data);

/* Resumes a direction this filter paused (SL_ERR_STATE if it is not paused here). Not from
 * inside this filter's own hook of that direction: return SL_ACTION_CONTINUE instead (called
 * there, it is a misuse: the stream is ended when the hook returns, 500, and counted in
 * plugin.<filter>.misuse_continue_inside_hook). Any action a hook may not return ends its
 * stream the same way (misuse_unknown_action, misuse_buffer_from_headers). */
sl_type_result sl_host_continue_request(sl_type_stream* stream);
sl_type_result sl_host_continue_response(sl_type_stream* stream);

/* Answers the request with this response (run through the response filters) instead of going
 * further; `details` (may be empty; cut at 256 bytes and escaped) is recorded for the access
 * log. Return SL_ACTION_STOP from the hook that calls it. SL_ERR_STATE once a response has
 * started; from a response hook the stream is then ended when the hook returns
 * (misuse_refused_reply): 500 while the response head has not reached the client (it was still
 * in the filters), a reset after. */
sl_type_result sl_host_send_response(sl_type_stream* stream, uint32_t status,
                                     const sl_type_header* headers, size_t header_count,
                                     sl_type_str body, sl_type_str details);
/* Ends the stream abruptly (HTTP/1: closes the connection). */
void sl_host_reset_stream(sl_type_stream* stream);
/* Reports a failure the filter cannot handle (e.g. an exception the C++ SDK caught): the stream
 * is answered 500 while no response head has reached the client — from a response hook too,
 * the response the filters were passing on is dropped — and reset after; the failure is counted
 * (plugin.<filter>.failures) and logged with `reason` (cut at 1 KiB and escaped). Return
 * SL_ACTION_STOP after it. */
void sl_host_fail_stream(sl_type_stream* stream, sl_type_str reason);

/* Per-stream metadata that filters share: key -> bytes (copied). Get's view is valid until the
 * key is set again or the hook returns. */
sl_type_result sl_host_metadata_set(sl_type_stream* stream, sl_type_str key, sl_type_str value);
sl_type_result sl_host_metadata_get(sl_type_stream* stream, sl_type_str key, sl_type_str* value);

/* Timers: calls sl_on_timer(filter, stream, token) once after `delay_ms`. Starting a timer with
 * a token that is already running re-arms it. Timers die with the stream. */
sl_type_result sl_host_timer_start(sl_type_stream* stream, uint64_t token, uint64_t delay_ms);
sl_type_result sl_host_timer_cancel(sl_type_stream* stream, uint64_t token);

/* An HTTP request to a cluster of the config (Envoy's async HTTP client), sent through the
 * worker's connection pools for that cluster (the same pools, limits and cluster.<name>.*
 * counters as proxied requests). On SL_OK, *callout_id is set (unique for this filter of this
 * stream, never 0) and sl_on_callout_done(filter, stream, *callout_id, result) follows exactly
 * once on this worker — never from inside this call, and never after the stream is gone: a
 * stream that ends (response sent, reset, client gone) withdraws its callouts in flight (a
 * waiting request leaves the pool's queue, an exchange under way closes its connection), and
 * counts them in plugin.<filter>.callouts_cancelled. A completion may start another callout
 * (a kept-alive connection its predecessor returned is reused). A reused connection the service
 * closed just as the request went out (its keep-alive timeout) is no failure of the service: a
 * GET, HEAD, OPTIONS, TRACE, PUT or DELETE is sent once more on a new connection (as proxied
 * requests are; cluster.<name>.upstream_rq_retry_stale_connection), any other method ends as
 * SL_ATTEMPT_RESET.
 *   headers: must hold :method (a token; not CONNECT) and :path (origin-form); :authority is
 *            sent as Host (absent: the cluster's name); :scheme is ignored (the cluster decides).
 *            Framing and hop-by-hop fields (Content-Length, Transfer-Encoding, Connection,
 *            Upgrade, TE, ...) are the host's: given ones are dropped, as is a Host field (use
 *            :authority). A non-empty body goes
 *            with a Content-Length.
 *   body:    copied; at most the stream's buffer limit (the connection manager's
 *            buffer_limit_bytes), else SL_ERR_LIMIT. The response body is bounded by the same
 *            limit (beyond it: SL_ATTEMPT_OVERFLOW).
 *   timeout_ms: the whole exchange, from this call; 0: SL_CALLOUT_DEFAULT_TIMEOUT_MS.
 * Errors (nothing is sent): SL_ERR_NOT_FOUND no such cluster; SL_ERR_INVALID a missing or
 * malformed :method/:path, another pseudo-header, a field name that is not a token, a value with
 * CR/LF/NUL, a NULL callout_id; SL_ERR_LIMIT SL_CALLOUT_MAX_IN_FLIGHT callouts of this filter
 * already in flight, or the body over the limit; SL_ERR_STATE the stream is over, or the plugin
 * has no sl_on_callout_done; SL_ERR_UNSUPPORTED this stream cannot make callouts. Counters:
 * plugin.<filter>.callouts_started (SL_OK), then one of _ok (SL_ATTEMPT_RESPONSE, any status),
 * _timeout, _failed (connect failure, reset, protocol error), _overflow, _cancelled. */
sl_type_result sl_host_callout(sl_type_stream* stream, sl_type_str cluster,
                               const sl_type_header* headers, size_t header_count, sl_type_str body,
                               uint64_t timeout_ms, uint64_t* callout_id);
/* Since 1.3: withdraws callout `callout_id` of this filter (its answer is no longer wanted, e.g.
 * the first of two alternatives answered): a waiting request leaves the pool's queue, an
 * exchange under way closes its connection; sl_on_callout_done never comes for it. Counted in
 * plugin.<filter>.callouts_cancelled. SL_ERR_NOT_FOUND: no such callout in flight (unknown, or
 * already completed — from inside its own sl_on_callout_done too). */
sl_type_result sl_host_callout_cancel(sl_type_stream* stream, uint64_t callout_id);

/* Since 1.3: the stream's route (see ROUTES). Each chooses the route first if it is not chosen
 * yet (calling the definer's sl_on_route_select); from a request hook or later. */
/* This filter's config for the route (the object its sl_on_route_config_new made) in
 * *route_config. SL_ERR_NOT_FOUND: no route, or the route carries none for this filter (use the
 * filter's own config). SL_ERR_STATE: before the request head. */
sl_type_result sl_host_route_config(sl_type_stream* stream, void** route_config);
/* The route's metadata value for `key`. SL_ERR_NOT_FOUND: no route or no such key. */
sl_type_result sl_host_route_metadata_get(sl_type_stream* stream, sl_type_str key,
                                          sl_type_str* value);
/* For the filter that defined the routes: the sl_type_route_def.data of the stream's route.
 * SL_ERR_NOT_FOUND: no route matched (or the caller is not the definer). */
sl_type_result sl_host_route_data(sl_type_stream* stream, void** data);
/* Forgets the stream's route: the next question chooses again (Envoy's clearRouteCache), e.g.
 * after this filter rewrote :path. */
sl_type_result sl_host_route_clear(sl_type_stream* stream);

/* The terminal decision: once the request has passed every filter, the core sends it to a host
 * of `request->cluster` over a pooled connection and streams both ways (body bytes do not cross
 * the ABI unless a filter asks). The core adds X-Forwarded-For / X-Forwarded-Proto (and Via
 * when configured) and maps failures to local replies: no connection 503, upstream reset or
 * invalid response 502, timeout 504 (the response flag says which). Call from a request hook,
 * before any response exists; SL_ERR_NOT_FOUND when the config has no such cluster.
 * per_try_timeout_ms bounds each attempt (since 1.4; a retry filter may set its own). */
sl_type_result sl_host_set_upstream(sl_type_stream* stream,
                                    const sl_type_upstream_request* request);

/* Since 1.4. Makes this stream retryable by this filter (see sl_on_upstream_retry, which this
 * filter must export): call from a request hook, before the request leaves this filter. The
 * core keeps the request body as it goes upstream (bounded by options->max_replay_bytes) until
 * the response starts. SL_ERR_STATE: another filter of the stream enabled them already, the
 * upstream request started, the stream is a tunnel (Upgrade, CONNECT: nothing to re-send), or
 * this filter does not export sl_on_upstream_retry. SL_ERR_INVALID: NULL options. */
sl_type_result sl_host_upstream_retry_enable(sl_type_stream* stream,
                                             const sl_type_retry_options* options);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SLUICE_PLUGIN_V1_SLUICE_PLUGIN_H_ */
