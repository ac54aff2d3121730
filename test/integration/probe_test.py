"""The admin's probe listener (Admin.probe_address, docs/admin.md): GET/HEAD /ready and /live
without the bearer token the admin itself requires, 404 for every other path, 405 for other
methods; /ready follows /healthcheck/fail and the drains, /live stays 200. Also /live on the
admin, the `admin_probe` line of the ports file, and the config's refusals.

Every wait is for an event (a log line, an answer, a closed connection) and bounded; nothing
sleeps for a fixed time."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from admin_test import admin_request  # noqa: E402

TOKEN = "0b6f3c2a9e8d7c6b5a4f3e2d1c0b9a8f"
AUTH = [("authorization", "Bearer " + TOKEN)]
PROBE_PATHS = ["/ready", "/live"]
# The admin's endpoints, and near misses of the probe's paths: none is served on the probe.
NOT_SERVED = ["/", "/stats", "/stats/prometheus", "/config_dump", "/clusters", "/listeners",
              "/server_info", "/help", "/logging", "/healthcheck/fail", "/healthcheck/ok",
              "/drain_listeners", "/quitquitquit", "/certificates/reload", "/readyz", "/ready/",
              "/READY", "/live/x", "/nope"]


def probe_config(token=TOKEN, probe_host="127.0.0.1", drain_timeout="5s", **kw):
    config = harness.http_config(drain_timeout=drain_timeout, **kw)
    config["admin"]["probeAddress"] = {"address": probe_host, "port": 0}
    if token:
        config["admin"]["bearerToken"] = {"inlineString": token}
    return config


class ProbeCase(harness.SluiceTestCase):

    def probe(self, s, path, method="GET", **kw):
        return admin_request(s.addr("admin_probe"), method, path, **kw)

    def admin(self, s, path, method="GET", headers=AUTH, **kw):
        return admin_request(s.addr("admin"), method, path, headers=headers, **kw)

    def assert_probe(self, s, ready_status, state):
        r = self.probe(s, "/ready")
        self.assertEqual((ready_status, state + b"\n"), (r.status, r.body))
        r = self.probe(s, "/live")
        self.assertEqual((200, state + b"\n"), (r.status, r.body))


class ProbeListenerTest(ProbeCase):

    def test_ready_and_live_answer_without_the_token_the_admin_requires(self):
        s = self.start_sluice(probe_config(), concurrency=1)
        self.assertIn("admin_probe", s.ports)
        self.assertNotEqual(s.addr("admin"), s.addr("admin_probe"))
        s.wait_log("admin probe listener on %s:%d" % s.addr("admin_probe"))
        # The admin itself wants the token, for /ready and /live too.
        for path in PROBE_PATHS:
            self.assertEqual(401, self.admin(s, path, headers=()).status, path)
            self.assertEqual(200, self.admin(s, path).status, path)
        # The probe listener does not, and ignores a wrong one.
        self.assert_probe(s, 200, b"LIVE")
        for headers in [(), [("authorization", "Bearer wrong-token-0123456789")]]:
            for path in PROBE_PATHS:
                r = self.probe(s, path, headers=headers)
                self.assertEqual((200, b"LIVE\n"), (r.status, r.body), (path, headers))
                self.assertTrue(r.has_token("connection", "close"))
                self.assertEqual("no-store", r.get("cache-control"))
                head = self.probe(s, path, method="HEAD")
                self.assertEqual((200, b""), (head.status, head.body))
                self.assertEqual(r.get("content-length"), head.get("content-length"))
        self.stop_sluice(s)

    def test_every_other_path_is_404_and_other_methods_405(self):
        s = self.start_sluice(probe_config(token=None), concurrency=1)
        for path in NOT_SERVED:
            for method in ("GET", "POST"):
                r = self.probe(s, path, method=method)
                self.assertEqual(404, r.status, (method, path, r.raw))
                # Not the admin's list of endpoints: the probe reveals nothing else.
                self.assertNotIn(b"/stats", r.body)
                self.assertNotIn(b"/quitquitquit", r.body)
        for path in PROBE_PATHS:
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                r = self.probe(s, path, method=method)
                self.assertEqual(405, r.status, (method, path))
                self.assertEqual("GET, HEAD", r.get("allow"))
        # The same answers through an absolute-form target, and a query is refused as on the
        # admin (a typo in a probe's path shows at once).
        self.assertEqual(404, self.probe(s, "http://x/stats").status)
        self.assertEqual(200, self.probe(s, "http://x/ready").status)
        self.assertEqual(400, self.probe(s, "/ready?verbose=1").status)
        # None of the POSTs acted: still ready, still serving.
        self.assert_probe(s, 200, b"LIVE")
        self.assertEqual(200, s.admin_get("/ready")[0])
        self.assertIsNone(s.poll())
        self.stop_sluice(s)

    def test_ready_turns_503_on_healthcheck_fail_and_on_drain_and_live_stays_200(self):
        s = self.start_sluice(probe_config(drain_timeout="600s"), concurrency=2)
        self.assert_probe(s, 200, b"LIVE")
        self.assertEqual(200, self.admin(s, "/healthcheck/fail", method="POST").status)
        self.assert_probe(s, 503, b"HEALTH_CHECK_FAILED")
        self.assertEqual(200, self.admin(s, "/healthcheck/ok", method="POST").status)
        self.assert_probe(s, 200, b"LIVE")
        # A keep-alive connection holds the drain open after SIGTERM.
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(harness.http_request("GET", "/"))
        self.assertEqual(200, c.read_response().status)
        self.assertEqual(200, self.admin(s, "/drain_listeners", method="POST").status)
        self.assert_probe(s, 503, b"DRAINING")
        s.send_signal(signal.SIGTERM)
        s.wait_log("draining: no new connections")
        self.assert_probe(s, 503, b"DRAINING")
        c.close()
        self.assertEqual(0, s.wait_exit())

    def test_beyond_loopback_without_a_token_and_without_an_admin_address(self):
        # Only listening on the wildcard address (port 0); the test connects over loopback.
        config = probe_config(token=None, probe_host="0.0.0.0")
        del config["admin"]["address"]
        s = self.start_sluice(config, concurrency=1)
        self.assertNotIn("admin", s.ports)
        self.assertEqual("0.0.0.0", s.addr("admin_probe")[0])
        r = admin_request(("127.0.0.1", s.addr("admin_probe")[1]), "GET", "/ready")
        self.assertEqual((200, b"LIVE\n"), (r.status, r.body))
        self.assertNotIn("is exposed beyond this host", s.log_text())
        self.stop_sluice(s)


class ProbeConfigTest(harness.SluiceTestCase):

    def validate(self, config):
        path = harness.write_config(config, self.tmpdir, "validate.json")
        return harness.run_cli(["--mode", "validate", "-c", path])

    def assert_refused(self, config, *needles):
        r = self.validate(config)
        self.assertEqual(1, r.returncode, r.stdout + r.stderr)
        for needle in needles:
            self.assertIn(needle, r.stderr)

    def test_refusals(self):
        port = harness.unused_port()
        config = probe_config(token=None)
        config["admin"]["address"]["port"] = port
        config["admin"]["probeAddress"]["port"] = port
        self.assert_refused(config, "admin.probe_address", "is admin.address too")
        config = probe_config(token=None)
        config["listeners"][0]["address"]["port"] = port
        config["admin"]["probeAddress"]["port"] = port
        self.assert_refused(config, "admin.probe_address", "is already used by listeners[0]")
        config = probe_config(token=None, probe_host="localhost")
        self.assert_refused(config, "admin.probe_address.address", "not an IPv4 or IPv6")
        config = probe_config()
        del config["admin"]["address"]
        self.assert_refused(config, "probe_address takes no token")
        # The same port on two addresses is fine; so is the probe alone.
        config = probe_config(token=None)
        config["admin"]["address"]["port"] = port
        config["admin"]["probeAddress"] = {"address": "127.0.0.2", "port": port}
        r = self.validate(config)
        self.assertEqual(0, r.returncode, r.stderr)


if __name__ == "__main__":
    harness.main()
