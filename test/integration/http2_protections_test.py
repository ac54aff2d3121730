"""HTTP/2 protections: each attack ends in the right GOAWAY or RST_STREAM (or a 431), moves its
counter, and leaves every other connection alone.

Each test runs the real binary with an HTTP/2 listener (h2c, prior knowledge) whose router sends
requests to a real HTTP/1.1 origin (harness.HttpOrigin), opens a well-behaved "bystander"
connection that completes a request before the attack, sends the attack with the raw frame
client (h2frames.py), asserts the exact outcome and the counter's delta, and then has the
bystander complete more requests: a protection that ends the attacker's connection must not touch
anyone else's. Attacker and bystander share sluice's one worker (--concurrency 1). Limits are
configured small where that makes a flood cheap; each protection is also tried at its default.

Counters: "http.web.http2.<name>" (struct Http2Stats in source/http/http2/codec_impl.h) and
"http.web.downstream_*".

Tests marked @known_bug (unittest.expectedFailure) assert the behaviour sluice should have and
does not have yet; the docstring of each says what happens instead. SLUICE_SHOW_KNOWN_BUGS=1
runs them as ordinary tests, to see how they fail.
"""

import os
import socket
import unittest

import h2frames as h2
import harness

# Overall bound for one attack's send and for reading what it brings back.
ATTACK_TIMEOUT = 15.0
# One request's response, for the bystander and for requests that must still be served.
RESPONSE_TIMEOUT = 10.0
H2 = "http.web.http2."
HCM = "http.web."


def known_bug(test):
    """unittest.expectedFailure, unless SLUICE_SHOW_KNOWN_BUGS is set."""
    if os.environ.get("SLUICE_SHOW_KNOWN_BUGS", "") not in ("", "0"):
        return test
    return unittest.expectedFailure(test)


class Outcome:
    """What the attacking connection saw: every event, in order."""

    def __init__(self, events, conn):
        self.events = events
        self.conn = conn

    def frames(self, frame_type):
        return [e.frame for e in self.events if e.is_frame(frame_type)]

    @property
    def goaways(self):
        return self.frames(h2.GOAWAY)

    @property
    def closed(self):
        return any(e.kind in (h2.CLOSED, h2.ERROR) for e in self.events)

    def summary(self, limit=12):
        """The events that say something (not DATA, WINDOW_UPDATE or acks), for messages."""
        shown = [e for e in self.events
                 if not (e.is_frame(h2.DATA) or e.is_frame(h2.WINDOW_UPDATE)
                         or (e.is_frame(h2.PING) and e.frame.ack)
                         or (e.is_frame(h2.SETTINGS) and e.frame.ack))]
        text = ", ".join(repr(e) for e in shown[:limit])
        if len(shown) > limit:
            text += ", ... (%d more)" % (len(shown) - limit)
        return "%d events: %s" % (len(self.events), text)


class Http2ProtectionsTest(harness.SluiceTestCase):

    # -- setup and helpers

    def start(self, h2_options=None, hcm=None):
        """An origin and a sluice (one worker) whose listener "web" routes every request to it,
        with these http2_protocol_options and HttpConnectionManager fields (lowerCamelCase)."""
        origin = harness.HttpOrigin()
        self.addCleanup(origin.close)
        # Its handlers see connections reset by sluice on purpose (that is what the protections
        # do to the upstream requests of ended streams): no tracebacks for those.
        origin.server.handle_error = lambda request, address: None
        hcm = dict(hcm or {})
        if h2_options is not None:
            hcm["http2ProtocolOptions"] = h2_options
        self.sluice = self.start_sluice(harness.routed_config(origin.addr[1], hcm=hcm),
                                        concurrency=1)
        self.host, self.port = self.sluice.addr("web")
        self.authority = "%s:%d" % (self.host, self.port)
        self.origin = origin
        return self.sluice

    def connect(self, settings=None, rcvbuf=None, **kw):
        """An h2c connection past the SETTINGS exchange. rcvbuf: a receive buffer size set before
        the connect (so that the TCP window stays small)."""
        conn = h2.H2Conn(self.host, self.port, timeout=RESPONSE_TIMEOUT, **kw)
        self.addCleanup(conn.close)
        if rcvbuf is None:
            conn.connect()
        else:
            sock = harness.connect((self.host, self.port), timeout=RESPONSE_TIMEOUT,
                                   rcvbuf=rcvbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sock = sock
        if settings is None:
            conn.handshake()
        else:
            conn.handshake(settings=settings)
        return conn

    def headers(self, method="GET", path="/", extra=()):
        return h2.request_headers(self.authority, method=method, path=path, extra=extra)

    def get(self, conn, stream_id, path="/", extra=()):
        conn.request(stream_id, self.headers(path=path, extra=extra))
        return conn.read_response(stream_id, timeout=RESPONSE_TIMEOUT)

    def assert_served(self, response, path="/", what="request"):
        """A whole 200 from the origin (not a local reply), and no GOAWAY on the way."""
        self.assertTrue(response.complete, "%s: not complete: %r %r" % (
            what, response, response.events[-5:]))
        self.assertEqual("200", response.status, "%s: %r %r" % (what, response,
                                                                response.headers))
        self.assertEqual("yes", response.header("x-origin"), "%s: %r" % (what, response.headers))
        self.assertTrue(response.body.startswith(b"GET " + path.encode()), response.body[:100])
        self.assertIsNone(response.goaway, "%s: GOAWAY %r" % (what, response.goaway))

    def origin_saw(self, path):
        return [r for r in self.origin.requests if r[1] == path]

    def bystander(self):
        """A well-behaved connection that completed a request before the attack (so it is past
        the request headers timeout, in keep-alive)."""
        conn = self.connect()
        self.assert_served(self.get(conn, 1, "/before"), "/before", "bystander before")
        return conn

    def assert_bystander_unaffected(self, conn, stream_id=3):
        """The bystander still completes requests on its connection after the attack."""
        self.assertFalse(conn.closed, "the bystander's connection was closed: %r" %
                         conn.close_event)
        self.assert_served(self.get(conn, stream_id, "/after"), "/after", "bystander after")
        self.assert_served(self.get(conn, stream_id + 2, "/after2"), "/after2",
                           "bystander after (2)")

    def attack(self, conn, payload, timeout=ATTACK_TIMEOUT):
        """Writes the attack (reading what comes back meanwhile, so that neither side blocks),
        then reads until the server closes the connection or `timeout`. Returns an Outcome; the
        client's socket is closed then."""
        _, events = conn.send_draining(payload, timeout=timeout)
        if not conn.closed:
            events += conn.wait_for(h2.is_closed(), timeout=timeout).events
        conn.close()
        return Outcome(events, conn)

    def assert_goaway(self, outcome, code, what):
        """The connection got exactly one GOAWAY, with `code`, and was then closed."""
        goaways = outcome.goaways
        self.assertTrue(goaways, "%s: no GOAWAY; %s" % (what, outcome.summary()))
        self.assertEqual([h2.error_name(code)], [h2.error_name(g.error_code) for g in goaways],
                         "%s: %s" % (what, outcome.summary()))
        self.assertTrue(outcome.closed, "%s: the connection stayed open; %s" % (
            what, outcome.summary()))
        return goaways[0]

    def stats(self):
        return self.sluice.stats()

    def wait_deltas(self, before, deltas):
        """Waits until each counter of `deltas` ({name: n}) moved by at least n from `before`,
        then asserts it moved by exactly n; returns the stats."""
        def moved(st):
            return all(harness.stat(st, k) - harness.stat(before, k) >= n
                       for k, n in deltas.items())
        after = self.sluice.wait_stats(moved, "counters %r" % deltas, timeout=RESPONSE_TIMEOUT)
        got = {k: harness.stat(after, k) - harness.stat(before, k) for k in deltas}
        self.assertEqual(deltas, got, "all deltas: %s" % harness.stats_delta(before, after, HCM))
        return after

    def wait_attacker_gone(self, connections_left=1):
        """sluice closed the attacker's connection too (only the bystander's is left)."""
        return self.sluice.wait_stats(
            lambda st: st["listener.web.downstream_cx_active"] == connections_left,
            "only %d connection(s) left" % connections_left, timeout=ATTACK_TIMEOUT)

    def flood_ends_connection(self, payload, counter, code=h2.ENHANCE_YOUR_CALM, what="flood"):
        """The common shape: bystander, attacker, attack, GOAWAY `code`, counter +1 (and
        goaway_sent +1), attacker gone, bystander served. Returns (GOAWAY frame, stats)."""
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        outcome = self.attack(conn, payload(conn) if callable(payload) else payload)
        goaway = self.assert_goaway(outcome, code, what)
        after = self.wait_deltas(before, {H2 + counter: 1, H2 + "goaway_sent": 1})
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)
        return goaway, before, after

    # -- rapid reset (CVE-2023-44487)

    def rapid_reset(self, limit, pairs):
        """HEADERS (a whole GET, routed to the origin) then RST_STREAM(CANCEL), `pairs` times in
        one write: a client that cancels every stream as it opens it, costing the proxy (and the
        origin) a request each while never holding a stream open."""
        def payload(conn):
            out = bytearray()
            for i in range(pairs):
                sid = 2 * i + 1
                block = conn.encode_headers(self.headers(path="/rr/%d" % i))
                out += h2.headers_frame(sid, block, end_stream=True)
                out += h2.rst_stream_frame(sid, h2.CANCEL)
            return bytes(out)
        goaway, before, after = self.flood_ends_connection(payload, "rx_reset_flood",
                                                           what="rapid reset")
        # Resets count per second: those of one write may straddle two windows, so at most
        # 2 * limit + 1 are taken before the GOAWAY.
        self.assertLessEqual(goaway.last_stream_id, 2 * (2 * limit + 1) - 1, goaway.describe())
        self.assertLessEqual(harness.stat(after, H2 + "rx_reset") -
                             harness.stat(before, H2 + "rx_reset"), 2 * limit)

    def test_rapid_reset_small_limit(self):
        self.start({"maxResetsPerSecond": 20})
        self.rapid_reset(limit=20, pairs=200)

    def test_rapid_reset_default_limit(self):
        # Default max_resets_per_second: 200.
        self.start()
        self.rapid_reset(limit=200, pairs=1000)

    def test_resets_below_the_limit_are_fine(self):
        """A client that cancels fewer streams than the limit keeps its connection."""
        self.start({"maxResetsPerSecond": 20})
        conn = self.connect()
        before = self.stats()
        payload = bytearray()
        for i in range(10):
            sid = 2 * i + 1
            payload += h2.headers_frame(sid, conn.encode_headers(self.headers(path="/rr/%d" % i)),
                                        end_stream=True)
            payload += h2.rst_stream_frame(sid, h2.CANCEL)
        conn.send(bytes(payload))
        self.assert_served(self.get(conn, 21, "/next"), "/next", "after 10 resets")
        after = self.stats()
        self.assertEqual(0, harness.stat(after, H2 + "rx_reset_flood") -
                         harness.stat(before, H2 + "rx_reset_flood"))

    def test_rapid_reset_by_server_resets(self):
        """The rapid-reset variant where the client sends no RST_STREAM but has the server reset
        every stream it opens: a malformed request (an uppercase field name: RST_STREAM
        PROTOCOL_ERROR, RFC 9113 §8.2.1). max_resets_per_second counts streams "the client resets
        (or has reset by protocol errors)" (Http2Settings); 20 per second here, and the client
        has 200 reset in batches of 10, each batch's resets awaited before the next."""
        self.start({"maxResetsPerSecond": 20})
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        events = []
        sid = 1
        for _ in range(20):
            batch = bytearray()
            first = sid
            for _ in range(10):
                block = conn.encode_headers(self.headers(path="/bad/%d" % sid,
                                                         extra=[("X-Upper", "1")]))
                batch += h2.headers_frame(sid, block, end_stream=True)
                sid += 2
            conn.send(bytes(batch))
            result = conn.wait_for(h2.is_rst_stream(stream_id=sid - 2), h2.is_goaway(),
                                   timeout=RESPONSE_TIMEOUT)
            events += result.events
            if not result.matched or result.event.is_frame(h2.GOAWAY):
                break
            resets = [f for f in result.frames(h2.RST_STREAM) if f.stream_id >= first]
            self.assertEqual(10, len(resets), repr(result.events))
            self.assertEqual({"PROTOCOL_ERROR"}, {h2.error_name(f.error_code) for f in resets})
        if not conn.closed:
            events += conn.wait_for(h2.is_closed(), timeout=RESPONSE_TIMEOUT).events
        conn.close()
        self.assert_goaway(Outcome(events, conn), h2.ENHANCE_YOUR_CALM, "server-side resets")
        self.wait_deltas(before, {H2 + "rx_reset_flood": 1})
        self.assert_bystander_unaffected(bystander)

    # -- CONTINUATION flood (CVE-2024-27316 class)

    def continuation_flood(self, frames):
        """One request whose header block never ends: HEADERS without END_HEADERS, then
        CONTINUATION frames with a field each, none with END_HEADERS."""
        def payload(conn):
            block = conn.encode_headers(self.headers(path="/cont"))
            out = bytearray(h2.headers_frame(1, block, end_stream=True, end_headers=False))
            piece = h2.hpack_literal("x-c", "v" * 100)
            for _ in range(frames):
                out += h2.continuation_frame(1, piece, end_headers=False)
            return bytes(out)
        goaway, _, _ = self.flood_ends_connection(payload, "too_many_continuations",
                                                  what="CONTINUATION flood")
        # (nghttp2 names stream 1 as possibly processed: its header block had begun.)
        self.assertLessEqual(goaway.last_stream_id, 1, goaway.describe())
        self.assertFalse(self.origin_saw("/cont"), "the request reached the origin")

    def test_continuation_flood_small_limit(self):
        self.start({"maxContinuationFrames": 2})
        self.continuation_flood(frames=50)

    def test_continuation_flood_default_limit(self):
        # Default max_continuation_frames: 8.
        self.start()
        self.continuation_flood(frames=1000)

    def test_continuations_within_the_limit_are_fine(self):
        """A header block split into as many CONTINUATION frames as allowed is a request."""
        self.start({"maxContinuationFrames": 4})
        conn = self.connect()
        block = conn.encode_headers(self.headers(path="/split"))
        cut = [block[i * len(block) // 5:(i + 1) * len(block) // 5] for i in range(5)]
        conn.write_headers(1, cut[0], end_stream=True, end_headers=False)
        for i in range(1, 5):
            conn.write_continuation(1, cut[i], end_headers=i == 4)
        self.assert_served(conn.read_response(1, timeout=RESPONSE_TIMEOUT), "/split",
                           "4 CONTINUATIONs")

    # -- HPACK bomb and oversized header lists

    def test_hpack_bomb(self):
        """A 4000-byte field put in the HPACK dynamic table, then a request that references it
        200 times: under 300 bytes on the wire, ~800 KiB decoded (over 4 x max_header_list_size,
        60 KiB by default). The connection ends before the head reaches the origin."""
        self.start()
        bystander = self.bystander()
        conn = self.connect()
        # Stream 1 puts the entry in the table (an ordinary request, 4 KiB of fields).
        block = conn.encode_headers(self.headers(path="/seed"))
        block += h2.hpack_literal("x-bomb", "b" * 4000, indexing=h2.INDEXING_INCREMENTAL)
        conn.write_headers(1, block, end_stream=True)
        self.assert_served(conn.read_response(1, timeout=RESPONSE_TIMEOUT), "/seed", "seed")
        before = self.stats()
        # Our encoder's table no longer matches the server's (the literal went around it): the
        # bomb is built by hand. Static 2 = ":method: GET", 6 = ":scheme: http", 4 = ":path",
        # 1 = ":authority"; 62 is the newest dynamic entry, x-bomb.
        bomb = (h2.hpack_indexed(2) + h2.hpack_indexed(6) +
                h2.hpack_literal(":path", "/bomb", name_index=4) +
                h2.hpack_literal(":authority", self.authority, name_index=1) +
                h2.hpack_indexed(62) * 200)
        self.assertLess(len(bomb), 300)
        outcome = self.attack(conn, h2.headers_frame(3, bomb, end_stream=True))
        goaway = self.assert_goaway(outcome, h2.ENHANCE_YOUR_CALM, "HPACK bomb")
        self.assertLessEqual(goaway.last_stream_id, 3, goaway.describe())
        self.wait_deltas(before, {H2 + "header_bomb": 1, H2 + "goaway_sent": 1})
        self.assertFalse(self.origin_saw("/bomb"))
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)

    def oversized_header_list(self, fields):
        """A request whose header list is over max_header_list_size (under four times it): 431,
        counted in header_overflow, never sent upstream; the connection goes on."""
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        resp = self.get(conn, 1, "/big-head", extra=fields)
        self.assertTrue(resp.complete, "%r %r" % (resp, resp.events[-5:]))
        self.assertEqual("431", resp.status, repr(resp.headers))
        self.assertIsNone(resp.goaway)
        self.wait_deltas(before, {H2 + "header_overflow": 1})
        self.assertFalse(self.origin_saw("/big-head"), "the refused request reached the origin")
        self.assert_served(self.get(conn, 3, "/next"), "/next", "after the 431")
        self.assert_bystander_unaffected(bystander)

    def test_oversized_header_list_small_limit(self):
        self.start({"maxHeaderListSize": 4096})
        self.oversized_header_list([("x-big", "h" * 6000)])

    def test_oversized_header_list_default_limit(self):
        # Default: max_request_headers_bytes, 60 KiB. 4 fields of 20 KiB: HEADERS and a few
        # CONTINUATIONs (within the default 8).
        self.start()
        self.oversized_header_list([("x-big-%d" % i, "h" * 20 * 1024) for i in range(4)])

    def test_one_oversized_field(self):
        """One field of 100 KiB: over what nghttp2's HPACK decoder takes for one field (64 KiB,
        NGHTTP2_HD_MAX_NV), which is below max_header_list_size's largest setting, so it is a
        decoding (COMPRESSION) error of the connection, not a 431: GOAWAY COMPRESSION_ERROR,
        counted in http2.rx_protocol_error; other connections go on. (Lists over
        max_header_list_size made of smaller fields are answered 431: the tests above.)"""
        self.start()
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        payload = bytearray()
        block = conn.encode_headers(self.headers(path="/one-big") + [("x-big", "h" * 100 * 1024)])
        size = conn.max_frame_size()
        chunks = [block[i:i + size] for i in range(0, len(block), size)]
        payload += h2.headers_frame(1, chunks[0], end_stream=True, end_headers=len(chunks) == 1)
        for i, chunk in enumerate(chunks[1:], 1):
            payload += h2.continuation_frame(1, chunk, end_headers=i == len(chunks) - 1)
        outcome = self.attack(conn, bytes(payload))
        self.assert_goaway(outcome, h2.COMPRESSION_ERROR, "one 100 KiB field")
        self.wait_deltas(before, {H2 + "rx_protocol_error": 1, H2 + "goaway_sent": 1})
        self.assertFalse(self.origin_saw("/one-big"))
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)

    def test_too_many_header_fields(self):
        """More fields than max_request_headers_count (default 100): 431, the connection goes
        on."""
        self.start()
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        resp = self.get(conn, 1, "/many", extra=[("x-f%d" % i, "v") for i in range(150)])
        self.assertEqual("431", resp.status, repr(resp))
        self.wait_deltas(before, {H2 + "header_overflow": 1})
        self.assertFalse(self.origin_saw("/many"))
        self.assert_served(self.get(conn, 3, "/next"), "/next", "after the 431")
        self.assert_bystander_unaffected(bystander)

    # -- SETTINGS and PING floods

    def test_settings_flood_small_limit(self):
        self.start({"maxControlFramesPerSecond": 20})
        frame = h2.settings_frame([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 65535)])
        self.flood_ends_connection(frame * 500, "control_frame_flood", what="SETTINGS flood")

    def test_settings_flood_default_limit(self):
        # Default max_control_frames_per_second: 100.
        self.start()
        self.flood_ends_connection(h2.settings_frame() * 5000, "control_frame_flood",
                                   what="SETTINGS flood")

    def test_ping_flood_small_limit(self):
        self.start({"maxControlFramesPerSecond": 20})
        self.flood_ends_connection(h2.ping_frame(b"pingpong") * 500, "control_frame_flood",
                                   what="PING flood")

    def test_ping_flood_default_limit(self):
        self.start()
        self.flood_ends_connection(h2.ping_frame(b"pingpong") * 5000, "control_frame_flood",
                                   what="PING flood")

    def test_pings_below_the_limit_are_answered(self):
        self.start({"maxControlFramesPerSecond": 20})
        conn = self.connect()
        for i in range(10):
            conn.write_ping(b"ping%04d" % i)
        result = conn.wait_for(h2.is_ping_ack(b"ping0009"), timeout=RESPONSE_TIMEOUT)
        self.assertTrue(result, repr(result.events))
        self.assertEqual(10, len([f for f in result.frames(h2.PING) if f.ack]))
        self.assert_served(self.get(conn, 1, "/next"), "/next", "after 10 PINGs")

    # -- empty DATA flood

    def empty_data_flood(self, count):
        def payload(conn):
            block = conn.encode_headers(self.headers(method="POST", path="/empty"))
            return h2.headers_frame(1, block, end_stream=False) + h2.data_frame(1, b"") * count
        self.flood_ends_connection(payload, "inbound_empty_frames_flood",
                                   what="empty DATA flood")

    def test_empty_data_flood_default_limit(self):
        # Default max_consecutive_empty_frames: 1 (the second in a row ends the connection).
        self.start()
        self.empty_data_flood(1000)

    def test_empty_data_flood_small_limit(self):
        self.start({"maxConsecutiveEmptyFrames": 5})
        self.empty_data_flood(50)

    def test_empty_data_within_the_limit_is_fine(self):
        """As many empty DATA frames in a row as allowed, then a body: a request."""
        self.start({"maxConsecutiveEmptyFrames": 5})
        conn = self.connect()
        block = conn.encode_headers(self.headers(method="POST", path="/empty"))
        payload = h2.headers_frame(1, block, end_stream=False)
        payload += h2.data_frame(1, b"") * 5 + h2.data_frame(1, b"body", end_stream=True)
        conn.send(payload)
        resp = conn.read_response(1, timeout=RESPONSE_TIMEOUT)
        self.assertEqual("200", resp.status, repr(resp))
        self.assertTrue(resp.body.startswith(b"POST /empty"), resp.body)
        self.assertIn(b"body=4:body", resp.body)

    # -- PRIORITY flood

    def priority_flood(self, count):
        # PRIORITY frames for idle streams (allowed, RFC 9113 §6.3), no stream ever opened.
        payload = b"".join(h2.priority_frame(2 * (i % 50) + 1, depends_on=0, weight=i % 256)
                           for i in range(count))
        self.flood_ends_connection(payload, "inbound_priority_frames_flood",
                                   what="PRIORITY flood")

    def test_priority_flood_small_limit(self):
        self.start({"maxPriorityFramesPerStream": 10})
        self.priority_flood(500)

    def test_priority_flood_default_limit(self):
        # Default max_priority_frames_per_stream: 100 (per stream opened, plus 100).
        self.start()
        self.priority_flood(5000)

    # -- window overflow

    def test_connection_window_overflow(self):
        """WINDOW_UPDATE on stream 0 taking the connection's send window past 2^31-1 (RFC 9113
        §6.9.1): a connection error, GOAWAY FLOW_CONTROL_ERROR, counted (rx_protocol_error: the
        codec's counter of connection errors; goaway_sent)."""
        self.start()
        # The send window starts at 65535: 65535 + (2^31 - 1) overflows.
        self.flood_ends_connection(h2.window_update_frame(0, h2.MAX_WINDOW), "rx_protocol_error",
                                   code=h2.FLOW_CONTROL_ERROR, what="connection window overflow")

    def test_stream_window_overflow(self):
        """WINDOW_UPDATE on an open stream taking its send window past 2^31-1: a stream error,
        RST_STREAM FLOW_CONTROL_ERROR (counted in tx_reset); the connection and its other
        streams go on."""
        self.start()
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        # A POST whose body has not come: the stream stays open.
        block = conn.encode_headers(self.headers(method="POST", path="/open"))
        conn.write_headers(1, block, end_stream=False)
        conn.write_window_update(1, h2.MAX_WINDOW)
        result = conn.wait_for(h2.is_rst_stream(stream_id=1), h2.is_goaway(),
                               timeout=RESPONSE_TIMEOUT)
        self.assertTrue(result.matched and result.event.is_frame(h2.RST_STREAM),
                        "no RST_STREAM: %r" % result.events)
        self.assertEqual("FLOW_CONTROL_ERROR", h2.error_name(result.event.frame.error_code))
        self.wait_deltas(before, {H2 + "tx_reset": 1})
        # The connection is fine: another request on it is served.
        self.assert_served(self.get(conn, 3, "/next"), "/next", "after the stream error")
        self.assertFalse(Outcome(result.events, conn).goaways)
        self.assert_bystander_unaffected(bystander)

    # -- stream-id exhaustion

    def test_stream_id_exhaustion(self):
        """A client whose stream ids pass 2^30 gets a graceful GOAWAY (NO_ERROR) that still
        covers its stream: the request completes, then the connection closes (the client
        reconnects with fresh ids well before they run out at 2^31)."""
        self.start()
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        # Below the mark nothing happens (a client may start at any id).
        low = (1 << 30) - 1
        self.assert_served(self.get(conn, low, "/low"), "/low", "stream 2^30-1")
        high = (1 << 30) + 1
        conn.request(high, self.headers(path="/high"))
        resp = conn.read_response(high, timeout=RESPONSE_TIMEOUT)
        goaways = [e.frame for e in resp.events if e.is_frame(h2.GOAWAY)]
        self.assertEqual(1, len(goaways), repr(resp.events))
        self.assertEqual("NO_ERROR", h2.error_name(goaways[0].error_code))
        self.assertEqual(high, goaways[0].last_stream_id, goaways[0].describe())
        self.assertTrue(resp.complete, repr(resp.events))
        self.assertEqual("200", resp.status)
        self.assertTrue(resp.body.startswith(b"GET /high"), resp.body)
        # Done: the connection closes by itself (no stream is left).
        rest = conn.wait_for(h2.is_closed(), timeout=RESPONSE_TIMEOUT)
        self.assertTrue(rest.matched, repr(rest.events))
        self.assertFalse(rest.frames(h2.GOAWAY), "a second GOAWAY: %r" % rest.events)
        conn.close()
        self.wait_deltas(before, {H2 + "stream_id_exhausted": 1, H2 + "goaway_sent": 1})
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)

    def test_no_new_stream_after_the_exhaustion_goaway(self):
        """A stream above the GOAWAY's last stream id is not served."""
        self.start()
        conn = self.connect()
        high = (1 << 30) + 1
        payload = h2.headers_frame(high, conn.encode_headers(self.headers(path="/high")),
                                   end_stream=True)
        payload += h2.headers_frame(high + 2, conn.encode_headers(self.headers(path="/higher")),
                                    end_stream=True)
        outcome = self.attack(conn, payload)
        self.assertEqual(["NO_ERROR"], [h2.error_name(g.error_code) for g in outcome.goaways])
        self.assertEqual(high, outcome.goaways[0].last_stream_id)
        ends = [f.stream_id for f in outcome.frames(h2.DATA) + outcome.frames(h2.HEADERS)
                if f.end_stream]
        self.assertEqual([high], ends, outcome.summary())
        self.assertTrue(outcome.closed)
        self.assertFalse(self.origin_saw("/higher"))

    # -- max concurrent streams

    def test_streams_over_max_concurrent_end_the_connection(self):
        """A stream over SETTINGS_MAX_CONCURRENT_STREAMS (once our SETTINGS are acknowledged):
        nghttp2 makes it a connection error, GOAWAY PROTOCOL_ERROR naming the last stream it
        took (RFC 9113 §5.1.2 allows treating it so; a client that respects the setting never
        meets it), counted in http2.rx_protocol_error; other connections go on."""
        self.start({"maxConcurrentStreams": 4})
        bystander = self.bystander()
        conn = self.connect()
        before = self.stats()
        payload = bytearray()
        for i in range(5):
            block = conn.encode_headers(self.headers(method="POST", path="/open/%d" % i))
            payload += h2.headers_frame(2 * i + 1, block, end_stream=False)
        outcome = self.attack(conn, bytes(payload))
        goaway = self.assert_goaway(outcome, h2.PROTOCOL_ERROR, "a fifth stream")
        self.assertEqual(goaway.last_stream_id, 7)
        self.wait_deltas(before, {H2 + "rx_protocol_error": 1, H2 + "goaway_sent": 1})
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)

    # -- PING keep-alive (optional): a peer that does not answer is ended

    def test_keepalive_ping_ends_a_silent_peer(self):
        """keepalive_interval: after that much silence sluice sends a PING; no ack within
        keepalive_timeout ends the connection (GOAWAY NO_ERROR, then close), counted in
        http2.keepalive_timeout."""
        self.start({"keepaliveInterval": "0.2s", "keepaliveTimeout": "0.4s"})
        conn = self.connect()
        before = self.stats()
        # This client reads but never acks a PING.
        ping = conn.wait_for(h2.is_frame(h2.PING), timeout=RESPONSE_TIMEOUT)
        self.assertTrue(ping.matched, ping.events)
        self.assertFalse(ping.event.frame.ack)
        end = conn.wait_for(h2.is_closed(), timeout=RESPONSE_TIMEOUT)
        self.assertTrue(end.matched, end.events)
        goaways = [f for f in end.frames(h2.GOAWAY)]
        self.assertEqual([h2.NO_ERROR], [g.error_code for g in goaways], end.events)
        self.wait_deltas(before, {H2 + "keepalive_timeout": 1})

    def test_keepalive_ping_answered_keeps_the_connection(self):
        self.start({"keepaliveInterval": "0.2s", "keepaliveTimeout": "0.4s"})
        conn = self.connect()
        before = self.stats()
        for _ in range(3):  # three rounds: each PING answered, the connection stays
            ping = conn.wait_for(h2.is_frame(h2.PING), timeout=RESPONSE_TIMEOUT)
            self.assertTrue(ping.matched, ping.events)
            conn.write_ping(ping.event.frame.payload, ack=True)
        self.assert_served(self.get(conn, 1, "/alive"), "/alive", "after three PINGs")
        after = self.stats()
        self.assertEqual(harness.stat(after, H2 + "keepalive_timeout"),
                         harness.stat(before, H2 + "keepalive_timeout"))

    # -- a client that never reads

    # Each response: far more than sluice may hold for one stream.
    BIG = 64 * harness.MiB

    def never_reading_client(self, streams, path=None):
        """A connection whose client opened its flow-control windows wide (so that only TCP
        holds the server back), has a small receive buffer, asks for `streams` large responses
        and never reads its socket again."""
        conn = self.connect(rcvbuf=4096, settings=[
            (h2.SETTINGS_INITIAL_WINDOW_SIZE, h2.MAX_WINDOW)], auto_window_update=False)
        conn.write_window_update(0, h2.MAX_WINDOW - h2.DEFAULT_WINDOW_SIZE)
        payload = bytearray()
        for i in range(streams):
            block = conn.encode_headers(self.headers(path=path or "/big/%d" % self.BIG))
            payload += h2.headers_frame(2 * i + 1, block, end_stream=True)
        self.assertTrue(conn.send(bytes(payload)), conn.write_errors)
        return conn

    def wait_all_paused(self, before, streams):
        """Every stream's response is as far in as it will get: the codec's buffer for it went
        over its limit (pending_send_bytes_paused) and the stream stopped reading its upstream
        (upstream_flow_control_paused_reading_total)."""
        def delta(st, name):
            return harness.stat(st, name) - harness.stat(before, name)
        return self.sluice.wait_stats(
            lambda st: delta(st, H2 + "pending_send_bytes_paused") >= streams and
            delta(st, HCM + "upstream_flow_control_paused_reading_total") >= streams,
            "every stream paused its upstream", timeout=60)

    def wait_streams_timed_out(self, before, streams):
        """The stream idle timeout ended every stream (nothing moves while the client does not
        read), and the upstream requests with them; only the bystander's pooled upstream
        connection may remain."""
        self.sluice.wait_stats(
            lambda st: harness.stat(st, HCM + "downstream_rq_stream_idle_timeout") -
            harness.stat(before, HCM + "downstream_rq_stream_idle_timeout") >= streams and
            st[HCM + "downstream_rq_active"] == 0,
            "the stream idle timeout ended the streams", timeout=60)
        after = self.sluice.wait_stats(
            lambda st: harness.stat(st, "cluster.o.upstream_cx_active") <= 1,
            "the upstream connections of the timed-out streams closed", timeout=60)
        self.assertEqual(streams, harness.stat(after, HCM + "downstream_rq_stream_idle_timeout") -
                         harness.stat(before, HCM + "downstream_rq_stream_idle_timeout"))
        return after

    def client_that_never_reads(self, streams, stream_buffer, h2_options=None, hcm=None,
                                with_bystander=True):
        if harness.sanitized():
            self.skipTest("RSS says nothing under ASan (its allocator keeps freed memory)")
        # The idle timeout must leave the origin (Python, a thread per connection) time to start
        # every response: a stream that times out before its response head comes is answered
        # 408 instead, which the test_local_reply_* known bug shows never ends.
        hcm = dict({"streamIdleTimeout": "5s"}, **(hcm or {}))
        self.start(h2_options, hcm=hcm)
        bystander = self.bystander() if with_bystander else None
        baseline = self.sluice.rss_bytes()
        before = self.stats()
        conn = self.never_reading_client(streams)
        self.wait_all_paused(before, streams)
        held = self.sluice.rss_bytes() - baseline
        # Per stream: the codec's buffer (up to its limit, then the upstream is not read; at most
        # one upstream read, 64 KiB, over it), counted twice for the allocator's rounding and
        # the upstream connection's own buffer, plus the stream's objects (16 KiB); then 16 MiB
        # for the connection's write buffer, nghttp2 and the allocator's spread. Unbounded, the
        # responses would take streams x 64 MiB.
        bound = streams * (2 * stream_buffer + 64 * 1024 + 16 * 1024) + 16 * harness.MiB
        print("\nnever reads: %d streams, RSS over baseline %.1f MiB (bound %.1f MiB)" % (
            streams, held / harness.MiB, bound / harness.MiB))
        self.assertLess(held, bound)
        if bystander:
            # The bystander is served meanwhile.
            self.assert_served(self.get(bystander, 3, "/during"), "/during", "bystander during")
        self.wait_streams_timed_out(before, streams)
        self.assertLess(self.sluice.rss_bytes() - baseline, bound)
        if bystander:
            self.assert_bystander_unaffected(bystander, stream_id=5)
        return conn

    def test_client_that_never_reads(self):
        """32 streams, each asking the origin for 64 MiB, on a connection that never reads: every
        stream's response pauses (pending_send_bytes_paused, then the upstream is not read:
        upstream_flow_control_paused_reading_total), sluice's RSS stays within a bound of the
        per-stream buffer (64 KiB here, buffer_limit_bytes), the stream idle timeout (5s) ends
        every stream and its upstream request, and the bystander is served throughout."""
        self.client_that_never_reads(32, 64 * 1024, {"maxConcurrentStreams": 32},
                                     {"bufferLimitBytes": 64 * 1024})

    def test_client_that_never_reads_default_limits(self):
        """16 streams at the default limits (buffer_limit_bytes 1 MiB per stream); only the
        stream idle timeout is short."""
        self.client_that_never_reads(16, 1024 * 1024)

    def test_never_reading_connection_closes_once_its_streams_end(self):
        """Once the stream idle timeout ended every stream of a client that never reads, its
        connection has no request in progress: the idle timeout (2s here) closes it (at most
        after the 5s flush timeout for what cannot be written), and what its streams held is
        freed.

        (No bystander here: with a 2s idle timeout, its connection is rightly closed too.)"""
        conn = self.client_that_never_reads(4, 64 * 1024, hcm={
            "bufferLimitBytes": 64 * 1024, "idleTimeout": "2s"}, with_bystander=False)
        self.assertFalse(conn.closed)
        self.sluice.wait_stats(
            lambda st: st["listener.web.downstream_cx_active"] == 0,
            "the never-reading connection closed", timeout=20)

    def test_local_reply_to_a_never_reading_client_ends(self):
        """A stream whose idle timeout fires before its response starts is answered 408 by a
        local reply; on a connection whose client never reads, that reply cannot be written, and
        the stream must still end (reset) within a bounded time rather than stay active.

        Stream 1 fills the connection (a 64 MiB response, never read); stream 3 asks the origin
        for /slow (answered after 2s) with a stream idle timeout of 1s."""
        self.start(hcm={"streamIdleTimeout": "1s", "bufferLimitBytes": 64 * 1024})
        bystander = self.bystander()
        before = self.stats()
        conn = self.never_reading_client(1)
        self.wait_all_paused(before, 1)
        conn.request(3, self.headers(path="/slow"))
        self.sluice.wait_stats(
            lambda st: harness.stat(st, HCM + "downstream_rq_stream_idle_timeout") -
            harness.stat(before, HCM + "downstream_rq_stream_idle_timeout") >= 2,
            "both streams timed out", timeout=RESPONSE_TIMEOUT)
        self.assert_bystander_unaffected(bystander)
        self.sluice.wait_stats(lambda st: st[HCM + "downstream_rq_active"] == 0,
                               "the timed-out streams ended", timeout=20)

    def test_client_that_never_reads_its_acks(self):
        """A client that sends PINGs and never reads the acks (its connection blocked by a large
        response it does not read either): once more than max_outbound_control_frames acks wait
        in nghttp2, the connection ends with GOAWAY ENHANCE_YOUR_CALM (outbound_flood), written
        after what was queued before it."""
        self.start({"maxOutboundControlFrames": 100, "maxControlFramesPerSecond": 1000000},
                   hcm={"bufferLimitBytes": 64 * 1024})
        bystander = self.bystander()
        before = self.stats()
        conn = self.never_reading_client(1)
        self.wait_all_paused(before, 1)
        # 2000 PINGs (34 KiB): written without reading anything.
        self.assertTrue(conn.send(h2.ping_frame(b"pingpong") * 2000), conn.write_errors)
        self.wait_deltas(before, {H2 + "outbound_flood": 1, H2 + "goaway_sent": 1})
        # Now the client reads: the DATA queued before, then the GOAWAY, then the close.
        result = conn.wait_for(h2.is_closed(), timeout=ATTACK_TIMEOUT)
        conn.close()
        outcome = Outcome(result.events, conn)
        self.assert_goaway(outcome, h2.ENHANCE_YOUR_CALM, "outbound flood")
        self.assertGreater(len(outcome.frames(h2.DATA)), 0)
        self.wait_attacker_gone()
        self.assert_bystander_unaffected(bystander)


if __name__ == "__main__":
    harness.main()
