"""Routes and per-route filter config (plugin ABI 1.3 ROUTES) in the real binary, against a real
origin: a route's (or its virtual host's) config for another filter of the chain, typed and JSON;
route metadata; the route chosen lazily, so that a filter placed before the router sees the route
the router takes; a route chosen again after a filter rewrote the path and cleared it; the
example config/per_route.yaml; and every config error with its field path and line."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_request as req  # noqa: E402

PLUGIN_DIR = os.environ.get("SLUICE_TEST_PLUGIN_DIR",
                            os.path.join(harness.repo_root(), "build", "test", "plugin", "plugins"))

ECHO = "type.googleapis.com/sluice.test.route.RouteEcho"
ECHO_ROUTE = "type.googleapis.com/sluice.test.route.RouteEchoPerRoute"
ROUTER = "type.googleapis.com/sluice.extensions.router.v1.Router"


def config(origin_port, vhosts, extra_filters=""):
    """YAML: route_echo and route_json before the router (so that they see the route only
    because it is chosen on first use), `vhosts` (YAML text, indented for its place)."""
    return f"""
plugin_dirs: [{PLUGIN_DIR}]
listeners:
  - name: web
    address: {{address: 127.0.0.1, port: 0}}
    filters:
      - http_connection_manager:
          http_filters:
            - plugin:
                filter: route_echo
                plugin: route_filters
                typed_config:
                  "@type": {ECHO}
                  default_say: dflt
            - plugin: {{filter: route_json, plugin: route_filters}}
{extra_filters}            - plugin:
                filter: router
                typed_config:
                  "@type": {ROUTER}
                  virtual_hosts:
{vhosts}
clusters:
  - name: app
    endpoints:
      - address: {{address: 127.0.0.1, port: {origin_port}}}
admin:
  address: {{address: 127.0.0.1, port: 0}}
"""


VHOSTS = f"""\
                    - name: shop
                      domains: [shop.test]
                      metadata: {{team: core}}
                      typed_per_filter_config:
                        route_echo: {{"@type": "{ECHO_ROUTE}", say: vhost}}
                      routes:
                        - name: own
                          match: {{prefix: /own}}
                          metadata: {{team: payments}}
                          typed_per_filter_config:
                            route_echo: {{"@type": "{ECHO_ROUTE}", say: route}}
                            route_json: {{a: 1, b: [x, y]}}
                          route: {{cluster: app}}
                        - name: direct
                          match: {{prefix: /direct}}
                          typed_per_filter_config:
                            route_echo: {{"@type": "{ECHO_ROUTE}", say: direct}}
                          direct_response: {{status: 200, body: "direct\\n"}}
                        - name: inherit
                          route: {{cluster: app}}
                    - name: bare
                      domains: [bare.test]
                      routes:
                        - route: {{cluster: app}}
"""


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


class PerRouteConfigTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin("app")
        self.addCleanup(self.origin.close)

    def get(self, s, path, host, headers=()):
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        before = len(self.origin.requests)
        c.send(req("GET", path, host=host, headers=headers))
        r = c.read_response()
        seen = self.origin.requests[before:]
        return r, (seen[0] if seen else None)

    def test_filters_before_the_router_see_the_routes_config_and_metadata(self):
        s = self.start_sluice(config(self.origin.addr[1], VHOSTS), concurrency=1)
        cases = [
            # path, host: what the origin (and the response) get from route_echo / route_json
            ("/own/1", "shop.test", "route", "payments", {"a": 1, "b": ["x", "y"]}),
            ("/other", "shop.test", "vhost", "core", "-"),
            ("/", "bare.test", "dflt", "-", "-"),
        ]
        for path, host, say, team, js in cases:
            with self.subTest(path=path, host=host):
                r, seen = self.get(s, path, host)
                self.assertEqual(200, r.status, r.raw)
                self.assertIsNotNone(seen)
                _, got_path, headers = seen
                self.assertEqual(path, got_path)
                self.assertEqual(say, header(headers, "x-route-say"))
                self.assertEqual(team, header(headers, "x-route-team"))
                got_json = header(headers, "x-route-json")
                self.assertEqual(js, got_json if js == "-" else json.loads(got_json))
                self.assertEqual(say, r.get("x-route-say"))
        # A route that answers itself: the filter before the router still saw its config.
        r, seen = self.get(s, "/direct", "shop.test")
        self.assertEqual(b"direct\n", r.body)
        self.assertIsNone(seen)
        self.assertEqual("direct", r.get("x-route-say"))
        # No virtual host: no route (404 from the router), the filters' own config.
        r, seen = self.get(s, "/", "nowhere.test")
        self.assertEqual(404, r.status)
        self.assertEqual("dflt", r.get("x-route-say"))
        self.assertEqual("-", r.get("x-route-team"))

    def test_a_cleared_route_is_chosen_again_for_the_rewritten_request(self):
        s = self.start_sluice(config(self.origin.addr[1], VHOSTS), concurrency=1)
        # route_echo rewrites :path from x-set-path and clears the route: the router then takes
        # the route of the new path, and route_echo's config is that route's.
        r, seen = self.get(s, "/other", "shop.test", headers=[("x-set-path", "/own/2")])
        self.assertEqual(200, r.status, r.raw)
        _, got_path, headers = seen
        self.assertEqual("/own/2", got_path)
        self.assertEqual("route", header(headers, "x-route-say"))
        self.assertEqual("payments", header(headers, "x-route-team"))

    def test_a_route_the_selector_did_not_define_is_refused_unread(self):
        # route_forger defines one route and selects it; with x-forge it returns a pointer the
        # host never gave it, which the host refuses by address (no route, a rejected call, a
        # log line) without reading through it.
        yaml = f"""
plugin_dirs: [{PLUGIN_DIR}]
listeners:
  - name: web
    address: {{address: 127.0.0.1, port: 0}}
    filters:
      - http_connection_manager:
          http_filters:
            - plugin: {{filter: route_echo, plugin: route_filters,
                        typed_config: {{"@type": {ECHO}, default_say: dflt}}}}
            - plugin: {{filter: route_forger, plugin: route_filters}}
            - direct_response: {{status: 200, body: "ok\\n"}}
admin:
  address: {{address: 127.0.0.1, port: 0}}
"""
        s = self.start_sluice(yaml, concurrency=1)
        r, _ = self.get(s, "/", "any.test")
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("forger", r.get("x-route-team"))
        r, _ = self.get(s, "/", "any.test", headers=[("x-forge", "1")])
        self.assertEqual(200, r.status, r.raw)
        self.assertEqual("-", r.get("x-route-team"))
        self.assertEqual(1, s.stats().get("plugin.route_forger.rejected_calls"))
        self.assertIn("sl_on_route_select returned a route it did not define", s.logs())

    def test_the_example_config(self):
        with open(os.path.join(harness.repo_root(), "configs", "per_route.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 8000}", 0), ("port: 9901}", 0),
                            ("port: 8080}", self.origin.addr[1])):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text, concurrency=1)
        for path, cache in (("/", "public, max-age=60"), ("/account/me", "no-store"),
                            ("/static/app.js", "public, max-age=86400")):
            with self.subTest(path=path):
                c = harness.HttpClient.connect(s.addr("web"))
                self.addCleanup(c.close)
                c.send(req("GET", path, host="example.test"))
                r = c.read_response()
                self.assertEqual(200, r.status, r.raw)
                self.assertEqual(cache, r.get("cache-control"))

    def validate(self, text):
        path = harness.write_config(text, self.tmpdir, "config.yaml")
        return path, harness.run_cli(["--mode", "validate", "-c", path])

    def test_config_errors_name_the_value_and_its_line(self):
        port = self.origin.addr[1]
        _, r = self.validate(config(port, VHOSTS))
        self.assertEqual(0, r.returncode, r.stderr)
        router_path = "listeners[0].filters[0].http_connection_manager.http_filters[2]"
        route_value = (router_path + ".plugin.typed_config.virtual_hosts[0].routes[0]"
                       ".typed_per_filter_config[\"route_echo\"]")

        def routes_with(per_filter):
            return f"""\
                    - name: v
                      domains: ["*"]
                      routes:
                        - name: r
                          typed_per_filter_config:
{per_filter}
                          route: {{cluster: app}}
"""
        noop = ("            - plugin: {filter: noop, plugin: noop}\n")
        cases = [
            # A filter that is not in the list.
            ('                            nope: {a: 1}',
             '.typed_per_filter_config["nope"]: no plugin filter named "nope" in this '
             'http_filters list (it has: "route_echo", "route_json"', ""),
            # The filter's own check refuses it.
            (f'                            route_echo: {{"@type": "{ECHO_ROUTE}", reject: true}}',
             'filter "route_echo" rejected its per-route config: reject: refused as asked', ""),
            # A field its per-route type does not have: the field path inside the value, and
            # the line.
            (f'                            route_echo: {{"@type": "{ECHO_ROUTE}", sya: x}}',
             route_value + '.sya: unknown field', ""),
            # Another type than the filter's per-route type.
            (f'                            route_echo: {{"@type": "{ECHO}", say: x}}',
             'is not this filter\'s config type', ""),
            # A filter whose plugin takes no per-route config at all (a C plugin without
            # sl_on_route_config_new).
            ('                            noop: {}',
             'filter "noop" takes no per-route config (its plugin exports no '
             'sl_on_route_config_new', noop),
        ]
        for per_filter, message, extra in cases:
            with self.subTest(message=message):
                path, r = self.validate(config(port, routes_with(per_filter), extra))
                self.assertEqual(1, r.returncode, r.stdout)
                self.assertIn(message, r.stderr)
                self.assertIn(path + ": ", r.stderr)
                self.assertIn("at line", r.stderr)


if __name__ == "__main__":
    harness.main()
