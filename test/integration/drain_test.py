"""Shutdown: SIGTERM/SIGINT close the listeners at once, let open connections finish (up to
drainTimeout), then exit 0."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DrainTest(harness.SluiceTestCase):

    def wait_refused(self, s, listener="l", timeout=harness.STATS_TIMEOUT):
        """Polls connects to the listener until one is refused (bounded)."""
        deadline = time.monotonic() + timeout
        while not harness.connect_refused(s.addr(listener)):
            self.assertIsNone(s.poll(), "sluice exited before its drain was observed")
            if time.monotonic() > deadline:
                self.fail("listener %s still accepts %.0fs after the signal" % (listener, timeout))
            time.sleep(harness.POLL_INTERVAL)

    def drain_with_open_connection(self, sig):
        echo = self.server(harness.EchoServer)
        # A drain timeout far beyond the bounded waits below: the exit must follow the last
        # connection's close, not the timeout.
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"before"), b"before")

        s.send_signal(sig)
        self.wait_refused(s)
        self.assertIsNone(s.poll(), "sluice exited with a connection still open")
        # The open connection still works, both ways, with more than a few bytes.
        payload = harness.PatternStream(21).chunk(0, 256 * 1024)
        self.assertEqual(harness.echo_roundtrip(c, payload), payload)
        self.assertIsNone(s.poll(), "sluice exited with a connection still open")
        c.close()
        rc = s.wait_exit()
        self.assertEqual(rc, 0, "exit code after %s" % signal.Signals(sig).name)
        echo.wait_for(lambda e: e.active == 0, what="upstream connection closed")

    def test_sigterm_drains_open_connection(self):
        self.drain_with_open_connection(signal.SIGTERM)

    def test_sigint_drains_open_connection(self):
        self.drain_with_open_connection(signal.SIGINT)

    def test_second_signal_closes_at_once(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"hold"), b"hold")
        s.send_signal(signal.SIGTERM)
        self.wait_refused(s)
        self.assertEqual(harness.echo_roundtrip(c, b"still"), b"still")
        s.send_signal(signal.SIGTERM)
        rc = s.wait_exit()
        self.assertEqual(rc, 0)
        data, how = harness.recv_until_closed(c, limit=0)
        echo.wait_for(lambda e: e.active == 0, what="upstream connection closed")

    def test_sigterm_without_connections(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"x"), b"x")
        c.close()
        s.wait_stats(lambda st: st["listener.l.downstream_cx_active"] == 0, "connection closed")
        self.stop_sluice(s)

    def test_drain_timeout_closes_connections(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="1s")
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"hold"), b"hold")
        s.send_signal(signal.SIGTERM)
        rc = s.wait_exit()
        self.assertEqual(rc, 0)
        # The connection was closed by the drain timeout (or at exit).
        data, how = harness.recv_until_closed(c, limit=0)
        self.assertEqual(data, b"")
        echo.wait_for(lambda e: e.active == 0, what="upstream connection closed")

    def test_drain_timeout_with_busy_connection(self):
        # A connection that keeps streaming does not hold the process beyond drainTimeout.
        total = 1 << 40  # never finishes on its own
        src = self.server(harness.SourceServer, total, seed=23)
        config = harness.tcp_proxy_config([src.addr], drain_timeout="1s")
        s = self.start_sluice(config, concurrency=1)
        c = self.client(s)
        harness.recv_exact(c, 1024 * 1024)
        s.send_signal(signal.SIGTERM)
        # Keep reading while sluice drains: the connection ends with EOF or a reset.
        data_len = 0
        deadline = time.monotonic() + harness.EXIT_TIMEOUT
        ended = False
        while time.monotonic() < deadline:
            try:
                data = c.recv(1 << 20)
            except (ConnectionResetError, ConnectionAbortedError):
                ended = True
                break
            if not data:
                ended = True
                break
            data_len += len(data)
        self.assertTrue(ended, "the streaming connection was not closed by the drain timeout")
        rc = s.wait_exit()
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    harness.main()
