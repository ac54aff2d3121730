"""header_mutation against the real binary: found in sluice's own plugin directory (no
plugin_dirs), typed config, request and response fields removed, set and appended, and its
config checks."""

import harness
from harness import http_request as req


def mutation(request=None, response=None):
    cfg = {"@type": "type.googleapis.com/sluice.extensions.header_mutation.v1.HeaderMutation"}
    if request:
        cfg["request"] = request
    if response:
        cfg["response"] = response
    return {"plugin": {"filter": "header_mutation", "typedConfig": cfg}}


class HeaderMutationTest(harness.SluiceTestCase):

    def test_request_and_response_fields(self):
        chain = [
            mutation(response={"remove": ["x-test"],
                               "set": [{"name": "x-frame-options", "value": "DENY"},
                                       {"name": "cache-control", "value": "no-store"},
                                       {"name": "x-added", "value": "1", "append": True},
                                       {"name": "x-added", "value": "2", "append": True}]}),
            # The second instance reports what the request looks like after the first one.
            mutation(request={"remove": ["x-secret"],
                              "set": [{"name": "x-from-proxy", "value": "yes"}]}),
            {"plugin": {"filter": "headers", "plugin": harness_plugin("test_filters"),
                        "typedConfig": {
                            "@type": "type.googleapis.com/sluice.test.plugin.HeaderMutation"}}},
            harness.direct_response_filter(),
        ]
        s = self.start_sluice(harness.http_config([harness.http_listener("web", filters=chain)]))
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", "/", headers=[("x-secret", "s3cret"), ("x-echo", "e")]))
        r = c.read_response()
        self.assertEqual(200, r.status, r.raw)
        self.assertIsNone(r.get("x-test"))
        self.assertEqual("DENY", r.get("x-frame-options"))
        self.assertEqual("no-store", r.get("cache-control"))
        self.assertEqual(["1", "2"], r.all("x-added"))
        self.assertEqual("e", r.get("x-echoed"))

    def test_config_errors(self):
        bad = harness.http_config([harness.http_listener("web", filters=[
            mutation(response={"set": [{"name": "bad name", "value": "v"}]}),
            harness.direct_response_filter()])])
        path = harness.write_config(bad, self.tmpdir, "bad.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn("filter \"header_mutation\": the plugin rejected its config: "
                      "response.set[0].name: \"bad name\" is not a field name", r.stderr)
        # The error starts with the field path, so sluice adds the field's line.
        self.assertRegex(r.stderr, r"is not a field name at line \d+, column \d+ \(plugin ")
        # A value that would split the message (CR/LF) never reaches a stream.
        split = harness.http_config([harness.http_listener("web", filters=[
            mutation(request={"set": [{"name": "x-a", "value": "v\r\nx-injected: 1"}]}),
            harness.direct_response_filter()])])
        path = harness.write_config(split, self.tmpdir, "split.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn("the plugin rejected its config: request.set[0].value: must not contain CR, "
                      "LF or NUL", r.stderr)
        unknown = harness.http_config([harness.http_listener("web", filters=[
            mutation(response={"sett": []}), harness.direct_response_filter()])])
        path = harness.write_config(unknown, self.tmpdir, "unknown.json")
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertEqual(1, r.returncode, r.stdout)
        self.assertIn("plugin.typed_config.response.sett: unknown field", r.stderr)


def harness_plugin(name):
    import os
    return os.path.join(os.environ.get("SLUICE_TEST_PLUGIN_DIR", ""), name + ".so")


if __name__ == "__main__":
    harness.main()
