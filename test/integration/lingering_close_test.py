"""Replies sent while the client is still uploading reach it: a 413 for a body over the limit, and
an origin's early 401, answered before the body was read. Without a lingering close, sluice
stops reading and closes with unread input: the kernel then sends an RST and drops whatever of
the reply it still holds, and a client that reads only once its upload is done (many do) loses
it. With it, sluice half-closes and drains the client's bytes (bounded) while the reply goes
out."""

import select
import socket

import harness
from harness import http_request as req

ROUNDS = 12
# Larger than what the socket buffers and sluice's own can hold: the upload is still going
# when the answer is complete.
BODY = 32 * harness.MiB
# An answer larger than the client's receive buffer (but within sluice's 1 MiB write buffer).
DENIED = b"denied\n" * (256 * 1024 // 7)


class EarlyAnswerOrigin(harness.UpstreamServer):
    """Answers 401 as soon as it has a request head and never reads the body (so the upload is
    still going when the answer is complete); waits for the proxy to close the connection."""

    def handle(self, conn):
        if harness.recv_head(conn)[0] is None:
            return
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (
            len(DENIED), DENIED))
        # The proxy must not reuse this connection (the body would be read as a next request):
        # it closes it. Wait for that without reading.
        p = select.poll()
        p.register(conn, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        p.poll(harness.IO_TIMEOUT * 1000)


class LingeringCloseTest(harness.SluiceTestCase):

    def upload(self, s, path):
        """Sends a POST with a BODY-byte body, and only then reads (a client that does one thing at
        a time, with a small receive buffer: an answer larger than it waits in sluice's socket
        until the upload is done). Returns (bytes read, how the read ended)."""
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(c.close)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        c.settimeout(harness.IO_TIMEOUT)
        c.connect(s.addr("web"))
        try:
            c.sendall(req("POST", path, headers=[("Content-Length", str(BODY))]))
            chunk = b"b" * 65536
            for _ in range(BODY // len(chunk)):
                c.sendall(chunk)
        except OSError:
            pass  # sluice stopped reading and closed: what it answered is all that counts
        return harness.recv_until_closed(c, deadline_s=60)

    def check_every_round(self, s, path, status, body):
        for i in range(ROUNDS):
            data, how = self.upload(s, path)
            self.assertTrue(data.startswith(b"HTTP/1.1 %d " % status),
                            "round %d: %r (%s)" % (i, data[:80], how))
            self.assertTrue(data.endswith(body), "round %d: %d bytes, %s" % (i, len(data), how))
            self.assertEqual("eof", how, "round %d" % i)

    def test_413_during_an_upload_reaches_the_client(self):
        s = self.start_sluice(harness.http_config(
            hcm={"maxRequestBodyBytes": 1024 * 1024}), concurrency=1)
        self.check_every_round(s, "/", 413, b"larger than max_request_body_bytes\n")
        st = s.stats()
        self.assertEqual(ROUNDS, st["http.web.downstream_cx_lingering_close"])

    def test_an_origins_early_401_reaches_the_client(self):
        origin = EarlyAnswerOrigin()
        self.addCleanup(origin.close)
        s = self.start_sluice(harness.routed_config(origin.port), concurrency=1)
        self.check_every_round(s, "/upload", 401, DENIED)
        st = s.stats()
        self.assertEqual(ROUNDS, st["http.web.downstream_cx_lingering_close"])
        # Each early answer ended its upstream connection: none was reused.
        self.assertEqual(ROUNDS, harness.stat(st, "cluster.o.upstream_cx_total"))
        self.assertEqual(0, harness.stat(st, "cluster.o.upstream_rq_reused"))

    def test_lingering_is_bounded_by_the_clients_silence(self):
        # A client that stops sending but never closes is let go after lingering_timeout.
        s = self.start_sluice(harness.http_config(
            hcm={"maxRequestBodyBytes": 1024, "lingeringTimeout": "0.3s"}), concurrency=1)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("POST", "/", headers=[("Content-Length", "100000")]) + b"x" * 5000)
        data, how = harness.recv_until_closed(c.sock, deadline_s=60)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:80])
        self.assertEqual("eof", how)
        s.wait_stats(lambda st: st["server.downstream_cx_active"] == 0, "the connection closed")

    def test_a_complete_request_closes_without_lingering(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=[("Connection", "close")]))
        data, how = harness.recv_until_closed(c.sock, deadline_s=60)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(0, s.stats()["http.web.downstream_cx_lingering_close"])


if __name__ == "__main__":
    harness.main()
