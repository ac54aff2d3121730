#!/usr/bin/python3
"""The test cases of h2spec 2 (summerwind/h2spec), written again in Python over h2frames.

h2spec is the usual conformance suite for HTTP/2 servers (RFC 7540/9113 and RFC 7541). Its 146
default cases are here under the same identifiers ("generic/1/1", "http2/6.5.3/2",
"hpack/2.3.3/1"...), in the same order, with the same descriptions, the same frames sent and the
same verdict rules; the one "strict" case (http2/5.4.1/2) runs with --strict, as in h2spec.

    python3 test/integration/h2spec.py --port 8443 --tls [-k] [--path /] [--timeout 2]
        [--only http2/6.5] [--json results.json] [--verbose]

    import h2spec
    results = h2spec.run(h2spec.Config("127.0.0.1", port, tls=True))
    failed = [r for r in results if r.failed]

This file is the command line and the module to import; the code is in the package h2speclib/
next to it (the core, h2spec's verifiers and how it judges, one module per group of cases, the
runner). See H2SPEC.md.

Python 3 standard library plus Debian's python3-hpack.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2speclib import (DEFAULT_MAX_HEADER_LEN, DEFAULT_TIMEOUT, MAX_STREAMS_TRIED,  # noqa: E402
                       PROFILES, SPECS, Case, Config, Group, Result, Skipped, SpecConn,
                       TestError, all_cases, main, run, run_case, selected, summary)

__all__ = [
    "DEFAULT_MAX_HEADER_LEN", "DEFAULT_TIMEOUT", "MAX_STREAMS_TRIED", "PROFILES", "Case", "Config",
    "Group", "Result", "Skipped", "TestError", "SPECS", "all_cases", "main", "run", "run_case",
    "selected", "summary", "SpecConn",
]

if __name__ == "__main__":
    sys.exit(main())
