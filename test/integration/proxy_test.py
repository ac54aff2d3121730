"""Proxying HTTP/1.1 to real upstream servers over loopback: a filter makes the terminal
decision (the test plugin "to_cluster", on the public ABI), the core takes a pooled keep-alive
connection and streams both ways. Proves keep-alive reuse by the upstream's own connection
count, request and response bodies (counted and chunked), proxy fields, and the mapping of
failures: connect failure 503, timeout 504, upstream reset 502, invalid response 502."""

import os

import harness
from harness import http_request as req

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))


def to_cluster(cluster="origin", timeout="5s", idle=None):
    cfg = {"@type": "type.googleapis.com/sluice.test.plugin.ToCluster", "cluster": cluster,
           "timeout": timeout}
    if idle:
        cfg["idleTimeout"] = idle
    return {"plugin": {"filter": "to_cluster", "plugin": "test_filters", "typedConfig": cfg}}


class ProxyTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)

    def start(self, route=None, hcm=None, clusters=None):
        listener = harness.http_listener("web", filters=[route or to_cluster()], hcm=hcm)
        cfg = harness.http_config([listener], bootstrap_extra={"pluginDirs": [PLUGIN_DIR]})
        cfg["clusters"] = clusters or [{
            "name": "origin", "connectTimeout": "2s",
            "endpoints": [{"address": {"address": "127.0.0.1", "port": self.origin.addr[1]}}]}]
        return self.start_sluice(cfg, concurrency=1)

    def client(self, s):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        return c

    def test_requests_are_proxied_over_reused_keep_alive_connections(self):
        s = self.start(hcm={"via": "1.1 sluice"})
        for i in range(3):
            c = self.client(s)
            for j in range(10):
                c.send(req("GET", "/p/%d/%d" % (i, j), headers=[("X-Forwarded-For", "10.0.0.1")]))
                r = c.read_response()
                self.assertEqual(200, r.status, r.raw)
                self.assertIn(b"GET /p/%d/%d " % (i, j), r.body)
                self.assertIn(b"xff=10.0.0.1, 127.0.0.1", r.body)
                self.assertIn(b"xfp=http", r.body)
                self.assertIn(b"via=1.1 sluice", r.body)
                self.assertEqual("yes", r.get("x-origin"))
                self.assertEqual("origin", r.get("x-routed-to"))
                self.assertEqual("1.1 sluice", r.get("via"))
        # 30 requests, one at a time, over one upstream connection.
        self.assertEqual(1, self.origin.connections)
        st = s.wait_stats(lambda st: harness.stat(st, "cluster.origin.upstream_rq_total") == 30,
                          "30 upstream requests")
        self.assertEqual(29, harness.stat(st, "cluster.origin.upstream_rq_reused"))
        self.assertEqual(1, harness.stat(st, "cluster.origin.upstream_cx_total"))

    def pool_clusters(self, **pool):
        return [{"name": "origin", "connectTimeout": "2s", "httpPool": pool,
                 "endpoints": [{"address": {"address": "127.0.0.1",
                                            "port": self.origin.addr[1]}}]}]

    def test_pool_limits_requests_per_connection_and_closes_idle_ones(self):
        s = self.start(clusters=self.pool_clusters(maxRequestsPerConnection=2,
                                                   idleTimeout="0.2s"))
        c = self.client(s)
        for i in range(6):
            c.send(req("GET", "/r%d" % i))
            self.assertEqual(200, c.read_response().status)
        # Two requests per connection: three connections for six requests, one at a time (each
        # closed after its second request).
        self.assertEqual(3, self.origin.connections)
        # A seventh opens a fourth, which then idles past the timeout and is closed; the next
        # request needs a fifth.
        c.send(req("GET", "/r6"))
        self.assertEqual(200, c.read_response().status)
        self.assertEqual(4, self.origin.connections)
        s.wait_stats(lambda st: harness.stat(st, "cluster.origin.upstream_cx_idle_timeout") == 1,
                     "the idle upstream connection closed")
        c.send(req("GET", "/after-idle"))
        self.assertEqual(200, c.read_response().status)
        self.assertEqual(5, self.origin.connections)

    def test_idle_connections_beyond_the_cap_close(self):
        s = self.start(route=to_cluster(timeout="10s"),
                       clusters=self.pool_clusters(maxIdleConnections=1))
        # Three requests at once: three upstream connections.
        clients = [self.client(s) for _ in range(3)]
        for i, c in enumerate(clients):
            c.send(req("GET", "/slow/%d" % i))
        s.wait_stats(lambda st: harness.stat(st, "cluster.origin.upstream_cx_total") == 3,
                     "three upstream connections")
        for c in clients:
            self.assertEqual(200, c.read_response(timeout=30).status)
        # As they go idle, only one is kept.
        s.wait_stats(lambda st: st["cluster.origin.upstream_cx_active"] == 1,
                     "one idle upstream connection kept")
        clients[0].send(req("GET", "/again"))
        self.assertEqual(200, clients[0].read_response().status)
        self.assertEqual(3, self.origin.connections)  # the kept one was reused

    def test_pending_requests_beyond_the_bound_get_503(self):
        s = self.start(route=to_cluster(timeout="10s"),
                       clusters=self.pool_clusters(maxConnections=1, maxPendingRequests=1))
        # One request occupies the only connection (slow), one waits, the third overflows.
        first = self.client(s)
        first.send(req("GET", "/slow"))
        s.wait_stats(lambda st: harness.stat(st, "cluster.origin.upstream_rq_total") >= 1,
                     "the first request upstream")
        second = self.client(s)
        second.send(req("GET", "/second"))
        s.wait_stats(lambda st: harness.stat(st, "cluster.origin.upstream_rq_total") >= 2,
                     "the second request waiting")
        third = self.client(s)
        third.send(req("GET", "/third"))
        r = third.read_response()
        self.assertEqual(503, r.status, r.raw)
        self.assertIn(b"upstream_overflow", r.body)
        self.assertEqual(200, first.read_response(timeout=30).status)
        self.assertEqual(200, second.read_response(timeout=30).status)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "cluster.origin.upstream_rq_pending_overflow"))
        self.assertEqual(1, harness.stat(st, "cluster.origin.upstream_cx_total"))

    def test_forwarded_for_policies(self):
        for policy, expected in (("APPEND", b"xff=10.0.0.1, 10.0.0.2, 127.0.0.1"),
                                 ("REPLACE", b"xff=127.0.0.1 "),
                                 # Untouched: the origin reads the first of the two fields.
                                 ("KEEP", b"xff=10.0.0.1 ")):
            s = self.start(hcm={"forwardedFor": policy})
            c = self.client(s)
            c.send(req("GET", "/", headers=[("X-Forwarded-For", "10.0.0.1"),
                                            ("X-Forwarded-For", "10.0.0.2")]))
            r = c.read_response()
            self.assertIn(expected, r.body, policy)
            self.stop_sluice(s)

    def test_request_and_response_bodies_stream_both_ways(self):
        s = self.start()
        c = self.client(s)
        c.send(req("POST", "/post", body=b"hello upstream"))
        r = c.read_response()
        self.assertIn(b"body=14:hello upstream", r.body)
        c.send(req("POST", "/chunked", headers=[("Transfer-Encoding", "chunked")],
                   body=harness.chunked(b"abc", b"defgh")))
        r = c.read_response()
        self.assertIn(b"body=8:abcdefgh", r.body)
        c.send(req("GET", "/big/%d" % (3 * 1024 * 1024)))
        r = c.read_response()
        self.assertEqual(200, r.status)
        self.assertEqual(3 * 1024 * 1024, len(r.body))

    def test_100_mib_each_way_with_bounded_proxy_memory(self):
        s = self.start()
        rss_before = s.rss_bytes()
        total = 100 * harness.MiB
        # Buffers are 1 MiB per side; the rest is slack for the heap. Under ASan the allocator's
        # quarantine holds freed memory, so RSS says nothing there: the counters still prove
        # the pauses.
        bound = (1 << 62) if harness.sanitized() else 32 * harness.MiB

        # Upload to an upstream that does not read yet: sluice must stop reading the client.
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        head = req("POST", "/sink", headers=[("Content-Length", str(total))])
        sent = [0]

        def upload():
            chunk = b"u" * (1 << 20)
            try:
                c.sock.sendall(head)
                while sent[0] < total:
                    c.sock.sendall(chunk)
                    sent[0] += len(chunk)
            except OSError:
                pass

        t = harness.threading.Thread(target=upload, daemon=True)
        t.start()
        s.wait_stats(lambda st: harness.stat(
            st, "http.web.downstream_flow_control_paused_reading_total") >= 1,
            "reading the client paused")
        self.assertLess(s.rss_bytes() - rss_before, bound)
        self.assertLess(sent[0], total)  # the client is held back, not buffered whole
        self.origin.sink_gate.set()
        t.join(120)
        r = c.read_response(timeout=120)
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual(b"received %d" % total, r.body)

        # Download to a client that does not read yet: sluice must stop reading the upstream.
        d = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(d.close)
        d.send(req("GET", "/big/%d" % total))
        s.wait_stats(lambda st: harness.stat(
            st, "http.web.upstream_flow_control_paused_reading_total") >= 1,
            "reading the upstream paused")
        self.assertLess(s.rss_bytes() - rss_before, bound)
        # Now read it all: the chunked body (100 MiB of payload plus chunk framing), counted,
        # not kept.
        d.sock.settimeout(60)
        buf = b""
        while b"\r\n\r\n" not in buf:
            more = d.sock.recv(65536)
            self.assertTrue(more, "connection closed before the head")
            buf += more
        self.assertTrue(buf.startswith(b"HTTP/1.1 200"), buf[:100])
        tail = buf[buf.index(b"\r\n\r\n") + 4:]
        received = len(tail)
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            more = d.sock.recv(1 << 20)
            self.assertTrue(more, "connection closed after %d body bytes" % received)
            received += len(more)
            tail = (tail + more)[-16:]
        self.assertGreater(received, total)  # payload and framing
        self.assertLess(s.rss_bytes() - rss_before, bound)

    def test_failures_map_to_502_503_504(self):
        unused = harness.unused_port()
        clusters = [
            {"name": "origin", "connectTimeout": "2s",
             "endpoints": [{"address": {"address": "127.0.0.1", "port": self.origin.addr[1]}}]},
            {"name": "down", "connectTimeout": "2s",
             "endpoints": [{"address": {"address": "127.0.0.1", "port": unused}}]},
        ]
        s = self.start(route=to_cluster(timeout="0.3s"), clusters=clusters)

        def get(path, headers=()):
            c = self.client(s)
            c.send(req("GET", path, headers=headers))
            return c.read_response()

        r = get("/", [("x-cluster", "down")])
        self.assertEqual(503, r.status, r.raw)
        self.assertIn(b"upstream_connect_failure", r.body)
        r = get("/slow")
        self.assertEqual(504, r.status, r.raw)
        self.assertIn(b"upstream_request_timeout", r.body)
        r = get("/reset")
        self.assertEqual(502, r.status, r.raw)
        self.assertIn(b"upstream_reset", r.body)
        r = get("/bad")
        self.assertEqual(502, r.status, r.raw)
        self.assertIn(b"upstream_protocol_error", r.body)
        r = get("/", [("x-cluster", "nope")])
        self.assertEqual(404, r.status)
        ok = get("/fine")
        self.assertEqual(200, ok.status)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "cluster.down.upstream_cx_connect_fail"))
        self.assertIsNone(s.poll())


if __name__ == "__main__":
    harness.main()
