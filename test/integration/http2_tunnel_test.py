#!/usr/bin/env python3
"""Tunnels over HTTP/2 streams, into the same tunnel support HTTP/1.1 has (tunnel_test.py):

- WebSocket over HTTP/2 (RFC 8441): an extended CONNECT (:protocol websocket) from a raw HTTP/2
  client (h2frames) reaches a real WebSocket server (python3-websockets) as an HTTP/1.1 Upgrade
  with a fresh Sec-WebSocket-Key; its 101 comes back as a 200 without Sec-WebSocket-Accept, and
  WebSocket frames then flow both ways as DATA.
- SETTINGS_ENABLE_CONNECT_PROTOCOL is announced only where WebSocket upgrades are allowed; an
  extended CONNECT elsewhere is refused.
- CONNECT over HTTP/2 (RFC 9113 §8.5): ended at sluice (the route's cluster: a TCP echo server),
  bytes both ways and END_STREAM as the half-close; and refused with 501 where CONNECT is not
  enabled.
"""

import os
import struct
import time

import harness
import h2frames
from tunnel_test import ROUTER, WebSocketEchoServer


def ws_frame(payload, opcode=0x1, mask=b"\x01\x02\x03\x04"):
    """One client WebSocket frame (RFC 6455 §5.2): FIN, masked, payload < 64 KiB."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def parse_ws_frame(data):
    """(opcode, payload, rest) of one unmasked server frame, or None if incomplete."""
    if len(data) < 2:
        return None
    opcode, n = data[0] & 0x0F, data[1] & 0x7F
    at = 2
    if n == 126:
        if len(data) < 4:
            return None
        n, at = struct.unpack("!H", data[2:4])[0], 4
    elif n == 127:
        if len(data) < 10:
            return None
        n, at = struct.unpack("!Q", data[2:10])[0], 10
    if len(data) < at + n:
        return None
    return opcode, data[at:at + n], data[at + n:]


class Http2TunnelTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.ws = WebSocketEchoServer()
        self.addCleanup(self.ws.close)
        self.echo = self.server(harness.EchoServer)

    def start(self, upgrade_types=("websocket", "CONNECT")):
        router = {"@type": ROUTER, "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
            {"name": "tunnel", "match": {"connect": True},
             "route": {"cluster": "echo", "connectConfig": {}, "timeout": "5s"}},
            {"name": "ws", "match": {"prefix": "/ws"}, "route": {"cluster": "ws"}},
        ]}]}
        hcm = {"upgradeTypes": list(upgrade_types)} if upgrade_types else {}
        listener = harness.http_listener(
            "web", hcm=hcm, filters=[{"plugin": {"filter": "router", "typedConfig": router}}])
        cfg = harness.http_config([listener])
        cfg["clusters"] = [
            {"name": n, "endpoints": [{"address": {"address": "127.0.0.1", "port": a[1]}}]}
            for n, a in (("ws", self.ws.addr), ("echo", self.echo.addr))]
        return self.start_sluice(cfg, concurrency=1)

    def conn(self, s):
        c = h2frames.connect("127.0.0.1", s.addr("web")[1])
        self.addCleanup(c.close)
        return c

    def read_data(self, c, stream_id, want, timeout=harness.IO_TIMEOUT):
        """DATA on `stream_id` until `want(bytes so far)` is true or the stream ends, within
        `timeout`: (data, ended)."""
        data = b""
        deadline = time.monotonic() + timeout
        while not want(data):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ev = c.read_event(remaining)
            if ev.kind != h2frames.FRAME:
                break
            f = ev.frame
            if f.stream_id == stream_id and f.type == h2frames.DATA:
                data += f.data
                if f.end_stream:
                    return data, True
            if f.stream_id == stream_id and f.type == h2frames.RST_STREAM:
                return data, True
        return data, False

    def test_websocket_over_http2_echoes(self):
        s = self.start()
        c = self.conn(s)
        self.assertEqual(c.server_settings.get(h2frames.SETTINGS_ENABLE_CONNECT_PROTOCOL), 1)
        c.request(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                      (":path", "/ws/chat"), (":authority", "sluice.test"),
                      ("sec-websocket-version", "13")], end_stream=False)
        head = c.wait_for(lambda ev: ev.is_frame(h2frames.HEADERS) and ev.frame.stream_id == 1)
        self.assertTrue(head, head)
        fields = c.decode_headers(head.event.frame.block_fragment)
        self.assertEqual(dict(fields).get(":status"), "200", fields)
        self.assertNotIn("sec-websocket-accept", dict(fields))
        self.assertFalse(head.event.frame.end_stream)
        # The upstream saw an HTTP/1.1 Upgrade with a key of its own.
        seen = self.ws.upgrade_headers[-1]
        self.assertEqual(seen["Upgrade"].lower(), "websocket")
        self.assertEqual(len(seen["Sec-WebSocket-Key"]), 24)
        for message in (b"hello", os.urandom(300), b"x" * 20000):
            frame = ws_frame(message, opcode=0x2)
            for i in range(0, len(frame), 16384):  # DATA frames of at most the max frame size
                c.write_data(1, frame[i:i + 16384])
            data, ended = self.read_data(c, 1, lambda d: parse_ws_frame(d) is not None)
            self.assertFalse(ended)
            opcode, payload, rest = parse_ws_frame(data)
            self.assertEqual((opcode, payload, rest), (0x2, message, b""))
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_active") == 1,
                     "the tunnel is counted")
        # The client ends its side: the server's close frame (or the end) comes back, and the
        # tunnel closes.
        c.write_data(1, ws_frame(b"\x03\xe8", opcode=0x8))
        data, ended = self.read_data(c, 1, lambda d: False, timeout=harness.IO_TIMEOUT)
        self.assertTrue(data.startswith(b"\x88"), data)
        c.write_data(1, b"", end_stream=True)
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_active") == 0,
                     "the tunnel closed")

    def test_extended_connect_needs_websocket_allowed(self):
        s = self.start(upgrade_types=())
        c = self.conn(s)
        self.assertNotEqual(c.server_settings.get(h2frames.SETTINGS_ENABLE_CONNECT_PROTOCOL), 1)
        c.request(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                      (":path", "/ws/chat"), (":authority", "sluice.test")], end_stream=False)
        # Without the setting, :protocol is a malformed request (RFC 8441 §3): a stream error.
        r = c.read_response(1)
        self.assertEqual(r.reset_code, h2frames.PROTOCOL_ERROR, r)

    def test_connect_terminated_here(self):
        s = self.start()
        c = self.conn(s)
        c.request(1, [(":method", "CONNECT"), (":authority", "anywhere:22")], end_stream=False)
        head = c.wait_for(lambda ev: ev.is_frame(h2frames.HEADERS) and ev.frame.stream_id == 1)
        fields = dict(c.decode_headers(head.event.frame.block_fragment))
        self.assertEqual(fields.get(":status"), "200", fields)
        self.assertNotIn("content-length", fields)
        for chunk in (b"ping\n", os.urandom(60000)):
            for i in range(0, len(chunk), 16384):
                c.write_data(1, chunk[i:i + 16384])
            got = b""
            for _ in range(100):  # bounded: each read waits for at least one DATA frame
                if len(got) >= len(chunk):
                    break
                more, ended = self.read_data(c, 1, lambda d, n=len(chunk) - len(got): len(d) >= n)
                self.assertFalse(ended)
                got += more
            self.assertEqual(got, chunk)
        # END_STREAM is the client's half-close: the echo server closes after it, and so does
        # the stream.
        c.write_data(1, b"", end_stream=True)
        data, ended = self.read_data(c, 1, lambda d: False)
        self.assertTrue(ended)
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_active") == 0 and
                     st.get("cluster.echo.upstream_cx_active") == 0,
                     "the tunnel and its upstream connection closed")

    def test_connect_not_enabled_is_refused(self):
        s = self.start(upgrade_types=("websocket",))
        c = self.conn(s)
        c.request(1, [(":method", "CONNECT"), (":authority", "anywhere:22")], end_stream=False)
        r = c.read_response(1)
        self.assertEqual(r.status, "501", r)


if __name__ == "__main__":
    harness.main()
