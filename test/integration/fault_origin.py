"""A fault-injecting HTTP/1.1 origin for sluice's integration tests (raw sockets).

    script = Script()                      # shared by the origins of one cluster
    origins = [FaultOrigin(script, "o%d" % i) for i in range(3)]
    script.plan("die", (503, [("Retry-After", "2")]))
    ... requests through sluice ...
    script.wait_count(3)
    [r["origin"] for r in script.records]

Each request any origin of a Script reads takes the next action of the plan, in arrival order
(of the request heads), across origins; once the plan is used up, "ok". A FaultOrigin made with
`decide=fn` asks fn(origin, record) instead (a host that fails every other request).

Actions:
  "ok"               reads the body, answers 200 "ok <origin>\\n" with X-Origin-Name,
                     X-Request-Length, X-Request-Sha256 (of the body it read) and
                     X-Attempt-Count (the request's x-sluice-attempt-count, "none" without)
  STATUS or (STATUS, [(name, value), ...])
                     reads the body, answers that status ("status N <origin>\\n") with those
                     fields (e.g. Retry-After)
  "die"              closes at once, the request's body (if any) unread: nothing answered
  "die_mid_body"     reads half the body, then closes
  "die_after_body"   reads the whole body (the request may have been acted on), then closes
  "reset"            reads the whole body, then resets the connection (RST)
  "hang"             reads the body, then answers nothing until the proxy closes the
                     connection (a per-try or headers timeout)
  "hang_body"        sends a 200 head announcing 100000 bytes and 1000 of them, then nothing
                     until the proxy closes
  "reset_mid"        sends a 200 head announcing 100000 bytes and 1000 of them, then resets
  ("slow", SECONDS)  answers as "ok" after SECONDS (the origin's own pace)

Every request is recorded (Script.records, in arrival order; FaultOrigin.records per origin) as
a dict: index, origin, method, path, headers (lowercase names -> first value), attempt (the
x-sluice-attempt-count value or None), action, body_length / body_sha256 / complete (once the
body was read: None before, and for actions that never read it), answered (a response head
went out). Script.cond is notified at every change; wait_* helpers wait for a condition,
bounded.

Responses carry "Connection: close" unless the origin is made with keep_alive=True: a fault on
a reused keep-alive connection would be taken for a stale connection and sent again by sluice's
core by itself (its transparent retry), not by the retry filter a test is about.
"""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# The longest a hanging action waits for the proxy to close its connection.
HANG_LIMIT = 60.0
BODY_ANNOUNCED = 100000
BODY_SENT = 1000

REASONS = {200: "OK", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class Script:
    """The plan and the record of every request of a group of origins."""

    def __init__(self, *actions):
        self.cond = threading.Condition()
        self.actions = list(actions)
        self.records = []

    def plan(self, *actions):
        with self.cond:
            self.actions = list(actions)

    def arrive(self, origin, method, path, headers, decide=None):
        with self.cond:
            record = {"index": len(self.records), "origin": origin.name, "method": method,
                      "path": path, "headers": headers,
                      "attempt": headers.get("x-sluice-attempt-count"), "action": None,
                      "body_length": None, "body_sha256": None, "complete": None,
                      "answered": False}
            self.records.append(record)
            origin.records.append(record)
            if decide is not None:
                action = decide(origin, record)
            elif self.actions:
                action = self.actions.pop(0)
            else:
                action = "ok"
            record["action"] = action
            self.cond.notify_all()
            return record, action

    def update(self, record, **fields):
        with self.cond:
            record.update(fields)
            self.cond.notify_all()

    def wait(self, predicate, what, timeout=harness.STATS_TIMEOUT):
        """Waits until predicate(records) holds (called under the lock); returns the records."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.records), timeout):
                raise AssertionError("origins: no %s within %.0fs; records: %r" % (
                    what, timeout, [(r["origin"], r["method"], r["path"], r["action"])
                                    for r in self.records][-20:]))
            return list(self.records)

    def wait_count(self, n, timeout=harness.STATS_TIMEOUT):
        return self.wait(lambda rs: len(rs) >= n, "%d requests" % n, timeout)

    def wait_answered(self, n, timeout=harness.STATS_TIMEOUT):
        """Waits until the n-th request (from 1) was answered (its response head sent)."""
        return self.wait(lambda rs: len(rs) >= n and rs[n - 1]["answered"],
                         "answer to request %d" % n, timeout)

    def snapshot(self):
        with self.cond:
            return [dict(r) for r in self.records]


class _Reader:
    """Buffered reads from a blocking socket (its timeout bounds every wait)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(256 * 1024)
        if not data:
            return False
        self.buf += data
        return True

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self.fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def line(self):
        while b"\r\n" not in self.buf:
            if not self.fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class FaultOrigin(harness.UpstreamServer):
    """One host of a cluster under test (see the module doc)."""

    def __init__(self, script, name="origin", decide=None, keep_alive=False, **kw):
        self.script = script
        self.name = name
        self.decide = decide
        self.keep_alive = keep_alive
        self.records = []
        super().__init__(**kw)

    def count(self):
        with self.script.cond:
            return len(self.records)

    def handle(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _Reader(conn)
        while True:
            head = reader.head()
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), value.strip())
            record, action = self.script.arrive(self, method, path, headers, self.decide)
            if not self.serve(conn, reader, record, action):
                return

    def serve(self, conn, reader, record, action):
        """Carries out one action; False when the connection is over."""
        if action == "die":
            self.abort(conn, reset=False)
            return False
        if action == "die_mid_body":
            length = int(record["headers"].get("content-length") or 0)
            if "chunked" in record["headers"].get("transfer-encoding", "").lower():
                reader.line()  # the first chunk's size line: some of the body, not all
            else:
                reader.exact(length // 2)
            self.abort(conn, reset=False)
            return False
        if action == "hang_body" or action == "reset_mid":
            self.read_body(reader, record)
            self.send(conn, record, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"X-Origin-Name: %s\r\n\r\n" % (BODY_ANNOUNCED, self.name.encode()) +
                      b"x" * BODY_SENT)
            if action == "reset_mid":
                self.abort(conn, reset=True)
            else:
                self.wait_closed(conn)
            return False
        if not self.read_body(reader, record):
            return False
        if action == "die_after_body":
            self.abort(conn, reset=False)
            return False
        if action == "reset":
            self.abort(conn, reset=True)
            return False
        if action == "hang":
            self.wait_closed(conn)
            return False
        if isinstance(action, tuple) and action[0] == "slow":
            time.sleep(action[1])  # the origin's pace: what the test is about
            action = "ok"
        if action == "ok":
            body = b"ok %s\n" % self.name.encode()
            fields = [("X-Request-Length", str(record["body_length"])),
                      ("X-Request-Sha256", record["body_sha256"]),
                      ("X-Attempt-Count", record["attempt"] or "none")]
            status = 200
        else:
            status, fields = (action, []) if isinstance(action, int) else action
            body = b"status %d %s\n" % (status, self.name.encode())
        out = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
               "Content-Length: %d" % len(body), "X-Origin-Name: %s" % self.name]
        out += ["%s: %s" % (n, v) for n, v in fields]
        if not self.keep_alive:
            out.append("Connection: close")
        try:
            self.send(conn, record, ("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            return False  # the proxy gave up on this attempt first (e.g. a per-try timeout)
        return self.keep_alive

    def send(self, conn, record, data):
        conn.sendall(data)
        self.script.update(record, answered=True)

    def read_body(self, reader, record):
        """Reads the request body (Content-Length or chunked) and records its length and
        digest; False when the connection ended first."""
        h = record["headers"]
        body = []
        complete = True
        if "chunked" in h.get("transfer-encoding", "").lower():
            while True:
                line = reader.line()
                if line is None:
                    complete = False
                    break
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        t = reader.line()
                        if t is None:
                            complete = False
                        if not t:
                            break
                    break
                part = reader.exact(size + 2)
                if part is None:
                    complete = False
                    break
                body.append(part[:-2])
        else:
            length = int(h.get("content-length") or 0)
            if length:
                part = reader.exact(length)
                if part is None:
                    complete = False
                else:
                    body.append(part)
        data = b"".join(body)
        self.script.update(record, body_length=len(data),
                           body_sha256=hashlib.sha256(data).hexdigest(), complete=complete)
        return complete

    @staticmethod
    def abort(conn, reset):
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            conn.close()
        except OSError:
            pass

    @staticmethod
    def wait_closed(conn):
        """Answers nothing more until the proxy closes (bounded by HANG_LIMIT)."""
        deadline = time.monotonic() + HANG_LIMIT
        while time.monotonic() < deadline:
            conn.settimeout(max(0.1, min(harness.IO_TIMEOUT, deadline - time.monotonic())))
            try:
                if not conn.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return
