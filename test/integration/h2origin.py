"""An HTTP/2 origin for sluice's integration tests (python3-h2, server side).

    origin = H2Origin()                                  # h2c, prior knowledge, 127.0.0.1:0
    origin = H2Origin(tls=cert)                          # TLS, ALPN "h2" (a tls_pki Cert)
    origin = H2Origin(tls=cert, alpn=("http/1.1",))      # TLS, an HTTP/1.1 origin (see below)
    origin.port, origin.addr
    ...
    origin.close()

One thread accepts; each connection has its own thread, which alone owns its H2Connection: every
stream of a connection is served by that thread, interleaved, as the flow-control windows allow
(DATA never goes beyond the peer's connection and stream windows; what the peer sends is
credited back as it is read, so uploads of any size complete). A test talks to the connection
threads through gates and fault commands, which wake them up (no polling, no sleeps).

Paths (as harness.HttpOrigin's where they overlap; a query string goes after the path):

  any other  200 "METHOD path xff=X xfp=X via=X body=N:first16" with content-length, once the
             request has ended.
  /gen?size=N[&framing=cl|chunked][&chunk=K][&seed=S][&trailers=n1:v1,n2:v2]
      [&reset_after=M[&reset_code=C]][&cut=M]
             N bytes of harness.PatternStream(S) (default seed "gen": check them with
             harness.pattern_digest(S, N)), in DATA frames of at most K bytes (default: the
             frame size). framing=cl (default) sends content-length; chunked (or none): no
             content-length. trailers: a HEADERS frame with them ends the stream.
             reset_after=M: after M body bytes (0: right after the head), RST_STREAM with code
             C (default INTERNAL_ERROR): a response cut mid-body. cut=M: after M body bytes the
             whole TCP connection is closed (no GOAWAY).
  /echo[?framing=cl|chunked][&headers=a,b][&trailers=...]
             the request body back, with x-request-length, x-request-sha256,
             x-request-trailers ("name=value" joined by "; "), x-request-method,
             x-request-scheme, x-request-authority, x-request-path,
             x-request-content-length ("none" when absent), x-request-host ("none" when
             absent), and x-echo-NAME for each NAME of `headers` (values joined by ", ").
  /trailers[?size=N]
             N bytes (default 5) of PatternStream("trailers"), no content-length, then the
             trailers x-checksum (sha256 hex of the body) and x-trailer: yes.
  /status/CODE
             that status: "status CODE\\n" (204: nothing; 304: content-length 1234, an etag
             and no body).
  /gate/NAME[?head=1]
             held until gate(NAME) is set (the stream stays open meanwhile), then answered as
             "any other". head=1: the head and a first DATA "head\\n" go out at once, "tail\\n"
             and the end after the gate.
  /fields?n=N[&prefix=P]
             N response fields P000: value-0 ... (default prefix x-field-number-).
  /reset[?code=C]
             RST_STREAM(C) (default INTERNAL_ERROR) as soon as the request head arrives.
  /sink/NAME
             reads the body without crediting it (the peer's stream window runs out) until
             gate(NAME) is set, then credits it and answers "received N".
  /stream-echo
             answers at once (head without content-length), then echoes every DATA as it
             arrives; the request's end ends the response with the trailer x-request-length.

app: a function of the Request, called once the request has ended (on the connection's
thread: it must not block), returning None (the paths above answer) or a dict: status, headers
(a list of (name, value)), body (bytes), trailers (a list, or None), gate (a Gate the answer
waits for, or None).

Every response carries x-origin: yes, x-origin-name, x-origin-conn (the connection's index,
from 0 in accept order) and x-origin-stream (the stream id).

Faults a test triggers:

  refuse_next(count=1, predicate=None)
             the next `count` requests (matching predicate(request)) are answered with
             RST_STREAM(REFUSED_STREAM) as their head arrives: never processed.
  goaway(conn=None, last_stream_id=None, error_code=NO_ERROR)
             sends GOAWAY(last_stream_id) on a connection (default: the newest one; default
             last id: the highest processed stream). Streams above it are never processed and
             never answered; streams at or below it go on; once they are done the origin closes
             the connection (close=False keeps it open).
  goaway_after(k)
             the next connection that receives a request beyond its k-th sends
             GOAWAY(last_stream_id = the k-th request's stream id) at that moment: the streams
             after the k-th are refused, unprocessed, while they are open (mid-traffic).
  max_concurrent_streams (constructor)
             advertised in SETTINGS; a stream beyond it (a peer that has not seen or not
             acknowledged the SETTINGS yet, or one that ignores them) is refused with
             RST_STREAM(REFUSED_STREAM) and counted (`over_limit` of the connection).

What it saw, thread-safe (hold `origin.cond` to read lists while traffic goes on, or use the
wait_* helpers):

  connections              connections accepted
  conns                    H2OriginConn per connection: index, alpn, protocol ("h2" or
                           "http/1.1"), requests (received), processed, max_open_streams (the
                           most streams open at once, counting one refused for going over
                           the limit), over_limit, refused, peer_settings,
                           goaway_sent (last id or None), peer_goaway, closed (bool),
                           protocol_error (what python3-h2 refused, or None)
  requests                 every Request in arrival order: conn, stream_id, protocol, method,
                           path, authority, scheme, headers (list of (name, value) with the
                           pseudo-header fields first, as received), body, trailers, complete
                           (the request ended), state ("open", "answered", "refused",
                           "refused_goaway", "reset_by_peer", "reset", "closed_unanswered":
                           the connection ended first), processed, reset_code
                           (the peer's RST_STREAM)
  processed_counts(name)   {value of field `name`: times processed} over processed requests
  requests_per_connection()  processed requests per connection, in connection order

HTTP/1.1: on cleartext, a connection that does not start with the HTTP/2 preface, and over TLS
when ALPN selects "http/1.1" (the origin offers only that, or the client does not offer h2), is
served as a keep-alive HTTP/1.1 origin (Content-Length or chunked request bodies; responses
with Content-Length): the app, /gen, /echo, /status/CODE and "any other" (not the HTTP/2-only
paths gate, reset, sink, stream-echo, trailers), recorded the same way with protocol "http/1.1"
and stream_id None.

python3-h2 only (Debian: python3-h2, python3-hpack, python3-hyperframe); certificates come from
tls_pki.py. Every wait is bounded; the connection threads end on close() or after IDLE_LIMIT
seconds without any traffic.
"""

import collections
import hashlib
import os
import select
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

IO_TIMEOUT = harness.IO_TIMEOUT
# A connection with no traffic at all for this long is closed (bounds every connection thread).
IDLE_LIMIT = 300.0
# A gate holds a stream for at most this long, then answers anyway (a test that forgot it).
GATE_LIMIT = 120.0

NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
PROTOCOL_ERROR = h2.errors.ErrorCodes.PROTOCOL_ERROR
INTERNAL_ERROR = h2.errors.ErrorCodes.INTERNAL_ERROR
REFUSED_STREAM = h2.errors.ErrorCodes.REFUSED_STREAM
CANCEL = h2.errors.ErrorCodes.CANCEL


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _s(x):
    return x.decode("latin-1") if isinstance(x, (bytes, bytearray)) else x


def parse_query(path):
    _, _, q = path.partition("?")
    out = {}
    for part in q.split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


class Gate:
    """A threading.Event that also wakes the origin's connection threads when set."""

    def __init__(self, origin):
        self._event = threading.Event()
        self._origin = origin

    def set(self):
        self._event.set()
        self._origin._wake_all()

    def is_set(self):
        return self._event.is_set()

    def wait(self, timeout=None):
        return self._event.wait(timeout)


class Request:
    """One request as the origin received it (see the module doc)."""

    def __init__(self, conn, stream_id, protocol, headers):
        self.conn = conn
        self.stream_id = stream_id
        self.protocol = protocol
        self.headers = list(headers)
        self.method = self.header(":method")
        self.path = self.header(":path")
        self.authority = self.header(":authority")
        self.scheme = self.header(":scheme")
        self.body = bytearray()
        self.trailers = []
        self.complete = False
        self.state = "open"
        self.processed = False
        self.reset_code = None
        self.received_at = time.monotonic()

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    def headers_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def body_length(self):
        return len(self.body)

    @property
    def body_sha256(self):
        return sha256_hex(bytes(self.body))

    def __repr__(self):
        return "Request(conn=%d, stream=%s, %s %s, state=%s, body=%d, complete=%s)" % (
            self.conn, self.stream_id, self.method, self.path, self.state, len(self.body),
            self.complete)


class H2OriginConn:
    """What one connection saw (see the module doc)."""

    def __init__(self, index, peer):
        self.index = index
        self.peer = peer
        self.alpn = None
        self.protocol = None
        self.requests = 0
        self.processed = 0
        self.max_open_streams = 0
        self.over_limit = 0
        self.refused = 0
        self.peer_settings = {}
        self.settings_acked = False
        self.goaway_sent = None
        self.peer_goaway = None
        self.closed = False
        self.protocol_error = None
        self.pings = 0  # PING frames received (not acks): the peer's keep-alive

    def __repr__(self):
        return ("H2OriginConn(%d, %s, requests=%d, processed=%d, max_open=%d, goaway=%s, "
                "closed=%s)" % (self.index, self.protocol, self.requests, self.processed,
                                self.max_open_streams, self.goaway_sent, self.closed))


class _OriginSettings(h2.settings.Settings):
    """Advertises MAX_CONCURRENT_STREAMS as given, but lets python3-h2 accept any number of
    streams: the origin refuses the excess itself, with REFUSED_STREAM (python3-h2 would end
    the whole connection)."""

    @property
    def max_concurrent_streams(self):
        return 2 ** 32 + 1

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value):
        self[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = value


class _Out:
    """The response side of one stream: steps run in order as the windows and gates allow."""

    def __init__(self):
        self.steps = collections.deque()
        self.open = False  # more steps may still be appended (stream-echo)
        self.done = False
        self.hold_credit = None  # a Gate: DATA received is not credited until it is set
        self.uncredited = 0
        self.sent_body = 0


class _Handler:
    """One connection: its thread, its H2Connection, its streams."""

    def __init__(self, origin, sock, info):
        self.origin = origin
        self.sock = sock
        self.info = info
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.commands = collections.deque()
        self.lock = threading.Lock()
        self.h2 = None
        self.outs = {}  # stream id -> _Out
        self.reqs = {}  # stream id -> Request
        self.outbuf = bytearray()
        self.extra_after = []  # raw frames to write after what h2 has queued
        self.goaway_last = None
        self.close_when_done = False
        self.max_sid_at_goaway = None
        self.closing = False
        self.last_activity = time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True,
                                       name="h2origin-conn-%d" % info.index)

    # -- called from other threads

    def wake(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def command(self, fn):
        with self.lock:
            self.commands.append(fn)
        self.wake()

    # -- the thread

    def run(self):
        try:
            if self.origin.tls is not None:
                self.sock.settimeout(IO_TIMEOUT)
                try:
                    self.sock = self.origin._ssl_ctx.wrap_socket(self.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self.origin.cond:
                        self.info.protocol_error = "TLS handshake: %r" % e
                        self.origin.cond.notify_all()
                    return
                self.info.alpn = self.sock.selected_alpn_protocol()
            if self.origin.tls is None:
                use_h1 = not self.sniff_preface()
            else:
                use_h1 = (self.info.alpn == "http/1.1" or
                          (self.info.alpn is None and "h2" not in self.origin.alpn))
            with self.origin.cond:
                self.info.protocol = "http/1.1" if use_h1 else "h2"
                self.origin.cond.notify_all()
            if use_h1:
                _Http1Server(self).serve()
            else:
                self.serve_h2()
        except OSError as e:
            if not self.origin._stopping:
                self.origin.errors.append(e)
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.wake_r.close()
            self.wake_w.close()
            with self.origin.cond:
                self.info.closed = True
                for req in self.reqs.values():
                    if req.state == "open":
                        req.state = "closed_unanswered"
                self.origin.cond.notify_all()

    def sniff_preface(self):
        """Cleartext: True when the client starts with the HTTP/2 preface (prior knowledge),
        False for anything else (an HTTP/1.1 client). Looks without reading (MSG_PEEK)."""
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        deadline = time.monotonic() + IO_TIMEOUT
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock, self.wake_r], [], [], 0.5)
            if self.origin._stopping:
                return True
            if self.sock not in r:
                continue
            head = self.sock.recv(len(preface), socket.MSG_PEEK)
            if not head or not preface.startswith(head):
                return False
            if len(head) == len(preface):
                return True
            # A part of the preface so far: wait for the rest.
            select.select([], [], [], 0.01)
        return True

    def serve_h2(self):
        o = self.origin
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config=config)
        # A GOAWAY from the peer (sluice draining its upstream connection) must not stop the
        # streams it lets finish: python3-h2's state machine would refuse every later send.
        machine = conn.state_machine
        machine._transitions = dict(machine._transitions)
        cs, ci = h2.connection.ConnectionState, h2.connection.ConnectionInputs
        machine._transitions[(cs.SERVER_OPEN, ci.RECV_GOAWAY)] = (None, cs.SERVER_OPEN)
        machine._transitions[(cs.IDLE, ci.RECV_GOAWAY)] = (None, cs.IDLE)
        codes = h2.settings.SettingCodes
        conn.local_settings = _OriginSettings(client=False, initial_values={
            codes.MAX_CONCURRENT_STREAMS: o.max_concurrent_streams,
            codes.MAX_HEADER_LIST_SIZE: 65536,
            codes.INITIAL_WINDOW_SIZE: o.initial_window_size,
            codes.MAX_FRAME_SIZE: o.max_frame_size,
        })
        conn.max_inbound_frame_size = o.max_frame_size
        conn.initiate_connection()
        if o.connection_window > 65535:
            conn.increment_flow_control_window(o.connection_window - 65535)
        self.h2 = conn
        self.sock.setblocking(False)
        while True:
            if o._stopping:
                return
            self.run_commands()
            self.pump_streams()
            self.collect_output()
            if self.closing and not self.outbuf:
                return
            if self.close_when_done and not self.outbuf and self.goaway_done():
                self.shutdown_gracefully()
                return
            if time.monotonic() - self.last_activity > IDLE_LIMIT:
                return
            rlist = [self.sock, self.wake_r]
            wlist = [self.sock] if self.outbuf else []
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
            timeout = 0 if pending else 0.5
            try:
                r, w, _ = select.select(rlist, wlist, [], timeout)
            except (OSError, ValueError):
                return
            if self.wake_r in r:
                try:
                    while self.wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            if self.sock in w:
                if not self.write_some():
                    return
            if self.sock in r or pending:
                if not self.read_some():
                    return

    # -- socket I/O

    def read_some(self):
        """Reads what is there and feeds it to h2; False once the connection is over."""
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError,
                    InterruptedError):
                return True
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                    ssl.SSLError, socket.timeout):
                return False
            if not data:
                return False
            self.last_activity = time.monotonic()
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                with self.origin.cond:
                    self.info.protocol_error = "%s: %s" % (type(e).__name__, e)
                    self.origin.protocol_errors.append((self.info.index, repr(e)))
                    self.origin.cond.notify_all()
                self.closing = True
                self.collect_output()
                return True
            for ev in events:
                self.on_event(ev)
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                return True
        return True

    def write_some(self):
        try:
            n = self.sock.send(bytes(self.outbuf[:65536]))
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError,
                InterruptedError):
            return True
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLError,
                socket.timeout, OSError):
            return False
        del self.outbuf[:n]
        self.last_activity = time.monotonic()
        return True

    def collect_output(self):
        data = self.h2.data_to_send()
        if data:
            self.outbuf += data
        for raw in self.extra_after:
            self.outbuf += raw
        self.extra_after = []

    def shutdown_gracefully(self):
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(5.0)
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock = self.sock.unwrap()
            self.sock.shutdown(socket.SHUT_WR)
            # Until the peer closes too (bounded), so that nothing we sent is lost to a reset.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self.sock.recv(65536):
                pass
        except (OSError, ValueError, ssl.SSLError):
            pass

    # -- commands from the test thread

    def run_commands(self):
        while True:
            with self.lock:
                if not self.commands:
                    return
                fn = self.commands.popleft()
            fn(self)

    def send_goaway(self, last_stream_id, error_code=NO_ERROR, close=True, done=None):
        """Writes GOAWAY(last_stream_id) without telling python3-h2, whose state machine would
        refuse to go on with the streams below it."""
        if last_stream_id is None:
            processed = [sid for sid, r in self.reqs.items() if r.processed]
            last_stream_id = max(processed) if processed else 0
        self.collect_output()  # what h2 queued goes before the GOAWAY
        f = GoAwayFrame(0)
        f.last_stream_id = last_stream_id
        f.error_code = error_code
        self.extra_after.append(f.serialize())
        self.goaway_last = last_stream_id
        self.max_sid_at_goaway = max(self.reqs) if self.reqs else 0
        self.close_when_done = close
        with self.origin.cond:
            self.info.goaway_sent = last_stream_id
            for sid, req in self.reqs.items():
                if sid > last_stream_id and req.processed:
                    # Not possible for a test that picks the id right; counted as refused.
                    req.processed = False
                    self.info.processed -= 1
                if sid > last_stream_id:
                    req.state = "refused_goaway"
                    self.outs.pop(sid, None)
            self.origin.cond.notify_all()
        if done is not None:
            done.set()

    def goaway_done(self):
        """After our GOAWAY: every stream at or below its last id is over."""
        for sid, out in self.outs.items():
            if sid <= self.goaway_last and not out.done:
                return False
        for sid, req in self.reqs.items():
            if sid <= self.goaway_last and req.processed and not req.complete and \
                    req.state == "open":
                return False
        return True

    # -- events

    def on_event(self, ev):
        o = self.origin
        if isinstance(ev, h2.events.RequestReceived):
            self.on_request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            self.on_data(ev)
        elif isinstance(ev, h2.events.TrailersReceived):
            req = self.reqs.get(ev.stream_id)
            if req is not None:
                with o.cond:
                    req.trailers = [(_s(n), _s(v)) for n, v in ev.headers]
                    o.cond.notify_all()
        elif isinstance(ev, h2.events.StreamEnded):
            self.on_end(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            req = self.reqs.get(ev.stream_id)
            out = self.outs.pop(ev.stream_id, None)
            if out is not None:
                out.done = True
            if req is not None:
                with o.cond:
                    req.reset_code = ev.error_code
                    if req.state == "open":
                        req.state = "reset_by_peer"
                    o.cond.notify_all()
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            with o.cond:
                for code, change in ev.changed_settings.items():
                    self.info.peer_settings[int(code)] = change.new_value
                o.cond.notify_all()
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            with o.cond:
                self.info.settings_acked = True
                o.cond.notify_all()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            with o.cond:
                self.info.peer_goaway = (ev.last_stream_id, ev.error_code)
                o.cond.notify_all()
        elif isinstance(ev, h2.events.PingReceived):
            # h2 acks it; counted for the peer's keep-alive.
            with o.cond:
                self.info.pings += 1
                o.cond.notify_all()
        # WindowUpdated, PriorityUpdated: pump_streams goes on.

    def _h2_stream_open(self, sid):
        stream = self.h2.streams.get(sid)
        return stream is not None and stream.open

    def ignored(self, sid):
        return self.goaway_last is not None and sid > self.goaway_last

    def on_request(self, ev):
        o = self.origin
        sid = ev.stream_id
        headers = [(_s(n), _s(v)) for n, v in ev.headers]
        req = Request(self.info.index, sid, "h2", headers)
        refuse = None
        goaway_now = None
        with o.cond:
            self.reqs[sid] = req
            o.requests.append(req)
            self.info.requests += 1
            # Counted over the streams received so far (python3-h2 has already opened the
            # later streams of the same read).
            open_now = sum(1 for s, r in self.reqs.items()
                           if r.state != "refused" and self._h2_stream_open(s))
            self.info.max_open_streams = max(self.info.max_open_streams, open_now)
            if self.ignored(sid):
                req.state = "refused_goaway"
            elif open_now > o.max_concurrent_streams:
                refuse = "over_limit"
            else:
                rule = o._take_refusal(req)
                if rule:
                    refuse = "rule"
                elif o._goaway_after is not None and o._goaway_after[1] in (None,
                                                                              self.info.index) \
                        and self.info.processed >= o._goaway_after[0]:
                    if o._goaway_after[1] is None:
                        o._goaway_after = (o._goaway_after[0], self.info.index)
                    processed = sorted(s for s, r in self.reqs.items() if r.processed)
                    goaway_now = processed[o._goaway_after[0] - 1] if o._goaway_after[0] else 0
                    o._goaway_after = None
            if refuse:
                req.state = "refused"
                self.info.refused += 1
                if refuse == "over_limit":
                    self.info.over_limit += 1
            elif goaway_now is None and req.state == "open":
                req.processed = True
                self.info.processed += 1
            o.cond.notify_all()
        if refuse:
            self.h2.reset_stream(sid, REFUSED_STREAM)
            return
        if goaway_now is not None:
            self.send_goaway(goaway_now)
            return
        if req.state != "open":
            return
        # (An END_STREAM on the head comes as a StreamEnded event right after this one.)
        self.plan(req)

    def on_data(self, ev):
        sid = ev.stream_id
        req = self.reqs.get(sid)
        out = self.outs.get(sid)
        n = ev.flow_controlled_length
        if req is not None and req.processed and req.state == "open":
            with self.origin.cond:
                if self.origin.keep_bodies:
                    req.body += ev.data
                self.origin.cond.notify_all()
            if out is not None and out.open:
                # stream-echo: the bytes go straight back.
                if ev.data:
                    out.steps.append(("data", bytes(ev.data), False))
        if out is not None and out.hold_credit is not None and not out.hold_credit.is_set():
            # Credited on the connection (the other streams go on), not on the stream, whose
            # window runs out: pump_streams credits it once the gate opens.
            out.uncredited += n
            if n:
                self.h2.increment_flow_control_window(n)
            return
        if n:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except h2.exceptions.StreamClosedError:
                pass

    def on_end(self, sid):
        o = self.origin
        req = self.reqs.get(sid)
        if req is None:
            return
        with o.cond:
            req.complete = True
            o.cond.notify_all()
        out = self.outs.get(sid)
        if out is None or req.state != "open":
            return
        if out.open:
            # stream-echo: the request's end ends the response.
            out.steps.append(("trailers", [("x-request-length", str(len(req.body)))]))
            out.open = False
        elif out.steps and out.steps[0][0] == "await_end":
            out.steps.popleft()
            self.respond(req, out)

    # -- responses

    def base_headers(self, req, status):
        o = self.origin
        return [(":status", str(status)), ("x-origin", "yes"), ("x-origin-name", o.name),
                ("x-origin-conn", str(self.info.index)), ("x-origin-stream", str(req.stream_id))]

    def plan(self, req):
        """At the request's head: what to do now, and what once it has ended."""
        out = _Out()
        self.outs[req.stream_id] = out
        path = req.path or ""
        if path.startswith("/reset"):
            code = int(parse_query(path).get("code", str(int(INTERNAL_ERROR))))
            out.steps.append(("reset", code))
            return
        if path.startswith("/stream-echo"):
            out.steps.append(("headers", self.base_headers(req, 200), False))
            out.open = True
            return
        if path.startswith("/sink/"):
            out.hold_credit = self.origin.gate(path[len("/sink/"):].split("?")[0])
        out.steps.append(("await_end",))

    def respond(self, req, out):
        """Once the request has ended: the response's steps."""
        o = self.origin
        path = req.path or ""
        query = parse_query(path)
        body = bytes(req.body)
        steps = out.steps
        answer = o.app(req) if o.app is not None else None
        if answer is not None:
            data = answer.get("body", b"")
            headers = self.base_headers(req, answer.get("status", 200)) + [
                (n.lower(), v) for n, v in answer.get("headers", ())]
            trailers = answer.get("trailers")
            if answer.get("gate") is not None:
                steps.append(("wait", answer["gate"], time.monotonic() + GATE_LIMIT))
            steps.append(("headers", headers, not data and not trailers))
            if data:
                steps.append(("data", data, not trailers, None))
            if trailers:
                steps.append(("trailers", list(trailers)))
            return
        if path.startswith("/gen?") or path == "/gen":
            size = int(query.get("size", "0"))
            framing = query.get("framing", "cl")
            piece = int(query["chunk"]) if "chunk" in query else None
            trailers = [tuple(t.split(":", 1)) for t in query.get("trailers", "").split(",")
                        if t]
            reset_after = int(query["reset_after"]) if "reset_after" in query else None
            cut = int(query["cut"]) if "cut" in query else None
            headers = self.base_headers(req, 200)
            if framing == "cl":
                headers.append(("content-length", str(size)))
            data = harness.pattern_bytes(query.get("seed", "gen"), size)
            stop = None
            if reset_after is not None:
                stop = ("reset", int(query.get("reset_code", str(int(INTERNAL_ERROR)))),
                        reset_after)
            elif cut is not None:
                stop = ("cut", None, cut)
            if stop is not None:
                data = data[:stop[2]]
            end_on_data = stop is None and not trailers
            steps.append(("headers", headers, size == 0 and end_on_data))
            if data:
                steps.append(("data", data, end_on_data, piece))
            if stop is not None:
                steps.append(("reset", stop[1]) if stop[0] == "reset" else ("cut",))
            elif trailers:
                steps.append(("trailers", trailers))
            return
        if path.startswith("/echo"):
            headers = self.base_headers(req, 200)
            if query.get("framing", "cl") == "cl":
                headers.append(("content-length", str(len(body))))
            headers += [
                ("x-request-length", str(len(body))),
                ("x-request-sha256", sha256_hex(body)),
                ("x-request-trailers", "; ".join("%s=%s" % t for t in req.trailers)),
                ("x-request-method", req.method or ""),
                ("x-request-scheme", req.scheme or ""),
                ("x-request-authority", req.authority or ""),
                ("x-request-path", req.path or ""),
                ("x-request-content-length", req.header("content-length", "none")),
                ("x-request-host", req.header("host", "none")),
            ]
            for name in query.get("headers", "").split(","):
                if name:
                    headers.append(("x-echo-" + name.lower(), ", ".join(req.headers_all(name))))
            trailers = [tuple(t.split(":", 1)) for t in query.get("trailers", "").split(",")
                        if t]
            steps.append(("headers", headers, not body and not trailers))
            if body:
                steps.append(("data", body, not trailers, None))
            if trailers:
                steps.append(("trailers", trailers))
            return
        if path.startswith("/trailers"):
            size = int(query.get("size", "5"))
            data = harness.pattern_bytes("trailers", size)
            steps.append(("headers", self.base_headers(req, 200), False))
            if data:
                steps.append(("data", data, False, None))
            steps.append(("trailers", [("x-checksum", sha256_hex(data)), ("x-trailer", "yes")]))
            return
        if path.startswith("/status/"):
            code = int(path[len("/status/"):].split("?")[0])
            headers = self.base_headers(req, code)
            if code == 304:
                headers += [("content-length", "1234"), ("etag", '"e1"')]
                steps.append(("headers", headers, True))
            elif code == 204:
                steps.append(("headers", headers, True))
            else:
                data = b"status %d\n" % code
                headers.append(("content-length", str(len(data))))
                steps.append(("headers", headers, False))
                steps.append(("data", data, True, None))
            return
        if path.startswith("/fields"):
            n = int(query.get("n", "1"))
            prefix = query.get("prefix", "x-field-number-").lower()
            headers = self.base_headers(req, 200)
            headers += [("%s%03d" % (prefix, i), "value-%d" % i) for i in range(n)]
            headers.append(("content-length", "3"))
            steps.append(("headers", headers, False))
            steps.append(("data", b"ok\n", True, None))
            return
        if path.startswith("/sink/"):
            data = b"received %d" % len(body)
            headers = self.base_headers(req, 200) + [("content-length", str(len(data)))]
            steps.append(("headers", headers, False))
            steps.append(("data", data, True, None))
            return
        data = b"%s %s xff=%s xfp=%s via=%s body=%d:%s" % (
            (req.method or "").encode(), path.encode(),
            req.header("x-forwarded-for", "").encode(),
            req.header("x-forwarded-proto", "").encode(),
            req.header("via", "").encode(), len(body), body[:16])
        if path.startswith("/gate/"):
            gate = o.gate(path[len("/gate/"):].split("?")[0])
            if query.get("head") == "1":
                steps.append(("headers", self.base_headers(req, 200), False))
                steps.append(("data", b"head\n", False, None))
                steps.append(("wait", gate, time.monotonic() + GATE_LIMIT))
                steps.append(("data", b"tail\n", True, None))
                return
            steps.append(("wait", gate, time.monotonic() + GATE_LIMIT))
        headers = self.base_headers(req, 200) + [("content-length", str(len(data)))]
        steps.append(("headers", headers, not data))
        if data:
            steps.append(("data", data, True, None))

    def pump_streams(self, budget=1 << 20):
        """Runs every stream's steps as far as the windows, gates and `budget` allow."""
        conn = self.h2
        for sid in sorted(self.outs):
            out = self.outs.get(sid)
            req = self.reqs.get(sid)
            if out is None or out.done:
                continue
            if out.hold_credit is not None and out.hold_credit.is_set() and out.uncredited:
                try:
                    conn.increment_flow_control_window(out.uncredited, stream_id=sid)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError,
                        KeyError):
                    pass
                out.uncredited = 0
            while out.steps:
                self.collect_output()
                if len(self.outbuf) >= budget:
                    break
                step = out.steps[0]
                kind = step[0]
                if kind == "await_end":
                    break
                if kind == "wait":
                    if not step[1].is_set() and time.monotonic() < step[2]:
                        break
                    out.steps.popleft()
                    continue
                try:
                    if kind == "headers":
                        conn.send_headers(sid, step[1], end_stream=step[2])
                        out.steps.popleft()
                        if step[2]:
                            self.finish(req, out)
                    elif kind == "data":
                        data, end, piece = step[1], step[2], (step[3] if len(step) > 3
                                                              else None)
                        window = conn.local_flow_control_window(sid)
                        limit = min(window, conn.max_outbound_frame_size, len(data))
                        if piece:
                            limit = min(limit, piece)
                        if limit <= 0 and data:
                            break
                        chunk, rest = data[:limit], data[limit:]
                        last = not rest
                        conn.send_data(sid, chunk, end_stream=end and last)
                        out.sent_body += len(chunk)
                        if last:
                            out.steps.popleft()
                            if end:
                                self.finish(req, out)
                        else:
                            out.steps[0] = ("data", rest, end, piece)
                    elif kind == "trailers":
                        conn.send_headers(sid, step[1], end_stream=True)
                        out.steps.popleft()
                        self.finish(req, out)
                    elif kind == "reset":
                        conn.reset_stream(sid, step[1])
                        out.steps.popleft()
                        self.finish(req, out, state="reset")
                    elif kind == "cut":
                        # Everything queued goes out, then the connection is cut.
                        out.steps.popleft()
                        self.finish(req, out, state="reset")
                        self.collect_output()
                        self.closing = True
                        return
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError,
                        KeyError):
                    out.steps.clear()
                    out.done = True
                    break
            if out.done:
                self.outs.pop(sid, None)

    def finish(self, req, out, state="answered"):
        out.done = True
        out.steps.clear()
        if req is not None:
            with self.origin.cond:
                if req.state == "open":
                    req.state = state
                self.origin.cond.notify_all()


class _Http1Server:
    """A minimal keep-alive HTTP/1.1 origin on a connection whose ALPN chose http/1.1."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = handler.sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise EOFError
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def serve(self):
        o = self.handler.origin
        info = self.handler.info
        self.sock.settimeout(IO_TIMEOUT)
        for _ in range(100000):
            try:
                while b"\r\n\r\n" not in self.buf:
                    if len(self.buf) > 65536:
                        return
                    self._fill()
                head, self.buf = self.buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ", 2)
                fields = []
                for line in lines[1:]:
                    n, _, v = line.partition(":")
                    fields.append((n.strip().lower(), v.strip()))
                headers = [(":method", method), (":path", target)] + fields
                req = Request(info.index, None, "http/1.1", headers)
                req.authority = req.header("host")
                with o.cond:
                    o.requests.append(req)
                    info.requests += 1
                    info.processed += 1
                    req.processed = True
                    o.cond.notify_all()
                te = req.header("transfer-encoding", "").lower()
                if te == "chunked":
                    body = b""
                    while True:
                        size = int(self._line().split(b";")[0], 16)
                        if size == 0:
                            while True:
                                t = self._line()
                                if not t:
                                    break
                                n, _, v = t.decode("latin-1").partition(":")
                                req.trailers.append((n.strip().lower(), v.strip()))
                            break
                        body += self._exact(size)
                        self._line()
                else:
                    body = self._exact(int(req.header("content-length", "0")))
                with o.cond:
                    req.body += body
                    req.complete = True
                    o.cond.notify_all()
                self.answer(req, body)
            except (EOFError, ValueError, OSError, ssl.SSLError):
                return

    def answer(self, req, body):
        o = self.handler.origin
        path = req.path
        query = parse_query(path)
        status = 200
        extra = []
        answer = o.app(req) if o.app is not None else None
        if answer is not None:
            if answer.get("gate") is not None:
                answer["gate"].wait(GATE_LIMIT)
            status = answer.get("status", 200)
            out = answer.get("body", b"")
            extra = [(n, v) for n, v in answer.get("headers", ())
                     if n.lower() != "content-length"]
        elif path.startswith("/gen"):
            out = harness.pattern_bytes(query.get("seed", "gen"), int(query.get("size", "0")))
        elif path.startswith("/echo"):
            out = body
            extra = [("x-request-length", str(len(body))),
                     ("x-request-sha256", sha256_hex(body))]
        elif path.startswith("/status/"):
            status = int(path[len("/status/"):].split("?")[0])
            out = b"status %d\n" % status
        else:
            out = b"%s %s xff=%s xfp=%s via=%s body=%d:%s" % (
                req.method.encode(), path.encode(), req.header("x-forwarded-for", "").encode(),
                req.header("x-forwarded-proto", "").encode(), req.header("via", "").encode(),
                len(body), body[:16])
        head = ["HTTP/1.1 %d X" % status, "x-origin: yes", "x-origin-name: %s" % o.name,
                "x-origin-conn: %d" % self.handler.info.index, "x-origin-protocol: http/1.1",
                "content-length: %d" % len(out)] + ["%s: %s" % kv for kv in extra]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + out)
        with o.cond:
            req.state = "answered"
            o.cond.notify_all()


class H2Origin:
    """The HTTP/2 origin (see the module doc)."""

    def __init__(self, name="h2origin", host="127.0.0.1", port=0, tls=None, alpn=("h2",),
                 max_concurrent_streams=100, initial_window_size=65535, max_frame_size=16384,
                 connection_window=65535, keep_bodies=True, app=None):
        self.name = name
        self.app = app
        self.host = host
        self.tls = tls
        self.alpn = tuple(alpn)
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.max_frame_size = max_frame_size
        self.connection_window = connection_window
        self.keep_bodies = keep_bodies
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.connections = 0
        self.conns = []
        self.requests = []
        self.errors = []
        self.protocol_errors = []
        self.gates = {}
        self._refusals = []  # [remaining, predicate]
        self._goaway_after = None  # (k, connection index or None)
        self._handlers = []
        self._stopping = False
        self._ssl_ctx = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.chain, tls.key)
            ctx.set_alpn_protocols(list(self.alpn))
            self._ssl_ctx = ctx
        self.sock = socket.socket(harness.family_of(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name="h2origin-accept")
        self._accept_thread.start()

    @property
    def addr(self):
        return (self.host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while not self._stopping:
            try:
                r, _, _ = select.select([self.sock, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                return
            if self._wake_r in r or self._stopping:
                return
            if self.sock not in r:
                continue
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                self.errors.append(e)
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.cond:
                if self._stopping:
                    conn.close()
                    return
                info = H2OriginConn(len(self.conns), peer)
                self.conns.append(info)
                self.connections += 1
                handler = _Handler(self, conn, info)
                self._handlers.append(handler)
                self.cond.notify_all()
            handler.thread.start()

    def _wake_all(self):
        with self.lock:
            handlers = list(self._handlers)
        for h in handlers:
            h.wake()

    # -- gates

    def gate(self, name):
        """The Gate that /gate/NAME and /sink/NAME wait for (created on first use)."""
        with self.lock:
            g = self.gates.get(name)
            if g is None:
                g = self.gates[name] = Gate(self)
            return g

    def open_gates(self):
        with self.lock:
            gates = list(self.gates.values())
        for g in gates:
            g._event.set()
        self._wake_all()

    # -- faults

    def refuse_next(self, count=1, predicate=None):
        """The next `count` requests for which predicate(request) holds (any, without one) are
        refused with RST_STREAM(REFUSED_STREAM), unprocessed."""
        with self.lock:
            self._refusals.append([count, predicate])

    def _take_refusal(self, req):
        for rule in self._refusals:
            if rule[0] > 0 and (rule[1] is None or rule[1](req)):
                rule[0] -= 1
                return True
        return False

    def goaway_after(self, k, conn=None):
        """On connection `conn` (default: whichever gets there first), the request after the
        k-th processed one makes the origin send GOAWAY(last_stream_id = the k-th's id); that
        request and the later ones are never processed. Once."""
        with self.lock:
            self._goaway_after = (k, conn)

    def goaway(self, conn=None, last_stream_id=None, error_code=NO_ERROR, close=True,
               timeout=IO_TIMEOUT):
        """Sends GOAWAY(last_stream_id) on connection `conn` (an index; default: the newest)
        and returns once it is queued on that connection. Streams above last_stream_id are
        dropped unanswered (state refused_goaway)."""
        with self.lock:
            handler = self._handlers[-1 if conn is None else conn]
        done = threading.Event()
        handler.command(lambda h: h.send_goaway(last_stream_id, error_code, close, done))
        if not done.wait(timeout):
            raise AssertionError("%s: the GOAWAY did not go out within %.0fs" %
                                 (self.name, timeout))

    # -- what was seen

    def wait_for(self, predicate, timeout=harness.STATS_TIMEOUT, what="a condition"):
        """Waits until predicate(self) holds (called under the lock); raises on timeout."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError("%s: no %s within %.0fs; conns=%r; requests=%r" % (
                    self.name, what, timeout, self.conns, self.requests[-20:]))

    def wait_request(self, predicate=lambda r: True, timeout=harness.STATS_TIMEOUT,
                     what="request"):
        """The first Request for which predicate(request) holds, once it has arrived (its head:
        the body may still be coming)."""
        found = []

        def check(_):
            for r in self.requests:
                if predicate(r):
                    found.append(r)
                    return True
            return False

        self.wait_for(check, timeout, what)
        return found[0]

    def wait_requests(self, n, predicate=lambda r: True, timeout=harness.STATS_TIMEOUT,
                      what=None):
        """Waits until n requests satisfy predicate; returns them."""
        self.wait_for(lambda o: sum(1 for r in o.requests if predicate(r)) >= n, timeout,
                      what or "%d requests" % n)
        with self.lock:
            return [r for r in self.requests if predicate(r)]

    def wait_open_streams(self, conn, n, timeout=harness.STATS_TIMEOUT):
        """Waits until connection `conn` holds n processed requests whose responses have not
        ended (e.g. held by a gate)."""
        self.wait_for(lambda o: sum(1 for r in o.requests if r.conn == conn and r.processed
                                    and r.state == "open") >= n, timeout,
                      "%d open streams on connection %d" % (n, conn))

    def processed_requests(self):
        with self.lock:
            return [r for r in self.requests if r.processed]

    def processed_counts(self, name="x-request-id"):
        """{value of `name`: how many times a request carrying it was processed}."""
        counts = collections.Counter()
        with self.lock:
            for r in self.requests:
                if r.processed:
                    counts[r.header(name)] += 1
        return counts

    def requests_per_connection(self):
        with self.lock:
            return [c.processed for c in self.conns]

    def close(self):
        with self.lock:
            self._stopping = True
            handlers = list(self._handlers)
        self.open_gates()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(IO_TIMEOUT)
        for h in handlers:
            h.wake()
            try:
                # A blocking HTTP/1.1 connection thread wakes up from its read.
                h.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):
                pass
        for h in handlers:
            h.thread.join(5.0)
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()


def tls_origin_cert(names=("h2.test", "localhost", "127.0.0.1"), ca_name="h2up-root"):
    """(root CA, server Cert) for a TLS H2Origin, from tls_pki's shared PKI (made once per
    process)."""
    import tls_pki
    pki = tls_pki.shared_pki()
    root = pki.ca(ca_name)
    return root, pki.server_cert(root, list(names))
