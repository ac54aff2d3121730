"""`sluice drain` (source/exe/drain.cc), the preStop hook of deploy/kubernetes: against a real
origin and a keep-alive client with a response in flight, it fails /ready first, keeps accepting
during the readiness delay (a connection made then is served), then closes the listeners while
the in-flight response completes, and returns once the last connection is gone; the SIGTERM that
follows ends the process at once with 0. Also its errors and usage, and the control socket's
SetHealth and DrainRequest.keep_process under it.

Every wait is for an event (an answer, a refused connect, a process's exit) and bounded."""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from admin_test import admin_request  # noqa: E402
from control_socket_test import ControlClient, pb  # noqa: E402

# Long enough for the test to connect and be answered after it has seen /ready turn 503 (a
# round trip on loopback); it is not measured, only waited out once.
READINESS_DELAY = "10s"


def drain_command(path, *args):
    return [harness.sluice_bin(), "drain", "--control-socket", path] + list(args)


class DrainCommandTest(harness.SluiceTestCase):

    def start(self, origin, drain_timeout="600s", admin=True):
        config = harness.routed_config(origin.addr[1])
        # The bound must not end the drain here: the connections' own ends do.
        config["drainTimeout"] = drain_timeout
        if admin:
            config["admin"]["probeAddress"] = {"address": "127.0.0.1", "port": 0}
        else:
            del config["admin"]
        control = os.path.join(self.tmpdir, "control.sock")
        s = self.start_sluice(config, concurrency=2, args=("--control-socket", control))
        return s, control

    def ready(self, s):
        r = admin_request(s.addr("admin_probe"), "GET", "/ready")
        return r.status, r.body

    def run_drain(self, *args):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        return p

    def test_fails_readiness_keeps_accepting_then_drains_and_sigterm_exits_at_once(self):
        origin = self.server(harness.HttpOrigin)
        s, control = self.start(origin)
        addr = s.addr("web")
        # A keep-alive connection with a response in flight (the origin holds it).
        held = harness.HttpClient.connect(addr)
        self.addCleanup(held.close)
        held.send(harness.http_request("GET", "/before"))
        first = held.read_response()
        self.assertEqual(200, first.status)
        self.assertFalse(first.has_token("connection", "close"))
        held.send(harness.http_request("GET", "/gate/held"))
        origin.wait_request(lambda m, p, h: p == "/gate/held", what="the held request")
        self.assertEqual((200, b"LIVE\n"), self.ready(s))

        drain = self.run_drain(*drain_command(control, "--readiness-delay", READINESS_DELAY))
        # (a) Readiness fails first...
        harness.wait_until(lambda: self.ready(s)[0] == 503, "/ready to answer 503")
        self.assertEqual((503, b"HEALTH_CHECK_FAILED\n"), self.ready(s))
        # ...(b) while the listener still accepts: a new client is served.
        late = harness.HttpClient.connect(addr)
        self.addCleanup(late.close)
        late.send(harness.http_request("GET", "/during-the-delay"))
        r = late.read_response()
        self.assertEqual(200, r.status)
        self.assertIn(b"GET /during-the-delay", r.body)
        late.close()
        self.assertIsNone(drain.poll())
        # (c) Then the listener closes; the held response is still on its way.
        harness.wait_until(lambda: harness.connect_refused(addr),
                           "the listener to refuse connections")
        self.assertEqual((503, b"DRAINING\n"), self.ready(s))
        self.assertTrue(held.still_open())
        # (d) The command waits for that connection: it cannot have returned while it is open.
        self.assertIsNone(drain.poll())
        status = ControlClient(control)
        self.addCleanup(status.close)
        self.assertEqual("draining", status.call(status=pb.StatusRequest()).status.state)
        status.close()
        origin.gate("held").set()
        r = held.read_response()
        self.assertEqual(200, r.status)
        self.assertIn(b"GET /gate/held", r.body)
        self.assertTrue(r.has_token("connection", "close"))
        self.assertEqual(b"", held.expect_closed())
        out, err = drain.communicate(timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, drain.returncode, err)
        self.assertIn("readiness failed", err)
        self.assertIn("has no open connection left: drained", err)
        # The process stayed up, its admin too; kubelet's SIGTERM then ends it at once (the
        # bootstrap's drain_timeout of 600s would otherwise hold it past the harness's wait).
        self.assertIsNone(s.poll())
        self.assertEqual((503, b"DRAINING\n"), self.ready(s))
        s.send_signal(signal.SIGTERM)
        self.assertEqual(0, s.wait_exit())
        self.assertIn("sluice exited cleanly", s.log_text())
        self.assertNotIn("drain timeout", s.log_text())

    def test_the_timeout_ends_the_wait_and_sluice_closes_the_rest_at_its_drain_timeout(self):
        origin = self.server(harness.HttpOrigin)
        s, control = self.start(origin, drain_timeout="600s")
        held = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(held.close)
        held.send(harness.http_request("GET", "/gate/forever"))
        origin.wait_request(lambda m, p, h: p == "/gate/forever", what="the held request")
        r = subprocess.run(drain_command(control, "--readiness-delay", "0", "--timeout", "1s"),
                           capture_output=True, text=True, timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn("1 connections of pid %d still open after 1s" % s.pid, r.stderr)
        self.assertTrue(held.still_open())
        # A second signal closes what is left, as without the command.
        s.send_signal(signal.SIGTERM)
        s.wait_log("draining: no new connections")
        s.send_signal(signal.SIGTERM)
        self.assertEqual(0, s.wait_exit())

    def test_without_an_admin_endpoint_it_still_drains(self):
        origin = self.server(harness.HttpOrigin)
        s, control = self.start(origin, admin=False)
        r = subprocess.run(drain_command(control, "--readiness-delay", "0s"),
                           capture_output=True, text=True, timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(0, r.returncode, r.stderr)
        self.assertIn("readiness not failed: this sluice has no admin endpoint", r.stderr)
        self.assertIn("drained", r.stderr)
        self.assertTrue(harness.connect_refused(s.addr("web")))
        self.assertIsNone(s.poll())
        self.stop_sluice(s)

    def test_set_health_over_the_control_socket(self):
        origin = self.server(harness.HttpOrigin)
        s, control = self.start(origin)
        c = ControlClient(control)
        self.addCleanup(c.close)
        self.assertEqual("", c.call(set_health=pb.SetHealthRequest(failing=True)).error)
        self.assertEqual((503, b"HEALTH_CHECK_FAILED\n"), self.ready(s))
        self.assertEqual("", c.call(set_health=pb.SetHealthRequest(failing=False)).error)
        self.assertEqual((200, b"LIVE\n"), self.ready(s))
        s.wait_log("control socket: health check set to pass by pid %d" % os.getpid())
        self.stop_sluice(s)

    def test_errors_and_usage(self):
        missing = os.path.join(self.tmpdir, "missing.sock")
        r = harness.run_cli(["drain", "--control-socket", missing])
        self.assertEqual(1, r.returncode)
        self.assertIn("sluice drain: cannot reach a running sluice at %s" % missing, r.stderr)
        not_a_socket = os.path.join(self.tmpdir, "file")
        open(not_a_socket, "w").close()
        r = harness.run_cli(["drain", "--control-socket", not_a_socket])
        self.assertEqual(1, r.returncode)
        self.assertIn("cannot reach a running sluice", r.stderr)
        for args, needle in [([], "--control-socket is required"),
                             (["--control-socket", missing, "--readiness-delay", "soon"],
                              "--readiness-delay must be a duration"),
                             (["--control-socket", missing, "--readiness-delay", "-1s"],
                              "--readiness-delay must be a duration"),
                             (["--control-socket", missing, "--timeout", "0s"],
                              "--timeout must be a duration above 0"),
                             (["--control-socket", missing, "extra"], "unexpected argument"),
                             (["--bogus"], "unknown option --bogus")]:
            r = harness.run_cli(["drain"] + args)
            self.assertEqual(2, r.returncode, (args, r.stderr))
            self.assertIn(needle, r.stderr)
        r = harness.run_cli(["drain", "--help"])
        self.assertEqual(0, r.returncode)
        self.assertIn("--readiness-delay", r.stdout)


if __name__ == "__main__":
    harness.main()
