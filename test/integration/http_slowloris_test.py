"""Slowloris: hundreds of clients trickling a request head one byte at a time must be cut off by
requestHeadersTimeout (counted from the connection's start for the first request), and must not
keep a normal client from being served meanwhile.

Run serially (hundreds of connections, one worker)."""

import os
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOW_CONNECTIONS = 300
TRICKLE_INTERVAL = 0.1
# The slow clients give up (and the test fails) after this long.
SLOW_PHASE_LIMIT = 15.0
# A normal request must be answered within this (generous: the timeout is 1 s).
NORMAL_REQUEST_BOUND = 5.0
# A head far too long to complete at 10 bytes per second before the phase ends.
SLOW_HEAD = (b"GET /slow HTTP/1.1\r\nHost: victim\r\nUser-Agent: slowloris\r\nX-Pad: " +
             b"p" * 400 + b"\r\n\r\n")


class SlowClients(threading.Thread):
    """Opens n connections and sends each one more byte of SLOW_HEAD every interval, until the
    proxy closes every one of them or the time limit passes. Never closes one itself."""

    def __init__(self, addr, n):
        super().__init__(daemon=True, name="slowloris")
        self.addr = addr
        self.n = n
        self.opened = threading.Event()
        self.closed_by_proxy = {}  # index -> "eof" | "reset" | "send-failed"
        self.received = {}  # index -> bytes received
        self.sent = {}  # index -> bytes of the head sent
        self.error = None
        self.socks = []

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e
            self.opened.set()

    def _close(self, i, how, sel):
        self.closed_by_proxy[i] = how
        try:
            sel.unregister(self.socks[i])
        except (KeyError, ValueError):
            pass

    def _run(self):
        sel = selectors.DefaultSelector()
        for i in range(self.n):
            s = socket.create_connection(self.addr, timeout=harness.IO_TIMEOUT)
            s.setblocking(False)
            self.socks.append(s)
            self.sent[i] = 0
            self.received[i] = b""
            sel.register(s, selectors.EVENT_READ, i)
        self.opened.set()
        deadline = time.monotonic() + SLOW_PHASE_LIMIT
        next_tick = time.monotonic()
        while len(self.closed_by_proxy) < self.n and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TRICKLE_INTERVAL
                for i, s in enumerate(self.socks):
                    if i in self.closed_by_proxy or self.sent[i] >= len(SLOW_HEAD):
                        continue
                    try:
                        s.send(SLOW_HEAD[self.sent[i]:self.sent[i] + 1])
                        self.sent[i] += 1
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        self._close(i, "send-failed", sel)
            timeout = max(0.0, min(next_tick, deadline) - time.monotonic())
            for key, _ in sel.select(timeout):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, ConnectionAbortedError):
                    self._close(i, "reset", sel)
                    continue
                if not data:
                    self._close(i, "eof", sel)
                    continue
                self.received[i] += data
        sel.close()

    def close_all(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class SlowlorisTest(harness.SluiceTestCase):

    def test_slow_heads_are_cut_off_and_others_served(self):
        config = harness.http_config(hcm={"requestHeadersTimeout": "1s", "idleTimeout": "60s"})
        # One worker: the slow clients and the normal one share its event loop.
        s = self.start_sluice(config, concurrency=1)
        addr = s.addr("web")
        slow = SlowClients(addr, SLOW_CONNECTIONS)
        self.addCleanup(slow.close_all)
        slow.start()
        self.assertTrue(slow.opened.wait(harness.IO_TIMEOUT), "could not open the slow clients")
        self.assertIsNone(slow.error, "slow clients failed: %r" % slow.error)

        # Meanwhile a normal client: new connection, one request, each bounded.
        served = 0
        worst = 0.0
        while slow.is_alive():
            start = time.monotonic()
            c = harness.HttpClient.connect(addr, timeout=NORMAL_REQUEST_BOUND)
            try:
                c.send(harness.http_request(target="/normal/%d" % served))
                resp = c.read_response(timeout=NORMAL_REQUEST_BOUND)
            except (OSError, EOFError) as e:
                self.fail("normal request %d failed during the slowloris (%r); slow connections "
                          "closed so far: %d" % (served, e, len(slow.closed_by_proxy)))
            finally:
                c.close()
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.body, harness.DIRECT_BODY)
            worst = max(worst, time.monotonic() - start)
            served += 1
            # Pace the normal client a little (bounded by the slow thread's own limit).
            slow.join(0.05)
        slow.join(harness.IO_TIMEOUT)
        self.assertFalse(slow.is_alive())
        self.assertIsNone(slow.error, "slow clients failed: %r" % slow.error)

        still_open = [i for i in range(SLOW_CONNECTIONS) if i not in slow.closed_by_proxy]
        self.assertFalse(still_open, "%d slow connections still open after %.0fs (e.g. #%s, "
                         "%s bytes sent)" % (len(still_open), SLOW_PHASE_LIMIT,
                                             still_open[:5], [slow.sent[i] for i in still_open[:5]]))
        seen_408 = 0
        for i in range(SLOW_CONNECTIONS):
            data = slow.received[i]
            if data:
                # The only thing a slow client may get is the 408.
                self.assertTrue(data.startswith(b"HTTP/1.1 408 "),
                                "slow connection #%d got %r" % (i, data[:200]))
                seen_408 += 1
            self.assertLess(slow.sent[i], len(SLOW_HEAD), "slow connection #%d completed its "
                            "head (the test is too slow to prove anything)" % i)
        self.assertGreater(served, 0, "no normal request ran during the slowloris")
        st = s.wait_stats(lambda st: st["http.web.downstream_rq_headers_timeout"] >=
                          SLOW_CONNECTIONS and st["listener.web.downstream_cx_active"] == 0,
                          "downstream_rq_headers_timeout >= %d and every connection closed" %
                          SLOW_CONNECTIONS)
        self.assertEqual(st["http.web.downstream_rq_total"], served, harness.format_stats(st))
        self.assertEqual(st["http.web.downstream_rq_2xx"], served, harness.format_stats(st))
        sys.stderr.write("slowloris: %d slow connections closed (%d saw the 408), %d normal "
                         "requests served, slowest %.3fs\n" %
                         (len(slow.closed_by_proxy), seen_408, served, worst))
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
