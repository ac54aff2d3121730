"""body_rewrite against the real binary and a real origin over loopback: response bodies
rewritten whole whatever their framing (Content-Length or chunked, one chunk or many) and sent
with the new Content-Length; request bodies rewritten before they reach the origin; max_bytes
(announced or found while buffering) lets a body pass unchanged; content_types; the example
configs/body_rewrite.yaml; config errors."""

import os
import socket

import harness
from harness import http_request as req

TYPE = "type.googleapis.com/sluice.extensions.body_rewrite.v1.BodyRewrite"


class Origin(harness.UpstreamServer):
    """Keep-alive raw origin. GET /page/<cl|chunked>/<type>/<repeats>: "<a href=http://x/>"
    repeated, as text/<type>, in chunks of 100 bytes (or 100-byte sends with Content-Length).
    Anything else: 200 with the request body it received (Content-Length bodies only)."""

    def handle(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            target = lines[0].split(b" ")[1].decode()
            length = 0
            for line in lines[1:]:
                n, v = line.split(b":", 1)
                if n.strip().lower() == b"content-length":
                    length = int(v)
            while len(buf) < length:
                buf += conn.recv(65536)
            body, buf = buf[:length], buf[length:]
            if target.startswith("/page/"):
                _, _, framing, kind, repeats = target.split("/")
                page = page_body(int(repeats))
                ctype = b"Content-Type: text/%s\r\n" % kind.encode()
                if framing == "chunked":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n" + ctype +
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    out = b"".join(b"%x\r\n%s\r\n" % (len(page[i:i + 100]), page[i:i + 100])
                                   for i in range(0, len(page), 100))
                    conn.sendall(out + b"0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n" + ctype +
                                 b"Content-Length: %d\r\n\r\n" % len(page))
                    for i in range(0, len(page), 100):
                        conn.sendall(page[i:i + 100])
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def page_body(repeats):
    return b"<a href=http://x/>" * repeats


def rewrite(request=None, response=None):
    cfg = {"@type": TYPE}
    if request is not None:
        cfg["request"] = request
    if response is not None:
        cfg["response"] = response
    return {"plugin": {"filter": "body_rewrite", "typedConfig": cfg}}


class BodyRewriteTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = self.server(Origin)

    def proxy(self, rewrite_filter):
        cfg = harness.routed_config(self.origin.port)
        cfg["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"].insert(
            0, rewrite_filter)
        return self.start_sluice(cfg)

    def test_response_bodies_rewritten_whole_any_framing(self):
        s = self.proxy(rewrite(response={"replace": [{"find": "http://", "replace": "https://"}],
                                         "uppercase": True, "maxBytes": 100000}))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        for framing in ("cl", "chunked"):
            for repeats in (1, 4000):  # one chunk; 72 KB in 720 chunks
                with self.subTest(framing=framing, repeats=repeats):
                    c.send(req("GET", "/page/%s/html/%d" % (framing, repeats)))
                    r = c.read_response()
                    self.assertEqual(200, r.status, r.raw[:200])
                    self.assertEqual(b"<A HREF=HTTPS://X/>" * repeats, r.body)
                    self.assertEqual(str(len(r.body)), r.get("content-length"))
                    self.assertIsNone(r.get("transfer-encoding"))
            # Over max_bytes (announced, or found while buffering): unchanged, not buffered whole.
            with self.subTest(framing=framing, over="max_bytes"):
                c.send(req("GET", "/page/%s/html/6000" % framing))
                r = c.read_response()
                self.assertEqual(200, r.status, r.raw[:200])
                self.assertEqual(page_body(6000), r.body)
        st = s.wait_stats(lambda st: harness.stat(st, "plugin.body_rewrite.rewritten") == 4 and
                          harness.stat(st, "plugin.body_rewrite.passed_too_large") == 2,
                          "4 bodies rewritten, 2 passed over max_bytes")
        self.assertEqual(0, harness.stat(st, "http.web.downstream_rs_framing_error"))
        self.assertEqual(0, harness.stat(st, "plugin.body_rewrite.rejected_calls"))

    def test_request_bodies_and_content_types(self):
        s = self.proxy(rewrite(request={"replace": [{"find": "secret", "replace": "[redacted]"},
                                                    {"find": "[redacted]!", "replace": "ok"}]},
                               response={"uppercase": True, "contentTypes": ["text/html"]}))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("POST", "/echo", body=b"a secret and a secret!"))
        r = c.read_response()
        # Replacements apply in order; the echo is not text/html, so it is not upper-cased.
        self.assertEqual(b"a [redacted] and a ok", r.body)
        body = b"secret," * 20000  # 140 KB, sent chunked in 1000-byte chunks
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        c.send(req("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                   body=harness.chunked(*chunks)))
        r = c.read_response()
        self.assertEqual(b"[redacted]," * 20000, r.body)
        c.send(req("GET", "/page/chunked/plain/3"))
        self.assertEqual(page_body(3), c.read_response().body)
        c.send(req("GET", "/page/chunked/html/3"))
        self.assertEqual(page_body(3).upper(), c.read_response().body)
        c.send(req("HEAD", "/page/cl/html/3"))
        self.assertEqual(200, c.read_response(head_request=True).status)

    def test_the_example_config(self):
        with open(os.path.join(harness.repo_root(), "configs", "body_rewrite.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 8000}", 0), ("port: 9901}", 0),
                            ("port: 8080}", self.origin.port)):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/page/chunked/html/50"))
        r = c.read_response()
        self.assertEqual(b"<a href=https://x/>" * 50, r.body)
        self.assertEqual(str(len(r.body)), r.get("content-length"))
        c.send(req("POST", "/", body=b"a secret"))
        self.assertEqual(b"a [redacted]", c.read_response().body)

    def test_config_errors(self):
        bad = harness.http_config([harness.http_listener("web", filters=[
            rewrite(response={"replace": [{"find": "", "replace": "x"}]}),
            harness.direct_response_filter()])])
        path = harness.write_config(bad, self.tmpdir, "bad.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn("the plugin rejected its config: response.replace[0].find: must not be "
                      "empty", r.stderr)


if __name__ == "__main__":
    harness.main()
