"""Flow control: a fast upstream and a slow client must not make the proxy buffer the stream.

Run serially (it measures the proxy's RSS)."""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB  # noqa: E402

TOTAL = 100 * MiB
# The proxy may grow by this much over its post-start RSS while 100 MiB flow through it. Its
# buffers are bounded by the 1 MiB watermarks per connection; the rest is allocator slack.
# With ASan (quarantine limited to 4 MiB below) the same bound is expected to hold.
MAX_RSS_GROWTH = 64 * MiB


class SlowReaderTest(harness.SluiceTestCase):

    def test_slow_reader_bounded_memory(self):
        src = self.server(harness.SourceServer, TOTAL, seed=11, stall_after=1.0)
        config = harness.tcp_proxy_config([src.addr])
        env = {}
        asan = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=4"
        s = self.start_sluice(config, concurrency=1, env=env)
        baseline = s.rss_bytes()

        # A small receive buffer keeps the kernel from absorbing much of the stream on our side.
        c = self.client(s, rcvbuf=128 * 1024)
        # Read nothing until the source's send blocks for more than a second: backpressure has
        # reached it through the proxy.
        stalled = src.stalled.wait(2 * harness.IO_TIMEOUT)
        self.assertTrue(stalled, "the source never stalled: sent %d bytes" % src.sent)
        self.assertFalse(src.done.is_set(),
                         "the source sent all %d bytes to a client that reads nothing" % TOTAL)
        self.assertLess(src.sent_at_stall, TOTAL)
        rss_at_stall = s.rss_bytes()
        self.assertLess(rss_at_stall - baseline, MAX_RSS_GROWTH,
                        "RSS grew from %d to %d while the client did not read (source sent %d)" %
                        (baseline, rss_at_stall, src.sent_at_stall))

        # Read the rest, sampling RSS every MiB.
        h = hashlib.sha256()
        got = 0
        max_rss = rss_at_stall
        next_sample = MiB
        while True:
            data = c.recv(64 * 1024)
            if not data:
                break
            h.update(data)
            got += len(data)
            self.assertLessEqual(got, TOTAL)
            if got >= next_sample:
                max_rss = max(max_rss, s.rss_bytes())
                next_sample += MiB
        self.assertEqual(got, TOTAL)
        self.assertTrue(src.done.is_set())
        self.assertEqual(h.hexdigest(), src.digest, "the bytes received differ from those sent")
        self.assertLess(max_rss - baseline, MAX_RSS_GROWTH,
                        "RSS grew from %d to %d while streaming" % (baseline, max_rss))
        sys.stderr.write("\n  rss: baseline %.1f MiB, at stall %.1f MiB (source had sent %.1f "
                         "MiB), max %.1f MiB\n" % (baseline / MiB, rss_at_stall / MiB,
                                                   src.sent_at_stall / MiB, max_rss / MiB))
        c.close()
        s.wait_stats(lambda st: st["listener.l.downstream_cx_active"] == 0 and
                     st["cluster.c.upstream_cx_active"] == 0, "all connections closed")
        self.stop_sluice(s)

    def test_slow_upstream_bounded_memory(self):
        # The other direction: the client sends as fast as it can to an upstream that reads
        # nothing; the client's send must stall, with the proxy's memory bounded.
        sink = self.server(harness.SinkServer)
        config = harness.tcp_proxy_config([sink.addr])
        env = {}
        asan = os.environ.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=4"
        s = self.start_sluice(config, concurrency=1, env=env)
        baseline = s.rss_bytes()
        c = self.client(s)
        c.setsockopt(harness.socket.SOL_SOCKET, harness.socket.SO_SNDBUF, 128 * 1024)
        sink.wait_for(lambda x: x.accepted == 1, what="the proxy connected upstream")

        pattern = harness.PatternStream(13)
        chunks = pattern.generate(TOTAL, 256 * 1024)
        h = hashlib.sha256()
        sent = 0
        pending = memoryview(b"")
        stalled_at = None
        max_rss = baseline
        next_sample = MiB
        c.settimeout(1.0)
        while True:
            if not pending:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                h.update(chunk)
                pending = memoryview(chunk)
            try:
                n = c.send(pending)
            except harness.socket.timeout:
                # No progress for a second: backpressure reached the client.
                if stalled_at is None:
                    stalled_at = sent
                    rss = s.rss_bytes()
                    max_rss = max(max_rss, rss)
                    self.assertLess(rss - baseline, MAX_RSS_GROWTH,
                                    "RSS grew from %d to %d while the upstream did not read "
                                    "(client sent %d)" % (baseline, rss, sent))
                    sink.release.set()
                    c.settimeout(harness.IO_TIMEOUT)
                    continue
                self.fail("send made no progress for %.0fs after the upstream started reading"
                          % harness.IO_TIMEOUT)
            pending = pending[n:]
            sent += n
            if sent >= next_sample:
                max_rss = max(max_rss, s.rss_bytes())
                next_sample += MiB
        self.assertIsNotNone(stalled_at, "the client sent all %d bytes to an upstream that reads "
                             "nothing" % TOTAL)
        c.shutdown(harness.socket.SHUT_WR)
        self.assertTrue(sink.done.wait(2 * harness.IO_TIMEOUT), "the upstream never saw EOF")
        self.assertEqual(sink.received, TOTAL)
        self.assertEqual(sink.digest, h.hexdigest(), "the bytes received differ from those sent")
        self.assertLess(max_rss - baseline, MAX_RSS_GROWTH,
                        "RSS grew from %d to %d while streaming" % (baseline, max_rss))
        sys.stderr.write("\n  rss: baseline %.1f MiB, max %.1f MiB (client stalled after %.1f "
                         "MiB)\n" % (baseline / MiB, max_rss / MiB, stalled_at / MiB))
        # The upstream closed after EOF: the client sees its connection closed.
        data, how = harness.recv_until_closed(c, limit=0)
        c.close()
        s.wait_stats(lambda st: st["listener.l.downstream_cx_active"] == 0 and
                     st["cluster.c.upstream_cx_active"] == 0, "all connections closed")
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
