// sluice plugin test harness: unit-test a plugin without running a proxy.
//
// libsluice_plugin_test_harness.so implements every sl_host_* function of the plugin ABI
// (sluice/plugin/v1/sluice_plugin.h) as a fake host. A test links it, loads the plugin .so (its
// host symbols bind to the harness, as they would to the sluice binary), configures filters from
// the same YAML/JSON/proto bytes a sluice config carries, and drives streams by hand: request and
// response heads, bodies in any chunking, trailers, timers on a fake clock, posts and callout
// responses — all on the test's thread, deterministically. What the plugin did is recorded:
// header maps as they left the chain, body bytes passed on, local replies, the upstream it chose,
// pauses, resets, failures, route selection, metrics and log lines.
//
// The fake refuses what the real host refuses (the same checks: source/plugin/host_checks.h);
// a refused call returns the host's error code and is counted (Stream::rejectedCalls()).
//
// C++17, no dependency in this header but the ABI header. Not thread-safe: one test thread (the
// "worker" and the "main thread" both), except sl_host_post / metric updates, which may come from
// other threads as the ABI allows. Lifetimes nest: a Host outlives its Chains, a Chain its
// Streams (declare them in that order). Log lines go to the Host made last.
//
//   sluice::plugin_test::Host host;                 // clusters: host.setClusters({"backend"})
//   auto* plugin = host.load("build/plugins/header_mutation.so");
//   sluice::plugin_test::Chain chain(host);
//   chain.add(plugin, "header_mutation", "request: {set: [{name: x-a, value: b}]}");
//   ASSERT_EQ("", chain.build());
//   auto s = chain.newStream();
//   s->requestHeaders({{":method", "GET"}, {":path", "/"}, {":authority", "h"}});
//   EXPECT_EQ("b", s->requestHeader("x-a"));

#ifndef SLUICE_PLUGIN_TEST_HARNESS_H_
#define SLUICE_PLUGIN_TEST_HARNESS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/plugin/v1/sluice_plugin.h"

namespace sluice::plugin_test {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header& o) const { return name == o.name && value == o.value; }
};
using Headers = std::vector<Header>;

// How config text is written (what a sluice config's `typed_config` would hold).
enum class Format { kYaml, kJson, kProtoBytes };

class Host;
class Chain;
class Stream;
struct HostState;
struct ChainState;
struct StreamState;

// A loaded plugin file (dlopen RTLD_NOW, the version handshake and the hooks, as sluice's loader
// does). Owned by its Host; never unloaded.
class Plugin {
 public:
  const std::string& path() const;
  uint32_t abiVersion() const;
  const std::vector<std::string>& filterNames() const;
  struct Impl;
  explicit Plugin(std::unique_ptr<Impl> impl);
  ~Plugin();
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// A metric a plugin declared, by full name ("plugin.<filter>.<name>").
struct Metric {
  sl_type_metric_kind kind = SL_METRIC_COUNTER;
  int64_t value = 0;              // counter or gauge
  std::vector<uint64_t> samples;  // histogram, in record order
};

struct LogLine {
  sl_type_log_level level;
  std::string message;
};

// The fake host: the clusters config hooks see, the clock, posts, metrics, logs. One per test.
class Host {
 public:
  Host();
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Loads a plugin file; nullptr with *error set when the loader would refuse it.
  Plugin* load(const std::string& path, std::string* error = nullptr);
  // A plugin linked into the test binary itself (its sl_on_* hooks exported from the
  // executable, e.g. built with -rdynamic): hooks are looked up in the process.
  Plugin* linked(const std::string& filter_name, std::string* error = nullptr);

  // The bootstrap's cluster names (sl_host_config_clusters / _cluster_exists).
  void setClusters(std::vector<std::string> clusters);
  // Log lines below `level` are neither enabled (sl_host_log_enabled) nor kept. Default TRACE.
  void setLogLevel(sl_type_log_level level);

  // The fake clock, in ms since the host was made. advance() moves it, firing every timer that
  // falls due (in due order, then start order) and running posted callbacks, as a worker would.
  uint64_t now() const;
  void advance(uint64_t ms);
  // Runs posted callbacks (sl_host_post) until none is left; how many ran.
  size_t runPosts();

  const std::map<std::string, Metric>& metrics() const;
  // A metric's counter/gauge value, 0 when not declared.
  int64_t metric(const std::string& full_name) const;
  const std::vector<LogLine>& logs() const;
  // True when some log line contains `text`.
  bool logged(const std::string& text) const;

  HostState& state() { return *state_; }

 private:
  std::unique_ptr<HostState> state_;
};

// An http_filters list of plugin filters: configs built in order with sl_on_config_new, then
// (build()) the per-route configs that a route-defining filter's routes carry for the others.
class Chain {
 public:
  explicit Chain(Host& host);
  ~Chain();  // destroys per-route configs, then the filter configs (sl_on_*_destroy)
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  // Adds filter `filter` of `plugin` with `config` (empty: none given, "{}" / the type's
  // defaults). A typed filter's YAML/JSON is parsed against its message type like sluice's
  // loader does ("@type" optional here, checked when present); a JSON filter gets JSON text.
  // `name`: the filter's name in the chain (metrics, per-route config); default `filter`.
  // Returns "" or the error sluice would report (the plugin's sl_host_config_error message
  // included).
  std::string add(Plugin* plugin, const std::string& filter, const std::string& config = "",
                  Format format = Format::kYaml, const std::string& name = "");
  // Builds the per-route configs; "" or the error. Call once, after the last add().
  std::string build();
  // A new stream through every filter of the chain (sl_on_filter_new for each).
  std::unique_ptr<Stream> newStream();

  ChainState& state() { return *state_; }

 private:
  std::unique_ptr<ChainState> state_;
};

// A local reply a filter sent (sl_host_send_response), as it left the response filters.
struct LocalReply {
  uint32_t status = 0;
  Headers headers;  // without :status; framing fields the plugin gave are dropped, as the host does
  std::string body;
  std::string details;
  size_t filter = 0;  // index in the chain of the filter that sent it
};

// sl_host_set_upstream's request, copied.
struct Upstream {
  std::string cluster;
  std::string route_name;
  uint64_t timeout_ms = 0;
  uint64_t per_try_timeout_ms = 0;
  uint64_t idle_timeout_ms = 0;
  std::string hash_key;
  uint32_t flags = 0;
  uint64_t response_headers_timeout_ms = 0;
  uint64_t request_buffer_bytes = 0;
  uint64_t connect_timeout_ms = 0;  // ABI 1.4
  uint64_t send_timeout_ms = 0;     // ABI 1.4
};

// sl_host_upstream_retry_enable's options (ABI 1.4), copied, and the filter that called it.
struct RetryOptions {
  uint64_t per_try_timeout_ms = 0;
  uint64_t max_replay_bytes = 0;
  uint32_t flags = 0;
  size_t filter = 0;
};

// A callout a filter started (sl_host_callout), waiting for the test to answer it.
struct Callout {
  uint64_t id = 0;
  size_t filter = 0;
  std::string cluster;
  Headers headers;
  std::string body;
  uint64_t timeout_ms = 0;
};

// Where one direction stands after the test fed it something.
enum class Flow {
  kContinued,  // every filter let it through (see forwarded*() for what came out)
  kPaused,     // a filter paused it (STOP / STOP_AND_BUFFER, or waits on its headers)
  kEnded,      // the stream ended: local reply, reset or failure
};

class Stream {
 public:
  ~Stream();  // sl_on_stream_complete (if not yet) and sl_on_filter_destroy for each filter
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // --- driving the request (filters in chain order) ---
  // `headers` may hold the pseudo-headers :method, :path, :authority (the Host field), :scheme.
  Flow requestHeaders(const Headers& headers, bool end_stream = true);
  Flow requestBody(const std::string& data, bool end_stream);
  // The body split into chunks of `chunk` bytes (the last one ends the request when
  // end_stream); every split should give the plugin the same result.
  Flow requestBodyChunked(const std::string& data, size_t chunk, bool end_stream = true);
  Flow requestTrailers(const Headers& trailers);
  // --- driving the response (filters in reverse order) ---
  Flow responseHeaders(const Headers& headers, bool end_stream = true);  // ":status" required
  Flow responseBody(const std::string& data, bool end_stream);
  Flow responseBodyChunked(const std::string& data, size_t chunk, bool end_stream = true);
  Flow responseTrailers(const Headers& trailers);
  // Ends the stream (sl_on_stream_complete, the log phase): headers stay readable.
  void complete();
  // Answers callout `id` (sl_on_callout_done). status 0: no response, `outcome` says why.
  bool completeCallout(uint64_t id, uint32_t status, const Headers& headers = {},
                       const std::string& body = "",
                       sl_type_attempt_outcome outcome = SL_ATTEMPT_RESPONSE);
  // Tells the filters an upstream attempt ended (sl_on_upstream_attempt_done); whether one
  // asked to retry, and after how long.
  bool upstreamAttemptDone(const sl_type_attempt_result& result, uint64_t* retry_after_ms);
  // Asks the filter that enabled retries (sl_on_upstream_retry, ABI 1.4) about an attempt that
  // ended; its answer (SL_RETRY_*), SL_RETRY_NO when no filter enabled them. `decision` is
  // what it filled.
  int upstreamRetry(const sl_type_attempt_result& result, sl_type_retry_decision* decision);
  // Stream info the plugin reads (sl_host_stream_info): set before requestHeaders.
  void setProtocol(sl_type_protocol protocol);
  void setDownstreamRemote(const std::string& ipv4, uint16_t port);

  // --- what the plugin did ---
  Flow requestFlow() const;
  Flow responseFlow() const;
  // The request head as the chain left it (pseudo-headers first: :method, :path, :authority,
  // :scheme, then fields in order), and a field's first value ("" when absent).
  Headers requestHeaders() const;
  std::string requestHeader(const std::string& name) const;
  bool hasRequestHeader(const std::string& name) const;
  Headers responseHeaders() const;  // with :status first
  std::string responseHeader(const std::string& name) const;
  bool hasResponseHeader(const std::string& name) const;
  Headers requestTrailers() const;
  Headers responseTrailers() const;
  // Body bytes every filter let through so far, per direction, and whether the end got through.
  const std::string& forwardedRequestBody() const;
  const std::string& forwardedResponseBody() const;
  bool requestEnded() const;
  bool responseEnded() const;
  const std::optional<LocalReply>& localReply() const;
  const std::optional<Upstream>& upstream() const;
  // What a filter asked with sl_host_upstream_retry_enable (ABI 1.4).
  const std::optional<RetryOptions>& retryOptions() const;
  bool wasReset() const;
  // Why the stream failed ("" when it did not): sl_host_fail_stream's reason, a misuse, or
  // sl_on_filter_new returning NULL. sluice answers such a stream 500 (or resets it); the fake
  // records the failure (and counts plugin.<filter>.failures) and ends the stream.
  const std::string& failure() const;
  // ABI misuses the real host ends the stream for (e.g. "misuse_continue_inside_hook").
  const std::vector<std::string>& misuses() const;
  // Host calls refused with an error (the host's plugin.<filter>.rejected_calls).
  uint64_t rejectedCalls() const;
  // The chosen route's name ("" when none matched or none is chosen) and how often
  // sl_on_route_select ran.
  std::string routeName() const;
  size_t routeSelections() const;
  // Callouts not answered yet.
  std::vector<Callout> pendingCallouts() const;
  // Per-stream metadata (sl_host_metadata_*).
  std::optional<std::string> metadata(const std::string& key) const;
  // Timers running, by token, with their due time on the host clock.
  std::map<uint64_t, uint64_t> timers(size_t filter = 0) const;
  // Each filter's instance (sl_on_filter_new's result), e.g. to inspect a C++ filter.
  void* filterInstance(size_t filter) const;

  StreamState& state() { return *state_; }
  explicit Stream(std::unique_ptr<StreamState> state);

 private:
  std::unique_ptr<StreamState> state_;
};

}  // namespace sluice::plugin_test

#endif  // SLUICE_PLUGIN_TEST_HARNESS_H_
