"""Path normalization against a real origin: a route that answers 403 for /admin holds for every
spelling of /admin an origin would serve as /admin (dot segments, percent-encoded unreserved
characters, doubled slashes, backslashes, absolute-form targets, escaped slashes), as nginx's
does; what the origin receives is the canonical target (or, when configured, the target as
received); bad encodings are refused and counted."""

import os

import harness
from harness import http_request as req


# (request-target, status, path the origin receives (None: no request reaches it), Location)
DEFAULT_CASES = [
    # Baseline.
    ("/admin", 403, None, None),
    ("/admin/users", 403, None, None),
    ("/public", 200, "/public", None),
    # Dot segments.
    ("/x/../admin", 403, None, None),
    ("/./admin", 403, None, None),
    ("/public/../admin/x", 403, None, None),
    ("/../../admin", 403, None, None),
    ("/x/./y/../../admin", 403, None, None),
    # Percent-encoded unreserved characters.
    ("/%61dmin", 403, None, None),
    ("/adm%69n", 403, None, None),
    ("/%2e%2e/admin", 403, None, None),
    ("/x/%2E%2E/admin", 403, None, None),
    ("/x/.%2e/admin", 403, None, None),
    # Doubled slashes. (The origin, Python's http.server, would merge leading ones itself.)
    ("//admin", 403, None, None),
    ("/public//..//admin", 403, None, None),
    ("///admin//x", 403, None, None),
    # Backslashes (read as '/' by Windows origins and browsers).
    ("/x\\..\\admin", 403, None, None),
    ("/public\\..\\admin", 403, None, None),
    # Absolute-form targets.
    ("http://example.test/admin", 403, None, None),
    ("HTTP://example.test//x/../admin", 403, None, None),
    ("http://example.test/%61dmin?x=1", 403, None, None),
    # Escaped slashes: the client is sent to the decoded path (which it then asks for).
    ("/admin%2Fsecret", 307, None, "/admin/secret"),
    ("/x%2F..%2Fadmin", 307, None, "/admin"),
    ("/x%5C..%5Cadmin?a=b", 307, None, "/admin?a=b"),
    # What the origin receives: the canonical target; the query as sent.
    ("/public/../pub", 200, "/pub", None),
    ("/a//b/./c/?q=/../x&y=%2e", 200, "/a/b/c/?q=/../x&y=%2e", None),
    ("/%7Euser/a%3ab", 200, "/~user/a%3Ab", None),
    ("http://example.test", 200, "/", None),
    ("http://example.test?x=1", 200, "/?x=1", None),
    # Encodings an origin could read either way: refused.
    ("/a%zz", 400, None, None),
    ("/a%2", 400, None, None),
    ("/admin%", 400, None, None),
]


class PathNormalizationTest(harness.SluiceTestCase):

    def setUp(self):
        super().setUp()
        self.origin = harness.HttpOrigin("a")
        self.addCleanup(self.origin.close)

    def start(self, **hcm):
        return self.start_sluice(harness.routed_config(self.origin.addr[1], hcm=hcm, routes=[
            {"name": "deny", "match": {"prefix": "/admin"},
             "directResponse": {"status": 403, "body": "forbidden\n"}},
            {"name": "rest", "route": {"cluster": "o"}},
        ]), concurrency=1)

    def ask(self, s, target, host="example.test"):
        """Sends one request; returns (response, the path the origin received or None)."""
        before = len(self.origin.requests)
        c = harness.HttpClient.connect(s.addr("web"))
        self.addCleanup(c.close)
        c.send(req("GET", target, host=host))
        r = c.read_response()
        got = self.origin.requests[before:]
        self.assertLessEqual(len(got), 1)
        return r, (got[0][1] if got else None), (got[0][2] if got else None)

    def check(self, s, cases):
        for target, status, origin_path, location in cases:
            with self.subTest(target=target):
                r, seen, _ = self.ask(s, target)
                self.assertEqual(status, r.status, r.body)
                self.assertEqual(origin_path, seen)
                self.assertEqual(location, r.get("location"))

    def test_every_bypass_class_is_closed_by_default(self):
        s = self.start()
        self.check(s, DEFAULT_CASES)
        stats = s.stats()
        self.assertEqual(3, stats["http.web.downstream_rq_path_rejected"])
        self.assertEqual(3, stats["http.web.downstream_rq_path_redirected"])

    def test_rewritten_targets_are_counted(self):
        s = self.start()
        for target, counted in (("/admin", 0), ("/x/../admin", 1), ("/public", 0),
                                ("http://example.test/public", 0), ("//public", 1)):
            before = s.stats()["http.web.downstream_rq_path_normalized"]
            self.ask(s, target)
            self.assertEqual(before + counted, s.stats()["http.web.downstream_rq_path_normalized"],
                             target)

    def test_absolute_form_authority_replaces_host(self):
        s = self.start()
        r, seen, headers = self.ask(s, "http://Other.test:8080/p?q", host="example.test")
        self.assertEqual(200, r.status)
        self.assertEqual("/p?q", seen)
        self.assertEqual("Other.test:8080", headers["Host"])

    def test_escaped_slash_actions(self):
        s = self.start(pathWithEscapedSlashesAction="UNESCAPE_AND_FORWARD")
        self.check(s, [("/pub%2Fx", 200, "/pub/x", None),
                       ("/x%2F..%2Fadmin", 403, None, None),
                       ("/x%5cy", 200, "/x/y", None)])
        s.stop()
        s = self.start(pathWithEscapedSlashesAction="REJECT_REQUEST")
        self.check(s, [("/pub%2Fx", 400, None, None), ("/pub%5c", 400, None, None),
                       ("/x/../pub", 200, "/pub", None)])
        s.stop()
        s = self.start(pathWithEscapedSlashesAction="KEEP_UNCHANGED")
        self.check(s, [("/pub%2fx", 200, "/pub%2Fx", None),
                       ("/x%2F..%2Fadmin", 200, "/x%2F..%2Fadmin", None),
                       ("/x/../admin", 403, None, None)])

    def test_upstream_can_get_the_path_as_received(self):
        s = self.start(upstreamPath="AS_RECEIVED")
        # Routes still match the canonical path...
        self.check(s, [("/x/../admin", 403, None, None), ("//%61dmin", 403, None, None)])
        # ... and the origin gets the bytes the client sent (in origin-form).
        self.check(s, [("/x/../public", 200, "/x/../public", None),
                       ("/p//%7e?q=/../x", 200, "/p//%7e?q=/../x", None),
                       ("http://example.test/a//x", 200, "/a//x", None)])

    def test_normalization_can_be_turned_off(self):
        # The documented cost: with both off, dot segments and doubled slashes reach the origin.
        s = self.start(normalizePath=False, mergeSlashes=False,
                       pathWithEscapedSlashesAction="KEEP_UNCHANGED")
        self.check(s, [("/x/../admin", 200, "/x/../admin", None),
                       ("/x//admin", 200, "/x//admin", None),
                       ("/%61dmin", 200, "/%61dmin", None),
                       ("/admin", 403, None, None)])
        self.assertEqual(0, s.stats()["http.web.downstream_rq_path_normalized"])


class EdgeConfigTest(harness.SluiceTestCase):
    """configs/edge.yaml, as shipped (only its ports swapped for the test's): the bypass classes
    are closed and the origin gets the canonical path."""

    def test_the_edge_example_config(self):
        origin = harness.HttpOrigin("app")
        self.addCleanup(origin.close)
        with open(os.path.join(harness.repo_root(), "configs", "edge.yaml")) as f:
            text = f.read()
        for fixed, port in (("port: 8000}", 0), ("port: 9901}", 0),
                            ("port: 8080}", origin.addr[1])):
            self.assertIn(fixed, text)
            text = text.replace(fixed, "port: %d}" % port)
        s = self.start_sluice(text, concurrency=1)
        for target, status, seen in (("/x/../admin", 403, None), ("//%61dmin", 403, None),
                                     ("http://h/admin/", 403, None), ("/app/./a//b", 200, "/app/a/b")):
            with self.subTest(target=target):
                before = len(origin.requests)
                c = harness.HttpClient.connect(s.addr("edge"))
                self.addCleanup(c.close)
                c.send(req("GET", target, host="example.test"))
                r = c.read_response()
                self.assertEqual(status, r.status)
                got = origin.requests[before:]
                self.assertEqual(seen, got[0][1] if got else None)


if __name__ == "__main__":
    harness.main()
