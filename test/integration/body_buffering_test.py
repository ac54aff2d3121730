"""The SL_ACTION_STOP_AND_BUFFER contract (api/sluice/plugin/v1/sluice_plugin.h, docs/plugins.md
"Buffering a body") against a real origin over loopback: a filter that holds the head, buffers,
and at the end replaces the body and sets Content-Length sees the whole body exactly once at the
end, for requests and responses, Content-Length and chunked framing, one chunk or thousands, any
size up to the buffer limit; over it a request is answered 413 and a response 500 (counted). The
filter is test/plugin/plugins/whole_body.c (the raw C ABI) and, through the C++ SDK, the
test_filters "uppercase" filter."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))
LIMIT = 1024 * 1024  # the connection manager's default buffer_limit_bytes


def fnv(data):
    h = 1469598103934665603
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def pattern(size):
    base = bytes(range(33, 127))
    return (base * (size // len(base) + 1))[:size]


def summary(body):
    """What whole_body.c makes of a body it saw whole, at its end, once (calls not compared)."""
    return b"whole %d %016x " % (len(body), fnv(body))


class RawOrigin(harness.UpstreamServer):
    """A keep-alive HTTP/1.1 origin on raw sockets. GET /resp/<cl|chunked>/<size>/<piece>: a
    body of `size` pattern bytes sent in pieces of `piece` bytes (chunked: one chunk each; with
    Content-Length: one send each, TCP_NODELAY). Anything else: 200 "got <len> <fnv>" of the
    request body it received (Content-Length or chunked)."""

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
            fields = {}
            for line in lines[1:]:
                n, v = line.split(b":", 1)
                fields[n.strip().lower()] = v.strip()
            body = b""
            if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
                while True:
                    while b"\r\n" not in buf:
                        buf += conn.recv(65536)
                    size_line, buf = buf.split(b"\r\n", 1)
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                            buf += conn.recv(65536)
                        buf = buf[2:] if buf.startswith(b"\r\n") else buf.split(b"\r\n\r\n", 1)[1]
                        break
                    while len(buf) < size + 2:
                        buf += conn.recv(65536)
                    body += buf[:size]
                    buf = buf[size + 2:]
            else:
                length = int(fields.get(b"content-length", b"0"))
                while len(buf) < length:
                    d = conn.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:length], buf[length:]
            if target.startswith("/cut/"):
                # Half the body its head announces, then the connection closes.
                size = int(target.split("/")[2])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * size))
                conn.sendall(pattern(size))
                return
            if target.startswith("/stall/"):
                # Half the body its head announces, then nothing until the proxy gives up.
                size = int(target.split("/")[2])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * size))
                conn.sendall(pattern(size))
                while conn.recv(65536):
                    pass
                return
            if target.startswith("/resp/"):
                _, _, framing, size, piece = target.split("/")
                self.send_body(conn, framing, pattern(int(size)), int(piece))
            else:
                out = b"got %d %016x" % (len(body), fnv(body))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))

    @staticmethod
    def send_body(conn, framing, body, piece):
        if framing in ("chunked", "trailers"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            batch = []
            for i in range(0, len(body), piece):
                c = body[i:i + piece]
                batch.append(b"%x\r\n%s\r\n" % (len(c), c))
                if len(batch) >= 64:  # many chunks per send: thousands of tiny chunks stay fast
                    conn.sendall(b"".join(batch))
                    batch = []
            last = b"0\r\nx-t: 1\r\n\r\n" if framing == "trailers" else b"0\r\n\r\n"
            conn.sendall(b"".join(batch) + last)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), piece):
                conn.sendall(body[i:i + piece])


def origin_got_summary(answer, body):
    """Whether the origin's "got <len> <fnv>" is of whole_body's summary of `body` (its call
    count is up to how the proxy happened to read the body)."""
    for calls in range(0, len(body) + 2):
        text = summary(body) + b"calls=%d grew=1 ends=1\n" % calls
        if answer == b"got %d %016x" % (len(text), fnv(text)):
            return True
    return False


def chunked_pieces(body, piece):
    return harness.chunked(*[body[i:i + piece] for i in range(0, len(body), piece)])


class BodyBufferingTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = self.server(RawOrigin)

    def proxy(self, first):
        cfg = harness.routed_config(self.origin.port)
        filters = cfg["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"]
        filters.insert(0, {"plugin": {"filter": first, "plugin": "test_filters"
                                      if first == "uppercase" else first}})
        cfg["pluginDirs"] = [PLUGIN_DIR]
        return self.start_sluice(cfg)

    def exchange(self, c, request):
        c.send(request)
        return c.read_response(timeout=30)

    def test_response_body_seen_whole_once_at_the_end(self):
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        cases = [(size, size or 1) for size in (1, 1000, 65535, 65536, 65537, 200 * 1024,
                                                 LIMIT - 1, LIMIT)]
        cases += [(200 * 1024, 1000), (65537, 1), (5000, 1), (LIMIT, 16 * 1024)]
        for framing in ("cl", "chunked"):
            for size, piece in cases:
                with self.subTest(framing=framing, size=size, piece=piece):
                    r = self.exchange(c, req("GET", "/resp/%s/%d/%d" % (framing, size, piece),
                                             headers=[("x-whole-body", "response")]))
                    self.assertEqual(200, r.status, r.raw[:300])
                    self.assertTrue(r.body.startswith(summary(pattern(size))), r.body)
                    self.assertIn(b" grew=1 ends=1\n", r.body)
                    # The new head frames the new body, whatever the origin's framing was.
                    self.assertEqual(str(len(r.body)), r.get("content-length"))
                    self.assertIsNone(r.get("transfer-encoding"))
        # A chunked body with no data at all: the one call is the end, with 0 bytes.
        r = self.exchange(c, req("GET", "/resp/chunked/0/1", headers=[("x-whole-body", "response")]))
        self.assertTrue(r.body.startswith(summary(b"")), r.body)
        self.assertIn(b"calls=1 grew=1 ends=1\n", r.body)
        # Trailers follow: the trailers hook is the end; the new body stays chunked, and the
        # trailers go on after it.
        r = self.exchange(c, req("GET", "/resp/trailers/70000/1000",
                                 headers=[("x-whole-body", "response")]))
        self.assertTrue(r.body.startswith(summary(pattern(70000))), r.body)
        self.assertIsNone(r.get("content-length"))
        self.assertEqual("chunked", r.get("transfer-encoding"))
        self.assertIn(b"\r\nx-t: 1\r\n", r.raw)
        # An empty Content-Length body ends with the head: nothing to buffer, nothing changed.
        r = self.exchange(c, req("GET", "/resp/cl/0/1", headers=[("x-whole-body", "response")]))
        self.assertEqual((200, b"", "0"), (r.status, r.body, r.get("content-length")))
        st = s.stats()
        self.assertEqual(0, harness.stat(st, "http.web.downstream_rs_framing_error"))
        self.assertEqual(0, harness.stat(st, "plugin.whole_body.rejected_calls"))

    def test_request_body_seen_whole_once_at_the_end(self):
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        for size in (1, 1000, 65535, 65536, 65537, 200 * 1024, LIMIT - 1, LIMIT):
            body = pattern(size)
            for framing, piece in (("cl", 0), ("chunked", size), ("chunked", 997)):
                if framing == "cl":
                    request = req("POST", "/echo", headers=[("x-whole-body", "request")],
                                  body=body)
                else:
                    request = req("POST", "/echo", headers=[("x-whole-body", "request"),
                                                            ("Transfer-Encoding", "chunked")],
                                  body=chunked_pieces(body, piece))
                with self.subTest(size=size, framing=framing, piece=piece):
                    r = self.exchange(c, request)
                    self.assertEqual(200, r.status, r.raw[:300])
                    # The origin got the summary (with its own Content-Length), not the body.
                    expected = summary(body)
                    got_len = int(r.body.split(b" ")[1])
                    self.assertGreater(got_len, len(expected), r.body)
        # Thousands of 1-byte chunks.
        body = pattern(3000)
        r = self.exchange(c, req("POST", "/echo", headers=[
            ("x-whole-body", "request"), ("Transfer-Encoding", "chunked")],
            body=chunked_pieces(body, 1)))
        self.assertEqual(200, r.status, r.raw[:300])
        st = s.stats()
        self.assertEqual(0, harness.stat(st, "plugin.whole_body.rejected_calls"))

    def test_the_origin_receives_exactly_the_new_body(self):
        # whole_body's request summary is deterministic but for its call count: rebuild it from
        # what the origin answers (the length and hash of what it received) against one sent.
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        body = pattern(70000)
        r = self.exchange(c, req("POST", "/echo", headers=[("x-whole-body", "request"),
                                                           ("Transfer-Encoding", "chunked")],
                                 body=chunked_pieces(body, 1000)))
        self.assertTrue(origin_got_summary(r.body, body), r.body)
        r = self.exchange(c, req("POST", "/echo", headers=[("x-whole-body", "request")],
                                 body=body))
        self.assertTrue(origin_got_summary(r.body, body), r.body)
        # Trailers follow the body: the body hook never sees end_stream; the trailers hook is
        # the end, and reads (and replaces) the whole body there.
        r = self.exchange(c, req("POST", "/echo", headers=[("x-whole-body", "request"),
                                                           ("Transfer-Encoding", "chunked")],
                                 body=harness.chunked(body[:30000], body[30000:],
                                                      trailers=[(b"x-t", b"1")])))
        self.assertTrue(origin_got_summary(r.body, body), r.body)

    def test_response_over_the_limit_after_its_head_went_is_cut(self):
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        # Under the limit: buffered, then passed on unchanged.
        r = self.exchange(c, req("GET", "/resp/chunked/100000/1000",
                                 headers=[("x-whole-body", "response-late")]))
        self.assertEqual((200, pattern(100000)), (r.status, r.body))
        c.send(req("GET", "/resp/cl/%d/65536" % (LIMIT + 1),
                   headers=[("x-whole-body", "response-late")]))
        raw, _ = harness.recv_until_closed(c.sock, limit=2 * LIMIT)
        # The head went out before the body crossed the limit (if the close let it through):
        # the client sees a 200 whose body never comes, and the connection closed.
        self.assertTrue(raw == b"" or raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200])
        self.assertNotIn(pattern(100), raw)  # nothing of the body: it was held, then dropped
        s.wait_stats(lambda st: harness.stat(st, "http.web.downstream_rs_too_large") == 1,
                     "the response over the limit counted")

    def test_an_origin_that_fails_while_a_filter_holds_the_head_gets_a_502(self):
        # The client has nothing yet (whole_body holds the head while it buffers): it gets the
        # upstream error as a response of its own, not a cut connection.
        s = self.proxy("whole_body")
        for size in (1000, 200 * 1024):
            with self.subTest(size=size):
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                r = self.exchange(c, req("GET", "/cut/%d" % size,
                                         headers=[("x-whole-body", "response")]))
                self.assertEqual(502, r.status, r.raw[:300])
                self.assertIn(r.body, (b"upstream_reset\n", b"upstream_protocol_error\n"))

    def test_a_stream_timeout_while_a_filter_holds_the_head_gets_a_504(self):
        cfg = harness.routed_config(self.origin.port)
        hcm = cfg["listeners"][0]["filters"][0]["httpConnectionManager"]
        hcm["streamIdleTimeout"] = "0.3s"
        hcm["httpFilters"].insert(0, {"plugin": {"filter": "whole_body", "plugin": "whole_body"}})
        cfg["pluginDirs"] = [PLUGIN_DIR]
        s = self.start_sluice(cfg)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        r = self.exchange(c, req("GET", "/stall/5000", headers=[("x-whole-body", "response")]))
        self.assertEqual(504, r.status, r.raw[:300])

    def test_stop_from_a_body_hook_keeps_what_is_left(self):
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        body = pattern(50000)
        r = self.exchange(c, req("POST", "/echo", headers=[("x-whole-body", "request-drop-first"),
                                                           ("Transfer-Encoding", "chunked")],
                                 body=chunked_pieces(body, 1000)))
        self.assertEqual(b"got %d %016x" % (len(body) - 1, fnv(body[1:])), r.body)

    def test_over_the_limit(self):
        s = self.proxy("whole_body")
        for framing in ("cl", "chunked"):
            with self.subTest(framing=framing, direction="response"):
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                r = self.exchange(c, req("GET", "/resp/%s/%d/65536" % (framing, LIMIT + 1),
                                         headers=[("x-whole-body", "response")]))
                # The head was held: nothing reached the client, so it gets a 500 of its own.
                self.assertEqual(500, r.status, r.raw[:300])
                # The connection goes on (keep-alive state is per response).
                r = self.exchange(c, req("GET", "/resp/%s/100/7" % framing,
                                         headers=[("x-whole-body", "response")]))
                self.assertEqual(200, r.status, r.raw[:300])
                self.assertTrue(r.body.startswith(summary(pattern(100))), r.body)
                r = self.exchange(c, req("GET", "/resp/%s/100/7" % framing))
                self.assertEqual(pattern(100), r.body)
        for framing in ("cl", "chunked"):
            with self.subTest(framing=framing, direction="request"):
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                body = pattern(LIMIT + 1)
                headers = [("x-whole-body", "request")]
                if framing == "chunked":
                    headers.append(("Transfer-Encoding", "chunked"))
                    body = chunked_pieces(body, 65536)
                c.send(req("POST", "/echo", headers=headers, body=body))
                r = c.read_response(timeout=30)
                self.assertEqual(413, r.status, r.raw[:300])
        s.wait_stats(lambda st: harness.stat(st, "http.web.downstream_rs_too_large") == 2 and
                     harness.stat(st, "http.web.downstream_rq_too_large") == 2,
                     "two responses and two requests over the limit counted")

    def test_body_outside_a_body_hook_is_what_the_filter_holds(self):
        s = self.proxy("whole_body")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        r = self.exchange(c, req("GET", "/resp/cl/100/100", headers=[("x-whole-body", "probe")]))
        # Holding no body, the filter can change none (SL_ERR_STATE), and nothing leaks in.
        self.assertEqual(("-3", "-3"), (r.get("x-append-request"), r.get("x-append-response")))
        self.assertEqual(pattern(100), r.body)

    def test_two_buffering_filters_in_a_chain(self):
        cfg = harness.routed_config(self.origin.port)
        filters = cfg["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"]
        # Responses run in reverse: uppercase buffers and rewrites first, whole_body sees its
        # result whole.
        filters[0:0] = [{"plugin": {"filter": "whole_body", "plugin": "whole_body"}},
                        {"plugin": {"filter": "uppercase", "plugin": "test_filters"}}]
        cfg["pluginDirs"] = [PLUGIN_DIR]
        s = self.start_sluice(cfg)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        for framing in ("cl", "chunked"):
            with self.subTest(framing=framing):
                r = self.exchange(c, req("GET", "/resp/%s/100000/999" % framing,
                                         headers=[("x-whole-body", "response")]))
                self.assertEqual(200, r.status, r.raw[:300])
                self.assertTrue(r.body.startswith(summary(pattern(100000).upper() +
                                                          b"(rewritten)\n")), r.body)
                self.assertEqual(str(len(r.body)), r.get("content-length"))

    def test_sdk_filter_rewrites_responses_from_a_real_origin(self):
        s = self.proxy("uppercase")
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        for framing in ("cl", "chunked"):
            for size, piece in ((1, 1), (65537, 4096), (65537, 1), (200 * 1024, 1000)):
                with self.subTest(framing=framing, size=size, piece=piece):
                    r = self.exchange(c, req("GET", "/resp/%s/%d/%d" % (framing, size, piece)))
                    self.assertEqual(200, r.status, r.raw[:300])
                    self.assertEqual(pattern(size).upper() + b"(rewritten)\n", r.body)
                    self.assertEqual(str(len(r.body)), r.get("content-length"))
        # Trailers end the body and "uppercase" has no trailers hook of its own (the SDK's
        # default returns SL_ACTION_DEFAULT): what it buffered goes on unchanged, head included.
        r = self.exchange(c, req("GET", "/resp/trailers/20000/1000"))
        self.assertEqual((200, pattern(20000)), (r.status, r.body))
        self.assertEqual(0, harness.stat(s.stats(), "http.web.downstream_rs_framing_error"))


if __name__ == "__main__":
    harness.main()
