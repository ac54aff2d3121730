"""The admin endpoint: GET /ready (200 while serving, 503 while draining) and the warning when it
listens beyond loopback."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXPOSED_WARNING = "is exposed beyond this host"


class AdminTest(harness.SluiceTestCase):

    def test_ready_while_serving_and_503_while_draining(self):
        echo = self.server(harness.EchoServer)
        config = harness.tcp_proxy_config([echo.addr], drain_timeout="600s")
        s = self.start_sluice(config, concurrency=2)
        # The admin answers once the main loop runs, after the workers started: at once 200.
        self.assertEqual(s.admin_get("/ready"), (200, b"LIVE\n"))
        c = self.client(s)
        self.assertEqual(harness.echo_roundtrip(c, b"hold"), b"hold")

        s.send_signal(signal.SIGTERM)
        s.wait_log("draining")
        # The drain is held open by the connection: /ready says so until the exit, /stats works.
        self.assertEqual(s.admin_get("/ready"), (503, b"DRAINING\n"))
        self.assertEqual(s.admin_get("/ready?verbose"), (503, b"DRAINING\n"))
        self.assertIn("listener.l.downstream_cx_active", s.stats())
        self.assertEqual(harness.echo_roundtrip(c, b"still"), b"still")
        self.assertEqual(s.admin_get("/ready"), (503, b"DRAINING\n"))
        c.close()
        self.assertEqual(s.wait_exit(), 0)

    def test_unknown_path_is_404(self):
        s = self.start_sluice(harness.http_config(), concurrency=1)
        status, body = s.admin_get("/readyz")
        self.assertEqual(status, 404, body)
        self.stop_sluice(s)

    def start_with_admin_on(self, host):
        config = harness.http_config()
        config["admin"] = {"address": {"address": host, "port": 0}}
        s = self.start_sluice(config, concurrency=1)
        self.assertEqual(s.addr("admin")[0], host)
        return s

    def test_admin_beyond_loopback_warns(self):
        # The wildcard address: only listening (port 0), nothing is sent off this host.
        s = self.start_with_admin_on("0.0.0.0")
        self.assertIn(EXPOSED_WARNING, s.log_text())
        line = [l for l in s.log_text().splitlines() if EXPOSED_WARNING in l][0]
        self.assertIn("0.0.0.0:%d" % s.addr("admin")[1], line)
        self.assertIn("no authentication", line)
        self.stop_sluice(s)

    def test_admin_on_loopback_does_not_warn(self):
        hosts = ["127.0.0.1", "127.0.0.2"]  # all of 127.0.0.0/8 is loopback
        if harness.have_ipv6_loopback():
            hosts.append("::1")
        for host in hosts:
            with self.subTest(host=host):
                s = self.start_with_admin_on(host)
                self.assertEqual(s.admin_get("/ready")[0], 200)
                self.stop_sluice(s)
                self.assertIn("admin on", s.log_text())
                self.assertNotIn(EXPOSED_WARNING, s.log_text())


if __name__ == "__main__":
    harness.main()
