"""Hot restart (sluice --hot-restart-from CONTROL_SOCKET): the successor takes every listening
socket of the running sluice, whatever either's worker count, and the old one drains and exits.
New connections keep arriving all along (a bounded load) and not one fails; a successor with a
bad config leaves the old one serving."""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import direct_response_filter, http_config, http_listener  # noqa: E402


def config(body, port, control):
    listener = http_listener(filters=[direct_response_filter(body=body)])
    listener["address"]["port"] = port
    c = http_config(listeners=[listener], drain_timeout="5s")
    c["controlSocket"] = control
    return c


def get(addr):
    """One request on a new connection: the body, or an exception."""
    with socket.create_connection(addr, timeout=harness.IO_TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError("response %r" % data[:200])
    return body


class Load:
    """New connections, one after another, from a thread, until stop() (at most `limit`)."""

    def __init__(self, addr, limit=50000):
        self.addr, self.limit = addr, limit
        self.ok, self.failures = 0, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set() and self.ok + len(self.failures) < self.limit:
            try:
                get(self.addr)
                self.ok += 1
            except Exception as e:  # counted, and shown by the test
                self.failures.append(repr(e))

    def stop(self):
        self.done.set()
        self.thread.join(harness.IO_TIMEOUT * 2)


class HotRestartTest(harness.SluiceTestCase):
    def test_two_restarts_under_load_fail_nothing(self):
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(config("one\n", 0, control), concurrency=3, name="one")
        addr = s.addr("web")
        load = Load(addr)
        self.addCleanup(load.stop)
        harness.wait_until(lambda: load.ok >= 50, "some requests before the first restart")
        # 3 workers -> 2 (the successor accepts on all 3 inherited sockets), then 2 -> 4.
        for body, workers in (("two\n", 2), ("three\n", 4)):
            before = load.ok
            nxt = self.start_sluice(config(body, addr[1], control), concurrency=workers,
                                    name=body.strip(), args=("--hot-restart-from", control))
            self.assertEqual(0, s.wait_exit(), s.log_text())
            self.assertEqual(body.encode(), get(addr))
            harness.wait_until(lambda: load.ok >= before + 50, "requests after the restart")
            s = nxt
        load.stop()
        self.assertEqual([], load.failures[:5])
        self.assertGreater(load.ok, 150)
        self.assertIn("took 3 listening sockets", self._sluices[1].log_text())

    def test_a_bad_successor_leaves_the_old_one_serving(self):
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(config("one\n", 0, control), concurrency=1, name="one")
        addr = s.addr("web")
        bad = config("two\n", addr[1], control)
        bad["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"] = [
            {"plugin": {"filter": "no_such_filter"}}]
        nxt = self.start_sluice(bad, wait=False, name="bad",
                                args=("--hot-restart-from", control))
        self.assertEqual(1, nxt.wait_exit())
        self.assertEqual(b"one\n", get(addr))
        # A successor that cannot reach a control socket says so, and changes nothing either.
        lost = self.start_sluice(config("two\n", addr[1], control + ".x"), wait=False,
                                 name="lost", args=("--hot-restart-from", control + ".x"))
        self.assertEqual(1, lost.wait_exit())
        self.assertIn("cannot reach the running sluice", lost.log_text())
        self.assertEqual(b"one\n", get(addr))


if __name__ == "__main__":
    harness.main()
