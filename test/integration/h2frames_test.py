"""Unit tests of h2frames (the raw HTTP/2 client) and of h2spec's registry, without a server:
the peer is the other end of a loopback TCP connection driven by the test itself.

    python3 test/integration/h2frames_test.py -v
"""

import os
import socket
import struct
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2frames as h2  # noqa: E402
import h2spec  # noqa: E402

IO_TIMEOUT = 5.0


def tcp_pair():
    """(client socket, server socket) connected over 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname(), timeout=IO_TIMEOUT)
        server, _ = listener.accept()
    server.settimeout(IO_TIMEOUT)
    return client, server


def attached(client_sock, **kw):
    """An H2Conn over an already connected socket."""
    conn = h2.H2Conn("127.0.0.1", client_sock.getpeername()[1], **kw)
    conn.sock = client_sock
    return conn


class FrameReader:
    """Reads frames from a raw socket (the test's side of the connection)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self, count):
        """[(type, flags, stream_id, payload)] for the next `count` frames."""
        frames = []
        while len(frames) < count:
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("peer closed after %d frames" % len(frames))
                self.buf += data
            length = int.from_bytes(self.buf[:3], "big")
            ftype, flags, sid = struct.unpack(">BBI", self.buf[3:9])
            frames.append((ftype, flags, sid & 0x7fffffff, self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
        return frames


def recv_frames(sock, count):
    """The next `count` frames of a socket on which nothing else is read."""
    return FrameReader(sock).read(count)


class FrameBuildingTest(unittest.TestCase):
    def test_header_fields(self):
        raw = h2.frame_bytes(h2.PING, 0x16, 3, b"12345678", reserved=True)
        self.assertEqual(raw[:9], b"\x00\x00\x08\x06\x16\x80\x00\x00\x03")

    def test_declared_length_may_lie(self):
        raw = h2.frame_bytes(h2.SETTINGS, 0, 0, b"\x00\x03\x00", length=9)
        self.assertEqual(raw, b"\x00\x00\x09\x04\x00\x00\x00\x00\x00\x00\x03\x00")

    def test_headers_with_priority_and_padding(self):
        raw = h2.headers_frame(1, b"AB", end_stream=True, priority=(3, 255, True), pad_length=2)
        self.assertEqual(raw[:9], b"\x00\x00\x0a\x01\x2d\x00\x00\x00\x01")  # 0x20|0x8|0x4|0x1
        self.assertEqual(raw[9:], b"\x02" + b"\x80\x00\x00\x03\xff" + b"AB" + b"\x00\x00")

    def test_data_with_bad_padding(self):
        raw = h2.data_frame(1, b"Test", end_stream=True, pad_length=6, padding=b"")
        self.assertEqual(raw, b"\x00\x00\x05\x00\x09\x00\x00\x00\x01\x06Test")

    def test_control_frames(self):
        self.assertEqual(h2.settings_frame([(4, 0), (2, 1)])[9:], b"\x00\x04\x00\x00\x00\x00"
                         b"\x00\x02\x00\x00\x00\x01")
        self.assertEqual(h2.settings_frame(ack=True), b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        self.assertEqual(h2.goaway_frame(5, h2.PROTOCOL_ERROR, b"x")[9:],
                         b"\x00\x00\x00\x05\x00\x00\x00\x01x")
        self.assertEqual(h2.window_update_frame(0, 0)[9:], b"\x00\x00\x00\x00")
        self.assertEqual(h2.rst_stream_frame(1, 0xff)[9:], b"\x00\x00\x00\xff")
        self.assertEqual(h2.push_promise_frame(1, 3, b"B")[:9],
                         b"\x00\x00\x05\x05\x04\x00\x00\x00\x01")

    def test_hpack_primitives(self):
        # RFC 7541 C.1 and C.2.1, C.4.1.
        self.assertEqual(h2.hpack_integer(10, 5), b"\x0a")
        self.assertEqual(h2.hpack_integer(1337, 5), b"\x1f\x9a\x0a")
        self.assertEqual(h2.hpack_integer(42, 8), b"\x2a")
        self.assertEqual(h2.hpack_literal("custom-key", "custom-header", h2.INDEXING_INCREMENTAL),
                         bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"))
        self.assertEqual(h2.huffman_encode("www.example.com"),
                         bytes.fromhex("f1e3c2e5f23a6ba0ab90f4ff"))
        self.assertEqual(h2.hpack_indexed(70), b"\xc6")
        self.assertEqual(h2.hpack_table_size_update(4097), b"\x3f\xe2\x1f")
        self.assertEqual(h2.hpack_literal(None, "/x", name_index=4), b"\x04\x02/x")

    def test_encoder_keeps_case_and_state(self):
        conn = h2.H2Conn("127.0.0.1", 1)
        first = conn.encode_headers([("X-Test", "ok")])
        self.assertIn(h2.huffman_encode("X-Test"), first)
        self.assertEqual(conn.encode_headers([("X-Test", "ok")]), b"\xbe")  # now indexed (62)
        conn.set_encoder_table_size(128)
        self.assertTrue(conn.encode_headers([(":method", "GET")]).startswith(b"\x3f\x61"))


class ReadingTest(unittest.TestCase):
    def setUp(self):
        self.client, self.server = tcp_pair()
        self.conn = attached(self.client, timeout=2.0)

    def tearDown(self):
        self.conn.close()
        self.server.close()

    def test_frames_arrive_whole_across_writes(self):
        raw = h2.ping_frame(b"abcdefgh", ack=True) + h2.goaway_frame(1, h2.ENHANCE_YOUR_CALM)
        self.server.sendall(raw[:5])
        self.server.sendall(raw[5:20])
        self.server.sendall(raw[20:])
        ev = self.conn.read_event()
        self.assertTrue(ev.is_frame(h2.PING) and ev.frame.ack)
        self.assertEqual(ev.frame.payload, b"abcdefgh")
        ev = self.conn.read_event()
        self.assertEqual((ev.frame.error_code, ev.frame.last_stream_id),
                         (h2.ENHANCE_YOUR_CALM, 1))
        self.assertEqual(str(ev), "GOAWAY Frame (length:8, flags:0x00, stream_id:0)")

    def test_timeout_then_clean_close(self):
        ev = self.conn.read_event(timeout=0.05)
        self.assertEqual(ev.kind, h2.TIMEOUT)
        self.assertFalse(self.conn.closed)
        self.server.close()
        ev = self.conn.read_event()
        self.assertEqual((ev.kind, ev.reset), (h2.CLOSED, False))
        self.assertTrue(self.conn.closed)

    def test_eof_inside_a_frame_is_an_error(self):
        self.server.sendall(h2.ping_frame()[:12])
        self.server.close()
        ev = self.conn.read_event()
        self.assertEqual(ev.kind, h2.ERROR)
        self.assertIn("unexpected EOF", ev.error)

    def test_reset(self):
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.close()
        ev = self.conn.read_event()
        self.assertEqual((ev.kind, ev.reset), (h2.CLOSED, True))

    def test_strict_frames(self):
        self.conn.strict_frames = True
        self.server.sendall(h2.ping_frame(b"short"))
        ev = self.conn.read_event()
        self.assertEqual(ev.kind, h2.ERROR)
        self.assertIn("PING", ev.error)

    def test_wait_for(self):
        self.server.sendall(h2.settings_frame([(3, 100)]) + h2.rst_stream_frame(3, h2.CANCEL)
                            + h2.rst_stream_frame(1, h2.REFUSED_STREAM))
        result = self.conn.wait_for(h2.is_rst_stream(h2.REFUSED_STREAM, h2.PROTOCOL_ERROR))
        self.assertTrue(result.matched)
        self.assertEqual(result.event.frame.stream_id, 1)
        self.assertEqual(len(result.events), 3)
        self.assertEqual(self.conn.server_settings, {3: 100})
        # Nothing else comes: the overall timeout ends the wait.
        result = self.conn.wait_for(h2.is_goaway(), timeout=0.1)
        self.assertFalse(result.matched)
        self.assertEqual(result.event.kind, h2.TIMEOUT)
        # A close ends it too, and is itself a match for is_closed().
        self.server.sendall(h2.goaway_frame(0, h2.NO_ERROR))
        self.server.close()
        result = self.conn.wait_for(h2.is_closed())
        self.assertTrue(result.matched)
        self.assertEqual([e.kind for e in result.events], [h2.FRAME, h2.CLOSED])

    def test_auto_window_update(self):
        data = b"x" * 16384
        self.server.sendall(b"".join(h2.data_frame(1, data) for _ in range(4)))
        for _ in range(4):
            self.assertTrue(self.conn.read_event().is_frame(h2.DATA))
        # 65535 - 4*16384 = -1: each window is topped up by 65535 + the deficit, as h2spec does.
        frames = recv_frames(self.server, 2)
        self.assertEqual([(t, sid) for t, _, sid, _ in frames], [(h2.WINDOW_UPDATE, 1),
                                                                  (h2.WINDOW_UPDATE, 0)])
        self.assertEqual([struct.unpack(">I", f[3])[0] for f in frames], [65536, 65536])
        self.assertEqual(self.conn.recv_windows, {0: 65535, 1: 65535})

    def test_handshake_and_response(self):
        def server():
            reader = FrameReader(self.server)
            got = b""
            while len(got) < len(h2.PREFACE):
                got += self.server.recv(len(h2.PREFACE) - len(got))
            assert got.startswith(h2.PREFACE), got
            frames = reader.read(1)
            assert frames[0][0] == h2.SETTINGS
            self.server.sendall(h2.settings_frame([(h2.SETTINGS_MAX_FRAME_SIZE, 20000)])
                                + h2.window_update_frame(0, 100)
                                + h2.settings_frame(ack=True))
            frames = reader.read(2)  # our ACK, then the request's HEADERS
            assert frames[0][:2] == (h2.SETTINGS, h2.FLAG_ACK), frames
            assert frames[1][0] == h2.HEADERS and frames[1][1] & h2.FLAG_END_STREAM, frames
            import hpack
            enc = hpack.Encoder()
            self.server.sendall(h2.headers_frame(1, enc.encode([(":status", "200")]))
                                + h2.data_frame(1, b"hello")
                                + h2.headers_frame(1, enc.encode([("x-t", "1")]),
                                                   end_stream=True))

        thread = threading.Thread(target=server, daemon=True)
        thread.start()
        settings = self.conn.handshake()
        self.assertEqual(settings[h2.SETTINGS_MAX_FRAME_SIZE], 20000)
        self.conn.request(1, h2.request_headers("example.test"))
        response = self.conn.read_response(1)
        thread.join(IO_TIMEOUT)
        self.assertTrue(response.complete, response)
        self.assertEqual((response.status, response.body, response.trailers),
                         ("200", b"hello", [("x-t", "1")]))


class FloodTest(unittest.TestCase):
    def test_send_draining_does_not_deadlock(self):
        """The peer answers each PING with an ACK and blocks when its answers are not read: a
        plain sendall() of the flood would block both sides; send_draining() reads meanwhile."""
        client, server = tcp_pair()
        for s in (client, server):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        count = 20000  # 340 KB each way: a plain send() of it blocks for good
        answered = []

        def peer():
            reader = FrameReader(server)
            try:
                for i in range(count):
                    ftype, flags, sid, payload = reader.read(1)[0]
                    server.sendall(h2.ping_frame(payload, ack=True))
                    answered.append(i)
            except OSError:
                pass

        thread = threading.Thread(target=peer, daemon=True)
        thread.start()
        conn = attached(client, timeout=5.0, write_timeout=30.0)
        try:
            flood = b"".join(h2.ping_frame(struct.pack(">Q", i)) for i in range(count))
            complete, events = conn.send_draining(flood)
            self.assertTrue(complete, conn.write_errors)
            acks = sum(1 for e in events if e.is_frame(h2.PING) and e.frame.ack)
            while acks < count:
                ev = conn.read_event()
                self.assertTrue(ev.is_frame(h2.PING), ev)
                acks += 1
            thread.join(IO_TIMEOUT)
            self.assertEqual(len(answered), count)
        finally:
            conn.close()
            server.close()
            thread.join(IO_TIMEOUT)


class RegistryTest(unittest.TestCase):
    def test_the_146_cases(self):
        cases = h2spec.all_cases()
        self.assertEqual(len(cases), 146)
        ids = [c.id for c in cases]
        self.assertEqual(len(set(ids)), 146)
        self.assertEqual(ids[0], "generic/1/1")
        self.assertEqual(ids[-1], "hpack/6.3/1")
        counts = {}
        for c in cases:
            counts[c.group.key] = counts.get(c.group.key, 0) + 1
        self.assertEqual(counts, {"generic": 44, "http2": 94, "hpack": 8})
        self.assertEqual([c.id for c in h2spec.all_cases(strict=True) if c.strict],
                         ["http2/5.4.1/2"])

    def test_selection(self):
        sel = [c.id for c in h2spec.all_cases() if h2spec.selected(c.id, ["http2/6.5"])]
        self.assertEqual(len(sel), 10)
        self.assertTrue(all(i.startswith("http2/6.5") for i in sel))
        self.assertTrue(h2spec.selected("http2/6.5/1", ["http2/6.5/1"]))
        self.assertFalse(h2spec.selected("http2/6.5/2", ["http2/6.5/1"]))
        self.assertFalse(h2spec.selected("http2/6.50/1", ["http2/6.5"]))
        self.assertTrue(h2spec.selected("hpack/2.3.3/1", ["hpack"]))


if __name__ == "__main__":
    unittest.main()
