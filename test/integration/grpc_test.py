#!/usr/bin/env python3
"""gRPC through sluice (issue 14): a real gRPC server (python3-grpcio, generic handlers with raw
bytes, no generated code) on loopback behind an HTTP/2 (h2c) cluster, and a grpcio client on an
h2c connection to a listener with codec AUTO.

- Every call type: unary, server streaming, client streaming, bidirectional (in bulk, and ping-
  pong where each message waits for the previous answer), with many messages and 1 MiB ones.
- Status and metadata: OK passes; a server's error status (NOT_FOUND with details) reaches the
  client from the trailers, with its trailing metadata; metadata both ways (initial and trailing,
  text and -bin).
- Deadlines: a grpc-timeout shorter than the route's timeout ends a hanging call with
  DEADLINE_EXCEEDED — through grpcio, and with a raw HTTP/2 client against an origin that never
  answers (so that the 504 -> grpc-status 4 is sluice's own).
- Local replies to gRPC requests are trailers-only gRPC responses: a cluster with no reachable
  endpoint -> UNAVAILABLE (14), no route -> UNIMPLEMENTED (12); a plain HTTP request gets the
  plain 503.
- configs/grpc.yaml as it ships (ports swapped).

The call-type, status and metadata tests also run directly against the server, without sluice
(GrpcDirectTest): they check the test's own client and server, and need no sluice binary.
"""

import hashlib
import os
import queue
import struct
import sys
import threading
import unittest
import urllib.parse
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2client  # noqa: E402
import h2origin  # noqa: E402
from harness import MiB, pattern_bytes, stat  # noqa: E402

SERVICE = "sluice.test.Echo"
# The same handlers under another name, routed without turning request buffering off.
BUFFERED_SERVICE = "sluice.test.Buffered"
CALL_TIMEOUT = 30.0
HANG_LIMIT = 60.0
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.max_send_message_length", 16 * MiB),
    ("grpc.max_receive_message_length", 16 * MiB),
]


def sha(data):
    return hashlib.sha256(data).hexdigest()


def stream_message(i, big):
    """Message i of a stream: 1 MiB every tenth when `big`, else a few hundred bytes."""
    return pattern_bytes("m%d" % i, MiB if big and i % 10 == 0 else 100 + i)


def grpc_frame(payload):
    """A length-prefixed gRPC message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class Service:
    """The gRPC server: SERVICE and BUFFERED_SERVICE with Unary (echo), ServerStream (b"N,big"
    -> N messages), ClientStream (-> b"count sha256"), Bidi (each message back, prefixed "re:"),
    Fail (NOT_FOUND with details and trailing metadata), Meta (records the metadata it got;
    sends initial and trailing metadata) and Hang (answers only when the call ends: cancelled,
    or past its deadline)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen_metadata = []
        self.hangs_ended = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                                  options=[("grpc.so_reuseport", 0)] + CHANNEL_OPTIONS[1:])
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "Meta": grpc.unary_unary_rpc_method_handler(self.meta),
            "Hang": grpc.unary_unary_rpc_method_handler(self.hang),
        }
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler(SERVICE, handlers),
            grpc.method_handlers_generic_handler(BUFFERED_SERVICE, handlers)))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def close(self):
        self.server.stop(grace=None).wait(10)

    def unary(self, request, context):
        return request

    def server_stream(self, request, context):
        n, big = request.split(b",")
        for i in range(int(n)):
            yield stream_message(i, big == b"big")

    def client_stream(self, request_iterator, context):
        h = hashlib.sha256()
        count = 0
        for m in request_iterator:
            h.update(m)
            count += 1
        return b"%d %s" % (count, h.hexdigest().encode())

    def bidi(self, request_iterator, context):
        for m in request_iterator:
            yield b"re:" + m

    def fail(self, request, context):
        context.set_trailing_metadata((("x-fail-detail", "yes"),))
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: %s" % request.decode())

    def meta(self, request, context):
        with self.lock:
            self.seen_metadata.append(tuple(context.invocation_metadata()))
        context.send_initial_metadata((("x-server-initial", "s1"),
                                       ("x-server-initial-bin", b"\x00\xff")))
        context.set_trailing_metadata((("x-server-trailing", "s2"),
                                       ("x-trail-bin", b"\xfe\x00\x01")))
        return b"ok"

    def hang(self, request, context):
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait(HANG_LIMIT)
        self.hangs_ended.set()
        return b"late"


class GrpcCalls:
    """The calls, against self.target ("host:port"); mixed into a TestCase that sets it and
    self.service."""

    def channel(self):
        ch = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        self.addCleanup(ch.close)
        return ch

    def method(self, ch, kind, name, service=SERVICE):
        return getattr(ch, kind)("/%s/%s" % (service, name))

    def mux(self):
        host, _, port = self.target.rpartition(":")
        m = h2client.Mux.connect(host, int(port))
        self.addCleanup(m.close)
        return m

    def raw_grpc(self, m, path, headers=(), payload=b"x"):
        return m.wait(m.request("POST", path, body=grpc_frame(payload), headers=[
            ("content-type", "application/grpc"), ("te", "trailers")] + list(headers)))

    def assertTrailersOnly(self, st, grpc_status):
        """A gRPC trailers-only response: one HEADERS frame with END_STREAM carrying :status
        200, content-type application/grpc, grpc-status and a grpc-message; no DATA."""
        # (A server that answers before the request's end may then reset the stream with
        # NO_ERROR: RFC 9113 §8.1.)
        self.assertTrue(st.ended, st)
        self.assertIn(st.reset_code, (None, 0), st)
        self.assertEqual(200, st.status, st.headers)
        self.assertIsNone(st.trailers, st)
        self.assertEqual(b"", st.body)
        self.assertTrue((st.header("content-type") or "").startswith("application/grpc"),
                        st.headers)
        self.assertEqual(str(grpc_status), st.header("grpc-status"), st.headers)
        self.assertTrue(st.header("grpc-message"), st.headers)

    def check_unary(self, ch, service=SERVICE):
        call = self.method(ch, "unary_unary", "Unary", service)
        for size in (0, 1, 1000, 16384, 65536, MiB):
            body = pattern_bytes("unary", size)
            response, c = call.with_call(body, timeout=CALL_TIMEOUT)
            self.assertEqual(body, response)
            self.assertEqual(grpc.StatusCode.OK, c.code())

    def test_unary(self):
        self.check_unary(self.channel())

    def test_unary_calls_at_once(self):
        ch = self.channel()
        call = self.method(ch, "unary_unary", "Unary")
        futs = [call.future(b"call-%d" % i, timeout=CALL_TIMEOUT) for i in range(50)]
        self.assertEqual([b"call-%d" % i for i in range(50)], [f.result() for f in futs])

    def test_server_streaming(self):
        call = self.method(self.channel(), "unary_stream", "ServerStream")
        got = list(call(b"200,big", timeout=CALL_TIMEOUT))
        self.assertEqual(200, len(got))
        for i, m in enumerate(got):
            self.assertEqual(stream_message(i, True), m, i)

    def test_client_streaming(self):
        call = self.method(self.channel(), "stream_unary", "ClientStream")
        sent = [stream_message(i, True) for i in range(200)]
        response = call(iter(sent), timeout=CALL_TIMEOUT)
        self.assertEqual(b"200 %s" % sha(b"".join(sent)).encode(), response)

    def test_bidi_streaming_in_bulk(self):
        call = self.method(self.channel(), "stream_stream", "Bidi")
        sent = [stream_message(i, True) for i in range(200)]
        got = list(call(iter(sent), timeout=CALL_TIMEOUT))
        self.assertEqual([b"re:" + m for m in sent], got)

    def ping_pong(self, service):
        """Each message goes only once the previous one's answer came back."""
        call = self.method(self.channel(), "stream_stream", "Bidi", service)
        outbox = queue.Queue()
        n = 50

        def requests():
            for _ in range(n):
                m = outbox.get(timeout=CALL_TIMEOUT)
                if m is None:
                    return
                yield m

        outbox.put(b"ping-0")
        responses = call(requests(), timeout=CALL_TIMEOUT)
        got = []
        try:
            for r in responses:
                got.append(r)
                if len(got) < n:
                    outbox.put(b"ping-%d" % len(got))
        finally:
            outbox.put(None)
        self.assertEqual([b"re:ping-%d" % i for i in range(n)], got)

    def test_bidi_ping_pong(self):
        self.ping_pong(SERVICE)

    def test_error_status_with_details_and_trailing_metadata(self):
        call = self.method(self.channel(), "unary_unary", "Fail")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"thing-7", timeout=CALL_TIMEOUT)
        e = cm.exception
        self.assertEqual(grpc.StatusCode.NOT_FOUND, e.code())
        self.assertEqual("no such thing: thing-7", e.details())
        self.assertIn(("x-fail-detail", "yes"), tuple(e.trailing_metadata()))

    def test_metadata_both_ways(self):
        call = self.method(self.channel(), "unary_unary", "Meta")
        response, c = call.with_call(b"m", timeout=CALL_TIMEOUT, metadata=(
            ("x-client-meta", "c1"), ("x-client-meta-bin", b"\x00\x01\xff")))
        self.assertEqual(b"ok", response)
        seen = dict(self.service.seen_metadata[-1])
        self.assertEqual("c1", seen.get("x-client-meta"))
        self.assertEqual(b"\x00\x01\xff", seen.get("x-client-meta-bin"))
        initial = dict(c.initial_metadata())
        trailing = dict(c.trailing_metadata())
        self.assertEqual(("s1", b"\x00\xff"), (initial.get("x-server-initial"),
                                               initial.get("x-server-initial-bin")))
        self.assertEqual(("s2", b"\xfe\x00\x01"), (trailing.get("x-server-trailing"),
                                                   trailing.get("x-trail-bin")))

    def test_deadline_exceeded(self):
        call = self.method(self.channel(), "unary_unary", "Hang")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"h", timeout=0.5)
        self.assertEqual(grpc.StatusCode.DEADLINE_EXCEEDED, cm.exception.code())
        # The server's handler saw its call end too (cancelled, not left hanging).
        self.assertTrue(self.service.hangs_ended.wait(CALL_TIMEOUT))


class GrpcDirectTest(GrpcCalls, unittest.TestCase):
    """The calls straight to the server: checks the test's client and server (no sluice)."""

    def setUp(self):
        self.service = Service()
        self.addCleanup(self.service.close)
        self.target = "127.0.0.1:%d" % self.service.port

    def test_the_raw_client_against_the_server(self):
        # What the through-sluice checks of local replies rely on, against grpcio itself: a
        # whole response (head, DATA, trailers), and a trailers-only one (an unknown method).
        m = self.mux()
        st = self.raw_grpc(m, "/%s/Unary" % SERVICE, payload=b"raw")
        self.assertEqual((200, grpc_frame(b"raw"), "0"), (st.status, st.body,
                                                          st.trailer("grpc-status")))
        self.assertTrailersOnly(self.raw_grpc(m, "/%s/NoSuchMethod" % SERVICE), 12)


def grpc_config(grpc_port, down_port=None, hang_port=None, echo_route=None):
    """A listener "grpc" (codec AUTO) whose router sends /sluice.test.Echo/ to the gRPC server
    (cluster "grpc", HTTP2, request buffering off), /sluice.test.Buffered/ there too with the
    route's defaults, /sluice.test.Down/ to a cluster whose endpoint refuses connections, and
    /gate/ to an h2origin that never answers (cluster "hang"). Anything else: no route (404)."""
    long = {"timeout": "120s", "responseHeadersTimeout": "120s", "idleTimeout": "120s"}
    routes = [
        {"match": {"prefix": "/%s/" % SERVICE},
         "route": dict({"cluster": "grpc", "requestBufferMaxBytes": 0}, **long,
                       **(echo_route or {}))},
        {"match": {"prefix": "/%s/" % BUFFERED_SERVICE}, "route": {"cluster": "grpc"}},
    ]
    clusters = [{"name": "grpc", "protocol": "HTTP2", "connectTimeout": "5s",
                 "endpoints": [{"address": {"address": "127.0.0.1", "port": grpc_port}}]}]
    if down_port is not None:
        routes.append({"match": {"prefix": "/sluice.test.Down/"}, "route": {"cluster": "down"}})
        routes.append({"match": {"prefix": "/plain/"}, "route": {"cluster": "down"}})
        clusters.append({"name": "down", "protocol": "HTTP2", "connectTimeout": "5s",
                         "endpoints": [{"address": {"address": "127.0.0.1", "port": down_port}}]})
    if hang_port is not None:
        routes.append({"match": {"prefix": "/gate/"}, "route": dict({"cluster": "hang"}, **long)})
        clusters.append({"name": "hang", "protocol": "HTTP2", "connectTimeout": "5s",
                         "endpoints": [{"address": {"address": "127.0.0.1", "port": hang_port}}]})
    router = {"@type": harness.ROUTER_TYPE,
              "virtualHosts": [{"name": "v", "domains": ["*"], "routes": routes}]}
    cfg = harness.http_config([harness.http_listener("grpc", filters=[
        {"plugin": {"filter": "router", "typedConfig": router}}])])
    cfg["clusters"] = clusters
    return cfg


class GrpcThroughSluiceTest(GrpcCalls, harness.SluiceTestCase):
    """The same calls through sluice (codec AUTO listener, HTTP2 cluster)."""

    def setUp(self):
        super().setUp()
        self.service = Service()
        self.addCleanup(self.service.close)
        self.hang_origin = h2origin.H2Origin(name="hang")
        self.addCleanup(self.hang_origin.close)
        self.s = self.start_sluice(grpc_config(self.service.port, harness.unused_port(),
                                               self.hang_origin.port), concurrency=1)
        self.target = "127.0.0.1:%d" % self.s.addr("grpc")[1]

    def test_calls_share_one_upstream_connection(self):
        ch = self.channel()
        call = self.method(ch, "unary_unary", "Unary")
        futs = [call.future(b"c%d" % i, timeout=CALL_TIMEOUT) for i in range(20)]
        self.assertEqual([b"c%d" % i for i in range(20)], [f.result() for f in futs])
        stream = list(self.method(ch, "unary_stream", "ServerStream")(b"10,small",
                                                                      timeout=CALL_TIMEOUT))
        self.assertEqual(10, len(stream))
        self.assertEqual(1, stat(self.s.stats(), "cluster.grpc.upstream_cx_total"))

    def test_bidi_ping_pong_with_the_routes_default_request_buffering(self):
        """gRPC on a route that leaves request_buffer_max_bytes at its default (64 KiB): a
        bidirectional call whose messages wait for the answers must still go (sluice must not
        hold a gRPC request body back to buffer it)."""
        self.ping_pong(BUFFERED_SERVICE)

    def test_unary_on_the_buffered_route(self):
        self.check_unary(self.channel(), BUFFERED_SERVICE)

    def test_sluice_ends_a_call_at_its_grpc_timeout(self):
        # The origin never answers and knows nothing of grpc-timeout: the 504 is sluice's,
        # sent as gRPC: DEADLINE_EXCEEDED (4). The route's own timeouts are 120s.
        m = self.mux()
        st = self.raw_grpc(m, "/gate/never", headers=[("grpc-timeout", "300m")])
        self.assertTrailersOnly(st, 4)
        req = self.hang_origin.wait_request(lambda r: r.path == "/gate/never")
        self.hang_origin.wait_for(lambda o: req.state == "reset_by_peer",
                                  what="the upstream stream's reset")
        self.assertEqual("application/grpc", req.header("content-type"))

    def test_unreachable_cluster_is_unavailable(self):
        m = self.mux()
        st = self.raw_grpc(m, "/sluice.test.Down/Call")
        self.assertTrailersOnly(st, 14)
        message = urllib.parse.unquote(st.header("grpc-message"))
        call = self.method(self.channel(), "unary_unary", "Call", "sluice.test.Down")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"x", timeout=CALL_TIMEOUT)
        self.assertEqual(grpc.StatusCode.UNAVAILABLE, cm.exception.code())
        self.assertEqual(message, cm.exception.details())
        # Not gRPC: the ordinary 503.
        st = m.wait(m.request("GET", "/plain/x"))
        self.assertEqual(503, st.status, st.headers)
        self.assertIsNone(st.header("grpc-status"))

    def test_no_route_is_unimplemented(self):
        m = self.mux()
        st = self.raw_grpc(m, "/no.such.Service/Call")
        self.assertTrailersOnly(st, 12)
        call = self.method(self.channel(), "unary_unary", "Call", "no.such.Service")
        with self.assertRaises(grpc.RpcError) as cm:
            call(b"x", timeout=CALL_TIMEOUT)
        self.assertEqual(grpc.StatusCode.UNIMPLEMENTED, cm.exception.code())


class GrpcExampleConfigTest(harness.SluiceTestCase):

    def test_the_example_config(self):
        service = Service()
        self.addCleanup(service.close)
        with open(os.path.join(harness.repo_root(), "configs", "grpc.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 9090}", 0), ("port: 9901}", 0),
                            ("port: 50051}", service.port)):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text, concurrency=1)
        ch = grpc.insecure_channel("127.0.0.1:%d" % s.addr("grpc")[1], options=CHANNEL_OPTIONS)
        self.addCleanup(ch.close)
        body = pattern_bytes("example", MiB)
        self.assertEqual(body, ch.unary_unary("/%s/Unary" % SERVICE)(body,
                                                                    timeout=CALL_TIMEOUT))
        sent = [stream_message(i, False) for i in range(30)]
        got = list(ch.stream_stream("/%s/Bidi" % SERVICE)(iter(sent), timeout=CALL_TIMEOUT))
        self.assertEqual([b"re:" + m for m in sent], got)
        self.assertEqual(1, stat(s.stats(), "cluster.grpc_backend.upstream_cx_total"))


if __name__ == "__main__":
    harness.main()
