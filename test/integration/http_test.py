"""HTTP/1.1 server side: real clients (curl and raw sockets) against the HTTP connection manager.

Two listeners in most tests: "web" answers every request at once with the built-in
direct_response filter ("hello\\n", x-test: 1); "sink" has no HTTP filter, so the connection
manager reads each request to its end and then answers 404 (http_connection_manager.proto): a
request body there is read and decoded in full before the answer, which is what the body, limit
and timeout tests need.
"""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

CURL_TIMEOUT = 20
# Bound for the waits on a timeout the test configured (all well below it).
TIMEOUT_WAIT = 15.0
IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                         r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


class HttpTestCase(harness.SluiceTestCase):

    def start(self, hcm=None, sink_hcm=None, web_filters=None, **kw):
        """sluice with listeners "web" (direct_response) and "sink" (no filters)."""
        listeners = [harness.http_listener("web", hcm=hcm, filters=web_filters),
                     harness.http_listener("sink", hcm=sink_hcm if sink_hcm is not None else hcm,
                                           filters=[])]
        return self.start_sluice(harness.http_config(listeners), **kw)

    def http(self, s, listener="web"):
        c = harness.HttpClient.connect(s.addr(listener))
        self.addCleanup(c.close)
        return c

    def url(self, s, listener="web", path="/"):
        host, port = s.addr(listener)
        return "http://%s:%d%s" % (host, port, path)

    def curl(self, *args, timeout=CURL_TIMEOUT):
        cmd = ["curl", "--http1.1", "-sS", "--max-time", str(timeout - 5)] + list(args)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, "%s failed (%d): %s" %
                         (" ".join(cmd), p.returncode, p.stderr.decode("utf-8", "replace")))
        return p

    def wait_counters(self, s, expected, timeout=10.0):
        """Waits until every counter in `expected` has exactly its value; returns the stats."""
        return s.wait_stats(lambda st: all(harness.stat(st, k) == v for k, v in expected.items()),
                            " and ".join("%s == %d" % kv for kv in sorted(expected.items())),
                            timeout=timeout)

    def assert_local_reply(self, resp, status, body=None, server="sluice"):
        """A reply sluice generates: Server, Date, Content-Type, Content-Length (RFC 9110)."""
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.version, "HTTP/1.1", resp)
        self.assertEqual(resp.all("server"), [server], resp)
        self.assertEqual(len(resp.all("date")), 1, resp)
        self.assertRegex(resp.get("date"), IMF_FIXDATE)
        self.assertEqual(resp.all("content-length"), [str(len(resp.body))], resp)
        self.assertEqual(resp.all("transfer-encoding"), [], resp)
        if resp.body:
            self.assertEqual(resp.all("content-type"), ["text/plain; charset=utf-8"], resp)
        if body is not None:
            self.assertEqual(resp.body, body, resp)

    def assert_hello(self, resp):
        self.assert_local_reply(resp, 200, harness.DIRECT_BODY)
        self.assertEqual(resp.all("x-test"), ["1"], resp)

    def assert_error_and_close(self, c, status, head_request=False):
        """The next response is `status` with Connection: close, and the connection closes with
        nothing after it."""
        resp = c.read_response(head_request=head_request, timeout=TIMEOUT_WAIT)
        self.assert_local_reply(resp, status)
        self.assertTrue(resp.has_token("connection", "close"),
                        "a %d that closes the connection must say Connection: close: %r" %
                        (status, resp))
        rest = c.expect_closed(TIMEOUT_WAIT)
        self.assertEqual(rest, b"", "bytes after the %d: %r" % (status, rest))
        return resp


class HttpBasicsTest(HttpTestCase):

    def test_curl_get(self):
        s = self.start()
        p = self.curl("-D", "-", self.url(s, path="/some/path?q=1"))
        resp, n = harness.parse_response(p.stdout, at_eof=True)
        self.assertEqual(p.stdout[n:], b"", "bytes after the response: %r" % p.stdout)
        self.assert_hello(resp)
        self.assertEqual(resp.reason, "OK")
        self.wait_counters(s, {"http.web.downstream_rq_total": 1,
                               "http.web.downstream_rq_2xx": 1,
                               "http.web.downstream_rq_4xx": 0,
                               "http.web.downstream_rq_active": 0,
                               "http.web.downstream_cx_http1_total": 1,
                               "http.web.downstream_rq_protocol_error": 0})
        self.stop_sluice(s)

    def test_server_name_and_direct_response_fields(self):
        # serverName is configurable; a configured Content-Type replaces the default one.
        web_filters = [harness.direct_response_filter(
            status=503, body='{"down": true}\n',
            headers=[("content-type", "application/json"), ("retry-after", "7")])]
        s = self.start(hcm={"serverName": "edge-1"}, web_filters=web_filters)
        p = self.curl("-D", "-", self.url(s))
        resp, _ = harness.parse_response(p.stdout, at_eof=True)
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(resp.all("server"), ["edge-1"], resp)
        self.assertEqual(resp.all("content-type"), ["application/json"], resp)
        self.assertEqual(resp.all("retry-after"), ["7"], resp)
        self.assertEqual(resp.body, b'{"down": true}\n')
        self.assertEqual(resp.all("content-length"), [str(len(resp.body))], resp)
        self.wait_counters(s, {"http.web.downstream_rq_5xx": 1, "http.web.downstream_rq_2xx": 0})
        self.stop_sluice(s)

    def test_curl_reuses_the_connection(self):
        s = self.start()
        p = self.curl("-v", "-D", "-", self.url(s, path="/one"), self.url(s, path="/two"))
        stderr = p.stderr.decode("utf-8", "replace")
        self.assertIn("Re-using existing connection", stderr, stderr)
        responses, rest = harness.parse_responses(p.stdout)
        self.assertEqual(rest, b"")
        self.assertEqual(len(responses), 2, p.stdout)
        for r in responses:
            self.assert_hello(r)
            self.assertFalse(r.has_token("connection", "close"), r)
        self.wait_counters(s, {"http.web.downstream_cx_http1_total": 1,
                               "http.web.downstream_rq_total": 2,
                               "http.web.downstream_rq_2xx": 2})
        self.stop_sluice(s)

    def test_raw_keep_alive(self):
        s = self.start()
        c = self.http(s)
        for i in range(3):
            c.send(req(target="/r%d" % i))
            resp = c.read_response()
            self.assert_hello(resp)
            self.assertFalse(resp.has_token("connection", "close"), resp)
        self.assertTrue(c.still_open())
        self.wait_counters(s, {"http.web.downstream_cx_http1_total": 1,
                               "http.web.downstream_rq_total": 3,
                               "listener.web.downstream_cx_active": 1})
        self.stop_sluice(s)

    def test_pipelining_in_order(self):
        # Four requests in one send; each answer must be the one for its request, in order:
        # a HEAD answer has no body, an HTTP/1.0 keep-alive answer says keep-alive, and the last
        # (Connection: close) says close and ends the connection.
        s = self.start()
        c = self.http(s)
        c.send(req(target="/1") +
               req("HEAD", "/2") +
               req(target="/3", version="HTTP/1.0", host=None,
                   headers=[("Connection", "keep-alive")]) +
               req(target="/4", headers=[("Connection", "close")]))
        responses, rest, how = c.read_until_closed(timeout=TIMEOUT_WAIT, head_requests=(1,))
        self.assertEqual(rest, b"", "unparsed bytes: %r (responses %r)" % (rest, responses))
        self.assertEqual(len(responses), 4, responses)
        self.assert_hello(responses[0])
        self.assertEqual(responses[1].status, 200)
        self.assertEqual(responses[1].all("content-length"), ["6"], responses[1])
        self.assertEqual(responses[1].body, b"")
        self.assert_hello(responses[2])
        self.assertTrue(responses[2].has_token("connection", "keep-alive"), responses[2])
        self.assert_hello(responses[3])
        self.assertTrue(responses[3].has_token("connection", "close"), responses[3])
        for r in responses[:3]:
            self.assertFalse(r.has_token("connection", "close"), r)
        self.wait_counters(s, {"http.web.downstream_rq_total": 4,
                               "http.web.downstream_cx_http1_total": 1})
        self.stop_sluice(s)

    def test_pipelining_many(self):
        n = 200
        s = self.start()
        c = self.http(s)
        data = b"".join(req(target="/%d" % i) for i in range(n - 1))
        c.send(data + req(target="/last", headers=[("Connection", "close")]))
        responses, rest, how = c.read_until_closed(timeout=TIMEOUT_WAIT)
        self.assertEqual(rest, b"")
        self.assertEqual(len(responses), n)
        for r in responses:
            self.assert_hello(r)
        self.assertTrue(responses[-1].has_token("connection", "close"))
        self.wait_counters(s, {"http.web.downstream_rq_total": n,
                               "http.web.downstream_rq_2xx": n})
        self.stop_sluice(s)

    def test_pipelined_requests_with_bodies(self):
        # "sink" reads each body to its end: a body decoded one byte too short or too long
        # would shift every request after it.
        s = self.start()
        c = self.http(s, "sink")
        c.send(req("POST", "/a", body=b"x" * 1000) +
               req("POST", "/b", headers=[("Transfer-Encoding", "chunked")],
                   body=harness.chunked(b"abc", b"y" * 3000, trailers=[(b"x-t", b"1")])) +
               req("PUT", "/c", body=b"\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n") +
               req("GET", "/d", headers=[("Connection", "close")]))
        responses, rest, how = c.read_until_closed(timeout=TIMEOUT_WAIT)
        self.assertEqual(rest, b"")
        self.assertEqual([r.status for r in responses], [404] * 4, responses)
        for r in responses:
            self.assert_local_reply(r, 404)
        self.wait_counters(s, {"http.sink.downstream_rq_total": 4,
                               "http.sink.downstream_rq_4xx": 4,
                               "http.sink.downstream_rq_protocol_error": 0})
        self.stop_sluice(s)

    def test_curl_chunked_body(self):
        s = self.start()
        path = os.path.join(self.tmpdir, "body.bin")
        with open(path, "wb") as f:
            f.write(harness.PatternStream(3).chunk(0, 200 * 1024))
        # To "web": answered.
        p = self.curl("-D", "-", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + path,
                      self.url(s))
        resp, _ = harness.parse_response(p.stdout, at_eof=True)
        self.assert_hello(resp)
        # To "sink": the whole chunked body is read (the 404 comes after its end), twice on one
        # connection, so it was decoded to its exact end.
        p = self.curl("-v", "-D", "-", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", "@" + path, self.url(s, "sink", "/1"),
                      self.url(s, "sink", "/2"))
        stderr = p.stderr.decode("utf-8", "replace")
        self.assertIn("Transfer-Encoding: chunked", stderr)
        responses, rest = harness.parse_responses(p.stdout)
        self.assertEqual([r.status for r in responses], [404, 404], p.stdout)
        self.assertIn("Re-using existing connection", stderr, stderr)
        self.wait_counters(s, {"http.sink.downstream_rq_total": 2,
                               "http.sink.downstream_rq_4xx": 2,
                               "http.sink.downstream_cx_http1_total": 1,
                               "http.sink.downstream_rq_protocol_error": 0})
        self.stop_sluice(s)

    def test_raw_chunked_body_in_pieces(self):
        # Chunk sizes in upper and lower case, an extension, trailers, and every byte of the
        # framing arriving in its own segment.
        s = self.start()
        c = self.http(s, "sink")
        body = (b"5;name=value\r\nhello\r\n" + b"1A\r\n" + b"z" * 26 + b"\r\n" +
                b"1a\r\n" + b"w" * 26 + b"\r\n0\r\nx-trailer: yes\r\n\r\n")
        c.send(req("POST", "/", headers=[("Transfer-Encoding", "chunked")]))
        for i in range(len(body)):
            c.send(body[i:i + 1])
            if i % 16 == 0:
                self.assertTrue(c.still_open(), "answered before the end of the body (%d)" % i)
        resp = c.read_response(timeout=TIMEOUT_WAIT)
        self.assert_local_reply(resp, 404)
        self.assertFalse(resp.has_token("connection", "close"), resp)
        c.send(req(target="/again"))
        self.assert_local_reply(c.read_response(), 404)
        self.wait_counters(s, {"http.sink.downstream_rq_total": 2,
                               "http.sink.downstream_rq_protocol_error": 0})
        self.stop_sluice(s)

    def test_expect_100_continue(self):
        s = self.start()
        c = self.http(s, "sink")
        c.send(req("POST", "/upload", headers=[("Expect", "100-continue"),
                                               ("Content-Length", "11")]))
        interim = c.read_response(timeout=TIMEOUT_WAIT)
        self.assertEqual(interim.status, 100, interim)
        self.assertEqual(interim.raw, b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertTrue(c.still_open(), "more than the 100 before the body was sent")
        c.send(b"hello world")
        resp = c.read_response(timeout=TIMEOUT_WAIT)
        self.assert_local_reply(resp, 404)
        # The connection goes on.
        c.send(req("POST", "/2", headers=[("Expect", "100-continue")], body=b"abc"))
        self.assertEqual(c.read_response().status, 100)
        self.assert_local_reply(c.read_response(), 404)
        self.wait_counters(s, {"http.sink.downstream_rq_total": 2,
                               "http.sink.downstream_cx_http1_total": 1})
        self.stop_sluice(s)

    def test_expect_without_body_or_on_http10_gets_no_100(self):
        s = self.start()
        c = self.http(s, "sink")
        # No body: nothing to continue.
        c.send(req("GET", "/", headers=[("Expect", "100-continue")]))
        self.assert_local_reply(c.read_response(), 404)
        c.send(req("POST", "/", headers=[("Expect", "100-continue"), ("Content-Length", "0")]))
        self.assert_local_reply(c.read_response(), 404)
        # HTTP/1.0 clients do not understand 1xx (RFC 9110 §15.2).
        c.send(req("POST", "/", version="HTTP/1.0", headers=[("Expect", "100-continue"),
                                                               ("Connection", "keep-alive")],
                   body=b"abc"))
        self.assert_local_reply(c.read_response(), 404)
        self.stop_sluice(s)

    def test_head(self):
        s = self.start()
        c = self.http(s)
        c.send(req("HEAD", "/"))
        resp = c.read_response(head_request=True)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.all("content-length"), ["6"], resp)
        self.assertEqual(resp.all("x-test"), ["1"], resp)
        # No body followed: the next response parses right after the HEAD answer.
        c.send(req("GET", "/"))
        self.assert_hello(c.read_response())
        self.assertEqual(c.buf, b"")
        self.stop_sluice(s)

    def test_http10_closes_by_default(self):
        s = self.start()
        c = self.http(s)
        c.send(req(version="HTTP/1.0", host=None))
        resp = c.read_response()
        self.assert_hello(resp)
        self.assertFalse(resp.has_token("connection", "keep-alive"), resp)
        self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"")
        self.wait_counters(s, {"http.web.downstream_rq_total": 1,
                               "listener.web.downstream_cx_active": 0})
        self.stop_sluice(s)

    def test_http10_keep_alive(self):
        s = self.start()
        c = self.http(s)
        for _ in range(2):
            c.send(req(version="HTTP/1.0", headers=[("Connection", "Keep-Alive")]))
            resp = c.read_response()
            self.assert_hello(resp)
            self.assertTrue(resp.has_token("connection", "keep-alive"), resp)
        self.assertTrue(c.still_open())
        self.wait_counters(s, {"http.web.downstream_rq_total": 2,
                               "http.web.downstream_cx_http1_total": 1})
        self.stop_sluice(s)

    def test_connection_close(self):
        s = self.start()
        c = self.http(s)
        c.send(req(headers=[("Connection", "close")]))
        resp = c.read_response()
        self.assert_hello(resp)
        self.assertTrue(resp.has_token("connection", "close"), resp)
        self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"")
        self.wait_counters(s, {"listener.web.downstream_cx_active": 0,
                               "http.web.downstream_rq_active": 0})
        self.stop_sluice(s)

    def test_answer_before_the_body_is_consistent(self):
        # "web" answers at the request head. The connection may then go on (the body is read
        # and dropped) or end, but if it ends, the answer must say Connection: close
        # (RFC 9112 §9.6), or a keep-alive client sends its next request into a closing socket.
        s = self.start()
        variants = [
            # (name, sent before the answer, sent after it)
            ("content-length body in the same write", req("POST", body=b"0123456789"), b""),
            ("chunked body in the same write",
             req("POST", headers=[("Transfer-Encoding", "chunked")],
                 body=harness.chunked(b"0123456789")), b""),
            ("content-length body after the answer",
             req("POST", headers=[("Content-Length", "10")]), b"0123456789"),
            ("chunked body after the answer",
             req("POST", headers=[("Transfer-Encoding", "chunked")]),
             harness.chunked(b"0123456789")),
        ]
        for name, before, after in variants:
            with self.subTest(variant=name):
                c = self.http(s)
                c.send(before)
                resp = c.read_response()
                self.assert_hello(resp)
                if resp.has_token("connection", "close"):
                    self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"")
                    continue
                try:
                    c.send(after + req(target="/next"))
                    self.assert_hello(c.read_response())
                except (EOFError, OSError) as e:
                    self.fail("%s: the answer had no Connection: close, yet the connection "
                              "closed: the next request on it failed (%r); the answer: %r" %
                              (name, e, resp))
        self.stop_sluice(s)

    def test_answer_to_large_upload_is_readable(self):
        # The client is still sending a 4 MiB body when "web" answers. Whatever sluice does
        # with the rest of the body, the client must be able to read the whole answer: closing
        # with unread data sends a RST that can destroy it (RFC 9112 §9.6, "lingering close").
        s = self.start()
        c = self.http(s)
        total = 4 * harness.MiB
        c.send(req("POST", "/upload", headers=[("Content-Length", str(total))]))
        sender_error = []

        def send_body():
            try:
                sent = 0
                chunk = b"u" * 65536
                while sent < total:
                    c.sock.sendall(chunk)
                    sent += len(chunk)
            except OSError as e:
                sender_error.append(e)

        t = threading.Thread(target=send_body, daemon=True)
        t.start()
        resp = c.read_response(timeout=TIMEOUT_WAIT)
        self.assert_hello(resp)
        if resp.has_token("connection", "close"):
            c.expect_closed(TIMEOUT_WAIT)
        t.join(TIMEOUT_WAIT)
        self.assertFalse(t.is_alive(), "the body sender is stuck")
        self.stop_sluice(s)


class HttpLimitsTest(HttpTestCase):

    def test_request_line_too_long_414(self):
        s = self.start(hcm={"maxRequestLineBytes": 256})
        c = self.http(s)
        c.send(req(target="/" + "a" * 200))  # within the limit
        self.assert_hello(c.read_response())
        c = self.http(s)
        c.send(req(target="/" + "a" * 300))
        self.assert_error_and_close(c, 414)
        # Over the limit before the line even ends: answered without waiting for more.
        c = self.http(s)
        c.send(b"GET /" + b"b" * 400)
        self.assert_error_and_close(c, 414)
        self.wait_counters(s, {"http.web.downstream_rq_protocol_error_414": 2,
                               "http.web.downstream_rq_protocol_error": 2,
                               "http.web.downstream_rq_4xx": 2,
                               "http.web.downstream_rq_2xx": 1})
        self.stop_sluice(s)

    def test_head_too_large_431(self):
        s = self.start(hcm={"maxRequestHeadersBytes": 1024})
        c = self.http(s)
        c.send(req(headers=[("X-Big", "v" * 800)]))
        self.assert_hello(c.read_response())
        c = self.http(s)
        c.send(req(headers=[("X-Big", "v" * 1500)]))
        self.assert_error_and_close(c, 431)
        c = self.http(s)
        c.send(req(headers=[("X-%d" % i, "v" * 100) for i in range(12)]))
        self.assert_error_and_close(c, 431)
        self.wait_counters(s, {"http.web.downstream_rq_protocol_error_431": 2,
                               "http.web.downstream_rq_2xx": 1})
        self.stop_sluice(s)

    def test_too_many_fields_431(self):
        s = self.start(hcm={"maxRequestHeadersCount": 10})
        c = self.http(s)
        c.send(req(headers=[("X-%d" % i, "v") for i in range(9)]))  # Host + 9 = 10 fields
        self.assert_hello(c.read_response())
        c = self.http(s)
        c.send(req(headers=[("X-%d" % i, "v") for i in range(10)]))  # 11 fields
        self.assert_error_and_close(c, 431)
        self.wait_counters(s, {"http.web.downstream_rq_protocol_error_431": 1,
                               "http.web.downstream_rq_2xx": 1})
        self.stop_sluice(s)

    def test_body_too_large_413_by_content_length(self):
        s = self.start(hcm={"maxRequestBodyBytes": 100})
        c = self.http(s, "sink")
        c.send(req("POST", body=b"b" * 100))  # at the limit
        self.assert_local_reply(c.read_response(), 404)
        # Refused on the head alone: the body is never sent.
        c = self.http(s, "sink")
        c.send(req("POST", headers=[("Content-Length", "101")]))
        self.assert_error_and_close(c, 413)
        c = self.http(s)
        c.send(req("POST", headers=[("Content-Length", "1000000000000")]))
        self.assert_error_and_close(c, 413)
        self.wait_counters(s, {"http.sink.downstream_rq_protocol_error_413": 1,
                               "http.web.downstream_rq_protocol_error_413": 1})
        self.stop_sluice(s)

    def test_body_too_large_413_chunked(self):
        s = self.start(hcm={"maxRequestBodyBytes": 100})
        c = self.http(s, "sink")
        c.send(req("POST", headers=[("Transfer-Encoding", "chunked")],
                   body=harness.chunked(b"a" * 50, b"b" * 50)))
        self.assert_local_reply(c.read_response(), 404)
        c.send(req("POST", headers=[("Transfer-Encoding", "chunked")]) + b"3c\r\n" +
               b"a" * 60 + b"\r\n")
        self.assertTrue(c.still_open(), "answered before the body passed the limit")
        c.send(b"3c\r\n" + b"b" * 60 + b"\r\n")
        self.assert_error_and_close(c, 413)
        self.wait_counters(s, {"http.sink.downstream_rq_protocol_error_413": 1,
                               "http.sink.downstream_rq_total": 2})
        self.stop_sluice(s)


    def test_refusal_on_a_reused_connection_is_answered(self):
        # A refused request is answered (status + Connection: close) whether it is the first on
        # its connection or follows requests already served on it (keep-alive).
        s = self.start(hcm={"maxRequestHeadersCount": 10, "maxRequestBodyBytes": 100})
        cases = [
            ("web", req(headers=[("X-%d" % i, "v") for i in range(10)]), 431),
            ("sink", req("POST", headers=[("Content-Length", "101")]), 413),
            ("web", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400),
            ("web", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ]
        for listener, bad, status in cases:
            with self.subTest(listener=listener, status=status):
                c = self.http(s, listener)
                c.send(req())
                self.assertIn(c.read_response().status, (200, 404))
                c.send(bad)
                try:
                    self.assert_error_and_close(c, status)
                except EOFError as e:
                    self.fail("a request refused with %d after a served one on the same "
                              "connection got no response: %s" % (status, e))
        self.stop_sluice(s)


class HttpTimeoutsTest(HttpTestCase):

    def test_headers_timeout_partial_head_408(self):
        s = self.start(hcm={"requestHeadersTimeout": "0.2s"})
        c = self.http(s)
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
        self.assert_error_and_close(c, 408)
        self.wait_counters(s, {"http.web.downstream_rq_headers_timeout": 1,
                               "http.web.downstream_rq_4xx": 1,
                               "http.web.downstream_rq_total": 0,
                               "listener.web.downstream_cx_active": 0})
        self.stop_sluice(s)

    def test_headers_timeout_without_bytes_closes_silently(self):
        s = self.start(hcm={"requestHeadersTimeout": "0.2s"})
        c = self.http(s)
        self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"",
                         "a connection that sent nothing gets no response")
        self.wait_counters(s, {"http.web.downstream_rq_headers_timeout": 1,
                               "http.web.downstream_rq_4xx": 0})
        self.stop_sluice(s)

    def test_headers_timeout_of_later_requests_starts_at_first_byte(self):
        timeout = 0.3
        s = self.start(hcm={"requestHeadersTimeout": "%gs" % timeout, "idleTimeout": "60s"})
        c = self.http(s)
        c.send(req())
        self.assert_hello(c.read_response())
        # Idle well past the headers timeout: the keep-alive connection is not cut (only the
        # idle timeout applies between requests).
        time.sleep(4 * timeout)
        self.assertTrue(c.still_open(), "the headers timeout ran while idle between requests")
        c.send(b"GET /2 HTTP/1.1\r\nHost: a\r\n")
        self.assert_error_and_close(c, 408)
        self.wait_counters(s, {"http.web.downstream_rq_headers_timeout": 1,
                               "http.web.downstream_rq_total": 1,
                               "http.web.downstream_cx_idle_timeout": 0})
        self.stop_sluice(s)

    def test_body_timeout_408(self):
        s = self.start(hcm={"requestBodyTimeout": "0.2s"})
        c = self.http(s, "sink")
        c.send(req("POST", headers=[("Content-Length", "10")]) + b"abc")
        self.assert_error_and_close(c, 408)
        self.wait_counters(s, {"http.sink.downstream_rq_body_timeout": 1,
                               "http.sink.downstream_rq_4xx": 1,
                               "http.sink.downstream_rq_active": 0})
        self.stop_sluice(s)

    def test_body_timeout_is_between_reads(self):
        # A body that keeps coming, slower in total than the timeout but never pausing that
        # long, is fine: the timeout is idle time, not a deadline for the whole body.
        timeout = 2.0
        s = self.start(hcm={"requestBodyTimeout": "%gs" % timeout})
        c = self.http(s, "sink")
        n = 30
        c.send(req("POST", headers=[("Content-Length", str(n))]))
        for _ in range(n):
            time.sleep(timeout * 1.5 / n)
            c.send(b"x")
        self.assert_local_reply(c.read_response(timeout=TIMEOUT_WAIT), 404)
        self.wait_counters(s, {"http.sink.downstream_rq_body_timeout": 0,
                               "http.sink.downstream_rq_4xx": 1})
        self.stop_sluice(s)

    def test_stream_idle_timeout_408(self):
        s = self.start(hcm={"requestBodyTimeout": "0s", "streamIdleTimeout": "0.2s"})
        c = self.http(s, "sink")
        c.send(req("POST", headers=[("Transfer-Encoding", "chunked")]) + b"3\r\nabc\r\n")
        self.assert_error_and_close(c, 408)
        self.wait_counters(s, {"http.sink.downstream_rq_stream_idle_timeout": 1,
                               "http.sink.downstream_rq_body_timeout": 0})
        self.stop_sluice(s)

    def test_idle_timeout_closes_silently(self):
        s = self.start(hcm={"idleTimeout": "0.2s"})
        c = self.http(s)
        c.send(req())
        self.assert_hello(c.read_response())
        self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"")
        self.wait_counters(s, {"http.web.downstream_cx_idle_timeout": 1,
                               "http.web.downstream_rq_headers_timeout": 0,
                               "listener.web.downstream_cx_active": 0})
        self.stop_sluice(s)

    def test_max_requests_per_connection(self):
        s = self.start(hcm={"maxRequestsPerConnection": 3})
        c = self.http(s)
        for i in range(3):
            c.send(req(target="/%d" % i))
            resp = c.read_response()
            self.assert_hello(resp)
            self.assertEqual(resp.has_token("connection", "close"), i == 2, resp)
        self.assertEqual(c.expect_closed(TIMEOUT_WAIT), b"")
        self.wait_counters(s, {"http.web.downstream_cx_max_requests_reached": 1,
                               "http.web.downstream_rq_total": 3})
        self.stop_sluice(s)

    def test_max_requests_per_connection_pipelined(self):
        s = self.start(hcm={"maxRequestsPerConnection": 2})
        c = self.http(s)
        c.send(b"".join(req(target="/%d" % i) for i in range(5)))
        responses, rest, how = c.read_until_closed(timeout=TIMEOUT_WAIT)
        self.assertEqual(rest, b"")
        self.assertEqual(len(responses), 2, responses)
        self.assertTrue(responses[1].has_token("connection", "close"), responses[1])
        self.wait_counters(s, {"http.web.downstream_cx_max_requests_reached": 1,
                               "http.web.downstream_rq_total": 2})
        self.stop_sluice(s)

    def test_client_gone_mid_body_counts_a_reset(self):
        s = self.start()
        c = self.http(s, "sink")
        c.send(req("POST", headers=[("Content-Length", "1000")]) + b"x" * 10)
        s.wait_stats(lambda st: st["http.sink.downstream_rq_active"] == 1, "a stream active")
        c.close()
        self.wait_counters(s, {"http.sink.downstream_rq_reset": 1,
                               "http.sink.downstream_rq_active": 0,
                               "listener.sink.downstream_cx_active": 0})
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
