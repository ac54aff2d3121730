"""Draining HTTP connections on SIGTERM: the listener stops accepting, an idle keep-alive
connection is closed at once, a request in progress is answered with "Connection: close", and the
process exits 0 once every connection is gone (well before the drain timeout)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HttpClient, http_config, http_request  # noqa: E402


class HttpDrainTest(harness.SluiceTestCase):

    def test_sigterm_closes_idle_and_finishes_in_progress(self):
        # A long drain timeout: the exit must come from the connections finishing, not from it.
        s = self.start_sluice(http_config(drain_timeout="60s"), concurrency=1)
        addr = s.addr("web")

        idle = HttpClient.connect(addr)
        idle.send(http_request())
        first = idle.read_response()
        self.assertEqual(first.status, 200)

        busy = HttpClient.connect(addr)
        busy.send(http_request()[:10])  # a request head in progress
        s.wait_stats(lambda st: st["listener.web.downstream_cx_active"] == 2,
                     "both connections accepted")

        s.send_signal(signal.SIGTERM)
        # The idle keep-alive connection is closed by the proxy without a response.
        self.assertEqual(idle.expect_closed(), b"")
        # New connections are refused once the listener is closed (it closes as soon as every
        # worker has stopped polling it: poll, bounded).
        deadline = time.monotonic() + harness.STATS_TIMEOUT
        while not harness.connect_refused(addr):
            self.assertLess(time.monotonic(), deadline, "the listener still accepts")
            time.sleep(0.02)
        # The request in progress completes, with notice that the connection ends.
        busy.send(http_request()[10:])
        last = busy.read_response()
        self.assertEqual(last.status, 200)
        self.assertTrue(last.has_token("connection", "close"), last)
        self.assertEqual(busy.expect_closed(), b"")
        self.assertEqual(s.wait_exit(), 0)

        idle.close()
        busy.close()


if __name__ == "__main__":
    harness.main()
