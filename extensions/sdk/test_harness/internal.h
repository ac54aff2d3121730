#pragma once

// The fake host's state and its definitions of the ABI's opaque handle types. Internal to the
// harness library (the real host's are in source/plugin/host_types.h, in another binary).

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "extensions/sdk/test_harness/sluice/plugin_test/harness.h"
#include "source/plugin/hooks.h"

namespace google::protobuf {
class DescriptorPool;
class DynamicMessageFactory;
}  // namespace google::protobuf

namespace sluice::plugin_test {

using sluice::plugin::Hooks;

struct Plugin::Impl {
  std::string path;
  uint32_t version = 0;
  Hooks hooks;
  std::vector<std::string> filter_names;
  // Config types from the plugin's descriptor set, when its generated code is not linked in.
  std::unique_ptr<google::protobuf::DescriptorPool> pool;
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory;
};

struct MetricSlot;

struct HostState {
  std::vector<std::string> clusters;
  sl_type_log_level log_level = SL_LOG_TRACE;
  uint64_t now = 0;
  uint64_t timer_seq = 0;
  std::vector<std::unique_ptr<Plugin>> plugins;
  std::mutex mu;  // metrics, logs and posts may come from other threads
  std::map<std::string, std::unique_ptr<sl_type_metric>> metric_slots;
  std::map<std::string, Metric> metrics;  // snapshot for Host::metrics()
  std::vector<LogLine> logs;
  std::deque<std::function<void()>> posts;
  // Streams alive, for timers.
  std::vector<StreamState*> streams;
};

struct ChainFilter;

// A route one filter defined; owned by its chain.
struct PendingRouteConfig {
  std::string filter_name;
  std::string value;
  uint32_t format;
  std::string field_path;
};

}  // namespace sluice::plugin_test

struct sl_type_route {
  std::string name;
  void* data = nullptr;
  const sluice::plugin_test::ChainFilter* owner = nullptr;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<sluice::plugin_test::PendingRouteConfig> pending;
  struct FilterConfig {
    const sluice::plugin_test::ChainFilter* filter;
    void* config;
  };
  std::vector<FilterConfig> filter_configs;
};

struct sl_type_config_host {
  sluice::plugin_test::HostState* host = nullptr;
  std::string filter_name;
  std::string error;
  std::vector<std::unique_ptr<sl_type_route>>* routes = nullptr;  // null: may not define
};

struct sl_type_metric {
  sluice::plugin_test::HostState* host;
  std::string name;
  sl_type_metric_kind kind;
};

namespace sluice::plugin_test {

struct ChainFilter {
  Plugin* plugin = nullptr;
  std::string filter;  // the plugin's name for it
  std::string name;    // its name in the chain
  void* config = nullptr;
  bool has_config = false;
  std::vector<std::unique_ptr<sl_type_route>> routes;
  std::vector<void*> route_configs;  // to destroy
};

struct ChainState {
  Host* host = nullptr;
  std::vector<std::unique_ptr<ChainFilter>> filters;
  ChainFilter* definer = nullptr;
  bool built = false;
};

// One body direction's event as it travels the chain.
struct Event {
  enum Kind { kHeaders, kData, kTrailers } kind;
  std::string data;
  bool end = false;
};

// One filter's view of its stream (the sl_type_stream handle is this object).
struct FilterState;

struct Direction {
  bool request = true;
  Flow flow = Flow::kContinued;
  // Per filter: paused here, events held for the filters after it, buffering body.
  std::vector<bool> held;
  std::vector<std::deque<Event>> waiting;
  std::vector<bool> buffering;
  std::vector<std::deque<std::string>> buffer;  // STOP_AND_BUFFER'd body
  std::vector<bool> buffer_end;
  std::string forwarded;
  bool ended = false;
  bool headers_through = false;
};

struct Timer {
  uint64_t due;
  uint64_t seq;
};

}  // namespace sluice::plugin_test

struct sl_type_stream {
  sluice::plugin_test::StreamState* stream = nullptr;
  size_t index = 0;
  void* instance = nullptr;
  std::map<uint64_t, sluice::plugin_test::Timer> timers;
  // The body chunk being delivered to this filter's body hook (nullptr outside it).
  std::deque<std::string>* current_body[2] = {nullptr, nullptr};
  // Hook under way: 0 none, else which direction (1 request, 2 response).
  int in_hook = 0;
  // Inside a headers hook (and whether those headers end the message), inside a last body hook
  // (end_stream 1), and whether that hook made the message's trailers (sl_host_trailers_add).
  bool in_headers_hook = false;
  bool headers_end = false;
  bool in_last_body_hook = false;
  bool made_trailers = false;
};

struct sl_type_stream_ref {
  std::atomic<uint32_t> refs{1};
  sluice::plugin_test::StreamState* stream = nullptr;  // cleared when the stream goes
  sluice::plugin_test::HostState* host = nullptr;
  size_t index = 0;
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

namespace sluice::plugin_test {

struct HeadMap {
  bool exists = false;
  Headers fields;  // no pseudo-headers
  std::map<std::string, std::string> pseudo;
};

struct StreamState {
  HostState* host = nullptr;
  ChainState* chain = nullptr;
  std::vector<std::unique_ptr<sl_type_stream>> filters;
  std::vector<sl_type_stream_ref*> refs;
  HeadMap maps[4];  // by sl_type_header_map
  Direction req, resp;
  std::optional<LocalReply> local_reply;
  std::optional<Upstream> upstream;
  std::optional<RetryOptions> retry;
  bool reset = false;
  std::string failure;
  bool completed = false;
  bool destroyed = false;
  std::vector<std::string> misuses;
  uint64_t rejected = 0;
  std::map<std::string, std::string> metadata;
  // Route cache.
  bool route_chosen = false;
  const sl_type_route* route = nullptr;
  size_t route_selections = 0;
  std::vector<Callout> callouts;
  uint64_t next_callout = 1;
  sl_type_protocol protocol = SL_PROTOCOL_HTTP11;
  sl_type_address remote{};
  uint64_t id = 0;

  bool ended() const { return local_reply.has_value() || reset || !failure.empty() || completed; }
  sl_type_result rejectedCall(sl_type_result r) {
    ++rejected;
    return r;
  }
  // Drives an event into a direction from filter `from` on.
  void deliver(Direction& d, size_t from, Event ev);
  void resume(Direction& d, size_t index);
  void sendLocalReply(size_t filter, LocalReply reply);
  const sl_type_route* chooseRoute();
  void fail(size_t filter, std::string reason);
};

// Where sl_host_log writes: the host made last (the call has no handle to say which).
void SetLogHost(HostState* host);

// Lower-case copy (header names compare case-insensitively).
std::string Lower(std::string_view s);
bool NameEquals(std::string_view a, std::string_view b);

}  // namespace sluice::plugin_test
