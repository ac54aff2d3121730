"""Idle connections closed to admit new ones. At a connection limit (the global Bootstrap
maxConnections or a listener's own) or when accept4 runs out of file descriptors, a worker that
holds idle HTTP keep-alive connections closes the least recently active one for each new client,
instead of leaving the client in the backlog until a connection closes by itself (65 s of idle
timeout by default). A connection with a request in progress, or a TCP-proxy connection, is never
closed for this; a worker with no idle connection of its own gets one closed by another worker;
Listener.reclaimIdleConnections false turns it off."""

import os
import resource
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))

LIMIT = 20


def to_cluster(cluster="origin"):
    """The test plugin that sends every request to `cluster` (a slow upstream here)."""
    return {"plugin": {"filter": "to_cluster", "plugin": "test_filters", "typedConfig": {
        "@type": "type.googleapis.com/sluice.test.plugin.ToCluster", "cluster": cluster,
        "timeout": "120s"}}}


class IdleReclaimTest(harness.SluiceTestCase):

    def http(self, s, listener="web"):
        c = harness.HttpClient.connect(s.addr(listener))
        self.addCleanup(c.close)
        return c

    def exchange(self, c, target="/"):
        c.send(req("GET", target))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        return r

    def open_idle(self, s, n, listener="web"):
        """n keep-alive connections, each after one request and its response, oldest first."""
        clients = []
        for i in range(n):
            c = self.http(s, listener)
            self.exchange(c, "/idle/%d" % i)
            clients.append(c)
        return clients

    def assert_closed(self, c, what):
        self.assertEqual(b"", c.expect_closed(), what)
        self.assertEqual("eof", c.closed_how, what)

    def assert_open_and_working(self, clients, what):
        for i, c in enumerate(clients):
            self.assertTrue(c.still_open(), "%s %d was closed" % (what, i))
        for i, c in enumerate(clients):
            self.exchange(c, "/again/%d" % i)

    def test_global_limit_closes_the_least_recently_active_idle_connection(self):
        config = harness.http_config(bootstrap_extra={"maxConnections": LIMIT})
        s = self.start_sluice(config, concurrency=1)
        st = s.stats()
        self.assertEqual(LIMIT, st["server.downstream_cx_limit"], harness.format_stats(st))
        self.assertEqual(0, st["listener.web.downstream_cx_limit"], harness.format_stats(st))
        idle = self.open_idle(s, LIMIT)
        # The first connection is used again: the least recently active is now the second one,
        # not the first accepted.
        self.exchange(idle[0], "/touch")

        newcomer = self.http(s)
        self.exchange(newcomer, "/new")
        self.assert_closed(idle[1], "the least recently active idle connection")
        self.assert_open_and_working([idle[0]] + idle[2:], "another idle connection")
        self.exchange(newcomer, "/new/again")
        st = s.wait_stats(lambda st: st["server.downstream_cx_active"] == LIMIT,
                          "%d connections open" % LIMIT)
        self.assertEqual(1, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        self.assertEqual(1, st["listener.web.downstream_cx_idle_reclaimed"],
                         harness.format_stats(st))
        # Room was made at once: accepting never paused.
        self.assertEqual(0, st["server.downstream_cx_overflow"], harness.format_stats(st))
        self.assertEqual(LIMIT + 1, st["server.downstream_cx_total"], harness.format_stats(st))
        s.wait_log("closing idle keep-alive connections")
        self.stop_sluice(s)

    def test_listener_limit_closes_only_that_listeners_idle_connections(self):
        limit = 5
        web = harness.http_listener("web", listener_extra={"maxConnections": limit})
        other = harness.http_listener("other")
        s = self.start_sluice(harness.http_config([web, other]), concurrency=1)
        # The other listener's connections are older, but cannot make room on this one.
        others = self.open_idle(s, 3, "other")
        webs = self.open_idle(s, limit, "web")
        newcomer = self.http(s, "web")
        self.exchange(newcomer, "/new")
        self.assert_closed(webs[0], "web's least recently active idle connection")
        self.assert_open_and_working(others + webs[1:], "an idle connection")
        st = s.stats()
        self.assertEqual(limit, st["listener.web.downstream_cx_limit"], harness.format_stats(st))
        self.assertEqual(0, st["listener.other.downstream_cx_limit"], harness.format_stats(st))
        self.assertEqual(1, st["listener.web.downstream_cx_idle_reclaimed"],
                         harness.format_stats(st))
        self.assertEqual(0, st["listener.other.downstream_cx_idle_reclaimed"],
                         harness.format_stats(st))
        self.assertEqual(0, st["listener.web.downstream_cx_overflow"], harness.format_stats(st))
        self.stop_sluice(s)

    def test_global_limit_closes_the_least_recently_active_over_all_listeners(self):
        web = harness.http_listener("web")
        other = harness.http_listener("other")
        s = self.start_sluice(harness.http_config([web, other],
                                                  bootstrap_extra={"maxConnections": 6}),
                              concurrency=1)
        others = self.open_idle(s, 3, "other")
        webs = self.open_idle(s, 3, "web")
        newcomer = self.http(s, "web")
        self.exchange(newcomer, "/new")
        self.assert_closed(others[0], "the least recently active idle connection (other)")
        self.assert_open_and_working(others[1:] + webs, "an idle connection")
        st = s.stats()
        self.assertEqual(1, st["listener.other.downstream_cx_idle_reclaimed"],
                         harness.format_stats(st))
        self.assertEqual(1, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        self.stop_sluice(s)

    def test_both_limits_reached_cost_one_connection(self):
        # The global limit and the listener's own are both reached: one of the listener's own
        # idle connections makes room under both; the other listener's older ones stay.
        web = harness.http_listener("web", listener_extra={"maxConnections": 2})
        other = harness.http_listener("other")
        s = self.start_sluice(harness.http_config([web, other],
                                                  bootstrap_extra={"maxConnections": 4}),
                              concurrency=1)
        others = self.open_idle(s, 2, "other")
        webs = self.open_idle(s, 2, "web")
        newcomer = self.http(s, "web")
        self.exchange(newcomer, "/new")
        self.assert_closed(webs[0], "web's least recently active idle connection")
        self.assert_open_and_working(others + webs[1:], "an idle connection")
        st = s.stats()
        self.assertEqual(1, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        self.stop_sluice(s)

    def test_a_silent_connection_counts_as_idle(self):
        # Connected, not a byte sent: nothing in progress either (as in nginx), so silent
        # connections cannot hold every slot until the request headers timeout.
        s = self.start_sluice(harness.http_config(bootstrap_extra={"maxConnections": 2}),
                              concurrency=1)
        silent = self.http(s)
        s.wait_stats(lambda st: st["server.downstream_cx_active"] == 1, "the silent one accepted")
        keepalive = self.open_idle(s, 1)[0]
        newcomer = self.http(s)
        self.exchange(newcomer, "/new")
        self.assert_closed(silent, "the silent connection (the least recently active)")
        self.assert_open_and_working([keepalive, newcomer], "a connection")
        self.stop_sluice(s)

    def test_connections_with_a_request_in_progress_are_never_closed(self):
        origin = harness.HttpOrigin()
        self.addCleanup(origin.close)
        self.addCleanup(origin.sink_gate.set)
        # Requests in progress stay so for the whole test (no headers or body timeout).
        listener = harness.http_listener("web", filters=[to_cluster()], hcm={
            "requestHeadersTimeout": "120s", "requestBodyTimeout": "120s"})
        config = harness.http_config([listener], bootstrap_extra={
            "maxConnections": 4, "pluginDirs": [PLUGIN_DIR]})
        config["clusters"] = [{"name": "origin", "connectTimeout": "2s", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": origin.addr[1]}}]}]
        s = self.start_sluice(config, concurrency=1)
        # Oldest first: a request head half sent, a request body half sent, a request waiting
        # for a slow upstream, and only then an idle connection.
        head = self.http(s)
        head.send(b"GET /head HTTP/1.1\r\nHost: sluice.test\r\n")
        body = self.http(s)
        body.send(b"POST /body HTTP/1.1\r\nHost: sluice.test\r\nContent-Length: 10\r\n\r\n12345")
        slow = self.http(s)
        slow.send(req("GET", "/sink"))
        s.wait_stats(lambda st: st["cluster.origin.upstream_rq_total"] == 2,
                     "the body and the slow request at the origin")
        idle = self.open_idle(s, 1)[0]

        newcomer = self.http(s)
        self.exchange(newcomer, "/new")
        self.assert_closed(idle, "the only idle connection")
        for c, what in ((head, "half a head"), (body, "half a body"), (slow, "a slow upstream")):
            self.assertTrue(c.still_open(), "the connection with %s was closed" % what)

        # With no idle connection left, the next client waits (overflow)...
        newcomer.send(b"GET /busy HTTP/1.1\r\nHost: sluice.test\r\n")
        waiting = self.http(s)
        waiting.send(req("GET", "/waiting"))
        st = s.wait_stats(lambda st: st["server.downstream_cx_overflow"] >= 1,
                          "server.downstream_cx_overflow >= 1")
        self.assertTrue(harness.nothing_readable(waiting.sock), "served over the limit")
        self.assertEqual(1, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        # ... until a connection becomes idle: that wakes nobody, but a listener paused with a
        # client waiting looks again.
        head.send(b"\r\n")
        self.assertEqual(200, head.read_response().status)
        self.assertEqual(200, waiting.read_response().status)
        self.assert_closed(head, "the connection that became idle")
        # The other requests in progress complete.
        body.send(b"67890")
        self.assertEqual(200, body.read_response().status)
        origin.sink_gate.set()
        self.assertEqual(200, slow.read_response().status)
        newcomer.send(b"\r\n")
        self.assertEqual(200, newcomer.read_response().status)
        self.assert_open_and_working([body, slow, newcomer, waiting], "a connection")
        st = s.stats()
        self.assertEqual(2, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        self.stop_sluice(s)

    def test_tcp_proxy_connections_are_never_closed(self):
        echo = self.server(harness.EchoServer)
        config = harness.http_config([harness.http_listener("web")],
                                     bootstrap_extra={"maxConnections": 2})
        tcp = harness.tcp_proxy_config([echo.addr], listener_name="tcp")
        config["listeners"] += tcp["listeners"]
        config["clusters"] = tcp["clusters"]
        s = self.start_sluice(config, concurrency=1)
        proxied = self.client(s, "tcp")
        self.assertEqual(b"one", harness.echo_roundtrip(proxied, b"one"))
        idle = self.open_idle(s, 1)[0]
        newcomer = self.http(s)
        self.exchange(newcomer, "/new")
        self.assert_closed(idle, "the idle HTTP connection")
        self.assertEqual(b"two", harness.echo_roundtrip(proxied, b"two"))
        self.assertEqual(0, s.stats()["listener.tcp.downstream_cx_idle_reclaimed"])
        self.stop_sluice(s)

    def test_reclaiming_turned_off(self):
        listener = harness.http_listener("web", listener_extra={"reclaimIdleConnections": False})
        s = self.start_sluice(harness.http_config([listener],
                                                  bootstrap_extra={"maxConnections": 3}),
                              concurrency=1)
        idle = self.open_idle(s, 3)
        waiting = self.http(s)
        waiting.send(req("GET", "/waiting"))
        st = s.wait_stats(lambda st: st["server.downstream_cx_overflow"] >= 1,
                          "server.downstream_cx_overflow >= 1")
        self.assertTrue(harness.nothing_readable(waiting.sock), "served over the limit")
        self.assertEqual(0, st["server.downstream_cx_idle_reclaimed"], harness.format_stats(st))
        for c in idle:
            self.assertTrue(c.still_open())
        # A connection closing lets it in, as before.
        idle[0].close()
        self.assertEqual(200, waiting.read_response().status)
        self.stop_sluice(s)

    def worker_totals(self, st):
        return [st["listener.web.worker.%d.downstream_cx_total" % i] for i in range(2)]

    def accepted_by(self, s, before):
        """The worker that accepted one connection since `before` (worker totals)."""
        st = s.wait_stats(lambda st: sum(self.worker_totals(st)) == sum(before) + 1,
                          "one more connection accepted")
        after = self.worker_totals(st)
        return 0 if after[0] > before[0] else 1

    def test_a_worker_without_idle_connections_gets_one_closed_by_another(self):
        # Two workers, a global limit of 4: one worker holds two connections with a request in
        # progress, the other two idle ones. A client the kernel gives to the first worker must
        # get in through the second.
        config = harness.http_config(bootstrap_extra={"maxConnections": 4},
                                     hcm={"requestHeadersTimeout": "120s"})
        s = self.start_sluice(config, concurrency=2)
        busy_worker = None
        busy, idle = [], []
        for _ in range(100):
            if len(busy) == 2 and len(idle) == 2:
                break
            before = self.worker_totals(s.stats())
            c = self.http(s)
            w = self.accepted_by(s, before)
            if busy_worker is None:
                busy_worker = w
            if w == busy_worker and len(busy) < 2:
                c.send(b"GET /busy HTTP/1.1\r\nHost: sluice.test\r\n")  # half a head
                busy.append(c)
            elif w != busy_worker and len(idle) < 2:
                self.exchange(c, "/idle")
                idle.append(c)
            else:
                c.close()
                n = len(busy) + len(idle)
                s.wait_stats(lambda st: st["server.downstream_cx_active"] == n,
                             "%d connections open" % n)
        else:
            self.fail("SO_REUSEPORT never gave each worker two connections")

        # New clients until one lands on the busy worker; one landing on the other worker takes
        # the room of that worker's least recently active idle connection.
        for _ in range(100):
            before = self.worker_totals(s.stats())
            c = self.http(s)
            self.exchange(c, "/new")
            self.assert_closed(idle[0], "the other worker's least recently active idle connection")
            idle = idle[1:] + [c]
            if self.accepted_by(s, before) == busy_worker:
                break
        else:
            self.fail("SO_REUSEPORT never gave the busy worker a new connection")
        for c in busy:
            self.assertTrue(c.still_open(), "a connection with a request in progress was closed")
        self.assert_open_and_working(idle, "an idle connection")
        st = s.stats()
        # The busy worker paused until the other one made room.
        self.assertGreaterEqual(st["server.downstream_cx_overflow"], 1, harness.format_stats(st))
        for c in busy:
            c.send(b"\r\n")
            self.assertEqual(200, c.read_response().status)
        self.stop_sluice(s)

    # UBSan's vptr check needs free descriptors (see limits_test.test_accept_survives_fd_
    # exhaustion).
    @unittest.skipIf(os.environ.get("SLUICE_SANITIZE"),
                     "UBSan's vptr check needs free descriptors; see limits_test")
    def test_out_of_descriptors_closes_idle_connections(self):
        # A global limit far above what RLIMIT_NOFILE allows: accept4 fails with EMFILE first.
        # Every client, one after the other, must still be served.
        nofile = 64
        n = 80

        def limit_files():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        config = harness.http_config(bootstrap_extra={"maxConnections": 1000})
        s = self.start_sluice(config, concurrency=1, preexec_fn=limit_files)
        clients = []
        for i in range(n):
            c = self.http(s)
            self.exchange(c, "/c/%d" % i)
            clients.append(c)
        self.assert_closed(clients[0], "the least recently active idle connection")
        self.assert_open_and_working(clients[-10:], "a recent connection")
        # Give the admin endpoint a descriptor: clients closing theirs free sluice's.
        for c in clients[-20:-10]:
            c.close()
        st = s.wait_stats(lambda st: st["server.downstream_cx_idle_reclaimed"] >= 1 and
                          st["server.accept_fd_exhausted"] >= 1,
                          "idle connections closed for want of descriptors")
        self.assertEqual(n, st["server.downstream_cx_total"], harness.format_stats(st))
        self.assertIsNone(s.poll(), "sluice died")
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
