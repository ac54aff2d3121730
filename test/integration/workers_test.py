"""Workers: with --concurrency 2 and SO_REUSEPORT (the default) both workers accept; with
reusePort false the workers share one socket and still serve every connection.

Run serially (hundreds of connections)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BATCH = 10


class WorkersTest(harness.SluiceTestCase):

    def run_connections(self, s, n):
        """n short echo connections, in small batches, each from a new ephemeral port."""
        done = 0
        while done < n:
            batch = []
            for i in range(min(BATCH, n - done)):
                c = s.connect("l")
                batch.append(c)
            try:
                for i, c in enumerate(batch):
                    msg = b"conn %d" % (done + i)
                    self.assertEqual(harness.echo_roundtrip(c, msg), msg)
            finally:
                for c in batch:
                    c.close()
            done += len(batch)

    def worker_totals(self, st, concurrency):
        names = sorted(k for k in st if k.startswith("listener.l.worker."))
        self.assertEqual(names, sorted("listener.l.worker.%d.downstream_cx_total" % i
                                       for i in range(concurrency)), harness.format_stats(st))
        return [st["listener.l.worker.%d.downstream_cx_total" % i] for i in range(concurrency)]

    def test_two_workers_share_the_load(self):
        n = 200
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr])
        s = self.start_sluice(config, concurrency=2)
        self.run_connections(s, n)
        st = s.wait_stats(lambda st: st["listener.l.downstream_cx_total"] == n and
                          st["listener.l.downstream_cx_active"] == 0 and
                          sum(st["listener.l.worker.%d.downstream_cx_total" % i]
                              for i in range(2)) == n,
                          "%d connections counted, all closed" % n)
        totals = self.worker_totals(st, 2)
        self.assertGreater(totals[0], 0, "worker 0 accepted nothing: %s" % totals)
        self.assertGreater(totals[1], 0, "worker 1 accepted nothing: %s" % totals)
        self.assertEqual(sum(totals), n)
        self.assertEqual(st["cluster.c.upstream_cx_total"], n)
        self.assertEqual(echo.accepted, n)
        self.stop_sluice(s)

    def test_shared_socket_without_reuse_port(self):
        n = 50
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], listener_extra={"reusePort": False})
        s = self.start_sluice(config, concurrency=2)
        self.run_connections(s, n)
        st = s.wait_stats(lambda st: st["listener.l.downstream_cx_total"] == n and
                          st["listener.l.downstream_cx_active"] == 0,
                          "%d connections counted, all closed" % n)
        totals = self.worker_totals(st, 2)
        self.assertEqual(sum(totals), n, totals)
        self.assertEqual(st["cluster.c.upstream_cx_total"], n)
        self.assertEqual(echo.accepted, n)
        self.stop_sluice(s)

    def test_concurrency_from_config(self):
        # Bootstrap.concurrency applies when --concurrency is not given.
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], bootstrap_extra={"concurrency": 3})
        s = self.start_sluice(config)
        self.run_connections(s, 10)
        st = s.wait_stats(lambda st: st["listener.l.downstream_cx_total"] == 10,
                          "10 connections counted")
        self.assertEqual(sum(self.worker_totals(st, 3)), 10)
        self.stop_sluice(s)

    def test_flag_overrides_config_concurrency(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], bootstrap_extra={"concurrency": 3})
        s = self.start_sluice(config, concurrency=1)
        self.run_connections(s, 5)
        st = s.wait_stats(lambda st: st["listener.l.downstream_cx_total"] == 5,
                          "5 connections counted")
        self.assertEqual(self.worker_totals(st, 1), [5])
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
