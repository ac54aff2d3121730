"""sl_host_callout in the real binary against a real origin (plugin ABI 1.3, issue 11), through the
test plugin's `callout` filter (test/plugin/plugins/test_filters.cc), which makes the callouts a
request's x-callout-* fields describe and answers with how each start and completion went:
a whole response (never completed inside the call), an unknown cluster, the in-flight bound, the
body bound, malformed requests, a response over the buffer limit (overflow), a connection
refused, a completion that starts another callout, and the counters of each outcome."""

import os
import re

import harness
from harness import http_request as req

PLUGIN = os.path.join(os.environ.get("SLUICE_TEST_PLUGIN_DIR", ""), "test_filters.so")


def config(origin_port, buffer_limit=4096, down_port=None):
    cfg = harness.http_config([harness.http_listener(
        "web", hcm={"bufferLimitBytes": buffer_limit},
        filters=[{"plugin": {"filter": "callout", "plugin": PLUGIN}}])])
    cfg["clusters"] = [
        {"name": "svc", "endpoints": [{"address": {"address": "127.0.0.1", "port": origin_port}}]}]
    if down_port:
        cfg["clusters"].append({"name": "down", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": down_port}}]})
    return cfg


class CalloutTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin()
        self.addCleanup(self.origin.close)

    def ask(self, s, **fields):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        headers = [("x-callout-" + k.replace("_", "-"), str(v)) for k, v in fields.items()]
        c.send(req("GET", "/", headers=headers))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        return r.body.decode()

    def test_whole_response_never_inside_the_call(self):
        s = self.start_sluice(config(self.origin.addr[1]))
        out = self.ask(s, path="/check", body_size=5)
        self.assertIn("start=0, inside=0", out)
        m = re.search(r"done=1:0:200:(\d+):yes", out)
        self.assertIsNotNone(m, out)
        method, path, headers = self.origin.requests[-1]
        self.assertEqual(("POST", "/check"), (method, path))
        self.assertEqual("5", headers.get("Content-Length"))
        self.assertEqual("1", headers.get("x-from-callout"))
        self.assertEqual("svc", headers.get("Host"))  # no :authority: the cluster's name
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_started"))
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_ok"))
        self.assertEqual(1, harness.stat(st, "cluster.svc.upstream_rq_total"))

    def test_refused_at_call_time(self):
        s = self.start_sluice(config(self.origin.addr[1], buffer_limit=1024))
        self.assertIn("start=-1,", self.ask(s, cluster="nope"))  # SL_ERR_NOT_FOUND
        self.assertIn("start=-2,", self.ask(s, no_path=1))  # SL_ERR_INVALID
        self.assertIn("start=-2,", self.ask(s, header_name="bad name"))
        self.assertIn("start=-5,", self.ask(s, body_size=1025))  # SL_ERR_LIMIT: the buffer limit
        self.assertIn("start=0,", self.ask(s, body_size=1024))
        self.assertEqual(1, len(self.origin.requests))
        st = s.stats()
        self.assertEqual(3, harness.stat(st, "plugin.callout.rejected_calls"))
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_started"))

    def test_a_filter_without_the_completion_hook_cannot_start_one(self):
        cfg = config(self.origin.addr[1])
        plugin_dir = os.path.dirname(PLUGIN)
        cfg["listeners"][0]["filters"][0]["httpConnectionManager"]["httpFilters"] = [
            {"plugin": {"filter": "callout_no_hook",
                        "plugin": os.path.join(plugin_dir, "callout_no_hook.so")}}]
        s = self.start_sluice(cfg)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/"))
        r = c.read_response()
        # SL_ERR_STATE, then SL_ERR_INVALID for a NULL id; the id is zeroed on failure.
        self.assertEqual(b"state=-3 null_id=-2 id=0", r.body)
        self.assertEqual([], self.origin.requests)

    def test_in_flight_bound(self):
        s = self.start_sluice(config(self.origin.addr[1]))
        out = self.ask(s, count=17)
        self.assertIn("start=" + "0," * 16 + "-5,", out)
        self.assertEqual(16, len(re.findall(r"done=\d+:0:200:", out)), out)
        # Ids are distinct and never 0.
        ids = sorted(int(i) for i in re.findall(r"done=(\d+):", out))
        self.assertEqual(list(range(1, 17)), ids)

    def test_a_cancelled_callout_never_completes(self):
        s = self.start_sluice(config(self.origin.addr[1]))
        out = self.ask(s, count=2, cancel_first=1)
        # SL_OK, then SL_ERR_NOT_FOUND (-1): nothing of that id in flight any more.
        self.assertIn("cancel=0,-1", out)
        self.assertEqual(["2"], re.findall(r"done=(\d+):", out), out)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_cancelled"))
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_ok"))

    def test_response_over_the_buffer_limit_is_an_overflow(self):
        s = self.start_sluice(config(self.origin.addr[1], buffer_limit=4096))
        out = self.ask(s, path="/big/100000")
        # SL_ATTEMPT_OVERFLOW, the status that arrived, no body.
        self.assertIn("done=1:4:200:0:", out)
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_overflow"))

    def test_connection_refused(self):
        down = harness.unused_port()
        s = self.start_sluice(config(self.origin.addr[1], down_port=down))
        out = self.ask(s, cluster="down")
        self.assertIn("done=1:1:0:0:-", out)  # SL_ATTEMPT_CONNECT_FAILURE
        st = s.stats()
        self.assertEqual(1, harness.stat(st, "plugin.callout.callouts_failed"))

    def test_timeout(self):
        s = self.start_sluice(config(self.origin.addr[1]))
        out = self.ask(s, path="/slow", timeout_ms=100)  # the origin answers /slow after 2s
        self.assertIn("done=1:3:0:0:-", out)  # SL_ATTEMPT_TIMEOUT
        self.assertEqual(1, harness.stat(s.stats(), "plugin.callout.callouts_timeout"))

    def test_a_completion_may_start_another(self):
        s = self.start_sluice(config(self.origin.addr[1]))
        out = self.ask(s, chain=1)
        self.assertIn("done=1:0:200:", out)
        self.assertIn("chained=0", out)
        self.assertIn("done=2:0:200:", out)
        self.assertEqual(2, len(self.origin.requests))
        # One keep-alive connection carried both.
        self.assertEqual(1, self.origin.connections)


if __name__ == "__main__":
    harness.main()
