"""Upstream faults and timeouts against a scripted origin (raw sockets): the time to the response
head is bounded apart from the time between bytes, so a long healthy download finishes while a
slow or stalled origin is cut; a total timeout applies only when configured; a broken chunked
body that arrives with the head is a 502, not an empty reply."""

import threading
import time

import harness
from harness import http_request as req


class ScriptedOrigin(harness.UpstreamServer):
    """Reads one request head per connection and acts on its path:
    /trickle/N: a chunked body of N chunks, one every 0.2 s (a slow, healthy download)
    /late: the head only once `gate` is set (an origin slow to answer)
    /stall: the head and one chunk, then nothing until `gate` is set
    /garbage: the head and a garbage chunk-size line in one write
    anything else: 200 "ok"."""

    def __init__(self):
        self.gate = threading.Event()
        super().__init__()

    def handle(self, conn):
        head, _ = harness.recv_head(conn)
        if head is None:
            return
        path = head.split(b" ", 2)[1].decode()
        chunked_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        if path.startswith("/trickle/"):
            conn.sendall(chunked_head)
            for i in range(int(path.split("/")[2])):
                time.sleep(0.2)  # the origin's pace: what the test is about
                conn.sendall(b"6\r\nchunk%d\r\n" % (i % 10))
            conn.sendall(b"0\r\n\r\n")
        elif path.startswith("/late"):
            self.gate.wait(harness.IO_TIMEOUT)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        elif path.startswith("/stall"):
            conn.sendall(chunked_head + b"5\r\nfirst\r\n")
            self.gate.wait(harness.IO_TIMEOUT)
        elif path.startswith("/garbage"):
            conn.sendall(chunked_head + b"zz-not-hex\r\nxx\r\n0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # Wait for the proxy to close (keeps the thread bounded by its socket timeout).
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


class UpstreamTimeoutsTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = ScriptedOrigin()
        self.addCleanup(self.origin.close)
        self.addCleanup(self.origin.gate.set)

    def start(self, **route):
        return self.start_sluice(harness.routed_config(self.origin.port, route=route),
                                 concurrency=1)

    def get(self, s, path):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", path))
        return c

    def test_a_long_healthy_download_outlives_the_headers_timeout(self):
        # 12 chunks over ~2.4 s: far past the 0.5 s allowed for the head, never 1 s silent.
        s = self.start(responseHeadersTimeout="0.5s", idleTimeout="1s")
        r = self.get(s, "/trickle/12").read_response(timeout=60)
        self.assertEqual(200, r.status)
        self.assertEqual(b"".join(b"chunk%d" % (i % 10) for i in range(12)), r.body)

    def test_the_defaults_do_not_cut_a_download(self):
        s = self.start()  # 15 s to the head, 60 s idle, no total
        r = self.get(s, "/trickle/3").read_response(timeout=60)
        self.assertEqual(b"chunk0chunk1chunk2", r.body)

    def test_an_origin_slow_to_answer_gets_504(self):
        s = self.start(responseHeadersTimeout="0.3s")
        r = self.get(s, "/late").read_response(timeout=60)
        self.assertEqual(504, r.status)
        self.assertIn(b"upstream_response_headers_timeout", r.body)

    def test_an_origin_that_stalls_mid_body_is_cut_by_the_idle_timeout(self):
        s = self.start(idleTimeout="0.3s")
        c = self.get(s, "/stall")
        data, _ = harness.recv_until_closed(c.sock, deadline_s=60)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:64])
        self.assertIn(b"first", data)
        self.assertFalse(data.endswith(b"0\r\n\r\n"), "a cut response must not look complete")
        s.wait_stats(lambda st: st["http.web.downstream_rq_active"] == 0, "the stream ended")

    def test_a_total_timeout_applies_only_when_configured(self):
        s = self.start(timeout="0.6s")
        c = self.get(s, "/trickle/12")
        data, _ = harness.recv_until_closed(c.sock, deadline_s=60)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:64])
        self.assertFalse(data.endswith(b"0\r\n\r\n"), "cut by the total timeout")

    def test_a_garbage_chunk_size_with_the_head_is_a_502(self):
        s = self.start()
        r = self.get(s, "/garbage").read_response(timeout=60)
        self.assertEqual(502, r.status, r.raw)
        self.assertIn(b"upstream_protocol_error", r.body)
        # The next request is fine.
        self.assertEqual(b"ok", self.get(s, "/fine").read_response().body)


class KeepAliveCloser(harness.UpstreamServer):
    """A keep-alive origin that closes connections at chosen requests without answering, as an
    origin's keep-alive timeout does when it fires just as a request arrives.

    close_at(connection_index, request_index) -> True to read that request and close (both
    1-based, connections in accept order). Answers others with "<method> <path> <body length>"
    and records (connection_index, method, path, body) of every request it read."""

    def __init__(self, close_at):
        self.close_at = close_at
        self.seen = []
        self.lock = threading.Lock()
        self.count = 0
        super().__init__()

    def handle(self, conn):
        with self.lock:
            self.count += 1
            index = self.count
        buf = b""
        n = 0
        while True:
            head, buf = harness.recv_head(conn, buf)
            if head is None:
                return
            lines = head.split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            n += 1
            with self.lock:
                self.seen.append((index, method.decode(), path.decode(), body))
            if self.close_at(index, n):
                return  # closed without a byte of response
            out = b"%s %s %d" % (method, path, len(body))
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
                len(out), out if method != b"HEAD" else b""))


class StaleConnectionTest(harness.SluiceTestCase):
    """A request that meets a pooled connection the origin has just closed is sent again on a new
    connection (idempotent methods, once), so the client never sees the race."""

    def start(self, origin):
        self.addCleanup(origin.close)
        return self.start_sluice(harness.routed_config(origin.port), concurrency=1)

    def request(self, client, method, path, body=b""):
        client.send(req(method, path, body=body,
                        headers=[("Content-Length", str(len(body)))] if body else ()))
        return client.read_response()

    def test_idempotent_requests_are_resent_on_a_new_connection(self):
        # Every connection answers its first request and closes at its second.
        origin = KeepAliveCloser(lambda conn, n: n == 2)
        s = self.start(origin)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        rounds = [("GET", "/a", b""), ("HEAD", "/b", b""), ("PUT", "/c", b"x" * 100000),
                  ("DELETE", "/d", b""), ("OPTIONS", "/e", b""), ("GET", "/f", b"")]
        for method, path, body in rounds:
            client_req = req(method, path, body=body)
            c.send(client_req)
            r = c.read_response(head_request=method == "HEAD")
            self.assertEqual(200, r.status, (method, r.raw[:200]))
            if method != "HEAD":
                self.assertEqual(b"%s %s %d" % (method.encode(), path.encode(), len(body)), r.body)
        # Each request after the first met a connection that closed, and went again on a new one
        # with its whole body.
        st = s.stats()
        self.assertEqual(len(rounds) - 1, st["cluster.o.upstream_rq_retry_stale_connection"])
        self.assertEqual(len(rounds), origin.count)
        put = [x for x in origin.seen if x[1] == "PUT"]
        self.assertEqual(2, len(put))
        self.assertEqual([b"x" * 100000] * 2, [x[3] for x in put])

    def test_non_idempotent_requests_are_not_resent(self):
        origin = KeepAliveCloser(lambda conn, n: n == 2)
        s = self.start(origin)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        self.assertEqual(200, self.request(c, "GET", "/first").status)
        r = self.request(c, "POST", "/pay", b"once")
        self.assertEqual(502, r.status, r.raw)
        self.assertEqual(1, len([x for x in origin.seen if x[1] == "POST"]))
        self.assertEqual(0, s.stats()["cluster.o.upstream_rq_retry_stale_connection"])

    def test_a_request_is_resent_once_only(self):
        # The first connection closes at its second request; the retry's new connection closes
        # at once too: the client gets the 502, and the origin saw the request twice, not more.
        origin = KeepAliveCloser(lambda conn, n: (conn, n) in ((1, 2), (2, 1)))
        s = self.start(origin)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        self.assertEqual(200, self.request(c, "GET", "/first").status)
        r = self.request(c, "GET", "/twice")
        self.assertEqual(502, r.status, r.raw)
        self.assertEqual(2, len([x for x in origin.seen if x[2] == "/twice"]))
        self.assertEqual(1, s.stats()["cluster.o.upstream_rq_retry_stale_connection"])


class RequestBufferingTest(harness.SluiceTestCase):
    """Slow uploads do not hold upstream connections: a body up to the route's bound is read
    whole before a connection is taken (nginx's proxy_request_buffering), so a cluster with one
    connection still serves everyone while an upload crawls."""

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin("o")
        self.addCleanup(self.origin.close)

    def start(self, hcm=None, **route):
        return self.start_sluice(harness.routed_config(
            self.origin.addr[1], route=route, hcm=hcm,
            pool={"maxConnections": 1, "maxPendingRequests": 1}), concurrency=1)

    def slow_upload(self, s, headers, first_part):
        """Starts an upload: the head and a first part of the body, then nothing (yet)."""
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("POST", "/upload", headers=headers) + first_part)
        s.wait_stats(lambda st: st["http.web.downstream_rq_total"] >= 1, "the upload started")
        return c

    def get(self, s, path):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", path))
        return c.read_response()

    def test_a_slow_upload_holds_no_upstream_connection(self):
        s = self.start()  # the default bound, 64 KiB
        for headers, first, rest, total in (
                ([("Content-Length", "1000")], b"a" * 100, b"b" * 900, 1000),
                ([("Transfer-Encoding", "chunked")], b"64\r\n" + b"c" * 100 + b"\r\n",
                 harness.chunked(b"d" * 50), 150)):
            before = s.stats()["http.web.downstream_rq_total"]
            up = harness.HttpClient.connect(s.addr("web"))
            self.addCleanup(up.close)
            up.send(req("POST", "/upload", headers=headers) + first)
            s.wait_stats(lambda st: st["http.web.downstream_rq_total"] > before,
                         "the upload started")
            # The only upstream connection is free for everyone else meanwhile.
            for i in range(3):
                self.assertEqual(200, self.get(s, "/other/%d" % i).status)
            self.assertEqual([], [r for r in self.origin.requests if r[1] == "/upload"])
            up.send(rest)
            r = up.read_response()
            self.assertEqual(200, r.status, r.raw)
            self.assertIn(b"POST /upload ", r.body)
            self.assertIn(b"body=%d:" % total, r.body)
            self.origin.requests.clear()
        self.assertEqual(2, s.stats()["cluster.o.upstream_rq_body_buffered"])

    def test_without_buffering_a_slow_upload_starves_the_cluster(self):
        # What the default prevents: the upload takes the only connection, the next request
        # waits, the one after is refused.
        s = self.start(requestBufferMaxBytes=0)
        self.slow_upload(s, [("Content-Length", "1000")], b"a" * 100)
        s.wait_stats(lambda st: harness.stat(st, "cluster.o.upstream_rq_total") == 1,
                     "the upload took the connection")
        waiting = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(waiting.close)
        waiting.send(req("GET", "/waits"))
        s.wait_stats(lambda st: harness.stat(st, "cluster.o.upstream_rq_total") == 2,
                     "the second request waits")
        r = self.get(s, "/refused")
        self.assertEqual(503, r.status)
        self.assertIn(b"upstream_overflow", r.body)

    def test_a_body_over_the_bound_streams(self):
        s = self.start(requestBufferMaxBytes=1024)
        # Announced larger: streamed from the start.
        self.slow_upload(s, [("Content-Length", "5000")], b"a" * 100)
        s.wait_stats(lambda st: harness.stat(st, "cluster.o.upstream_rq_total") == 1,
                     "the upload took a connection at once")
        st = s.stats()
        self.assertEqual(1, st["cluster.o.upstream_rq_body_buffer_overflow"])
        self.assertEqual(0, st["cluster.o.upstream_rq_body_buffered"])

    def test_a_chunked_body_that_outgrows_the_bound_streams_from_there(self):
        s = self.start(requestBufferMaxBytes=1024)
        c = self.slow_upload(s, [("Transfer-Encoding", "chunked")],
                             b"800\r\n" + b"x" * 2048 + b"\r\n")
        s.wait_stats(lambda st: harness.stat(st, "cluster.o.upstream_rq_total") == 1,
                     "past the bound: a connection is taken")
        c.send(harness.chunked(b"y" * 10))
        r = c.read_response()
        self.assertIn(b"body=2058:", r.body)
        self.assertEqual(1, s.stats()["cluster.o.upstream_rq_body_buffer_overflow"])

    def test_the_request_body_timeout_still_applies_while_buffering(self):
        s = self.start(hcm={"requestBodyTimeout": "0.3s"})
        c = self.slow_upload(s, [("Content-Length", "1000")], b"a" * 100)
        r = c.read_response()
        self.assertEqual(408, r.status)
        st = s.stats()
        self.assertEqual(1, st["http.web.downstream_rq_body_timeout"])
        self.assertEqual(0, harness.stat(st, "cluster.o.upstream_rq_total"))


if __name__ == "__main__":
    harness.main()
