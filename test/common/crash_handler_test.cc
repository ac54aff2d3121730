// The fatal-signal handler, in death tests (each in a child process): the report names the
// signal, the faulting address, the thread and the plugin call under way, and carries a
// backtrace; the process still dies of the signal. (integration_crash_test does the same with a
// real plugin in the real binary.)

#include "source/common/crash_handler.h"

#include <signal.h>

#include <cstdlib>
#include <thread>

#include "gtest/gtest.h"

namespace sluice::crash {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// Read at run time, so that the compiler cannot see the fault coming (and drop what precedes it
// as unreachable).
volatile int* volatile g_nowhere = nullptr;
__attribute__((noinline)) void Deref() { *g_nowhere = 1; }

TEST(CrashHandlerDeathTest, SegfaultIsReportedThenTheProcessDiesOfIt) {
  if (kAsan) GTEST_SKIP() << "AddressSanitizer reports faults itself";
  EXPECT_EXIT(
      {
        Install();
        std::thread t([] {
          OnThreadStart("sluice-wrk-7");
          PluginCallScope call("my_filter", "sl_on_request_headers");
          Deref();
        });
        t.join();
      },
      testing::KilledBySignal(SIGSEGV),
      "fatal signal SIGSEGV.*faulting address 0x0,.*\"sluice-wrk-7\".*while running plugin "
      "filter \"my_filter\" \\(sl_on_request_headers\\).*backtrace:.*#0 0x.*re-raising SIGSEGV");
}

TEST(CrashHandlerDeathTest, AbortIsReportedThenTheProcessDiesOfIt) {
  EXPECT_EXIT(
      {
        Install();
        abort();
      },
      testing::KilledBySignal(SIGABRT), "fatal signal SIGABRT.*backtrace:.*re-raising SIGABRT");
}

TEST(CrashHandlerTest, PluginCallScopesNestAndRestore) {
  EXPECT_EQ(nullptr, t_plugin_call.filter);
  {
    PluginCallScope outer("a", "sl_on_request_headers");
    {
      PluginCallScope inner("b", "sl_on_response_headers");
      EXPECT_STREQ("b", t_plugin_call.filter);
    }
    EXPECT_STREQ("a", t_plugin_call.filter);
    EXPECT_STREQ("sl_on_request_headers", t_plugin_call.hook);
  }
  EXPECT_EQ(nullptr, t_plugin_call.filter);
}

}  // namespace
}  // namespace sluice::crash
