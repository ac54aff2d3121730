"""Draining HTTP/1.1 connections on SIGTERM (the same drain a hot restart starts): the listener
stops accepting; a request in progress is answered with "Connection: close"; an idle connection —
a keep-alive one between requests, or one accepted whose request has not arrived yet — stays open
for the connection manager's drain_timeout for one more request (answered with "Connection:
close"), and is closed if none comes; the process exits 0 once every connection is gone (well
before the server's drain timeout)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HttpClient, http_config, http_request, routed_config  # noqa: E402


class HttpDrainTest(harness.SluiceTestCase):

    def wait_refused(self, addr):
        # New connections are refused once the listener is closed (it closes as soon as every
        # worker has stopped polling it: poll, bounded).
        deadline = time.monotonic() + harness.STATS_TIMEOUT
        while not harness.connect_refused(addr):
            self.assertLess(time.monotonic(), deadline, "the listener still accepts")
            time.sleep(0.02)

    def test_sigterm_serves_a_last_request_on_every_connection(self):
        # Long drain timeouts: what ends each connection is its last response, and the exit
        # comes from the connections finishing, not from a timeout.
        s = self.start_sluice(http_config(drain_timeout="60s", hcm={"drainTimeout": "60s"}),
                              concurrency=1)
        addr = s.addr("web")

        idle = HttpClient.connect(addr)  # keep-alive, between requests
        idle.send(http_request())
        self.assertEqual(idle.read_response().status, 200)
        busy = HttpClient.connect(addr)  # a request head in progress
        busy.send(http_request()[:10])
        silent = HttpClient.connect(addr)  # accepted, nothing sent yet
        s.wait_stats(lambda st: st["listener.web.downstream_cx_active"] == 3,
                     "three connections accepted")

        s.send_signal(signal.SIGTERM)
        self.wait_refused(addr)
        # Nothing was closed by the drain itself.
        self.assertTrue(idle.still_open() and silent.still_open())
        for client, rest in ((busy, http_request()[10:]), (idle, http_request()),
                             (silent, http_request())):
            client.send(rest)
            last = client.read_response()
            self.assertEqual(last.status, 200)
            self.assertTrue(last.has_token("connection", "close"), last)
            self.assertEqual(client.expect_closed(), b"")
            client.close()
        self.assertEqual(s.wait_exit(), 0)

    def test_an_idle_connection_is_closed_after_the_drain_timeout(self):
        s = self.start_sluice(http_config(drain_timeout="60s", hcm={"drainTimeout": "1s"}),
                              concurrency=1)
        addr = s.addr("web")
        idle = HttpClient.connect(addr)
        idle.send(http_request())
        self.assertEqual(idle.read_response().status, 200)
        busy = HttpClient.connect(addr)
        busy.send(http_request()[:10])
        s.wait_stats(lambda st: st["listener.web.downstream_cx_active"] == 2,
                     "both connections accepted")
        s.send_signal(signal.SIGTERM)
        # Closed without a response once the drain timeout passed (the client sent nothing).
        self.assertEqual(idle.expect_closed(timeout=30), b"")
        s.wait_stats(lambda st: st["http.web.downstream_cx_drain_close"] == 1,
                     "the idle connection counted as closed by the drain")
        # A partial request is not idle: it still completes.
        busy.send(http_request()[10:])
        last = busy.read_response()
        self.assertEqual(last.status, 200)
        self.assertTrue(last.has_token("connection", "close"), last)
        self.assertEqual(busy.expect_closed(), b"")
        self.assertEqual(s.wait_exit(), 0)
        idle.close()
        busy.close()

    def test_a_zero_drain_timeout_closes_idle_connections_at_once(self):
        s = self.start_sluice(http_config(drain_timeout="60s", hcm={"drainTimeout": "0s"}),
                              concurrency=1)
        idle = HttpClient.connect(s.addr("web"))
        idle.send(http_request())
        self.assertEqual(idle.read_response().status, 200)
        s.send_signal(signal.SIGTERM)
        self.assertEqual(idle.expect_closed(), b"")
        self.assertEqual(s.wait_exit(), 0)
        idle.close()

    def test_a_response_under_way_from_a_real_origin_keeps_its_connection_for_one_more(self):
        # The drain comes after the response's head left (a real origin streams it): that head
        # cannot say "Connection: close", so the connection is not closed after the response —
        # the client, told nothing, would send its next request into a closed connection. It
        # stays for the drain timeout, and the next response says close.
        origin = self.server(harness.HttpOrigin)
        cfg = routed_config(origin.addr[1], hcm={"drainTimeout": "60s"})
        cfg["drainTimeout"] = "60s"
        s = self.start_sluice(cfg, concurrency=1)
        sock = harness.connect(s.addr("web"))
        self.addCleanup(sock.close)
        sock.sendall(http_request(target="/gate/drain?head=1"))
        data = b""
        while b"head\n" not in data:
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "closed before the first chunk: %r" % data)
            data += chunk
        s.send_signal(signal.SIGTERM)
        self.wait_refused(s.addr("web"))
        origin.gate("drain").set()
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "closed before the end of the response: %r" % data)
            data += chunk
        first = harness.parse_response(data)[0]
        self.assertEqual((200, b"head\ntail\n"), (first.status, first.body))
        self.assertFalse(first.has_token("connection", "close"), first)
        # The connection is still there: the next request is served, and is the last.
        sock.sendall(http_request(target="/after"))
        rest, how = harness.recv_until_closed(sock)
        self.assertEqual("eof", how)
        last = harness.parse_response(rest, at_eof=True)[0]
        self.assertEqual(200, last.status)
        self.assertTrue(last.has_token("connection", "close"), last)
        self.assertTrue(last.body.startswith(b"GET /after"), last.body)
        self.assertEqual(s.wait_exit(), 0)


if __name__ == "__main__":
    harness.main()
