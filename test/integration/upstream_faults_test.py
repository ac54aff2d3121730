"""Upstream faults and timeouts against a scripted origin (raw sockets): the time to the response
head is bounded apart from the time between bytes, so a long healthy download finishes while a
slow or stalled origin is cut; a total timeout applies only when configured; a broken chunked
body that arrives with the head is a 502, not an empty reply."""

import threading
import time

import harness
from harness import http_request as req

TYPE = "type.googleapis.com/sluice.extensions.router.v1.Router"


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
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
        path = buf.split(b" ", 2)[1].decode()
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
        router = {"@type": TYPE, "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
            {"name": "r", "route": dict({"cluster": "o"}, **route)}]}]}
        cfg = harness.http_config([harness.http_listener(
            "web", filters=[{"plugin": {"filter": "router", "typedConfig": router}}])])
        cfg["clusters"] = [{"name": "o", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": self.origin.port}}]}]
        return self.start_sluice(cfg, concurrency=1)

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


if __name__ == "__main__":
    harness.main()
