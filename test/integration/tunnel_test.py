"""Tunnels through the proxy: WebSocket (a real client and a real echo server, python3-websockets)
and CONNECT (curl through sluice to a forward proxy upstream), each routed by the router plugin.
Also what must not become a tunnel: upgrades the listener does not allow (dropped: an ordinary
request), CONNECT where it is not enabled (501), an upgrade the upstream refuses (its answer, then
the connection closes, and the bytes the client sent ahead are never read as a request)."""

import asyncio
import base64
import os
import socket
import subprocess
import threading

import harness
from harness import http_request as req

import websockets
import websockets.utils

ROUTER = "type.googleapis.com/sluice.extensions.router.v1.Router"


def read_head(client, timeout=harness.IO_TIMEOUT):
    """The bytes of one response head (through the blank line); the rest stays buffered."""
    import time
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in client.buf:
        if not client._recv_more(deadline):
            raise EOFError("closed before a response head: %r" % client.buf)
    head, client.buf = client.buf.split(b"\r\n\r\n", 1)
    return head + b"\r\n\r\n"


def recv_exact(client, n, timeout=harness.IO_TIMEOUT):
    import time
    deadline = time.monotonic() + timeout
    while len(client.buf) < n:
        if not client._recv_more(deadline):
            raise EOFError("closed after %d of %d bytes" % (len(client.buf), n))
    data, client.buf = client.buf[:n], client.buf[n:]
    return data


class WebSocketEchoServer:
    """websockets' own server on its own event loop thread: echoes every message."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.upgrade_headers = []
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(harness.IO_TIMEOUT):
            raise RuntimeError("websocket server did not start")

    def _run(self, started):
        asyncio.set_event_loop(self.loop)

        async def record(path, request_headers):
            self.upgrade_headers.append(request_headers)  # then the handshake goes on

        async def echo(ws, path):
            async for message in ws:
                await ws.send(message)

        self.server = self.loop.run_until_complete(
            websockets.serve(echo, "127.0.0.1", 0, max_size=4 << 20, process_request=record))
        self.addr = self.server.sockets[0].getsockname()
        started.set()
        self.loop.run_forever()

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(harness.IO_TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(harness.IO_TIMEOUT)


class ForwardProxy(harness.UpstreamServer):
    """A minimal HTTP forward proxy: answers CONNECT to a loopback host:port with 200 and pipes
    bytes both ways (half-closes passed on); anything else gets 405."""

    def __init__(self, **kw):
        self.targets = []
        super().__init__(**kw)

    def handle(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data:
                return
            head += data
        head, early = head.split(b"\r\n\r\n", 1)
        method, target, _ = head.split(b"\r\n")[0].split(b" ")
        if method != b"CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.targets.append(target.decode())
        host, port = target.rsplit(b":", 1)
        if host not in (b"127.0.0.1", b"localhost"):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=harness.IO_TIMEOUT)
        conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        if early:
            upstream.sendall(early)

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        t.start()
        pipe(conn, upstream)
        t.join(harness.IO_TIMEOUT)
        upstream.close()


class TunnelTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.ws = WebSocketEchoServer()
        self.addCleanup(self.ws.close)
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)
        self.proxy = self.server(ForwardProxy)

    def start(self, upgrade_types=("websocket", "CONNECT"), terminate=None):
        tunnel = {"cluster": "proxy"}
        if terminate:
            # CONNECT ends at sluice: the tunnel goes to a host of `terminate`.
            tunnel = {"cluster": terminate, "connectConfig": {}, "timeout": "5s"}
        router = {"@type": ROUTER, "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
            {"name": "tunnel", "match": {"connect": True}, "route": tunnel},
            {"name": "ws", "match": {"prefix": "/ws"}, "route": {"cluster": "ws"}},
            {"name": "slow", "match": {"prefix": "/slow"},
             "route": {"cluster": "origin", "timeout": "0.3s"}},
            {"name": "rest", "route": {"cluster": "origin"}},
        ]}]}
        hcm = {"upgradeTypes": list(upgrade_types)} if upgrade_types else None
        listener = harness.http_listener(
            "web", hcm=hcm, filters=[{"plugin": {"filter": "router", "typedConfig": router}}])
        cfg = harness.http_config([listener])
        self.echo = self.server(harness.EchoServer)
        cfg["clusters"] = [
            {"name": n, "endpoints": [{"address": {"address": "127.0.0.1", "port": a[1]}}]}
            for n, a in (("ws", self.ws.addr), ("origin", self.origin.addr),
                         ("proxy", self.proxy.addr), ("echo", self.echo.addr))]
        cfg["clusters"].append({"name": "nowhere", "connectTimeout": "2s", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": harness.unused_port()}}]})
        return self.start_sluice(cfg, concurrency=1)

    def client(self, s):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        return c

    def test_websocket_echo_through_the_proxy(self):
        s = self.start()
        url = "ws://127.0.0.1:%d/ws/chat" % s.addr("web")[1]
        big = os.urandom(1 << 20)

        async def session():
            async with websockets.connect(url, max_size=4 << 20, open_timeout=10,
                                          close_timeout=10) as ws:
                got = []
                for message in ("hello", "through", "sluice"):
                    await ws.send(message)
                    got.append(await asyncio.wait_for(ws.recv(), 10))
                await ws.send(big)  # 1 MiB binary: flow control both ways
                got.append(await asyncio.wait_for(ws.recv(), 30))
                return got

        got = asyncio.run(session())
        self.assertEqual(["hello", "through", "sluice", big], got)
        self.assertEqual("websocket", self.ws.upgrade_headers[0].get("Upgrade").lower())
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_total") == 1 and
                     st.get("http.web.downstream_cx_upgrades_active") == 0 and
                     st.get("http.web.downstream_rq_active") == 0,
                     "the tunnel counted, then closed")
        stats = s.stats()
        self.assertEqual(1, stats["http.web.downstream_rq_1xx"])
        self.assertEqual(0, harness.stat(stats, "http.web.downstream_rq_reset"))

    def test_bytes_sent_ahead_of_the_101_wait_for_it(self):
        # A client that does not wait for the handshake: its first frame arrives with the head
        # and must reach the server after the switch, not before.
        s = self.start()
        key = base64.b64encode(os.urandom(16)).decode()
        head = req("GET", "/ws/eager", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
            ("Sec-WebSocket-Version", "13")])
        mask = os.urandom(4)
        payload = b"early"
        frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
            b ^ mask[i % 4] for i, b in enumerate(payload))
        c = self.client(s)
        c.send(head + frame)
        response = read_head(c)
        self.assertTrue(response.startswith(b"HTTP/1.1 101 "), response)
        accept = websockets.utils.accept_key(key).encode()
        self.assertIn(b"Sec-WebSocket-Accept: " + accept, response)
        self.assertIn(b"Connection: upgrade", response)
        self.assertNotIn(b"Content-Length", response)
        self.assertNotIn(b"Transfer-Encoding", response)
        # The echo: an unmasked text frame from the server.
        self.assertEqual(bytes([0x81, len(payload)]) + payload, recv_exact(c, 2 + len(payload)))

    def test_connect_through_a_forward_proxy_with_curl(self):
        s = self.start()
        port = s.addr("web")[1]
        # curl opens a CONNECT tunnel through sluice (-p), to the forward proxy behind it, to
        # the origin; then speaks HTTP to the origin inside it.
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-p", "-x", "http://127.0.0.1:%d" % port,
             "http://127.0.0.1:%d/inside" % self.origin.addr[1]],
            capture_output=True, timeout=30)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertTrue(out.stdout.startswith(b"GET /inside "), out.stdout)
        # The origin was reached through the tunnel: no proxy fields inside it.
        self.assertIn(b"xff= xfp= via=", out.stdout)
        self.assertEqual(["127.0.0.1:%d" % self.origin.addr[1]], self.proxy.targets)
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_total") == 1 and
                     st.get("http.web.downstream_cx_upgrades_active") == 0,
                     "the CONNECT tunnel counted, then closed")

    def test_connect_half_close_is_passed_on(self):
        s = self.start()
        self.connect_echo(s, "127.0.0.1:%d" % self.echo.addr[1])

    def connect_echo(self, s, target):
        """CONNECT `target` through `s` (to an echo server, one way or another): 200 without
        framing fields, bytes echoed, and after the client's half-close the rest, then EOF."""
        c = self.client(s)
        c.send(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = read_head(c)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertNotIn(b"Content-Length", head)
        self.assertNotIn(b"Transfer-Encoding", head)
        payload = os.urandom(512 * 1024)
        c.send(payload)
        self.assertEqual(payload, recv_exact(c, len(payload)))
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(b"", c.expect_closed())
        self.assertEqual("eof", c.closed_how)

    def test_connect_terminated_here_with_curl(self):
        # curl asks for a tunnel to a name that does not even exist; the route decides where it
        # goes (the origin's cluster), and sluice opens it itself.
        s = self.start(terminate="origin")
        port = s.addr("web")[1]
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-p", "-x", "http://127.0.0.1:%d" % port,
             "http://not-a-real-host.invalid:8080/terminated"],
            capture_output=True, timeout=30)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertTrue(out.stdout.startswith(b"GET /terminated "), out.stdout)
        self.assertEqual([], self.proxy.targets)  # no forward proxy involved
        s.wait_stats(lambda st: st.get("http.web.downstream_cx_upgrades_total") == 1 and
                     st.get("http.web.downstream_cx_upgrades_active") == 0 and
                     st.get("cluster.origin.upstream_cx_active") == 0,
                     "the tunnel and its upstream connection closed")

    def test_connect_terminated_here_relays_bytes_and_half_close(self):
        # The target named is not used: the route's cluster (the echo server) is.
        self.connect_echo(self.start(terminate="echo"), "anywhere:22")

    def test_connect_terminated_to_a_host_that_refuses_is_503(self):
        s = self.start(terminate="nowhere")
        c = self.client(s)
        c.send(b"CONNECT anywhere:22 HTTP/1.1\r\nHost: anywhere:22\r\n\r\n")
        responses, _, _ = c.read_until_closed()
        self.assertEqual([503], [r.status for r in responses])
        self.assertIn(b"upstream_connect_failure", responses[0].body)
        st = s.stats()
        self.assertEqual(1, st["cluster.nowhere.upstream_cx_connect_fail"])
        self.assertEqual(0, st["cluster.nowhere.upstream_cx_active"])

    def test_upgrade_not_allowed_goes_on_as_an_ordinary_request(self):
        s = self.start(upgrade_types=())
        c = self.client(s)
        c.send(req("GET", "/plain", headers=[("Upgrade", "websocket"),
                                             ("Connection", "Upgrade")]))
        r = c.read_response()
        self.assertEqual(200, r.status)
        self.assertNotIn("Upgrade", self.origin.requests[0][2])
        # The connection stays an HTTP one.
        c.send(req("GET", "/again"))
        self.assertEqual(200, c.read_response().status)
        self.assertEqual(0, harness.stat(s.stats(), "http.web.downstream_cx_upgrades_total"))

    def test_connect_not_enabled_is_refused(self):
        s = self.start(upgrade_types=("websocket",))
        c = self.client(s)
        c.send(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        responses, _, how = c.read_until_closed()
        self.assertEqual([501], [r.status for r in responses])
        self.assertEqual(1, s.stats()["http.web.downstream_rq_protocol_error_501"])
        self.assertEqual([], self.proxy.targets)

    def test_refused_upgrade_answers_then_closes(self):
        # The origin is no WebSocket server: it answers 200. What the client sent after its
        # head (tunnel bytes, as it hoped) must not be read as a next request.
        s = self.start()
        c = self.client(s)
        c.send(req("GET", "/not-ws", headers=[("Upgrade", "websocket"),
                                              ("Connection", "Upgrade")]) +
               req("GET", "/smuggled"))
        responses, _, how = c.read_until_closed()
        self.assertEqual([200], [r.status for r in responses])
        self.assertTrue(responses[0].has_token("connection", "close"))
        self.assertEqual(["/not-ws"], [p for _, p, _ in self.origin.requests])
        self.assertEqual(0, harness.stat(s.stats(), "http.web.downstream_cx_upgrades_total"))

    def test_the_route_timeout_bounds_the_wait_for_the_upstreams_answer(self):
        # The origin answers /slow after 2 s; the route allows 0.3 s for the handshake.
        s = self.start()
        c = self.client(s)
        c.send(req("GET", "/slow/ws", headers=[("Upgrade", "websocket"),
                                               ("Connection", "Upgrade")]))
        responses, _, _ = c.read_until_closed()
        self.assertEqual([504], [r.status for r in responses])
        self.assertIn(b"upstream_request_timeout", responses[0].body)

    def test_upgrade_with_a_body_is_not_a_tunnel(self):
        s = self.start()
        c = self.client(s)
        c.send(req("POST", "/ws/x", headers=[("Upgrade", "websocket"),
                                             ("Connection", "Upgrade")], body=b"abc"))
        # The upgrade is dropped: an ordinary POST reaches the WebSocket server, which refuses
        # it; no tunnel opens.
        r = c.read_response()
        self.assertNotEqual(101, r.status)
        self.assertEqual(0, harness.stat(s.stats(), "http.web.downstream_cx_upgrades_total"))

    def test_invalid_upgrade_types_are_refused_at_load(self):
        listener = harness.http_listener("web", hcm={"upgradeTypes": ["web socket"]},
                                         filters=[harness.direct_response_filter()])
        path = harness.write_config(harness.http_config([listener]), self.tmpdir)
        out = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(0, out.returncode)
        self.assertIn("upgrade_types[0]", out.stderr)


if __name__ == "__main__":
    harness.main()
