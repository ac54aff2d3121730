#!/usr/bin/env python3
"""The HTTP/2 test origin (h2origin.py) on its own, no sluice: real clients against it — nghttp
(nghttp2-client) over h2c and TLS, a python3-h2 client, and h2client.Mux (raw frames, for what a
library would not do) — so that a sluice test that fails against it fails because of sluice.

Checked: bodies of many sizes both ways with flow control on both sides (DATA within the
windows, uploads of 1 MiB credited back), with and without content-length, trailers, statuses,
SETTINGS_MAX_CONCURRENT_STREAMS (advertised, and the excess refused), gates holding streams open,
GOAWAY with a chosen last stream id (streams above it unanswered and unprocessed, those below
finished, then the close), the automatic GOAWAY mid-traffic, REFUSED_STREAM on a chosen request,
RST_STREAM mid-response with the other streams going on, a connection cut, an upload held by
flow control, a full-duplex echo, a client's GOAWAY not stopping the streams in flight, TLS with
ALPN h2, the HTTP/1.1 fallback when ALPN picks http/1.1, and the per-connection counts.
"""

import hashlib
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

import harness  # noqa: E402
import h2client  # noqa: E402
import h2frames  # noqa: E402
import h2origin  # noqa: E402
from harness import MiB, pattern_bytes, pattern_digest  # noqa: E402

NGHTTP = shutil.which("nghttp")
TIMEOUT = 30.0
SIZES = (0, 1, 16383, 16384, 16385, 65535, 65536, 65537, 200000, MiB)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class H2LibResponse:
    def __init__(self):
        self.headers = None
        self.trailers = None
        self.body = bytearray()
        self.ended = False
        self.reset_code = None

    @property
    def status(self):
        return int(dict(self.headers or [])[":status"]) if self.headers else None

    def header(self, name):
        return dict(self.headers or []).get(name)


class H2LibClient:
    """A small HTTP/2 client on python3-h2: many streams at once, request bodies sent only as
    the server's windows allow, response DATA credited back as it is read. Bounded waits."""

    def __init__(self, host, port, tls_ctx=None, server_name=None):
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        if tls_ctx is not None:
            raw = tls_ctx.wrap_socket(raw, server_hostname=server_name)
        self.sock = raw
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(8 * MiB)
        self.responses = {}
        self.pending = {}  # stream id -> [remaining body (memoryview), trailers]
        self.remote_settings = None
        self.goaway = None
        self.closed = False
        self._flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, body=None, headers=(), trailers=None, authority="h2.test"):
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "http"), (":path", path),
                  (":authority", authority)] + list(headers)
        end = body is None and trailers is None
        self.conn.send_headers(sid, fields, end_stream=end)
        self.responses[sid] = H2LibResponse()
        if not end:
            self.pending[sid] = [memoryview(body or b""), trailers]
        self._send_bodies()
        self._flush()
        return sid

    def _send_bodies(self):
        for sid in list(self.pending):
            rest, trailers = self.pending[sid]
            if self.responses[sid].reset_code is not None:
                del self.pending[sid]
                continue
            ended = False
            while rest:
                n = min(self.conn.local_flow_control_window(sid),
                        self.conn.max_outbound_frame_size, len(rest))
                if n <= 0:
                    break
                ended = n == len(rest) and trailers is None
                self.conn.send_data(sid, bytes(rest[:n]), end_stream=ended)
                rest = rest[n:]
            self.pending[sid][0] = rest
            if not rest:
                if trailers is not None:
                    self.conn.send_headers(sid, trailers, end_stream=True)
                elif not ended:
                    # An empty body: END_STREAM on an empty DATA frame.
                    self.conn.end_stream(sid)
                del self.pending[sid]

    def pump(self, until, timeout=TIMEOUT, what="the condition"):
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                raise AssertionError("connection closed before %s" % what)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for %s" % what)
            self._send_bodies()
            self._flush()
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not pending:
                r, _, _ = select.select([self.sock], [], [], min(remaining, 0.5))
                if not r:
                    continue
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                continue
            for ev in self.conn.receive_data(data):
                self._on(ev)
            self._flush()
        return True

    def _on(self, ev):
        if isinstance(ev, h2.events.ResponseReceived):
            self.responses[ev.stream_id].headers = ev.headers
        elif isinstance(ev, h2.events.TrailersReceived):
            self.responses[ev.stream_id].trailers = ev.headers
        elif isinstance(ev, h2.events.DataReceived):
            self.responses[ev.stream_id].body += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.responses[ev.stream_id].ended = True
        elif isinstance(ev, h2.events.StreamReset):
            self.responses[ev.stream_id].reset_code = ev.error_code
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self.remote_settings = {int(k): v.new_value for k, v in ev.changed_settings.items()}
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev

    def wait(self, *sids, timeout=TIMEOUT):
        self.pump(lambda: all(self.responses[s].ended or self.responses[s].reset_code is not None
                              for s in sids), timeout, "streams %s" % (sids,))
        return [self.responses[s] for s in sids]


class OriginTestCase(unittest.TestCase):

    def origin(self, **kw):
        o = h2origin.H2Origin(**kw)
        self.addCleanup(o.close)
        return o

    def mux(self, origin, **kw):
        m = h2client.Mux.connect("127.0.0.1", origin.port, **kw)
        self.addCleanup(m.close)
        return m

    def lib(self, origin, **kw):
        c = H2LibClient("127.0.0.1", origin.port, **kw)
        self.addCleanup(c.close)
        return c


def nghttp(*args, timeout=60):
    r = subprocess.run([NGHTTP] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r


def nghttp_headers(text, name):
    """The values of a response field in nghttp -v output."""
    return re.findall(r"recv \(stream_id=\d+\) %s: (.*)" % re.escape(name), text)


@unittest.skipIf(NGHTTP is None, "nghttp (nghttp2-client) is not installed")
class NghttpTest(OriginTestCase):

    def test_downloads_of_many_sizes_h2c(self):
        o = self.origin()
        for size in SIZES:
            with self.subTest(size=size):
                for framing in ("cl", "chunked"):
                    r = nghttp("http://127.0.0.1:%d/gen?size=%d&framing=%s" % (o.port, size,
                                                                                framing))
                    self.assertEqual(0, r.returncode, r.stderr)
                    self.assertEqual(pattern_digest("gen", size), sha(r.stdout))

    def test_uploads_and_headers_h2c(self):
        o = self.origin()
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        for size in (1, 16384, 65535, 65536, MiB):
            with self.subTest(size=size):
                body = pattern_bytes("up", size)
                path = os.path.join(tmp, "body")
                with open(path, "wb") as f:
                    f.write(body)
                r = nghttp("-nv", "-d", path, "-H", "x-request-id: up-%d" % size,
                           "http://127.0.0.1:%d/echo?headers=x-request-id" % o.port)
                text = r.stdout.decode(errors="replace")
                self.assertEqual(0, r.returncode, r.stderr)
                self.assertEqual([sha(body)], nghttp_headers(text, "x-request-sha256"), text[-2000:])
                self.assertEqual(["up-%d" % size], nghttp_headers(text, "x-echo-x-request-id"))
                self.assertEqual(["POST"], nghttp_headers(text, "x-request-method"))
                req = o.wait_request(lambda q: q.header("x-request-id") == "up-%d" % size)
                self.assertEqual(sha(body), req.body_sha256)
                self.assertTrue(req.complete)

    def test_trailers_and_multiplexing_h2c(self):
        o = self.origin()
        base = "http://127.0.0.1:%d" % o.port
        r = nghttp("-nv", base + "/trailers?size=1000", base + "/gen?size=70000",
                   base + "/status/404", base + "/echo")
        text = r.stdout.decode(errors="replace")
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertEqual([sha(pattern_bytes("trailers", 1000))],
                         nghttp_headers(text, "x-checksum"))
        self.assertEqual(sorted(["200", "200", "404", "200"]),
                         sorted(nghttp_headers(text, ":status")))
        # One connection carried the four.
        self.assertEqual(1, o.connections)
        self.assertEqual([4], o.requests_per_connection())

    def test_tls_alpn_h2(self):
        root, cert = h2origin.tls_origin_cert()
        o = self.origin(tls=cert)
        r = nghttp("-nv", "https://127.0.0.1:%d/gen?size=100000" % o.port)
        text = r.stdout.decode(errors="replace")
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertEqual(["200"], nghttp_headers(text, ":status"))
        self.assertEqual("h2", o.conns[0].alpn)
        self.assertEqual("h2", o.conns[0].protocol)
        self.assertEqual("https", o.requests[0].scheme)


class H2LibClientTest(OriginTestCase):

    def test_uploads_of_many_sizes_with_flow_control_both_ways(self):
        o = self.origin()
        c = self.lib(o)
        sids = []
        for size in SIZES:
            body = pattern_bytes("lib", size)
            sids.append((size, body, c.request("POST", "/echo?framing=chunked", body=body)))
        c.wait(*[s for _, _, s in sids])
        for size, body, sid in sids:
            with self.subTest(size=size):
                r = c.responses[sid]
                self.assertEqual(200, r.status)
                self.assertEqual(sha(body), r.header("x-request-sha256"))
                self.assertEqual(body, bytes(r.body))
                self.assertIsNone(r.header("content-length"))
        self.assertEqual([len(SIZES)], o.requests_per_connection())
        self.assertEqual([], o.protocol_errors)

    def test_request_trailers_and_response_trailers(self):
        o = self.origin()
        c = self.lib(o)
        body = pattern_bytes("t", 70000)
        sid = c.request("POST", "/echo?trailers=x-a:1", body=body,
                        trailers=[("x-checksum", sha(body))])
        t = c.request("GET", "/trailers?size=30000")
        g = c.request("GET", "/gen?size=40000&framing=chunked&trailers=grpc-status:0,x-b:2")
        r, rt, rg = c.wait(sid, t, g)
        self.assertEqual("x-checksum=%s" % sha(body), r.header("x-request-trailers"))
        self.assertEqual([("x-a", "1")], r.trailers)
        self.assertEqual([("x-checksum", sha(pattern_bytes("trailers", 30000))),
                          ("x-trailer", "yes")], rt.trailers)
        self.assertEqual([("grpc-status", "0"), ("x-b", "2")], rg.trailers)
        self.assertEqual(pattern_digest("gen", 40000), sha(bytes(rg.body)))
        req = o.wait_request(lambda q: q.stream_id == sid)
        self.assertEqual([("x-checksum", sha(body))], req.trailers)

    def test_statuses_and_fields(self):
        o = self.origin()
        c = self.lib(o)
        a, b, d, f = (c.request("GET", "/status/204"), c.request("GET", "/status/304"),
                      c.request("GET", "/status/503"), c.request("GET", "/fields?n=30"))
        ra, rb, rd, rf = c.wait(a, b, d, f)
        self.assertEqual((204, b""), (ra.status, bytes(ra.body)))
        self.assertEqual((304, "1234", b""), (rb.status, rb.header("content-length"),
                                              bytes(rb.body)))
        self.assertEqual((503, b"status 503\n"), (rd.status, bytes(rd.body)))
        self.assertEqual("value-29", rf.header("x-field-number-029"))

    def test_tls_with_a_python_client(self):
        root, cert = h2origin.tls_origin_cert()
        o = self.origin(tls=cert)
        ctx = ssl.create_default_context(cafile=root.cert)
        ctx.set_alpn_protocols(["h2"])
        c = self.lib(o, tls_ctx=ctx, server_name="h2.test")
        body = pattern_bytes("tls", 300000)
        (r,) = c.wait(c.request("POST", "/echo", body=body))
        self.assertEqual(body, bytes(r.body))


class FaultTest(OriginTestCase):

    def test_max_concurrent_streams_is_advertised_and_the_excess_refused(self):
        o = self.origin(max_concurrent_streams=2)
        m = self.mux(o)
        self.assertEqual(2, m.server_settings[h2frames.SETTINGS_MAX_CONCURRENT_STREAMS])
        streams = [m.request("GET", "/gate/g%d" % i) for i in range(4)]
        m.pump(lambda: sum(1 for s in streams if s.reset_code is not None) == 2, TIMEOUT,
               what="two refusals")
        self.assertEqual([None, None, h2frames.REFUSED_STREAM, h2frames.REFUSED_STREAM],
                         [s.reset_code for s in streams])
        o.wait_open_streams(0, 2)
        o.open_gates()
        m.wait(*streams[:2])
        self.assertEqual([200, 200], [s.status for s in streams[:2]])
        self.assertEqual(2, o.conns[0].over_limit)
        self.assertEqual(3, o.conns[0].max_open_streams)  # the refused third counted too
        self.assertEqual([2], o.requests_per_connection())
        # Once they are done, two more fit.
        more = [m.request("GET", "/x%d" % i) for i in range(2)]
        m.wait(*more)
        self.assertEqual([200, 200], [s.status for s in more])

    def test_gates_hold_streams_open(self):
        o = self.origin()
        m = self.mux(o)
        held = [m.request("GET", "/gate/a", headers=[("x-request-id", str(i))]) for i in range(3)]
        head = m.request("GET", "/gate/b?head=1")
        free = m.request("GET", "/free")
        m.wait(free)
        m.pump(lambda: head.body == b"head\n", TIMEOUT, what="the first chunk")
        o.wait_open_streams(0, 4)
        self.assertFalse(any(s.done for s in held + [head]))
        o.gate("a").set()
        m.wait(*held)
        self.assertEqual([200] * 3, [s.status for s in held])
        self.assertFalse(head.done)
        o.gate("b").set()
        m.wait(head)
        self.assertEqual(b"head\ntail\n", head.body)

    def test_goaway_with_a_last_stream_id(self):
        o = self.origin()
        m = self.mux(o)
        streams = [m.request("GET", "/gate/g", headers=[("x-request-id", str(i))])
                   for i in range(5)]
        o.wait_open_streams(0, 5)
        o.goaway(last_stream_id=5)
        g = m.wait_goaway()
        self.assertEqual((5, h2frames.NO_ERROR), (g.last_stream_id, g.error_code))
        o.open_gates()
        m.wait(*streams[:3])
        self.assertEqual([200] * 3, [s.status for s in streams[:3]])
        # Once those are done the origin closes; 7 and 9 never got anything.
        m.wait_closed()
        self.assertEqual([None, None], [s.headers for s in streams[3:]])
        self.assertEqual({"0": 1, "1": 1, "2": 1}, dict(o.processed_counts()))
        states = {r.stream_id: r.state for r in o.requests}
        self.assertEqual({1: "answered", 3: "answered", 5: "answered", 7: "refused_goaway",
                          9: "refused_goaway"}, states)
        o.wait_for(lambda o: o.conns[0].closed, what="the close")
        self.assertEqual(5, o.conns[0].goaway_sent)

    def test_goaway_after_k_requests_mid_traffic(self):
        o = self.origin()
        o.goaway_after(2)
        m = self.mux(o)
        streams = [m.request("GET", "/gate/g", headers=[("x-request-id", str(i))])
                   for i in range(4)]
        g = m.wait_goaway()
        self.assertEqual(3, g.last_stream_id)
        o.open_gates()
        m.wait(*streams[:2])
        m.wait_closed()
        self.assertEqual([200, 200, None, None], [s.status for s in streams])
        self.assertEqual({"0": 1, "1": 1}, dict(o.processed_counts()))
        # A second connection is served normally (the rule fires once).
        m2 = self.mux(o)
        self.assertEqual(200, m2.wait(m2.request("GET", "/after")).status)

    def test_refuse_a_chosen_request(self):
        o = self.origin()
        o.refuse_next(1, lambda r: r.path == "/refuse-me")
        m = self.mux(o)
        a = m.request("GET", "/refuse-me")
        b = m.request("GET", "/other")
        m.wait(a, b)
        self.assertEqual(h2frames.REFUSED_STREAM, a.reset_code)
        self.assertEqual(200, b.status)
        # Only once.
        self.assertEqual(200, m.wait(m.request("GET", "/refuse-me")).status)
        self.assertEqual(["refused", "answered", "answered"], [r.state for r in o.requests])
        self.assertEqual([False, True, True], [r.processed for r in o.requests])

    def test_reset_mid_response_leaves_the_other_streams(self):
        o = self.origin()
        m = self.mux(o)
        cut = m.request("GET", "/gen?size=200000&reset_after=20000")
        other = m.request("GET", "/gen?size=300000")
        m.wait(cut, other)
        self.assertEqual(h2frames.INTERNAL_ERROR, cut.reset_code)
        self.assertEqual(200, cut.status)
        self.assertEqual(pattern_bytes("gen", 20000), cut.body)
        self.assertTrue(other.complete)
        self.assertEqual(pattern_digest("gen", 300000), other.sha256)
        m0 = m.wait(m.request("GET", "/gen?size=10&reset_after=0&reset_code=8"))
        self.assertEqual((200, b"", h2frames.CANCEL), (m0.status, m0.body, m0.reset_code))
        r = m.wait(m.request("GET", "/reset?code=2"))
        self.assertEqual((None, h2frames.INTERNAL_ERROR), (r.headers, r.reset_code))

    def test_cut_closes_the_connection_mid_body(self):
        o = self.origin()
        m = self.mux(o)
        s = m.request("GET", "/gen?size=100000&cut=30000")
        m.wait_closed()
        self.assertFalse(s.complete)
        self.assertEqual(pattern_bytes("gen", 30000), s.body)

    def test_sink_holds_the_upload_by_flow_control(self):
        o = self.origin()
        m = self.mux(o)
        body = pattern_bytes("sink", 300000)
        s = m.request("POST", "/sink/s", body=body)
        other = m.request("POST", "/echo", body=pattern_bytes("e", 200000))
        m.wait(other)
        m.pump(lambda: s.sent == 65535, TIMEOUT, what="the stream window used up")
        # Nothing more goes while the gate is closed (a bounded look).
        m.poll(0.3)
        self.assertEqual(65535, s.sent)
        o.gate("s").set()
        m.wait(s)
        self.assertEqual(b"received 300000", s.body)
        self.assertEqual(sha(body), o.wait_request(lambda r: r.path == "/sink/s").body_sha256)

    def test_stream_echo_is_full_duplex(self):
        o = self.origin()
        m = self.mux(o)
        s = m.request("POST", "/stream-echo", body=b"ping-1", end_stream=False)
        m.pump(lambda: s.body == b"ping-1", TIMEOUT, what="the first echo")
        m.send_data(s, b"ping-2", end_stream=True)
        m.wait(s)
        self.assertEqual(b"ping-1ping-2", s.body)
        self.assertEqual([("x-request-length", "12")], s.trailers)

    def test_a_clients_goaway_does_not_stop_the_streams_in_flight(self):
        o = self.origin()
        m = self.mux(o)
        s = m.request("GET", "/gate/g")
        o.wait_open_streams(0, 1)
        m.conn.write_goaway(last_stream_id=0)
        o.wait_for(lambda o: o.conns[0].peer_goaway is not None, what="the client's GOAWAY")
        o.gate("g").set()
        m.wait(s)
        self.assertEqual(200, s.status)

    def test_counts_per_connection(self):
        o = self.origin()
        m1, m2 = self.mux(o), self.mux(o)
        m1.wait(*[m1.request("GET", "/a%d" % i) for i in range(3)])
        m2.wait(*[m2.request("GET", "/b%d" % i) for i in range(2)])
        self.assertEqual(2, o.connections)
        self.assertEqual([3, 2], o.requests_per_connection())
        r = o.wait_request(lambda r: r.path == "/b1")
        self.assertEqual((1, 3, "GET", "sluice.test", "http"),
                         (r.conn, r.stream_id, r.method, r.authority, r.scheme))
        self.assertEqual([":method", ":scheme", ":path", ":authority"],
                         [n for n, _ in r.headers][:4])


class AppTest(OriginTestCase):

    def test_an_app_answers_and_can_hold_its_answer(self):
        def app(req):
            if req.path.startswith("/check"):
                ok = req.header("authorization") == "Bearer good"
                return {"status": 200 if ok else 401, "headers": [("x-user", "alice")],
                        "body": b"" if ok else b"denied\n",
                        "gate": o.gate("app") if req.header("x-hold") else None}
            return None

        o = self.origin(app=app)
        m = self.mux(o)
        held = m.request("GET", "/check/a", headers=[("authorization", "Bearer good"),
                                                     ("x-hold", "1")])
        a = m.request("GET", "/check/b", headers=[("authorization", "Bearer good")])
        d = m.request("GET", "/check/c")
        other = m.request("GET", "/gen?size=10")
        m.wait(a, d, other)
        self.assertEqual((200, "alice", b""), (a.status, a.header("x-user"), a.body))
        self.assertEqual((401, b"denied\n"), (d.status, d.body))
        self.assertEqual(pattern_bytes("gen", 10), other.body)
        self.assertFalse(held.done)
        o.gate("app").set()
        self.assertEqual(200, m.wait(held).status)


class Http1FallbackTest(OriginTestCase):

    def test_alpn_http11_is_served_as_http11(self):
        root, cert = h2origin.tls_origin_cert()
        o = self.origin(tls=cert, alpn=("http/1.1",))
        ctx = ssl.create_default_context(cafile=root.cert)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        raw = socket.create_connection(("127.0.0.1", o.port), timeout=TIMEOUT)
        s = ctx.wrap_socket(raw, server_hostname="h2.test")
        self.addCleanup(s.close)
        self.assertEqual("http/1.1", s.selected_alpn_protocol())
        c = harness.HttpClient(s)
        c.send(harness.http_request("POST", "/echo", host="h2.test", body=b"hello"))
        r = c.read_response()
        self.assertEqual((200, b"hello", "http/1.1"), (r.status, r.body,
                                                       r.get("x-origin-protocol")))
        c.send(harness.http_request("GET", "/gen?size=5000"))
        r = c.read_response()
        self.assertEqual(pattern_bytes("gen", 5000), r.body)
        self.assertEqual("http/1.1", o.conns[0].protocol)
        self.assertEqual([2], o.requests_per_connection())
        self.assertEqual(["POST", "GET"], [q.method for q in o.requests])
        self.assertEqual("h2.test", o.requests[0].authority)

    def test_cleartext_http11_without_the_preface(self):
        o = self.origin()
        c = harness.HttpClient.connect(o.addr)
        self.addCleanup(c.close)
        # The shortest request is shorter than the preface.
        c.send(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(200, c.read_response().status)
        c.send(harness.http_request("PUT", "/echo", body=b"x" * 30))
        self.assertEqual(b"x" * 30, c.read_response().body)
        self.assertEqual("http/1.1", o.conns[0].protocol)
        # A preface sent byte by byte is still HTTP/2.
        conn = h2frames.H2Conn("127.0.0.1", o.port, timeout=5.0)
        conn.connect()
        self.addCleanup(conn.close)
        for b in h2frames.PREFACE:
            conn.send(bytes([b]))
        conn.handshake(send_preface=False)
        conn.request(1, h2frames.request_headers("h2.test", path="/bytewise"))
        self.assertEqual("200", conn.read_response(1).status)
        self.assertEqual("h2", o.conns[1].protocol)


if __name__ == "__main__":
    unittest.main(verbosity=2)
