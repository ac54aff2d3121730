"""A throwaway PKI and TLS clients for sluice's TLS integration tests.

Nothing secret is committed: every key, certificate and OCSP response is made at test run time, in
a directory of the test's choosing, by Debian's `openssl` command (a separate process; sluice
itself links BoringSSL). Python 3 standard library only.

The PKI:

    pki = tls_pki.shared_pki()                      # one per process, removed at exit
    root = pki.ca("root")                           # ECDSA P-256 (key="rsa": RSA 2048)
    inter = pki.intermediate(root, "inter")
    leaf = pki.server_cert(inter, ["a.test", "*.wild.test", "127.0.0.1"])
    leaf.chain, leaf.key, root.cert                 # paths: leaf + intermediates, its key, trust
    der = pki.ocsp_response(inter, leaf)            # a DER OCSP response for stapling
    client = pki.client_cert(root, "alice")

Every method is memoized on its arguments, so the tests of a run share one key and one
certificate for one set of arguments (key generation is the slow part).

The peers: s_client() runs `openssl s_client` once, non-interactively, and parses what it printed
(SClientResult); curl_https() runs curl with --resolve to 127.0.0.1; SServer runs
`openssl s_server` on a port the kernel picks.

Validity periods: `openssl x509` of OpenSSL 3.0 has no -not_before (only later releases do), so
every certificate, the roots included (`openssl ca -selfsign`), is issued by `openssl ca`, whose
-startdate/-enddate set both ends; each CA keeps the minimal database `openssl ca` needs.
An OCSP response's times come from the clock of `openssl ocsp` (thisUpdate = now, nextUpdate =
now + -ndays/-nmin, neither negative), so a response with other times (expired, or made in the
past) is the one `openssl ocsp` made with its ResponseData re-encoded with those times and signed
again by the responder's key (`openssl dgst -sign`): see _retime_ocsp().

What OpenSSL 3.0's tools do that a test must know (each is handled or checked here):
- s_client -brief prints neither ALPN, nor Reused/New, nor OCSP, nor early data: the full output
  is parsed. Its "New, TLSv1.0, Cipher is X" names the cipher's version, not the connection's.
- s_client prints the cipher even when the handshake failed (TLS 1.3 agrees on it before the
  certificates; a TLS 1.2 client that sent its Finished has it too): -state's "error in" says.
- TLS 1.3: a server's refusal of the client certificate reaches the client after its handshake
  is done, on its first read; session tickets arrive after the handshake (see wait_session).
- A client at the default security level cannot do TLS 1.0/1.1 at all (SHA-1 signatures): a test
  that a server refuses TLS 1.1 must lower the client's level (tls_version="1.1" does).
- s_server -cert takes only the first certificate of the file (-cert_chain for the rest); without
  -verify_return_error it accepts any client certificate that it can read; an ALPN offer it shares
  nothing with ends the handshake (no_application_protocol); its TLS 1.3 early data is taken once
  per ticket; -quiet hides the "ACCEPT" line that tells its port.
"""

import atexit
import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time

OPENSSL = os.environ.get("SLUICE_OPENSSL", "/usr/bin/openssl")
CURL = os.environ.get("SLUICE_CURL", "curl")
# Bounds every openssl/curl run that is not given its own timeout.
TOOL_TIMEOUT = 60.0

# How far before "now" a certificate that should be valid starts: the machine that verifies it may
# read a clock a little behind the one that made it.
BACKDATE = datetime.timedelta(hours=1)
# How long ago an expired certificate stopped being valid, and how long it was valid before.
EXPIRED_AGO = datetime.timedelta(days=1)
EXPIRED_LIFETIME = datetime.timedelta(days=30)


class OpensslError(RuntimeError):
    pass


def _run(args, input=None, timeout=TOOL_TIMEOUT, check=True):
    """Runs a tool to completion; bytes stdout/stderr. Raises OpensslError (with its output) when
    it fails and check is set."""
    r = subprocess.run(args, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise OpensslError("%s exited with %d\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))
    return r


def openssl(*args, input=None, timeout=TOOL_TIMEOUT, check=True):
    """Runs `openssl ARGS`; returns the CompletedProcess (bytes)."""
    return _run([OPENSSL] + [str(a) for a in args], input=input, timeout=timeout, check=check)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _asn1_time(t):
    """YYYYMMDDHHMMSSZ: what `openssl ca -startdate/-enddate` accept (they encode it as UTCTime
    before 2050, as RFC 5280 wants) and what an OCSP GeneralizedTime holds."""
    return t.astimezone(datetime.timezone.utc).strftime("%Y%m%d%H%M%SZ")


def _index_time(t):
    """A time in an `openssl ca` index (expiry, revocation): UTCTime (YYMMDDHHMMSSZ) before 2050,
    as `openssl ca` writes it; the revocation field must be UTCTime."""
    t = t.astimezone(datetime.timezone.utc)
    return t.strftime("%y%m%d%H%M%SZ" if t.year < 2050 else "%Y%m%d%H%M%SZ")


def _write(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
    return path


def _read_pem_certs(path):
    """The PEM certificate blocks of a file, in order (text, with their BEGIN/END lines)."""
    with open(path) as f:
        text = f.read()
    out, begin = [], "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    pos = 0
    while True:
        i = text.find(begin, pos)
        if i < 0:
            return out
        j = text.find(end, i)
        if j < 0:
            raise ValueError("%s: unterminated PEM certificate" % path)
        out.append(text[i:j + len(end)] + "\n")
        pos = j + len(end)


def _pem_to_der(pem):
    body = pem.split("-----", 3)[2] if pem.startswith("-----") else pem
    body = body.split("-----END", 1)[0]
    return base64.b64decode("".join(body.split()))


def _cert_path(cert):
    """A Cert/Ca object or a path → the path of its (first) PEM certificate."""
    return cert.cert if hasattr(cert, "cert") else cert


# ------------------------------------------------------------------------------------------------
# Certificate inspection (for assertions about what a peer presented)


def fingerprint_sha256(cert):
    """The SHA-256 of the certificate's DER, lowercase hex without separators (the form Envoy's
    x-forwarded-client-cert Hash= uses). `cert`: a Cert/Ca, a PEM path, or PEM text."""
    if isinstance(cert, str) and "-----BEGIN CERTIFICATE-----" in cert:
        pem = cert
    else:
        pems = _read_pem_certs(_cert_path(cert))
        if not pems:
            raise ValueError("%s holds no PEM certificate" % _cert_path(cert))
        pem = pems[0]
    return hashlib.sha256(_pem_to_der(pem)).hexdigest()


def _x509_text(cert, *args):
    if isinstance(cert, str) and "-----BEGIN CERTIFICATE-----" in cert:
        r = openssl("x509", "-noout", *args, input=cert.encode())
    else:
        r = openssl("x509", "-noout", "-in", _cert_path(cert), *args)
    return r.stdout.decode()


def subject(cert, nameopt="RFC2253"):
    """The subject as `openssl x509 -subject -nameopt NAMEOPT` prints it, without "subject=":
    RFC2253 (the default) is "CN=leaf,O=sluice tests" (most specific first, as Envoy's
    x-forwarded-client-cert Subject=), "oneline" is "CN = leaf, O = ..." (most general first)."""
    out = _x509_text(cert, "-subject", "-nameopt", nameopt).strip()
    return out[len("subject="):].strip() if out.startswith("subject=") else out


def issuer(cert, nameopt="RFC2253"):
    out = _x509_text(cert, "-issuer", "-nameopt", nameopt).strip()
    return out[len("issuer="):].strip() if out.startswith("issuer=") else out


def parse_san_text(text):
    """The names of `openssl x509 -ext subjectAltName` output: ["DNS:a.test", "IP:127.0.0.1"]
    (openssl prints "IP Address:"; it is shortened to the form -addext/-subjectAltName take)."""
    names = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "Subject Alternative Name" in line:
            for l in lines[i + 1:]:
                if not l.startswith(" "):
                    break
                for part in l.strip().split(", "):
                    part = part.strip()
                    if part.startswith("IP Address:"):
                        part = "IP:" + part[len("IP Address:"):]
                    if part:
                        names.append(part)
            break
    return names


def sans(cert):
    """The subjectAltName entries of a certificate: ["DNS:a.test", "IP:127.0.0.1", ...]."""
    return parse_san_text(_x509_text(cert, "-ext", "subjectAltName"))


def serial_hex(cert):
    """The serial number, uppercase hex, as `openssl x509 -serial` and an OCSP index print it."""
    out = _x509_text(cert, "-serial").strip()
    return out.split("=", 1)[1]


# ------------------------------------------------------------------------------------------------
# The PKI


class Ca:
    """A certificate authority: .cert/.key (PEM paths), .parent (None for a root), .dir (its
    `openssl ca` database)."""

    def __init__(self, name, directory, cert, key, key_type, parent):
        self.name, self.dir, self.cert, self.key = name, directory, cert, key
        self.key_type, self.parent = key_type, parent
        self.config = os.path.join(directory, "ca.cnf")

    @property
    def root(self):
        ca = self
        while ca.parent is not None:
            ca = ca.parent
        return ca

    def intermediates(self):
        """The certificates a peer sends after a leaf this CA issued: this CA and its parents up
        to, without, the root (empty for a root)."""
        out, ca = [], self
        while ca.parent is not None:
            out.append(ca.cert)
            ca = ca.parent
        return out

    def __repr__(self):
        return "Ca(%r)" % self.name


class Cert:
    """A leaf: .cert (PEM), .key (PEM, unencrypted), .chain (leaf + intermediates, what a server
    or a client presents), .intermediates (the intermediates alone, for `s_server -cert_chain`;
    None when the root issued the leaf), .fullchain (the chain + the root), .ca (the issuing
    Ca), .root, .name (the CN), .names (the SAN entries it was made with, "DNS:..."/"IP:..."),
    .key_type, .serial (uppercase hex), .not_before and .not_after (aware datetimes), .subject
    (RFC 2253: "CN=a.test,O=sluice tests")."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def root(self):
        return self.ca.root

    def __repr__(self):
        return "Cert(%r)" % self.name


# The minimal `openssl ca` configuration of one CA. Its own file, never the system's openssl.cnf,
# so that nothing of the machine's configuration (default extensions, policies) leaks in.
_CA_CONFIG = """\
[ca]
default_ca = this_ca

[this_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
email_in_dn = no

[any_name]
commonName = optional
organizationName = optional
organizationalUnitName = optional

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused
"""


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _san_entries(names):
    """["a.test", "*.w.test", "127.0.0.1", "::1", "DNS:x", "IP:y", "URI:spiffe://..."] →
    ["DNS:a.test", ..., "IP:127.0.0.1", ...]: a bare name is an IP address when it parses as one."""
    out = []
    for n in names:
        kind, sep, rest = n.partition(":")
        if sep and kind in ("DNS", "IP", "URI", "email", "RID", "dirName", "otherName"):
            out.append(n)
        elif _is_ip(n):
            out.append("IP:" + n)
        else:
            out.append("DNS:" + n)
    return out


def _subject_arg(cn, org="sluice tests"):
    def esc(v):
        return v.replace("\\", "\\\\").replace("/", "\\/").replace("+", "\\+")
    # Most general first, so that RFC 2253 (most specific first) reads "CN=...,O=...".
    return ("/O=" + esc(org) if org else "") + "/CN=" + esc(cn)


class Pki:
    """A PKI in `directory` (created if missing). Every method is memoized on its arguments
    (thread-safe): asking twice for the same certificate returns the same files."""

    def __init__(self, directory):
        self.dir = os.path.abspath(directory)
        os.makedirs(self.dir, exist_ok=True)
        self._memo = {}
        self._lock = threading.RLock()

    # -- plumbing --

    def _memoized(self, key, make):
        with self._lock:
            if key not in self._memo:
                self._memo[key] = make()
            return self._memo[key]

    def _new_dir(self, name):
        """A fresh subdirectory named after `name` (made file-system safe; unique even when
        another process used the same Pki directory before)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
        return tempfile.mkdtemp(prefix=safe + "-", dir=self.dir)

    @staticmethod
    def _genkey(path, key):
        """key: "ec" (P-256), "ec:P-384", "rsa" (2048), "rsa:3072", "ed25519"."""
        kind, _, param = key.partition(":")
        if kind == "ec":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:" + (param or "P-256"), "-out", path)
        elif kind == "rsa":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:" + (param or "2048"), "-out", path)
        elif kind == "ed25519":
            openssl("genpkey", "-algorithm", "ED25519", "-out", path)
        else:
            raise ValueError("unknown key type %r (ec, ec:CURVE, rsa, rsa:BITS, ed25519)" % key)
        os.chmod(path, 0o600)
        return path

    @staticmethod
    def _init_ca_db(d):
        os.makedirs(os.path.join(d, "issued"))
        _write(os.path.join(d, "index.txt"), "")
        _write(os.path.join(d, "index.txt.attr"), "unique_subject = no\n")
        # A random first serial: two runs' CAs share names, and a client that caches anything by
        # (issuer, serial) must not mix them. First byte 0x10..0x7f: positive, no leading zero.
        first = "%02X" % (0x10 + secrets.randbelow(0x70)) + secrets.token_hex(11).upper()
        _write(os.path.join(d, "serial"), first + "\n")
        config = os.path.join(d, "ca.cnf")
        _write(config, _CA_CONFIG.format(dir=d))
        return config

    def _issue(self, signer_config, signer_cert, signer_key, csr, out, extensions, not_before,
               not_after, selfsign=False):
        ext_file = out + ".ext.cnf"
        _write(ext_file, "[ext]\n" + "".join("%s = %s\n" % kv for kv in extensions))
        args = ["ca", "-batch", "-config", signer_config, "-keyfile", signer_key, "-in", csr,
                "-out", out, "-notext", "-preserveDN", "-md", "sha256",
                "-startdate", _asn1_time(not_before), "-enddate", _asn1_time(not_after),
                "-extfile", ext_file, "-extensions", "ext"]
        args += ["-selfsign"] if selfsign else ["-cert", signer_cert]
        openssl(*args)

    def _csr(self, d, key_path, subj, config):
        csr = os.path.join(d, "req.csr")
        openssl("req", "-new", "-config", config, "-key", key_path, "-subj", subj, "-out", csr)
        return csr

    @staticmethod
    def _validity(days, expired=False, not_before_past=False, not_yet_valid=False):
        now = _utcnow()
        if expired:
            not_after = now - EXPIRED_AGO
            return not_after - EXPIRED_LIFETIME, not_after
        if not_yet_valid:
            not_before = now + datetime.timedelta(days=1)
        elif not_before_past:
            not_before = now - datetime.timedelta(days=30)
        else:
            not_before = now - BACKDATE
        return not_before, not_before + datetime.timedelta(days=days)

    # -- CAs --

    def ca(self, name, key="ec", days=3650):
        """A self-signed root CA (basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign).
        key: "ec" (P-256, the default) or "rsa" (2048); see _genkey for more."""
        return self._memoized(("ca", name, key, days), lambda: self._make_ca(name, key, days, None))

    def intermediate(self, ca, name, key="ec", days=3650):
        """A CA that `ca` issued (pathlen 0: it issues leaves only)."""
        return self._memoized(("intermediate", ca.cert, name, key, days),
                              lambda: self._make_ca(name, key, days, ca))

    def _make_ca(self, name, key, days, parent):
        d = self._new_dir("ca-" + name)
        config = self._init_ca_db(d)
        key_path = self._genkey(os.path.join(d, "ca.key"), key)
        cert = os.path.join(d, "ca.pem")
        csr = self._csr(d, key_path, _subject_arg(name), config)
        not_before, not_after = self._validity(days)
        ext = [("basicConstraints", "critical,CA:TRUE" + (",pathlen:0" if parent else "")),
               ("keyUsage", "critical,keyCertSign,cRLSign"),
               ("subjectKeyIdentifier", "hash")]
        if parent is None:
            self._issue(config, None, key_path, csr, cert, ext, not_before, not_after,
                        selfsign=True)
        else:
            ext.append(("authorityKeyIdentifier", "keyid:always"))
            self._issue(parent.config, parent.cert, parent.key, csr, cert, ext, not_before,
                        not_after)
        return Ca(name, d, cert, key_path, key, parent)

    # -- leaves --

    def server_cert(self, ca, names, key="ec", days=365, not_before_past=False, expired=False,
                    not_yet_valid=False, cn=None, extensions=()):
        """A server certificate from `ca` for `names` (subjectAltName; "a.test", "*.wild.test",
        "127.0.0.1", "::1", or prefixed "DNS:"/"IP:"), CN = cn or the first name.

        Extensions: basicConstraints CA:FALSE, extendedKeyUsage serverAuth, keyUsage
        digitalSignature (ECDSA/Ed25519) or digitalSignature+keyEncipherment (RSA: TLS 1.2's RSA
        key exchange needs it), subject and authority key identifiers.

        Validity: from an hour ago for `days`; not_before_past: from 30 days ago for `days`;
        expired: ended a day ago (after 30 days); not_yet_valid: starts tomorrow.
        extensions: more (name, value) pairs, e.g. ("authorityInfoAccess", "OCSP;URI:http://...")."""
        names = tuple(names)
        extensions = tuple(extensions)
        if cn is None:
            # A CN holds at most 64 characters (RFC 5280's ub-common-name).
            cn = names[0] if names and len(names[0]) <= 64 else "sluice test server"
        return self._memoized(
            ("server", ca.cert, names, key, days, not_before_past, expired, not_yet_valid, cn,
             extensions),
            lambda: self._make_leaf(ca, cn, names, key, "serverAuth",
                                    self._validity(days, expired, not_before_past,
                                                   not_yet_valid), extensions))

    def client_cert(self, ca, cn, sans=(), key="ec", days=365, expired=False, eku="clientAuth"):
        """A client certificate from `ca`: CN = cn, the given subjectAltNames (may be empty; e.g.
        ["URI:spiffe://sluice.test/alice", "DNS:alice.test"]), extendedKeyUsage clientAuth
        (eku=None: no EKU; "serverAuth": a certificate a server must refuse as a client's)."""
        sans = tuple(sans)
        return self._memoized(
            ("client", ca.cert, cn, sans, key, days, expired, eku),
            lambda: self._make_leaf(ca, cn, sans, key, eku, self._validity(days, expired)))

    def ocsp_signer(self, ca, key="ec", days=365):
        """A delegated OCSP responder certificate from `ca` (extendedKeyUsage OCSPSigning)."""
        return self._memoized(
            ("ocsp_signer", ca.cert, key, days),
            lambda: self._make_leaf(ca, ca.name + " OCSP responder", (), key, "OCSPSigning",
                                    self._validity(days)))

    def _make_leaf(self, ca, cn, names, key, eku, validity, extensions=()):
        d = self._new_dir(cn)
        key_path = self._genkey(os.path.join(d, "key.pem"), key)
        csr = self._csr(d, key_path, _subject_arg(cn), ca.config)
        cert = os.path.join(d, "cert.pem")
        rsa = key.partition(":")[0] == "rsa"
        ext = [("basicConstraints", "critical,CA:FALSE"),
               ("keyUsage", "critical,digitalSignature" + (",keyEncipherment" if rsa else "")),
               ("subjectKeyIdentifier", "hash"),
               ("authorityKeyIdentifier", "keyid")]
        if eku:
            ext.append(("extendedKeyUsage", eku))
        entries = _san_entries(names)
        if entries:
            ext.append(("subjectAltName", ",".join(entries)))
        ext.extend(extensions)
        not_before, not_after = validity
        self._issue(ca.config, ca.cert, ca.key, csr, cert, ext, not_before, not_after)
        chain = _write(os.path.join(d, "chain.pem"),
                       "".join(_read_pem_certs(p)[0] for p in [cert] + ca.intermediates()))
        inters = ca.intermediates()
        intermediates = (_write(os.path.join(d, "intermediates.pem"),
                                "".join(_read_pem_certs(p)[0] for p in inters))
                         if inters else None)
        fullchain = _write(os.path.join(d, "fullchain.pem"),
                           "".join(_read_pem_certs(p)[0]
                                   for p in [cert] + ca.intermediates() + [ca.root.cert]))
        return Cert(name=cn, dir=d, cert=cert, key=key_path, chain=chain, fullchain=fullchain,
                    intermediates=intermediates,
                    ca=ca, names=entries, key_type=key, serial=serial_hex(cert),
                    not_before=not_before, not_after=not_after, subject=subject(cert))

    def bundle(self, *cas, name=None):
        """One PEM file holding the certificates of `cas` (Ca/Cert objects or paths): a trust
        store of several roots, or a chain assembled by hand."""
        paths = [_cert_path(c) for c in cas]
        key = ("bundle", tuple(paths), name)

        def make():
            d = self._new_dir(name or "bundle")
            return _write(os.path.join(d, "bundle.pem"),
                          "".join("".join(_read_pem_certs(p)) for p in paths))
        return self._memoized(key, make)

    # -- OCSP --

    def ocsp_response(self, ca, cert, status="good", next_update_days=7, expired=False,
                      signer=None, this_update=None, next_update=None, revoked_at=None,
                      reason=None, include_certs=True, next_update_minutes=None):
        """A DER OCSP response for `cert` (issued by `ca`) signed by `ca` itself, or by `signer`
        (a Cert from ocsp_signer()); returns its path.

        status: "good", "revoked" (revoked_at: an aware datetime, default a day ago; reason: e.g.
        "keyCompromise") or "unknown" (the responder does not know the serial).
        next_update_days: nextUpdate = thisUpdate + that many days (None: no nextUpdate);
        next_update_minutes: that many minutes instead (-nmin).
        expired: thisUpdate two days ago and nextUpdate a day ago (`openssl ocsp` cannot make
        one: its thisUpdate is now, and -ndays/-nmin take no negative number).
        include_certs: False leaves the signer's certificate out (-resp_no_certs).
        this_update/next_update: aware datetimes overriding openssl's (a missing one: now, and
        this_update + next_update_days); producedAt = thisUpdate.

        `openssl ocsp` makes it in index-file mode (-index, -rsigner, -rkey, -CA, -issuer, -cert,
        -respout, -ndays), from a one-line index written for this response (so that one
        certificate can have a good and a revoked response); other times than openssl's
        "now" are written into the response afterwards and signed again (see _retime_ocsp)."""
        if next_update_minutes is not None:
            next_update_days = None
        key = ("ocsp", ca.cert, _cert_path(cert), status, next_update_days, next_update_minutes,
               expired, signer.cert if signer else None, this_update, next_update, revoked_at,
               reason, include_certs)
        return self._memoized(key, lambda: self._make_ocsp(
            ca, cert, status, next_update_days, next_update_minutes, expired, signer,
            this_update, next_update, revoked_at, reason, include_certs))

    def _make_ocsp(self, ca, cert, status, next_update_days, next_update_minutes, expired,
                   signer, this_update, next_update, revoked_at, reason, include_certs):
        d = self._new_dir("ocsp-%s-%s" % (getattr(cert, "name", "cert"), status))
        cert_path = _cert_path(cert)
        serial = serial_hex(cert_path)
        subj = _x509_text(cert_path, "-subject", "-nameopt", "compat").strip()
        subj = subj[len("subject="):] if subj.startswith("subject=") else subj
        end = _x509_text(cert_path, "-enddate").strip().split("=", 1)[1]
        end = datetime.datetime.strptime(end, "%b %d %H:%M:%S %Y GMT").replace(
            tzinfo=datetime.timezone.utc)
        index = os.path.join(d, "index.txt")
        if status == "good":
            line = "V\t%s\t\t%s\tunknown\t%s\n" % (_index_time(end), serial, subj)
        elif status == "revoked":
            when = _index_time(revoked_at or _utcnow() - datetime.timedelta(days=1))
            if reason:
                when += "," + reason
            line = "R\t%s\t%s\t%s\tunknown\t%s\n" % (_index_time(end), when, serial, subj)
        elif status == "unknown":
            line = ""  # not in the index: the responder answers "unknown"
        else:
            raise ValueError("status must be good, revoked or unknown, not %r" % status)
        _write(index, line)
        _write(index + ".attr", "unique_subject = no\n")
        rsigner = signer.cert if signer else ca.cert
        rkey = signer.key if signer else ca.key
        out = os.path.join(d, "response.der")
        args = ["ocsp", "-index", index, "-rsigner", rsigner, "-rkey", rkey, "-CA", ca.cert,
                "-issuer", ca.cert, "-cert", cert_path, "-respout", out, "-no_nonce",
                "-rmd", "sha256"]
        if next_update_minutes is not None:
            args += ["-nmin", str(int(next_update_minutes))]
        elif next_update_days is not None:
            args += ["-ndays", str(int(next_update_days))]
        if not include_certs:
            args.append("-resp_no_certs")
        openssl(*args)
        if expired:
            now = _utcnow()
            this_update, next_update = (now - datetime.timedelta(days=2),
                                        now - datetime.timedelta(days=1))
        if this_update is not None or next_update is not None:
            if this_update is None:
                this_update = _utcnow()
            if next_update is None and next_update_minutes is not None:
                next_update = this_update + datetime.timedelta(minutes=next_update_minutes)
            elif next_update is None and next_update_days is not None:
                next_update = this_update + datetime.timedelta(days=next_update_days)
            _retime_ocsp(out, rkey, this_update, next_update)
        return out


# ------------------------------------------------------------------------------------------------
# Re-timing an OCSP response (a minimal DER reader/writer)


def _der_read(data, pos=0):
    """One TLV at pos → (tag byte, content start, content end). Definite lengths only (DER)."""
    tag = data[pos]
    if tag & 0x1f == 0x1f:
        raise ValueError("multi-byte tags are not used in OCSP responses")
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        n = length & 0x7f
        if n == 0 or n > 4:
            raise ValueError("bad DER length at %d" % pos)
        length = int.from_bytes(data[start:start + n], "big")
        start += n
    end = start + length
    if end > len(data):
        raise ValueError("DER element at %d runs past the end" % pos)
    return tag, start, end


def _der_children(data, start, end):
    """The TLVs inside [start, end) → list of (tag, element start, content start, end)."""
    out, pos = [], start
    while pos < end:
        tag, cstart, cend = _der_read(data, pos)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def _der(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(b)]) + b
    return head + content


_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_OID_SHA256_SIGS = (
    bytes.fromhex("2a8648ce3d040302"),        # ecdsa-with-SHA256
    bytes.fromhex("2a864886f70d01010b"),      # sha256WithRSAEncryption
)


def _retime_ocsp(path, signer_key, this_update, next_update):
    """Rewrites the DER OCSP response at `path`: producedAt and every thisUpdate become
    this_update, every nextUpdate next_update (None: removed; added where missing), and the
    ResponseData is signed again with signer_key (`openssl dgst -sha256 -sign`: a DER ECDSA
    signature or a PKCS #1 v1.5 one, what ecdsa-with-SHA256 and sha256WithRSAEncryption hold).

    OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT SEQUENCE {
        responseType OID, response OCTET STRING (BasicOCSPResponse) } }
    BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm,
        signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
    ResponseData ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, responderID, producedAt
        GeneralizedTime, responses SEQUENCE OF SingleResponse, responseExtensions [1] OPTIONAL }
    SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate GeneralizedTime,
        nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] OPTIONAL }
    """
    with open(path, "rb") as f:
        data = f.read()
    produced = _der(_GENERALIZED_TIME, _asn1_time(this_update).encode())
    this_tlv = produced
    next_tlv = (_der(0xa0, _der(_GENERALIZED_TIME, _asn1_time(next_update).encode()))
                if next_update is not None else b"")

    _, s, e = _der_read(data, 0)                                  # OCSPResponse
    status, rbytes = _der_children(data, s, e)
    rs = rbytes[2]                                                # [0] EXPLICIT
    _, s2, e2 = _der_read(data, rs)                               # ResponseBytes SEQUENCE
    rtype, rresp = _der_children(data, s2, e2)
    basic = data[rresp[2]:rresp[3]]                               # OCTET STRING content

    _, bs, be = _der_read(basic, 0)
    tbs, sigalg, sig, *certs = _der_children(basic, bs, be)
    algo_oid = _der_children(basic, sigalg[2], sigalg[3])[0]
    if basic[algo_oid[2]:algo_oid[3]] not in _OID_SHA256_SIGS:
        raise ValueError("the response is not signed with a SHA-256 signature")

    parts, seen_produced, seen_responses = [], False, False
    for (tag, el, cs, ce) in _der_children(basic, tbs[2], tbs[3]):
        if tag == _GENERALIZED_TIME and not seen_produced:         # producedAt
            parts.append(produced)
            seen_produced = True
        elif tag == _SEQUENCE and seen_produced and not seen_responses:  # responses
            seen_responses = True
            singles = []
            for (_t, _el, scs, sce) in _der_children(basic, cs, ce):
                fields = _der_children(basic, scs, sce)
                if len(fields) < 3 or fields[2][0] != _GENERALIZED_TIME:
                    raise ValueError("unexpected SingleResponse layout")
                kept = [basic[f[1]:f[3]] for f in fields[:2]]      # certID, certStatus
                exts = [basic[f[1]:f[3]] for f in fields[3:] if f[0] != 0xa0]
                singles.append(_der(_SEQUENCE, b"".join(kept + [this_tlv, next_tlv] + exts)))
            parts.append(_der(_SEQUENCE, b"".join(singles)))
        else:                                      # version, responderID, responseExtensions
            parts.append(basic[el:ce])
    if not (seen_produced and seen_responses):
        raise ValueError("unexpected ResponseData layout")
    new_tbs = _der(_SEQUENCE, b"".join(parts))

    r = openssl("dgst", "-sha256", "-sign", signer_key, input=new_tbs)
    new_sig = _der(0x03, b"\x00" + r.stdout)
    new_basic = _der(_SEQUENCE, new_tbs + basic[sigalg[1]:sigalg[3]] + new_sig +
                     b"".join(basic[c[1]:c[3]] for c in certs))
    new_rbytes = _der(_SEQUENCE, data[rtype[1]:rtype[3]] + _der(0x04, new_basic))
    new = _der(_SEQUENCE, data[status[1]:status[3]] + _der(0xa0, new_rbytes))
    _write(path, new)



# ------------------------------------------------------------------------------------------------
# One PKI per process

_shared_lock = threading.Lock()
_shared = {}


def shared_pki(directory=None):
    """The process's Pki for `directory` (memoized per path), so that every test of a run shares
    its keys and certificates. directory None: a temporary directory of its own, removed when
    the process exits (a test's own tmpdir would go with the test; this outlives it)."""
    with _shared_lock:
        key = os.path.abspath(directory) if directory else None
        if key not in _shared:
            if directory is None:
                d = tempfile.mkdtemp(prefix="sluice-pki-")
                atexit.register(shutil.rmtree, d, True)
            else:
                d = directory
            _shared[key] = Pki(d)
        return _shared[key]


def example_certs(dest):
    """The certificates configs/ refers to (as certs/NAME), made into `dest` (created if needed):
    ca.crt (the root that verifies them all), api.example.com.ecdsa, wild.example.com.ecdsa and
    .rsa (*.example.com), default.ecdsa — each NAME.crt (leaf + intermediates) and NAME.key.
    Returns `dest`. Made by the process's shared Pki, so repeated calls are cheap."""
    pki = shared_pki()
    root = pki.ca("example-root")
    made = {
        "api.example.com.ecdsa": pki.server_cert(root, ["api.example.com"], key="ec"),
        "wild.example.com.ecdsa": pki.server_cert(root, ["*.example.com", "example.com"],
                                                  key="ec"),
        "wild.example.com.rsa": pki.server_cert(root, ["*.example.com", "example.com"],
                                                key="rsa"),
        "default.ecdsa": pki.server_cert(root, ["default.test", "localhost", "127.0.0.1"],
                                         key="ec"),
    }
    os.makedirs(dest, exist_ok=True)
    shutil.copyfile(root.cert, os.path.join(dest, "ca.crt"))
    for name, cert in made.items():
        shutil.copyfile(cert.chain, os.path.join(dest, name + ".crt"))
        shutil.copyfile(cert.key, os.path.join(dest, name + ".key"))
        os.chmod(os.path.join(dest, name + ".key"), 0o600)
    return dest


# ------------------------------------------------------------------------------------------------
# openssl s_client, run once and parsed

# -tls1, -tls1_1, ...: exactly one version.
_TLS_VERSION_FLAGS = {"1": "-tls1", "1.0": "-tls1", "1.1": "-tls1_1", "1.2": "-tls1_2",
                      "1.3": "-tls1_3"}
# OpenSSL 3.0 at its default security level refuses TLS 1.0/1.1 itself (their handshake
# signatures use SHA-1/MD5): without this the client fails on its own ("legacy sigalg disallowed
# or unsupported", or sends nothing it could agree on), and a test that a *server* refuses
# TLS 1.1 would pass against any server.
LEGACY_CIPHERS = "DEFAULT@SECLEVEL=0"

# How often a file another process should write is looked at (no inotify in the stdlib).
_POLL_INTERVAL = 0.02

_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_PEM_END = "-----END CERTIFICATE-----"


def _tls_version_args(tls_version):
    if tls_version is None:
        return []
    v = str(tls_version)
    if v not in _TLS_VERSION_FLAGS:
        raise ValueError("tls_version must be one of %s, not %r" % (sorted(_TLS_VERSION_FLAGS), v))
    args = [_TLS_VERSION_FLAGS[v]]
    if v in ("1", "1.0", "1.1"):
        args += ["-cipher", LEGACY_CIPHERS]
    return args


def _unbuffered(args):
    """openssl's stdout is C stdio, block-buffered into a pipe or file: output is lost when it is
    killed after a timeout, and arrives late while it runs. stdbuf (coreutils) unbuffers it."""
    stdbuf = shutil.which("stdbuf")
    return [stdbuf, "-o0", "-e0"] + args if stdbuf else args


class SClientResult:
    """What one `openssl s_client` run printed, parsed. Fields (None when not printed):

    ok              the handshake completed, as far as the client knows: in TLS 1.3 a server
                    that refuses the client's certificate says so after the client's Finished,
                    seen only on the first read (send a request: .alert is then set)
    returncode, timed_out, stdout (str), stderr (str), args
    protocol        "TLSv1.3", "TLSv1.2", ... (the SSL-Session Protocol line: the "New, TLSv1.0,
                    Cipher is ..." line names the cipher's version, not the connection's)
    cipher          e.g. "TLS_AES_256_GCM_SHA384"
    reused          True for "Reused, ...", False for "New, ..."
    alpn            the protocol ALPN agreed, None for "No ALPN negotiated"
    verify_code     the "Verify return code" (0 = ok); verify_message its text ("ok")
    verification    "OK" or the "Verification error:" text; verified_peername
    peer_chain      the PEM certificates the server sent, leaf first
    peer_cert       the leaf's PEM; peer_subject / peer_issuer (RFC 2253), peer_sans
                    (["DNS:a.test", "IP:127.0.0.1"]), peer_fingerprint (sha256, lowercase hex)
    peer_signature_type  "ECDSA", "RSA-PSS", ...; peer_public_key_bits; server_temp_key
    client_ca_names the "Acceptable client certificate CA names" (a server asking for a cert)
    ocsp_requested  -status was given; ocsp_stapled: a response was stapled;
    ocsp_response_status ("successful"), ocsp_cert_status ("good", "revoked", "unknown"),
    ocsp_this_update, ocsp_next_update (as printed), ocsp_text (the whole printed response)
    early_data      "accepted", "rejected" or "not sent"
    alert, alert_number  an alert the peer sent ("tlsv13 alert certificate required", 116)
    alerts_received, alerts_sent  every alert, as -state prints it ("fatal:bad certificate",
                    "warning:close notify"; OpenSSL 3.0 names TLS 1.3's 116 "unknown")
    errors          the reasons of OpenSSL's error lines ("certificate verify failed", ...)
    data            the bytes the server sent after the handshake (s_client's own messages --
                    session tickets, "read R BLOCK", a final "closed" -- taken out)
    """

    def __init__(self, stdout, stderr, returncode, timed_out=False, args=None, status=False):
        self.stdout, self.stderr, self.returncode = stdout, stderr, returncode
        self.timed_out, self.args, self.ocsp_requested = timed_out, args, status
        for f in ("protocol", "cipher", "reused", "alpn", "verify_code", "verify_message",
                  "verification", "verified_peername", "peer_cert", "peer_subject", "peer_issuer",
                  "peer_sans", "peer_fingerprint", "peer_signature_type", "peer_public_key_bits",
                  "server_temp_key", "ocsp_stapled", "ocsp_response_status", "ocsp_cert_status",
                  "ocsp_this_update", "ocsp_next_update", "ocsp_text", "early_data", "alert",
                  "alert_number"):
            setattr(self, f, None)
        self.peer_chain, self.client_ca_names, self.errors = [], [], []
        self.alerts_received, self.alerts_sent = [], []
        self.data = b""
        self.ok = False
        self._parse()

    def __repr__(self):
        return ("SClientResult(ok=%r, protocol=%r, cipher=%r, alpn=%r, reused=%r, verify=%r, "
                "peer=%r, ocsp=%r/%r, early_data=%r, alert=%r, rc=%r%s)" % (
                    self.ok, self.protocol, self.cipher, self.alpn, self.reused, self.verify_code,
                    self.peer_subject, self.ocsp_stapled, self.ocsp_cert_status, self.early_data,
                    self.alert, self.returncode, ", timed out" if self.timed_out else ""))

    def describe(self):
        """Everything, for an assertion's message."""
        return "%r\n$ %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self, " ".join(self.args or []), self.stdout, self.stderr)

    # -- parsing --

    def _parse(self):
        text = self.stdout
        lines = text.split("\n")
        # The summary ("New, TLSv1.3, Cipher is ...") and the first "---" after it close what
        # s_client prints about the handshake; the server's data follows. Only the part before
        # is searched for s_client's own lines, so that the data cannot fake one.
        summary = None
        for i, line in enumerate(lines):
            if line.startswith("New, ") or line.startswith("Reused, "):
                summary = i
                break
        head_end = len(lines)
        if summary is not None:
            for j in range(summary + 1, len(lines)):
                if lines[j] == "---":
                    head_end = j + 1
                    break
        head = lines[:head_end]
        self._parse_stderr()
        self._parse_ocsp(head)
        self._parse_chain(head)
        for line in head:
            if line.startswith("ALPN protocol: "):
                self.alpn = line[len("ALPN protocol: "):].strip()
            elif line.startswith("Early data was "):
                self.early_data = line[len("Early data was "):].strip()
            elif line.startswith("Verify return code: "):
                rest = line[len("Verify return code: "):]
                code, _, msg = rest.partition(" ")
                try:
                    self.verify_code = int(code)
                except ValueError:
                    pass
                self.verify_message = msg.strip().strip("()")
            elif line.startswith("Verification: "):
                self.verification = line[len("Verification: "):].strip()
            elif line.startswith("Verification error: "):
                self.verification = line[len("Verification error: "):].strip()
            elif line.startswith("Verified peername: "):
                self.verified_peername = line[len("Verified peername: "):].strip()
            elif line.startswith("Peer signature type: "):
                self.peer_signature_type = line[len("Peer signature type: "):].strip()
            elif line.startswith("Server Temp Key: "):
                self.server_temp_key = line[len("Server Temp Key: "):].strip()
            elif line.startswith("Server public key is ") and line.endswith(" bit"):
                try:
                    self.peer_public_key_bits = int(line.split()[4])
                except (IndexError, ValueError):
                    pass
        if summary is not None:
            kind, _, rest = lines[summary].partition(", ")
            version, _, cipher = rest.partition(", Cipher is ")
            self.reused = kind == "Reused"
            cipher = cipher.strip()
            if cipher and cipher != "(NONE)":
                self.cipher = cipher
                # A cipher printed is no handshake done: TLS 1.3 agrees on it in the
                # ServerHello, before the certificates, and a TLS 1.2 client that sent its
                # Finished prints it too when the server then refuses it. -state's "error in"
                # says the handshake failed; "no peer certificate available" that the client
                # refused the server's certificate.
                self.ok = ("CONNECTED(" in text and
                           "no peer certificate available" not in head and
                           not self._handshake_error)
                if version == "TLSv1.3":
                    self.protocol = version
                else:
                    for line in lines[summary + 1:head_end]:
                        if line.startswith("    Protocol  : "):
                            self.protocol = line.split(":", 1)[1].strip()
                            break
        self._parse_data(lines[head_end:] if summary is not None else [])

    def _parse_ocsp(self, head):
        for i, line in enumerate(head):
            if not line.startswith("OCSP response:"):
                continue
            if "no response sent" in line:
                self.ocsp_stapled = False
                return
            self.ocsp_stapled = True
            block = []
            for l in head[i + 1:]:
                if l.startswith("=====") and block:
                    break
                if not l.startswith("====="):
                    block.append(l)
            self.ocsp_text = "\n".join(block)
            for l in block:
                s = l.strip()
                if s.startswith("OCSP Response Status: "):
                    self.ocsp_response_status = s.split(": ", 1)[1].split(" (")[0]
                elif s.startswith("Cert Status: ") and self.ocsp_cert_status is None:
                    self.ocsp_cert_status = s.split(": ", 1)[1]
                elif s.startswith("This Update: ") and self.ocsp_this_update is None:
                    self.ocsp_this_update = s.split(": ", 1)[1]
                elif s.startswith("Next Update: ") and self.ocsp_next_update is None:
                    self.ocsp_next_update = s.split(": ", 1)[1]
            return

    @staticmethod
    def _pems(section):
        out, cur = [], None
        for l in section:
            if l.strip() == _PEM_BEGIN:
                cur = [_PEM_BEGIN]
            elif cur is not None:
                cur.append(l.strip())
                if l.strip() == _PEM_END:
                    out.append("\n".join(cur) + "\n")
                    cur = None
        return out

    def _section(self, head, title):
        """The lines after the line `title` up to the next "---"."""
        for i, line in enumerate(head):
            if line == title:
                out = []
                for l in head[i + 1:]:
                    if l == "---":
                        break
                    out.append(l)
                return out
        return None

    def _parse_chain(self, head):
        # With -showcerts every certificate is in "Certificate chain"; without, only the leaf is,
        # under "Server certificate". (An OCSP response printed above may hold PEM certificates
        # too -- its signer's --, so "the first PEM of the output" is not the leaf.)
        chain = self._section(head, "Certificate chain") or []
        self.peer_chain = self._pems(chain)
        if not self.peer_chain:
            self.peer_chain = self._pems(self._section(head, "Server certificate") or [])
        if self.peer_chain:
            self.peer_cert = self.peer_chain[0]
            self.peer_fingerprint = fingerprint_sha256(self.peer_cert)
            out = openssl("x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253", "-ext",
                          "subjectAltName", input=self.peer_cert.encode()).stdout.decode()
            for l in out.splitlines():
                if l.startswith("subject="):
                    self.peer_subject = l[len("subject="):].strip()
                elif l.startswith("issuer="):
                    self.peer_issuer = l[len("issuer="):].strip()
            self.peer_sans = parse_san_text(out)
        cas = self._section(head, "Acceptable client certificate CA names") or []
        for l in cas:
            if l.startswith(("Requested Signature Algorithms", "Shared Requested Signature",
                             "Client Certificate Types", "Peer signing", "Peer signature",
                             "Server Temp Key")):
                break
            self.client_ca_names.append(l.strip())

    def _parse_stderr(self):
        self._handshake_error = False
        for line in self.stderr.splitlines():
            # -state: "SSL_connect:error in error" (the handshake failed),
            # "SSL3 alert read:fatal:handshake failure", "SSL3 alert write:fatal:bad certificate".
            if line.startswith(("SSL_connect:error in ", "SSL_connect:failed in ")):
                self._handshake_error = True
            elif line.startswith("SSL3 alert read:"):
                self.alerts_received.append(line[len("SSL3 alert read:"):])
            elif line.startswith("SSL3 alert write:"):
                self.alerts_sent.append(line[len("SSL3 alert write:"):])
            parts = line.split(":")
            if len(parts) > 5 and parts[1] == "error":
                self.errors.append(parts[5])
            if "SSL alert number " in line:
                try:
                    self.alert_number = int(line.rsplit("SSL alert number ", 1)[1].split()[0])
                except (IndexError, ValueError):
                    pass
                for p in parts:
                    if " alert " in p:
                        self.alert = p.strip()
                        break

    def _parse_data(self, lines):
        data = "\n".join(lines)
        # TLS 1.3 session tickets are printed as they arrive, between the server's bytes.
        marker = "---\nPost-Handshake New Session Ticket arrived:\n"
        while marker in data:
            i = data.index(marker)
            j = data.find("\n---\n", i + len(marker))
            data = data[:i] + (data[j + len("\n---\n"):] if j >= 0 else "")
        for noise in ("read R BLOCK\n", "read W BLOCK\n"):
            data = data.replace(noise, "")
        if data.endswith("closed\n"):  # the server closed the connection (close_notify)
            data = data[:-len("closed\n")]
        elif data.endswith("closed"):
            data = data[:-len("closed")]
        self.data = data.encode("latin-1")


def s_client(port, servername=None, alpn=None, tls_version=None, sess_out=None, sess_in=None,
             cert=None, key=None, cafile=None, status=False, early_data_file=None, extra=(),
             timeout=10, *, request=None, verify_hostname=None, verify_ip=None,
             verify_return_error=False, host="127.0.0.1", wait_session=None):
    """Runs `openssl s_client -connect HOST:PORT -showcerts` once, non-interactively; returns an
    SClientResult (it does not raise when the handshake fails: look at .ok).

    servername: SNI (None: -noservername). alpn: "h2,http/1.1" or a list. tls_version: "1.0",
    "1.1", "1.2", "1.3" (exactly that version; 1.0/1.1 also lower the client's security level so
    that it can offer them at all). cert: a Cert (its key and intermediates go with it) or a
    path with `key`. cafile: a Ca/Cert/path to verify the server with (a failed verification
    is only reported, in .verify_code, unless verify_return_error: then the handshake fails).
    verify_hostname / verify_ip: the name or address the certificate must hold (SAN, wildcards).
    status: ask for a stapled OCSP response (s_client prints it; it does not judge it).
    early_data_file: send that file as TLS 1.3 early data (with sess_in). extra: more
    s_client arguments, after these (["-groups", "P-256"], ["-cipher", "AES128-GCM-SHA256"]).
    host: where to connect ("::1" works too).

    request: bytes s_client sends once the handshake is done (it reads stdin only then), with
    -ign_eof: it then runs until the server closes the connection (send "Connection: close"),
    or `timeout` kills it (.timed_out; what it printed is kept). What the server sent back is
    .data. Without a request stdin is empty: s_client ends right after the handshake.

    sess_out: in TLS 1.3 the session ticket comes after the handshake, and s_client at the end
    of stdin does not wait for it. wait_session (default: sess_out without a request) keeps
    stdin open until sess_out has been written (polled), so the session is there to resume;
    a server that sends no ticket then runs into `timeout`.
    """
    if host and ":" in host and not host.startswith("["):
        connect = "[%s]:%d" % (host, port)
    else:
        connect = "%s:%d" % (host, port)
    # -state: the handshake's progress on stderr, the one sure sign that it failed.
    args = [OPENSSL, "s_client", "-connect", connect, "-showcerts", "-state"]
    args += ["-servername", servername] if servername else ["-noservername"]
    if alpn:
        args += ["-alpn", alpn if isinstance(alpn, str) else ",".join(alpn)]
    args += _tls_version_args(tls_version)
    if sess_out:
        args += ["-sess_out", sess_out]
        if os.path.exists(sess_out):
            os.unlink(sess_out)  # so that waiting for it does not find an old one
    if sess_in:
        args += ["-sess_in", sess_in]
    if cert is not None:
        if hasattr(cert, "key"):
            args += ["-cert", cert.cert, "-key", key or cert.key]
            if getattr(cert, "intermediates", None):
                args += ["-cert_chain", cert.intermediates]
        else:
            args += ["-cert", cert, "-key", key or cert]
    if cafile is not None:
        args += ["-CAfile", _cert_path(cafile)]
    if verify_hostname:
        args += ["-verify_hostname", verify_hostname]
    if verify_ip:
        args += ["-verify_ip", verify_ip]
    if verify_return_error:
        args.append("-verify_return_error")
    if status:
        args.append("-status")
    if early_data_file:
        args += ["-early_data", early_data_file]
    if request is not None:
        args.append("-ign_eof")
    args += [str(a) for a in extra]
    if wait_session is None:
        wait_session = bool(sess_out) and request is None

    deadline = time.monotonic() + timeout
    timed_out = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(_unbuffered(args), stdin=subprocess.PIPE, stdout=out, stderr=err)

        def feed():
            try:
                if request:
                    p.stdin.write(request)
                    p.stdin.flush()
                if wait_session:
                    while (p.poll() is None and time.monotonic() < deadline and
                           not (os.path.exists(sess_out) and os.path.getsize(sess_out) > 0)):
                        time.sleep(_POLL_INTERVAL)
            except (BrokenPipeError, OSError):
                pass
            finally:
                try:
                    p.stdin.close()
                except (BrokenPipeError, OSError):
                    pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            p.kill()
            p.wait()
        feeder.join(timeout)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("latin-1")
        stderr = err.read().decode("latin-1")
    return SClientResult(stdout, stderr, p.returncode, timed_out, args, status)



# ------------------------------------------------------------------------------------------------
# openssl s_server: a TLS peer to check the PKI and the clients against (and a TLS origin)


class SServer:
    """`openssl s_server` listening on host, on a port the kernel picks: with -accept HOST:0,
    OpenSSL 3.0 prints "ACCEPT HOST:PORT" once it listens, and that line is awaited (no port is
    guessed, nothing sleeps).

    cert: a Cert (its key and intermediates go with it). mode: "www" (-www: answers "GET /" with
    a status page naming the session and the client certificate, then closes), "rev" (echoes
    each line reversed) or None (plain: prints what it reads; needed for early_data).
    verify: "request" (-verify) or "require" (-Verify) a client certificate issued under
    client_ca (a Ca/Cert/path: trusted, and sent as the acceptable CA names), and one that
    does not verify ends the handshake (-verify_return_error). status_file: a
    DER OCSP response stapled to every handshake. alpn: the protocols it offers. tls_version:
    only that version (1.0/1.1 with the security level lowered so that they work at all).
    """

    def __init__(self, cert, mode="www", host="127.0.0.1", verify=None, client_ca=None,
                 status_file=None, alpn=None, tls_version=None, early_data=False, extra=(),
                 timeout=30.0):
        args = [OPENSSL, "s_server", "-accept", "%s:0" % (
            "[%s]" % host if ":" in host else host), "-cert", cert.cert, "-key", cert.key]
        if getattr(cert, "intermediates", None):
            args += ["-cert_chain", cert.intermediates]
        if mode == "www":
            args.append("-www")
        elif mode == "rev":
            args.append("-rev")
        elif mode is not None:
            raise ValueError("mode: www, rev or None")
        if verify is not None:
            # Without -verify_return_error s_server's verify callback accepts any certificate
            # (wrong CA, wrong EKU, expired): only a missing one fails -Verify.
            args += [{"request": "-verify", "require": "-Verify"}[verify], "5",
                     "-verify_return_error"]
        if client_ca is not None:
            args += ["-CAfile", _cert_path(client_ca)]
        if status_file:
            args += ["-status_file", status_file]
        if alpn:
            args += ["-alpn", alpn if isinstance(alpn, str) else ",".join(alpn)]
        args += _tls_version_args(tls_version)
        if early_data:
            args.append("-early_data")
        args += [str(a) for a in extra]
        self.args = args
        self._err = tempfile.TemporaryFile()
        self._err_text = None  # stderr once closed
        self._out = []
        self._out_lock = threading.Lock()
        # stdin stays open: at its end a plain s_server ends the connection it serves.
        self.proc = subprocess.Popen(_unbuffered(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err)
        try:
            self.host, self.port = host, self._await_accept(timeout)
        except BaseException:
            self.close()
            raise
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _await_accept(self, timeout):
        import selectors
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self._out_lock:
                        self._out.append(line + b"\n")
                    if line.startswith(b"ACCEPT "):
                        if buf:
                            with self._out_lock:
                                self._out.append(buf)
                        return int(line.rsplit(b":", 1)[1])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("s_server printed no ACCEPT line in %.0fs\n%s" % (
                        timeout, self.output()))
                if not sel.select(remaining):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    self.proc.wait(timeout)
                    raise OpensslError("s_server exited (%s) before listening\n%s" % (
                        self.proc.returncode, self.output()))
                buf += data

    def _drain_stdout(self):
        while True:
            try:
                data = os.read(self.proc.stdout.fileno(), 65536)
            except (OSError, ValueError):
                return
            if not data:
                return
            with self._out_lock:
                self._out.append(data)

    @property
    def address(self):
        return (self.host, self.port)

    def output(self):
        """What s_server printed so far: stdout, then stderr."""
        with self._out_lock:
            out = b"".join(self._out).decode("latin-1")
            if self._err_text is None:
                self._err.seek(0)
                err = self._err.read().decode("latin-1")
            else:
                err = self._err_text
        return "$ %s\n--- s_server stdout ---\n%s\n--- s_server stderr ---\n%s" % (
            " ".join(self.args), out, err)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TOOL_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join(TOOL_TIMEOUT)
        with self._out_lock:
            if self._err_text is None:
                self._err.seek(0)
                self._err_text = self._err.read().decode("latin-1")
                self._err.close()


# ------------------------------------------------------------------------------------------------
# curl


class CurlResult:
    """status (0 when no response), http_version ("1.1", "2"), headers (list of (name, value) of
    the last response head), header(name) (the first value, case-insensitive), body (bytes),
    ssl_verify_result (0 = verified), returncode (curl's exit code; 0 = ok), error (curl's
    message), stderr, json (curl's -w %{json}), args."""

    def header(self, name):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None

    def __repr__(self):
        return "CurlResult(status=%r, http_version=%r, rc=%r, error=%r)" % (
            self.status, self.http_version, self.returncode, self.error)

    def describe(self):
        return "%r\n$ %s\n--- headers ---\n%s\n--- body ---\n%r\n--- stderr ---\n%s" % (
            self, " ".join(self.args), "\n".join("%s: %s" % h for h in self.headers),
            self.body[:4096], self.stderr)


def curl_https(port, path="/", host="localhost", cafile=None, http2=False, cert=None, key=None,
               method=None, data=None, headers=(), insecure=False, timeout=10, extra=(),
               resolve_to="127.0.0.1"):
    """curl https://HOST:PORT/PATH with --resolve HOST:PORT:127.0.0.1 (so SNI and the verified
    name are HOST while the connection goes to loopback). http2: --http2 (ALPN h2, HTTP/1.1 if
    the server does not take it), else --http1.1. cafile: a Ca/Cert/path (required unless
    insecure). cert: a Cert (its chain and key are sent) or a path with `key`. headers: a list
    of "Name: value". Returns a CurlResult; never raises for an HTTP or TLS failure."""
    import json
    if cafile is None and not insecure:
        raise ValueError("curl_https needs a cafile (or insecure=True)")
    url = "https://%s:%d%s" % (host, port, path if path.startswith("/") else "/" + path)
    tmp = tempfile.mkdtemp(prefix="sluice-curl-")
    try:
        head_file = os.path.join(tmp, "headers")
        body_file = os.path.join(tmp, "body")
        args = [CURL, "-sS", "--max-time", str(timeout), "--resolve",
                "%s:%d:%s" % (host, port, resolve_to), "-D", head_file, "-o", body_file,
                "-w", "%{json}", "--http2" if http2 else "--http1.1"]
        if cafile is not None:
            args += ["--cacert", _cert_path(cafile)]
        if insecure:
            args.append("-k")
        if cert is not None:
            if hasattr(cert, "key"):
                args += ["--cert", cert.chain, "--key", key or cert.key]
            else:
                args += ["--cert", cert] + (["--key", key] if key else [])
        if method:
            args += ["-X", method]
        if data is not None:
            args += ["--data-binary", "@-"]
        for h in headers:
            args += ["-H", h]
        args += [str(a) for a in extra]
        args.append(url)
        r = _run(args, input=data if isinstance(data, bytes) or data is None else data.encode(),
                 timeout=timeout + 10, check=False)
        res = CurlResult()
        res.args, res.returncode = args, r.returncode
        res.stderr = r.stderr.decode(errors="replace")
        try:
            res.json = json.loads(r.stdout.decode(errors="replace") or "{}")
        except ValueError:
            res.json = {}
        res.status = int(res.json.get("http_code") or res.json.get("response_code") or 0)
        res.http_version = res.json.get("http_version")
        if res.http_version in ("", "0"):
            res.http_version = None  # no response
        res.ssl_verify_result = res.json.get("ssl_verify_result")
        res.error = res.json.get("errormsg") or (res.stderr.strip() or None
                                                 if r.returncode else None)
        res.headers = []
        if os.path.exists(head_file):
            with open(head_file, "rb") as f:
                blocks = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()]
            if blocks:
                for line in blocks[-1].split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        res.headers.append((name.strip(), value.strip()))
        res.body = b""
        if os.path.exists(body_file):
            with open(body_file, "rb") as f:
                res.body = f.read()
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # python3 test/integration/tls_pki.py --out certs: the certificates configs/ refers to.
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory to write the certificates into")
    out = example_certs(parser.parse_args().out)
    print("wrote", ", ".join(sorted(os.listdir(out))), "to", out)
