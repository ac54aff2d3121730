"""The command line: --help, --version, --mode validate, config errors, missing files, and how the
binary is linked (BoringSSL, never OpenSSL's libssl.so.3)."""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402


def good_config():
    return harness.tcp_proxy_config([("127.0.0.1", 1234)])


class CliTest(harness.SluiceTestCase):

    def run_cli(self, *args):
        return harness.run_cli(list(args))

    def write(self, name, content):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content, indent=2))
        return path

    def validate(self, config, name="config.json"):
        path = self.write(name, config)
        return path, self.run_cli("--mode", "validate", "-c", path)

    @staticmethod
    def output(r):
        return "exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (r.returncode, r.stdout, r.stderr)

    def assertValid(self, r):
        self.assertEqual(r.returncode, 0, self.output(r))
        self.assertIn("ok", r.stdout.split(), self.output(r))

    def assertInvalid(self, r, path, *needles):
        """Exit 1, and stdout+stderr name the file and every needle."""
        self.assertEqual(r.returncode, 1, self.output(r))
        text = r.stdout + r.stderr
        self.assertIn(os.path.basename(path), text, "the error must name the file\n" + self.output(r))
        for n in needles:
            self.assertIn(n, text, "the error must name %r\n%s" % (n, self.output(r)))

    # -- flags --

    def test_help(self):
        r = self.run_cli("--help")
        self.assertEqual(r.returncode, 0, self.output(r))
        self.assertTrue((r.stdout + r.stderr).strip(), "--help printed nothing")
        self.assertIn("-c", r.stdout + r.stderr, self.output(r))

    def test_version(self):
        r = self.run_cli("--version")
        self.assertEqual(r.returncode, 0, self.output(r))
        self.assertRegex(r.stdout + r.stderr, r"\d+\.\d+", "--version printed no version")

    # -- validate --

    def test_validate_ok_json(self):
        _, r = self.validate(good_config())
        self.assertValid(r)

    def test_validate_ok_snake_case(self):
        config = good_config()
        config["clusters"][0]["connect_timeout"] = config["clusters"][0].pop("connectTimeout")
        config["drain_timeout"] = config.pop("drainTimeout")
        config["listeners"][0]["filters"] = [{"tcp_proxy": {"cluster": "c"}}]
        config["listeners"][0]["max_connections"] = 10
        config["listeners"][0]["reuse_port"] = False
        _, r = self.validate(config)
        self.assertValid(r)

    def test_validate_ok_yaml(self):
        yaml = """\
# comment
listeners:
- name: l
  address: {address: 127.0.0.1, port: 0}
  filters:
  - tcp_proxy:
      cluster: c
clusters:
- name: c
  endpoints:
  - address:
      address: "127.0.0.1"
      port: 1234
  connect_timeout: 1s
admin:
  address: {address: 127.0.0.1, port: 0}
drain_timeout: 5s
"""
        for name in ("config.yaml", "config.yml"):
            _, r = self.validate(yaml, name)
            self.assertValid(r)

    def test_validate_ok_text_proto(self):
        text = """\
listeners {
  name: "l"
  address { address: "127.0.0.1" port: 0 }
  filters { tcp_proxy { cluster: "c" } }
}
clusters {
  name: "c"
  endpoints { address { address: "127.0.0.1" port: 1234 } }
  connect_timeout { seconds: 1 }
}
"""
        _, r = self.validate(text, "config.pbtxt")
        self.assertValid(r)

    def test_validate_quickstart(self):
        path = os.path.join(harness.repo_root(), "configs", "quickstart.yaml")
        self.assertTrue(os.path.exists(path), "%s does not exist" % path)
        r = self.run_cli("--mode", "validate", "-c", path)
        self.assertValid(r)

    def test_validate_unknown_field(self):
        config = good_config()
        config["listeners"][0]["address"]["prot"] = 80
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].address", "prot")

    def test_validate_unknown_top_level_field(self):
        config = good_config()
        config["listenerz"] = []
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listenerz")

    def test_validate_unknown_field_yaml(self):
        yaml = """\
listeners:
- name: l
  address: {address: 127.0.0.1, port: 0}
  filters: [{tcp_proxy: {cluster: c}}]
clusters:
- name: c
  endpoints: [{address: {address: 127.0.0.1, port: 1234}}]
  bogus_field: 3
"""
        path, r = self.validate(yaml, "bad.yaml")
        self.assertInvalid(r, path, "clusters[0]", "bogus_field")

    def test_validate_wrong_type(self):
        config = good_config()
        config["listeners"][0]["address"]["port"] = "abc"
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].address.port")

    def test_validate_endpoint_port_zero(self):
        # Port 0 is fine on a listener but invalid on an upstream endpoint.
        config = good_config()
        config["clusters"][0]["endpoints"][0]["address"]["port"] = 0
        path, r = self.validate(config)
        self.assertInvalid(r, path, "clusters[0].endpoints[0].address.port")

    def test_validate_port_out_of_range(self):
        config = good_config()
        config["clusters"][0]["endpoints"][0]["address"]["port"] = 70000
        path, r = self.validate(config)
        self.assertInvalid(r, path, "clusters[0].endpoints[0].address.port")

    def test_validate_unknown_cluster_reference(self):
        config = good_config()
        config["listeners"][0]["filters"][0]["tcpProxy"]["cluster"] = "nope"
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].filters[0]", "nope")

    def test_validate_missing_filters(self):
        config = good_config()
        del config["listeners"][0]["filters"]
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].filters")

    def test_validate_missing_endpoints(self):
        config = good_config()
        config["clusters"][0]["endpoints"] = []
        path, r = self.validate(config)
        self.assertInvalid(r, path, "clusters[0].endpoints")

    def test_validate_duplicate_listener_names(self):
        config = good_config()
        config["listeners"].append(json.loads(json.dumps(config["listeners"][0])))
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[1]")

    def test_validate_duplicate_fixed_address(self):
        # Port 0 may repeat (a fresh port each); a fixed ip:port may not.
        config = good_config()
        second = json.loads(json.dumps(config["listeners"][0]))
        second["name"] = "l2"
        config["listeners"].append(second)
        _, r = self.validate(config, "port0.json")
        self.assertValid(r)
        for l in config["listeners"]:
            l["address"]["port"] = 18080
        path, r = self.validate(config, "fixed.json")
        self.assertInvalid(r, path, "listeners[1].address")

    def test_validate_reports_every_problem(self):
        config = good_config()
        config["clusters"][0]["endpoints"][0]["address"]["port"] = 0
        del config["listeners"][0]["filters"]
        path, r = self.validate(config)
        self.assertInvalid(r, path, "clusters[0].endpoints[0].address.port",
                           "listeners[0].filters")

    def test_validate_bad_address(self):
        config = good_config()
        config["listeners"][0]["address"]["address"] = "not-an-ip"
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].address")

    def test_validate_every_example_config(self):
        # configs/ holds the examples users copy: each validates, plugins and all.
        configs = os.path.join(harness.repo_root(), "configs")
        names = [n for n in sorted(os.listdir(configs))
                 if n.endswith((".yaml", ".yml", ".json", ".pbtxt", ".pb.txt", ".textproto"))]
        self.assertTrue(names, "no configs in %s" % configs)
        # Their certificates (certs/..., relative to the working directory) are made here: no key
        # is in the repository.
        tls_pki.example_certs(os.path.join(self.tmpdir, "certs"))
        # And the admin's bearer token (configs/admin.yaml), also relative.
        with open(os.path.join(self.tmpdir, "admin.token"), "w") as f:
            f.write("0123456789abcdef0123456789abcdef\n")
        for name in names:
            with self.subTest(config=name):
                r = subprocess.run([harness.sluice_bin(), "--mode", "validate", "-c",
                                    os.path.join(configs, name)], cwd=self.tmpdir,
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   errors="replace", timeout=harness.EXIT_TIMEOUT)
                self.assertValid(r)

    def test_validate_empty_config(self):
        # It would run and serve nothing.
        for name, content in (("empty.yaml", ""), ("empty.json", {}),
                              ("admin-only.json", {"admin": {"address": {
                                  "address": "127.0.0.1", "port": 0}}})):
            with self.subTest(config=name):
                path, r = self.validate(content, name)
                self.assertInvalid(r, path, "listeners: at least one listener is required")

    def test_validate_timeouts_below_a_millisecond(self):
        # Timeouts count whole milliseconds and 0 means none: "0.0001s" would silently become
        # no timeout at all. Refused with the minimum; 0s and 1ms are fine.
        cases = [
            (lambda c, v: c["clusters"][0].update(connectTimeout=v),
             "clusters[0].connect_timeout: must be at least 1ms"),
            (lambda c, v: c["listeners"][0]["filters"][0]["tcpProxy"].update(idleTimeout=v),
             "listeners[0].filters[0].tcp_proxy.idle_timeout: must be 0s (no timeout) or at "
             "least 1ms"),
            (lambda c, v: c.update(drainTimeout=v), "drain_timeout: must be 0s"),
            (lambda c, v: c["clusters"][0].update(httpPool={"idleTimeout": v}),
             "clusters[0].http_pool.idle_timeout: must be 0s"),
        ]
        for i, (set_value, needle) in enumerate(cases):
            with self.subTest(needle=needle):
                config = good_config()
                set_value(config, "0.0001s")
                path, r = self.validate(config, "timeout%d.json" % i)
                self.assertInvalid(r, path, needle, "got 0.000100000s")
                set_value(config, "1ms")
                _, r = self.validate(config, "timeout%d-ok.json" % i)
                self.assertValid(r)
        config = harness.http_config(hcm={"requestHeadersTimeout": "999us",
                                          "idleTimeout": "0s"})
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].filters[0].http_connection_manager."
                                    "request_headers_timeout: must be 0s (no timeout) or at "
                                    "least 1ms")

    def test_validate_strings_that_reach_the_wire_logs_and_stats(self):
        # One bad value per class of config string, each refused with its field path: names
        # (stats, logs, the ports file), header field values and names, file paths, addresses.
        hcm_path = "listeners[0].filters[0].http_connection_manager"

        def http(**hcm):
            return harness.http_config(hcm=hcm)

        def with_filters(filters):
            return harness.http_config(filters=filters)

        def tcp(change):
            config = good_config()
            change(config)
            return config

        cases = [
            # Names: letters, digits, '_', '-', '.'.
            (tcp(lambda c: c["listeners"][0].update(name="l\nforged 1.2.3.4:80")),
             "listeners[0].name: \"l\\nforged 1.2.3.4:80\" is not a valid name"),
            (tcp(lambda c: (c["clusters"][0].update(name="c 1"),
                            c["listeners"][0]["filters"][0]["tcpProxy"].update(cluster="c 1"))),
             "clusters[0].name: \"c 1\" is not a valid name"),
            (tcp(lambda c: c["listeners"][0]["filters"][0].update(name="tcp\r")),
             "listeners[0].filters[0].name: "),
            (http(statPrefix="web\nserver.downstream_cx_total 0"), hcm_path + ".stat_prefix: "),
            (with_filters([dict(harness.direct_response_filter(), name="a b")]),
             hcm_path + ".http_filters[0].name: "),
            (with_filters([{"plugin": {"filter": "request_id\n"}}]),
             hcm_path + ".http_filters[0].plugin.filter: "),
            # Header field values: no CR, LF, NUL or other controls.
            (http(via="1.1 sluice\r\nx-injected: 1"), hcm_path + ".via: "),
            (http(serverName="sluice\x01"), hcm_path + ".server_name: "),
            (with_filters([harness.direct_response_filter(headers=[("x-a", "b\x00c")])]),
             hcm_path + ".http_filters[0].direct_response.headers[0].value: "),
            # Header field names and protocol names: tokens.
            (with_filters([harness.direct_response_filter(headers=[("x a", "b")])]),
             hcm_path + ".http_filters[0].direct_response.headers[0].name: "),
            (http(upgradeTypes=["web socket"]), hcm_path + ".upgrade_types[0]: "),
            # File paths: no controls (logged; NUL would cut the path short).
            (tcp(lambda c: c.update(pluginDirs=["/opt/plugins\n"])), "plugin_dirs[0]: "),
            (with_filters([{"plugin": {"filter": "request_id", "plugin": "request_id\x00x"}}]),
             hcm_path + ".http_filters[0].plugin.plugin: "),
            # Addresses: a NUL would end the literal early for inet_pton.
            (tcp(lambda c: c["listeners"][0]["address"].update(address="127.0.0.1\x00x")),
             "listeners[0].address.address: "),
        ]
        for i, (config, needle) in enumerate(cases):
            with self.subTest(needle=needle):
                path, r = self.validate(config, "strings%d.json" % i)
                self.assertInvalid(r, path, needle)
        # What configs use today stays valid.
        config = harness.http_config(hcm={"statPrefix": "web-1.public_x", "via": "1.1 sluice",
                                          "serverName": "sluice/1.0 (x\ty)",
                                          "upgradeTypes": ["websocket", "CONNECT"]},
                                     name="web_1.a-b")
        _, r = self.validate(config)
        self.assertValid(r)

    def test_validate_unknown_cluster_in_a_route(self):
        # The router learns the config's clusters through the plugin ABI (1.2) and refuses a
        # route to one that does not exist, with its field path.
        router = {"@type": "type.googleapis.com/sluice.extensions.router.v1.Router",
                  "virtualHosts": [{"name": "v", "domains": ["*"], "routes": [
                      {"name": "r", "route": {"weightedClusters": {"clusters": [
                          {"name": "c", "weight": 1}, {"name": "typo", "weight": 1}]}}}]}]}
        config = harness.http_config(filters=[{"plugin": {"filter": "router",
                                                          "typedConfig": router}}])
        config["clusters"] = good_config()["clusters"]
        path, r = self.validate(config)
        self.assertInvalid(r, path, "listeners[0].filters[0].http_connection_manager."
                                    "http_filters[0]: filter \"router\"",
                           "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name: "
                           "unknown cluster \"typo\" (defined: \"c\")")
        router["virtualHosts"][0]["routes"][0]["route"]["weightedClusters"]["clusters"].pop()
        _, r = self.validate(config)
        self.assertValid(r)

    def test_validate_malformed_json(self):
        path = self.write("broken.json", '{"listeners": [')
        r = self.run_cli("--mode", "validate", "-c", path)
        self.assertEqual(r.returncode, 1, self.output(r))
        self.assertIn("broken.json", r.stdout + r.stderr, self.output(r))

    def test_validate_unknown_extension(self):
        path = self.write("config.ini", json.dumps(good_config()))
        r = self.run_cli("--mode", "validate", "-c", path)
        self.assertEqual(r.returncode, 1, self.output(r))
        self.assertIn("config.ini", r.stdout + r.stderr, self.output(r))

    def test_missing_file(self):
        path = os.path.join(self.tmpdir, "does-not-exist.json")
        for mode in ("validate", "serve"):
            r = self.run_cli("--mode", mode, "-c", path)
            self.assertEqual(r.returncode, 1, "mode %s\n%s" % (mode, self.output(r)))
            self.assertIn("does-not-exist.json", r.stdout + r.stderr,
                          "mode %s: the error must name the file\n%s" % (mode, self.output(r)))

    def test_missing_file_default_mode(self):
        path = os.path.join(self.tmpdir, "nope.yaml")
        r = self.run_cli("-c", path)
        self.assertEqual(r.returncode, 1, self.output(r))
        self.assertIn("nope.yaml", r.stderr, "the error must be on stderr\n" + self.output(r))

    def test_serve_invalid_config_exits_1(self):
        config = good_config()
        config["listeners"][0]["address"]["prot"] = 80
        path = self.write("serve-bad.json", config)
        ports = os.path.join(self.tmpdir, "ports")
        r = harness.run_cli(["-c", path, "--ports-file", ports])
        self.assertEqual(r.returncode, 1, self.output(r))
        self.assertIn("serve-bad.json", r.stderr, self.output(r))
        self.assertIn("listeners[0].address", r.stderr, self.output(r))
        self.assertFalse(os.path.exists(ports), "no ports file for a config that does not load")

    def test_serve_port_in_use_exits_1(self):
        # A listener that cannot bind: sluice reports it and exits 1 rather than serving partly.
        with harness.socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            config = good_config()
            config["listeners"][0]["address"]["port"] = port
            path = self.write("busy.json", config)
            ports = os.path.join(self.tmpdir, "ports")
            r = harness.run_cli(["-c", path, "--ports-file", ports])
        self.assertEqual(r.returncode, 1, self.output(r))
        self.assertIn(str(port), r.stderr, self.output(r))
        self.assertFalse(os.path.exists(ports), "no ports file when a listener cannot bind")

    # -- linking --

    def test_links_boringssl_not_openssl(self):
        ldd = shutil.which("ldd")
        if not ldd:
            self.skipTest("no ldd")
        r = subprocess.run([ldd, harness.sluice_bin()], capture_output=True, text=True,
                           timeout=harness.EXIT_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("not found", r.stdout, r.stdout)
        self.assertNotIn("libssl.so.3", r.stdout, r.stdout)
        self.assertNotIn("libcrypto.so.3", r.stdout, r.stdout)
        m = re.search(r"^\s*libssl\.so\.0 => (\S+)", r.stdout, re.M)
        self.assertIsNotNone(m, "sluice does not link libssl.so.0 (BoringSSL):\n" + r.stdout)
        self.assertIn("/android/", m.group(1), r.stdout)


if __name__ == "__main__":
    harness.main()
