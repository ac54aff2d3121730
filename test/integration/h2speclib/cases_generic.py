"""h2spec's "generic" cases: generic tests for an HTTP/2 server (44 cases)."""

import h2frames as h2

from .core import H2SPEC8, ZERO8, Group, TestError, case, post_headers
from .verifier import (event_str, ping_ack_or_close_since_3dd93987, verify_event_type,
                       verify_headers_frame, verify_ping_frame_or_connection_close,
                       verify_ping_frame_with_ack, verify_settings_frame_with_ack,
                       verify_stream_close)


GENERIC = Group("generic", "", "Generic tests for HTTP/2 server")

g1 = Group("generic", "1", "Starting HTTP/2", GENERIC)


@case(g1, "Sends a client connection preface",
      "The endpoint MUST accept client connection preface.")
def _(c, conn):
    conn.send(h2.PREFACE)
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, h2.DEFAULT_WINDOW_SIZE)])
    actual = conn.wait_event()
    if not (actual.is_frame(h2.SETTINGS) and not actual.frame.ack):
        raise TestError(["SETTINGS Frame (flags:0x00)"], event_str(actual))


g2 = Group("generic", "2", "Streams and Multiplexing", GENERIC)


@case(g2, "Sends a PRIORITY frame on idle stream", "The endpoint MUST accept PRIORITY frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_priority(1, 0, 255, False)
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


@case(g2, "Sends a WINDOW_UPDATE frame on half-closed (remote) stream",
      "The endpoint MUST accept WINDOW_UPDATE frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_window_update(1, 1)
    verify_event_type(conn, h2.DATA)


@case(g2, "Sends a PRIORITY frame on half-closed (remote) stream",
      "The endpoint MUST accept PRIORITY frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_priority(1, 0, 255, False)
    conn.write_window_update(1, 1)
    verify_event_type(conn, h2.DATA)


@case(g2, "Sends a RST_STREAM frame on half-closed (remote) stream",
      "The endpoint MUST accept RST_STREAM frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_rst_stream(1, h2.CANCEL)
    conn.write_ping(ZERO8)
    ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


@case(g2, "Sends a PRIORITY frame on closed stream", "The endpoint MUST accept PRIORITY frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_stream_close(conn)
    conn.write_priority(1, 0, 255, False)
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


g3 = Group("generic", "3", "Frame Definitions", GENERIC)
g3_1 = Group("generic", "3.1", "DATA", g3)


@case(g3_1, "Sends a DATA frame", "The endpoint MUST accept DATA frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_1, "Sends multiple DATA frames", "The endpoint MUST accept multiple DATA frames.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test")
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_1, "Sends a DATA frame with padding", "The endpoint MUST accept DATA frame with padding.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test", end_stream=True, pad_length=5)
    verify_headers_frame(conn, 1)


g3_2 = Group("generic", "3.2", "HEADERS", g3)


@case(g3_2, "Sends a HEADERS frame", "The endpoint MUST accept HEADERS frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_2, "Sends a HEADERS frame with padding",
      "The endpoint MUST accept HEADERS frame with padding.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, pad_length=8)
    verify_headers_frame(conn, 1)


@case(g3_2, "Sends a HEADERS frame with priority",
      "The endpoint MUST accept HEADERS frame with priority.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True,
                       priority=(0, 255, False))
    verify_headers_frame(conn, 1)


g3_3 = Group("generic", "3.3", "PRIORITY", g3)


def _priority_then_get(c, conn, priority_stream, depends_on, weight, exclusive):
    conn.spec_handshake()
    conn.write_priority(priority_stream, depends_on, weight, exclusive)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_3, "Sends a PRIORITY frame with priority 1",
      "The endpoint MUST accept PRIORITY frame with priority 1.")
def _(c, conn):
    _priority_then_get(c, conn, 1, 0, 0, False)


@case(g3_3, "Sends a PRIORITY frame with priority 256",
      "The endpoint MUST accept PRIORITY frame with priority 256.")
def _(c, conn):
    _priority_then_get(c, conn, 1, 0, 255, False)


@case(g3_3, "Sends a PRIORITY frame with stream dependency",
      "The endpoint MUST accept PRIORITY frame with stream dependency.")
def _(c, conn):
    _priority_then_get(c, conn, 3, 1, 0, False)


@case(g3_3, "Sends a PRIORITY frame with exclusive",
      "The endpoint MUST accept PRIORITY frame with exclusive.")
def _(c, conn):
    _priority_then_get(c, conn, 1, 0, 0, True)


@case(g3_3, "Sends a PRIORITY frame for an idle stream, then send a HEADER frame for a lower "
      "stream ID", "The endpoint MUST respond the HEADER frame.")
def _(c, conn):
    _priority_then_get(c, conn, 3, 0, 255, False)


g3_4 = Group("generic", "3.4", "RST_STREAM", g3)


@case(g3_4, "Sends a RST_STREAM frame", "The endpoint MUST accept RST_STREAM frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_rst_stream(1, h2.CANCEL)
    conn.write_ping(ZERO8)
    ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


g3_5 = Group("generic", "3.5", "SETTINGS", g3)


@case(g3_5, "Sends a SETTINGS frame", "The endpoint MUST accept SETTINGS frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_HEADER_TABLE_SIZE, 4096), (h2.SETTINGS_ENABLE_PUSH, 1),
                         (h2.SETTINGS_MAX_CONCURRENT_STREAMS, 100),
                         (h2.SETTINGS_INITIAL_WINDOW_SIZE, 65535),
                         (h2.SETTINGS_MAX_FRAME_SIZE, 16384),
                         (h2.SETTINGS_MAX_HEADER_LIST_SIZE, 100)])
    verify_settings_frame_with_ack(conn)


g3_7 = Group("generic", "3.7", "PING", g3)


@case(g3_7, "Sends a PING frame", "The endpoint MUST accept PING frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_ping(H2SPEC8)
    verify_ping_frame_with_ack(conn, H2SPEC8)


g3_8 = Group("generic", "3.8", "GOAWAY", g3)


@case(g3_8, "Sends a GOAWAY frame", "The endpoint MUST accept GOAWAY frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_goaway(0, h2.NO_ERROR, b"h2spec")
    conn.write_ping(H2SPEC8)
    verify_ping_frame_or_connection_close(conn, H2SPEC8)


g3_9 = Group("generic", "3.9", "WINDOW_UPDATE", g3)


@case(g3_9, "Sends a WINDOW_UPDATE frame with stream ID 0",
      "The endpoint MUST accept WINDOW_UPDATE frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_window_update(0, 1)
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


@case(g3_9, "Sends a WINDOW_UPDATE frame with stream ID 1",
      "The endpoint MUST accept WINDOW_UPDATE frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_window_update(1, 1)
    verify_headers_frame(conn, 1)


g3_10 = Group("generic", "3.10", "CONTINUATION", g3)


@case(g3_10, "Sends a CONTINUATION frame", "The endpoint MUST accept CONTINUATION frame.")
def _(c, conn):
    conn.spec_handshake()
    block = conn.encode(c.common_headers())
    conn.write_headers(1, block[:5], end_stream=True, end_headers=False)
    conn.write_continuation(1, block[5:], end_headers=True)
    verify_headers_frame(conn, 1)


@case(g3_10, "Sends multiple CONTINUATION frames",
      "The endpoint MUST accept multiple CONTINUATION frames.")
def _(c, conn):
    conn.spec_handshake()
    block = conn.encode(c.common_headers())
    conn.write_headers(1, block[:5], end_stream=True, end_headers=False)
    conn.write_continuation(1, block[5:10], end_headers=False)
    conn.write_continuation(1, block[10:], end_headers=True)
    verify_headers_frame(conn, 1)


g4 = Group("generic", "4", "HTTP Message Exchanges", GENERIC)


@case(g4, "Sends a GET request", "The endpoint MUST respond to the request.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_headers_frame(conn, 1)


@case(g4, "Sends a HEAD request", "The endpoint MUST respond to the request.")
def _(c, conn):
    conn.spec_handshake()
    headers = c.common_headers()
    headers[0][1] = "HEAD"
    conn.write_headers(1, conn.encode(headers), end_stream=True)
    verify_headers_frame(conn, 1)


@case(g4, "Sends a POST request", "The endpoint MUST respond to the request.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g4, "Sends a POST request with trailers", "The endpoint MUST respond to the request.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c) + [["trailer", "x-test"]]))
    conn.write_data(1, b"test")
    conn.write_headers(1, conn.encode([["x-test", "ok"]]), end_stream=True)
    verify_headers_frame(conn, 1)


g5 = Group("generic", "5", "HPACK", GENERIC)


def _hpack_accepts(desc, requirement, rep, prepend=False):
    @case(g5, desc, requirement)
    def _(c, conn):
        conn.spec_handshake()
        block = conn.encode(c.common_headers())
        block = rep + block if prepend else block + rep
        conn.write_headers(1, block, end_stream=True)
        verify_headers_frame(conn, 1)


# The octets are h2spec's (its descriptions and Huffman use do not always agree; kept as they are).
_hpack_accepts("Sends a indexed header field representation",
               "The endpoint MUST accept indexed header field representation", b"\xba")
_R_INC = "The endpoint MUST accept literal header field with incremental indexing"
_R_WITHOUT = "The endpoint MUST accept literal header field without indexing"
_R_NEVER = "The endpoint MUST accept literal header field never indexed"
_UA_HUFF = b"\x87\xb5\x05\xb1\x61\xcc\x5a\x93\x84\x9c\x48\xac\xa4"       # user-agent: h2spec
_UA_PLAIN = b"\x0a" + b"user-agent" + b"\x06" + b"h2spec"
_XT_PLAIN = b"\x06" + b"x-test" + b"\x06" + b"h2spec"                     # x-test: h2spec
_XT_HUFF = b"\x85\xf2\xb2\x4a\x84\xff\x84\x9c\x48\xac\xa4"
_hpack_accepts("Sends a literal header field with incremental indexing - indexed name", _R_INC,
               b"\x40" + _UA_HUFF)
_hpack_accepts("Sends a literal header field with incremental indexing - indexed name "
               "(with Huffman coding)", _R_INC, b"\x40" + _UA_PLAIN)
_hpack_accepts("Sends a literal header field with incremental indexing - new name", _R_INC,
               b"\x40" + _XT_PLAIN)
_hpack_accepts("Sends a literal header field with incremental indexing - new name "
               "(with Huffman coding)", _R_INC, b"\x40" + _XT_HUFF)
_hpack_accepts("Sends a literal header field without indexing - indexed name", _R_WITHOUT,
               b"\x00" + _UA_PLAIN)
_hpack_accepts("Sends a literal header field without indexing - indexed name "
               "(with Huffman coding)", _R_WITHOUT, b"\x00" + _UA_HUFF)
_hpack_accepts("Sends a literal header field without indexing - new name", _R_WITHOUT,
               b"\x00" + _XT_PLAIN)
_hpack_accepts("Sends a literal header field without indexing - new name (huffman encoded)",
               _R_WITHOUT, b"\x00" + _XT_HUFF)
_hpack_accepts("Sends a literal header field never indexed - indexed name", _R_NEVER,
               b"\x10" + _UA_PLAIN)
_hpack_accepts("Sends a literal header field never indexed - indexed name (huffman encoded)",
               _R_NEVER, b"\x10" + _UA_HUFF)
_hpack_accepts("Sends a literal header field never indexed - new name", _R_NEVER,
               b"\x10" + _XT_HUFF)
_hpack_accepts("Sends a literal header field never indexed - new name (huffman encoded)",
               _R_NEVER, b"\x10" + _XT_HUFF)


@case(g5, "Sends a dynamic table size update",
      "The endpoint MUST accept dynamic table size update")
def _(c, conn):
    conn.spec_handshake()
    # The encoder's table goes down to 128: its next block starts with that update.
    conn.set_encoder_table_size(128)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_headers_frame(conn, 1)


_hpack_accepts("Sends multiple dynamic table size update",
               "The endpoint MUST accept multiple dynamic table size update",
               b"\x3f\x61\x3f\xe1\x1f", prepend=True)  # updates to 128, then 4096

