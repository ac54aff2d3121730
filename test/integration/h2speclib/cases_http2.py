"""h2spec's "http2" cases: RFC 7540/9113, sections 3 to 8 (94 cases, and the strict one)."""

import h2frames as h2

from .core import (H2SPEC8, MAX_STREAMS_TRIED, R_CONN_PROTOCOL, R_STREAM_PROTOCOL,
                   R_TREAT_CONN_PROTOCOL, R_TREAT_STREAM_PROTOCOL, UNKNOWN_FRAME, ZERO8, Group,
                   Skipped, TestError, case, post_headers)
from .verifier import (event_str, expected_goaway, expected_rst,
                       ping_ack_or_close_since_3dd93987, server_data_length,
                       verify_connection_close, verify_connection_error, verify_data_length_one,
                       verify_event_type, verify_headers_frame,
                       verify_ping_frame_or_connection_close, verify_ping_frame_with_ack,
                       verify_settings_frame_with_ack, verify_stream_close, verify_stream_error)


HTTP2 = Group("http2", "", "Hypertext Transfer Protocol Version 2 (HTTP/2)")

h3 = Group("http2", "3", "Starting HTTP/2", HTTP2)
h3_5 = Group("http2", "3.5", "HTTP/2 Connection Preface", h3)


@case(h3_5, "Sends client connection preface",
      "The server connection preface MUST be the first frame the server sends in the HTTP/2 "
      "connection.")
def _(c, conn):
    conn.send(h2.PREFACE)
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, h2.DEFAULT_WINDOW_SIZE)])
    actual = conn.wait_event()
    if not (actual.is_frame(h2.SETTINGS) and not actual.frame.ack):
        raise TestError(["SETTINGS Frame (flags:0x00)"], event_str(actual))


@case(h3_5, "Sends invalid connection preface", "The endpoint MUST terminate the TCP connection.")
def _(c, conn):
    if not conn.send(b"INVALID CONNECTION PREFACE\r\n\r\n"):
        raise RuntimeError(conn.write_errors[-1])
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h4 = Group("http2", "4", "HTTP Frames", HTTP2)
h4_1 = Group("http2", "4.1", "Frame Format", h4)


@case(h4_1, "Sends a frame with unknown type",
      "The endpoint MUST ignore and discard any frame that has a type that is unknown.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(UNKNOWN_FRAME)
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


@case(h4_1, "Sends a frame with undefined flag",
      "The endpoint MUST ignore any flags that is undefined.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x08\x06\x16\x00\x00\x00\x00" + ZERO8)  # PING, flags 0x16
    verify_event_type(conn, h2.PING)


@case(h4_1, "Sends a frame with reserved field bit",
      "The endpoint MUST ignore the value of reserved field.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x08\x06\x16\x80\x00\x00\x00" + ZERO8)  # PING, flags 0x16, R set
    verify_event_type(conn, h2.PING)


h4_2 = Group("http2", "4.2", "Frame Size", h4)


@case(h4_2, "Sends a DATA frame with 2^14 octets in length",
      "The endpoint MUST be capable of receiving and minimally processing frames up to 2^14 "
      "octets in length.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    # h2spec sends the server's SETTINGS_MAX_FRAME_SIZE, whatever it is (16384 by default).
    conn.write_data(1, b"x" * conn.max_frame_size(), end_stream=True)
    verify_headers_frame(conn, 1)


@case(h4_2, "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE",
      "The endpoint MUST send an error code of FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    # Beyond 2^24-1 octets the frame cannot be written (Go's framer refuses too).
    conn.write_data(1, b"x" * (conn.max_frame_size() + 1), end_stream=True)
    verify_stream_error(conn, h2.FRAME_SIZE_ERROR)


@case(h4_2, "Sends a large size HEADERS frame that exceeds the SETTINGS_MAX_FRAME_SIZE",
      "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers() + c.dummy_headers(5)), end_stream=True)
    verify_connection_error(conn, h2.FRAME_SIZE_ERROR)


h4_3 = Group("http2", "4.3", "Header Compression and Decompression", h4)


@case(h4_3, "Sends invalid header block fragment",
      "The endpoint MUST terminate the connection with a connection error of type "
      "COMPRESSION_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    # HEADERS with a literal with incremental indexing that has no name length nor string.
    if not conn.send(b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x40"):
        raise RuntimeError(conn.write_errors[-1])
    verify_connection_error(conn, h2.COMPRESSION_ERROR)


@case(h4_3, "Sends a PRIORITY frame while sending the header blocks",
      "The endpoint MUST terminate the connection with a connection error of type "
      "PROTOCOL_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_headers=False)
    conn.write_priority(1, 0, 255, False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h4_3, "Sends a HEADERS frame to another stream while sending the header blocks",
      "The endpoint MUST terminate the connection with a connection error of type "
      "PROTOCOL_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_headers=False)
    conn.write_headers(3, conn.encode(c.common_headers()), end_stream=True)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h5 = Group("http2", "5", "Streams and Multiplexing", HTTP2)
h5_1 = Group("http2", "5.1", "Stream States", h5)


@case(h5_1, "idle: Sends a DATA frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_data(1, b"test", end_stream=True)
    if c.release:
        verify_connection_error(conn, h2.PROTOCOL_ERROR)
    else:
        # h2spec master (f03bb16) also accepts STREAM_CLOSED here (RFC 9113 6.1).
        verify_connection_error(conn, h2.PROTOCOL_ERROR, h2.STREAM_CLOSED)


@case(h5_1, "idle: Sends a RST_STREAM frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_rst_stream(1, h2.CANCEL)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h5_1, "idle: Sends a WINDOW_UPDATE frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_window_update(1, 100)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h5_1, "idle: Sends a CONTINUATION frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_continuation(1, conn.encode(c.common_headers()), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


_R_STREAM_CLOSED = "The endpoint MUST respond with a stream error of type STREAM_CLOSED."


@case(h5_1, "half closed (remote): Sends a DATA frame", _R_STREAM_CLOSED)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "half closed (remote): Sends a HEADERS frame", _R_STREAM_CLOSED)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "half closed (remote): Sends a CONTINUATION frame", _R_STREAM_CLOSED)
def _(c, conn):
    conn.spec_handshake()
    block = conn.encode(c.common_headers())
    conn.write_headers(1, block, end_stream=True)
    conn.write_continuation(1, block, end_headers=True)
    verify_stream_error(conn, h2.STREAM_CLOSED, h2.PROTOCOL_ERROR)


_R_AFTER_RST = "The endpoint MUST treat this as a stream error of type STREAM_CLOSED."


@case(h5_1, "closed: Sends a DATA frame after sending RST_STREAM frame", _R_AFTER_RST)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_rst_stream(1, h2.CANCEL)
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "closed: Sends a HEADERS frame after sending RST_STREAM frame", _R_AFTER_RST)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_rst_stream(1, h2.CANCEL)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "closed: Sends a CONTINUATION frame after sending RST_STREAM frame", _R_AFTER_RST)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_rst_stream(1, h2.CANCEL)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_stream_error(conn, h2.STREAM_CLOSED, h2.PROTOCOL_ERROR)


_R_AFTER_END = "The endpoint MUST treat this as a connection error of type STREAM_CLOSED."


@case(h5_1, "closed: Sends a DATA frame", _R_AFTER_END)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_stream_close(conn)
    conn.write_data(1, b"test", end_stream=True)
    # Since h2spec issue #88 (2018), a stream error is accepted too (RFC 9113 6.1), whatever the
    # requirement says.
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "closed: Sends a HEADERS frame", _R_AFTER_END)
def _(c, conn):
    conn.spec_handshake()
    block = conn.encode(c.common_headers())
    conn.write_headers(1, block, end_stream=True)
    verify_stream_close(conn)
    conn.write_headers(1, block, end_stream=True)  # the same octets again, as h2spec does
    verify_connection_error(conn, h2.STREAM_CLOSED)


@case(h5_1, "closed: Sends a CONTINUATION frame", _R_AFTER_END)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_stream_close(conn)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.STREAM_CLOSED, h2.PROTOCOL_ERROR)


h5_1_1 = Group("http2", "5.1.1", "Stream Identifiers", h5_1)


@case(h5_1_1, "Sends even-numbered stream identifier", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(2, conn.encode(c.common_headers()), end_stream=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h5_1_1, "Sends stream identifier that is numerically smaller than previous",
      R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(5, conn.encode(c.common_headers()), end_stream=True)
    conn.write_headers(3, conn.encode(c.common_headers()), end_stream=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h5_1_2 = Group("http2", "5.1.2", "Stream Concurrency", h5_1)


@case(h5_1_2, "Sends HEADERS frames that causes their advertised concurrent stream limit to be "
      "exceeded", "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR or "
      "REFUSED_STREAM.")
def _(c, conn):
    conn.spec_handshake()
    max_streams = conn.server_settings.get(h2.SETTINGS_MAX_CONCURRENT_STREAMS)
    if max_streams is None:
        raise Skipped("SETTINGS_MAX_CONCURRENT_STREAMS is unlimited")
    if max_streams >= MAX_STREAMS_TRIED:
        raise RuntimeError("SETTINGS_MAX_CONCURRENT_STREAMS %d: more streams than this suite "
                           "opens (%d)" % (max_streams, MAX_STREAMS_TRIED))
    # INITIAL_WINDOW_SIZE 0 keeps the server from finishing (closing) the streams.
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    block = conn.encode(c.common_headers())
    frames = b"".join(h2.headers_frame(1 + 2 * i, block, end_stream=True)
                      for i in range(max_streams + 1))
    conn.send(frames)
    verify_stream_error(conn, h2.PROTOCOL_ERROR, h2.REFUSED_STREAM)


h5_3 = Group("http2", "5.3", "Stream Priority", h5)
h5_3_1 = Group("http2", "5.3.1", "Stream Dependencies", h5_3)


@case(h5_3_1, "Sends HEADERS frame that depends on itself", R_TREAT_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True,
                       priority=(1, 255, False))
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


@case(h5_3_1, "Sends PRIORITY frame that depend on itself", R_TREAT_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_priority(1, 1, 255, False)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


h5_4 = Group("http2", "5.4", "Error Handling", h5)
h5_4_1 = Group("http2", "5.4.1", "Connection Error Handling", h5_4)
_PING_STREAM_3 = b"\x00\x00\x08\x06\x00\x00\x00\x00\x03" + ZERO8  # PING on stream 3


@case(h5_4_1, "Sends an invalid PING frame for connection close",
      "The endpoint MUST close the TCP connection")
def _(c, conn):
    conn.spec_handshake()
    conn.send(_PING_STREAM_3)
    verify_connection_close(conn)


@case(h5_4_1, "Sends an invalid PING frame to receive GOAWAY frame",
      "An endpoint that encounters a connection error SHOULD first send a GOAWAY frame",
      strict=True)
def _(c, conn):
    conn.spec_handshake()
    conn.send(_PING_STREAM_3)
    actual, passed = conn.wait_event_by_type(h2.GOAWAY)
    if not passed:
        raise TestError([expected_goaway(h2.PROTOCOL_ERROR)], event_str(actual))


h5_5 = Group("http2", "5.5", "Extending HTTP/2", h5)


@case(h5_5, "Sends an unknown extension frame",
      "The endpoint MUST ignore unknown or unsupported values in all extensible protocol "
      "elements.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(UNKNOWN_FRAME)
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


@case(h5_5, "Sends an unknown extension frame in the middle of a header block",
      "The endpoint MUST treat as a connection error of type PROTOCOL_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, end_headers=False)
    conn.send(UNKNOWN_FRAME)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h6 = Group("http2", "6", "Frame Definitions", HTTP2)
h6_1 = Group("http2", "6.1", "DATA", h6)


@case(h6_1, "Sends a DATA frame with 0x0 stream identifier", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_data(0, b"test", end_stream=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_1, "Sends a DATA frame on the stream that is not in \"open\" or \"half-closed (local)\" "
      "state", "The endpoint MUST respond with a stream error of type STREAM_CLOSED.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)), end_stream=True)
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h6_1, "Sends a DATA frame with invalid pad length", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c) + [["content-length", "4"]]))
    # DATA, PADDED | END_STREAM, length 5, Pad Length 6.
    conn.send(b"\x00\x00\x05\x00\x09\x00\x00\x00\x01" + b"\x06Test")
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h6_2 = Group("http2", "6.2", "HEADERS", h6)


@case(h6_2, "Sends a HEADERS frame without the END_HEADERS flag, and a PRIORITY frame",
      R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_headers=False)
    conn.write_priority(1, 0, 255, False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_2, "Sends a HEADERS frame to another stream while sending a HEADERS frame",
      R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_headers=False)
    conn.write_headers(3, conn.encode(c.common_headers()), end_stream=True)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_2, "Sends a HEADERS frame with 0x0 stream identifier", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(0, conn.encode(c.common_headers()), end_stream=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_2, "Sends a HEADERS frame with invalid pad length", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    block = conn.encode(c.common_headers())
    # HEADERS, PADDED | END_HEADERS | END_STREAM, length len(block)+1, Pad Length len(block)+2.
    header = bytearray(b"\x00\x00\x00\x01\x0d\x00\x00\x00\x01")
    header[2] = (len(block) + 1) & 0xff
    conn.send(bytes(header))
    conn.send(bytes([(len(block) + 2) & 0xff]))
    conn.send(block)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


h6_3 = Group("http2", "6.3", "PRIORITY", h6)


@case(h6_3, "Sends a PRIORITY frame with 0x0 stream identifier", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_priority(0, 0, 255, False)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_3, "Sends a PRIORITY frame with a length other than 5 octets",
      "The endpoint MUST respond with a stream error of type FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.send(b"\x00\x00\x04\x02\x00\x00\x00\x00\x01" + b"\x80\x00\x00\x01")
    verify_stream_error(conn, h2.FRAME_SIZE_ERROR)


h6_4 = Group("http2", "6.4", "RST_STREAM", h6)


@case(h6_4, "Sends a RST_STREAM frame with 0x0 stream identifier", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_rst_stream(0, h2.CANCEL)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_4, "Sends a RST_STREAM frame on a idle stream", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_rst_stream(1, h2.CANCEL)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_4, "Sends a RST_STREAM frame with a length other than 4 octets",
      "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.send(b"\x00\x00\x03\x03\x00\x00\x00\x00\x01" + b"\x00\x00\x00")
    verify_stream_error(conn, h2.FRAME_SIZE_ERROR)


h6_5 = Group("http2", "6.5", "SETTINGS", h6)
_R_CONN_FRAME_SIZE = "The endpoint MUST respond with a connection error of type FRAME_SIZE_ERROR."


@case(h6_5, "Sends a SETTINGS frame with ACK flag and payload", _R_CONN_FRAME_SIZE)
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x01\x04\x01\x00\x00\x00\x00" + b"\x00")
    verify_connection_error(conn, h2.FRAME_SIZE_ERROR)


@case(h6_5, "Sends a SETTINGS frame with a stream identifier other than 0x0", R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x01" + b"\x00\x03\x00\x00\x00\x64")
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_5, "Sends a SETTINGS frame with a length other than a multiple of 6 octets",
      _R_CONN_FRAME_SIZE)
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x03\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00")
    verify_stream_error(conn, h2.PROTOCOL_ERROR, h2.FRAME_SIZE_ERROR)


h6_5_2 = Group("http2", "6.5.2", "Defined SETTINGS Parameters", h6_5)


def _bad_setting(desc, requirement, ident, value, code):
    @case(h6_5_2, desc, requirement)
    def _(c, conn):
        conn.spec_handshake()
        conn.write_settings([(ident, value)])
        verify_connection_error(conn, code)


_bad_setting("SETTINGS_ENABLE_PUSH (0x2): Sends the value other than 0 or 1",
             R_TREAT_CONN_PROTOCOL, h2.SETTINGS_ENABLE_PUSH, 2, h2.PROTOCOL_ERROR)
_bad_setting("SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends the value above the maximum flow control "
             "window size", "The endpoint MUST treat this as a connection error of type "
             "FLOW_CONTROL_ERROR.", h2.SETTINGS_INITIAL_WINDOW_SIZE, 2147483648,
             h2.FLOW_CONTROL_ERROR)
_bad_setting("SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value below the initial value",
             R_TREAT_CONN_PROTOCOL, h2.SETTINGS_MAX_FRAME_SIZE, 16383, h2.PROTOCOL_ERROR)
_bad_setting("SETTINGS_MAX_FRAME_SIZE (0x5): Sends the value above the maximum allowed frame "
             "size", R_TREAT_CONN_PROTOCOL, h2.SETTINGS_MAX_FRAME_SIZE, 16777216,
             h2.PROTOCOL_ERROR)


@case(h6_5_2, "Sends a SETTINGS frame with unknown identifier",
      "The endpoint MUST ignore that setting.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_settings([(0xFF, 1)])
    conn.write_ping(ZERO8)
    verify_ping_frame_with_ack(conn, ZERO8)


h6_5_3 = Group("http2", "6.5.3", "Settings Synchronization", h6_5)


@case(h6_5_3, "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE",
      "The endpoint MUST process the values in the settings in the order they apper.")
def _(c, conn):
    if server_data_length(c) < 1:
        raise Skipped("the response has no body")
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 100),
                         (h2.SETTINGS_INITIAL_WINDOW_SIZE, 1)])
    verify_settings_frame_with_ack(conn)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_data_length_one(conn, 1)


@case(h6_5_3, "Sends a SETTINGS frame without ACK flag",
      "The endpoint MUST immediately emit a SETTINGS frame with the ACK flag set.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_ENABLE_PUSH, 0)])
    verify_settings_frame_with_ack(conn)


h6_7 = Group("http2", "6.7", "PING", h6)


@case(h6_7, "Sends a PING frame",
      "The endpoint MUST sends a PING frame with ACK, with an identical payload.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_ping(H2SPEC8)
    verify_ping_frame_with_ack(conn, H2SPEC8)


@case(h6_7, "Sends a PING frame with ACK", "The endpoint MUST NOT respond to PING frames with ACK.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_ping(b"invalid\x00", ack=True)
    conn.write_ping(H2SPEC8)
    verify_ping_frame_with_ack(conn, H2SPEC8)


@case(h6_7, "Sends a PING frame with a stream identifier field value other than 0x0",
      R_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + ZERO8)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_7, "Sends a PING frame with a length field value other than 8",
      "The endpoint MUST treat this as a connection error of type FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x06\x06\x00\x00\x00\x00\x00" + b"\x00" * 6)
    verify_connection_error(conn, h2.FRAME_SIZE_ERROR)


h6_8 = Group("http2", "6.8", "GOAWAY", h6)


@case(h6_8, "Sends a GOAWAY frame with a stream identifier other than 0x0", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01" + ZERO8)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h6_9 = Group("http2", "6.9", "WINDOW_UPDATE", h6)


@case(h6_9, "Sends a WINDOW_UPDATE frame with a flow control window increment of 0",
      R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_window_update(0, 0)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_9, "Sends a WINDOW_UPDATE frame with a flow control window increment of 0 on a stream",
      R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_window_update(1, 0)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


@case(h6_9, "Sends a WINDOW_UPDATE frame with a length other than 4 octets",
      "The endpoint MUST treat this as a connection error of type FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x03\x08\x00\x00\x00\x00\x00" + b"\x00\x00\x01")
    verify_connection_error(conn, h2.FRAME_SIZE_ERROR)


h6_9_1 = Group("http2", "6.9.1", "The Flow-Control Window", h6_9)


@case(h6_9_1, "Sends SETTINGS frame to set the initial window size to 1 and sends HEADERS frame",
      "The endpoint MUST NOT send a flow-controlled frame with a length that exceeds the space "
      "available.")
def _(c, conn):
    if server_data_length(c) < 1:
        raise Skipped("the response has no body")
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 1)])
    verify_settings_frame_with_ack(conn)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_data_length_one(conn, 1)


@case(h6_9_1, "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above "
      "2^31-1", "The endpoint MUST sends a GOAWAY frame with a FLOW_CONTROL_ERROR code.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_window_update(0, 2147483647)
    conn.write_window_update(0, 2147483647)
    actual, passed = conn.wait_event_by_type(h2.GOAWAY)
    if not (passed and actual.frame.error_code == h2.FLOW_CONTROL_ERROR):
        raise TestError([expected_goaway(h2.FLOW_CONTROL_ERROR)], event_str(actual))


@case(h6_9_1, "Sends multiple WINDOW_UPDATE frames increasing the flow control window to above "
      "2^31-1 on a stream",
      "The endpoint MUST sends a RST_STREAM frame with a FLOW_CONTROL_ERROR code.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()))
    conn.write_window_update(1, 2147483647)
    conn.write_window_update(1, 2147483647)
    actual, passed = conn.wait_event_by_type(h2.RST_STREAM)
    # As h2spec: a RST_STREAM on another stream is not looked at (and passes).
    if passed and actual.frame.stream_id == 1:
        passed = actual.frame.error_code == h2.FLOW_CONTROL_ERROR
    if not passed:
        raise TestError([expected_rst(h2.FLOW_CONTROL_ERROR)], event_str(actual))


h6_9_2 = Group("http2", "6.9.2", "Initial Flow-Control Window Size", h6_9)


@case(h6_9_2, "Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame",
      "The endpoint MUST adjust the size of all stream flow-control windows.")
def _(c, conn):
    if server_data_length(c) < 1:
        raise Skipped("the response has no body")
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 0)])
    verify_settings_frame_with_ack(conn)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 1)])
    verify_data_length_one(conn, 1)


@case(h6_9_2, "Sends a SETTINGS frame for window size to be negative",
      "The endpoint MUST track the negative flow-control window.")
def _(c, conn):
    if server_data_length(c) < 5:
        raise Skipped("the response body is shorter than 5 octets")
    conn.spec_handshake()
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 3)])
    verify_settings_frame_with_ack(conn)
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True)
    verify_event_type(conn, h2.DATA)
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, 2)])
    verify_settings_frame_with_ack(conn)
    conn.write_window_update(1, 2)
    verify_data_length_one(conn, 1)


@case(h6_9_2, "Sends a SETTINGS_INITIAL_WINDOW_SIZE settings with an exceeded maximum window size "
      "value", "The endpoint MUST treat this as a connection error of type FLOW_CONTROL_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.send(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x04\x80\x00\x00\x00")
    verify_connection_error(conn, h2.FLOW_CONTROL_ERROR)


h6_10 = Group("http2", "6.10", "CONTINUATION", h6)
_R_CONT = R_CONN_PROTOCOL


@case(h6_10, "Sends multiple CONTINUATION frames preceded by a HEADERS frame",
      "The endpoint must accept the frame.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, end_headers=False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_headers_frame(conn, 1)


@case(h6_10, "Sends a CONTINUATION frame followed by any frame other than CONTINUATION",
      R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)), end_headers=False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=False)
    conn.write_data(1, b"test", end_stream=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_10, "Sends a CONTINUATION frame with 0x0 stream identifier", _R_CONT)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, end_headers=False)
    conn.write_continuation(0, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_10, "Sends a CONTINUATION frame preceded by a HEADERS frame with END_HEADERS flag",
      _R_CONT)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, end_headers=True)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_10, "Sends a CONTINUATION frame preceded by a CONTINUATION frame with END_HEADERS flag",
      _R_CONT)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(c.common_headers()), end_stream=True, end_headers=False)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


@case(h6_10, "Sends a CONTINUATION frame preceded by a DATA frame", _R_CONT)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)), end_headers=False)
    conn.write_data(1, b"test", end_stream=True)
    conn.write_continuation(1, conn.encode(c.dummy_headers(1)), end_headers=False)
    conn.write_continuation(0, conn.encode(c.dummy_headers(1)), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


h7 = Group("http2", "7", "Error Codes", HTTP2)


@case(h7, "Sends a GOAWAY frame with unknown error code",
      "The endpoint MUST NOT trigger any special behavior.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_goaway(0, 0xff, b"")
    conn.write_ping(H2SPEC8)
    verify_ping_frame_or_connection_close(conn, H2SPEC8)


@case(h7, "Sends a RST_STREAM frame with unknown error code",
      "The endpoint MUST NOT trigger any special behavior.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_rst_stream(1, 0xff)
    conn.write_ping(ZERO8)
    ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


h8 = Group("http2", "8", "HTTP Message Exchanges", HTTP2)
h8_1 = Group("http2", "8.1", "HTTP Request/Response Exchange", h8)


@case(h8_1, "Sends a second HEADERS frame without the END_STREAM flag", R_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test")
    conn.write_headers(1, conn.encode([["x-test", "ok"]]), end_stream=False)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


h8_1_2 = Group("http2", "8.1.2", "HTTP Header Fields", h8_1)


def _malformed(group, desc, headers_fn):
    @case(group, desc, R_STREAM_PROTOCOL)
    def _(c, conn):
        conn.spec_handshake()
        conn.write_headers(1, conn.encode(headers_fn(c)), end_stream=True)
        verify_stream_error(conn, h2.PROTOCOL_ERROR)


_malformed(h8_1_2, "Sends a HEADERS frame that contains the header field name in uppercase "
           "letters", lambda c: c.common_headers() + [["X-TEST", "ok"]])

h8_1_2_1 = Group("http2", "8.1.2.1", "Pseudo-Header Fields", h8_1_2)
_malformed(h8_1_2_1, "Sends a HEADERS frame that contains a unknown pseudo-header field",
           lambda c: c.common_headers() + [[":test", "ok"]])
_malformed(h8_1_2_1, "Sends a HEADERS frame that contains the pseudo-header field defined for "
           "response", lambda c: c.common_headers() + [[":status", "200"]])


@case(h8_1_2_1, "Sends a HEADERS frame that contains a pseudo-header field as trailers",
      R_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c)))
    conn.write_data(1, b"test")
    conn.write_headers(1, conn.encode([[":method", "POST"]]), end_stream=False)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


_malformed(h8_1_2_1, "Sends a HEADERS frame that contains a pseudo-header field that appears in "
           "a header block after a regular header field",
           lambda c: [["x-test", "ok"]] + c.common_headers())

h8_1_2_2 = Group("http2", "8.1.2.2", "Connection-Specific Header Fields", h8_1_2)
_malformed(h8_1_2_2, "Sends a HEADERS frame that contains the connection-specific header field",
           lambda c: c.common_headers() + [["connection", "keep-alive"]])
_malformed(h8_1_2_2, "Sends a HEADERS frame that contains the TE header field with any value "
           "other than \"trailers\"",
           lambda c: c.common_headers() + [["trailers", "test"], ["te", "trailers, deflate"]])

h8_1_2_3 = Group("http2", "8.1.2.3", "Request Pseudo-Header Fields", h8_1_2)


def _with_empty_path(c):
    headers = c.common_headers()
    headers[2][1] = ""
    return headers


def _pick(*indexes):
    return lambda c: [c.common_headers()[i] for i in indexes]


def _duplicate(index):
    return lambda c: c.common_headers() + [list(c.common_headers()[index])]


_malformed(h8_1_2_3, "Sends a HEADERS frame with empty \":path\" pseudo-header field",
           _with_empty_path)
# h2spec drops the first of [:scheme, :path, :authority] again: :method and :scheme are both
# missing (kept as it is).
_malformed(h8_1_2_3, "Sends a HEADERS frame that omits \":method\" pseudo-header field",
           _pick(2, 3))
_malformed(h8_1_2_3, "Sends a HEADERS frame that omits \":scheme\" pseudo-header field",
           _pick(0, 2, 3))
_malformed(h8_1_2_3, "Sends a HEADERS frame that omits \":path\" pseudo-header field",
           _pick(0, 1, 3))
_malformed(h8_1_2_3, "Sends a HEADERS frame with duplicated \":method\" pseudo-header field",
           _duplicate(0))
_malformed(h8_1_2_3, "Sends a HEADERS frame with duplicated \":scheme\" pseudo-header field",
           _duplicate(1))
_malformed(h8_1_2_3, "Sends a HEADERS frame with duplicated \":path\" pseudo-header field",
           _duplicate(2))

h8_1_2_6 = Group("http2", "8.1.2.6", "Malformed Requests and Responses", h8_1_2)


@case(h8_1_2_6, "Sends a HEADERS frame with the \"content-length\" header field which does not "
      "equal the DATA frame payload length", R_TREAT_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c) + [["content-length", "1"]]))
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


@case(h8_1_2_6, "Sends a HEADERS frame with the \"content-length\" header field which does not "
      "equal the sum of the multiple DATA frames payload length", R_TREAT_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(post_headers(c) + [["content-length", "1"]]))
    conn.write_data(1, b"test")
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


h8_2 = Group("http2", "8.2", "Server Push", h8)


@case(h8_2, "Sends a PUSH_PROMISE frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_push_promise(1, 3, conn.encode(c.common_headers()), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)

