"""Signals other than SIGTERM/SIGINT: SIGHUP, SIGUSR1 and SIGUSR2 are logged and never end the
process or its drain; they are handled on the main loop, and the worker threads block them."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HttpClient, http_config, http_request  # noqa: E402

# What sluice logs for each (source/server/server.cc).
LOGGED = {
    signal.SIGHUP: "SIGHUP received: reloading TLS certificates",
    signal.SIGUSR1: "SIGUSR1 received (reopen log files)",
    signal.SIGUSR2: "SIGUSR2 received and ignored",
}
MAIN_LOOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def blocked_signals(pid, tid):
    """The set of signal numbers thread tid of pid blocks (SigBlk in /proc)."""
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            if line.startswith("SigBlk:"):
                mask = int(line.split()[1], 16)
                return {n for n in range(1, 65) if mask & (1 << (n - 1))}
    raise AssertionError("no SigBlk for thread %d of %d" % (tid, pid))


class SignalsTest(harness.SluiceTestCase):

    def get(self, s):
        c = HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(http_request("GET", "/", headers=[("Connection", "close")]))
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, harness.DIRECT_BODY)

    def test_hup_usr1_usr2_are_logged_and_serving_goes_on(self):
        s = self.start_sluice(http_config(), concurrency=2)
        self.get(s)
        offset = 0
        # Twice each: a handled signal stays handled.
        for sig in list(LOGGED) * 2:
            s.send_signal(sig)
            offset = s.wait_log(LOGGED[sig], after=offset)
            self.assertIsNone(s.poll(), "sluice exited after %s" % signal.Signals(sig).name)
            self.get(s)
        self.assertNotIn("draining", s.log_text())
        # SIGTERM still drains and exits 0.
        self.stop_sluice(s)
        self.assertIn("draining", s.log_text())

    def test_signals_during_drain_do_not_end_it(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"before"), b"before")
        s.send_signal(signal.SIGTERM)
        offset = s.wait_log("draining")
        for sig in LOGGED:
            s.send_signal(sig)
            offset = s.wait_log(LOGGED[sig], after=offset)
        # Not taken for a second SIGTERM (which would close the connection at once).
        self.assertEqual(harness.echo_roundtrip(c, b"after"), b"after")
        self.assertIsNone(s.poll(), "sluice exited with a connection still open")
        c.close()
        self.assertEqual(s.wait_exit(), 0)

    def test_worker_threads_block_the_signals_main_handles(self):
        s = self.start_sluice(http_config(), concurrency=3)
        # The workers run once /ready answers 200 (it answers only after they started).
        status, body = s.admin_get("/ready")
        self.assertEqual(status, 200, body)
        tids = sorted(int(t) for t in os.listdir("/proc/%d/task" % s.pid))
        workers = [t for t in tids if t != s.pid]
        self.assertGreaterEqual(len(workers), 3, "threads: %s" % tids)
        main_blocked = blocked_signals(s.pid, s.pid)
        for sig in MAIN_LOOP_SIGNALS:
            self.assertNotIn(int(sig), main_blocked,
                             "the main thread blocks %s" % signal.Signals(sig).name)
        for tid in workers:
            blocked = blocked_signals(s.pid, tid)
            for sig in MAIN_LOOP_SIGNALS:
                self.assertIn(int(sig), blocked, "thread %d does not block %s" %
                              (tid, signal.Signals(sig).name))
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
