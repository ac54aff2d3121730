"""A plugin that crashes the process (SIGSEGV, SIGABRT, a stack overflow) is reported before the
process dies: the signal, the faulting address, the worker thread's name, the plugin's filter
name and file, and a backtrace on stderr; then the signal's default action ends the process, so
the exit status is that signal's (test/plugin/plugins/crash.c crashes when a request asks)."""

import os
import re
import resource
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))
# Under AddressSanitizer, faults (SIGSEGV, SIGBUS, SIGFPE) are ASan's to report.
ASAN = bool(os.environ.get("SLUICE_SANITIZE"))


def no_core_dump():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class CrashTest(harness.SluiceTestCase):

    def crash(self, how):
        """Starts sluice with the crash plugin (configured as filter "boom"), sends a request that
        asks it to crash `how`, and returns (exit code, stderr) once the process died."""
        cfg = harness.http_config(
            [harness.http_listener("web", filters=[
                {"name": "boom", "plugin": {"filter": "crash", "plugin": "crash"}},
                harness.direct_response_filter()])],
            bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})
        s = self.start_sluice(cfg, concurrency=2, preexec_fn=no_core_dump)
        # A request that does not ask is served: the plugin is loaded and harmless.
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/"))
        self.assertEqual(200, c.read_response().status)
        c.send(req("GET", "/", headers=[("x-crash", how)]))
        try:
            harness.recv_until_closed(c.sock)
        except (OSError, TimeoutError):
            pass
        rc = s.wait_exit()
        with open(s.stderr_path, "rb") as f:
            return rc, f.read().decode("utf-8", "replace")

    def assertReport(self, stderr, signame):
        self.assertIn("*** sluice: fatal signal %s" % signame, stderr)
        # The worker thread that ran the hook, by the name sluice gave it.
        self.assertRegex(stderr, r"thread \d+ \"sluice-wrk-\d\"")
        self.assertIn('while running plugin filter "boom" (sl_on_request_headers)', stderr)
        self.assertIn("*** backtrace:", stderr)
        # At least one frame is the plugin's, named by its filter and its file.
        self.assertRegex(stderr, r"  #\d+ 0x[0-9a-f]+ in plugin \"boom\" \([^)]*/crash\.so\)")
        self.assertIn("*** end of report; re-raising %s" % signame, stderr)

    @unittest.skipIf(ASAN, "AddressSanitizer reports faults itself")
    def test_null_dereference_in_a_plugin_is_reported_and_exits_by_sigsegv(self):
        rc, stderr = self.crash("segv")
        self.assertEqual(-signal.SIGSEGV, rc, stderr)
        self.assertReport(stderr, "SIGSEGV")
        self.assertIn("faulting address 0x0,", stderr)
        # The faulting instruction itself is in the plugin.
        self.assertRegex(stderr, r"\*\*\* faulting instruction 0x[0-9a-f]+ in plugin \"boom\" "
                                 r"\([^)]*/crash\.so\)")

    def test_abort_in_a_plugin_is_reported_and_exits_by_sigabrt(self):
        rc, stderr = self.crash("abort")
        self.assertEqual(-signal.SIGABRT, rc, stderr)
        self.assertReport(stderr, "SIGABRT")

    @unittest.skipIf(ASAN, "AddressSanitizer reports stack overflows itself")
    def test_a_stack_overflow_in_a_plugin_is_reported_too(self):
        # The handler runs on its own stack: the thread's is used up.
        rc, stderr = self.crash("stack")
        self.assertEqual(-signal.SIGSEGV, rc, stderr)
        self.assertReport(stderr, "SIGSEGV")


if __name__ == "__main__":
    harness.main()
