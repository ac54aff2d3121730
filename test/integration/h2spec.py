#!/usr/bin/python3
"""The test cases of h2spec 2 (summerwind/h2spec), written again in Python over h2frames.

h2spec is the usual conformance suite for HTTP/2 servers (RFC 7540/9113 and RFC 7541). Its 146
default cases are here under the same identifiers ("generic/1/1", "http2/6.5.3/2",
"hpack/2.3.3/1"...), in the same order, with the same descriptions, the same frames sent and the
same verdict rules; the one "strict" case (http2/5.4.1/2) runs with --strict, as in h2spec.

    python3 test/integration/h2spec.py --port 8443 --tls [-k] [--path /] [--timeout 2]
        [--only http2/6.5] [--json results.json] [--verbose]

    import h2spec
    results = h2spec.run(h2spec.Config("127.0.0.1", port, tls=True))
    failed = [r for r in results if r.failed]

How h2spec judges, mirrored here (the verifiers below follow its spec/verifier.go):
- Every read waits at most `timeout` seconds (default 2) for the next frame. A timeout, a close
  and a read error all end a verification; frames that do not match are skipped while waiting.
- "Connection error X": passes on a GOAWAY with code X, or when the connection closes (even after
  a GOAWAY with another code). "Stream error X": also passes on a RST_STREAM with code X, on any
  stream.
- "Connection closed" is a clean end of stream at a frame boundary. h2spec's Go code treats a TCP
  reset as an error (its check for ECONNRESET never matches on Linux: the errno is wrapped), so a
  server that resets where it should close fails, as it does under h2spec; --reset-is-close
  counts a reset as a close instead.
- Frames the peer sends that Go's http2.Framer would refuse to parse end the wait with an error.
- Like h2spec, the client refills flow-control windows for DATA it receives.
- Where h2spec changed after its last release (v2.6.0), this follows its master branch (its
  2022 fixes for RFC 9113): generic/2/4, generic/3.4/1 and http2/7/2 accept a connection close
  as well as the PING ACK, and http2/5.1/1 accepts GOAWAY(STREAM_CLOSED) as well as
  GOAWAY(PROTOCOL_ERROR). --profile v2.6.0 gives the release's verdicts. See H2SPEC.md.

Python 3 standard library plus Debian's python3-hpack.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2frames as h2  # noqa: E402

DEFAULT_TIMEOUT = 2.0
# "master": h2spec's master branch (its 2022 fixes for RFC 9113 included); "v2.6.0": its last
# release, for the four cases those fixes changed (see the module doc).
PROFILES = ("master", "v2.6.0")
DEFAULT_MAX_HEADER_LEN = 4000
# 5.1.2/1 opens SETTINGS_MAX_CONCURRENT_STREAMS + 1 streams; a server advertising more than this
# fails the case instead of being flooded (h2spec would try them all).
MAX_STREAMS_TRIED = 10000


class Config:
    """What to test and how: the target, h2spec's options, and this port's own."""

    def __init__(self, host="127.0.0.1", port=None, tls=False, path="/", timeout=DEFAULT_TIMEOUT,
                 max_header_len=DEFAULT_MAX_HEADER_LEN, insecure=True, server_name=None,
                 cafile=None, strict=False, reset_is_close=False, sections=(), verbose=False,
                 profile="master"):
        if port is None:
            port = 443 if tls else 80
        self.host = host
        self.port = port
        self.tls = tls
        self.path = path
        self.timeout = timeout
        self.max_header_len = max_header_len
        self.insecure = insecure
        self.server_name = server_name
        self.cafile = cafile
        self.strict = strict
        self.reset_is_close = reset_is_close
        self.sections = list(sections)
        self.verbose = verbose
        if profile not in PROFILES:
            raise ValueError("profile: one of %s" % ", ".join(PROFILES))
        self.profile = profile

    @property
    def release(self):
        """The verdicts of h2spec v2.6.0, its last release, rather than its master branch."""
        return self.profile == "v2.6.0"

    @property
    def authority(self):
        default = 443 if self.tls else 80
        host = "[%s]" % self.host if ":" in self.host else self.host
        return host if self.port == default else "%s:%d" % (host, self.port)

    def common_headers(self):
        """h2spec's CommonHeaders: a GET of the target path."""
        return [[":method", "GET"], [":scheme", "https" if self.tls else "http"],
                [":path", self.path], [":authority", self.authority]]

    def dummy_headers(self, count):
        """h2spec's DummyHeaders: x-dummyN fields of max_header_len 'x'."""
        value = "x" * self.max_header_len
        return [["x-dummy%d" % i, value] for i in range(count)]


# ------------------------------------------------------------------------------------------------
# Outcomes


class TestError(Exception):
    """A failed verification: what was expected, and what came instead."""

    def __init__(self, expected, actual):
        super().__init__("expected %s; actual %s" % (" or ".join(expected), actual))
        self.expected = list(expected)
        self.actual = actual


class Skipped(Exception):
    pass


class Result:
    def __init__(self, case, status, reason="", duration=0.0, trace=None, expected=None,
                 actual=None):
        self.case = case
        self.status = status  # "passed", "failed" or "skipped"
        self.reason = reason
        self.duration = duration
        self.trace = trace or []
        self.expected = expected
        self.actual = actual

    @property
    def id(self):
        return self.case.id

    @property
    def passed(self):
        return self.status == "passed"

    @property
    def failed(self):
        return self.status == "failed"

    @property
    def skipped(self):
        return self.status == "skipped"

    def to_dict(self):
        d = {"id": self.id, "group": self.case.group.title, "description": self.case.desc,
             "requirement": self.case.requirement, "status": self.status,
             "duration": round(self.duration, 4)}
        if self.reason:
            d["reason"] = self.reason
        if self.expected is not None:
            d["expected"] = self.expected
            d["actual"] = self.actual
        if self.trace and not self.passed:
            d["trace"] = self.trace
        return d


# ------------------------------------------------------------------------------------------------
# The connection, with h2spec's reading rules


def _describe_sent(data):
    """'[send] TYPE Frame (...)' lines for the frames at the start of `data` (best effort)."""
    out = []
    pos = 0
    if bytes(data[:24]) == h2.PREFACE:
        out.append("[send] Connection preface")
        pos = 24
    while pos + 9 <= len(data) and len(out) < 4:
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7fffffff
        out.append("[send] %s Frame (length:%d, flags:0x%02x, stream_id:%d)"
                   % (h2.frame_name(ftype), length, flags, sid))
        pos += 9 + length
    if not out or (pos < len(data) and pos + 9 > len(data)):
        out.append("[send] Raw Data (%s%s)" % (bytes(data[:32]).hex(),
                                              "..." if len(data) > 32 else ""))
    return out


class SpecConn(h2.H2Conn):
    """An H2Conn that reads the way h2spec's Conn.WaitEvent does, and keeps a trace."""

    def __init__(self, config):
        super().__init__(config.host, config.port, tls=config.tls, alpn=("h2", "h2-16"),
                         verify=not config.insecure, server_name=config.server_name,
                         cafile=config.cafile, timeout=config.timeout,
                         write_timeout=max(10.0, config.timeout), auto_window_update=True,
                         strict_frames=True)
        self.config = config
        self.spec_closed = False  # h2spec's Conn.Closed: set by a close, a timeout or an error
        self.trace = []

    def send(self, data):
        self.trace.extend(_describe_sent(data))
        ok = super().send(data)
        if not ok:
            self.trace.append("[send failed] %s" % self.write_errors[-1])
        return ok

    def _write(self, raw):
        ok = super()._write(raw)
        if not ok and self.write_errors[-1].startswith("frame too large"):
            self.trace.append("[not sent] %s (its length cannot be encoded)"
                              % self.write_errors[-1])
        return ok

    def read_event(self, timeout=None):
        ev = super().read_event(timeout)
        if ev.kind == h2.CLOSED and ev.reset and not self.config.reset_is_close:
            ev = h2.Event(h2.ERROR, error="read: connection reset by peer")
            self.close_event = ev
        self.trace.append("[recv] %r%s" % (ev, self._status_note(ev)))
        return ev

    def _status_note(self, ev):
        """For the trace: the :status of a response header block, decoded on the side."""
        if ev.kind != h2.FRAME or ev.frame.type not in (h2.HEADERS, h2.CONTINUATION):
            return ""
        self._block = getattr(self, "_block", b"") + ev.frame.block_fragment
        if not ev.frame.end_headers:
            return ""
        block, self._block = self._block, b""
        try:
            fields = dict(self.decode_headers(block))
        except Exception:  # noqa: BLE001 - only a note in the trace
            return " (undecodable header block)"
        return " :status=%s" % fields[":status"] if ":status" in fields else ""

    def wait_event(self):
        """h2spec's WaitEvent: the next frame, or the close / timeout / error that ended the
        connection for the test."""
        ev = self.read_event(self.config.timeout)
        if ev.kind != h2.FRAME:
            self.spec_closed = True
        return ev

    def wait_event_by_type(self, frame_type):
        """h2spec's WaitEventByType: (the first frame of that type, True), or (the last event
        seen, False) once the connection closed or timed out."""
        last = None
        count = 0
        while not self.spec_closed and count < self.max_events:
            count += 1
            ev = self.wait_event()
            if ev.is_frame(frame_type):
                return ev, True
            if ev.kind == h2.TIMEOUT and last is not None:
                break
            last = ev
        return last, False

    def encode(self, headers):
        return self.encode_headers([tuple(h) for h in headers])

    def spec_handshake(self):
        """h2spec's Handshake; a failure is the test's error."""
        try:
            self.handshake(timeout=self.config.timeout)
        except TimeoutError:
            self.trace.append("[handshake] Timeout")
            raise RuntimeError("Timeout")
        except ConnectionError as e:
            self.trace.append("[handshake] %s" % e)
            raise RuntimeError(str(e))


def _events(conn):
    """The events of a verification loop: h2spec loops `for !conn.Closed`, bounded here."""
    for _ in range(conn.max_events):
        if conn.spec_closed:
            return
        yield conn.wait_event()


def _s(ev):
    return "None" if ev is None else repr(ev)


EXPECTED_CLOSED = "Connection closed"


def expected_goaway(code):
    return "GOAWAY Frame (Error Code: %s)" % h2.error_name(code)


def expected_rst(code):
    return "RST_STREAM Frame (Error Code: %s)" % h2.error_name(code)


# ------------------------------------------------------------------------------------------------
# Verifiers (h2spec's spec/verifier.go)


def verify_connection_close(conn):
    actual = None
    for ev in _events(conn):
        if ev.kind == h2.CLOSED:
            return
        if ev.kind == h2.TIMEOUT:
            if actual is None:
                actual = ev
        else:
            actual = ev
    raise TestError([EXPECTED_CLOSED], _s(actual))


def verify_connection_error(conn, *codes):
    actual = None
    for ev in _events(conn):
        if ev.kind == h2.CLOSED:
            return
        if ev.is_frame(h2.GOAWAY) and ev.frame.error_code in codes:
            return
        if ev.kind == h2.TIMEOUT:
            if actual is None:
                actual = ev
        else:
            actual = ev
    raise TestError([expected_goaway(c) for c in codes] + [EXPECTED_CLOSED], _s(actual))


def verify_stream_error(conn, *codes):
    actual = None
    for ev in _events(conn):
        if ev.kind == h2.CLOSED:
            return
        if ((ev.is_frame(h2.GOAWAY) or ev.is_frame(h2.RST_STREAM))
                and ev.frame.error_code in codes):
            return
        if ev.kind == h2.TIMEOUT:
            if actual is None:
                actual = ev
        else:
            actual = ev
    expected = []
    for c in codes:
        expected += [expected_goaway(c), expected_rst(c)]
    raise TestError(expected + [EXPECTED_CLOSED], _s(actual))


def verify_stream_close(conn):
    actual = None
    for ev in _events(conn):
        if ev.kind == h2.FRAME and ev.frame.end_stream:
            return
        if ev.is_frame(h2.RST_STREAM) and ev.frame.error_code == h2.NO_ERROR:
            return
        if ev.kind == h2.TIMEOUT:
            if actual is None:
                actual = ev
        else:
            actual = ev
    raise TestError(["Stream closed"], _s(actual))


def verify_headers_frame(conn, stream_id):
    actual, passed = conn.wait_event_by_type(h2.HEADERS)
    if not (passed and actual.frame.stream_id == stream_id):
        raise TestError(["HEADERS Frame (stream_id:%d)" % stream_id], _s(actual))


def verify_settings_frame_with_ack(conn):
    actual, passed = conn.wait_event_by_type(h2.SETTINGS)
    if not (passed and actual.frame.ack):
        raise TestError(["SETTINGS Frame (length:0, flags:0x01, stream_id:0)"], _s(actual))


def _ping_expected(data):
    return "PING Frame (length:8, flags:0x01, stream_id:0, opaque_data:%s)" % data.rstrip(
        b"\x00").decode("latin-1")


def verify_ping_frame_with_ack(conn, data):
    actual, passed = conn.wait_event_by_type(h2.PING)
    if not (passed and actual.frame.ack and actual.frame.payload == data):
        raise TestError([_ping_expected(data)], _s(actual))


def verify_ping_frame_or_connection_close(conn, data):
    actual = None
    for ev in _events(conn):
        if ev.kind == h2.CLOSED:
            return
        if ev.is_frame(h2.PING) and ev.frame.ack and ev.frame.payload == data:
            return
        if ev.kind == h2.TIMEOUT:
            if actual is None:
                actual = ev
        else:
            actual = ev
    raise TestError([EXPECTED_CLOSED, _ping_expected(data)], _s(actual))


def _ping_ack_or_close_since_3dd93987(c, conn, data):
    """generic/2/4, generic/3.4/1, http2/7/2: h2spec master (3dd93987) accepts a connection close
    (a stream error treated as a connection error, RFC 9113 5.4.1); v2.6.0 wanted the PING ACK."""
    if c.release:
        verify_ping_frame_with_ack(conn, data)
    else:
        verify_ping_frame_or_connection_close(conn, data)


def verify_event_type(conn, frame_type):
    actual, passed = conn.wait_event_by_type(frame_type)
    if not passed:
        raise TestError(["%s frame" % h2.frame_name(frame_type)], _s(actual))


def verify_data_length_one(conn, stream_id):
    """The DATA-length checks of 6.5.3/1, 6.9.1/1 and 6.9.2/1-2: the next DATA frame carries
    exactly 1 octet."""
    actual, passed = conn.wait_event_by_type(h2.DATA)
    if not (passed and actual.frame.length == 1):
        raise TestError(["DATA Frame (length:1, flags:0x00, stream_id:%d)" % stream_id],
                        _s(actual))


def server_data_length(config):
    """h2spec's ServerDataLength: the total DATA length of a GET of the path, on a connection of
    its own."""
    conn = SpecConn(config)
    try:
        conn.connect()
        conn.spec_handshake()
        conn.write_headers(1, conn.encode(config.common_headers()), end_stream=True)
        total = 0
        for ev in _events(conn):
            if ev.is_frame(h2.DATA):
                total += ev.frame.length
            if ev.kind == h2.FRAME and ev.frame.end_stream:
                return total
        raise RuntimeError("Unable to get server data length")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# The registry


class Group:
    def __init__(self, key, section, name, parent=None):
        self.key = key
        self.section = section
        self.name = name
        self.parent = parent
        self.cases = []
        self.groups = []
        if parent is not None:
            parent.groups.append(self)

    @property
    def id(self):
        return self.key if self.parent is None else "%s/%s" % (self.key, self.section)

    @property
    def title(self):
        return self.name if self.parent is None else "%s. %s" % (self.section, self.name)

    @property
    def level(self):
        return 0 if self.parent is None else self.section.count(".") + 1

    def walk(self):
        """The cases in h2spec's order: the group's own, then each subgroup's."""
        for case in self.cases:
            yield case
        for group in self.groups:
            yield from group.walk()


class Case:
    def __init__(self, group, desc, requirement, run, strict=False):
        self.group = group
        self.desc = desc
        self.requirement = requirement
        self.run = run
        self.strict = strict
        group.cases.append(self)
        self.seq = len(group.cases)

    @property
    def id(self):
        return "%s/%d" % (self.group.id, self.seq)

    def __repr__(self):
        return "Case(%s: %s)" % (self.id, self.desc)


def case(group, desc, requirement, strict=False):
    def register(fn):
        Case(group, desc, requirement, fn, strict)
        return fn
    return register


# Requirements that recur.
R_CONN_PROTOCOL = "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."
R_TREAT_CONN_PROTOCOL = "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."
R_STREAM_PROTOCOL = "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."
R_TREAT_STREAM_PROTOCOL = "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."
R_DECODING = "The endpoint MUST treat this as a decoding error."

ZERO8 = b"\x00" * 8
H2SPEC8 = b"h2spec\x00\x00"
UNKNOWN_FRAME = b"\x00\x00\x08\x16\x00\x00\x00\x00\x00" + ZERO8  # type 0x16, 8 octets


def _post(c):
    headers = c.common_headers()
    headers[0][1] = "POST"
    return headers


# ================================================================================================
# Generic tests for HTTP/2 server

GENERIC = Group("generic", "", "Generic tests for HTTP/2 server")

g1 = Group("generic", "1", "Starting HTTP/2", GENERIC)


@case(g1, "Sends a client connection preface",
      "The endpoint MUST accept client connection preface.")
def _(c, conn):
    conn.send(h2.PREFACE)
    conn.write_settings([(h2.SETTINGS_INITIAL_WINDOW_SIZE, h2.DEFAULT_WINDOW_SIZE)])
    actual = conn.wait_event()
    if not (actual.is_frame(h2.SETTINGS) and not actual.frame.ack):
        raise TestError(["SETTINGS Frame (flags:0x00)"], _s(actual))


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
    _ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


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
    conn.write_headers(1, conn.encode(_post(c)))
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_1, "Sends multiple DATA frames", "The endpoint MUST accept multiple DATA frames.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c)))
    conn.write_data(1, b"test")
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g3_1, "Sends a DATA frame with padding", "The endpoint MUST accept DATA frame with padding.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c)))
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
    _ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


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
    conn.write_headers(1, conn.encode(_post(c)))
    conn.write_data(1, b"test", end_stream=True)
    verify_headers_frame(conn, 1)


@case(g4, "Sends a POST request with trailers", "The endpoint MUST respond to the request.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c) + [["trailer", "x-test"]]))
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


# ================================================================================================
# Hypertext Transfer Protocol Version 2 (HTTP/2)

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
        raise TestError(["SETTINGS Frame (flags:0x00)"], _s(actual))


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
    conn.write_headers(1, conn.encode(_post(c)))
    # h2spec sends the server's SETTINGS_MAX_FRAME_SIZE, whatever it is (16384 by default).
    conn.write_data(1, b"x" * conn.max_frame_size(), end_stream=True)
    verify_headers_frame(conn, 1)


@case(h4_2, "Sends a large size DATA frame that exceeds the SETTINGS_MAX_FRAME_SIZE",
      "The endpoint MUST send an error code of FRAME_SIZE_ERROR.")
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c)))
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
        raise TestError([expected_goaway(h2.PROTOCOL_ERROR)], _s(actual))


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
    conn.write_headers(1, conn.encode(_post(c)), end_stream=True)
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.STREAM_CLOSED)


@case(h6_1, "Sends a DATA frame with invalid pad length", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c) + [["content-length", "4"]]))
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
        raise TestError([expected_goaway(h2.FLOW_CONTROL_ERROR)], _s(actual))


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
        raise TestError([expected_rst(h2.FLOW_CONTROL_ERROR)], _s(actual))


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
    conn.write_headers(1, conn.encode(_post(c)), end_headers=False)
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
    conn.write_headers(1, conn.encode(_post(c)), end_headers=False)
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
    conn.write_headers(1, conn.encode(_post(c)))
    conn.write_rst_stream(1, 0xff)
    conn.write_ping(ZERO8)
    _ping_ack_or_close_since_3dd93987(c, conn, ZERO8)


h8 = Group("http2", "8", "HTTP Message Exchanges", HTTP2)
h8_1 = Group("http2", "8.1", "HTTP Request/Response Exchange", h8)


@case(h8_1, "Sends a second HEADERS frame without the END_STREAM flag", R_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c)))
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
    conn.write_headers(1, conn.encode(_post(c)))
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
    conn.write_headers(1, conn.encode(_post(c) + [["content-length", "1"]]))
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


@case(h8_1_2_6, "Sends a HEADERS frame with the \"content-length\" header field which does not "
      "equal the sum of the multiple DATA frames payload length", R_TREAT_STREAM_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_headers(1, conn.encode(_post(c) + [["content-length", "1"]]))
    conn.write_data(1, b"test")
    conn.write_data(1, b"test", end_stream=True)
    verify_stream_error(conn, h2.PROTOCOL_ERROR)


h8_2 = Group("http2", "8.2", "Server Push", h8)


@case(h8_2, "Sends a PUSH_PROMISE frame", R_TREAT_CONN_PROTOCOL)
def _(c, conn):
    conn.spec_handshake()
    conn.write_push_promise(1, 3, conn.encode(c.common_headers()), end_headers=True)
    verify_connection_error(conn, h2.PROTOCOL_ERROR)


# ================================================================================================
# HPACK: Header Compression for HTTP/2

HPACK = Group("hpack", "", "HPACK: Header Compression for HTTP/2")
p2 = Group("hpack", "2", "Compression Process Overview", HPACK)
p2_3 = Group("hpack", "2.3", "Indexing Tables", p2)
p2_3_3 = Group("hpack", "2.3.3", "Index Address Space", p2_3)


def _decoding_error(group, desc, rep, prepend=False):
    @case(group, desc, R_DECODING)
    def _(c, conn):
        conn.spec_handshake()
        block = conn.encode(c.common_headers())
        r = rep(conn) if callable(rep) else rep
        block = r + block if prepend else block + r
        conn.write_headers(1, block, end_stream=True)
        verify_connection_error(conn, h2.COMPRESSION_ERROR)


_decoding_error(p2_3_3, "Sends a indexed header field representation with invalid index",
                b"\xc6")  # index 70
_decoding_error(p2_3_3, "Sends a literal header field representation with invalid index",
                b"\x7f\x07\x00")  # incremental indexing, name index 70, empty value

p4 = Group("hpack", "4", "Dynamic Table Management", HPACK)
p4_2 = Group("hpack", "4.2", "Maximum Table Size", p4)
_decoding_error(p4_2, "Sends a dynamic table size update at the end of header block",
                b"\x21")  # update to 1

p5 = Group("hpack", "5", "Primitive Type Representations", HPACK)
p5_2 = Group("hpack", "5.2", "String Literal Representation", p5)
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation with padding longer "
                "than 7 bits", b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff")
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation padded by zero",
                b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90")
_decoding_error(p5_2, "Sends a Huffman-encoded string literal representation containing the EOS "
                "symbol", b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f")

p6 = Group("hpack", "6", "Binary Format", HPACK)
p6_1 = Group("hpack", "6.1", "Indexed Header Field Representation", p6)
_decoding_error(p6_1, "Sends a indexed header field representation with index 0", b"\x80")

p6_3 = Group("hpack", "6.3", "Dynamic Table Size Update", p6)
_decoding_error(p6_3, "Sends a dynamic table size update larger than the value of "
                "SETTINGS_HEADER_TABLE_SIZE",
                lambda conn: h2.hpack_table_size_update(
                    conn.server_settings.get(h2.SETTINGS_HEADER_TABLE_SIZE, 4096) + 1),
                prepend=True)


SPECS = [GENERIC, HTTP2, HPACK]


# ------------------------------------------------------------------------------------------------
# Selecting and running


def all_cases(strict=False):
    """Every case in h2spec's order (the strict one only with strict=True)."""
    return [tc for spec in SPECS for tc in spec.walk() if strict or not tc.strict]


def selected(case_id, sections):
    """Whether h2spec would run the case for these section arguments ("http2",
    "http2/6.5" (and its subsections), "http2/6.5.3/2", ...); none selects everything."""
    if not sections:
        return True
    key, section, _ = case_id.split("/")
    for s in sections:
        s = s.strip("/")
        if s == case_id or s == key:
            return True
        parts = s.split("/")
        if len(parts) == 2 and parts[0] == key and (
                section == parts[1] or section.startswith(parts[1] + ".")):
            return True
    return False


def run_case(tc, config):
    conn = SpecConn(config)
    start = time.monotonic()
    try:
        try:
            conn.connect()
        except Exception as e:  # noqa: BLE001 - a failed case, with the reason
            return Result(tc, "failed", "Error: connect: %s: %s" % (type(e).__name__, e),
                          time.monotonic() - start, conn.trace)
        try:
            tc.run(config, conn)
        except TestError as e:
            return Result(tc, "failed", "Expected: %s; Actual: %s" % (" | ".join(e.expected),
                                                                       e.actual),
                          time.monotonic() - start, conn.trace, e.expected, e.actual)
        except Skipped as e:
            return Result(tc, "skipped", str(e), time.monotonic() - start, conn.trace)
        except Exception as e:  # noqa: BLE001 - h2spec reports any other error as a failure
            message = str(e) if str(e).startswith("Error:") else "Error: %s" % e
            return Result(tc, "failed", message, time.monotonic() - start, conn.trace)
        return Result(tc, "passed", "", time.monotonic() - start, conn.trace)
    finally:
        conn.close()


def run(config, out=None):
    """Runs the selected cases against config's server; returns the list of Result. With `out`
    (a text stream), prints h2spec's report as it goes."""
    results = []
    for spec in SPECS:
        printed = set()
        for tc in spec.walk():
            if tc.strict and not config.strict:
                continue
            if not selected(tc.id, config.sections):
                continue
            result = run_case(tc, config)
            results.append(result)
            if out is not None:
                _print_headings(tc.group, printed, out)
                _print_result(result, out, config.verbose)
    return results


def _print_headings(group, printed, out):
    chain = []
    g = group
    while g is not None:
        chain.append(g)
        g = g.parent
    for g in reversed(chain):
        if g.id not in printed:
            printed.add(g.id)
            out.write("%s%s\n" % ("  " * g.level, g.title))


def _print_result(result, out, verbose=False):
    indent = "  " * (result.case.group.level + 1)
    mark = {"passed": "\u2714", "failed": "\u00d7", "skipped": "-"}[result.status]
    out.write("%s%s %d: %s\n" % (indent, mark, result.case.seq, result.case.desc))
    if result.failed or result.skipped:
        _print_reason(result, indent + "  ", out)
    if verbose or result.failed:
        if verbose and result.trace:
            for line in result.trace:
                out.write("%s     %s\n" % (indent, line))
    out.flush()


def _print_reason(result, indent, out):
    if result.skipped:
        out.write("%s(skipped: %s)\n" % (indent, result.reason))
        return
    out.write("%s-> %s\n" % (indent, result.case.requirement))
    if result.expected is not None:
        label = "Expected: "
        for i, e in enumerate(result.expected):
            out.write("%s   %s%s\n" % (indent, label if i == 0 else " " * len(label), e))
        out.write("%s     Actual: %s\n" % (indent, result.actual))
    else:
        out.write("%s   %s\n" % (indent, result.reason))


def summary(results):
    passed = sum(r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    failed = sum(r.failed for r in results)
    return "%d tests, %d passed, %d skipped, %d failed" % (len(results), passed, skipped, failed)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="h2spec's conformance cases for HTTP/2 servers (RFC 9113, RFC 7541).")
    parser.add_argument("sections", nargs="*",
                        help="run only these: 'http2', 'http2/6.5', 'generic/3.1/2', ...")
    parser.add_argument("--host", "-H", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=None)
    parser.add_argument("--path", "-P", default="/")
    parser.add_argument("--tls", "-t", action="store_true", help="connect over TLS (ALPN h2)")
    parser.add_argument("--timeout", "-o", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for each frame (default %(default)s)")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="do not verify the server certificate (the default here)")
    parser.add_argument("--verify", action="store_true",
                        help="verify the server certificate (with --cafile)")
    parser.add_argument("--cafile", default=None)
    parser.add_argument("--sni", default=None, help="TLS server name (default: --host)")
    parser.add_argument("--max-header-length", type=int, default=DEFAULT_MAX_HEADER_LEN)
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="like a section argument; may be repeated")
    parser.add_argument("--strict", "-S", action="store_true",
                        help="also run the strict case(s)")
    parser.add_argument("--profile", choices=PROFILES, default="master",
                        help="h2spec's master branch (default) or its v2.6.0 release verdicts")
    parser.add_argument("--reset-is-close", action="store_true",
                        help="count a TCP reset as a connection close (h2spec does not)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every frame")
    parser.add_argument("--dryrun", action="store_true", help="list the cases only")
    args = parser.parse_args(argv)

    config = Config(host=args.host, port=args.port, tls=args.tls, path=args.path,
                    timeout=args.timeout, max_header_len=args.max_header_length,
                    insecure=not args.verify, server_name=args.sni, cafile=args.cafile,
                    strict=args.strict, reset_is_close=args.reset_is_close,
                    sections=args.sections + args.only, verbose=args.verbose,
                    profile=args.profile)
    if args.dryrun:
        for tc in all_cases(args.strict):
            if selected(tc.id, config.sections):
                print("%s: %s%s" % (tc.id, tc.desc, " (strict)" if tc.strict else ""))
        return 0

    start = time.monotonic()
    results = run(config, out=sys.stdout)
    elapsed = time.monotonic() - start
    failed = [r for r in results if r.failed]
    if failed:
        print("\nFailures:")
        for r in failed:
            print("  %s: %s" % (r.id, r.case.desc))
            _print_reason(r, "    ", sys.stdout)
    print("\nFinished in %.4f seconds" % elapsed)
    print(summary(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": {"host": config.host, "port": config.port, "tls": config.tls,
                                  "path": config.path}, "profile": config.profile,
                       "elapsed": round(elapsed, 3), "summary": summary(results),
                       "results": [r.to_dict() for r in results]}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
