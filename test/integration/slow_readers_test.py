"""Slow readers cost sluice little memory, and the memory comes back when they leave: many clients
that ask for a large response and barely read it hold only a bounded amount of it each (the
upstream is not read further while a client's buffer is full), and once they are gone the freed
memory is returned to the system.

Bounds are per reader and generous for the process's other costs; the figures for 5,000 readers
beside nginx's are in docs/performance.md (tools/bench/slow_readers)."""

import os
import socket
import threading

import harness
from harness import http_request as req

READERS = int(os.environ.get("SLUICE_SLOW_READERS", "1000"))
RESPONSE = 16 * harness.MiB
# RSS per slow reader while they hold their responses: the connection, stream and upstream
# connection objects (~6 KiB) plus at most a per-connection buffer and a half (8 KiB default) of
# the response. Typically ~16 KiB (1.1 MiB before buffers were bounded); the bound leaves room
# for the allocator's own spread.
MAX_BYTES_PER_READER = 24 * 1024
# RSS over the baseline once every reader is gone.
MAX_LEFT_AFTER = 16 * harness.MiB


class BigOrigin(harness.UpstreamServer):
    """Answers every request on a connection with RESPONSE bytes (Content-Length), written in
    64 KiB blocks as fast as the proxy takes them."""

    def handle(self, conn):
        buf = b""
        block = b"x" * 65536
        while True:
            head, buf = harness.recv_head(conn, buf)
            if head is None:
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % RESPONSE)
            for _ in range(RESPONSE // len(block)):
                conn.sendall(block)


class SlowReadersTest(harness.SluiceTestCase):

    def test_slow_readers_hold_little_and_give_it_back(self):
        if harness.sanitized():
            self.skipTest("RSS says nothing under ASan (its allocator keeps freed memory)")
        origin = BigOrigin(backlog=READERS)
        self.addCleanup(origin.close)
        s = self.start_sluice(harness.routed_config(
            origin.port, route={"idleTimeout": "0s"}, pool={"maxConnections": READERS * 2}),
            concurrency=1)
        # Warm up: one fast request through every layer, so the baseline holds what a running
        # proxy always holds.
        warm = harness.HttpClient.connect(s.addr("web"))
        warm.send(req("GET", "/warm"))
        self.assertEqual(RESPONSE, len(warm.read_response(timeout=120).body))
        warm.close()
        s.wait_stats(lambda st: st["server.downstream_cx_active"] == 0, "the warm-up closed")
        baseline = s.rss_bytes()

        clients = []
        for i in range(READERS):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # A reader that takes almost nothing: its window stays near zero.
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.settimeout(harness.IO_TIMEOUT)
            c.connect(s.addr("web"))
            c.sendall(req("GET", "/big/%d" % i))
            clients.append(c)
        try:
            # Every stream has paused reading its upstream at least once: the responses are as
            # far in as they will get.
            s.wait_stats(lambda st: harness.stat(
                st, "http.web.upstream_flow_control_paused_reading_total") >= READERS,
                "every response paused", timeout=120)
            held = s.rss_bytes() - baseline
            per_reader = held / READERS
            print("slow readers: %d, RSS over baseline %.1f MiB, %.1f KiB per reader" %
                  (READERS, held / harness.MiB, per_reader / 1024))
            self.assertLess(per_reader, MAX_BYTES_PER_READER)
            # They still get their bytes: a read makes progress.
            self.assertTrue(clients[0].recv(4096).startswith(b"HTTP/1.1 200"))
        finally:
            for c in clients:
                c.close()
        s.wait_stats(lambda st: st["server.downstream_cx_active"] == 0, "the readers left",
                     timeout=120)
        s.wait_stats(lambda st: harness.stat(st, "cluster.o.upstream_cx_active") == 0,
                     "the upstream connections closed", timeout=120)
        # Freed memory goes back to the system (not at once: the worker trims when it has freed
        # enough and is not busy).
        harness.wait_until(lambda: s.rss_bytes() - baseline < MAX_LEFT_AFTER,
                           "RSS back near the baseline (now %.1f MiB over)" %
                           ((s.rss_bytes() - baseline) / harness.MiB), timeout=60)


if __name__ == "__main__":
    harness.main()
