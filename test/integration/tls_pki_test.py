"""The TLS test PKI and clients (tls_pki.py) against a real TLS server, Debian's `openssl s_server`:
certificates verify (SANs, wildcards, IP addresses, chains through an intermediate) or fail as they
should (expired, wrong name, unknown root, wrong EKU), OCSP responses are well formed, signed and
stapled, client certificates are asked for and checked, sessions resume, TLS 1.1 is refused, and
s_client's and curl's output is parsed into what the TLS tests of sluice will assert on.

sluice itself is not involved: this checks the tools the TLS tests stand on, so that a failing TLS
test points at sluice. Each s_server listens on a port the kernel picked (-accept 127.0.0.1:0,
whose "ACCEPT 127.0.0.1:PORT" line is read), so nothing races for a port.
"""

import datetime
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402

GET = b"GET / HTTP/1.0\r\n\r\n"


def x509_text(path):
    return tls_pki.openssl("x509", "-noout", "-text", "-in", path).stdout.decode()


def openssl_verify(root, cert, *args):
    """`openssl verify`; returns (exit code, output)."""
    untrusted = ["-untrusted", cert.intermediates] if getattr(cert, "intermediates", None) else []
    r = tls_pki.openssl("verify", "-CAfile", root.cert, *untrusted, *args, cert.cert, check=False)
    return r.returncode, (r.stdout + r.stderr).decode()


class PkiTest(unittest.TestCase):
    """The files: extensions, chains, validity periods, OCSP responses, memoization."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("root")
        cls.inter = cls.pki.intermediate(cls.root, "inter")
        cls.rsa_root = cls.pki.ca("rsa-root", key="rsa")
        cls.leaf = cls.pki.server_cert(cls.inter, ["a.test", "*.wild.test", "127.0.0.1"])
        cls.rsa_leaf = cls.pki.server_cert(cls.rsa_root, ["a.test"], key="rsa")
        cls.client = cls.pki.client_cert(cls.inter, "alice",
                                         sans=["URI:spiffe://sluice.test/alice"])

    def test_ca_extensions(self):
        text = x509_text(self.root.cert)
        self.assertIn("CA:TRUE", text)
        self.assertIn("Certificate Sign, CRL Sign", text)
        self.assertIn("ASN1 OID: prime256v1", text)
        self.assertEqual(tls_pki.subject(self.root), tls_pki.issuer(self.root))
        text = x509_text(self.inter.cert)
        self.assertIn("CA:TRUE, pathlen:0", text)
        self.assertEqual(tls_pki.issuer(self.inter), tls_pki.subject(self.root))
        self.assertIn("Public-Key: (2048 bit)", x509_text(self.rsa_root.cert))

    def test_server_cert_extensions_ecdsa(self):
        text = x509_text(self.leaf.cert)
        self.assertIn("CA:FALSE", text)
        self.assertIn("TLS Web Server Authentication", text)
        self.assertNotIn("Client Authentication", text)
        # ECDSA keys sign; they cannot encipher (no keyEncipherment).
        self.assertIn("X509v3 Key Usage: critical\n                Digital Signature\n", text)
        self.assertEqual(tls_pki.sans(self.leaf),
                         ["DNS:a.test", "DNS:*.wild.test", "IP:127.0.0.1"])
        self.assertEqual(self.leaf.names, ["DNS:a.test", "DNS:*.wild.test", "IP:127.0.0.1"])
        self.assertEqual(self.leaf.subject, "CN=a.test,O=sluice tests")
        self.assertEqual(tls_pki.subject(self.leaf, "oneline"), "O = sluice tests, CN = a.test")

    def test_server_cert_extensions_rsa(self):
        text = x509_text(self.rsa_leaf.cert)
        self.assertIn("Digital Signature, Key Encipherment", text)
        self.assertIn("Public-Key: (2048 bit)", text)
        self.assertIn("TLS Web Server Authentication", text)

    def test_client_cert_extensions(self):
        text = x509_text(self.client.cert)
        self.assertIn("TLS Web Client Authentication", text)
        self.assertNotIn("Server Authentication", text)
        self.assertEqual(tls_pki.sans(self.client), ["URI:spiffe://sluice.test/alice"])
        self.assertEqual(self.client.subject, "CN=alice,O=sluice tests")

    def test_chains_verify_for_their_purpose(self):
        for cert, purpose in ((self.leaf, "sslserver"), (self.rsa_leaf, "sslserver"),
                              (self.client, "sslclient")):
            root = cert.root
            rc, out = openssl_verify(root, cert, "-purpose", purpose)
            self.assertEqual(rc, 0, out)
            self.assertIn(": OK", out)
        # The EKUs are restrictive: a server certificate is no client certificate and back.
        rc, out = openssl_verify(self.root, self.leaf, "-purpose", "sslclient")
        self.assertNotEqual(rc, 0, out)
        rc, out = openssl_verify(self.root, self.client, "-purpose", "sslserver")
        self.assertNotEqual(rc, 0, out)
        # Without the intermediate, the leaf does not chain to the root.
        r = tls_pki.openssl("verify", "-CAfile", self.root.cert, self.leaf.cert, check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_chain_files(self):
        chain = tls_pki._read_pem_certs(self.leaf.chain)
        self.assertEqual([tls_pki.fingerprint_sha256(c) for c in chain],
                         [tls_pki.fingerprint_sha256(self.leaf),
                          tls_pki.fingerprint_sha256(self.inter)])
        full = tls_pki._read_pem_certs(self.leaf.fullchain)
        self.assertEqual(tls_pki.fingerprint_sha256(full[-1]),
                         tls_pki.fingerprint_sha256(self.root))
        self.assertEqual(len(tls_pki._read_pem_certs(self.rsa_leaf.chain)), 1)
        self.assertIsNone(self.rsa_leaf.intermediates)
        mode = os.stat(self.leaf.key).st_mode & 0o777
        self.assertEqual(mode, 0o600)

    def test_fingerprint_matches_openssl(self):
        out = tls_pki.openssl("x509", "-noout", "-fingerprint", "-sha256", "-in",
                              self.leaf.cert).stdout.decode()
        expected = out.strip().split("=", 1)[1].replace(":", "").lower()
        self.assertEqual(tls_pki.fingerprint_sha256(self.leaf), expected)
        self.assertEqual(len(expected), 64)

    def test_validity_periods(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        expired = self.pki.server_cert(self.root, ["a.test"], expired=True)
        self.assertLess(expired.not_after, now)
        rc, out = openssl_verify(self.root, expired)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("certificate has expired", out)
        # -checkend 0: exit 1 when the certificate has expired.
        r = tls_pki.openssl("x509", "-checkend", "0", "-noout", "-in", expired.cert, check=False)
        self.assertEqual(r.returncode, 1)
        r = tls_pki.openssl("x509", "-checkend", "0", "-noout", "-in", self.leaf.cert,
                            check=False)
        self.assertEqual(r.returncode, 0)

        future = self.pki.server_cert(self.root, ["a.test"], not_yet_valid=True)
        rc, out = openssl_verify(self.root, future)
        self.assertIn("certificate is not yet valid", out)

        old = self.pki.server_cert(self.root, ["a.test"], not_before_past=True, days=60)
        self.assertLess(old.not_before, now - datetime.timedelta(days=29))
        self.assertGreater(old.not_after, now)
        rc, out = openssl_verify(self.root, old)
        self.assertEqual(rc, 0, out)
        start = tls_pki._x509_text(old, "-startdate").strip().split("=", 1)[1]
        self.assertEqual(datetime.datetime.strptime(start, "%b %d %H:%M:%S %Y GMT").replace(
            tzinfo=datetime.timezone.utc), old.not_before)

    def test_memoized(self):
        self.assertIs(self.pki.ca("root"), self.root)
        self.assertIs(self.pki.server_cert(self.inter, ["a.test", "*.wild.test", "127.0.0.1"]),
                      self.leaf)
        other = self.pki.server_cert(self.inter, ["a.test"])
        self.assertIsNot(other, self.leaf)
        self.assertNotEqual(tls_pki.fingerprint_sha256(other),
                            tls_pki.fingerprint_sha256(self.leaf))
        self.assertIs(tls_pki.shared_pki(), self.pki)
        # A second Pki in another directory is another PKI.
        with tempfile.TemporaryDirectory() as d:
            self.assertIsNot(tls_pki.shared_pki(d), self.pki)
            self.assertIs(tls_pki.shared_pki(d), tls_pki.shared_pki(d))
            self.assertNotEqual(tls_pki.fingerprint_sha256(tls_pki.shared_pki(d).ca("root")),
                                tls_pki.fingerprint_sha256(self.root))

    def test_bundle(self):
        bundle = self.pki.bundle(self.root, self.rsa_root, name="roots")
        self.assertEqual(len(tls_pki._read_pem_certs(bundle)), 2)
        for cert in (self.leaf, self.rsa_leaf):
            untrusted = ["-untrusted", cert.intermediates] if cert.intermediates else []
            r = tls_pki.openssl("verify", "-CAfile", bundle, *untrusted, cert.cert, check=False)
            self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())

    def test_long_name(self):
        name = "x" * 60 + ".long.test"
        cert = self.pki.server_cert(self.root, [name])
        self.assertEqual(cert.subject, "CN=sluice test server,O=sluice tests")
        self.assertEqual(tls_pki.sans(cert), ["DNS:" + name])

    def test_san_entries(self):
        self.assertEqual(tls_pki._san_entries(["a.test", "*.w.test", "10.0.0.1", "::1",
                                               "DNS:x.test", "URI:spiffe://a/b"]),
                         ["DNS:a.test", "DNS:*.w.test", "IP:10.0.0.1", "IP:::1", "DNS:x.test",
                          "URI:spiffe://a/b"])
        v6 = self.pki.server_cert(self.root, ["::1"])
        self.assertEqual(tls_pki.sans(v6), ["IP:0:0:0:0:0:0:0:1"])


class OcspTest(unittest.TestCase):
    """The OCSP responses, as `openssl ocsp` reads and verifies them."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("root")
        cls.inter = cls.pki.intermediate(cls.root, "inter")
        cls.leaf = cls.pki.server_cert(cls.inter, ["a.test", "*.wild.test", "127.0.0.1"])
        cls.rsa_root = cls.pki.ca("rsa-root", key="rsa")
        cls.rsa_leaf = cls.pki.server_cert(cls.rsa_root, ["a.test"], key="rsa")

    def check(self, response, issuer, cert, root):
        """`openssl ocsp -respin`: verifies the signature and prints the status; returns the
        text (its exit status is 0 even for a response out of its time window: it warns)."""
        r = tls_pki.openssl("ocsp", "-respin", response, "-CAfile", root.cert, "-issuer",
                            issuer.cert, "-cert", cert.cert, "-no_nonce", check=False)
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("Response verify OK", out)
        text = tls_pki.openssl("ocsp", "-respin", response, "-text",
                               "-noverify").stdout.decode()
        self.assertIn("OCSP Response Status: successful (0x0)", text)
        self.assertIn("Serial Number: " + cert.serial, text)
        return out, text

    def test_good(self):
        out, text = self.check(self.pki.ocsp_response(self.inter, self.leaf), self.inter,
                               self.leaf, self.root)
        self.assertIn(": good", out)
        self.assertNotIn("Status times invalid", out)
        self.assertIn("Next Update:", text)
        self.assertNotIn("OCSP Nonce", text)  # a stapled response carries none

    def test_revoked(self):
        out, text = self.check(
            self.pki.ocsp_response(self.inter, self.leaf, status="revoked",
                                   reason="keyCompromise"), self.inter, self.leaf, self.root)
        self.assertIn(": revoked", out)
        self.assertIn("Reason: keyCompromise", out)
        self.assertIn("Revocation Time:", out)

    def test_unknown(self):
        out, _ = self.check(self.pki.ocsp_response(self.inter, self.leaf, status="unknown"),
                            self.inter, self.leaf, self.root)
        self.assertIn(": unknown", out)

    def test_next_update_minutes(self):
        response = self.pki.ocsp_response(self.inter, self.leaf, next_update_minutes=90)
        _, text = self.check(response, self.inter, self.leaf, self.root)
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep and key in ("This Update", "Next Update"):
                fields[key] = datetime.datetime.strptime(value, "%b %d %H:%M:%S %Y GMT")
        self.assertEqual(fields["Next Update"] - fields["This Update"],
                         datetime.timedelta(minutes=90))

    def test_without_signer_certificate(self):
        response = self.pki.ocsp_response(self.inter, self.leaf, include_certs=False)
        text = tls_pki.openssl("ocsp", "-respin", response, "-text",
                               "-noverify").stdout.decode()
        self.assertNotIn("BEGIN CERTIFICATE", text)
        with_certs = tls_pki.openssl("ocsp", "-respin", self.pki.ocsp_response(
            self.inter, self.leaf), "-text", "-noverify").stdout.decode()
        self.assertIn("BEGIN CERTIFICATE", with_certs)
        # The issuer signed it: -VAfile names the signer the response no longer carries.
        r = tls_pki.openssl("ocsp", "-respin", response, "-VAfile", self.inter.cert, "-issuer",
                            self.inter.cert, "-cert", self.leaf.cert, "-no_nonce", check=False)
        self.assertIn("Response verify OK", (r.stdout + r.stderr).decode())

    def test_no_next_update(self):
        _, text = self.check(self.pki.ocsp_response(self.inter, self.leaf,
                                                    next_update_days=None),
                             self.inter, self.leaf, self.root)
        self.assertNotIn("Next Update:", text)

    def test_expired_is_signed_and_out_of_date(self):
        # Re-timed and signed again: the signature still verifies, the times do not.
        for issuer, cert, root in ((self.inter, self.leaf, self.root),
                                   (self.rsa_root, self.rsa_leaf, self.rsa_root)):
            response = self.pki.ocsp_response(issuer, cert, expired=True)
            out, text = self.check(response, issuer, cert, root)
            self.assertIn("Status times invalid", out)
            self.assertIn("status expired", out)
            self.assertIn(": WARNING", out)
            self.assertIn("good", out)

    def test_explicit_times(self):
        this = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        nxt = datetime.datetime(2030, 1, 9, 3, 4, 5, tzinfo=datetime.timezone.utc)
        response = self.pki.ocsp_response(self.inter, self.leaf, this_update=this,
                                          next_update=nxt)
        out, text = self.check(response, self.inter, self.leaf, self.root)
        self.assertIn("Produced At: Jan  2 03:04:05 2030 GMT", text)
        self.assertIn("This Update: Jan  2 03:04:05 2030 GMT", text)
        self.assertIn("Next Update: Jan  9 03:04:05 2030 GMT", text)
        self.assertIn("Status times invalid", out)  # not yet valid

    def test_delegated_signer(self):
        signer = self.pki.ocsp_signer(self.inter)
        self.assertIn("OCSP Signing", x509_text(signer.cert))
        for expired in (False, True):
            response = self.pki.ocsp_response(self.inter, self.leaf, signer=signer,
                                              expired=expired)
            out, text = self.check(response, self.inter, self.leaf, self.root)
            self.assertIn("Responder Id: O = sluice tests, CN = inter OCSP responder", text)
            self.assertEqual("Status times invalid" in out, expired)

    def test_retime_rejects_garbage(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "bad.der")
            with open(path, "wb") as f:
                f.write(b"\x30\x03\x0a\x01\x00")  # OCSPResponse without responseBytes
            with self.assertRaises(ValueError):
                tls_pki._retime_ocsp(path, self.inter.key, datetime.datetime.now(
                    datetime.timezone.utc), None)


class SClientParseTest(unittest.TestCase):
    """The parser on s_client output whose shape a live server cannot be made to produce on
    demand (data split by s_client's own messages)."""

    HEAD = ("CONNECTED(00000003)\n---\nCertificate chain\n---\nServer certificate\n"
            "subject=CN = x\n---\nNew, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-SHA\n"
            "ALPN protocol: h2\nSSL-Session:\n    Protocol  : TLSv1.2\n"
            "    Verify return code: 0 (ok)\n---\n")

    def test_data_without_noise(self):
        ticket = ("---\nPost-Handshake New Session Ticket arrived:\nSSL-Session:\n"
                  "    Protocol  : TLSv1.3\n---\n")
        out = self.HEAD + "HTTP/1.1 200 OK\r\n" + "read R BLOCK\n" + ticket + "body\nclosed\n"
        r = tls_pki.SClientResult(out, "", 0)
        self.assertEqual(r.data, b"HTTP/1.1 200 OK\r\nbody\n")
        # The cipher's version ("TLSv1.2" here, TLSv1.0 for a CBC-SHA cipher) is not the
        # connection's: the SSL-Session block says.
        self.assertEqual(r.protocol, "TLSv1.2")
        self.assertEqual(r.alpn, "h2")
        self.assertFalse(r.reused)
        self.assertTrue(r.ok)

    def test_data_cannot_fake_handshake_lines(self):
        out = self.HEAD + "ALPN protocol: evil\nReused, TLSv1.3, Cipher is X\n"
        r = tls_pki.SClientResult(out, "", 0)
        self.assertEqual(r.alpn, "h2")
        self.assertFalse(r.reused)
        self.assertEqual(r.data, b"ALPN protocol: evil\nReused, TLSv1.3, Cipher is X\n")

    def test_failed_handshake(self):
        out = ("CONNECTED(00000003)\n---\nno peer certificate available\n---\n"
               "New, (NONE), Cipher is (NONE)\nSSL-Session:\n    Protocol  : TLSv1.1\n---\n")
        err = ("4087:error:0A000438:SSL routines:ssl3_read_bytes:tlsv1 alert protocol version:"
               "../ssl/record/rec_layer_s3.c:1601:SSL alert number 70\n")
        r = tls_pki.SClientResult(out, err, 1)
        self.assertFalse(r.ok)
        self.assertIsNone(r.protocol)  # the session's Protocol line is what was attempted
        self.assertEqual(r.alert, "tlsv1 alert protocol version")
        self.assertEqual(r.alert_number, 70)
        self.assertEqual(r.errors, ["tlsv1 alert protocol version"])


class SServerTestCase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("root")
        cls.inter = cls.pki.intermediate(cls.root, "inter")
        cls.leaf = cls.pki.server_cert(cls.inter, ["a.test", "*.wild.test", "127.0.0.1"])
        cls.client = cls.pki.client_cert(cls.inter, "alice",
                                         sans=["URI:spiffe://sluice.test/alice"])
        cls.tmp = tempfile.mkdtemp(prefix="sluice-pki-test-")

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def server(self, cert=None, **kw):
        srv = tls_pki.SServer(cert or self.leaf, **kw)
        self.addCleanup(srv.close)
        self._servers = getattr(self, "_servers", []) + [srv]
        return srv

    def run(self, result=None):
        # On a failure, what the servers printed.
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        try:
            return super().run(result)
        finally:
            if len(result.failures) + len(result.errors) > before:
                for s in getattr(self, "_servers", []):
                    sys.stderr.write("\n%s\n" % s.output())

    def assertHandshake(self, r, ok=True):
        self.assertEqual(r.ok, ok, r.describe())
        self.assertFalse(r.timed_out, r.describe())


class VerificationTest(SServerTestCase):
    """SANs, wildcards, IP addresses, and the ways verification fails."""

    def connect(self, srv, name, **kw):
        return tls_pki.s_client(srv.port, servername=name, cafile=self.root,
                                verify_hostname=name, verify_return_error=True, **kw)

    def test_names_that_match(self):
        srv = self.server()
        for name in ("a.test", "x.wild.test", "other.wild.test"):
            r = self.connect(srv, name)
            self.assertHandshake(r)
            self.assertEqual(r.verify_code, 0, r.describe())
            self.assertEqual(r.verification, "OK")
            self.assertEqual(r.peer_subject, "CN=a.test,O=sluice tests")
            self.assertEqual(r.peer_issuer, "CN=inter,O=sluice tests")
            self.assertEqual(r.peer_sans, ["DNS:a.test", "DNS:*.wild.test", "IP:127.0.0.1"])
            self.assertEqual(r.peer_fingerprint, tls_pki.fingerprint_sha256(self.leaf))
            self.assertEqual(len(r.peer_chain), 2)  # leaf + intermediate, not the root
            self.assertEqual(tls_pki.fingerprint_sha256(r.peer_chain[1]),
                             tls_pki.fingerprint_sha256(self.inter))
            self.assertEqual(r.protocol, "TLSv1.3")
            self.assertEqual(r.peer_signature_type, "ECDSA")
            self.assertEqual(r.peer_public_key_bits, 256)
        self.assertEqual(self.connect(srv, "x.wild.test").verified_peername, "*.wild.test")

    def test_ip_address(self):
        srv = self.server()
        r = tls_pki.s_client(srv.port, cafile=self.root, verify_ip="127.0.0.1",
                             verify_return_error=True)
        self.assertHandshake(r)
        r = tls_pki.s_client(srv.port, cafile=self.root, verify_ip="127.0.0.2",
                             verify_return_error=True)
        self.assertHandshake(r, ok=False)
        self.assertEqual(r.verify_code, 64, r.describe())  # IP address mismatch

    def test_names_that_do_not_match(self):
        srv = self.server()
        # A wildcard covers exactly one label: not the bare domain, not two labels.
        for name in ("b.test", "wild.test", "a.b.wild.test", "a.test.evil"):
            r = self.connect(srv, name)
            self.assertHandshake(r, ok=False)
            self.assertEqual(r.verify_code, 62, r.describe())  # hostname mismatch
            self.assertIn("certificate verify failed", r.errors)
        # Without -verify_return_error the failure is only reported.
        r = tls_pki.s_client(srv.port, servername="b.test", cafile=self.root,
                             verify_hostname="b.test")
        self.assertHandshake(r)
        self.assertEqual(r.verify_code, 62)
        self.assertEqual(r.verification, "hostname mismatch")

    def test_tls12_failure(self):
        # TLS 1.2 fails before a cipher is agreed; TLS 1.3 (above) after.
        srv = self.server()
        r = self.connect(srv, "b.test", tls_version="1.2")
        self.assertHandshake(r, ok=False)
        self.assertIsNone(r.cipher)

    def test_unknown_root(self):
        srv = self.server()
        other = self.pki.ca("other-root")
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=other,
                             verify_hostname="a.test", verify_return_error=True)
        self.assertHandshake(r, ok=False)
        self.assertEqual(r.verify_code, 20, r.describe())  # unable to get local issuer

    def test_expired(self):
        expired = self.pki.server_cert(self.inter, ["a.test"], expired=True)
        srv = self.server(expired)
        r = self.connect(srv, "a.test")
        self.assertHandshake(r, ok=False)
        self.assertEqual(r.verify_code, 10, r.describe())  # certificate has expired
        self.assertEqual(r.verification, "certificate has expired")

    def test_rsa_server(self):
        rsa_root = self.pki.ca("rsa-root", key="rsa")
        rsa_leaf = self.pki.server_cert(rsa_root, ["a.test"], key="rsa")
        srv = self.server(rsa_leaf)
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=rsa_root,
                             verify_hostname="a.test", verify_return_error=True)
        self.assertHandshake(r)
        self.assertEqual(r.peer_signature_type, "RSA-PSS")
        self.assertEqual(r.peer_public_key_bits, 2048)
        # TLS 1.2 with RSA key exchange needs keyEncipherment.
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=rsa_root,
                             verify_return_error=True, tls_version="1.2",
                             extra=["-cipher", "AES128-GCM-SHA256"])
        self.assertHandshake(r)
        self.assertEqual(r.cipher, "AES128-GCM-SHA256")

    @unittest.skipUnless(harness.have_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6(self):
        v6 = self.pki.server_cert(self.inter, ["::1"])
        srv = self.server(v6, host="::1")
        r = tls_pki.s_client(srv.port, host="::1", cafile=self.root, verify_ip="::1",
                             verify_return_error=True)
        self.assertHandshake(r)


class HandshakeFeaturesTest(SServerTestCase):
    """OCSP stapling, client certificates, resumption, versions, ALPN, early data, app data."""

    def test_ocsp_stapling(self):
        for status in ("good", "revoked"):
            response = self.pki.ocsp_response(self.inter, self.leaf, status=status)
            srv = self.server(status_file=response)
            r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, status=True,
                                 verify_return_error=True)
            self.assertHandshake(r)
            self.assertTrue(r.ocsp_stapled, r.describe())
            self.assertEqual(r.ocsp_response_status, "successful")
            self.assertEqual(r.ocsp_cert_status, status)
            self.assertIn("Serial Number: " + self.leaf.serial, r.ocsp_text)
            # The responder's certificate printed with the response is not the peer's.
            self.assertEqual(r.peer_fingerprint, tls_pki.fingerprint_sha256(self.leaf))
            # Not asked for: not sent (and not reported).
            r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root)
            self.assertHandshake(r)
            self.assertIsNone(r.ocsp_stapled)

    def test_ocsp_stapling_expired(self):
        response = self.pki.ocsp_response(self.inter, self.leaf, expired=True)
        srv = self.server(status_file=response)
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, status=True)
        self.assertHandshake(r)
        self.assertTrue(r.ocsp_stapled)
        next_update = datetime.datetime.strptime(r.ocsp_next_update, "%b %d %H:%M:%S %Y GMT")
        self.assertLess(next_update.replace(tzinfo=datetime.timezone.utc),
                        datetime.datetime.now(datetime.timezone.utc))

    def test_no_staple(self):
        srv = self.server()
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, status=True)
        self.assertHandshake(r)
        self.assertIs(r.ocsp_stapled, False, r.describe())

    def test_client_certificate(self):
        srv = self.server(verify="require", client_ca=self.root)
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, cert=self.client,
                             request=GET)
        self.assertHandshake(r)
        self.assertEqual(r.client_ca_names, ["O = sluice tests, CN = root"])
        # The -www page shows the certificate the server got: the one sent.
        page = r.data.decode("latin-1")
        self.assertTrue(page.startswith("HTTP/1.0 200 ok\r\n"), r.describe())
        self.assertIn("Client certificate", page)
        pems = tls_pki.SClientResult._pems(page.split("\n"))
        self.assertEqual([tls_pki.fingerprint_sha256(p) for p in pems],
                         [tls_pki.fingerprint_sha256(self.client)])

    def test_client_certificate_missing_tls13(self):
        srv = self.server(verify="require", client_ca=self.root)
        # In TLS 1.3 the server refuses after the client's Finished: the client sees the alert
        # on its first read.
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, request=GET)
        self.assertEqual(r.alert, "tlsv13 alert certificate required", r.describe())
        self.assertEqual(r.alert_number, 116)
        self.assertEqual(r.data, b"")

    def test_client_certificate_missing_tls12(self):
        srv = self.server(verify="require", client_ca=self.root)
        r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, tls_version="1.2")
        self.assertHandshake(r, ok=False)
        self.assertIsNotNone(r.alert, r.describe())

    def test_client_certificate_wrong_eku_or_ca(self):
        srv = self.server(verify="require", client_ca=self.root)
        server_only = self.pki.client_cert(self.inter, "mallory", eku="serverAuth")
        other = self.pki.client_cert(self.pki.ca("other-root"), "eve")
        for cert, alert in ((server_only, "unsupported certificate"),
                            (other, "unknown ca")):
            r = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root, cert=cert,
                                 request=GET, tls_version="1.2")
            self.assertHandshake(r, ok=False)
            self.assertIn(alert, r.alert or "", r.describe())

    def test_session_resumption(self):
        srv = self.server()
        for version in ("1.2", "1.3"):
            sess = os.path.join(self.tmp, "session-%s.pem" % version)
            first = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root,
                                     tls_version=version, sess_out=sess)
            self.assertHandshake(first)
            self.assertFalse(first.reused)
            self.assertTrue(os.path.getsize(sess) > 0, first.describe())
            again = tls_pki.s_client(srv.port, servername="a.test", cafile=self.root,
                                     tls_version=version, sess_in=sess, request=GET)
            self.assertHandshake(again)
            self.assertTrue(again.reused, again.describe())
            self.assertEqual(again.protocol, "TLSv1." + version[-1])
            self.assertIn(b"\nReused, TLSv1.", again.data)  # the server agrees

    def test_tls11_refused(self):
        # The client can do TLS 1.1 (security level lowered), so the refusal is the server's.
        legacy = self.server(tls_version="1.1")
        r = tls_pki.s_client(legacy.port, servername="a.test", tls_version="1.1")
        self.assertHandshake(r)
        self.assertEqual(r.protocol, "TLSv1.1")
        srv = self.server()
        r = tls_pki.s_client(srv.port, servername="a.test", tls_version="1.1")
        self.assertHandshake(r, ok=False)
        self.assertIsNone(r.protocol)
        self.assertIsNotNone(r.alert, r.describe())
        for version in ("1.2", "1.3"):
            r = tls_pki.s_client(srv.port, servername="a.test", tls_version=version)
            self.assertHandshake(r)
            self.assertEqual(r.protocol, "TLSv" + version)

    def test_alpn(self):
        srv = self.server(alpn="h2,http/1.1")
        r = tls_pki.s_client(srv.port, servername="a.test", alpn=["h2", "http/1.1"])
        self.assertHandshake(r)
        self.assertEqual(r.alpn, "h2")
        r = tls_pki.s_client(srv.port, servername="a.test", alpn="http/1.1")
        self.assertEqual(r.alpn, "http/1.1")
        r = tls_pki.s_client(srv.port, servername="a.test")
        self.assertHandshake(r)
        self.assertIsNone(r.alpn)
        # OpenSSL's s_server ends the handshake when no protocol is shared.
        r = tls_pki.s_client(srv.port, servername="a.test", alpn="foo")
        self.assertHandshake(r, ok=False)
        self.assertEqual(r.alert, "tlsv1 alert no application protocol")

    def test_early_data(self):
        srv = self.server(mode=None, early_data=True)
        sess = os.path.join(self.tmp, "early.pem")
        early = os.path.join(self.tmp, "early.txt")
        with open(early, "wb") as f:
            f.write(b"hello early\n")
        r = tls_pki.s_client(srv.port, servername="a.test", sess_out=sess)
        self.assertHandshake(r)
        self.assertEqual(r.early_data, "not sent")
        r = tls_pki.s_client(srv.port, servername="a.test", sess_in=sess, early_data_file=early)
        self.assertHandshake(r)
        self.assertTrue(r.reused)
        self.assertEqual(r.early_data, "accepted", r.describe())
        # OpenSSL's server takes a ticket's early data once (anti-replay).
        r = tls_pki.s_client(srv.port, servername="a.test", sess_in=sess, early_data_file=early)
        self.assertEqual(r.early_data, "rejected", r.describe())
        srv.close()
        self.assertIn("Early data received:\nhello early\n", srv.output())

    def test_application_data(self):
        srv = self.server(mode="rev")
        # -rev answers each line reversed, and closes on "CLOSE".
        r = tls_pki.s_client(srv.port, servername="a.test", request=b"abc\nxyz\nCLOSE\n")
        self.assertHandshake(r)
        self.assertEqual(r.data, b"cba\nzyx\n", r.describe())

    def test_timeout_keeps_output(self):
        srv = self.server(mode="rev")
        # Without "CLOSE" the server keeps the connection: s_client (-ign_eof with a request)
        # runs into the timeout and is killed; what it printed is kept (it runs unbuffered).
        r = tls_pki.s_client(srv.port, servername="a.test", request=b"abc\n", timeout=5)
        self.assertTrue(r.timed_out)
        self.assertTrue(r.ok, r.describe())
        self.assertEqual(r.data, b"cba\n", r.describe())

    def test_application_data_www(self):
        srv = self.server()
        r = tls_pki.s_client(srv.port, servername="a.test", request=GET)
        self.assertHandshake(r)
        self.assertTrue(r.data.startswith(b"HTTP/1.0 200 ok\r\n"), r.describe())
        self.assertTrue(r.data.endswith(b"</HTML>\r\n\r\n"), r.describe())
        self.assertNotIn(b"read R BLOCK", r.data)
        self.assertNotIn(b"Post-Handshake", r.data)
        self.assertNotIn(b"closed\n", r.data[-20:])


class CurlTest(SServerTestCase):

    def test_get(self):
        srv = self.server()
        r = tls_pki.curl_https(srv.port, "/", host="x.wild.test", cafile=self.root)
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertEqual(r.status, 200)
        self.assertEqual(r.http_version, "1")  # s_server -www answers HTTP/1.0
        self.assertEqual(r.header("content-type"), "text/html")
        self.assertIn(b"no client certificate available", r.body)
        self.assertEqual(r.ssl_verify_result, 0)

    def test_wrong_name_and_root(self):
        srv = self.server()
        r = tls_pki.curl_https(srv.port, "/", host="b.test", cafile=self.root)
        self.assertEqual(r.returncode, 60, r.describe())
        self.assertEqual(r.status, 0)
        self.assertIsNone(r.http_version)
        r = tls_pki.curl_https(srv.port, "/", host="a.test", cafile=self.pki.ca("other-root"))
        self.assertEqual(r.returncode, 60, r.describe())
        r = tls_pki.curl_https(srv.port, "/", host="b.test", insecure=True)
        self.assertEqual(r.status, 200, r.describe())

    def test_client_cert_and_alpn(self):
        srv = self.server(verify="require", client_ca=self.root, alpn="http/1.1")
        r = tls_pki.curl_https(srv.port, "/", host="a.test", cafile=self.root, cert=self.client,
                               http2=True)
        self.assertEqual(r.status, 200, r.describe())
        pems = tls_pki.SClientResult._pems(r.body.decode("latin-1").split("\n"))
        self.assertEqual([tls_pki.fingerprint_sha256(p) for p in pems],
                         [tls_pki.fingerprint_sha256(self.client)])
        r = tls_pki.curl_https(srv.port, "/", host="a.test", cafile=self.root)
        self.assertNotEqual(r.returncode, 0, r.describe())
        srv.close()
        # --http2 offers h2 first; this server takes only http/1.1.
        self.assertIn("ALPN protocols advertised by the client: h2, http/1.1", srv.output())


class SServerTest(unittest.TestCase):

    def test_exits_early(self):
        pki = tls_pki.shared_pki()
        leaf = pki.server_cert(pki.ca("root"), ["a.test"])
        with self.assertRaises(tls_pki.OpensslError) as e:
            tls_pki.SServer(leaf, extra=["-no-such-option"])
        self.assertIn("no-such-option", str(e.exception))


if __name__ == "__main__":
    harness.main()
