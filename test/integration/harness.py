"""Helpers for sluice's integration tests: run the real binary against small Python upstreams.

Python 3 standard library only. Everything is bounded in time: sockets carry timeouts, every wait
has a deadline, and a wait is event-driven wherever there is an event to wait for (a polled file or
stats endpoint is checked in a bounded loop with a short sleep).

Environment:
  SLUICE_BIN        the binary (default: <repo>/build/sluice)
  SLUICE_REPO_ROOT  the repository root (default: two levels above this file)
  SLUICE_SANITIZE   "1" when the binary is built with ASan + UBSan
  SLUICE_IT_LOG_LEVEL  --log-level passed to sluice (default: info)
"""

import errno
import hashlib
import http.server
import json
import os
import selectors
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# Socket timeout for every blocking socket operation in the tests.
IO_TIMEOUT = 30.0
# How long sluice may take to bind everything and write --ports-file.
READY_TIMEOUT = 30.0
# How long sluice may take to exit once it should.
EXIT_TIMEOUT = 30.0
# How long a stats condition may take to become true.
STATS_TIMEOUT = 30.0
# Sleep between two polls of a file or of /stats.
POLL_INTERVAL = 0.02

MiB = 1024 * 1024


def repo_root():
    root = os.environ.get("SLUICE_REPO_ROOT")
    if root:
        return os.path.abspath(root)
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sluice_bin():
    path = os.environ.get("SLUICE_BIN")
    if path:
        return os.path.abspath(path)
    return os.path.join(repo_root(), "build", "sluice")


def sanitized():
    return os.environ.get("SLUICE_SANITIZE", "") not in ("", "0", "OFF", "off", "false")


def sanitizer_env(env=None):
    """`env` (default: this process's) for running a program built outside sluice's build that
    loads sluice's sanitized code (the plugin test harness): in a sanitized build the ASan
    runtime must be loaded first, so it is preloaded; otherwise `env` as it is."""
    env = dict(os.environ if env is None else env)
    if sanitized():
        import subprocess
        asan = subprocess.run(["c++", "-print-file-name=libasan.so"], capture_output=True,
                              text=True).stdout.strip()
        env["LD_PRELOAD"] = asan
    return env


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def unused_port(host="127.0.0.1"):
    """A port that nothing listens on (bound, read back, closed)."""
    with socket.socket(family_of(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_config(config, directory, name="sluice.json"):
    """Writes the config into directory: a dict as JSON, a str as it is (YAML, e.g. a file of
    configs/ with its ports swapped); returns the path."""
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        if isinstance(config, str):
            f.write(config)
        else:
            json.dump(config, f, indent=2)
    return path


def tcp_proxy_config(endpoints, listener_name="l", cluster_name="c", listen_host="127.0.0.1",
                     listener_extra=None, cluster_extra=None, tcp_proxy_extra=None,
                     bootstrap_extra=None, drain_timeout="5s"):
    """One listener (port 0) with a tcp_proxy to one cluster, plus an admin endpoint.

    endpoints: list of (host, port).
    """
    tcp_proxy = {"cluster": cluster_name}
    tcp_proxy.update(tcp_proxy_extra or {})
    listener = {
        "name": listener_name,
        "address": {"address": listen_host, "port": 0},
        "filters": [{"tcpProxy": tcp_proxy}],
    }
    listener.update(listener_extra or {})
    cluster = {
        "name": cluster_name,
        "endpoints": [{"address": {"address": h, "port": p}} for (h, p) in endpoints],
        "connectTimeout": "5s",
    }
    cluster.update(cluster_extra or {})
    config = {
        "listeners": [listener],
        "clusters": [cluster],
        "admin": {"address": {"address": "127.0.0.1", "port": 0}},
        "drainTimeout": drain_timeout,
    }
    config.update(bootstrap_extra or {})
    return config


def run_cli(args, timeout=EXIT_TIMEOUT, env=None):
    """Runs sluice with args to completion; returns CompletedProcess (text stdout/stderr)."""
    return subprocess.run([sluice_bin()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, errors="replace", timeout=timeout,
                          env=env)


# ------------------------------------------------------------------------------------------------
# Sockets


def connect(addr, timeout=IO_TIMEOUT, rcvbuf=None):
    """A blocking client socket connected to addr (host, port), with a timeout."""
    host, port = addr
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def recv_head(sock, buf=b""):
    """For scripted origins: reads until `buf` plus what arrives holds a whole head (CRLFCRLF).
    Returns (head without its final CRLFCRLF, the bytes after it), or (None, b"") when the peer
    closed first."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def recv_exact(sock, n, deadline_s=IO_TIMEOUT):
    """Reads exactly n bytes (socket timeouts and an overall deadline bound it)."""
    deadline = time.monotonic() + deadline_s
    chunks = []
    got = 0
    while got < n:
        if time.monotonic() > deadline:
            raise TimeoutError("recv_exact: got %d of %d bytes before the deadline" % (got, n))
        data = sock.recv(min(n - got, 1 << 20))
        if not data:
            raise EOFError("recv_exact: EOF after %d of %d bytes" % (got, n))
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def recv_until_closed(sock, deadline_s=IO_TIMEOUT, limit=None):
    """Reads until EOF or a reset. Returns (data, how) with how in {"eof", "reset"}.

    Raises TimeoutError if neither happens before the deadline (or a recv times out), and
    AssertionError if more than `limit` bytes arrive.
    """
    deadline = time.monotonic() + deadline_s
    chunks = []
    got = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no EOF/reset within %.0fs (got %d bytes)" % (deadline_s, got))
        sock.settimeout(min(remaining, IO_TIMEOUT))
        try:
            data = sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return b"".join(chunks), "reset"
        except socket.timeout:
            raise TimeoutError("no EOF/reset within %.0fs (got %d bytes)" % (deadline_s, got))
        if not data:
            return b"".join(chunks), "eof"
        chunks.append(data)
        got += len(data)
        if limit is not None and got > limit:
            raise AssertionError("received %d bytes, more than the %d expected" % (got, limit))


def echo_roundtrip(sock, payload, deadline_s=IO_TIMEOUT):
    """Sends payload (small enough to fit in the socket buffers) and reads it back."""
    sock.sendall(payload)
    return recv_exact(sock, len(payload), deadline_s)


def nothing_readable(sock):
    """True if a non-blocking recv would block right now (no data, no EOF)."""
    old = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(old)


def connect_refused(addr, timeout=5.0):
    """True if a TCP connect to addr is refused; False if it is accepted (the socket is closed)."""
    host, port = addr
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return False
    except ConnectionRefusedError:
        return True
    except (socket.timeout, ConnectionResetError, ConnectionAbortedError):
        # Not (yet) refused: a listening socket closing mid-handshake resets the connect.
        return False
    finally:
        s.close()


class PatternStream:
    """Deterministic pseudo-random bytes. Chunk i starts with i (8 bytes, little endian) followed
    by a slice of a 1 MiB sha256-chained block at an offset that depends on i, so that lost,
    duplicated or reordered chunks change the stream's hash."""

    CHUNK = 64 * 1024
    MAX_CHUNK = 1024 * 1024

    def __init__(self, seed):
        self.seed = seed
        h = hashlib.sha256(("sluice-%s" % seed).encode()).digest()
        parts = []
        for _ in range((self.MAX_CHUNK + 8192) // 32):
            h = hashlib.sha256(h).digest()
            parts.append(h)
        self._block = b"".join(parts)

    def chunk(self, index, size=None):
        size = self.CHUNK if size is None else size
        assert 0 < size <= self.MAX_CHUNK
        off = (index * 61) % 4096
        return (index.to_bytes(8, "little") + self._block[off:off + size])[:size]

    def generate(self, total, chunk_size=None):
        """Yields the chunks of a stream of `total` bytes."""
        chunk_size = chunk_size or self.CHUNK
        index = 0
        sent = 0
        while sent < total:
            n = min(chunk_size, total - sent)
            yield self.chunk(index, n)
            index += 1
            sent += n

    def digest(self, total):
        h = hashlib.sha256()
        for c in self.generate(total):
            h.update(c)
        return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# Upstream servers


class UpstreamServer:
    """A threaded TCP server on an ephemeral port; one thread per accepted connection.

    Subclasses implement handle(conn). Counts accepted / active / closed connections, and lets a
    test wait for a condition on those counts (event-driven, bounded).
    """

    def __init__(self, host="127.0.0.1", backlog=128):
        self.host = host
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.accepted = 0
        self.active = 0
        self.closed = 0
        self.errors = []
        self._conns = set()
        self._threads = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name="%s-accept" % type(self).__name__)
        self._accept_thread.start()

    @property
    def addr(self):
        return (self.host, self.port)

    def _accept_loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, _ = self.sock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        self.errors.append(e)
                        continue
                    conn.settimeout(IO_TIMEOUT)
                    with self.cond:
                        if self._stopping:
                            conn.close()
                            continue
                        self.accepted += 1
                        self.active += 1
                        self._conns.add(conn)
                        self.cond.notify_all()
                    t = threading.Thread(target=self._run_conn, args=(conn,), daemon=True,
                                         name="%s-conn" % type(self).__name__)
                    self._threads.append(t)
                    t.start()
        finally:
            sel.close()

    def _run_conn(self, conn):
        try:
            self.handle(conn)
        except OSError as e:
            if not self._stopping:
                self.errors.append(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.cond:
                self._conns.discard(conn)
                self.active -= 1
                self.closed += 1
                self.cond.notify_all()

    def handle(self, conn):
        raise NotImplementedError

    def wait_for(self, predicate, timeout=STATS_TIMEOUT, what="condition"):
        """Waits until predicate(self) is true (called under the lock); raises on timeout."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    "%s: timed out after %.0fs waiting for %s (accepted=%d active=%d closed=%d)" %
                    (type(self).__name__, timeout, what, self.accepted, self.active, self.closed))

    def close(self):
        with self.cond:
            self._stopping = True
            conns = list(self._conns)
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(IO_TIMEOUT)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5.0)
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()


class EchoServer(UpstreamServer):
    """Echoes every byte back. On EOF from the peer: finishes echoing and closes."""

    def handle(self, conn):
        while True:
            data = conn.recv(256 * 1024)
            if not data:
                return
            conn.sendall(data)


class DigestOnEofServer(UpstreamServer):
    """Reads until EOF, then answers "<bytes received> <sha256 hex>\\n" and closes: a response that
    only flows after the client's half-close."""

    def handle(self, conn):
        h = hashlib.sha256()
        n = 0
        while True:
            data = conn.recv(256 * 1024)
            if not data:
                break
            h.update(data)
            n += len(data)
        conn.sendall(("%d %s\n" % (n, h.hexdigest())).encode())


class SourceServer(UpstreamServer):
    """Sends `total` bytes of PatternStream(seed) as fast as the peer takes them, then half-closes
    and waits for the peer to close.

    Detects backpressure: when one send makes no progress for `stall_after` seconds, `stalled` is
    set and `sent_at_stall` records the bytes sent by then. Gives up (closes) if no progress at all
    for IO_TIMEOUT * 2.
    """

    def __init__(self, total, seed=1, stall_after=1.0, **kw):
        self.total = total
        self.pattern = PatternStream(seed)
        self.stall_after = stall_after
        self.stalled = threading.Event()
        self.done = threading.Event()
        self.sent_at_stall = None
        self.sent = 0
        self.digest = None
        super().__init__(**kw)

    def handle(self, conn):
        conn.settimeout(self.stall_after)
        h = hashlib.sha256()
        last_progress = time.monotonic()
        for chunk in self.pattern.generate(self.total, 256 * 1024):
            view = memoryview(chunk)
            while view:
                try:
                    n = conn.send(view)
                except socket.timeout:
                    if not self.stalled.is_set():
                        self.sent_at_stall = self.sent
                        self.stalled.set()
                    if time.monotonic() - last_progress > 2 * IO_TIMEOUT:
                        raise
                    continue
                view = view[n:]
                self.sent += n
                last_progress = time.monotonic()
            h.update(chunk)
        self.digest = h.hexdigest()
        self.done.set()
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(2 * IO_TIMEOUT)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


class SinkServer(UpstreamServer):
    """Reads nothing until `release` is set, then reads until EOF, records the byte count and
    sha256 (`received`, `digest`, event `done`) and closes."""

    def __init__(self, **kw):
        self.release = threading.Event()
        self.done = threading.Event()
        self.received = 0
        self.digest = None
        super().__init__(**kw)

    def handle(self, conn):
        if not self.release.wait(4 * IO_TIMEOUT):
            return
        h = hashlib.sha256()
        while True:
            data = conn.recv(256 * 1024)
            if not data:
                break
            h.update(data)
            self.received += len(data)
        self.digest = h.hexdigest()
        self.done.set()


class ResetServer(UpstreamServer):
    """Optionally reads `read_before` bytes, sends `send_before` bytes, then resets the connection
    (SO_LINGER 0 + close)."""

    def __init__(self, send_before=64 * 1024, read_before=0, **kw):
        self.send_before = send_before
        self.read_before = read_before
        self.reset_done = threading.Event()
        super().__init__(**kw)

    def handle(self, conn):
        got = 0
        while got < self.read_before:
            data = conn.recv(min(65536, self.read_before - got))
            if not data:
                break
            got += len(data)
        if self.send_before:
            conn.sendall(PatternStream(7).chunk(0, self.send_before))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()
        self.reset_done.set()


class BlackholeServer:
    """A listening socket whose accept queue is full, so that the kernel drops further SYNs and a
    connect to it hangs (used for connect timeouts). `works` tells whether that holds here."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.sock = socket.socket(family_of(host), socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            s = socket.socket(family_of(host), socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, self.port))
            self.fillers.append(s)
        probe = socket.socket(family_of(host), socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect((host, self.port))
            self.works = False
        except socket.timeout:
            self.works = True
        except OSError:
            self.works = False
        finally:
            probe.close()

    @property
    def addr(self):
        return (self.host, self.port)

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


# ------------------------------------------------------------------------------------------------
# The sluice process


class SluiceError(AssertionError):
    pass


class Sluice:
    """One running sluice process. Use SluiceTestCase.start_sluice() to get one."""

    def __init__(self, config, workdir, name="sluice", concurrency=None, args=(), env=None,
                 log_level=None, preexec_fn=None, binary=None):
        self.name = name
        self.workdir = workdir
        self.config_path = write_config(
            config, workdir, "%s.%s" % (name, "yaml" if isinstance(config, str) else "json"))
        self.ports_path = os.path.join(workdir, "%s.ports" % name)
        self.stderr_path = os.path.join(workdir, "%s.stderr" % name)
        self.stdout_path = os.path.join(workdir, "%s.stdout" % name)
        self.config = config
        cmd = [binary or sluice_bin(), "-c", self.config_path, "--ports-file", self.ports_path,
               "--log-level", log_level or os.environ.get("SLUICE_IT_LOG_LEVEL", "info")]
        if concurrency is not None:
            cmd += ["--concurrency", str(concurrency)]
        cmd += list(args)
        self.cmd = cmd
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._stdout,
                                     stderr=self._stderr, env=full_env, preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.ports = {}
        self.returncode = None

    # -- lifecycle --

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Waits for --ports-file; fails fast if the process exits. Returns {name: (host, port)}."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ports_path):
            rc = self.proc.poll()
            if rc is not None:
                raise SluiceError("sluice exited with %d before writing the ports file\n%s" %
                                  (rc, self.logs()))
            if time.monotonic() > deadline:
                raise SluiceError("no ports file after %.0fs\n%s" % (timeout, self.logs()))
            time.sleep(POLL_INTERVAL)
        with open(self.ports_path) as f:
            text = f.read()
        ports = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise SluiceError("malformed ports-file line %r in:\n%s" % (line, text))
            name, hostport = parts
            host, _, port = hostport.rpartition(":")
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SluiceError("malformed ports-file line %r in:\n%s" % (line, text))
            ports[name] = (host, int(port))
        # (A config given as text is not parsed here: the ports file is trusted as it is.)
        config = self.config if isinstance(self.config, dict) else {}
        expected = [l["name"] for l in config.get("listeners", [])]
        if config.get("admin", {}).get("address"):
            expected.append("admin")
        missing = [n for n in expected if n not in ports]
        if missing:
            raise SluiceError("ports file lacks %s:\n%s" % (missing, text))
        self.ports = ports
        return ports

    def addr(self, name):
        return self.ports[name]

    def connect(self, listener, **kw):
        return connect(self.addr(listener), **kw)

    def poll(self):
        return self.proc.poll()

    def send_signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """Waits for the process to exit; returns its exit code. Raises SluiceError on timeout."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SluiceError("sluice did not exit within %.0fs\n%s" % (timeout, self.logs()))
        finally:
            self._close_files()
        return self.returncode

    def stop(self, timeout=EXIT_TIMEOUT):
        """SIGTERM, then a bounded wait. Returns the exit code."""
        self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._close_files()

    def _close_files(self):
        for f in (self._stderr, self._stdout):
            try:
                f.close()
            except OSError:
                pass

    def logs(self, max_chars=200000):
        out = []
        for label, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            if len(text) > max_chars:
                text = "[... %d chars cut ...]\n" % (len(text) - max_chars) + text[-max_chars:]
            out.append("----- %s %s (pid %d) -----\n%s" % (self.name, label, self.pid, text))
        return "\n".join(out)

    def log_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=STATS_TIMEOUT, after=0):
        """Polls stderr until `needle` appears at or beyond character offset `after`; returns the
        offset just past it. Raises if sluice exits first or on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            at = text.find(needle, after)
            if at >= 0:
                return at + len(needle)
            if self.proc.poll() is not None:
                raise SluiceError("sluice exited (%d) before logging %r\n%s" %
                                  (self.proc.returncode, needle, self.logs()))
            if time.monotonic() > deadline:
                raise SluiceError("no %r in the log after %.0fs\n%s" %
                                  (needle, timeout, self.logs()))
            time.sleep(POLL_INTERVAL)

    # -- admin --

    def stats_response(self, timeout=IO_TIMEOUT, path="/stats"):
        """GET path (/stats) on the admin endpoint; returns (status_line, headers dict (lowercase
        names), body bytes, sock)."""
        s = connect(self.addr("admin"), timeout=timeout)
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: sluice\r\nUser-Agent: sluice-it\r\n\r\n" %
                      path.encode())
            buf = b""
            deadline = time.monotonic() + timeout
            while b"\r\n\r\n" not in buf:
                if time.monotonic() > deadline:
                    raise SluiceError("admin: no response head within %.0fs" % timeout)
                data = s.recv(65536)
                if not data:
                    raise SluiceError("admin: EOF before the end of the head: %r" % buf[:2000])
                buf += data
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0]
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise SluiceError("admin: malformed header line %r" % line)
                headers[k.strip().lower()] = v.strip()
            if "content-length" not in headers:
                raise SluiceError("admin: no Content-Length in %r" % head)
            length = int(headers["content-length"])
            while len(body) < length:
                if time.monotonic() > deadline:
                    raise SluiceError("admin: body incomplete within %.0fs" % timeout)
                data = s.recv(65536)
                if not data:
                    raise SluiceError("admin: EOF after %d of %d body bytes" % (len(body), length))
                body += data
            if len(body) > length:
                raise SluiceError("admin: %d bytes beyond Content-Length %d" %
                                  (len(body) - length, length))
            return status, headers, body, s
        except BaseException:
            s.close()
            raise

    def admin_get(self, path, timeout=IO_TIMEOUT):
        """GET path on the admin endpoint; returns (status code, body bytes)."""
        status, _, body, s = self.stats_response(timeout=timeout, path=path)
        s.close()
        parts = status.split(" ")
        if len(parts) < 2 or not parts[1].isdigit():
            raise SluiceError("admin: malformed status line %r" % status)
        return int(parts[1]), body

    def stats(self):
        """GET /stats as {name: int}."""
        try:
            status, headers, body, s = self.stats_response()
        except OSError as e:
            # A refused or reset admin connection usually means that sluice died: say so.
            try:
                rc = self.proc.wait(2.0)
            except subprocess.TimeoutExpired:
                raise e
            raise SluiceError("sluice exited with %d (GET /stats: %r)\n%s" % (rc, e, self.logs()))
        s.close()
        if status != "HTTP/1.1 200 OK":
            raise SluiceError("admin: status %r" % status)
        return parse_stats(body)

    def wait_stats(self, predicate, what, timeout=STATS_TIMEOUT):
        """Polls /stats until predicate(stats) holds; returns those stats. Raises on timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise SluiceError("sluice exited (%d) while waiting for %s\n%s" %
                                  (self.proc.returncode, what, self.logs()))
            last = self.stats()
            try:
                if predicate(last):
                    return last
            except (KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise SluiceError("timed out after %.0fs waiting for %s; last stats:\n%s" %
                                  (timeout, what, format_stats(last)))
            time.sleep(POLL_INTERVAL * 5)

    def rss_bytes(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise SluiceError("no VmRSS for pid %d" % self.pid)


def parse_stats(body):
    text = body.decode("utf-8")
    stats = {}
    for line in text.splitlines():
        if not line:
            continue
        # The value is after the last space: a label value may hold spaces (name{k="a b"} 1).
        parts = line.rsplit(" ", 1)
        if len(parts) != 2:
            raise SluiceError("stats: malformed line %r" % line)
        name, value = parts
        try:
            stats[name] = int(value)
        except ValueError:
            raise SluiceError("stats: non-integer value in %r" % line)
    return stats


def parse_prometheus(text):
    """The metric families of a /stats/prometheus body, read by Prometheus' own parser
    (python3-prometheus-client), which raises on anything the exposition format does not allow.
    The families come back as a list (the parser is lazy: a late error would otherwise go
    unseen)."""
    from prometheus_client.parser import text_string_to_metric_families
    return list(text_string_to_metric_families(text))


def stats_names(body):
    """The stat names of a /stats body, in the order served."""
    return [line.split(" ")[0] for line in body.decode("utf-8").splitlines() if line]


def format_stats(stats):
    return "\n".join("  %s %s" % (k, stats[k]) for k in sorted(stats or {}))


# ------------------------------------------------------------------------------------------------
# Test case base


class SluiceTestCase(unittest.TestCase):
    """Gives each test a temp dir, starts/stops sluice and upstreams, and prints the logs of every
    sluice it started when the test fails or errors."""

    def setUp(self):
        if not os.path.exists(sluice_bin()):
            self.fail("sluice binary %s does not exist (set SLUICE_BIN)" % sluice_bin())
        self.tmpdir = tempfile.mkdtemp(prefix="sluice-it-")
        self._sluices = []

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                for s in getattr(self, "_sluices", []):
                    sys.stderr.write("\n%s\n" % s.logs())
                    sys.stderr.write("----- config %s -----\n" % s.config_path)
                    try:
                        with open(s.config_path) as f:
                            sys.stderr.write(f.read() + "\n")
                    except OSError:
                        pass
                sys.stderr.flush()
            tmp = getattr(self, "tmpdir", None)
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)

    def start_sluice(self, config, wait=True, **kw):
        kw.setdefault("name", "sluice%d" % len(self._sluices))
        s = Sluice(config, self.tmpdir, **kw)
        self._sluices.append(s)
        self.addCleanup(s.kill)
        if wait:
            s.wait_ready()
        return s

    def stop_sluice(self, s, timeout=EXIT_TIMEOUT):
        """SIGTERM and assert a clean exit (0)."""
        rc = s.stop(timeout)
        self.assertEqual(rc, 0, "sluice exited with %d after SIGTERM" % rc)

    def server(self, cls, *args, **kw):
        srv = cls(*args, **kw)
        self.addCleanup(srv.close)
        return srv

    def client(self, sluice, listener="l", **kw):
        s = sluice.connect(listener, **kw)
        self.addCleanup(s.close)
        return s


def main():
    unittest.main(verbosity=2)


# ------------------------------------------------------------------------------------------------
# HTTP/1.1: configs, raw requests, response parsing


# What direct_response_filter() answers with by default.
DIRECT_BODY = b"hello\n"


def direct_response_filter(status=200, body="hello\n", headers=(("x-test", "1"),)):
    """An httpFilters entry: the built-in direct_response filter."""
    return {"directResponse": {"status": status, "body": body,
                               "headers": [{"name": n, "value": v} for (n, v) in headers]}}


def http_listener(name="web", hcm=None, filters=None, listener_extra=None,
                  listen_host="127.0.0.1"):
    """One listener (port 0) whose only network filter is the HTTP connection manager.

    hcm: extra HttpConnectionManager fields (lowerCamelCase). filters: the httpFilters list;
    None means one direct_response_filter(); [] means no filter at all (every request is read to
    its end, then answered 404 by the connection manager).
    """
    manager = {"httpFilters": [direct_response_filter()] if filters is None else list(filters)}
    manager.update(hcm or {})
    listener = {
        "name": name,
        "address": {"address": listen_host, "port": 0},
        "filters": [{"httpConnectionManager": manager}],
    }
    listener.update(listener_extra or {})
    return listener


def http_config(listeners=None, bootstrap_extra=None, drain_timeout="5s", **listener_kw):
    """A bootstrap with HTTP listeners (default: one http_listener(**listener_kw)) and admin."""
    config = {
        "listeners": list(listeners) if listeners else [http_listener(**listener_kw)],
        "admin": {"address": {"address": "127.0.0.1", "port": 0}},
        "drainTimeout": drain_timeout,
    }
    config.update(bootstrap_extra or {})
    return config


ROUTER_TYPE = "type.googleapis.com/sluice.extensions.router.v1.Router"


def routed_config(origin_port, route=None, routes=None, hcm=None, pool=None, cluster="o"):
    """One HTTP listener "web" whose router (the plugin) sends requests to `cluster`, one origin
    on 127.0.0.1:origin_port. `route`: extra RouteAction fields of the one catch-all route;
    `routes`: the routes instead; `pool`: the cluster's httpPool."""
    if routes is None:
        routes = [{"route": dict({"cluster": cluster}, **(route or {}))}]
    router = {"@type": ROUTER_TYPE,
              "virtualHosts": [{"name": "v", "domains": ["*"], "routes": routes}]}
    cfg = http_config([http_listener("web", hcm=hcm, filters=[
        {"plugin": {"filter": "router", "typedConfig": router}}])])
    cfg["clusters"] = [{"name": cluster, "endpoints": [
        {"address": {"address": "127.0.0.1", "port": origin_port}}]}]
    if pool:
        cfg["clusters"][0]["httpPool"] = pool
    return cfg


def http_request(method="GET", target="/", host="sluice.test", headers=(), body=b"",
                 version="HTTP/1.1"):
    """Raw request bytes. Host comes first unless host is None; a Content-Length is added when
    there is a body and `headers` sets neither Content-Length nor Transfer-Encoding. Header
    names and values are written verbatim (str or bytes), so tests can send anything."""

    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")

    lines = [b(method) + b" " + b(target) + b" " + b(version)]
    if host is not None:
        lines.append(b"Host: " + b(host))
    names = set()
    for name, value in headers:
        lines.append(b(name) + b": " + b(value))
        names.add(b(name).lower())
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + b(body)


def chunked(*chunks, trailers=()):
    """A chunked body: one chunk per argument (bytes), then the last chunk and trailers."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    out += b"0\r\n" + b"".join(b"%s: %s\r\n" % (n, v) for (n, v) in trailers) + b"\r\n"
    return out


class HttpParseError(AssertionError):
    pass


class HttpResponse:
    """One parsed response: version, status (int), reason, headers [(name, value)] in order,
    body (bytes, de-chunked), raw (the bytes it was parsed from)."""

    def __init__(self, version, status, reason, headers, body, raw, chunked_body=False):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw = raw
        self.chunked = chunked_body

    def all(self, name):
        name = name.lower()
        return [v for (n, v) in self.headers if n.lower() == name]

    def get(self, name, default=None):
        values = self.all(name)
        return values[0] if values else default

    def has_token(self, name, token):
        """True if a comma-separated list header (Connection, ...) holds token (any case)."""
        token = token.lower()
        return any(t.strip().lower() == token for v in self.all(name) for t in v.split(","))

    def __repr__(self):
        raw = self.raw if len(self.raw) <= 600 else self.raw[:600] + b"..."
        return "<HttpResponse %d %r>" % (self.status, raw)


_NO_BODY_STATUSES = (204, 304)


def parse_response(buf, head_request=False, at_eof=False):
    """Parses the response at the start of buf (bytes).

    Returns (HttpResponse, bytes consumed), or None if buf does not hold a whole response yet.
    A body delimited by the connection's close is whole only `at_eof`. Strict about what sluice
    must send: CRLF line endings, a 3-digit status, "name: value" fields, at most one of
    Content-Length and Transfer-Encoding. Raises HttpParseError otherwise.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 256 * 1024:
            raise HttpParseError("no end of response head in %d bytes: %r" % (len(buf), buf[:300]))
        return None
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or \
            not parts[1].isdigit():
        raise HttpParseError("malformed status line %r in %r" % (status_line, buf[:300]))
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or "\n" in line or "\r" in line:
            raise HttpParseError("malformed header line %r in %r" % (line, buf[:300]))
        headers.append((name, value.strip(" \t")))
    pos = end + 4
    resp = HttpResponse(version, status, reason, headers, b"", b"")
    cls = resp.all("content-length")
    te = resp.all("transfer-encoding")
    if cls and te:
        raise HttpParseError("both Content-Length and Transfer-Encoding: %r" % buf[:pos])
    if len(set(cls)) > 1:
        raise HttpParseError("differing Content-Length values: %r" % buf[:pos])
    if head_request or status < 200 or status in _NO_BODY_STATUSES:
        resp.raw = buf[:pos]
        return resp, pos
    if te:
        if [t.strip().lower() for t in ",".join(te).split(",")] != ["chunked"]:
            raise HttpParseError("unexpected Transfer-Encoding %r" % te)
        body = []
        p = pos
        while True:
            eol = buf.find(b"\r\n", p)
            if eol < 0:
                return None
            size_text = buf[p:eol].split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpParseError("bad chunk size line %r" % buf[p:eol])
            p = eol + 2
            if size == 0:
                # Trailers, then the empty line.
                while True:
                    eol = buf.find(b"\r\n", p)
                    if eol < 0:
                        return None
                    line = buf[p:eol]
                    p = eol + 2
                    if not line:
                        break
                resp.body = b"".join(body)
                resp.raw = buf[:p]
                resp.chunked = True
                return resp, p
            if len(buf) < p + size + 2:
                return None
            body.append(buf[p:p + size])
            if buf[p + size:p + size + 2] != b"\r\n":
                raise HttpParseError("chunk not followed by CRLF: %r" % buf[p:p + size + 2])
            p += size + 2
    if cls:
        if not cls[0].isdigit():
            raise HttpParseError("bad Content-Length %r" % cls[0])
        length = int(cls[0])
        if len(buf) < pos + length:
            return None
        resp.body = buf[pos:pos + length]
        resp.raw = buf[:pos + length]
        return resp, pos + length
    # Delimited by the close.
    if not at_eof:
        return None
    resp.body = buf[pos:]
    resp.raw = buf
    return resp, len(buf)


def parse_responses(data, head_requests=(), at_eof=True):
    """Every whole response in data, in order; returns (responses, leftover bytes).
    head_requests: indexes of responses that answer HEAD requests (no body)."""
    responses = []
    while data:
        r = parse_response(data, head_request=len(responses) in head_requests, at_eof=at_eof)
        if r is None:
            break
        resp, n = r
        responses.append(resp)
        data = data[n:]
    return responses, data


class HttpClient:
    """A raw HTTP/1.1 client connection: sends bytes verbatim, reads responses one at a time
    (keeping what follows for the next), and observes the close. Every read is bounded."""

    def __init__(self, sock):
        self.sock = sock
        # Small writes (a request sent byte by byte) go out at once, not after a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed_how = None  # "eof" or "reset" once the peer closed

    @classmethod
    def connect(cls, addr, timeout=IO_TIMEOUT):
        return cls(connect(addr, timeout=timeout))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _recv_more(self, deadline):
        """Reads once; False at EOF/reset."""
        if self.closed_how:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("HTTP: nothing more within the deadline (have %d bytes: %r)" %
                               (len(self.buf), self.buf[:300]))
        self.sock.settimeout(min(remaining, IO_TIMEOUT))
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            self.closed_how = "reset"
            return False
        except socket.timeout:
            raise TimeoutError("HTTP: nothing more within the deadline (have %d bytes: %r)" %
                               (len(self.buf), self.buf[:300]))
        if not data:
            self.closed_how = "eof"
            return False
        self.buf += data
        return True

    def read_response(self, head_request=False, timeout=IO_TIMEOUT, skip_interim=False):
        """The next whole response. Raises EOFError if the connection closes before one."""
        deadline = time.monotonic() + timeout
        while True:
            r = parse_response(self.buf, head_request=head_request,
                               at_eof=self.closed_how is not None)
            if r is not None:
                resp, n = r
                self.buf = self.buf[n:]
                if skip_interim and 100 <= resp.status < 200:
                    continue
                return resp
            if not self._recv_more(deadline):
                r = parse_response(self.buf, head_request=head_request, at_eof=True)
                if r is not None:
                    resp, n = r
                    self.buf = self.buf[n:]
                    return resp
                raise EOFError("HTTP: connection closed (%s) before a whole response; have %r" %
                               (self.closed_how, self.buf[:500]))

    def read_until_closed(self, timeout=IO_TIMEOUT, head_requests=()):
        """Reads until the peer closes; returns (responses, leftover bytes, how).
        Raises TimeoutError if the peer keeps the connection open past the deadline."""
        deadline = time.monotonic() + timeout
        while self._recv_more(deadline):
            if len(self.buf) > 16 * MiB:
                raise AssertionError("HTTP: more than 16 MiB before the close")
        responses, rest = parse_responses(self.buf, head_requests=head_requests, at_eof=True)
        self.buf = b""
        return responses, rest, self.closed_how

    def expect_closed(self, timeout=IO_TIMEOUT):
        """Waits for the peer to close; returns whatever bytes came before (should be b"")."""
        deadline = time.monotonic() + timeout
        while self._recv_more(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    def still_open(self):
        """True if the peer has neither closed nor sent anything unread right now."""
        return not self.closed_how and not self.buf and nothing_readable(self.sock)


def wait_until(predicate, what, timeout=STATS_TIMEOUT):
    """Polls predicate() until it is true (bounded); raises AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(POLL_INTERVAL * 5)


def stat(stats, name):
    """A counter's value, 0 if it does not exist (yet): some are created on first use."""
    return stats.get(name, 0)


def stats_delta(before, after, prefix=""):
    """{name: after - before} for the counters that changed (under prefix)."""
    out = {}
    for name in set(before) | set(after):
        if name.startswith(prefix):
            d = after.get(name, 0) - before.get(name, 0)
            if d:
                out[name] = d
    return out


# ------------------------------------------------------------------------------------------------
# HTTP origins


class _Discard:
    """A write-only file that drops what it is given."""
    closed = False

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


class OriginSend:
    """The progress of one generated response body (HttpOrigin's /gen): bytes `sent` so far,
    `stalled` (set when one send made no progress for `stall_after` seconds: the proxy stopped
    reading; `sent_at_stall` holds the count then), `done` (the whole body went out) and
    `failed` (a send failed: the proxy closed or reset the connection)."""

    def __init__(self):
        self.sent = 0
        self.sent_at_stall = None
        self.stalled = threading.Event()
        self.done = threading.Event()
        self.failed = threading.Event()


class HttpOrigin:
    """A keep-alive HTTP/1.1 origin (Python's http.server, one thread per connection) that
    counts the connections it accepted and answers with what it saw.

    Any path not listed below is answered with
    "METHOD path xff= xfp= via= body=N:first16" (Content-Length framing). Special paths:

      /sink...   waits for `sink_gate` before reading its (Content-Length) body, then answers
                 "received N" (`sink_received`, `sink_digest`: the sha256 hex of what it read).
      /slow...   answers after 2 s.            /reset...  resets the connection.
      /bad...    a response with both Content-Length and Transfer-Encoding.
      /big/N     N bytes of "x", chunked.
      /gen?size=N[&framing=cl|chunked][&chunk=K][&seed=S][&trailers=n1:v1,n2:v2][&tag=T]
          [&cut=M]
                 N bytes of PatternStream(S) (default seed "gen"; digest with
                 pattern_digest(S, N)) in sends of K bytes (default 64 KiB), framed by
                 Content-Length (default) or chunked (one chunk per send), with those trailers
                 after a chunked body. With `tag`, `sends[T]` is an OriginSend: a send that
                 makes no progress for 1 s marks it stalled (the proxy holds the body back).
                 With `cut`: the connection closes once M body bytes went out, short of what
                 the framing announced.
      /echo[?framing=cl|chunked]
                 the request body back, with X-Request-Length, X-Request-Sha256,
                 X-Request-Chunked (1 when the request came chunked) and X-Request-Trailers
                 ("name=value" joined by "; ").
      /gate/NAME[?head=1]
                 waits (at most 120 s) for gate(NAME) to be set, then answers as for any other
                 path. With head=1, a chunked response head and a first chunk "head\\n" go out
                 first, the rest ("tail\\n" and the last chunk) after the gate.
      /hop       a chunked response carrying connection-specific fields: Connection naming
                 X-Hop, X-Hop, Keep-Alive, Proxy-Connection, Upgrade — and X-End-To-End.
      /status/CODE
                 a response with that status: "status CODE\n", or for 204 nothing, for 304
                 Content-Length: 1234 and an ETag and no body.
      /fields?n=N[&prefix=P][&dup=NAME]
                 a response with N fields P000: value-0 ... (P: X-Field-Number- by default;
                 mixed case as HTTP/1 origins write them), with dup, three NAME fields
                 ("a=1; Path=/", "b=2, c=3", "d=4"), and the body "ok\n".

    Every request whose body was read is also recorded in `exchanges` (dicts: method, path,
    headers as a list of (name, value) in order with duplicates, body_length, body_sha256,
    body_head (64 bytes), chunked, trailers (list of (name, value)), complete (the body arrived
    whole)); `wait_exchange(pred)` / `wait_request(pred)` wait for one (bounded)."""

    def __init__(self, name="origin", host="127.0.0.1", port=0):
        self.name = name
        self.connections = 0
        self.requests = []  # (method, path, headers) as received
        self.exchanges = []  # see the class doc
        # "/sink" requests wait for this before reading their body (a slow upstream).
        self.sink_gate = threading.Event()
        self.sink_received = 0
        self.sink_digest = None
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.gates = {}
        self.sends = {}
        self.open_conns = set()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Head and body go out in two sends: without this, Nagle holds the body until
                # the proxy's delayed ACK (40 ms per response).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with origin.lock:
                    origin.connections += 1
                    origin.open_conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with origin.lock:
                        origin.open_conns.discard(self.connection)

            def log_message(self, *args):
                pass

            def end_headers(self):
                super().end_headers()
                if self.command == "HEAD":
                    # A response to HEAD has no body (RFC 9110 §9.3.2): what the handler writes
                    # after the head goes nowhere, until the next request.
                    self._wfile, self.wfile = self.wfile, _Discard()

            def record(self, body, chunked, trailers, complete):
                with origin.cond:
                    origin.exchanges.append({
                        "method": self.command, "path": self.path,
                        "headers": list(self.headers.items()),
                        "body_length": len(body),
                        "body_sha256": hashlib.sha256(body).hexdigest(),
                        "body_head": bytes(body[:64]), "chunked": chunked,
                        "trailers": trailers, "complete": complete})
                    origin.cond.notify_all()

            def answer(self):
                if isinstance(self.wfile, _Discard):
                    self.wfile = self._wfile  # after a HEAD on this connection
                with origin.cond:
                    origin.requests.append((self.command, self.path, dict(self.headers)))
                    origin.cond.notify_all()
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.startswith("/sink"):
                    origin.sink_gate.wait(120)
                    got = 0
                    h = hashlib.sha256()
                    while got < length:
                        data = self.rfile.read(min(1 << 20, length - got))
                        if not data:
                            break
                        got += len(data)
                        h.update(data)
                    origin.sink_received = got
                    origin.sink_digest = h.hexdigest()
                    out = b"received %d" % got
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                trailers = []
                complete = True
                if chunked:
                    body, trailers, complete = self.read_chunked_body()
                else:
                    body = self.rfile.read(length) if length else b""
                    complete = len(body) == length
                self.record(body, chunked, trailers, complete)
                if not complete:
                    self.close_connection = True
                    return
                if self.path.startswith("/slow"):
                    threading.Event().wait(2.0)
                if self.path.startswith("/reset"):
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return
                if self.path.startswith("/bad"):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n")
                    self.close_connection = True
                    return
                query = self.query()
                if self.path.startswith("/gen?") or self.path == "/gen":
                    self.generate(query)
                    return
                if self.path.startswith("/echo"):
                    self.echo(body, chunked, trailers, query)
                    return
                if self.path.startswith("/hop"):
                    self.hop()
                    return
                if self.path.startswith("/status/"):
                    code = int(self.path[len("/status/"):].split("?")[0])
                    self.send_response(code)
                    if code == 304:
                        # A cache revalidation: the length of the representation, no body.
                        self.send_header("Content-Length", "1234")
                        self.send_header("ETag", '"e1"')
                        self.end_headers()
                    elif code == 204 or code < 200:
                        self.end_headers()
                    else:
                        out = b"status %d\n" % code
                        self.send_header("Content-Length", str(len(out)))
                        self.end_headers()
                        self.wfile.write(out)
                    return
                if self.path.startswith("/fields"):
                    n = int(query.get("n", "1"))
                    prefix = query.get("prefix", "X-Field-Number-")
                    self.send_response(200)
                    for i in range(n):
                        self.send_header("%s%03d" % (prefix, i), "value-%d" % i)
                    if "dup" in query:
                        for v in ("a=1; Path=/", "b=2, c=3", "d=4"):
                            self.send_header(query["dup"], v)
                    self.send_header("Content-Length", "3")
                    self.end_headers()
                    self.wfile.write(b"ok\n")
                    return
                if self.path.startswith("/gate/"):
                    gate = origin.gate(self.path[len("/gate/"):].split("?")[0])
                    if query.get("head") == "1":
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.send_header("X-Origin", "yes")
                        self.end_headers()
                        self.wfile.write(b"5\r\nhead\n\r\n")
                        gate.wait(120)
                        self.wfile.write(b"5\r\ntail\n\r\n0\r\n\r\n")
                        return
                    gate.wait(120)
                out = b"%s %s xff=%s xfp=%s via=%s body=%d:%s" % (
                    self.command.encode(), self.path.encode(),
                    (self.headers.get("X-Forwarded-For") or "").encode(),
                    (self.headers.get("X-Forwarded-Proto") or "").encode(),
                    (self.headers.get("Via") or "").encode(), len(body), body[:16])
                if self.path.startswith("/big"):
                    size = int(self.path.split("/")[2])
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b"x" * 65536
                    sent = 0
                    while sent < size:
                        n = min(len(chunk), size - sent)
                        self.wfile.write(b"%x\r\n%s\r\n" % (n, chunk[:n]))
                        sent += n
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-Origin", "yes")
                self.send_header("X-Origin-Name", origin.name)
                self.end_headers()
                self.wfile.write(out)

            def query(self):
                _, _, q = self.path.partition("?")
                out = {}
                for part in q.split("&"):
                    if part:
                        k, _, v = part.partition("=")
                        out[k] = v
                return out

            def send_all(self, data, record=None, stall_after=1.0):
                """Writes data on the socket; with `record` (an OriginSend), counts what went
                out and marks a stall (no progress for stall_after seconds)."""
                if record is None or self.command == "HEAD":
                    self.wfile.write(data)
                    return
                view = memoryview(data)
                self.connection.settimeout(stall_after)
                last = time.monotonic()
                try:
                    while view:
                        try:
                            n = self.connection.send(view)
                        except socket.timeout:
                            if not record.stalled.is_set():
                                record.sent_at_stall = record.sent
                                record.stalled.set()
                            if time.monotonic() - last > 4 * IO_TIMEOUT:
                                raise
                            continue
                        view = view[n:]
                        record.sent += n
                        last = time.monotonic()
                finally:
                    self.connection.settimeout(IO_TIMEOUT)

            def generate(self, query):
                size = int(query.get("size", "0"))
                cut = int(query["cut"]) if "cut" in query else None
                framing = query.get("framing", "cl")
                piece = int(query.get("chunk", "65536"))
                trailers = [t.split(":", 1) for t in query.get("trailers", "").split(",") if t]
                record = None
                if "tag" in query:
                    record = OriginSend()
                    with origin.cond:
                        origin.sends[query["tag"]] = record
                        origin.cond.notify_all()
                self.send_response(200)
                if framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    if trailers:
                        self.send_header("Trailer", ", ".join(n for n, _ in trailers))
                else:
                    self.send_header("Content-Length", str(size))
                self.send_header("X-Origin", "yes")
                self.end_headers()
                buf = bytearray()
                # A cut body is the same bytes, stopped short (PatternStream's prefixes agree).
                limit = size if cut is None else min(cut, size)
                try:
                    for chunk in pattern(query.get("seed", "gen")).generate(limit):
                        buf += chunk
                        off = 0
                        while len(buf) - off >= piece:
                            self.send_part(bytes(buf[off:off + piece]), framing, record)
                            off += piece
                        del buf[:off]
                    if buf:
                        self.send_part(bytes(buf), framing, record)
                except OSError:
                    if record is not None:
                        record.failed.set()
                    raise
                if cut is not None:
                    # The body ends early: the connection closes mid-body.
                    self.close_connection = True
                    return
                if framing == "chunked":
                    self.send_all(b"0\r\n" + b"".join(b"%s: %s\r\n" % (n.encode(), v.encode())
                                                       for n, v in trailers) + b"\r\n")
                if record is not None:
                    record.done.set()

            def send_part(self, part, framing, record):
                if framing == "chunked":
                    self.send_all(b"%x\r\n" % len(part))
                    self.send_all(part, record)
                    self.send_all(b"\r\n")
                else:
                    self.send_all(part, record)

            def echo(self, body, chunked, trailers, query):
                self.send_response(200)
                framing = query.get("framing", "cl")
                if framing == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Request-Length", str(len(body)))
                self.send_header("X-Request-Sha256", hashlib.sha256(body).hexdigest())
                self.send_header("X-Request-Chunked", "1" if chunked else "0")
                self.send_header("X-Request-Trailers",
                                 "; ".join("%s=%s" % (n, v) for n, v in trailers))
                self.end_headers()
                if framing == "chunked":
                    for i in range(0, len(body), 65536):
                        part = body[i:i + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)

            def hop(self):
                self.send_response(200)
                self.send_header("Connection", "X-Hop")
                self.send_header("X-Hop", "must not pass")
                self.send_header("Keep-Alive", "timeout=5")
                self.send_header("Proxy-Connection", "keep-alive")
                self.send_header("Upgrade", "example/1")
                self.send_header("X-End-To-End", "yes")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"4\r\nhop\n\r\n0\r\n\r\n")

            def read_chunked_body(self):
                """(body, trailers [(name, value)], complete) of a chunked request body; not
                complete when the connection ends (or the coding breaks) before its end."""
                data = []
                try:
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            return b"".join(data), [], False
                        size = int(line.strip().split(b";")[0], 16)
                        if size == 0:
                            trailers = []
                            while True:
                                t = self.rfile.readline()
                                if not t:
                                    return b"".join(data), trailers, False
                                if t in (b"\r\n", b"\n"):
                                    return b"".join(data), trailers, True
                                n, _, v = t.decode("latin-1").partition(":")
                                trailers.append((n.strip(), v.strip()))
                        part = self.rfile.read(size)
                        data.append(part)
                        if len(part) < size:
                            return b"".join(data), [], False
                        self.rfile.readline()
                except ValueError:
                    return b"".join(data), [], False

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = answer

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                # The proxy closing or resetting a connection (a test of exactly that) is no
                # error of the origin's: no traceback on stderr for it.
                if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
                    return
                super().handle_error(request, client_address)

        self.server = Server((host, port), Handler)
        self.addr = self.server.server_address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gate(self, name):
        """The Event that /gate/NAME waits for (created on first use, by either side)."""
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def open_gates(self):
        """Releases everything waiting: every gate and the sink."""
        self.sink_gate.set()
        with self.lock:
            gates = list(self.gates.values())
        for g in gates:
            g.set()

    def wait_request(self, predicate, timeout=STATS_TIMEOUT, what="a request"):
        """Waits until predicate(method, path, headers) holds for a received request (its head:
        the body may still be on its way); returns that request."""
        return self._wait(lambda: next((r for r in self.requests if predicate(*r)), None),
                          timeout, what)

    def wait_exchange(self, predicate, timeout=STATS_TIMEOUT, what="an exchange"):
        """Waits until predicate(exchange dict) holds for a recorded exchange; returns it."""
        return self._wait(lambda: next((e for e in self.exchanges if predicate(e)), None),
                          timeout, what)

    def wait_send(self, tag, timeout=STATS_TIMEOUT):
        """The OriginSend of the /gen request tagged `tag`, once it started."""
        return self._wait(lambda: self.sends.get(tag), timeout, "/gen tag=%s" % tag)

    def _wait(self, find, timeout, what):
        with self.cond:
            found = []

            def check():
                r = find()
                if r is not None:
                    found.append(r)
                    return True
                return False

            if not self.cond.wait_for(check, timeout):
                raise AssertionError("%s: no %s within %.0fs (requests: %r)" % (
                    self.name, what, timeout, [(m, p) for m, p, _ in self.requests][-20:]))
            return found[0]

    def close(self):
        self.open_gates()
        self.server.shutdown()
        self.server.server_close()

    def kill(self):
        """Dies as a crashed process would: the port refuses connections from now on and every
        open connection is reset (close() lets keep-alive connections go on being served)."""
        self.close()
        with self.lock:
            conns = list(self.open_conns)
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_patterns = {}
_patterns_lock = threading.Lock()


def pattern(seed):
    """A PatternStream for `seed`, shared (building one costs 32k SHA-256 rounds)."""
    with _patterns_lock:
        p = _patterns.get(seed)
        if p is None:
            p = _patterns[seed] = PatternStream(seed)
        return p


def pattern_bytes(seed, size):
    """The first `size` bytes of PatternStream(seed) (what /gen?seed=&size= sends)."""
    return b"".join(pattern(seed).generate(size))


def pattern_digest(seed, size):
    return pattern(seed).digest(size)


# ------------------------------------------------------------------------------------------------
# DNS

class DnsServer:
    """An authoritative DNS server on loopback UDP for tests: A records from `records`
    ({name: [ipv4, ...]}, changeable at any time), NXDOMAIN for other names, empty answers for
    other types. `mode`: "answer", "servfail" (every query fails) or "drop" (no reply)."""

    def __init__(self, records=None, ttl=1, host="127.0.0.1"):
        self.records = dict(records or {})
        self.ttl = ttl
        self.mode = "answer"
        self.queries = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.addr = self.sock.getsockname()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, ips):
        with self.lock:
            if ips is None:
                self.records.pop(name, None)
            else:
                self.records[name] = list(ips)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(data)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def _answer(self, data):
        if len(data) < 12:
            return None
        qid, flags, qdcount = struct.unpack(">HHH", data[:6])
        if qdcount != 1:
            return None
        i, labels = 12, []
        while i < len(data) and data[i] != 0:
            n = data[i]
            labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace").lower())
            i += 1 + n
        i += 1
        if i + 4 > len(data):
            return None
        qtype = struct.unpack(">H", data[i:i + 2])[0]
        question = data[12:i + 4]
        name = ".".join(labels)
        with self.lock:
            self.queries += 1
            mode, ips, ttl = self.mode, self.records.get(name), self.ttl
        if mode == "drop":
            return None
        rcode, answers = 0, []
        if mode == "servfail":
            rcode = 2
        elif ips is None:
            rcode = 3  # NXDOMAIN
        elif qtype == 1:
            answers = ips
        # QR, AA, RD copied, RA.
        out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
        reply = struct.pack(">HHHHHH", qid, out_flags, 1, len(answers), 0, 0) + question
        for ip in answers:
            reply += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, ttl, 4) + socket.inet_aton(ip)
        return reply

    def close(self):
        self._stop = True
        self.thread.join(IO_TIMEOUT)
        self.sock.close()
