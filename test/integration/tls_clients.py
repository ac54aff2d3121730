"""Clients and an origin for sluice's TLS integration tests (tls_test.py): HTTP/1.1 over any
socket (TLS or not) read with bytearrays, so that megabyte bodies cost no quadratic copying; an
origin that reports what it received; a TLS client on memory BIOs that controls how its bytes go
out; and many stalled raw connections watched with one selector.

Python 3 standard library only; every socket operation is bounded (harness.IO_TIMEOUT)."""

import hashlib
import os
import random
import resource
import selectors
import socket
import ssl
import time

import harness

def pattern(size, seed):
    """`size` deterministic pseudo-random bytes (the same for the same size and seed)."""
    return random.Random("%d/%d" % (seed, size)).randbytes(size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def get(host="sluice.test", target="/", close=True, extra=b""):
    return (b"GET %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n" % (
        target.encode(), host.encode(), b"Connection: close\r\n" if close else b"", extra))


def raise_fd_limit(need):
    """The soft open-file limit raised (up to the hard one) so that this process holds `need`
    descriptors; sluice inherits it (and raises its own to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(hard, need)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < need:
        raise AssertionError("this test needs %d open files; the hard limit is %d" % (need, hard))


def client_hello(server_name):
    """The bytes of a real TLS ClientHello (Python's OpenSSL, as a client would send it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    assert data[:1] == b"\x16" and len(data) > 100, data[:16]
    return data


def client_context(ca):
    """An ssl client context that trusts `ca` and tells a clean TLS close from a bare FIN: a
    FIN without close_notify raises an SSLError (some Pythons, Debian's among them, set
    OP_IGNORE_UNEXPECTED_EOF by default, which would read it as a clean end)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return ctx


# ------------------------------------------------------------------------------------------------
# HTTP/1.1 over any socket (TLS or not): requests, and responses read whole, with bytearrays so
# that megabytes cost no quadratic copying.


class HttpReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def more(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("the peer closed with %d bytes unparsed: %r" % (
                len(self.buf), bytes(self.buf[:200])))
        self.buf += data

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            self.more()

    def exact(self, n):
        while len(self.buf) < n:
            self.more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def head(self):
        """(first line, [(lowercase name, value)]) or None at a clean EOF before any byte."""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                if self.buf:
                    raise EOFError("EOF inside a head: %r" % bytes(self.buf[:200]))
                return None
            self.buf += data
        first = self.line().decode("latin-1")
        fields = []
        while True:
            line = self.line()
            if not line:
                return first, fields
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, "malformed field %r" % line
            fields.append((name.strip().lower(), value.strip()))

    def body(self, fields):
        """(body, chunked?) framed by Content-Length or chunked (no body otherwise)."""
        te = [v.lower() for n, v in fields if n == "transfer-encoding"]
        if te:
            assert te == ["chunked"], te
            out = bytearray()
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    return bytes(out), True
                out += self.exact(size)
                assert self.exact(2) == b"\r\n", "chunk not followed by CRLF"
        lengths = [v for n, v in fields if n == "content-length"]
        if lengths:
            return self.exact(int(lengths[0])), False
        return b"", False


class Response:
    def __init__(self, status, fields, body, chunked):
        self.status, self.fields, self.body, self.chunked = status, fields, body, chunked

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        return [v for n, v in self.fields if n == name.lower()]

    def __repr__(self):
        return "<Response %d %r %d bytes%s>" % (self.status, self.fields, len(self.body),
                                                ", chunked" if self.chunked else "")


class HttpConn:
    """An HTTP/1.1 client over one (TLS) socket, keep-alive."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = HttpReader(sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, method, target, host="sluice.test", headers=(), body=None, chunked=False):
        head = [b"%s %s HTTP/1.1" % (method.encode(), target.encode()),
                b"Host: %s" % host.encode()]
        head += [b"%s: %s" % (n.encode(), v.encode()) for n, v in headers]
        if body is not None:
            head.append(b"Transfer-Encoding: chunked" if chunked else
                        b"Content-Length: %d" % len(body))
        self.sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        if body is None:
            return
        if not chunked:
            if body:
                self.sock.sendall(body)
            return
        # Chunks of uneven sizes, so that chunk and record boundaries fall everywhere.
        sizes = [1000, 16384, 65536, 7]
        at = 0
        i = 0
        while at < len(body):
            n = sizes[i % len(sizes)]
            piece = body[at:at + n]
            self.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            at += len(piece)
            i += 1
        self.sock.sendall(b"0\r\n\r\n")

    def response(self):
        head = self.reader.head()
        if head is None:
            raise EOFError("the connection closed before a response")
        first, fields = head
        parts = first.split(" ", 2)
        assert parts[0] == "HTTP/1.1" and len(parts) >= 2, first
        status = int(parts[1])
        body, chunked = self.reader.body(fields)
        return Response(status, fields, body, chunked)

    def request(self, *args, **kw):
        self.send(*args, **kw)
        return self.response()


# ------------------------------------------------------------------------------------------------
# An origin that shows what it received


class Origin(harness.UpstreamServer):
    """A keep-alive HTTP/1.1 origin on raw sockets. Every response carries X-Seen-Proto (the
    X-Forwarded-Proto fields it received, joined by "|"), X-Req-Len and X-Req-Sha256 (of the
    request body it received, Content-Length or chunked).

    /echo: the request body back (?resp=chunked: chunked, in 7,000-byte chunks; else with a
    Content-Length). /dl/<size>: pattern(size, 2) (?chunked: chunked). Anything else: "ok"."""

    def __init__(self, **kw):
        self.seen = []  # (method, target, [x-forwarded-proto values], body length)
        super().__init__(**kw)

    def handle(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = HttpReader(conn)
        while True:
            head = reader.head()
            if head is None:
                return
            first, fields = head
            method, target, _ = first.split(" ", 2)
            body, _ = reader.body(fields)
            xfp = [v for n, v in fields if n == "x-forwarded-proto"]
            with self.cond:
                self.seen.append((method, target, xfp, len(body)))
            path, _, query = target.partition("?")
            chunked = False
            if path == "/echo":
                out = body
                chunked = query == "resp=chunked"
            elif path.startswith("/dl/"):
                out = pattern(int(path[len("/dl/"):]), 2)
                chunked = query == "chunked"
            else:
                out = b"ok"
            head = [b"HTTP/1.1 200 OK", b"X-Seen-Proto: %s" % "|".join(xfp).encode(),
                    b"X-Req-Len: %d" % len(body), b"X-Req-Sha256: %s" % sha(body).encode()]
            if chunked:
                head.append(b"Transfer-Encoding: chunked")
                conn.sendall(b"\r\n".join(head) + b"\r\n\r\n")
                for at in range(0, len(out), 7000):
                    piece = out[at:at + 7000]
                    conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                conn.sendall(b"0\r\n\r\n")
            else:
                head.append(b"Content-Length: %d" % len(out))
                conn.sendall(b"\r\n".join(head) + b"\r\n\r\n" + out)


# ------------------------------------------------------------------------------------------------
# Clients whose bytes go out in a chosen shape, or not at all


class BioClient:
    """A TLS client (Python's ssl over memory BIOs) on a raw socket, for handshakes whose bytes
    must go out in a given shape: the ClientHello byte by byte or re-framed, the client's
    Finished in one segment with the request."""

    def __init__(self, addr, server_name, ca):
        ctx = client_context(ca)
        self.raw = socket.create_connection(addr, timeout=harness.IO_TIMEOUT)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)

    def close(self):
        self.raw.close()

    def _step(self):
        try:
            self.obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def _feed(self):
        data = self.raw.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def client_hello(self):
        """The ClientHello (not sent)."""
        self._step()
        return self.outgoing.read()

    def finish_handshake(self):
        """After the ClientHello went out: the handshake up to the client's last flight, which
        stays unsent (send it with flush(), or with what write() adds)."""
        while not self._step():
            pending = self.outgoing.read()
            if pending:
                self.raw.sendall(pending)
            if not self._feed():
                raise EOFError("the server closed during the handshake")

    def write(self, data):
        self.obj.write(data)

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # its close_notify is written; the peer's comes later

    def flush(self):
        """Everything pending, in one send."""
        self.raw.sendall(self.outgoing.read())

    def read_until_close(self):
        """The plaintext until the server's close_notify (raises SSLError on a bare FIN)."""
        out = bytearray()
        while True:
            try:
                data = self.obj.read(65536)
                if not data:
                    return bytes(out)
                out += data
            except ssl.SSLWantReadError:
                if not self._feed():
                    # read() now raises unless a close_notify came.
                    continue
            except ssl.SSLZeroReturnError:
                return bytes(out)

    def peer_fingerprint(self):
        return hashlib.sha256(self.obj.getpeercert(binary_form=True)).hexdigest()


class StalledSockets:
    """`n` raw TCP connections to `addr`, connected in batches (the listener's backlog is not
    the point), each sent `payload(i)` (b"": nothing). wait_closed() waits, with a selector, for
    each to see EOF or a reset."""

    def __init__(self, addr, n, payload, deadline_s=60):
        self.socks = []
        self.how = {}
        deadline = time.monotonic() + deadline_s
        try:
            with selectors.DefaultSelector() as sel:
                for start in range(0, n, 100):
                    batch = []
                    for i in range(start, min(n, start + 100)):
                        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                        self.socks.append(s)
                        s.setblocking(False)
                        err = s.connect_ex(addr)
                        if err not in (0, 115):  # EINPROGRESS
                            raise OSError(err, "connect %d: %s" % (i, os.strerror(err)))
                        sel.register(s, selectors.EVENT_WRITE, i)
                        batch.append(i)
                    pending = set(batch)
                    while pending:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise TimeoutError("%d of the stalled clients did not connect" %
                                               len(pending))
                        for key, _ in sel.select(remaining):
                            i = key.data
                            sel.unregister(key.fileobj)
                            pending.discard(i)
                            err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            if err:
                                raise OSError(err, "connect %d: %s" % (i, os.strerror(err)))
                            data = payload(i)
                            if data:
                                # A few hundred bytes: the socket buffer takes them at once.
                                sent = key.fileobj.send(data)
                                assert sent == len(data), (sent, len(data))
        except BaseException:
            self.close()
            raise

    def poll_closed(self, timeout, until=None):
        """Waits up to `timeout` for closes, until `until` of them (default: all) are closed;
        records each ("eof" or "reset"). Returns how many are closed."""
        until = len(self.socks) if until is None else until
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for i, s in enumerate(self.socks):
                if i not in self.how:
                    sel.register(s, selectors.EVENT_READ, i)
            while len(self.how) < until:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for key, _ in sel.select(remaining):
                    i = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except (ConnectionResetError, ConnectionAbortedError):
                        self.how[i] = "reset"
                        sel.unregister(key.fileobj)
                        continue
                    if data:
                        # Bytes before the close (an alert): not expected here.
                        self.how[i] = "data %r" % data[:32]
                        sel.unregister(key.fileobj)
                        continue
                    self.how[i] = "eof"
                    sel.unregister(key.fileobj)
        return len(self.how)

    def wait_closed(self, timeout):
        self.poll_closed(timeout)
        open_ = len(self.socks) - len(self.how)
        if open_:
            raise AssertionError("%d of %d stalled clients still open after %.0fs" % (
                open_, len(self.socks), timeout))
        odd = {i: how for i, how in self.how.items() if how not in ("eof", "reset")}
        if odd:
            raise AssertionError("stalled clients got data: %r" % list(odd.items())[:5])

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
