"""request_id against the real binary: a C plugin with a JSON config, found in sluice's own plugin
directory. IDs are UUIDv4, unique, echoed on the response, kept or replaced as configured, and a
bad config is refused with the plugin's message."""

import re

import harness
from harness import http_request as req

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def request_id(config=None):
    entry = {"plugin": {"filter": "request_id"}}
    if config is not None:
        entry["plugin"]["typedConfig"] = config
    return entry


class RequestIdTest(harness.SluiceTestCase):

    def start(self, *filters):
        chain = list(filters) + [harness.direct_response_filter()]
        return self.start_sluice(harness.http_config([harness.http_listener("web", filters=chain)]))

    def get(self, s, headers=()):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=headers))
        return c.read_response()

    def test_every_request_gets_a_fresh_uuid4_echoed_on_the_response(self):
        s = self.start(request_id())
        ids = set()
        for _ in range(50):
            r = self.get(s)
            self.assertEqual(200, r.status)
            rid = r.get("x-request-id")
            self.assertRegex(rid or "", UUID4)
            ids.add(rid)
        self.assertEqual(50, len(ids))

    def test_an_incoming_id_is_kept_unless_configured_otherwise(self):
        s = self.start(request_id())
        self.assertEqual("abc", self.get(s, [("x-request-id", "abc")]).get("x-request-id"))
        s2 = self.start(request_id({"header": "x-trace", "keep_incoming": False}))
        r = self.get(s2, [("x-trace", "abc")])
        self.assertRegex(r.get("x-trace") or "", UUID4)
        self.assertIsNone(r.get("x-request-id"))
        s3 = self.start(request_id({"echo_on_response": False}))
        self.assertIsNone(self.get(s3).get("x-request-id"))

    def test_a_bad_config_is_refused_with_the_plugins_message(self):
        cfg = harness.http_config([harness.http_listener("web", filters=[
            request_id({"header": "x-id", "colour": "blue"}), harness.direct_response_filter()])])
        path = harness.write_config(cfg, self.tmpdir, "bad.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn("filter \"request_id\": the plugin rejected its config: unknown field "
                      "\"colour\"", r.stderr)


if __name__ == "__main__":
    harness.main()
