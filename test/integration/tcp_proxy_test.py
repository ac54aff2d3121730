"""tcp_proxy end to end: bulk data integrity, half-close, upstream resets and closes, connect
failures and timeouts, idle timeout, IPv6, and the admin /stats format."""

import hashlib
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import MiB  # noqa: E402

CLUSTER_STATS = ("upstream_cx_total", "upstream_cx_active", "upstream_cx_connect_fail",
                 "upstream_cx_connect_timeout")
LISTENER_STATS = ("downstream_cx_total", "downstream_cx_active", "downstream_cx_overflow")
SERVER_STATS = ("downstream_cx_total", "downstream_cx_active", "downstream_cx_overflow",
                "accept_fd_exhausted")


def idle(listener="l", cluster="c"):
    """Predicate: no proxied connection left open."""
    return lambda st: (st["listener.%s.downstream_cx_active" % listener] == 0 and
                       st["cluster.%s.upstream_cx_active" % cluster] == 0)


class TcpProxyTest(harness.SluiceTestCase):

    def proxy_to(self, upstream, concurrency=2, **kw):
        config = harness.tcp_proxy_config([upstream.addr], **kw)
        return self.start_sluice(config, concurrency=concurrency)

    def test_stats_format(self):
        echo = self.server(harness.EchoServer)
        s = self.proxy_to(echo, concurrency=3)
        status, headers, body, sock = s.stats_response()
        # Connection: close means the server closes after the response.
        sock.settimeout(harness.IO_TIMEOUT)
        try:
            rest = sock.recv(1)
        except ConnectionResetError:
            rest = b""
        sock.close()
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(headers.get("connection", "").lower(), "close", headers)
        self.assertEqual(rest, b"", "admin kept the connection open after Connection: close")
        names = harness.stats_names(body)
        self.assertEqual(names, sorted(names), "stats are not sorted")
        self.assertEqual(len(names), len(set(names)), "duplicate stat names")
        st = harness.parse_stats(body)
        for n in SERVER_STATS:
            self.assertIn("server." + n, st)
        for n in LISTENER_STATS:
            self.assertIn("listener.l." + n, st)
        for n in CLUSTER_STATS:
            self.assertIn("cluster.c." + n, st)
        workers = sorted(n for n in st if n.startswith("listener.l.worker."))
        self.assertEqual(workers, ["listener.l.worker.%d.downstream_cx_total" % i
                                   for i in range(3)])
        for n, v in st.items():
            self.assertGreaterEqual(v, 0, n)
        # Admin connections are not proxied connections.
        self.assertEqual(st["listener.l.downstream_cx_total"], 0, harness.format_stats(st))
        self.assertEqual(st["cluster.c.upstream_cx_total"], 0, harness.format_stats(st))
        self.stop_sluice(s)

    def test_small_echo_and_counters(self):
        echo = self.server(harness.EchoServer)
        s = self.proxy_to(echo)
        for i in range(3):
            c = self.client(s)
            self.assertEqual(harness.echo_roundtrip(c, b"hello %d" % i), b"hello %d" % i)
            c.close()
        st = s.wait_stats(idle(), "all connections closed")
        self.assertEqual(st["listener.l.downstream_cx_total"], 3, harness.format_stats(st))
        self.assertEqual(st["server.downstream_cx_total"], 3, harness.format_stats(st))
        self.assertEqual(st["server.downstream_cx_active"], 0, harness.format_stats(st))
        self.assertEqual(st["cluster.c.upstream_cx_total"], 3, harness.format_stats(st))
        self.assertEqual(st["cluster.c.upstream_cx_connect_fail"], 0)
        self.assertEqual(echo.accepted, 3)
        echo.wait_for(lambda e: e.active == 0, what="upstream connections closed")
        self.stop_sluice(s)

    def test_100mib_echo_integrity(self):
        total = 100 * MiB
        echo = self.server(harness.EchoServer)
        s = self.proxy_to(echo)
        c = self.client(s)
        pattern = harness.PatternStream(42)
        sent = {"digest": None, "error": None}

        def send():
            h = hashlib.sha256()
            try:
                for chunk in pattern.generate(total, 256 * 1024):
                    c.sendall(chunk)
                    h.update(chunk)
                c.shutdown(socket.SHUT_WR)
                sent["digest"] = h.hexdigest()
            except OSError as e:
                sent["error"] = e

        t = threading.Thread(target=send, daemon=True)
        t.start()
        h = hashlib.sha256()
        got = 0
        while True:
            data = c.recv(1 << 20)
            if not data:
                break
            h.update(data)
            got += len(data)
            self.assertLessEqual(got, total)
        t.join(harness.IO_TIMEOUT)
        self.assertFalse(t.is_alive(), "sender still blocked")
        self.assertIsNone(sent["error"])
        self.assertEqual(got, total)
        self.assertEqual(h.hexdigest(), sent["digest"], "echoed bytes differ from sent bytes")
        c.close()
        st = s.wait_stats(idle(), "all connections closed")
        self.assertEqual(st["cluster.c.upstream_cx_total"], 1)
        self.stop_sluice(s)

    def test_half_close_echo(self):
        # Client sends, then shutdown(SHUT_WR); the echo upstream sees EOF, finishes echoing and
        # closes; the client gets every byte, then EOF.
        echo = self.server(harness.EchoServer)
        s = self.proxy_to(echo)
        c = self.client(s)
        payload = harness.PatternStream(3).chunk(0, 1 * MiB)
        errors = []

        def send():
            try:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        data, how = harness.recv_until_closed(c, limit=len(payload))
        t.join(harness.IO_TIMEOUT)
        self.assertEqual(errors, [])
        self.assertEqual(how, "eof")
        self.assertEqual(len(data), len(payload))
        self.assertEqual(data, payload)
        c.close()
        s.wait_stats(idle(), "all connections closed")
        self.stop_sluice(s)

    def test_half_close_response_after_eof(self):
        # The upstream only answers after it sees the client's EOF: the proxy must forward the
        # FIN and keep the way back open.
        srv = self.server(harness.DigestOnEofServer)
        s = self.proxy_to(srv)
        c = self.client(s)
        payload = harness.PatternStream(4).chunk(1, 300 * 1024)
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        data, how = harness.recv_until_closed(c, limit=1000)
        expected = ("%d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest())).encode()
        self.assertEqual(data, expected)
        self.assertEqual(how, "eof")
        c.close()
        s.wait_stats(idle(), "all connections closed")
        self.stop_sluice(s)

    def test_upstream_closes_after_sending(self):
        total = 4 * MiB
        src = self.server(harness.SourceServer, total, seed=5)
        s = self.proxy_to(src)
        c = self.client(s)
        h = hashlib.sha256()
        got = 0
        while True:
            data = c.recv(1 << 20)
            if not data:
                break
            h.update(data)
            got += len(data)
        self.assertEqual(got, total)
        self.assertTrue(src.done.is_set())
        self.assertEqual(h.hexdigest(), src.digest)
        c.close()
        s.wait_stats(idle(), "all connections closed")
        src.wait_for(lambda x: x.active == 0, what="upstream connection closed")
        self.stop_sluice(s)

    def test_upstream_reset_mid_stream(self):
        sent_before = 128 * 1024
        srv = self.server(harness.ResetServer, send_before=sent_before)
        s = self.proxy_to(srv)
        c = self.client(s)
        data, how = harness.recv_until_closed(c, limit=sent_before)
        self.assertTrue(srv.reset_done.wait(harness.IO_TIMEOUT), "the upstream never reset")
        # The proxy closes the client side by itself (the client has not closed).
        st = s.wait_stats(idle(), "proxy closed both sides after the upstream reset")
        self.assertEqual(st["cluster.c.upstream_cx_total"], 1)
        c.close()
        self.stop_sluice(s)

    def test_upstream_reset_while_client_sends(self):
        # The upstream reads 256 KiB, then resets while the client keeps sending; the client
        # must see its connection closed (EOF/reset on read, or EPIPE/ECONNRESET on write).
        srv = self.server(harness.ResetServer, send_before=0, read_before=256 * 1024)
        s = self.proxy_to(srv)
        c = self.client(s)
        stop = threading.Event()
        result = {}

        def send():
            chunk = harness.PatternStream(9).chunk(0, 64 * 1024)
            n = 0
            try:
                while not stop.is_set() and n < 256 * MiB:
                    c.sendall(chunk)
                    n += len(chunk)
                result["end"] = "limit"
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                result["end"] = "closed"
            except socket.timeout:
                result["end"] = "timeout"
            except OSError as e:
                result["end"] = "error %r" % e

        t = threading.Thread(target=send, daemon=True)
        t.start()
        data, how = harness.recv_until_closed(c, limit=0)
        self.assertEqual(data, b"")
        stop.set()
        t.join(harness.IO_TIMEOUT + 5)
        self.assertFalse(t.is_alive())
        self.assertIn(result.get("end"), ("closed", "limit"), result)
        s.wait_stats(idle(), "proxy closed both sides after the upstream reset")
        self.stop_sluice(s)

    def test_connect_failure(self):
        port = harness.unused_port()
        config = harness.tcp_proxy_config([("127.0.0.1", port)])
        s = self.start_sluice(config, concurrency=2)
        c = self.client(s)
        data, how = harness.recv_until_closed(c, limit=0)
        self.assertEqual(data, b"")
        st = s.wait_stats(lambda st: st["cluster.c.upstream_cx_connect_fail"] >= 1 and
                          idle()(st), "upstream_cx_connect_fail >= 1 and no connection left")
        self.assertEqual(st["cluster.c.upstream_cx_connect_timeout"], 0)
        # A second client: the same again, and the counter keeps counting.
        c2 = self.client(s)
        harness.recv_until_closed(c2, limit=0)
        s.wait_stats(lambda st: st["cluster.c.upstream_cx_connect_fail"] >= 2 and idle()(st),
                     "upstream_cx_connect_fail >= 2")
        self.stop_sluice(s)

    def test_connect_timeout(self):
        bh = harness.BlackholeServer()
        self.addCleanup(bh.close)
        if not bh.works:
            self.skipTest("cannot make a blackholed port on this machine (full accept queue "
                          "does not drop SYNs)")
        config = harness.tcp_proxy_config([bh.addr], cluster_extra={"connectTimeout": "1s"})
        s = self.start_sluice(config, concurrency=1)
        c = self.client(s)
        data, how = harness.recv_until_closed(c, limit=0)
        self.assertEqual(data, b"")
        st = s.wait_stats(lambda st: st["cluster.c.upstream_cx_connect_timeout"] >= 1 and
                          idle()(st), "upstream_cx_connect_timeout >= 1, no connection left")
        self.assertEqual(st["cluster.c.upstream_cx_active"], 0)
        self.stop_sluice(s)

    def test_idle_timeout(self):
        echo = self.server(harness.EchoServer)
        s = self.proxy_to(echo, tcp_proxy_extra={"idleTimeout": "1s"})
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"ping"), b"ping")
        data, how = harness.recv_until_closed(c, limit=0)
        s.wait_stats(idle(), "idle connection closed by the idle timeout")
        echo.wait_for(lambda e: e.active == 0, what="upstream connection closed")
        self.stop_sluice(s)

    def test_round_robin_two_endpoints(self):
        a = self.server(harness.EchoServer)
        b = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([a.addr, b.addr])
        s = self.start_sluice(config, concurrency=1)
        for i in range(10):
            c = self.client(s)
            self.assertEqual(harness.echo_roundtrip(c, b"x%d" % i), b"x%d" % i)
            c.close()
        self.assertEqual(a.accepted + b.accepted, 10)
        self.assertEqual(a.accepted, 5, "one worker: round robin alternates endpoints")
        self.assertEqual(b.accepted, 5)
        self.stop_sluice(s)

    @unittest.skipUnless(harness.have_ipv6_loopback(), "no ::1 on this machine")
    def test_ipv6_listener_and_upstream(self):
        echo = self.server(harness.EchoServer, host="::1")
        config = harness.tcp_proxy_config([echo.addr], listen_host="::1")
        s = self.start_sluice(config, concurrency=2)
        with open(s.ports_path) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^l \[::1\]:\d+$", text)
        self.assertEqual(s.addr("l")[0], "::1")
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"over ipv6"), b"over ipv6")
        c.close()
        s.wait_stats(idle(), "all connections closed")
        self.stop_sluice(s)


if __name__ == "__main__":
    harness.main()
