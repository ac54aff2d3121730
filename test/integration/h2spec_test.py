#!/usr/bin/env python3
"""HTTP/2 conformance (RFC 9113, RFC 7541): the 146 cases h2spec 2.0 checks (test/integration/
h2spec*, see H2SPEC.md), against sluice loaded with configs/http2.yaml as it ships (ports 0, the
generated certificates, the origin's port), over TLS (ALPN h2, codec_type AUTO) and over h2c
(prior knowledge, codec_type HTTP2). Each listener routes to a real HTTP/1.1 origin that reads
the whole request before it answers, as h2spec's cases expect of a server.

Also: the same suite over h2c on a listener with codec_type AUTO, where exactly one case differs
by design (http2/3.5/2 "invalid connection preface": bytes that are not the preface are an
HTTP/1.1 request there, answered 400 by the HTTP/1 parser), and a sanity check that the suite
fails against a server that is not conformant (it can fail).
"""

import os
import shutil
import tempfile
import unittest

import harness
import h2spec
import tls_pki


def example_config(certs, origin_port):
    with open(os.path.join(harness.repo_root(), "configs", "http2.yaml")) as f:
        text = f.read()
    # The example must keep these for the test to load it as it is.
    for needle in ("port: 9443}", "port: 9080}", "port: 8080}", "{filename: certs/"):
        assert needle in text, needle
    assert "\nadmin:" not in text
    text = (text.replace("port: 9443}", "port: 0}").replace("port: 9080}", "port: 0}")
            .replace("port: 8080}", "port: %d}" % origin_port)
            .replace("certs/", certs + "/"))
    if not text.endswith("\n"):
        text += "\n"
    return text + "admin: {address: {address: 127.0.0.1, port: 0}}\n"


class H2specTest(harness.SluiceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="sluice-h2spec-certs-")
        tls_pki.example_certs(cls.certs)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.origin = self.server(harness.HttpOrigin)
        self.s = self.start_sluice(example_config(self.certs, self.origin.addr[1]))

    def suite(self, port, tls, **kw):
        config = h2spec.Config("127.0.0.1", port, tls=tls, server_name="www.example.com", **kw)
        results = h2spec.run(config)
        failed = ["%s: %s" % (r.id, r.reason) for r in results if r.status == "failed"]
        return results, failed

    def assertAllPass(self, port, tls):
        results, failed = self.suite(port, tls)
        self.assertEqual(len(results), 146)
        self.assertEqual(failed, [], "\n".join(failed))
        self.assertEqual(sum(1 for r in results if r.status == "skipped"), 0)

    def test_tls_alpn_h2(self):
        before = self.s.stats()
        self.assertAllPass(self.s.addr("h2")[1], tls=True)
        after = self.s.stats()
        # Every case opened its own connection, and each one spoke HTTP/2 (ALPN).
        self.assertGreaterEqual(harness.stat(after, "http.h2.downstream_cx_http2_total") -
                                harness.stat(before, "http.h2.downstream_cx_http2_total"), 146)
        self.assertEqual(harness.stat(after, "http.h2.downstream_cx_http1_total"), 0)

    def test_h2c_prior_knowledge(self):
        self.assertAllPass(self.s.addr("h2c")[1], tls=False)

    def test_h2c_on_an_auto_listener(self):
        cfg = harness.routed_config(self.origin.addr[1])
        s = self.start_sluice(cfg, name="auto")
        results, failed = self.suite(s.addr("web")[1], tls=False)
        self.assertEqual(len(results), 146)
        self.assertEqual([f.split(":")[0] for f in failed], ["http2/3.5/2"], "\n".join(failed))

    def test_the_suite_can_fail(self):
        # An HTTP/1-only listener: every case fails (the preface is a bad HTTP/1 request).
        cfg = harness.routed_config(self.origin.addr[1], hcm={"codecType": "HTTP1"})
        s = self.start_sluice(cfg, name="h1")
        results, failed = self.suite(s.addr("web")[1], tls=False, sections=["generic/1"])
        self.assertEqual(len(results), 1)
        self.assertEqual(len(failed), 1, failed)


if __name__ == "__main__":
    harness.main()
