"""A raw HTTP/2 client for conformance and protection tests: frames, not requests.

Unlike an HTTP/2 library, nothing here refuses to send what the protocol forbids: any frame can be
built with any type, flags, stream identifier, reserved bit, declared length (even one that does
not match the payload), padding and payload, and any header block can be raw bytes. Reading is
strict about nothing either: what the server sends comes back as events, in order.

Python 3 standard library plus Debian's python3-hpack (HPACK encoder/decoder and Huffman tables).

    import h2frames as h2

    conn = h2.H2Conn("127.0.0.1", port, tls=True)       # TCP + TLS with ALPN "h2", unverified
    conn.connect()
    conn.handshake()                                     # preface, SETTINGS exchange, both ACKs
    block = conn.encode_headers(h2.request_headers("127.0.0.1:%d" % port, tls=True))
    conn.write_headers(1, block, end_stream=True)
    result = conn.wait_for(h2.is_end_stream(1), h2.is_goaway())
    conn.close()

Frames go out with the write_* methods (one per frame type, plus write_frame() and send() for
anything malformed) and come back from read_event() / wait_for():

- read_event(timeout) returns the next Event: a FRAME (with .frame), or CLOSED (the peer closed
  the connection: a clean EOF at a frame boundary, or a reset, with .reset set), TIMEOUT (nothing
  complete within the timeout), or ERROR (an EOF in the middle of a frame, a TLS failure, a frame
  the strict parser rejects...). After CLOSED or ERROR the connection is .closed.
- wait_for(*matchers, timeout=) reads events until one of the matchers (predicates on an Event)
  accepts one, the connection closes, or the overall timeout passes, and returns a WaitResult
  with every event seen. Matchers: is_goaway(*codes), is_rst_stream(*codes, stream_id=),
  is_closed(), is_frame(type, stream_id=, flags=), is_end_stream(stream_id), is_ping_ack(data),
  is_settings_ack(), any_of(...), and any function of an Event.

send_draining(data) writes a flood (thousands of frames) while reading what the server answers,
so that neither side blocks on a full socket.

Every wait is bounded: by its timeout (default DEFAULT_TIMEOUT seconds) and by a maximum number
of events; nothing sleeps. Writes are bounded by write_timeout: a peer that stops reading cannot
hang a test (the write is abandoned and reported in .write_errors).

By default, like h2spec, the connection refills flow-control windows for DATA it receives
(auto_window_update): when a window reaches zero or below, a WINDOW_UPDATE tops it up by 65535
plus the deficit. Turn it off to test flow control itself.
"""

import select
import socket
import ssl
import struct
import time

import hpack
from hpack import huffman, huffman_constants

# ------------------------------------------------------------------------------------------------
# Protocol constants (RFC 9113)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_LEN = 9
DEFAULT_WINDOW_SIZE = 65535
DEFAULT_MAX_FRAME_SIZE = 16384
MAX_FRAME_LENGTH = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1
DEFAULT_TIMEOUT = 2.0

DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

FRAME_NAMES = {
    DATA: "DATA", HEADERS: "HEADERS", PRIORITY: "PRIORITY", RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS", PUSH_PROMISE: "PUSH_PROMISE", PING: "PING", GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION",
}

# Flags (several share a bit; they mean different things on different frame types).
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8
SETTINGS_NO_RFC7540_PRIORITIES = 0x9

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xa
ENHANCE_YOUR_CALM = 0xb
INADEQUATE_SECURITY = 0xc
HTTP_1_1_REQUIRED = 0xd

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR", PROTOCOL_ERROR: "PROTOCOL_ERROR", INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR", SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED", FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM", CANCEL: "CANCEL", COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR", ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY", HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}


def error_name(code):
    """"PROTOCOL_ERROR" for 1; "unknown error code 0xff" for codes RFC 9113 does not define."""
    return ERROR_NAMES.get(code, "unknown error code 0x%x" % code)


def frame_name(frame_type):
    return FRAME_NAMES.get(frame_type, "UNKNOWN_0x%02x" % frame_type)


# ------------------------------------------------------------------------------------------------
# Building frames (bytes). Nothing is validated: these build exactly what they are asked to.


def frame_bytes(frame_type, flags, stream_id, payload=b"", length=None, reserved=False):
    """One frame: a 9-octet header and the payload.

    length: the Length field to declare (default: len(payload)); a different value makes a frame
      whose header lies about its size. Values above 2^24-1 are truncated to 24 bits.
    reserved: set the reserved R bit before the stream identifier.
    stream_id: may be any 31-bit value, 0 included.
    """
    if length is None:
        length = len(payload)
    sid = stream_id & 0x7fffffff
    if reserved:
        sid |= 0x80000000
    header = struct.pack(">I", length & 0xffffff)[1:] + struct.pack(">BBI", frame_type & 0xff,
                                                                     flags & 0xff, sid)
    return header + bytes(payload)


def _padded(payload, pad_length, padding):
    """Prefixes the Pad Length octet and appends padding: pad_length is the declared Pad Length
    (0..255); padding the bytes actually appended (default: pad_length zero octets)."""
    if padding is None:
        padding = b"\x00" * pad_length
    return bytes([pad_length & 0xff]) + payload + padding


def data_frame(stream_id, data=b"", end_stream=False, pad_length=None, padding=None, flags=0,
               **kw):
    """A DATA frame. pad_length (not None) sets PADDED: the Pad Length field, and pad_length zero
    octets unless `padding` gives the bytes (a Pad Length larger than the rest of the payload
    makes an invalid frame)."""
    payload = bytes(data)
    if end_stream:
        flags |= FLAG_END_STREAM
    if pad_length is not None:
        flags |= FLAG_PADDED
        payload = _padded(payload, pad_length, padding)
    return frame_bytes(DATA, flags, stream_id, payload, **kw)


def priority_fields(depends_on=0, weight=16, exclusive=False):
    """The 5 octets of a priority specification. weight is the wire value (0..255, i.e. the
    weight minus one)."""
    dep = depends_on & 0x7fffffff
    if exclusive:
        dep |= 0x80000000
    return struct.pack(">IB", dep, weight & 0xff)


def headers_frame(stream_id, block=b"", end_stream=False, end_headers=True, priority=None,
                  pad_length=None, padding=None, flags=0, **kw):
    """A HEADERS frame carrying the header block fragment `block` (raw bytes).

    priority: None, or (depends_on, weight, exclusive) to set PRIORITY and its 5 octets.
    pad_length / padding: as data_frame().
    """
    payload = b""
    if priority is not None:
        flags |= FLAG_PRIORITY
        payload += priority_fields(*priority)
    payload += bytes(block)
    if end_stream:
        flags |= FLAG_END_STREAM
    if end_headers:
        flags |= FLAG_END_HEADERS
    if pad_length is not None:
        flags |= FLAG_PADDED
        payload = _padded(payload, pad_length, padding)
    return frame_bytes(HEADERS, flags, stream_id, payload, **kw)


def priority_frame(stream_id, depends_on=0, weight=16, exclusive=False, flags=0, **kw):
    return frame_bytes(PRIORITY, flags, stream_id, priority_fields(depends_on, weight, exclusive),
                       **kw)


def rst_stream_frame(stream_id, error_code=CANCEL, flags=0, **kw):
    return frame_bytes(RST_STREAM, flags, stream_id, struct.pack(">I", error_code & 0xffffffff),
                       **kw)


def settings_payload(settings):
    """settings: an iterable of (identifier, value) pairs, or a dict; order and duplicates are
    kept for a list."""
    if isinstance(settings, dict):
        settings = settings.items()
    return b"".join(struct.pack(">HI", ident & 0xffff, value & 0xffffffff)
                    for ident, value in settings)


def settings_frame(settings=(), ack=False, stream_id=0, flags=0, **kw):
    if ack:
        flags |= FLAG_ACK
    return frame_bytes(SETTINGS, flags, stream_id, settings_payload(settings), **kw)


def push_promise_frame(stream_id, promised_stream_id, block=b"", end_headers=True,
                       pad_length=None, padding=None, flags=0, **kw):
    payload = struct.pack(">I", promised_stream_id & 0x7fffffff) + bytes(block)
    if end_headers:
        flags |= FLAG_END_HEADERS
    if pad_length is not None:
        flags |= FLAG_PADDED
        payload = _padded(payload, pad_length, padding)
    return frame_bytes(PUSH_PROMISE, flags, stream_id, payload, **kw)


def ping_frame(data=b"\x00" * 8, ack=False, stream_id=0, flags=0, **kw):
    """A PING frame; `data` is sent as given (8 octets for a valid one)."""
    if ack:
        flags |= FLAG_ACK
    return frame_bytes(PING, flags, stream_id, bytes(data), **kw)


def goaway_frame(last_stream_id=0, error_code=NO_ERROR, debug_data=b"", stream_id=0, flags=0,
                 **kw):
    payload = struct.pack(">II", last_stream_id & 0x7fffffff, error_code & 0xffffffff)
    return frame_bytes(GOAWAY, flags, stream_id, payload + bytes(debug_data), **kw)


def window_update_frame(stream_id, increment, flags=0, reserved_increment_bit=False, **kw):
    """A WINDOW_UPDATE; increment may be 0 or above 2^31-1 (an invalid frame)."""
    value = increment & 0xffffffff
    if reserved_increment_bit:
        value |= 0x80000000
    return frame_bytes(WINDOW_UPDATE, flags, stream_id, struct.pack(">I", value), **kw)


def continuation_frame(stream_id, block=b"", end_headers=True, flags=0, **kw):
    if end_headers:
        flags |= FLAG_END_HEADERS
    return frame_bytes(CONTINUATION, flags, stream_id, bytes(block), **kw)


# ------------------------------------------------------------------------------------------------
# HPACK: raw representations (RFC 7541), for valid and deliberately invalid header blocks.


def hpack_integer(value, prefix_bits, first_byte_flags=0):
    """An HPACK integer with an N-bit prefix; first_byte_flags are OR-ed into the first octet."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = [first_byte_flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def huffman_encode(data):
    """The Huffman code of `data` (bytes or str), padded with the EOS prefix (1 bits)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    encoder = huffman.HuffmanEncoder(huffman_constants.REQUEST_CODES,
                                     huffman_constants.REQUEST_CODES_LENGTH)
    return encoder.encode(data)


def hpack_string(data, huffman_coded=False):
    """A string literal: H bit, 7-bit-prefix length, octets."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if huffman_coded:
        data = huffman_encode(data)
    return hpack_integer(len(data), 7, 0x80 if huffman_coded else 0) + data


def hpack_indexed(index):
    """Indexed Header Field Representation (index 0 is invalid; so is one past both tables)."""
    return hpack_integer(index, 7, 0x80)


INDEXING_INCREMENTAL = "incremental"
INDEXING_NONE = "without"
INDEXING_NEVER = "never"


def hpack_literal(name, value, indexing=INDEXING_NONE, name_index=None, huffman_coded=False):
    """A literal header field. name_index (not None) refers to the name by index instead of
    sending it (name is then ignored). indexing: INDEXING_INCREMENTAL, INDEXING_NONE or
    INDEXING_NEVER."""
    if indexing == INDEXING_INCREMENTAL:
        prefix, flags = 6, 0x40
    elif indexing == INDEXING_NEVER:
        prefix, flags = 4, 0x10
    else:
        prefix, flags = 4, 0x00
    if name_index is not None:
        out = hpack_integer(name_index, prefix, flags)
    else:
        out = bytes([flags]) + hpack_string(name, huffman_coded)
    return out + hpack_string(value, huffman_coded)


def hpack_table_size_update(size):
    """Dynamic Table Size Update (valid only at the start of a header block)."""
    return hpack_integer(size, 5, 0x20)


def request_headers(authority, method="GET", path="/", tls=False, scheme=None, extra=()):
    """The pseudo-header fields of a request, in h2spec's order, plus extra (name, value) pairs."""
    if scheme is None:
        scheme = "https" if tls else "http"
    return [(":method", method), (":scheme", scheme), (":path", path),
            (":authority", authority)] + list(extra)


# ------------------------------------------------------------------------------------------------
# Reading: frames and events


class Frame:
    """A frame as received. `length` is the Length field (= len(payload) once read whole)."""

    __slots__ = ("type", "flags", "stream_id", "payload", "reserved", "length")

    def __init__(self, frame_type, flags, stream_id, payload, reserved=False):
        self.type = frame_type
        self.flags = flags
        self.stream_id = stream_id
        self.payload = payload
        self.reserved = reserved
        self.length = len(payload)

    @property
    def name(self):
        return frame_name(self.type)

    def has(self, flag):
        return bool(self.flags & flag)

    @property
    def end_stream(self):
        return self.type in (DATA, HEADERS) and self.has(FLAG_END_STREAM)

    @property
    def end_headers(self):
        return self.type in (HEADERS, PUSH_PROMISE, CONTINUATION) and self.has(FLAG_END_HEADERS)

    @property
    def ack(self):
        return self.type in (SETTINGS, PING) and self.has(FLAG_ACK)

    @property
    def error_code(self):
        """RST_STREAM's and GOAWAY's error code (None for other frames or a short payload)."""
        if self.type == RST_STREAM and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0]
        if self.type == GOAWAY and len(self.payload) >= 8:
            return struct.unpack(">I", self.payload[4:8])[0]
        return None

    @property
    def last_stream_id(self):
        if self.type == GOAWAY and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0] & 0x7fffffff
        return None

    @property
    def debug_data(self):
        return self.payload[8:] if self.type == GOAWAY else b""

    @property
    def window_increment(self):
        if self.type == WINDOW_UPDATE and len(self.payload) >= 4:
            return struct.unpack(">I", self.payload[:4])[0] & 0x7fffffff
        return None

    @property
    def settings(self):
        """SETTINGS: the list of (identifier, value) pairs."""
        if self.type != SETTINGS:
            return []
        p = self.payload
        return [struct.unpack(">HI", p[i:i + 6]) for i in range(0, len(p) - len(p) % 6, 6)]

    def _unpadded(self):
        p = self.payload
        if self.has(FLAG_PADDED) and self.type in (DATA, HEADERS, PUSH_PROMISE) and p:
            pad = p[0]
            return p[1:len(p) - pad] if pad < len(p) else b""
        return p

    @property
    def data(self):
        """DATA: the data without padding."""
        return self._unpadded() if self.type == DATA else b""

    @property
    def block_fragment(self):
        """HEADERS / PUSH_PROMISE / CONTINUATION: the header block fragment."""
        if self.type == HEADERS:
            p = self._unpadded()
            return p[5:] if self.has(FLAG_PRIORITY) else p
        if self.type == PUSH_PROMISE:
            return self._unpadded()[4:]
        if self.type == CONTINUATION:
            return self.payload
        return b""

    def invalid_reason(self):
        """Why a strict receiver (Go's http2.Framer, which h2spec uses) would refuse to parse
        this frame from a server, or None. Only checks that depend on the frame alone."""
        t, p, sid = self.type, self.payload, self.stream_id
        padded = self.has(FLAG_PADDED) and t in (DATA, HEADERS, PUSH_PROMISE)
        if t in (DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION) and sid == 0:
            return "%s frame with stream ID 0" % self.name
        if padded and (not p or p[0] >= len(p)):
            return "%s frame with invalid padding" % self.name
        if t == PRIORITY and len(p) != 5:
            return "PRIORITY frame with length %d" % len(p)
        if t == RST_STREAM and len(p) != 4:
            return "RST_STREAM frame with length %d" % len(p)
        if t == SETTINGS and (sid != 0 or len(p) % 6 or (self.ack and p)):
            return "invalid SETTINGS frame"
        if t == PING and (sid != 0 or len(p) != 8):
            return "invalid PING frame"
        if t == GOAWAY and (sid != 0 or len(p) < 8):
            return "invalid GOAWAY frame"
        if t == WINDOW_UPDATE and (len(p) != 4 or self.window_increment == 0):
            return "invalid WINDOW_UPDATE frame"
        return None

    def __str__(self):
        """The way h2spec prints a frame."""
        return "%s Frame (length:%d, flags:0x%02x, stream_id:%d)" % (
            self.name, self.length, self.flags, self.stream_id)

    def describe(self):
        """A longer form, with the fields that matter (error codes, settings, ...)."""
        extra = ""
        if self.type in (RST_STREAM, GOAWAY) and self.error_code is not None:
            extra = ", error:%s" % error_name(self.error_code)
            if self.type == GOAWAY:
                extra += ", last_stream_id:%d" % self.last_stream_id
                if self.debug_data:
                    extra += ", debug:%r" % self.debug_data[:80]
        elif self.type == SETTINGS:
            extra = ", settings:%s" % self.settings
        elif self.type == WINDOW_UPDATE:
            extra = ", increment:%s" % self.window_increment
        elif self.type == PING:
            extra = ", data:%r" % self.payload
        return str(self)[:-1] + extra + ")"

    __repr__ = describe


FRAME = "frame"
CLOSED = "closed"
TIMEOUT = "timeout"
ERROR = "error"


class Event:
    """What read_event() saw: kind FRAME (frame set), CLOSED (reset tells a TCP reset from a clean
    EOF), TIMEOUT, or ERROR (error: a message)."""

    __slots__ = ("kind", "frame", "error", "reset", "time")

    def __init__(self, kind, frame=None, error=None, reset=False):
        self.kind = kind
        self.frame = frame
        self.error = error
        self.reset = reset
        self.time = time.monotonic()

    def is_frame(self, frame_type=None):
        return self.kind == FRAME and (frame_type is None or self.frame.type == frame_type)

    def __str__(self):
        """As h2spec prints an event."""
        if self.kind == FRAME:
            return str(self.frame)
        if self.kind == CLOSED:
            return "Connection closed" + (" (reset)" if self.reset else "")
        if self.kind == TIMEOUT:
            return "Timeout"
        return "Error: %s" % self.error

    def __repr__(self):
        return self.frame.describe() if self.kind == FRAME else str(self)


class WaitResult:
    """wait_for()'s answer: matched (bool), event (the matching event, or the last one seen: the
    close, the timeout...), events (all of them, in order)."""

    def __init__(self, matched, event, events):
        self.matched = matched
        self.event = event
        self.events = events

    def __bool__(self):
        return self.matched

    def frames(self, frame_type=None):
        return [e.frame for e in self.events if e.is_frame(frame_type)]

    def __repr__(self):
        return "WaitResult(matched=%s, event=%r, %d events)" % (self.matched, self.event,
                                                                 len(self.events))


# Matchers for wait_for(): functions of an Event.


def is_closed(reset_counts=True):
    """The connection closed (a reset too unless reset_counts=False)."""
    return lambda ev: ev.kind == CLOSED and (reset_counts or not ev.reset)


def is_frame(frame_type, stream_id=None, flags=None):
    """A frame of that type (on that stream, with all those flags set, when given)."""
    def match(ev):
        return (ev.is_frame(frame_type) and (stream_id is None or ev.frame.stream_id == stream_id)
                and (flags is None or ev.frame.flags & flags == flags))
    return match


def is_goaway(*codes):
    """A GOAWAY (with one of those error codes, when given)."""
    return lambda ev: ev.is_frame(GOAWAY) and (not codes or ev.frame.error_code in codes)


def is_rst_stream(*codes, stream_id=None):
    """A RST_STREAM (with one of those codes, on that stream, when given)."""
    return lambda ev: (ev.is_frame(RST_STREAM) and (not codes or ev.frame.error_code in codes)
                       and (stream_id is None or ev.frame.stream_id == stream_id))


def is_end_stream(stream_id=None):
    """A DATA or HEADERS frame with END_STREAM (on that stream, when given)."""
    return lambda ev: (ev.kind == FRAME and ev.frame.end_stream
                       and (stream_id is None or ev.frame.stream_id == stream_id))


def is_ping_ack(data=None):
    return lambda ev: (ev.is_frame(PING) and ev.frame.ack
                       and (data is None or ev.frame.payload == bytes(data)))


def is_settings_ack():
    return lambda ev: ev.is_frame(SETTINGS) and ev.frame.ack


def any_of(*matchers):
    return lambda ev: any(m(ev) for m in matchers)


# ------------------------------------------------------------------------------------------------
# The connection


class H2Conn:
    """One client connection (TCP, or TLS with ALPN) to an HTTP/2 server.

    tls: wrap in TLS, offering `alpn` (default ["h2"]); with verify=False (the default) the
      server's certificate is not checked. server_name: SNI (default: host unless an IP address).
    timeout: the default for read_event()/wait_for(), and the connect/handshake bound.
    write_timeout: how long one write may block before it is abandoned.
    auto_window_update: refill windows for received DATA, as h2spec does (see the module doc).
    strict_frames: report a frame Go's http2.Framer would refuse to parse as an ERROR event, as
      h2spec does (Frame.invalid_reason()).
    """

    def __init__(self, host, port, tls=False, alpn=("h2",), verify=False, server_name=None,
                 cafile=None, timeout=DEFAULT_TIMEOUT, write_timeout=10.0,
                 auto_window_update=True, strict_frames=False, max_events=100000):
        self.host = host
        self.port = port
        self.tls = tls
        self.alpn = list(alpn) if alpn else []
        self.verify = verify
        self.server_name = server_name
        self.cafile = cafile
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.auto_window_update = auto_window_update
        self.strict_frames = strict_frames
        self.max_events = max_events

        self.sock = None
        self.alpn_protocol = None
        self.closed = False
        self.close_event = None
        self.write_errors = []
        self.events_seen = 0
        self.server_settings = {}
        self.recv_windows = {0: DEFAULT_WINDOW_SIZE}
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self._buf = bytearray()

    # -- connecting

    def connect(self):
        """Opens the TCP connection and, for TLS, does the handshake; raises on failure (OSError,
        ssl.SSLError, or ConnectionError when ALPN did not select a protocol we offered)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((self.host, self.port))
            if self.tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                if self.verify and self.cafile:
                    ctx.load_verify_locations(cafile=self.cafile)
                elif self.verify:
                    ctx.load_default_certs()
                else:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                if self.alpn:
                    ctx.set_alpn_protocols(self.alpn)
                name = self.server_name
                if name is None and not _is_ip(self.host):
                    name = self.host
                sock = ctx.wrap_socket(sock, server_hostname=name)
                self.alpn_protocol = sock.selected_alpn_protocol()
                if self.alpn and self.alpn_protocol not in self.alpn:
                    raise ConnectionError("ALPN negotiation failed (selected: %r)"
                                          % self.alpn_protocol)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.closed = True

    def __enter__(self):
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing

    def send(self, data):
        """Writes raw bytes. Returns False (and records the error in write_errors) when the write
        failed or did not finish within write_timeout; never raises for a dead connection."""
        if self.sock is None:
            self.write_errors.append("not connected")
            return False
        try:
            self.sock.settimeout(self.write_timeout)
            self.sock.sendall(data)
            return True
        except (OSError, ssl.SSLError) as e:
            self.write_errors.append("%s: %s" % (type(e).__name__, e))
            return False

    def write_frame(self, frame_type, flags, stream_id, payload=b"", **kw):
        """Any frame (see frame_bytes() for length= and reserved=). Like Go's http2.Framer, a frame
        whose payload is 2^24 octets or more is not sent (returns False): its length cannot be
        encoded."""
        if len(payload) > MAX_FRAME_LENGTH and kw.get("length") is None:
            self.write_errors.append("frame too large: %d octets" % len(payload))
            return False
        return self.send(frame_bytes(frame_type, flags, stream_id, payload, **kw))

    def _write(self, raw):
        if len(raw) - FRAME_HEADER_LEN > MAX_FRAME_LENGTH:
            self.write_errors.append("frame too large: %d octets" % (len(raw) - 9))
            return False
        return self.send(raw)

    def write_preface(self):
        return self.send(PREFACE)

    def write_data(self, stream_id, data=b"", end_stream=False, **kw):
        return self._write(data_frame(stream_id, data, end_stream, **kw))

    def write_headers(self, stream_id, block, end_stream=False, end_headers=True, **kw):
        return self._write(headers_frame(stream_id, block, end_stream, end_headers, **kw))

    def write_priority(self, stream_id, depends_on=0, weight=16, exclusive=False, **kw):
        return self._write(priority_frame(stream_id, depends_on, weight, exclusive, **kw))

    def write_rst_stream(self, stream_id, error_code=CANCEL, **kw):
        return self._write(rst_stream_frame(stream_id, error_code, **kw))

    def write_settings(self, settings=(), **kw):
        return self._write(settings_frame(settings, **kw))

    def write_settings_ack(self, **kw):
        return self._write(settings_frame((), ack=True, **kw))

    def write_push_promise(self, stream_id, promised_stream_id, block, end_headers=True, **kw):
        return self._write(push_promise_frame(stream_id, promised_stream_id, block, end_headers,
                                              **kw))

    def write_ping(self, data=b"\x00" * 8, ack=False, **kw):
        return self._write(ping_frame(data, ack, **kw))

    def write_goaway(self, last_stream_id=0, error_code=NO_ERROR, debug_data=b"", **kw):
        return self._write(goaway_frame(last_stream_id, error_code, debug_data, **kw))

    def write_window_update(self, stream_id, increment, **kw):
        return self._write(window_update_frame(stream_id, increment, **kw))

    def write_continuation(self, stream_id, block, end_headers=True, **kw):
        return self._write(continuation_frame(stream_id, block, end_headers, **kw))

    # -- HPACK

    def encode_headers(self, headers, huffman_coded=True):
        """Encodes (name, value) pairs with the connection's HPACK encoder (its dynamic table
        carries over to the next call, as the server's decoder expects). Names are sent as given,
        upper case included."""
        return self.encoder.encode(list(headers), huffman=huffman_coded)

    def set_encoder_table_size(self, size):
        """The next encode_headers() starts with a Dynamic Table Size Update to `size`."""
        self.encoder.header_table_size = size

    def decode_headers(self, block):
        """Decodes a whole header block from the server with the connection's decoder: a list of
        (name, value) str pairs. Raises hpack.HPACKError on a bad block."""
        return [(n if isinstance(n, str) else n.decode("latin-1"),
                 v if isinstance(v, str) else v.decode("latin-1"))
                for n, v in self.decoder.decode(bytes(block), raw=True)]

    # -- reading

    def _fill(self, deadline):
        """Reads more bytes into the buffer. Returns None, or an Event ending the read."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Event(TIMEOUT)
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return Event(TIMEOUT)
        except ssl.SSLWantReadError:
            return None
        except ConnectionResetError:
            return Event(CLOSED, reset=True)
        except (ssl.SSLError, OSError) as e:
            return Event(ERROR, error="%s: %s" % (type(e).__name__, e))
        if not chunk:
            if self._buf:
                return Event(ERROR, error="unexpected EOF (%d octets of a partial frame)"
                             % len(self._buf))
            return Event(CLOSED)
        self._buf += chunk
        return None

    def read_event(self, timeout=None):
        """The next event (see the module doc), waiting at most `timeout` seconds (default: the
        connection's). CLOSED and ERROR also mark the connection closed; reading a closed
        connection returns its closing event again."""
        if self.closed or self.sock is None:
            return self.close_event or Event(CLOSED)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            ev = self._pop_event()
            if ev is not None:
                return ev
            ev = self._fill(deadline)
            if ev is not None:
                return self._ended(ev)

    def _ended(self, ev):
        if ev.kind in (CLOSED, ERROR):
            self.closed = True
            self.close_event = ev
        return ev

    def _pop_event(self):
        """The event for the first frame of the buffer if it is complete, else None."""
        if len(self._buf) < FRAME_HEADER_LEN:
            return None
        length = int.from_bytes(self._buf[0:3], "big")
        if len(self._buf) < FRAME_HEADER_LEN + length:
            return None
        header = bytes(self._buf[:FRAME_HEADER_LEN])
        payload = bytes(self._buf[FRAME_HEADER_LEN:FRAME_HEADER_LEN + length])
        del self._buf[:FRAME_HEADER_LEN + length]
        frame_type, flags, sid = struct.unpack(">BBI", header[3:])
        frame = Frame(frame_type, flags, sid & 0x7fffffff, payload, reserved=bool(sid >> 31))
        self.events_seen += 1
        if self.strict_frames:
            reason = frame.invalid_reason()
            if reason:
                return self._ended(Event(ERROR, error=reason))
        if frame.type == SETTINGS and not frame.ack:
            self.server_settings.update(dict(frame.settings))
        if frame.type == DATA and self.auto_window_update:
            self._consume_window(frame)
        return Event(FRAME, frame=frame)

    def send_draining(self, data, timeout=None, chunk=16384):
        """Writes `data` (e.g. thousands of PING or SETTINGS frames) while reading what the server
        sends meanwhile, so that a server answering each frame cannot block a flood on a full
        socket. Returns (all of data written?, the events read), stopping at a close, an error
        or the overall timeout (default: write_timeout). What arrives after the last write is
        left for read_event()/wait_for()."""
        deadline = time.monotonic() + (self.write_timeout if timeout is None else timeout)
        view = memoryview(bytes(data))
        pos = 0
        events = []
        sock = self.sock
        while pos < len(view) and not self.closed and sock is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.write_errors.append("send_draining: timeout after %d of %d octets"
                                         % (pos, len(view)))
                events.append(Event(TIMEOUT))
                break
            pending = self.tls and sock.pending()
            readable, writable, _ = select.select([sock], [sock], [],
                                                  0 if pending else min(remaining, 1.0))
            sock.settimeout(0.0)
            if readable or pending:
                try:
                    got = sock.recv(65536)
                    if got:
                        self._buf += got
                    else:
                        events.append(self._ended(
                            Event(ERROR, error="unexpected EOF (%d octets of a partial frame)"
                                  % len(self._buf)) if self._buf else Event(CLOSED)))
                        break
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ConnectionResetError:
                    events.append(self._ended(Event(CLOSED, reset=True)))
                    break
                except (ssl.SSLError, OSError) as e:
                    events.append(self._ended(Event(ERROR, error="%s: %s" % (type(e).__name__,
                                                                             e))))
                    break
                while not self.closed:
                    ev = self._pop_event()
                    if ev is None:
                        break
                    events.append(ev)
                    sock.settimeout(0.0)  # a WINDOW_UPDATE written meanwhile made it blocking
            if writable and not self.closed:
                try:
                    pos += sock.send(view[pos:pos + chunk])
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except OSError as e:
                    self.write_errors.append("%s: %s" % (type(e).__name__, e))
                    break
        if sock is not None and self.sock is not None:
            sock.settimeout(self.timeout)
        return pos == len(view), events

    def _consume_window(self, frame):
        """h2spec's flow control for received DATA: refill a window that reaches zero."""
        for sid in (frame.stream_id, 0):
            window = self.recv_windows.get(sid, DEFAULT_WINDOW_SIZE) - frame.length
            if window <= 0:
                increment = DEFAULT_WINDOW_SIZE - window
                self.write_window_update(sid, increment)
                window += increment
            self.recv_windows[sid] = window

    def wait_for(self, *matchers, timeout=None, event_timeout=None, max_events=None):
        """Reads events until one satisfies a matcher (-> matched), the connection closes or errs,
        or the overall `timeout` passes (default: the connection's timeout). event_timeout bounds
        each read (default: what remains of the overall timeout). With no matcher, collects
        everything until then and reports matched=False. Never raises for network errors."""
        total = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + total
        limit = self.max_events if max_events is None else max_events
        events = []
        while len(events) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ev = Event(TIMEOUT)
                events.append(ev)
                return WaitResult(False, ev, events)
            ev = self.read_event(min(remaining, event_timeout or remaining))
            events.append(ev)
            if any(m(ev) for m in matchers):
                return WaitResult(True, ev, events)
            if ev.kind in (CLOSED, ERROR):
                return WaitResult(False, ev, events)
        return WaitResult(False, events[-1] if events else None, events)

    def drain(self, timeout=None):
        """Every event until the connection closes or `timeout` passes with nothing new."""
        return self.wait_for(timeout=timeout)

    # -- higher level

    def handshake(self, settings=((SETTINGS_INITIAL_WINDOW_SIZE, DEFAULT_WINDOW_SIZE),),
                  timeout=None, send_preface=True):
        """As h2spec: the client preface and a SETTINGS frame, then reads until both the server's
        SETTINGS (answered with an ACK) and the ACK of ours arrived. Other frames are skipped.
        Raises ConnectionError (closed/error) or TimeoutError; returns the server's settings."""
        if send_preface:
            self.write_preface()
        self.write_settings(settings)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got_settings = got_ack = False
        while not (got_settings and got_ack):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Timeout")
            ev = self.read_event(remaining)
            if ev.kind == TIMEOUT:
                raise TimeoutError("Timeout")
            if ev.kind != FRAME:
                raise ConnectionError(str(ev))
            if ev.frame.type != SETTINGS:
                continue
            if ev.frame.ack:
                got_ack = True
            else:
                got_settings = True
                self.write_settings_ack()
        return self.server_settings

    def max_frame_size(self):
        """The server's SETTINGS_MAX_FRAME_SIZE (default 16384)."""
        return self.server_settings.get(SETTINGS_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE)

    def request(self, stream_id, headers, body=None, end_stream=None):
        """Sends a request: HEADERS (split into CONTINUATION frames if the block exceeds the
        server's max frame size) and, if body is given, one DATA frame per max frame size."""
        block = self.encode_headers(headers)
        if end_stream is None:
            end_stream = body is None
        size = self.max_frame_size()
        chunks = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
        self.write_headers(stream_id, chunks[0], end_stream=end_stream and body is None,
                           end_headers=len(chunks) == 1)
        for i, chunk in enumerate(chunks[1:], 1):
            self.write_continuation(stream_id, chunk, end_headers=i == len(chunks) - 1)
        if body is not None:
            body = bytes(body)
            parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
            for i, part in enumerate(parts):
                self.write_data(stream_id, part, end_stream=end_stream and i == len(parts) - 1)

    def read_response(self, stream_id, timeout=None):
        """Reads until the stream ends (END_STREAM or RST_STREAM on it), the connection closes, or
        `timeout`. Returns a Response (headers decoded; trailers separate)."""
        response = Response(stream_id)
        block = b""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            ev = self.read_event(max(remaining, 0)) if remaining > 0 else Event(TIMEOUT)
            response.events.append(ev)
            if ev.kind != FRAME:
                response.end = ev
                return response
            f = ev.frame
            if f.type in (HEADERS, CONTINUATION, PUSH_PROMISE):
                block += f.block_fragment
                if f.end_headers:
                    try:
                        fields = self.decode_headers(block)
                    except Exception as e:  # noqa: BLE001 - reported, not raised
                        fields = [("x-h2frames-decode-error", str(e))]
                    block = b""
                    if f.type == PUSH_PROMISE or f.stream_id != stream_id:
                        pass
                    elif response.headers is None or (response.status or "").startswith("1"):
                        response.headers = fields
                    else:
                        response.trailers = fields
            if f.stream_id == stream_id:
                if f.type == DATA:
                    response.body += f.data
                if f.type == RST_STREAM or f.end_stream:
                    response.end = ev
                    return response
            if f.type == GOAWAY:
                response.goaway = f


class Response:
    """read_response()'s answer. end: the event that ended it (END_STREAM frame, RST_STREAM,
    CLOSED, TIMEOUT...)."""

    def __init__(self, stream_id):
        self.stream_id = stream_id
        self.headers = None
        self.trailers = None
        self.body = b""
        self.end = None
        self.goaway = None
        self.events = []

    @property
    def status(self):
        for name, value in self.headers or []:
            if name == ":status":
                return value
        return None

    @property
    def complete(self):
        return self.end is not None and self.end.kind == FRAME and self.end.frame.end_stream

    @property
    def reset_code(self):
        if self.end is not None and self.end.is_frame(RST_STREAM):
            return self.end.frame.error_code
        return None

    def header(self, name):
        for n, v in self.headers or []:
            if n == name:
                return v
        return None

    def __repr__(self):
        return "Response(stream=%d, status=%s, body=%d octets, end=%r)" % (
            self.stream_id, self.status, len(self.body), self.end)


def _is_ip(host):
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            pass
    return False


def connect(host, port, tls=False, handshake=True, **kw):
    """An H2Conn, connected and (by default) past the SETTINGS exchange."""
    conn = H2Conn(host, port, tls=tls, **kw)
    conn.connect()
    if handshake:
        try:
            conn.handshake()
        except BaseException:
            conn.close()
            raise
    return conn
