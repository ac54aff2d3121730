#include "source/common/crash_handler.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace sluice::crash {

constinit thread_local PluginCall t_plugin_call;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

struct FatalSignal {
  int sig;
  const char* name;
  bool asan_owns;        // AddressSanitizer handles it by default (handle_segv, handle_sigbus, ...)
  char description[64];  // strsignal(), copied at install time (it is not async-signal-safe)
  bool installed;
};
FatalSignal g_signals[] = {
    {SIGSEGV, "SIGSEGV", true, {}, false},  {SIGBUS, "SIGBUS", true, {}, false},
    {SIGFPE, "SIGFPE", true, {}, false},    {SIGILL, "SIGILL", false, {}, false},
    {SIGABRT, "SIGABRT", false, {}, false},
};

// The plugins loaded, for the handler: written on the main thread at config time (an entry is
// complete before `g_plugin_count` counts it), read lock-free by the handler.
constexpr size_t kMaxPlugins = 128;
struct PluginEntry {
  const void* base;                           // dli_fbase of the object
  const char* path;                           // never freed
  std::atomic<const char*> filters{nullptr};  // replaced whole (old copies leak: config time)
};
PluginEntry g_plugins[kMaxPlugins];
std::atomic<size_t> g_plugin_count{0};
// Filter lists replaced by longer ones: kept (and reachable, for leak checkers) since the
// handler may be reading one.
std::vector<const char*>* g_retired = new std::vector<const char*>();

// The thread that is reporting (0: none): a second crashing thread waits for it to finish; a
// fault inside the handler itself ends the process at once.
std::atomic<pid_t> g_reporting{0};

constexpr size_t kAltStackBytes = 128 * 1024;
struct AltStack {
  void* mem = nullptr;
  ~AltStack() {
    if (mem == nullptr) return;
    stack_t off{};
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, nullptr);
    munmap(mem, kAltStackBytes);
  }
};
thread_local AltStack t_alt_stack;

void SetUpAltStack() {
  // Under ASan the faults (stack overflows included) are ASan's, on its own alternate stack,
  // which this must not replace.
  if (kAsan || t_alt_stack.mem != nullptr) return;
  void* mem =
      mmap(nullptr, kAltStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;  // no report for a stack overflow on this thread, that's all
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStackBytes;
  if (sigaltstack(&ss, nullptr) != 0) {
    munmap(mem, kAltStackBytes);
    return;
  }
  t_alt_stack.mem = mem;
}

// Output for the handler: a fixed buffer written to stderr with write(2).
class Out {
 public:
  ~Out() { flush(); }
  Out& s(const char* str) {
    if (str == nullptr) str = "(null)";
    while (*str != '\0') c(*str++);
    return *this;
  }
  // Text that may come from anywhere (a thread name, a symbol): control bytes as '?'.
  Out& safe(const char* str, size_t max) {
    if (str == nullptr) return s("(null)");
    for (size_t i = 0; i < max && str[i] != '\0'; ++i) {
      const unsigned char ch = static_cast<unsigned char>(str[i]);
      c(ch < 0x20 || ch == 0x7f ? '?' : static_cast<char>(ch));
    }
    return *this;
  }
  Out& hex(uintptr_t v) {
    char tmp[2 + 16];
    size_t n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0);
    s("0x");
    while (n > 0) c(tmp[--n]);
    return *this;
  }
  Out& dec(int64_t value) {
    uint64_t v = static_cast<uint64_t>(value);
    if (value < 0) {
      c('-');
      v = 0 - v;  // no overflow for the most negative value
    }
    char tmp[24];
    size_t n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0) c(tmp[--n]);
    return *this;
  }
  void flush() {
    size_t off = 0;
    while (off < n_) {
      const ssize_t w = ::write(STDERR_FILENO, buf_ + off, n_ - off);
      if (w <= 0) {
        if (w < 0 && errno == EINTR) continue;
        break;
      }
      off += static_cast<size_t>(w);
    }
    n_ = 0;
  }

 private:
  void c(char ch) {
    if (n_ == sizeof(buf_)) flush();
    buf_[n_++] = ch;
  }
  char buf_[1024];
  size_t n_ = 0;
};

const PluginEntry* PluginOf(const void* base) {
  const size_t n = g_plugin_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (g_plugins[i].base == base) return &g_plugins[i];
  }
  return nullptr;
}

// " in plugin <filters> (<path>) <symbol>+0x..", or " in <object> <symbol>+0x..".
// Returns whether `pc` is in a plugin.
bool DescribeAddress(Out& out, uintptr_t pc) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(pc), &info) == 0 || info.dli_fname == nullptr) {
    out.s(" in an unknown object");
    return false;
  }
  const PluginEntry* plugin = PluginOf(info.dli_fbase);
  if (plugin != nullptr) {
    const char* filters = plugin->filters.load(std::memory_order_acquire);
    out.s(" in plugin ").s(filters != nullptr ? filters : "(no filter configured)").s(" (");
    out.safe(plugin->path, 512).s(")");
  } else {
    out.s(" in ").safe(info.dli_fname[0] != '\0' ? info.dli_fname : "(main program)", 512);
  }
  if (info.dli_sname != nullptr && info.dli_saddr != nullptr) {
    out.s(" ").safe(info.dli_sname, 256).s("+");
    out.hex(pc - reinterpret_cast<uintptr_t>(info.dli_saddr));
  } else {
    out.s(" +").hex(pc - reinterpret_cast<uintptr_t>(info.dli_fbase));
  }
  return plugin != nullptr;
}

uintptr_t FaultingPc(const void* context) {
  if (context == nullptr) return 0;
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

void Restore(int sig) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void Handler(int sig, siginfo_t* info, void* context) {
  const pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  pid_t expected = 0;
  if (!g_reporting.compare_exchange_strong(expected, tid)) {
    if (expected == tid) {
      // A fault while reporting: end now, with this signal.
      Restore(sig);
      raise(sig);
      return;
    }
    // Another thread is reporting: wait for it to end the process (it re-raises its signal).
    for (;;) {
      const timespec ts{1, 0};
      nanosleep(&ts, nullptr);
    }
  }
  const int saved_errno = errno;
  const FatalSignal* fs = nullptr;
  for (const auto& s : g_signals) {
    if (s.sig == sig) fs = &s;
  }
  const uintptr_t pc = FaultingPc(context);
  {
    Out out;
    out.s("\n*** sluice: fatal signal ").s(fs != nullptr ? fs->name : "?");
    if (fs != nullptr && fs->description[0] != '\0') out.s(" (").s(fs->description).s(")");
    if (sig != SIGABRT) {
      out.s(", faulting address ").hex(reinterpret_cast<uintptr_t>(info->si_addr));
    }
    out.s(", si_code ").dec(info->si_code);
    char name[17] = {};
    prctl(PR_GET_NAME, reinterpret_cast<unsigned long>(name), 0, 0, 0);
    out.s("\n*** pid ").dec(getpid()).s(", thread ").dec(tid).s(" \"").safe(name, 16).s("\"\n");
    const PluginCall call = t_plugin_call;
    if (call.filter != nullptr) {
      out.s("*** while running plugin filter \"").safe(call.filter, 256).s("\" (");
      out.safe(call.hook != nullptr ? call.hook : "a plugin call", 64).s(")\n");
    }
    if (pc != 0) {
      out.s("*** faulting instruction ").hex(pc);
      DescribeAddress(out, pc);
      out.s("\n");
    }
    out.s("*** backtrace:\n");
    out.flush();
    void* frames[64];
    const int n = backtrace(frames, 64);
    // Start at the faulting frame: what comes before it is this handler and the signal
    // trampoline.
    int first = 0;
    for (int i = 0; i < n; ++i) {
      if (reinterpret_cast<uintptr_t>(frames[i]) == pc) {
        first = i;
        break;
      }
    }
    for (int i = first; i < n; ++i) {
      const uintptr_t f = reinterpret_cast<uintptr_t>(frames[i]);
      out.s("  #").dec(i - first).s(" ").hex(f);
      // A return address points after the call: look up the call instruction itself.
      DescribeAddress(out, i == first ? f : f - 1);
      out.s("\n");
    }
    if (n == 64) out.s("  ... (more frames)\n");
    out.s("*** end of report; re-raising ").s(fs != nullptr ? fs->name : "the signal").s("\n");
  }
  errno = saved_errno;
  Restore(sig);
  // Blocked while this handler runs: delivered, with the default action, once it returns (a
  // fault re-executes its instruction and faults again, which ends the process the same way).
  raise(sig);
}

}  // namespace

void Install() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  // backtrace() loads libgcc_s on its first call (dlopen, malloc): never inside the handler.
  void* warm[2];
  backtrace(warm, 2);
  // dladdr's first use may allocate too.
  Dl_info info;
  dladdr(reinterpret_cast<void*>(&Install), &info);
  SetUpAltStack();
  for (auto& s : g_signals) {
    const char* d = strsignal(s.sig);
    if (d != nullptr) {
      strncpy(s.description, d, sizeof(s.description) - 1);
    }
    if (kAsan && s.asan_owns) continue;
    struct sigaction sa {};
    sa.sa_sigaction = Handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(s.sig, &sa, nullptr) == 0) s.installed = true;
  }
}

void OnThreadStart(const char* name) {
  pthread_setname_np(pthread_self(), std::string(name).substr(0, 15).c_str());
  SetUpAltStack();
}

void RegisterPlugin(const void* address, std::string_view path) {
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fbase == nullptr) return;
  if (PluginOf(info.dli_fbase) != nullptr) return;
  const size_t n = g_plugin_count.load(std::memory_order_relaxed);
  if (n == kMaxPlugins) return;
  g_plugins[n].base = info.dli_fbase;
  g_plugins[n].path = strndup(path.data(), path.size());
  g_plugin_count.store(n + 1, std::memory_order_release);
}

void AddPluginFilter(std::string_view path, std::string_view filter_name) {
  const size_t n = g_plugin_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    PluginEntry& e = g_plugins[i];
    if (path != e.path) continue;
    const char* old = e.filters.load(std::memory_order_relaxed);
    std::string text = old != nullptr ? std::string(old) : std::string();
    // The same name twice (two listeners' chains) is said once.
    std::string quoted = std::string("\"").append(filter_name).append("\"");
    if (text.find(quoted) != std::string::npos) return;
    if (!text.empty()) text.append(", ");
    text.append(quoted);
    e.filters.store(strdup(text.c_str()), std::memory_order_release);
    if (old != nullptr) g_retired->push_back(old);
    return;
  }
}

}  // namespace sluice::crash
