"""testssl.sh (Debian's testssl.sh) against sluice's default TLS settings: no finding rated HIGH
or CRITICAL. The certificate is made to pass testssl's certificate checks (a CA it is told to
trust, the name it connects to, a year of validity, revocation URIs), so that what it rates is
the TLS configuration: protocols, ciphers, curves, renegotiation, known vulnerabilities."""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
# testssl.sh takes about a minute against one port here.
TESTSSL_TIMEOUT = 600


class TestsslTest(harness.SluiceTestCase):
    @unittest.skipIf(TESTSSL is None, "testssl.sh is not installed (tools/deps installs it)")
    def test_default_settings_have_no_high_or_critical_finding(self):
        pki = tls_pki.shared_pki()
        root = pki.ca("testssl-root")
        revocation = (("authorityInfoAccess", "OCSP;URI:http://127.0.0.1/ocsp"),
                      ("crlDistributionPoints", "URI:http://127.0.0.1/crl.pem"))
        certs = [pki.server_cert(root, ["localhost", "127.0.0.1"], key=k, extensions=revocation)
                 for k in ("ec", "rsa")]
        chain = {"tlsCertificates": [{"certificateChain": {"filename": c.chain},
                                      "privateKey": {"filename": c.key}} for c in certs]}
        s = self.start_sluice(harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            "filterChains": [{"tlsContext": {"commonTlsContext": chain},
                              "filters": [{"httpConnectionManager": {
                                  "httpFilters": [harness.direct_response_filter()]}}]}]}]))
        port = s.addr("web")[1]
        report = os.path.join(self.tmpdir, "testssl.json")
        r = subprocess.run(
            [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", root.cert,
             "--jsonfile", report, "--severity", "HIGH", "--ip", "127.0.0.1",
             "localhost:%d" % port],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
            timeout=TESTSSL_TIMEOUT)
        self.assertTrue(os.path.exists(report), "testssl wrote no report:\n%s\n%s" %
                        (r.stdout[-3000:], r.stderr[-3000:]))
        with open(report) as f:
            findings = json.load(f)
        bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
        scanned = [f for f in findings if f.get("id") in ("TLS1_3", "TLS1_2", "TLS1_1")]
        # The scan reached the server (an empty report would pass anything).
        self.assertTrue(scanned or findings, "no protocol results:\n%s" % r.stdout[-3000:])
        self.assertEqual(bad, [], "\n".join("%s %s: %s" % (f["severity"], f["id"], f["finding"])
                                             for f in bad))
        # TLS 1.2 and 1.3 handshakes happened (testssl connected for real).
        self.assertGreater(harness.stat(s.stats(), "listener.web.ssl.versions.TLSv1_3"), 0)
        self.assertGreater(harness.stat(s.stats(), "listener.web.ssl.versions.TLSv1_2"), 0)


if __name__ == "__main__":
    harness.main()
