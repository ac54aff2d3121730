"""TLS policy features against real peers: client certificates (mTLS) and what is forwarded of
them (X-Forwarded-Client-Cert to a real origin), OCSP stapling, and session ticket keys from
files shared by two processes (and rotated)."""

import os
import socket
import ssl
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_pki  # noqa: E402


def tls_chain(tls_context, filters):
    return {"filterChains": [{"tlsContext": tls_context,
                              "filters": [{"httpConnectionManager": filters}]}]}


def with_tls(config, tls_context, listener="web"):
    """The config's HTTP listener `listener` with its filters moved into one TLS chain."""
    for l in config["listeners"]:
        if l["name"] == listener:
            hcm = l.pop("filters")[0]["httpConnectionManager"]
            l.update(tls_chain(tls_context, hcm))
    return config


def https_request(port, host, cafile, cert=None, request=None, timeout=harness.IO_TIMEOUT,
                  alpn=None):
    """One request over a new TLS connection with Python's ssl (OpenSSL) as the client; returns
    the parsed response. `cert`: a tls_pki.Cert to present."""
    ctx = ssl.create_default_context(cafile=cafile)
    if cert is not None:
        ctx.load_cert_chain(cert.chain, cert.key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(request or harness.http_request(headers=[("Connection", "close")]))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    parsed = harness.parse_response(data, at_eof=True)
    if parsed is None:
        raise AssertionError("no whole response in %r" % data[:200])
    return parsed[0]


class TlsFeaturesTest(harness.SluiceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tls_pki.shared_pki()
        cls.root = cls.pki.ca("features-root")
        cls.server_cert = cls.pki.server_cert(cls.root, ["mtls.test"])
        cls.client_root = cls.pki.ca("client-root")
        cls.alice = cls.pki.client_cert(cls.client_root, "alice",
                                        sans=["DNS:alice.clients.test",
                                              "URI:spiffe://test/alice"])
        cls.bob = cls.pki.client_cert(cls.client_root, "bob", sans=["DNS:bob.clients.test"])
        cls.stranger_root = cls.pki.ca("stranger-root")
        cls.mallory = cls.pki.client_cert(cls.stranger_root, "mallory")

    def tls_context(self, **extra):
        ctx = {"commonTlsContext": {
            "tlsCertificates": [{"certificateChain": {"filename": self.server_cert.chain},
                                 "privateKey": {"filename": self.server_cert.key}}]}}
        for k, v in extra.items():
            if k in ("validationContext", "tlsParams", "alpnProtocols"):
                ctx["commonTlsContext"][k] = v
            else:
                ctx[k] = v
        return ctx

    def start_routed(self, tls_context, hcm=None):
        origin = self.server_origin()
        cfg = with_tls(harness.routed_config(origin.addr[1], hcm=hcm), tls_context)
        s = self.start_sluice(cfg)
        return s, origin

    def server_origin(self):
        return self.server(harness.HttpOrigin)

    def mtls_context(self, mode="REQUIRE", **validation):
        v = {"trustedCa": {"filename": self.client_root.cert}}
        v.update(validation)
        return self.tls_context(clientCertificate=mode, validationContext=v)

    # --- mTLS ---------------------------------------------------------------------------------

    def test_required_client_certificate_is_verified_and_forwarded(self):
        s, origin = self.start_routed(self.mtls_context(),
                                      hcm={"forwardClientCertDetails": "SANITIZE_SET"})
        port = s.addr("web")[1]
        # A forged header from the client never reaches the origin.
        forged = harness.http_request(headers=[("Connection", "close"),
                                               ("X-Forwarded-Client-Cert", "Hash=forged")])
        r = https_request(port, "mtls.test", self.root.cert, cert=self.alice, request=forged)
        self.assertEqual(r.status, 200, r.raw[:300])
        headers = {k.lower(): v for k, v in origin.requests[-1][2].items()}
        xfcc = headers.get("x-forwarded-client-cert", "")
        fp = tls_pki.fingerprint_sha256(self.alice.cert)
        self.assertIn("Hash=%s" % fp, xfcc)
        self.assertNotIn("forged", xfcc)
        self.assertIn('Subject="%s"' % tls_pki.subject(self.alice.cert), xfcc)
        self.assertIn("DNS=alice.clients.test", xfcc)
        self.assertIn("URI=spiffe://test/alice", xfcc)
        self.assertEqual(headers.get("x-forwarded-proto"), "https")

        before = s.stats()
        # No certificate: refused in the handshake (TLS 1.3: the alert comes on the first read).
        with self.assertRaises((ssl.SSLError, ConnectionError, AssertionError)):
            https_request(port, "mtls.test", self.root.cert)
        # A certificate from a CA we do not trust.
        with self.assertRaises((ssl.SSLError, ConnectionError, AssertionError)):
            https_request(port, "mtls.test", self.root.cert, cert=self.mallory)
        harness.wait_until(
            lambda: harness.stats_delta(before, s.stats()).get(
                "listener.web.ssl.fail_verify_no_cert", 0) == 1 and
            harness.stats_delta(before, s.stats()).get("listener.web.ssl.fail_verify_error", 0)
            >= 1, "the refusals to be counted")
        self.assertEqual(len(origin.requests), 1, "a refused client reached the origin")

    def test_optional_client_certificate_and_sanitize(self):
        s, origin = self.start_routed(self.mtls_context("OPTIONAL"))
        port = s.addr("web")[1]
        forged = harness.http_request(headers=[("Connection", "close"),
                                               ("X-Forwarded-Client-Cert", "Hash=forged")])
        # Without a certificate: served; the forged header is removed (SANITIZE, the default).
        r = https_request(port, "mtls.test", self.root.cert, request=forged)
        self.assertEqual(r.status, 200)
        headers = {k.lower(): v for k, v in origin.requests[-1][2].items()}
        self.assertNotIn("x-forwarded-client-cert", headers)
        # With one: served, and SANITIZE forwards nothing of it either.
        r = https_request(port, "mtls.test", self.root.cert, cert=self.bob, request=forged)
        self.assertEqual(r.status, 200)
        headers = {k.lower(): v for k, v in origin.requests[-1][2].items()}
        self.assertNotIn("x-forwarded-client-cert", headers)
        # One that does not verify is refused even though a certificate is optional.
        with self.assertRaises((ssl.SSLError, ConnectionError, AssertionError)):
            https_request(port, "mtls.test", self.root.cert, cert=self.mallory)

    def test_append_forward_keeps_the_earlier_proxies(self):
        s, origin = self.start_routed(self.mtls_context(),
                                      hcm={"forwardClientCertDetails": "APPEND_FORWARD"})
        earlier = 'Hash=00;Subject="CN=edge"'
        req = harness.http_request(headers=[("Connection", "close"),
                                            ("X-Forwarded-Client-Cert", earlier)])
        r = https_request(s.addr("web")[1], "mtls.test", self.root.cert, cert=self.alice,
                          request=req)
        self.assertEqual(r.status, 200)
        xfcc = {k.lower(): v for k, v in origin.requests[-1][2].items()}["x-forwarded-client-cert"]
        self.assertTrue(xfcc.startswith(earlier + ",Hash="), xfcc)

    def test_san_and_hash_allow_lists(self):
        ctx = self.mtls_context(matchSubjectAltNames=["*.clients.test"],
                                verifyCertificateHash=[])
        ctx["commonTlsContext"]["validationContext"]["matchSubjectAltNames"] = ["alice.clients.test"]
        s = self.start_sluice(harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(ctx, {"httpFilters": [harness.direct_response_filter()]})}]))
        port = s.addr("web")[1]
        self.assertEqual(https_request(port, "mtls.test", self.root.cert, cert=self.alice).status,
                         200)
        before = s.stats()
        with self.assertRaises((ssl.SSLError, ConnectionError, AssertionError)):
            https_request(port, "mtls.test", self.root.cert, cert=self.bob)
        harness.wait_until(lambda: harness.stats_delta(before, s.stats()).get(
            "listener.web.ssl.fail_verify_san", 0) == 1, "fail_verify_san")

        # A pinned certificate: only bob's fingerprint, colons and upper case as openssl prints.
        fp = tls_pki.fingerprint_sha256(self.bob.cert).upper()
        pinned = ":".join(fp[i:i + 2] for i in range(0, len(fp), 2))
        ctx2 = self.mtls_context(verifyCertificateHash=[pinned])
        s2 = self.start_sluice(harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(ctx2, {"httpFilters": [harness.direct_response_filter()]})}]))
        port2 = s2.addr("web")[1]
        self.assertEqual(https_request(port2, "mtls.test", self.root.cert, cert=self.bob).status,
                         200)
        before = s2.stats()
        with self.assertRaises((ssl.SSLError, ConnectionError, AssertionError)):
            https_request(port2, "mtls.test", self.root.cert, cert=self.alice)
        harness.wait_until(lambda: harness.stats_delta(before, s2.stats()).get(
            "listener.web.ssl.fail_verify_cert_hash", 0) == 1, "fail_verify_cert_hash")

    def test_validation_context_without_client_certificates_is_an_error(self):
        cfg = harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(self.tls_context(validationContext={
                "trustedCa": {"filename": self.client_root.cert}}),
                {"httpFilters": [harness.direct_response_filter()]})}])
        path = harness.write_config(cfg, self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("validation_context", r.stderr)
        cfg["listeners"][0]["filterChains"][0]["tlsContext"]["clientCertificate"] = "REQUIRE"
        del cfg["listeners"][0]["filterChains"][0]["tlsContext"]["commonTlsContext"][
            "validationContext"]
        path = harness.write_config(cfg, self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("trusted_ca: required", r.stderr)

    def test_a_pinned_hash_that_is_not_sha256_hex_is_an_error(self):
        for where in ("listener", "cluster"):
            with self.subTest(where=where):
                if where == "listener":
                    cfg = harness.http_config([{
                        "name": "web", "address": {"address": "127.0.0.1", "port": 0},
                        **tls_chain(self.mtls_context(verifyCertificateHash=["AB:CD"]),
                                    {"httpFilters": [harness.direct_response_filter()]})}])
                else:
                    cfg = harness.routed_config(1)
                    cfg["clusters"][0]["tlsContext"] = {"commonTlsContext": {
                        "validationContext": {"trustedCa": {"filename": self.root.cert},
                                              "verifyCertificateHash": ["not-hex"]}}}
                path = harness.write_config(cfg, self.tmpdir)
                r = harness.run_cli(["--mode", "validate", "-c", path])
                self.assertNotEqual(r.returncode, 0)
                self.assertIn("verify_certificate_hash[0]: not a SHA-256 in hex", r.stderr)

    # --- OCSP stapling ------------------------------------------------------------------------

    def ocsp_config(self, staple, policy=None):
        ctx = {"commonTlsContext": {"tlsCertificates": [{
            "certificateChain": {"filename": self.server_cert.chain},
            "privateKey": {"filename": self.server_cert.key},
            "ocspStaple": {"filename": staple}}]}}
        if policy:
            ctx["ocspStaplePolicy"] = policy
        return harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(ctx, {"httpFilters": [harness.direct_response_filter()]})}])

    def test_ocsp_staple_is_served_while_valid(self):
        good = self.pki.ocsp_response(self.root, self.server_cert, status="good")
        s = self.start_sluice(self.ocsp_config(good))
        port = s.addr("web")[1]
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert, status=True)
        self.assertTrue(r.ok, r.describe())
        self.assertTrue(r.ocsp_stapled, r.describe())
        self.assertEqual(r.ocsp_response_status, "successful", r.describe())
        self.assertEqual(r.ocsp_cert_status, "good", r.describe())
        # A client that does not ask gets none.
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert)
        self.assertFalse(r.ocsp_stapled, r.describe())
        self.assertEqual(harness.stat(s.stats(), "listener.web.ssl.ocsp_staple_responses"), 1)

    def test_an_expired_staple_is_not_served(self):
        expired = self.pki.ocsp_response(self.root, self.server_cert, status="good", expired=True)
        s = self.start_sluice(self.ocsp_config(expired))
        r = tls_pki.s_client(s.addr("web")[1], servername="mtls.test", cafile=self.root.cert,
                             status=True)
        self.assertTrue(r.ok, r.describe())
        self.assertFalse(r.ocsp_stapled, r.describe())
        self.assertEqual(harness.stat(s.stats(), "listener.web.ssl.ocsp_staple_omitted"), 1)
        self.assertIn("has expired", s.logs())
        # STRICT_STAPLING refuses to start with it.
        path = harness.write_config(self.ocsp_config(expired, "STRICT_STAPLING"), self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ocsp_staple: the response has expired", r.stderr)

    def test_a_staple_about_another_certificate_is_an_error(self):
        other = self.pki.server_cert(self.root, ["other.test"])
        wrong = self.pki.ocsp_response(self.root, other, status="good")
        path = harness.write_config(self.ocsp_config(wrong), self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("about another certificate", r.stderr)
        garbage = os.path.join(self.tmpdir, "garbage.der")
        with open(garbage, "wb") as f:
            f.write(b"\x30\x03\x0a\x01\x00")  # a successful status and nothing else
        path = harness.write_config(self.ocsp_config(garbage), self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a valid OCSP response", r.stderr)

    # --- Upstream TLS -------------------------------------------------------------------------

    def proxy_to(self, port, tls, pool=None, name="o"):
        cfg = harness.routed_config(port, pool=pool, cluster=name)
        cfg["clusters"][0]["tlsContext"] = tls
        return self.start_sluice(cfg)

    def tls_origin(self, cert=None, **extra):
        """A sluice TLS origin (a real peer with resumption, keep-alive and counters)."""
        cert = cert or self.server_cert
        ctx = {"commonTlsContext": {"tlsCertificates": [{
            "certificateChain": {"filename": cert.chain}, "privateKey": {"filename": cert.key}}]}}
        ctx.update(extra)
        return self.start_sluice(harness.http_config([{
            "name": "origin", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(ctx, {"httpFilters": [harness.direct_response_filter(body="tls origin\n")]})
        }]))

    def get(self, proxy, path="/"):
        sock = self.client(proxy, "web")
        sock.sendall(harness.http_request(target=path))
        head, rest = harness.recv_head(sock)
        return head, rest

    def proxied(self, proxy, n=1):
        out = []
        for _ in range(n):
            sock = proxy.connect("web")
            try:
                sock.sendall(harness.http_request(headers=[("Connection", "close")]))
                data, _ = harness.recv_until_closed(sock)
            finally:
                sock.close()
            out.append(harness.parse_response(data, at_eof=True)[0])
        return out

    def test_upstream_tls_verifies_and_resumes_across_pooled_connections(self):
        origin = self.tls_origin()
        port = origin.addr("origin")[1]
        # A new upstream connection per request: the second and later resume the first's session.
        proxy = self.proxy_to(port, {"sni": "mtls.test",
                                     "commonTlsContext": {"validationContext": {
                                         "trustedCa": {"filename": self.root.cert}}}},
                              pool={"maxRequestsPerConnection": 1})
        responses = self.proxied(proxy, 4)
        for r in responses:
            self.assertEqual((r.status, r.body), (200, b"tls origin\n"))
        stats = origin.stats()
        self.assertEqual(harness.stat(stats, "listener.origin.ssl.handshake"), 4)
        self.assertGreaterEqual(harness.stat(stats, "listener.origin.ssl.session_reused"), 3)
        self.assertEqual(harness.stat(proxy.stats(), "cluster.o.ssl.handshake"), 4)

    def test_upstream_certificate_that_does_not_verify_is_a_503(self):
        origin = self.tls_origin()
        port = origin.addr("origin")[1]
        cases = {
            # Trusting another CA.
            "wrong_ca": {"sni": "mtls.test", "commonTlsContext": {"validationContext": {
                "trustedCa": {"filename": self.stranger_root.cert}}}},
            # The right CA, but the certificate does not name the server asked for.
            "wrong_name": {"sni": "other.test", "commonTlsContext": {"validationContext": {
                "trustedCa": {"filename": self.root.cert}}}},
            # The system bundle (the default) knows nothing of the test CA.
            "system_bundle": {"sni": "mtls.test"},
        }
        for name, tls in cases.items():
            with self.subTest(case=name):
                proxy = self.proxy_to(port, tls)
                r = self.proxied(proxy)[0]
                self.assertEqual(r.status, 503, r.raw[:200])
                self.assertIn("upstream_tls_failure", proxy.logs() + r.body.decode("latin-1"))
                stats = proxy.stats()
                self.assertEqual(harness.stat(stats, "cluster.o.ssl.connection_error"), 1)
                self.assertEqual(harness.stat(stats, "cluster.o.upstream_cx_connect_fail"), 1)
        # insecure_skip_verify: served (and said so at start).
        proxy = self.proxy_to(port, {"sni": "other.test", "insecureSkipVerify": True})
        self.assertEqual(self.proxied(proxy)[0].status, 200)
        self.assertIn("insecure_skip_verify", proxy.logs())

    def test_tcp_proxy_originates_tls_to_its_cluster(self):
        # Plaintext in, TLS out: the TCP proxy's upstream connection takes the cluster's
        # transport like the HTTP pool's does.
        origin = self.tls_origin()
        tls = {"sni": "mtls.test", "commonTlsContext": {"validationContext": {
            "trustedCa": {"filename": self.root.cert}}}}
        proxy = self.start_sluice(harness.tcp_proxy_config(
            [origin.addr("origin")], cluster_extra={"tlsContext": tls}))
        for _ in range(2):
            sock = proxy.connect("l")
            try:
                sock.sendall(harness.http_request(headers=[("Connection", "close")]))
                data, _ = harness.recv_until_closed(sock)
            finally:
                sock.close()
            r = harness.parse_response(data, at_eof=True)[0]
            self.assertEqual((r.status, r.body), (200, b"tls origin\n"))
        self.assertEqual(harness.stat(proxy.stats(), "cluster.c.ssl.handshake"), 2)
        self.assertEqual(harness.stat(origin.stats(), "listener.origin.ssl.session_reused"), 1)
        # A certificate that does not verify: the upstream never opens, the client is closed.
        bad = self.start_sluice(harness.tcp_proxy_config(
            [origin.addr("origin")], cluster_extra={"tlsContext": {
                "sni": "mtls.test", "commonTlsContext": {"validationContext": {
                    "trustedCa": {"filename": self.stranger_root.cert}}}}}))
        sock = bad.connect("l")
        try:
            sock.sendall(harness.http_request())
            data, _ = harness.recv_until_closed(sock)
        finally:
            sock.close()
        self.assertEqual(data, b"")
        self.assertEqual(harness.stat(bad.stats(), "cluster.c.ssl.connection_error"), 1)

    def test_connect_tunnel_originates_tls_to_its_cluster(self):
        # CONNECT ends at sluice and the tunnel goes to a TLS cluster: the client's plaintext
        # bytes travel inside sluice's TLS to the origin.
        origin = self.tls_origin()
        router = {"@type": harness.ROUTER_TYPE, "virtualHosts": [{
            "name": "v", "domains": ["*"], "routes": [
                {"match": {"connect": True},
                 "route": {"cluster": "o", "connectConfig": {}, "timeout": "5s"}}]}]}
        cfg = harness.http_config([harness.http_listener(
            "web", hcm={"upgradeTypes": ["CONNECT"]},
            filters=[{"plugin": {"filter": "router", "typedConfig": router}}])])
        cfg["clusters"] = [{"name": "o", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": origin.addr("origin")[1]}}],
            "tlsContext": {"sni": "mtls.test", "commonTlsContext": {"validationContext": {
                "trustedCa": {"filename": self.root.cert}}}}}]
        s = self.start_sluice(cfg)
        sock = s.connect("web")
        try:
            sock.sendall(b"CONNECT anything:443 HTTP/1.1\r\nHost: anything:443\r\n\r\n")
            head, rest = harness.recv_head(sock)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            sock.sendall(harness.http_request(headers=[("Connection", "close")]))
            data, _ = harness.recv_until_closed(sock)
        finally:
            sock.close()
        r = harness.parse_response(rest + data, at_eof=True)[0]
        self.assertEqual((r.status, r.body), (200, b"tls origin\n"))
        self.assertEqual(harness.stat(s.stats(), "cluster.o.ssl.handshake"), 1)

    def test_upstream_client_certificate_and_sni_to_openssl_s_server(self):
        # A peer that is not sluice: openssl s_server requiring a client certificate. Its -www
        # page names the SNI it got? It does not; it shows the client certificate it verified.
        srv = self.server(tls_pki.SServer, self.server_cert, mode="www", verify="require",
                          client_ca=self.client_root)
        proxy = self.proxy_to(srv.port, {
            "sni": "mtls.test",
            "commonTlsContext": {
                "tlsCertificates": [{"certificateChain": {"filename": self.alice.chain},
                                     "privateKey": {"filename": self.alice.key}}],
                "validationContext": {"trustedCa": {"filename": self.root.cert}}}})
        r = self.proxied(proxy)[0]
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertIn(b"alice", r.body)  # s_server's page shows the client certificate
        # Without the client certificate the upstream refuses. In TLS 1.2 the refusal ends the
        # handshake: a 503 with upstream_tls_failure. In TLS 1.3 the client's handshake is done
        # before the server has looked at its (absent) certificate (RFC 8446 4.4.2): the request
        # goes out, the alert comes back in its place — an upstream reset, a 502.
        for version, status in (("TLSv1_2", 503), ("TLSv1_3", 502)):
            with self.subTest(version=version):
                proxy2 = self.proxy_to(srv.port, {"sni": "mtls.test", "commonTlsContext": {
                    "tlsParams": {"tlsMaximumProtocolVersion": version},
                    "validationContext": {"trustedCa": {"filename": self.root.cert}}}})
                self.assertEqual(self.proxied(proxy2)[0].status, status)
                if status == 503:
                    self.assertEqual(
                        harness.stat(proxy2.stats(), "cluster.o.ssl.connection_error"), 1)

    # --- Certificate reload -------------------------------------------------------------------

    def admin_post(self, sluice, path):
        sock = sluice.connect("admin")
        try:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\n\r\n" %
                         path.encode())
            data, _ = harness.recv_until_closed(sock)
        finally:
            sock.close()
        return harness.parse_response(data, at_eof=True)[0]

    def test_certificates_reload_under_traffic_and_a_broken_file_keeps_the_old(self):
        first = self.pki.server_cert(self.root, ["mtls.test"], days=365)
        second = self.pki.server_cert(self.root, ["mtls.test"], days=364)
        chain = os.path.join(self.tmpdir, "live.crt")
        key = os.path.join(self.tmpdir, "live.key")

        def install(cert):
            # Replaced by rename, as deployment tools do: a reload never sees half a file.
            for src, dst in ((cert.chain, chain), (cert.key, key)):
                with open(src, "rb") as f:
                    data = f.read()
                with open(dst + ".new", "wb") as f:
                    f.write(data)
                os.replace(dst + ".new", dst)

        install(first)
        ctx = {"commonTlsContext": {"tlsCertificates": [{
            "certificateChain": {"filename": chain}, "privateKey": {"filename": key}}]}}
        origin = self.server_origin()
        s = self.start_sluice(with_tls(harness.routed_config(origin.addr[1]), ctx))
        port = s.addr("web")[1]
        fp = tls_pki.fingerprint_sha256
        sess = os.path.join(self.tmpdir, "before.pem")
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert, sess_out=sess)
        self.assertEqual(r.peer_fingerprint, fp(first.cert), r.describe())

        # Traffic throughout: new TLS connections, one request each; none may fail.
        import threading
        stop = threading.Event()
        failures, served = [], [0]

        def traffic():
            while not stop.is_set() and served[0] < 5000:
                try:
                    resp = https_request(port, "mtls.test", self.root.cert)
                    if resp.status != 200:
                        failures.append(resp.status)
                    served[0] += 1
                except Exception as e:  # noqa: BLE001 - every failure counts
                    failures.append(repr(e))
        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            harness.wait_until(lambda: served[0] >= 50, "traffic before the reload")
            install(second)
            s.send_signal(__import__("signal").SIGHUP)
            harness.wait_until(lambda: harness.stat(s.stats(), "server.tls_reload_success") == 1,
                               "the SIGHUP reload")
            mark = served[0]
            harness.wait_until(lambda: served[0] >= mark + 50, "traffic after the reload")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [])
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert)
        self.assertEqual(r.peer_fingerprint, fp(second.cert), r.describe())
        # A session from before the reload still resumes (ticket keys outlive the contexts).
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert, sess_in=sess)
        self.assertTrue(r.reused, r.describe())

        # A broken key: the reload fails, says why, and the chain keeps the second certificate.
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        resp = self.admin_post(s, "/certificates/reload")
        self.assertEqual(resp.status, 500, resp.raw)
        self.assertIn(b"private_key", resp.body)
        self.assertIn(b"keeps its current certificates", resp.body)
        self.assertEqual(harness.stat(s.stats(), "server.tls_reload_failure"), 1)
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert)
        self.assertEqual(r.peer_fingerprint, fp(second.cert), r.describe())
        self.assertEqual(https_request(port, "mtls.test", self.root.cert).status, 200)
        # Fixed again: the admin reload takes it.
        install(first)
        resp = self.admin_post(s, "/certificates/reload")
        self.assertEqual(resp.status, 200, resp.raw)
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert)
        self.assertEqual(r.peer_fingerprint, fp(first.cert), r.describe())

    # --- 0-RTT --------------------------------------------------------------------------------

    def test_early_data_serves_safe_requests_and_answers_425_to_others(self):
        origin = self.server_origin()
        ctx = self.tls_context(enableEarlyData=True)
        s = self.start_sluice(with_tls(harness.routed_config(origin.addr[1]), ctx))
        port = s.addr("web")[1]
        cases = (
            (b"GET /early HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200),
            (b"POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
             b"Connection: close\r\n\r\nhi", 425),
        )
        for i, (request, status) in enumerate(cases):
            with self.subTest(status=status):
                sess = os.path.join(self.tmpdir, "early-%d.pem" % i)
                r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert,
                                     sess_out=sess, tls_version="1.3")
                self.assertTrue(r.ok, r.describe())
                early = os.path.join(self.tmpdir, "early-%d.req" % i)
                with open(early, "wb") as f:
                    f.write(request)
                before = len(origin.requests)
                r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert,
                                     sess_in=sess, early_data_file=early, tls_version="1.3",
                                     request=b"")
                self.assertTrue(r.reused, r.describe())
                self.assertEqual(r.early_data, "accepted", r.describe())
                self.assertIn(b"HTTP/1.1 %d" % status, r.data, r.describe())
                if status == 200:
                    self.assertEqual(len(origin.requests), before + 1)
                    headers = {k.lower(): v for k, v in origin.requests[-1][2].items()}
                    self.assertEqual(headers.get("early-data"), "1")
                else:
                    self.assertEqual(len(origin.requests), before, "a 425 reached the origin")
        self.assertEqual(harness.stat(s.stats(), "http.web.downstream_rq_too_early"), 1)
        # After the handshake the same POST is served (and carries no Early-Data).
        r = https_request(port, "mtls.test", self.root.cert, request=cases[1][0])
        self.assertEqual(r.status, 200)
        headers = {k.lower(): v for k, v in origin.requests[-1][2].items()}
        self.assertNotIn("early-data", headers)

    def test_early_data_is_off_by_default(self):
        s = self.start_sluice(harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(self.tls_context(), {"httpFilters": [harness.direct_response_filter()]})}]))
        port = s.addr("web")[1]
        sess = os.path.join(self.tmpdir, "noearly.pem")
        tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert, sess_out=sess,
                         tls_version="1.3")
        early = os.path.join(self.tmpdir, "noearly.req")
        with open(early, "wb") as f:
            f.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        r = tls_pki.s_client(port, servername="mtls.test", cafile=self.root.cert, sess_in=sess,
                             early_data_file=early, tls_version="1.3", request=b"")
        self.assertTrue(r.reused, r.describe())
        self.assertNotEqual(r.early_data, "accepted", r.describe())

    # --- kTLS ---------------------------------------------------------------------------------

    def test_ktls_without_the_kernel_module_is_a_log_line_and_a_counter(self):
        probe = socket.socket()
        try:
            probe.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
            has_ulp = True
        except OSError as e:
            has_ulp = e.errno != 2  # ENOENT: no TLS ULP in this kernel
        finally:
            probe.close()
        s = self.start_sluice(harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(self.tls_context(enableKtls=True),
                        {"httpFilters": [harness.direct_response_filter()]})}]))
        self.assertIn("enable_ktls", s.logs())
        if not has_ulp:
            self.assertIn("no TLS ULP", s.logs())
        for _ in range(3):
            self.assertEqual(https_request(s.addr("web")[1], "mtls.test", self.root.cert).status,
                             200)
        self.assertEqual(harness.stat(s.stats(), "listener.web.ssl.ktls_unavailable"), 3)

    # --- What plugins see ---------------------------------------------------------------------

    def test_plugins_see_the_tls_session_and_the_scheme(self):
        plugin_dir = os.environ.get("SLUICE_TEST_PLUGIN_DIR", os.path.join(
            harness.repo_root(), "build", "test", "plugin", "plugins"))
        filters = {"httpFilters": [{"plugin": {"filter": "inspect", "plugin": "test_filters"}},
                                   harness.direct_response_filter()]}
        cfg = harness.http_config(
            [{"name": "web", "address": {"address": "127.0.0.1", "port": 0},
              **tls_chain(self.mtls_context("OPTIONAL"), filters)},
             harness.http_listener("plain", filters=filters["httpFilters"])],
            bootstrap_extra={"pluginDirs": [plugin_dir]})
        s = self.start_sluice(cfg)
        r = https_request(s.addr("web")[1], "mtls.test", self.root.cert, cert=self.alice,
                          alpn=["http/1.1"])
        self.assertEqual(r.status, 200, r.raw[:300])
        h = {k.lower(): v for k, v in r.headers}
        self.assertEqual(h.get("x-tls"), "1")
        self.assertEqual(h.get("x-tls-sni"), "mtls.test")
        self.assertEqual(h.get("x-tls-alpn"), "http/1.1")
        self.assertEqual(h.get("x-tls-peer"), tls_pki.subject(self.alice.cert))
        self.assertEqual(h.get("x-scheme"), "https")
        # The same filter on a plaintext listener.
        sock = s.connect("plain")
        sock.sendall(harness.http_request(headers=[("Connection", "close")]))
        data, _ = harness.recv_until_closed(sock)
        sock.close()
        h = {k.lower(): v for k, v in harness.parse_response(data, at_eof=True)[0].headers}
        self.assertEqual(h.get("x-tls"), "0")
        self.assertEqual(h.get("x-scheme"), "http")

    # --- One port, TLS and plaintext ----------------------------------------------------------

    def test_plaintext_default_chain_behind_the_inspector_serves_a_real_origin(self):
        # The inspector reads the first bytes to look for a ClientHello; on a connection that is
        # not TLS those bytes (here the request head and the start of its body) are handed to
        # the plaintext default chain, which must see them before anything else.
        origin = self.server_origin()
        router = {"@type": harness.ROUTER_TYPE, "virtualHosts": [
            {"name": "v", "domains": ["*"], "routes": [{"route": {"cluster": "o"}}]}]}
        hcm = {"httpConnectionManager": {
            "httpFilters": [{"plugin": {"filter": "router", "typedConfig": router}}]}}
        cfg = harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            "filterChains": [{"filterChainMatch": {"serverNames": ["mtls.test"]},
                              "tlsContext": self.tls_context(), "filters": [hcm]}],
            "defaultFilterChain": {"filters": [hcm]}}])
        cfg["clusters"] = [{"name": "o", "endpoints": [
            {"address": {"address": "127.0.0.1", "port": origin.addr[1]}}]}]
        s = self.start_sluice(cfg)
        body = os.urandom(100000)
        for framing in ("length", "chunked"):
            with self.subTest(framing=framing):
                if framing == "length":
                    req = harness.http_request("POST", "/up", body=body,
                                               headers=[("Connection", "close")])
                else:
                    req = harness.http_request(
                        "POST", "/up", body=harness.chunked(body[:7], body[7:]),
                        headers=[("Connection", "close"), ("Transfer-Encoding", "chunked")])
                sock = s.connect("web")
                try:
                    sock.sendall(req)
                    data, _ = harness.recv_until_closed(sock)
                finally:
                    sock.close()
                r = harness.parse_response(data, at_eof=True)[0]
                self.assertEqual(r.status, 200, r.raw[:300])
                self.assertIn(b"POST /up", r.body)
                self.assertIn(b"xfp=http ", r.body)
                self.assertIn(b"body=100000:" + body[:16], r.body)
        # TLS with the chain's name on the same port.
        r = https_request(s.addr("web")[1], "mtls.test", self.root.cert,
                          request=harness.http_request("POST", "/up", body=body,
                                                       headers=[("Connection", "close")]))
        self.assertIn(b"xfp=https ", r.body)
        self.assertIn(b"body=100000:" + body[:16], r.body)
        self.assertEqual(harness.stat(s.stats(), "listener.web.ssl.handshake"), 1)

    # --- Session ticket keys ------------------------------------------------------------------

    def ticket_config(self, key_files):
        ctx = self.tls_context(sessionTicketKeys=[{"filename": k} for k in key_files])
        return harness.http_config([{
            "name": "web", "address": {"address": "127.0.0.1", "port": 0},
            **tls_chain(ctx, {"httpFilters": [harness.direct_response_filter()]})}])

    def key_file(self, name, size=80):
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        return path

    def test_ticket_keys_from_files_resume_across_processes_and_rotate(self):
        for version in ("1.3", "1.2"):
            with self.subTest(tls=version):
                old = self.key_file("old-%s.key" % version)
                new = self.key_file("new-%s.key" % version, size=48)
                sess = os.path.join(self.tmpdir, "sess-%s.pem" % version)
                first = self.start_sluice(self.ticket_config([old]))
                r = tls_pki.s_client(first.addr("web")[1], servername="mtls.test",
                                     tls_version=version, sess_out=sess)
                self.assertTrue(r.ok and not r.reused, r.describe())
                first.kill()
                # Another process with the same key (a restart, another machine): resumed.
                second = self.start_sluice(self.ticket_config([old]))
                r = tls_pki.s_client(second.addr("web")[1], servername="mtls.test",
                                     tls_version=version, sess_in=sess)
                self.assertTrue(r.reused, r.describe())
                second.kill()
                # Rotated: a new key first, the old one kept for decryption.
                third = self.start_sluice(self.ticket_config([new, old]))
                r = tls_pki.s_client(third.addr("web")[1], servername="mtls.test",
                                     tls_version=version, sess_in=sess)
                self.assertTrue(r.reused, r.describe())
                third.kill()
                # The old key gone: a full handshake.
                fourth = self.start_sluice(self.ticket_config([new]))
                r = tls_pki.s_client(fourth.addr("web")[1], servername="mtls.test",
                                     tls_version=version, sess_in=sess)
                self.assertTrue(r.ok and not r.reused, r.describe())
                fourth.kill()

    def test_a_ticket_key_of_the_wrong_size_is_an_error(self):
        path = harness.write_config(self.ticket_config([self.key_file("bad.key", 32)]),
                                    self.tmpdir)
        r = harness.run_cli(["--mode", "validate", "-c", path])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("session_ticket_keys[0]: a ticket key is 80 bytes (or 48), got 32",
                      r.stderr)


if __name__ == "__main__":
    harness.main()
