"""h2spec 2's conformance cases for HTTP/2 servers, over h2frames; h2spec.py (next to this
package) is the command line and the module the tests import. The package:

- core.py: Config, the outcomes (TestError, Skipped, Result) and the registry (Group, Case,
  @case).
- verifier.py: the connection with h2spec's reading rules (SpecConn) and its verifiers.
- cases_generic.py, cases_http2.py, cases_hpack.py: the cases of h2spec's three groups.
- runner.py: selecting and running the cases, the report, the command line.

Needs test/integration on sys.path (for h2frames), as h2spec.py sets it.
"""

from .core import (DEFAULT_MAX_HEADER_LEN, DEFAULT_TIMEOUT, MAX_STREAMS_TRIED, PROFILES, Case,
                   Config, Group, Result, Skipped, TestError)
from .runner import SPECS, all_cases, main, run, run_case, selected, summary
from .verifier import SpecConn

__all__ = [
    "DEFAULT_MAX_HEADER_LEN", "DEFAULT_TIMEOUT", "MAX_STREAMS_TRIED", "PROFILES", "Case", "Config",
    "Group", "Result", "Skipped", "TestError", "SPECS", "all_cases", "main", "run", "run_case",
    "selected", "summary", "SpecConn",
]
