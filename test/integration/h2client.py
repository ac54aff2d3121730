"""A small multiplexing HTTP/2 client for functional tests, over h2frames' raw connection.

Unlike h2frames.H2Conn's own request()/read_response() (one stream at a time, no send-side flow
control), a Mux keeps many streams in flight on one connection and honours flow control both
ways:

- request bodies go out only as the server's connection and stream windows allow (it tracks
  SETTINGS_INITIAL_WINDOW_SIZE, its changes and every WINDOW_UPDATE), interleaved across streams,
  and never faster than the socket takes them;
- response DATA is credited back (WINDOW_UPDATE) as it arrives, except on a stream opened with
  hold=True: that stream's window is not refilled until release(), so the server must hold its
  response back (the connection's window is always refilled: a held stream holds only itself).

Unlike python3-h2 it keeps reading after a GOAWAY (streams below its last stream id go on), and
it lets a test send what a library would refuse (any header, a Content-Length that lies).

    mux = Mux.connect("127.0.0.1", port)                 # h2c prior knowledge; tls=True: ALPN h2
    a = mux.request("POST", "/echo", body=data)           # returns a Stream
    b = mux.request("GET", "/gen?size=100", hold=True)
    mux.wait(a)                                           # pumps until a ends (or raises)
    a.status, a.body, a.trailers, a.reset_code

Every wait is bounded by a deadline, and nothing sleeps: reads wait on the socket.
"""

import hashlib
import select
import time

import h2frames as h2

DEFAULT_TIMEOUT = 30.0



# The last stream id of a drain's first GOAWAY (RFC 9113 §6.8: a notice; streams still come).
NOTICE_STREAM_ID = 2**31 - 1

class Stream:
    """One request/response. Response side: headers (list of (name, value), None until the final
    head), informational (1xx heads), trailers, body (bytes, kept unless keep_body=False),
    body_length, sha256 (of the body), ended (END_STREAM received), reset_code (RST_STREAM
    received, or None), sent_reset (the code we sent). Request side: sent (body bytes written),
    send_window (what the server's window still allows on this stream)."""

    def __init__(self, mux, sid, body, trailers, end_stream, hold, keep_body):
        self.mux = mux
        self.id = sid
        self.headers = None
        self.informational = []
        self.trailers = None
        self._body = bytearray()
        self.keep_body = keep_body
        self.body_length = 0
        self._sha = hashlib.sha256()
        self.ended = False
        self.reset_code = None
        self.sent_reset = None
        # Sending.
        self._out = memoryview(body) if body is not None else memoryview(b"")
        self.sent = 0
        self.trailers_out = trailers
        self.end_after_body = end_stream
        self.send_done = body is None and trailers is None and end_stream
        self.send_window = mux.peer_initial_window
        self.pad = None
        self.frame_size = None
        self.last_credit = time.monotonic()  # the last WINDOW_UPDATE for this stream
        # Receiving.
        self.hold = hold
        self.unacked = 0
        self._block = b""
        self._end_with_block = False  # the HEADERS frame of the block being read had END_STREAM

    @property
    def body(self):
        return bytes(self._body)

    @property
    def sha256(self):
        return self._sha.hexdigest()

    @property
    def status(self):
        for n, v in self.headers or []:
            if n == ":status":
                return int(v)
        return None

    def header(self, name):
        for n, v in self.headers or []:
            if n == name:
                return v
        return None

    def headers_all(self, name):
        return [v for n, v in self.headers or [] if n == name]

    def trailer(self, name):
        for n, v in self.trailers or []:
            if n == name:
                return v
        return None

    @property
    def done(self):
        """The response ended (END_STREAM) or the stream was reset either way."""
        return self.ended or self.reset_code is not None or self.sent_reset is not None

    @property
    def complete(self):
        return self.ended and self.reset_code is None

    @property
    def pending_send(self):
        return len(self._out) - self.sent

    def _on_data(self, data):
        self.body_length += len(data)
        self._sha.update(data)
        if self.keep_body:
            self._body += data

    def __repr__(self):
        return "Stream(%d, status=%s, body=%d, ended=%s, reset=%s, sent=%d/%d)" % (
            self.id, self.status, self.body_length, self.ended,
            h2.error_name(self.reset_code) if self.reset_code is not None else None,
            self.sent, len(self._out))


class Mux:
    """One client connection carrying many streams (see the module doc).

    recv_window: our SETTINGS_INITIAL_WINDOW_SIZE (how much of one response the server may send
      before we credit it). conn_window: our connection receive window (raised at once from
      65535 with a WINDOW_UPDATE). answer_pings: send PING acks.
    """

    def __init__(self, conn, recv_window=65535, conn_window=16 * 1024 * 1024,
                 settings=(), answer_pings=True):
        self.conn = conn
        self.recv_window = recv_window
        self.conn_window = conn_window
        self.answer_pings = answer_pings
        self.streams = {}
        self.next_id = 1
        self.peer_initial_window = h2.DEFAULT_WINDOW_SIZE
        self.conn_send_window = h2.DEFAULT_WINDOW_SIZE
        self.conn_unacked = 0
        self.got_settings = False
        self.settings_acked = False
        self.goaways = []  # GOAWAY frames received
        self.pings = []  # PING frames received (not acks)
        self.frames = []  # every frame received, in order (for diagnostics)
        self.closed = None  # the CLOSED/ERROR event once the connection ended
        self.settings = list(settings)

    # -- opening

    @classmethod
    def connect(cls, host, port, tls=False, timeout=DEFAULT_TIMEOUT, alpn=("h2",),
                server_name=None, **kw):
        conn = h2.H2Conn(host, port, tls=tls, alpn=alpn, server_name=server_name,
                         timeout=timeout, auto_window_update=False)
        conn.connect()
        mux = cls(conn, **kw)
        try:
            mux.start(timeout)
        except BaseException:
            conn.close()
            raise
        return mux

    def start(self, timeout=DEFAULT_TIMEOUT):
        """The preface, our SETTINGS and connection window; then waits for the server's SETTINGS
        and its ACK of ours."""
        self.conn.write_preface()
        settings = [(h2.SETTINGS_INITIAL_WINDOW_SIZE, self.recv_window)] + self.settings
        self.conn.write_settings(settings)
        if self.conn_window > h2.DEFAULT_WINDOW_SIZE:
            self.conn.write_window_update(0, self.conn_window - h2.DEFAULT_WINDOW_SIZE)
        self.pump(lambda: self.got_settings and self.settings_acked, timeout,
                  what="the server's SETTINGS and the ACK of ours")

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def server_settings(self):
        return self.conn.server_settings

    # -- requests

    def request(self, method, path, headers=(), body=None, trailers=None, end_stream=True,
                authority="sluice.test", scheme=None, content_length=None, hold=False,
                keep_body=True, sid=None, pseudo=None, pad=None, frame_size=None):
        """Opens a stream: HEADERS (and CONTINUATIONs), then the body as the windows allow, then
        the trailers (a HEADERS with END_STREAM) or END_STREAM. content_length: True adds
        content-length: len(body), an int adds that value (true or not), None/False adds none.
        end_stream=False leaves the request open after the body (send more with send_data()).
        pseudo: the pseudo-header fields instead of the usual four. pad: every DATA frame padded
        with that many octets (they count against flow control). frame_size: the most body
        bytes per DATA frame (default: the server's SETTINGS_MAX_FRAME_SIZE). Returns the
        Stream."""
        if sid is None:
            sid = self.next_id
        self.next_id = max(self.next_id, sid + 2)
        if scheme is None:
            scheme = "https" if self.conn.tls else "http"
        fields = list(pseudo) if pseudo is not None else [
            (":method", method), (":scheme", scheme), (":path", path),
            (":authority", authority)]
        if content_length is True:
            fields.append(("content-length", str(len(body or b""))))
        elif content_length not in (None, False):
            fields.append(("content-length", str(content_length)))
        fields += list(headers)
        stream = Stream(self, sid, body, trailers, end_stream, hold, keep_body)
        stream.pad = pad
        stream.frame_size = frame_size
        self.streams[sid] = stream
        self._write_headers(sid, fields, end_stream=stream.send_done)
        self.flush_sends()
        return stream

    def send_data(self, stream, data, end_stream=False, trailers=None):
        """More body for an open request (queued behind what it still has to send)."""
        rest = bytes(stream._out[stream.sent:]) + bytes(data)
        stream._out = memoryview(rest)
        stream.sent = 0
        stream.end_after_body = end_stream
        stream.trailers_out = trailers
        stream.send_done = False
        self.flush_sends()

    def reset(self, stream, code=h2.CANCEL):
        stream.sent_reset = code
        self.conn.write_rst_stream(stream.id, code)

    def release(self, stream):
        """Credits a held stream's window with what it received, and stops holding it."""
        stream.hold = False
        self._credit(stream)

    def ping(self, data=b"h2client"):
        self.conn.write_ping(data)

    def _write_headers(self, sid, fields, end_stream):
        block = self.conn.encode_headers(fields)
        size = self.conn.max_frame_size()
        parts = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
        self.conn.write_headers(sid, parts[0], end_stream=end_stream,
                                end_headers=len(parts) == 1)
        for i, part in enumerate(parts[1:], 1):
            self.conn.write_continuation(sid, part, end_headers=i == len(parts) - 1)

    # -- the loop

    def _writable(self):
        sock = self.conn.sock
        if sock is None:
            return False
        _, w, _ = select.select([], [sock], [], 0)
        return bool(w)

    def flush_sends(self, budget=1 << 20):
        """Writes what the windows allow (at most `budget` bytes this call, and only while the
        socket takes them without blocking). Returns the bytes written."""
        written = 0
        progress = True
        while progress and written < budget and not self.closed:
            progress = False
            for s in list(self.streams.values()):
                if s.send_done or s.sent_reset is not None:
                    continue
                if s.reset_code is not None:
                    s.send_done = True
                    continue
                remaining = s.pending_send
                if remaining > 0:
                    overhead = 0 if s.pad is None else 1 + s.pad
                    n = min(remaining, s.send_window - overhead,
                            self.conn_send_window - overhead,
                            s.frame_size or self.conn.max_frame_size() - overhead)
                    if n <= 0 or not self._writable():
                        continue
                    last = n == remaining and s.end_after_body and s.trailers_out is None
                    chunk = s._out[s.sent:s.sent + n]
                    if not self.conn.write_data(s.id, chunk, end_stream=last,
                                                pad_length=s.pad):
                        return written
                    s.sent += n
                    s.send_window -= n + overhead
                    self.conn_send_window -= n + overhead
                    written += n
                    progress = True
                    if last:
                        s.send_done = True
                    continue
                # The body is out: trailers, or END_STREAM on an empty DATA frame.
                if s.trailers_out is not None:
                    self._write_headers(s.id, list(s.trailers_out), end_stream=True)
                    s.send_done = True
                    progress = True
                elif s.end_after_body:
                    self.conn.write_data(s.id, b"", end_stream=True)
                    s.send_done = True
                    progress = True
                else:
                    s.send_done = True  # open: more may come through send_data()
        return written

    def _wants_to_send(self):
        return any(not s.send_done and not s.done and s.reset_code is None and
                   (s.pending_send == 0 or (s.send_window > (s.pad or 0) + 1 and
                                            self.conn_send_window > (s.pad or 0) + 1))
                   for s in self.streams.values())

    def pump(self, until, timeout=DEFAULT_TIMEOUT, what="the condition", raise_on_close=True):
        """Sends and reads until until() holds; raises AssertionError after `timeout`, or (with
        raise_on_close) when the connection ends first. Returns True."""
        deadline = time.monotonic() + timeout
        while True:
            if until():
                return True
            if self.closed is not None:
                if raise_on_close:
                    raise AssertionError("connection ended (%r) before %s; streams: %r" % (
                        self.closed, what, list(self.streams.values())))
                return False
            self.flush_sends()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out after %.0fs waiting for %s; streams: %r; "
                                     "last frames: %r" % (timeout, what,
                                                          list(self.streams.values()),
                                                          self.frames[-8:]))
            wait = 0.005 if self._wants_to_send() else min(remaining, 0.5)
            ev = self.conn.read_event(wait)
            if ev.kind == h2.TIMEOUT:
                continue
            self._handle(ev)
            # Everything already buffered is handled before the next send.
            while self.closed is None and self.conn._buf:
                ev = self.conn.read_event(0.001)
                if ev.kind == h2.TIMEOUT:
                    break
                self._handle(ev)

    def poll(self, seconds):
        """Sends and reads for `seconds` (answering PINGs, crediting windows), whatever comes;
        never raises. Returns False once the connection has ended."""
        try:
            self.pump(lambda: self.closed is not None, seconds, raise_on_close=False)
        except AssertionError:
            pass
        return self.closed is None

    def wait(self, *streams, timeout=DEFAULT_TIMEOUT):
        """Pumps until every stream is done (ended or reset)."""
        self.pump(lambda: all(s.done for s in streams), timeout,
                  what="the end of streams %s" % [s.id for s in streams])
        return streams[0] if len(streams) == 1 else streams

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """Pumps until the server closes the connection; returns the closing event."""
        self.pump(lambda: self.closed is not None, timeout, what="the connection's close",
                  raise_on_close=False)
        return self.closed

    def wait_goaway(self, timeout=DEFAULT_TIMEOUT, notice=False):
        """The first GOAWAY that says which stream was the last (a drain's final one, after the
        notice); notice=True: the first GOAWAY of any kind (a drain's notice: 2^31-1)."""
        def found():
            return [g for g in self.goaways if notice or g.last_stream_id != NOTICE_STREAM_ID]
        self.pump(lambda: bool(found()), timeout, what="a GOAWAY", raise_on_close=False)
        if not found():
            raise AssertionError("the connection ended (%r) without a GOAWAY; last frames: %r"
                                 % (self.closed, self.frames[-8:]))
        return found()[0]

    # -- frames

    def _credit(self, stream):
        if stream.unacked > 0 and not stream.hold and not stream.done:
            self.conn.write_window_update(stream.id, stream.unacked)
        stream.unacked = 0

    def _handle(self, ev):
        if ev.kind in (h2.CLOSED, h2.ERROR):
            self.closed = ev
            return
        f = ev.frame
        self.frames.append(f)
        if len(self.frames) > 4096:
            del self.frames[:2048]
        t = f.type
        if t == h2.SETTINGS:
            if f.ack:
                self.settings_acked = True
            else:
                for ident, value in f.settings:
                    if ident == h2.SETTINGS_INITIAL_WINDOW_SIZE:
                        delta = value - self.peer_initial_window
                        self.peer_initial_window = value
                        for s in self.streams.values():
                            s.send_window += delta
                self.got_settings = True
                self.conn.write_settings_ack()
        elif t == h2.WINDOW_UPDATE:
            if f.stream_id == 0:
                self.conn_send_window += f.window_increment or 0
            else:
                s = self.streams.get(f.stream_id)
                if s is not None:
                    s.send_window += f.window_increment or 0
                    s.last_credit = time.monotonic()
        elif t == h2.PING:
            if not f.ack:
                self.pings.append(f)
                if self.answer_pings:
                    self.conn.write_ping(f.payload, ack=True)
        elif t == h2.GOAWAY:
            self.goaways.append(f)
        elif t in (h2.HEADERS, h2.CONTINUATION):
            s = self.streams.get(f.stream_id)
            block = f.block_fragment
            if s is None:
                # Still decoded: the HPACK table must stay in step.
                if f.end_headers:
                    self.conn.decode_headers(block)
                return
            s._block += block
            if f.type == h2.HEADERS:
                s._end_with_block = f.end_stream
            if f.end_headers:
                fields = self.conn.decode_headers(s._block)
                s._block = b""
                status = next((v for n, v in fields if n == ":status"), None)
                if s.headers is None and status is not None and status.startswith("1"):
                    s.informational.append(fields)
                elif s.headers is None:
                    s.headers = fields
                else:
                    s.trailers = fields
                if s._end_with_block:
                    s.ended = True
        elif t == h2.DATA:
            n = f.length
            self.conn_unacked += n
            if self.conn_unacked >= 32768:
                self.conn.write_window_update(0, self.conn_unacked)
                self.conn_unacked = 0
            s = self.streams.get(f.stream_id)
            if s is None:
                return
            s._on_data(f.data)
            if f.end_stream:
                s.ended = True
            s.unacked += n
            if not s.hold and not s.ended and s.unacked >= min(16384, self.recv_window // 2):
                self._credit(s)
        elif t == h2.RST_STREAM:
            s = self.streams.get(f.stream_id)
            if s is not None:
                s.reset_code = f.error_code


def connect(host, port, tls=False, **kw):
    return Mux.connect(host, port, tls=tls, **kw)
