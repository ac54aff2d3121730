"""Proxying HTTP/1.1 to real upstream servers over loopback: a filter makes the terminal
decision (the test plugin "to_cluster", on the public ABI), the core takes a pooled keep-alive
connection and streams both ways. Proves keep-alive reuse by the upstream's own connection
count, request and response bodies (counted and chunked), proxy fields, and the mapping of
failures: connect failure 503, timeout 504, upstream reset 502, invalid response 502."""

import http.server
import os
import socket
import socketserver
import threading

import harness
from harness import http_request as req

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))


class Origin:
    """A keep-alive HTTP/1.1 origin (Python's http.server, one thread per connection) that
    counts the connections it accepted and answers with what it saw."""

    def __init__(self):
        self.connections = 0
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with origin.lock:
                    origin.connections += 1

            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self.read_chunked()
                if self.path.startswith("/slow"):
                    threading.Event().wait(2.0)
                if self.path.startswith("/reset"):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if self.path.startswith("/bad"):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n")
                    self.close_connection = True
                    return
                out = b"%s %s xff=%s xfp=%s via=%s body=%d:%s" % (
                    self.command.encode(), self.path.encode(),
                    (self.headers.get("X-Forwarded-For") or "").encode(),
                    (self.headers.get("X-Forwarded-Proto") or "").encode(),
                    (self.headers.get("Via") or "").encode(), len(body), body[:16])
                if self.path.startswith("/big"):
                    size = int(self.path.split("/")[2])
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"x" * 65536
                    sent = 0
                    while sent < size:
                        n = min(len(chunk), size - sent)
                        self.wfile.write(b"%x\r\n%s\r\n" % (n, chunk[:n]))
                        sent += n
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-Origin", "yes")
                self.end_headers()
                self.wfile.write(out)

            def read_chunked(self):
                data = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_HEAD = answer

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.addr = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def to_cluster(cluster="origin", timeout="5s", idle=None):
    cfg = {"@type": "type.googleapis.com/sluice.test.plugin.ToCluster", "cluster": cluster,
           "timeout": timeout}
    if idle:
        cfg["idleTimeout"] = idle
    return {"plugin": {"filter": "to_cluster", "plugin": "test_filters", "typedConfig": cfg}}


class ProxyTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = Origin()
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
