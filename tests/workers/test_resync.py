"""Start lines: resynchronisation, tunnels, HTTP/0.9 answers (``workers/resync.py``).

Table-driven like ``test_http1.py``: each scenario is fed whole, byte by byte and in random
segments, and must give the same calls each time.
"""
from __future__ import annotations

import pytest

from tests.helpers import C2S, S2C
from tests.workers.test_http1 import CL, WAYS, Case, get, ok, run_case

CASES = [
    # the server spoke first; an HTTP/0.9 request then gets a status-line-less answer, so the
    # unsolicited response ends where the request came (Zeek's reading)
    Case("http09-request-cuts-an-unsolicited-response",
         [(S2C, b"HTTP/1.1 200 OK\r\n" + CL + b"4\r\n\r\n"), (C2S, b"GET /\r\n\r\n"),
          (S2C, b"this is too much.\r\n")],
         [(None, None, None, 200, b"", (), ("request-missing", "response-incomplete")),
          (b"GET", b"/", b"", b"", b"this is too much.\r\n", (), ())]),
    Case("http11-request-does-not-cut-an-unsolicited-response",
         [(S2C, b"HTTP/1.1 200 OK\r\n" + CL + b"4\r\n\r\n"), (C2S, get()), (S2C, b"body")],
         [(b"GET", b"/", b"", 200, b"body", (), ())]),
    Case("garbage-before-a-request-is-skipped",
         [(C2S, b"\x00\x01junk\r\nmore junk\r\n" + get(b"/after")), (S2C, ok(b"k"))],
         [(b"GET", b"/after", b"", 200, b"k", (), ())]),
    Case("status-line-less-answer-runs-to-the-close",
         [(C2S, get(b"/old")), (S2C, b"<html>no status line</html>")],
         [(b"GET", b"/old", b"", b"", b"<html>no status line</html>", (), ())]),
    Case("unterminated-last-request-line-is-still-a-request",
         [(C2S, b"GET /last HTTP/1.1")],
         [(b"GET", b"/last", b"", None, None, (), ("response-missing",))]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("way", WAYS)
def test_start_case(case: Case, way: str) -> None:
    """Each start-line scenario yields the expected calls however the bytes are segmented."""
    run_case(case, way)
