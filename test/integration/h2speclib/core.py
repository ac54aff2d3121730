"""The core of the h2spec cases: the configuration, the outcomes (TestError, Skipped, Result),
and the registry (Group, Case and the @case decorator), with the requirements and octets that
cases of several groups share."""

DEFAULT_TIMEOUT = 2.0
# "master": h2spec's master branch (its 2022 fixes for RFC 9113 included); "v2.6.0": its last
# release, for the four cases those fixes changed (see verifier.py and H2SPEC.md).
PROFILES = ("master", "v2.6.0")
DEFAULT_MAX_HEADER_LEN = 4000
# 5.1.2/1 opens SETTINGS_MAX_CONCURRENT_STREAMS + 1 streams; a server advertising more than this
# fails the case instead of being flooded (h2spec would try them all).
MAX_STREAMS_TRIED = 10000


class Config:
    """What to test and how: the target, h2spec's options, and this port's own."""

    def __init__(self, host="127.0.0.1", port=None, tls=False, path="/", timeout=DEFAULT_TIMEOUT,
                 max_header_len=DEFAULT_MAX_HEADER_LEN, insecure=True, server_name=None,
                 cafile=None, strict=False, reset_is_close=False, sections=(), verbose=False,
                 profile="master"):
        if port is None:
            port = 443 if tls else 80
        self.host = host
        self.port = port
        self.tls = tls
        self.path = path
        self.timeout = timeout
        self.max_header_len = max_header_len
        self.insecure = insecure
        self.server_name = server_name
        self.cafile = cafile
        self.strict = strict
        self.reset_is_close = reset_is_close
        self.sections = list(sections)
        self.verbose = verbose
        if profile not in PROFILES:
            raise ValueError("profile: one of %s" % ", ".join(PROFILES))
        self.profile = profile

    @property
    def release(self):
        """The verdicts of h2spec v2.6.0, its last release, rather than its master branch."""
        return self.profile == "v2.6.0"

    @property
    def authority(self):
        default = 443 if self.tls else 80
        host = "[%s]" % self.host if ":" in self.host else self.host
        return host if self.port == default else "%s:%d" % (host, self.port)

    def common_headers(self):
        """h2spec's CommonHeaders: a GET of the target path."""
        return [[":method", "GET"], [":scheme", "https" if self.tls else "http"],
                [":path", self.path], [":authority", self.authority]]

    def dummy_headers(self, count):
        """h2spec's DummyHeaders: x-dummyN fields of max_header_len 'x'."""
        value = "x" * self.max_header_len
        return [["x-dummy%d" % i, value] for i in range(count)]


# ------------------------------------------------------------------------------------------------
# Outcomes


class TestError(Exception):
    """A failed verification: what was expected, and what came instead."""

    def __init__(self, expected, actual):
        super().__init__("expected %s; actual %s" % (" or ".join(expected), actual))
        self.expected = list(expected)
        self.actual = actual


class Skipped(Exception):
    pass


class Result:
    def __init__(self, case, status, reason="", duration=0.0, trace=None, expected=None,
                 actual=None):
        self.case = case
        self.status = status  # "passed", "failed" or "skipped"
        self.reason = reason
        self.duration = duration
        self.trace = trace or []
        self.expected = expected
        self.actual = actual

    @property
    def id(self):
        return self.case.id

    @property
    def passed(self):
        return self.status == "passed"

    @property
    def failed(self):
        return self.status == "failed"

    @property
    def skipped(self):
        return self.status == "skipped"

    def to_dict(self):
        d = {"id": self.id, "group": self.case.group.title, "description": self.case.desc,
             "requirement": self.case.requirement, "status": self.status,
             "duration": round(self.duration, 4)}
        if self.reason:
            d["reason"] = self.reason
        if self.expected is not None:
            d["expected"] = self.expected
            d["actual"] = self.actual
        if self.trace and not self.passed:
            d["trace"] = self.trace
        return d

# ------------------------------------------------------------------------------------------------
# The registry


class Group:
    def __init__(self, key, section, name, parent=None):
        self.key = key
        self.section = section
        self.name = name
        self.parent = parent
        self.cases = []
        self.groups = []
        if parent is not None:
            parent.groups.append(self)

    @property
    def id(self):
        return self.key if self.parent is None else "%s/%s" % (self.key, self.section)

    @property
    def title(self):
        return self.name if self.parent is None else "%s. %s" % (self.section, self.name)

    @property
    def level(self):
        return 0 if self.parent is None else self.section.count(".") + 1

    def walk(self):
        """The cases in h2spec's order: the group's own, then each subgroup's."""
        for case in self.cases:
            yield case
        for group in self.groups:
            yield from group.walk()


class Case:
    def __init__(self, group, desc, requirement, run, strict=False):
        self.group = group
        self.desc = desc
        self.requirement = requirement
        self.run = run
        self.strict = strict
        group.cases.append(self)
        self.seq = len(group.cases)

    @property
    def id(self):
        return "%s/%d" % (self.group.id, self.seq)

    def __repr__(self):
        return "Case(%s: %s)" % (self.id, self.desc)


def case(group, desc, requirement, strict=False):
    def register(fn):
        Case(group, desc, requirement, fn, strict)
        return fn
    return register


# Requirements that recur.
R_CONN_PROTOCOL = "The endpoint MUST respond with a connection error of type PROTOCOL_ERROR."
R_TREAT_CONN_PROTOCOL = "The endpoint MUST treat this as a connection error of type PROTOCOL_ERROR."
R_STREAM_PROTOCOL = "The endpoint MUST respond with a stream error of type PROTOCOL_ERROR."
R_TREAT_STREAM_PROTOCOL = "The endpoint MUST treat this as a stream error of type PROTOCOL_ERROR."
R_DECODING = "The endpoint MUST treat this as a decoding error."

ZERO8 = b"\x00" * 8
H2SPEC8 = b"h2spec\x00\x00"
UNKNOWN_FRAME = b"\x00\x00\x08\x16\x00\x00\x00\x00\x00" + ZERO8  # type 0x16, 8 octets


def post_headers(c):
    headers = c.common_headers()
    headers[0][1] = "POST"
    return headers

