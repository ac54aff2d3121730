#pragma once

// A report on stderr when the process dies of a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
// SIGABRT): which signal, the faulting address, the thread, a backtrace, and for each frame the
// shared object it is in — naming the plugin and its filters when that object is a loaded
// plugin, since a plugin's bug must not look like sluice's. Then the signal's default action is
// restored and the signal raised again, so the exit status and any core dump are those of the
// signal (as Envoy does).
//
// Everything the handler reads is built before it runs (at install time, at plugin load time,
// at thread start): it runs on an alternate signal stack (a stack overflow is reported too) and
// calls only async-signal-safe functions, plus backtrace() (warmed up at install so that it
// does not load libgcc inside the handler) and dladdr().

#include <atomic>
#include <string_view>

namespace sluice::crash {

// Installs the handler for the process and an alternate signal stack for the calling thread.
// Main thread, first thing in main(). Under AddressSanitizer only the signals it leaves alone
// (SIGABRT, SIGILL) are taken, so that its own reports of faults keep working.
void Install();

// Names the calling thread for the OS (pthread_setname_np; at most 15 bytes are kept), which
// crash reports, top and debuggers show, and gives it an alternate signal stack. Each thread
// sluice starts calls it first.
void OnThreadStart(const char* name);

// Config time, main thread: the plugin at `path` is loaded; `address` is any address inside it
// (one of its symbols). Frames in it are reported as the plugin's.
void RegisterPlugin(const void* address, std::string_view path);
// Config time, main thread: `filter_name` (an http_filters entry's name) is served by the
// plugin registered with `path`.
void AddPluginFilter(std::string_view path, std::string_view filter_name);

// The plugin code this thread is running, if any: set around every call into a plugin by the
// plugin host (nesting allowed: a hook's host call may run another filter's hook), read by the
// plugin log lines and the crash report. Thread-local, no allocation, no lock.
struct PluginCall {
  const char* filter = nullptr;  // the configured filter name (NUL-terminated, outlives the call)
  const char* hook = nullptr;    // e.g. "sl_on_request_headers"
};
extern constinit thread_local PluginCall t_plugin_call;

class PluginCallScope {
 public:
  // The signal fences (compiler barriers, no instruction) keep the stores where they are: a
  // compiler that sees the code in between not reading t_plugin_call would otherwise drop them,
  // and the crash handler reads it.
  PluginCallScope(const char* filter, const char* hook) : saved_(t_plugin_call) {
    t_plugin_call = PluginCall{filter, hook};
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~PluginCallScope() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_plugin_call = saved_;
  }
  PluginCallScope(const PluginCallScope&) = delete;
  PluginCallScope& operator=(const PluginCallScope&) = delete;

 private:
  const PluginCall saved_;
};

}  // namespace sluice::crash
