"""Selecting and running the cases, h2spec's report, and the command line (h2spec.py's)."""

import argparse
import json
import sys
import time

from .cases_generic import GENERIC
from .cases_hpack import HPACK
from .cases_http2 import HTTP2
from .core import (DEFAULT_MAX_HEADER_LEN, DEFAULT_TIMEOUT, PROFILES, Config, Result, Skipped,
                   TestError)
from .verifier import SpecConn


# h2spec's three specs, in its order.
SPECS = [GENERIC, HTTP2, HPACK]


# ------------------------------------------------------------------------------------------------
# Selecting and running


def all_cases(strict=False):
    """Every case in h2spec's order (the strict one only with strict=True)."""
    return [tc for spec in SPECS for tc in spec.walk() if strict or not tc.strict]


def selected(case_id, sections):
    """Whether h2spec would run the case for these section arguments ("http2",
    "http2/6.5" (and its subsections), "http2/6.5.3/2", ...); none selects everything."""
    if not sections:
        return True
    key, section, _ = case_id.split("/")
    for s in sections:
        s = s.strip("/")
        if s == case_id or s == key:
            return True
        parts = s.split("/")
        if len(parts) == 2 and parts[0] == key and (
                section == parts[1] or section.startswith(parts[1] + ".")):
            return True
    return False


def run_case(tc, config):
    conn = SpecConn(config)
    start = time.monotonic()
    try:
        try:
            conn.connect()
        except Exception as e:  # noqa: BLE001 - a failed case, with the reason
            return Result(tc, "failed", "Error: connect: %s: %s" % (type(e).__name__, e),
                          time.monotonic() - start, conn.trace)
        try:
            tc.run(config, conn)
        except TestError as e:
            return Result(tc, "failed", "Expected: %s; Actual: %s" % (" | ".join(e.expected),
                                                                       e.actual),
                          time.monotonic() - start, conn.trace, e.expected, e.actual)
        except Skipped as e:
            return Result(tc, "skipped", str(e), time.monotonic() - start, conn.trace)
        except Exception as e:  # noqa: BLE001 - h2spec reports any other error as a failure
            message = str(e) if str(e).startswith("Error:") else "Error: %s" % e
            return Result(tc, "failed", message, time.monotonic() - start, conn.trace)
        return Result(tc, "passed", "", time.monotonic() - start, conn.trace)
    finally:
        conn.close()


def run(config, out=None):
    """Runs the selected cases against config's server; returns the list of Result. With `out`
    (a text stream), prints h2spec's report as it goes."""
    results = []
    for spec in SPECS:
        printed = set()
        for tc in spec.walk():
            if tc.strict and not config.strict:
                continue
            if not selected(tc.id, config.sections):
                continue
            result = run_case(tc, config)
            results.append(result)
            if out is not None:
                _print_headings(tc.group, printed, out)
                _print_result(result, out, config.verbose)
    return results


def _print_headings(group, printed, out):
    chain = []
    g = group
    while g is not None:
        chain.append(g)
        g = g.parent
    for g in reversed(chain):
        if g.id not in printed:
            printed.add(g.id)
            out.write("%s%s\n" % ("  " * g.level, g.title))


def _print_result(result, out, verbose=False):
    indent = "  " * (result.case.group.level + 1)
    mark = {"passed": "\u2714", "failed": "\u00d7", "skipped": "-"}[result.status]
    out.write("%s%s %d: %s\n" % (indent, mark, result.case.seq, result.case.desc))
    if result.failed or result.skipped:
        _print_reason(result, indent + "  ", out)
    if verbose or result.failed:
        if verbose and result.trace:
            for line in result.trace:
                out.write("%s     %s\n" % (indent, line))
    out.flush()


def _print_reason(result, indent, out):
    if result.skipped:
        out.write("%s(skipped: %s)\n" % (indent, result.reason))
        return
    out.write("%s-> %s\n" % (indent, result.case.requirement))
    if result.expected is not None:
        label = "Expected: "
        for i, e in enumerate(result.expected):
            out.write("%s   %s%s\n" % (indent, label if i == 0 else " " * len(label), e))
        out.write("%s     Actual: %s\n" % (indent, result.actual))
    else:
        out.write("%s   %s\n" % (indent, result.reason))


def summary(results):
    passed = sum(r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    failed = sum(r.failed for r in results)
    return "%d tests, %d passed, %d skipped, %d failed" % (len(results), passed, skipped, failed)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="h2spec's conformance cases for HTTP/2 servers (RFC 9113, RFC 7541).")
    parser.add_argument("sections", nargs="*",
                        help="run only these: 'http2', 'http2/6.5', 'generic/3.1/2', ...")
    parser.add_argument("--host", "-H", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=None)
    parser.add_argument("--path", "-P", default="/")
    parser.add_argument("--tls", "-t", action="store_true", help="connect over TLS (ALPN h2)")
    parser.add_argument("--timeout", "-o", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for each frame (default %(default)s)")
    parser.add_argument("-k", "--insecure", action="store_true",
                        help="do not verify the server certificate (the default here)")
    parser.add_argument("--verify", action="store_true",
                        help="verify the server certificate (with --cafile)")
    parser.add_argument("--cafile", default=None)
    parser.add_argument("--sni", default=None, help="TLS server name (default: --host)")
    parser.add_argument("--max-header-length", type=int, default=DEFAULT_MAX_HEADER_LEN)
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="like a section argument; may be repeated")
    parser.add_argument("--strict", "-S", action="store_true",
                        help="also run the strict case(s)")
    parser.add_argument("--profile", choices=PROFILES, default="master",
                        help="h2spec's master branch (default) or its v2.6.0 release verdicts")
    parser.add_argument("--reset-is-close", action="store_true",
                        help="count a TCP reset as a connection close (h2spec does not)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every frame")
    parser.add_argument("--dryrun", action="store_true", help="list the cases only")
    args = parser.parse_args(argv)

    config = Config(host=args.host, port=args.port, tls=args.tls, path=args.path,
                    timeout=args.timeout, max_header_len=args.max_header_length,
                    insecure=not args.verify, server_name=args.sni, cafile=args.cafile,
                    strict=args.strict, reset_is_close=args.reset_is_close,
                    sections=args.sections + args.only, verbose=args.verbose,
                    profile=args.profile)
    if args.dryrun:
        for tc in all_cases(args.strict):
            if selected(tc.id, config.sections):
                print("%s: %s%s" % (tc.id, tc.desc, " (strict)" if tc.strict else ""))
        return 0

    start = time.monotonic()
    results = run(config, out=sys.stdout)
    elapsed = time.monotonic() - start
    failed = [r for r in results if r.failed]
    if failed:
        print("\nFailures:")
        for r in failed:
            print("  %s: %s" % (r.id, r.case.desc))
            _print_reason(r, "    ", sys.stdout)
    print("\nFinished in %.4f seconds" % elapsed)
    print(summary(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": {"host": config.host, "port": config.port, "tls": config.tls,
                                  "path": config.path}, "profile": config.profile,
                       "elapsed": round(elapsed, 3), "summary": summary(results),
                       "results": [r.to_dict() for r in results]}, f, indent=2)
    return 1 if failed else 0

